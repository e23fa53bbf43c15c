"""Streaming mode: focus distances drawn continuously per bin, rendered on the fly from the scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daif.data.bins import make_batch
from daif.data.dataset import read_split
from daif.data.store import open_store
from daif.data.streaming import SCENE_COLUMNS, draw_focus_distances, focus_bin_ranges, stream_focal_stacks
from daif.optics import render_focal_stack


def test_focus_bin_ranges_and_draws():
    ranges = focus_bin_ranges(np.linspace(1, 9, 100), 5)
    np.testing.assert_allclose(ranges[0], [1.0, 1 + 19 * 8 / 99])
    np.testing.assert_allclose(ranges[-1], [1 + 80 * 8 / 99, 9.0])
    draws = draw_focus_distances(np.random.default_rng(0), ranges, 256)
    assert draws.shape == (256, 5) and draws.dtype == np.float32
    assert ((draws >= ranges[:, 0].astype(np.float32)) & (draws <= ranges[:, 1].astype(np.float32))).all()
    assert len(np.unique(draws[:, 2])) == 256  # continuous, not the stored grid


@pytest.mark.ray
def test_streamed_stacks_match_the_renderer_and_vary_by_epoch(dense_store):
    out, _ = dense_store
    store = open_store(str(out))
    scenes = read_split(str(out), "train", columns=SCENE_COLUMNS).materialize()
    epochs = [
        stream_focal_stacks(scenes, store.camera, store.focus_distances, num_bins=5, seed=1, epoch=e, kernel_size=store.kernel_size).take_all()
        for e in (0, 1, 0)
    ]
    rows = epochs[0]
    assert rows[0]["stack"].shape == (5, 24, 32, 3) and rows[0]["focus_distances"].shape == (5,)
    ranges = focus_bin_ranges(store.focus_distances, 5).astype(np.float32)
    assert all(((r["focus_distances"] >= ranges[:, 0]) & (r["focus_distances"] <= ranges[:, 1])).all() for r in rows)
    assert not np.array_equal(rows[0]["focus_distances"], epochs[1][0]["focus_distances"])
    np.testing.assert_array_equal(rows[0]["focus_distances"], epochs[2][0]["focus_distances"])
    aif = torch.tensor(rows[0]["aif"]).permute(2, 0, 1)[None].float() / 255.0
    depth = torch.tensor(rows[0]["depth"])[None, None]
    expected = render_focal_stack(aif, depth, torch.tensor(rows[0]["focus_distances"])[None], store.camera, store.kernel_size)[0]
    expected = (expected.clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(rows[0]["stack"].astype(np.float64) - expected).max() <= 1.0
    batch = make_batch(
        {k: np.stack([r[k] for r in rows[:2]]) for k in ("stack", "depth", "aif", "valid")},
        np.tile(np.arange(5), (2, 1)),
        np.stack([r["focus_distances"] for r in rows[:2]]),
    )
    assert batch["stack"].shape == (2, 5, 3, 24, 32)
    torch.testing.assert_close(batch["focus_distances"][1], torch.tensor(rows[1]["focus_distances"]))
