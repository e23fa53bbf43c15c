"""Bin sampling of a dense focal stack (method.md, "Dense focal stacks and bins").

The F images of a dense stack, ordered by focus distance, are split into K bins of consecutive
images (sizes differ by at most one). Training draws one image uniformly from every bin, re-drawn
every epoch; validation takes each bin's middle image; "fixed" takes given indices. A draw is done
after any `.materialize()` of the expensive steps, with an rng seeded from (seed, epoch, rank), so
it varies across epochs and stays reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from daif.images import to_float_chw

MODES = ("random", "middle", "fixed")


def split_bins(num_images: int, num_bins: int) -> list[np.ndarray]:
    """K arrays of consecutive indices, disjoint and covering 0..F-1."""
    if num_bins < 1 or num_images < num_bins:
        raise ValueError(f"num_bins: expected 1 <= num_bins <= num_images ({num_images}), got {num_bins}")
    edges = np.linspace(0, num_images, num_bins + 1).round().astype(np.int64)
    return [np.arange(start, stop) for start, stop in zip(edges[:-1], edges[1:])]


class BinSampler:
    """Choose K indices of an F-image stack per sample.

    num_images: F; num_bins: K (the input stack size); mode: "random" (one uniform index per bin),
    "middle" (each bin's middle) or "fixed" (`indices`, K of them, each in 0..F-1).
    """

    def __init__(self, num_images: int, num_bins: int = 5, mode: str = "random", indices: Sequence[int] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {list(MODES)}, got {mode!r}")
        self.num_images, self.mode = int(num_images), mode
        if mode == "fixed":
            if indices is None or len(indices) == 0:
                raise ValueError("indices: mode 'fixed' needs the stack indices to take")
            fixed = np.asarray(indices, dtype=np.int64)
            if fixed.ndim != 1 or fixed.min() < 0 or fixed.max() >= num_images:
                raise ValueError(f"indices: expected K indices in 0..{num_images - 1}, got {list(indices)}")
            self.fixed = fixed
            self.bins = [fixed[i : i + 1] for i in range(fixed.size)]
        else:
            if indices is not None:
                raise ValueError(f"indices: only mode 'fixed' takes indices, not mode {mode!r}")
            self.bins = split_bins(self.num_images, num_bins)
            self.fixed = np.array([b[(b.size - 1) // 2] for b in self.bins], dtype=np.int64)
        self.num_bins = len(self.bins)

    def __repr__(self) -> str:
        return f"BinSampler(num_images={self.num_images}, num_bins={self.num_bins}, mode={self.mode!r})"

    def draw(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """(batch_size, K) int64 stack indices, ascending along K."""
        if self.mode != "random":
            return np.broadcast_to(self.fixed, (batch_size, self.num_bins)).copy()
        starts = np.array([b[0] for b in self.bins])
        sizes = np.array([b.size for b in self.bins])
        return starts + (rng.random((batch_size, self.num_bins)) * sizes).astype(np.int64)


def make_batch(
    rows: dict[str, np.ndarray], indices: np.ndarray, focus_distances: np.ndarray
) -> dict[str, torch.Tensor]:
    """Tensors of one training batch from a numpy batch of store rows.

    rows: stack (B, F, H, W, 3) uint8, depth (B, H, W), aif (B, H, W, 3) uint8, valid (B, H, W);
    indices: (B, K) stack indices (BinSampler.draw); focus_distances: (F,) metres, or (B, F) when
    each row carries its own (streamed rows).
    Returns stack (B, K, 3, H, W) float32 in [0, 1], focus_distances (B, K) float32 metres,
    depth (B, 1, H, W) float32 metres, aif (B, 3, H, W) float32 in [0, 1], valid (B, 1, H, W) bool, and
    has_aif (B,) bool where the rows carry it (False: `aif` is no ground truth).
    """
    stack = np.asarray(rows["stack"])
    indices = np.asarray(indices, dtype=np.int64)
    if stack.ndim != 5 or indices.shape[0] != stack.shape[0] or indices.ndim != 2:
        raise ValueError(f"indices: expected (B, K) for a stack of shape (B, F, H, W, 3) {stack.shape}, got {indices.shape}")
    focus = np.asarray(focus_distances, dtype=np.float32)
    if focus.shape not in ((stack.shape[1],), stack.shape[:2]):
        raise ValueError(f"focus_distances: expected ({stack.shape[1]},) or {stack.shape[:2]} for the stack, got {focus.shape}")
    chosen_focus = focus[indices] if focus.ndim == 1 else np.take_along_axis(focus, indices, axis=1)
    chosen = np.take_along_axis(stack, indices[:, :, None, None, None], axis=1)  # (B, K, H, W, 3)
    batch = {
        "stack": to_float_chw(chosen),
        "focus_distances": torch.from_numpy(np.ascontiguousarray(chosen_focus)),
    }
    if "depth" in rows:
        batch["depth"] = torch.from_numpy(np.array(rows["depth"], dtype=np.float32))[:, None]
    if "aif" in rows:
        batch["aif"] = to_float_chw(rows["aif"])
    if "valid" in rows:
        batch["valid"] = torch.from_numpy(np.array(rows["valid"], dtype=bool))[:, None]
    if "has_aif" in rows:
        batch["has_aif"] = torch.from_numpy(np.array(rows["has_aif"], dtype=bool))
    return batch
