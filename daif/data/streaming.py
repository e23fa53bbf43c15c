"""Streaming mode (beyond the paper): render the sampled focus distances on the fly, no dense store.

Instead of drawing K images from a stored dense stack, draw K focus distances *continuously* within
each bin's range of focus distances and render only those K images from the scene's AIF and depth,
per batch, after any `.materialize()` of the scenes (so each epoch re-draws). The scenes come from a
store read without its `stack` column (`read_split(path, split, columns=SCENE_COLUMNS)`) or straight
from a source (`scene_dataset`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import ray
import torch

from daif.config import KERNEL_SIZE
from daif.data.bins import split_bins
from daif.data.progress import configure_progress
from daif.data.sources import Source, prepare_scene
from daif.images import to_float_chw, to_uint8_hwc
from daif.optics import ThinLensCamera, render_focal_stack

SCENE_COLUMNS = ("scene_id", "aif", "depth", "valid")


def focus_bin_ranges(focus_distances: np.ndarray, num_bins: int) -> np.ndarray:
    """(K, 2) [low, high] metres of each bin of consecutive focus distances."""
    focus = np.sort(np.asarray(focus_distances, dtype=np.float64))
    return np.array([[focus[b[0]], focus[b[-1]]] for b in split_bins(len(focus), num_bins)])


def draw_focus_distances(rng: np.random.Generator, ranges: np.ndarray, batch_size: int) -> np.ndarray:
    """(B, K) float32 focus distances, uniform within each bin's range."""
    low, high = ranges[:, 0], ranges[:, 1]
    return (low + rng.random((batch_size, len(ranges))) * (high - low)).astype(np.float32)


def render_rows(rows: dict[str, np.ndarray], focus_distances: np.ndarray, camera: ThinLensCamera, kernel_size: int | None = KERNEL_SIZE) -> np.ndarray:
    """(B, K, H, W, 3) uint8 stacks of a numpy batch of scenes at per-sample focus distances (B, K)."""
    aif = to_float_chw(rows["aif"])
    depth = torch.from_numpy(np.array(rows["depth"], dtype=np.float32))[:, None]
    with torch.no_grad():
        stack = render_focal_stack(aif, depth, torch.from_numpy(focus_distances), camera, kernel_size)  # (B, K, 3, H, W)
    return to_uint8_hwc(stack)


class StreamRenderer:
    """map_batches callable: adds `stack` (K, H, W, 3) uint8 and `focus_distances` (K,) float32 per row.

    The rng of a batch is seeded from (seed, epoch, the batch's first scene id), so draws vary
    across epochs and are reproducible.
    """

    def __init__(self, camera: dict[str, float], ranges: np.ndarray, seed: int, epoch: int, kernel_size: int | None = KERNEL_SIZE):
        self.camera = ThinLensCamera.from_dict(camera)
        self.ranges, self.seed, self.epoch, self.kernel_size = np.asarray(ranges), seed, epoch, kernel_size

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = int(hashlib.sha256(str(rows["scene_id"][0]).encode()).hexdigest()[:15], 16)
        rng = np.random.default_rng([self.seed, self.epoch, key])
        focus = draw_focus_distances(rng, self.ranges, len(rows["scene_id"]))
        return {**rows, "stack": render_rows(rows, focus, self.camera, self.kernel_size), "focus_distances": focus}


def stream_focal_stacks(
    scenes: ray.data.Dataset,
    camera: ThinLensCamera,
    focus_distances: np.ndarray,
    num_bins: int = 5,
    seed: int = 0,
    epoch: int = 0,
    kernel_size: int | None = KERNEL_SIZE,
    batch_size: int = 4,
) -> ray.data.Dataset:
    """Rows of `scenes` plus an on-the-fly stack of `num_bins` images drawn from the bins of `focus_distances`."""
    renderer = StreamRenderer(camera.to_dict(), focus_bin_ranges(focus_distances, num_bins), seed, epoch, kernel_size)
    return scenes.map_batches(renderer, batch_size=batch_size, batch_format="numpy")


def scene_dataset(source: Source, split: str, size: tuple[int, int], clip_range: tuple[float, float] = (0.1, 10.0)) -> ray.data.Dataset:
    """RGB-D scenes of a source as a Dataset (scene_id, aif, depth, valid), loaded and resized by Ray Data."""
    refs = source.refs(split)

    def load(batch: dict[str, Any]) -> dict[str, np.ndarray]:
        scenes = [prepare_scene(source.load(ref), ref["scene_id"], size, clip_range) for ref in batch["ref"]]
        return {
            "scene_id": np.array([s["scene_id"] for s in scenes], dtype=object),
            **{column: np.stack([s[column] for s in scenes]) for column in ("aif", "depth", "valid")},
        }

    configure_progress()  # the Dataset copies the DataContext now
    return ray.data.from_items([{"ref": ref} for ref in refs]).map_batches(load, batch_size=8, batch_format="numpy")
