"""The shard writer's compression options: each round-trips the scene exactly and is what the file says."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from daif.data import store
from daif.optics import ThinLensCamera


def _scene(seed: int, size=(6, 8), num_focus=4):
    rng = np.random.default_rng(seed)
    height, width = size
    scene = {
        "scene_id": f"scene-{seed}",
        "aif": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "depth": rng.uniform(0.5, 9.0, (height, width)).astype(np.float32),
        "valid": rng.random((height, width)) > 0.2,
    }
    stack = np.repeat(scene["aif"][None], num_focus, axis=0) // np.arange(1, num_focus + 1, dtype=np.uint8)[:, None, None, None]
    return scene, stack


@pytest.mark.parametrize(
    "option, filter_name, level",
    [("none", None, None), ("lzf", "lzf", None), ("gzip", "gzip", 4), ("gzip-1", "gzip", 1), ("gzip-9", "gzip", 9)],
)
def test_compression_round_trips_and_is_recorded(tmp_path, option, filter_name, level):
    camera = ThinLensCamera.preset("nyuv2-dense")
    attrs = store.shard_attrs(camera, 7, "synthetic", "train", "hash")
    scenes = [_scene(seed) for seed in range(3)]
    path = tmp_path / "shard-00000.h5"
    with store.ShardWriter(str(path), 3, (6, 8), [1.0, 2.0, 4.0, 8.0], attrs, option) as writer:
        for scene, stack in scenes:
            writer.add(scene, stack)
        info = writer.close()
    assert info["sha256"] == store.file_sha256(str(path)) and info["scenes"] == 3
    with h5py.File(path, "r") as file:
        for column in ("aif", "depth", "valid", "stack"):
            assert file[column].compression == filter_name and file[column].compression_opts == level
        for index, (scene, stack) in enumerate(scenes):
            read = store.read_scene(file, index)
            assert read["scene_id"] == scene["scene_id"]
            for column in ("aif", "depth", "valid"):
                np.testing.assert_array_equal(read[column], scene[column])
            np.testing.assert_array_equal(read["stack"], stack)


def test_default_is_uncompressed_and_bad_options_are_named(tmp_path):
    assert store.DEFAULT_COMPRESSION == "none"
    attrs = store.shard_attrs(ThinLensCamera.preset("nyuv2-dense"), 7, "synthetic", "train", "hash")
    with pytest.raises(ValueError, match=r"compression: expected lzf, gzip, gzip-<0..9> or none, got 'zstd'"):
        store.ShardWriter(str(tmp_path / "shard-00000.h5"), 1, (6, 8), [1.0], attrs, "zstd")
    assert not list(tmp_path.iterdir())  # nothing left behind
