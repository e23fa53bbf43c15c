"""daif.images: 8-bit HWC <-> float CHW, any leading dimensions, exact round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daif.images import to_float_chw, to_uint8_hwc


def test_round_trip_and_layout():
    images = np.random.default_rng(0).integers(0, 256, size=(2, 4, 5, 6, 3), dtype=np.uint8)  # (B, K, H, W, 3)
    tensor = to_float_chw(images)
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (2, 4, 3, 5, 6)
    assert tensor[1, 2, 0, 3, 4] == pytest.approx(images[1, 2, 3, 4, 0] / 255.0)
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert np.array_equal(to_uint8_hwc(tensor), images)
    assert np.array_equal(to_uint8_hwc(to_float_chw(images[0, 0])), images[0, 0])  # a single (H, W, 3) image


def test_clamps_and_rejects_other_layouts():
    assert to_uint8_hwc(torch.tensor([-0.5, 0.5, 1.5]).view(3, 1, 1)).ravel().tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="uint8"):
        to_float_chw(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        to_float_chw(np.zeros((3, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="3, H, W"):
        to_uint8_hwc(torch.zeros(4, 4, 3))
