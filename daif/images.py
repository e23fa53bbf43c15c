"""The one conversion between stored images and the tensors the network, renderer and losses take.

Stored (the store, PNG files, the Ray Data rows): uint8, channels last, (..., H, W, 3).
Computed: float32 in [0, 1], channels first, (..., 3, H, W).
"""

from __future__ import annotations

import numpy as np
import torch


def to_float_chw(images: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 tensor (..., 3, H, W) in [0, 1]."""
    array = np.asarray(images)
    if array.ndim < 3 or array.shape[-1] != 3:
        raise ValueError(f"images: expected uint8 (..., H, W, 3), got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -3))).float().div_(255.0)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """float tensor (..., 3, H, W) in [0, 1] -> uint8 (..., H, W, 3), clamped and rounded to nearest."""
    return images.detach().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()
