"""Slow, loop-by-loop references of image filters, written from their formulas (independent of daif.filters)."""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])


def high_pass_reference(stack: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """stack (S, 3, H, W) -> h (S, H, W), the luma's 4-neighbour Laplacian 4 g(p) - sum of its neighbours, and
    n (H, W), the mean over the window x window box around p of max_k |h_k|; edges replicated in both."""
    count, _, height, width = stack.shape
    clamp = lambda v, size: min(max(v, 0), size - 1)

    def laplacian(image):
        g = np.tensordot(LUMA, image, axes=1)
        at = lambda y, x: g[clamp(y, height), clamp(x, width)]
        return np.array([[4 * at(y, x) - at(y - 1, x) - at(y + 1, x) - at(y, x - 1) - at(y, x + 1)
                          for x in range(width)] for y in range(height)])

    high = np.stack([laplacian(image) for image in stack])
    peak = np.abs(high).max(axis=0)
    half = window // 2
    energy = np.array([[np.mean([peak[clamp(v, height), clamp(u, width)] for v in range(y - half, y + half + 1)
                                 for u in range(x - half, x + half + 1)]) for x in range(width)] for y in range(height)])
    return high, energy
