"""Scene sources: where RGB-D scenes come from, and the shared steps that bring them to working size.

A source is a small picklable object (it travels to Ray workers). It lists light scene references
per split (`refs(split)` -> JSON-able dicts with at least "scene_id" and "split") and loads one
reference into a scene at its native resolution (`load(ref)` -> {"aif" (H, W, 3) uint8,
"depth" (H, W) float32 metres, "valid" (H, W) bool}). `prepare_scene` then resizes it to the
working size and applies the depth policy.

Resizing: RGB with an area (box) filter; depth and its validity mask with nearest-neighbour sampling
at the output pixel centres, which never blends a foreground and a background depth into a depth
that exists in neither (a "depth-preserving" filter).

Depth policy: NaN, inf and values <= 0 are invalid (and an explicit mask from the source is kept);
valid depth is clipped to the preset's range ([0.1, 10] m for NYUv2); each invalid pixel takes the depth
of its nearest valid pixel (Euclidean distance, `fill_nearest_valid`) so that rendering sees finite
positive metres that continue the surfaces around a hole, rather than a flat region at one depth; the
store keeps `valid`, which keeps those pixels out of every metric and loss. A scene with no valid
pixel is an error naming it.

Image files: every reader opens them with `open_image`, which reads the size from the header and refuses more
than MAX_IMAGE_PIXELS before any pixel is decoded (a small PNG can declare a huge image: a decompression bomb).
Images must be at least MIN_IMAGE_SIZE pixels on each side.
"""

from __future__ import annotations

import abc
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from daif.errors import UsageError

SPLITS = ("train", "test")
# Pixels per side. The paper's network (4 levels) pads its input to a multiple of 2**4 = 16 by replicating the
# edge: from 8 px on, the image fills at least half of each side of its deepest cell, not padding alone; and it
# spans the renderer's default 7-px blur window.
MIN_IMAGE_SIZE = 8
MAX_IMAGE_PIXELS = 40_000_000  # per image, read from the header before decoding (a 7000x5000 photograph fits)


class DataError(UsageError):
    """A bad input: the message names the file or scene and the problem."""


class Source(abc.ABC):
    """A collection of RGB-D scenes split into train and test."""

    name: str = "source"

    @abc.abstractmethod
    def refs(self, split: str) -> list[dict[str, Any]]:
        """Light, JSON-able references to the scenes of one split ("train" or "test")."""

    @abc.abstractmethod
    def load(self, ref: dict[str, Any]) -> dict[str, np.ndarray]:
        """The scene behind one reference at its native size: aif, depth, valid."""

    def describe(self) -> dict[str, Any]:
        """What identifies this source's content (goes into the store's configuration)."""
        return {"source": self.name}


@contextlib.contextmanager
def open_image(path: Any) -> Iterator[Image.Image]:
    """A Pillow image opened lazily (header only) after checking its declared size against MAX_IMAGE_PIXELS.

    Raises DataError naming `path` when it is missing, not an image, or too large; decode errors of the
    caller's `load` / `np.asarray` inside the block become DataError too.
    """
    try:
        with warnings.catch_warnings():  # Pillow warns above its own limit; ours (below) is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"{path}: declares {width}x{height} (WxH) pixels; at most {MAX_IMAGE_PIXELS:,} are read "
                                "(daif.data.sources.MAX_IMAGE_PIXELS)")
            yield image
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except Image.DecompressionBombError:  # above Pillow's own limit, which is larger than ours
        raise DataError(f"{path}: declares more than {MAX_IMAGE_PIXELS:,} pixels, the most that are read "
                        "(daif.data.sources.MAX_IMAGE_PIXELS)") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: cannot read as an image: {error}") from None


def check_image_size(path: Any, height: int, width: int) -> None:
    """Refuse an image under MIN_IMAGE_SIZE pixels on a side (DataError naming `path`)."""
    if min(height, width) < MIN_IMAGE_SIZE:
        raise DataError(f"{path}: {width}x{height} (WxH) pixels; at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} are needed "
                        "(daif.data.sources.MIN_IMAGE_SIZE)")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    return split


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 -> (H, W, 3) uint8 with an area (box) filter. size = (H, W)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BOX))


def resize_nearest(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) -> (H, W) sampling the source pixel under each output pixel centre (depth-preserving)."""
    height, width = size
    rows = ((np.arange(height) + 0.5) * values.shape[0] / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * values.shape[1] / width).astype(np.int64)
    return np.ascontiguousarray(values[rows[:, None], cols[None, :]])


def prepare_scene(
    scene: dict[str, np.ndarray],
    scene_id: str,
    size: tuple[int, int],
    depth_range: tuple[float, float],
) -> dict[str, Any]:
    """Resize a loaded scene to `size` (H, W) and apply the depth policy (module docstring).

    Returns {"scene_id", "aif" (H, W, 3) uint8, "depth" (H, W) float32 metres, "valid" (H, W) bool}.
    """
    aif, depth = scene["aif"], np.asarray(scene["depth"], dtype=np.float32)
    if aif.ndim != 3 or aif.shape[2] != 3 or aif.dtype != np.uint8:
        raise DataError(f"scene {scene_id}: aif must be (H, W, 3) uint8, got {aif.shape} {aif.dtype}")
    if depth.shape != aif.shape[:2]:
        raise DataError(f"scene {scene_id}: depth shape {depth.shape} disagrees with image shape {aif.shape[:2]}")
    valid = np.isfinite(depth) & (depth > 0)
    if "valid" in scene:
        valid &= np.asarray(scene["valid"], dtype=bool)
    aif = resize_rgb(aif, size)
    depth = resize_nearest(depth, size)
    valid = resize_nearest(valid, size)
    if not valid.any():
        raise DataError(f"scene {scene_id}: depth has no valid pixel (all NaN, inf or <= 0)")
    near, far = depth_range
    depth = fill_nearest_valid(np.clip(np.where(valid, depth, near), near, far), valid).astype(np.float32)
    return {"scene_id": scene_id, "aif": aif, "depth": depth, "valid": valid}


def fill_nearest_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) `values` with every pixel where `valid` is False replaced by the value of its nearest valid pixel
    (Euclidean distance; ties broken by scipy's scan order). `valid` must hold at least one True."""
    from scipy.ndimage import distance_transform_edt

    if valid.all():
        return values
    nearest = distance_transform_edt(~valid, return_distances=False, return_indices=True)  # (2, H, W)
    return values[nearest[0], nearest[1]]


def train_val_split(scene_ids: list[str], fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """Hold out `fraction` of the *training* scenes (seeded) as validation; order is kept.

    Validation never comes from the test split here. (The reference code validated and selected
    models on the test split; we do not.) Returns (train_ids, val_ids); fraction 0 keeps all for train.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {fraction!r}")
    num_val = int(round(len(scene_ids) * fraction))
    if fraction > 0 and len(scene_ids) >= 2:
        num_val = min(max(num_val, 1), len(scene_ids) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(scene_ids))[:num_val].tolist())
    train = [s for i, s in enumerate(scene_ids) if i not in chosen]
    val = [s for i, s in enumerate(scene_ids) if i in chosen]
    return train, val
