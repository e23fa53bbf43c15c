"""Conversions between 8-bit images as stored (numpy, channels last) and float images as the
networks, renderers and metrics take them (torch, channels first, values in [0, 1]).

    to_float_chw(uint8 (..., H, W, 3)) -> float32 tensor (..., 3, H, W) = value / 255, on the CPU
    to_uint8_hwc(tensor (..., 3, H, W)) -> uint8 array (..., H, W, 3) = round(clamp(x, 0, 1) * 255)

Any leading dimensions (a batch B, a stack B x K) pass through unchanged. to_uint8_hwc inverts
to_float_chw exactly.
"""

from __future__ import annotations

import numpy as np
import torch


def to_float_chw(images: np.ndarray) -> torch.Tensor:
    """uint8 images (..., H, W, 3) -> a float32 tensor (..., 3, H, W) in [0, 1] (a contiguous copy)."""
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim < 3 or array.shape[-1] != 3:
        raise ValueError(f"images: expected uint8 (..., H, W, 3), got {array.dtype} {tuple(array.shape)}")
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -3))).float().div(255.0)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """Float images (..., 3, H, W), nominally in [0, 1] (clamped), on any device -> uint8 numpy (..., H, W, 3)."""
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"images: expected (..., 3, H, W), got {tuple(images.shape)}")
    quantised = images.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return quantised.movedim(-3, -1).cpu().numpy()
