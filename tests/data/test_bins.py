"""Bin sampling of dense stacks and the training batch built from store rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daif.data.bins import BinSampler, make_batch, split_bins


@pytest.mark.parametrize("num_images, num_bins", [(100, 5), (7, 3), (5, 5), (10, 1)])
def test_bins_are_consecutive_disjoint_and_cover(num_images, num_bins):
    bins = BinSampler(num_images, num_bins).bins
    assert len(bins) == num_bins
    np.testing.assert_array_equal(np.concatenate(bins), np.arange(num_images))
    assert all(np.array_equal(b, np.arange(b[0], b[-1] + 1)) for b in bins)
    sizes = [b.size for b in bins]
    assert max(sizes) - min(sizes) <= 1


def test_paper_dense_bins_are_twenty_images_each():
    assert [(int(b[0]), int(b[-1])) for b in split_bins(100, 5)] == [(0, 19), (20, 39), (40, 59), (60, 79), (80, 99)]


def epoch_rng(seed: int, epoch: int, rank: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, rank])


def test_random_draws_stay_in_their_bins_and_vary_across_epochs():
    sampler = BinSampler(100, 5, "random")
    draws = [sampler.draw(epoch_rng(0, epoch, 0), 64) for epoch in range(3)]
    for draw in draws:
        assert draw.shape == (64, 5) and draw.dtype == np.int64
        for k, b in enumerate(sampler.bins):
            assert draw[:, k].min() >= b[0] and draw[:, k].max() <= b[-1]
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    np.testing.assert_array_equal(sampler.draw(epoch_rng(0, 1, 0), 64), draws[1])  # reproducible
    assert not np.array_equal(sampler.draw(epoch_rng(0, 1, 1), 64), draws[1])  # ranks differ
    seen = np.concatenate([sampler.draw(epoch_rng(0, e, 0), 64)[:, 0] for e in range(10)])
    assert set(seen.tolist()) == set(range(20))  # uniform over the whole bin


def test_middle_and_fixed_draws_do_not_change():
    middle = BinSampler(100, 5, "middle")
    np.testing.assert_array_equal(middle.draw(epoch_rng(0, 0, 0), 3), [[9, 29, 49, 69, 89]] * 3)
    np.testing.assert_array_equal(middle.draw(epoch_rng(0, 7, 0), 1), [[9, 29, 49, 69, 89]])
    np.testing.assert_array_equal(BinSampler(5, 5, "middle").draw(epoch_rng(0, 0, 0), 1), [[0, 1, 2, 3, 4]])
    fixed = BinSampler(100, mode="fixed", indices=[0, 50, 99])
    assert fixed.num_bins == 3
    np.testing.assert_array_equal(fixed.draw(epoch_rng(0, 0, 0), 2), [[0, 50, 99]] * 2)


def test_bin_sampler_bad_arguments():
    with pytest.raises(ValueError, match="num_bins: expected 1 <= num_bins <= num_images \\(4\\), got 5"):
        BinSampler(4, 5)
    with pytest.raises(ValueError, match="mode: expected one of"):
        BinSampler(10, 5, "nearest")
    with pytest.raises(ValueError, match="indices: expected K indices in 0..9"):
        BinSampler(10, mode="fixed", indices=[3, 10])
    with pytest.raises(ValueError, match="mode 'fixed' needs"):
        BinSampler(10, mode="fixed")


def test_make_batch_gathers_the_drawn_images():
    rng = np.random.default_rng(0)
    rows = {
        "stack": rng.integers(0, 256, (2, 10, 4, 6, 3), dtype=np.uint8),
        "aif": rng.integers(0, 256, (2, 4, 6, 3), dtype=np.uint8),
        "depth": rng.uniform(1, 9, (2, 4, 6)).astype(np.float32),
        "valid": rng.random((2, 4, 6)) > 0.2,
        "scene_id": np.array(["a", "b"], dtype=object),
    }
    focus = np.linspace(1, 9, 10).astype(np.float32)
    indices = np.array([[0, 4, 9], [1, 5, 8]])
    batch = make_batch(rows, indices, focus)
    assert batch["stack"].shape == (2, 3, 3, 4, 6) and batch["stack"].dtype == torch.float32
    assert batch["stack"].is_contiguous()
    torch.testing.assert_close(batch["stack"][1, 2], torch.from_numpy(rows["stack"][1, 8]).permute(2, 0, 1) / 255.0)
    torch.testing.assert_close(batch["focus_distances"], torch.from_numpy(focus[indices]))
    assert batch["depth"].shape == (2, 1, 4, 6) and batch["valid"].dtype == torch.bool
    torch.testing.assert_close(batch["aif"][0, :, 1, 2], torch.from_numpy(rows["aif"][0, 1, 2]).float() / 255.0)
    assert float(batch["stack"].max()) <= 1.0
    with pytest.raises(ValueError, match="focus_distances: expected \\(10,\\) or \\(2, 10\\)"):
        make_batch(rows, indices, focus[:5])

