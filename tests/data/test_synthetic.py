"""Procedural synthetic scenes: seeded, spanning the depth range, textured everywhere."""

from __future__ import annotations

import numpy as np

from daif.data.synthetic import SyntheticSource, make_scene


def test_make_scene_contract_and_seeding():
    scene = make_scene(7, size=(60, 80), depth_range=(1.0, 9.0))
    assert set(scene) == {"id", "aif", "depth", "valid"}
    assert scene["aif"].shape == (60, 80, 3) and scene["aif"].dtype == np.uint8
    assert scene["depth"].shape == (60, 80) and scene["depth"].dtype == np.float32
    assert scene["valid"].dtype == bool and scene["valid"].all()
    again = make_scene(7, size=(60, 80), depth_range=(1.0, 9.0))
    np.testing.assert_array_equal(again["aif"], scene["aif"])
    np.testing.assert_array_equal(again["depth"], scene["depth"])
    assert not np.array_equal(make_scene(8, size=(60, 80))["depth"], scene["depth"])


def test_scenes_span_the_depth_range():
    depths = np.stack([make_scene(seed, (48, 64), (1.0, 9.0))["depth"] for seed in range(12)])
    assert depths.min() >= 1.0 and depths.max() <= 9.0
    assert np.quantile(depths, 0.05) < 2.5 and np.quantile(depths, 0.95) > 6.0
    assert all(len(np.unique(d.round(1))) > 10 for d in depths)  # slanted planes, not a few flat layers


def test_texture_is_everywhere():
    aif = make_scene(3, (96, 128))["aif"].astype(np.float32).mean(axis=2)
    laplacian = 4 * aif[1:-1, 1:-1] - aif[:-2, 1:-1] - aif[2:, 1:-1] - aif[1:-1, :-2] - aif[1:-1, 2:]
    blocks = np.abs(laplacian[: 88, : 120]).reshape(11, 8, 15, 8).mean(axis=(1, 3))
    assert (blocks > 5.0).mean() > 0.95  # fine detail in (almost) every 8x8 block


def test_synthetic_source_splits_80_20_seeded():
    source = SyntheticSource(num_scenes=20, seed=5, size=(16, 16))
    train, test = source.refs("train"), source.refs("test")
    assert (len(train), len(test)) == (16, 4)
    assert not {r["scene_id"] for r in train} & {r["scene_id"] for r in test}
    assert SyntheticSource(num_scenes=20, seed=5, size=(16, 16)).refs("test") == test
    assert SyntheticSource(num_scenes=20, seed=6, size=(16, 16)).refs("test") != test
    np.testing.assert_array_equal(source.load(test[0])["aif"], source.load(dict(test[0]))["aif"])
