"""Procedural synthetic RGB-D scenes: the embedded default dataset (nothing is downloaded).

A scene is a room seen through a pinhole camera (floor, ceiling, side walls and a back wall, the
room turned and tilted a little so the walls are slanted planes), with objects in front of it:
flat cards, discs and blobs, each a plane with its own slant, at depths spread log-uniformly over
the whole depth range. Every surface carries its own multi-scale texture (value noise from 2 px to
a quarter of the image, plus stripes or checks), because defocus is only visible on texture.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from PIL import Image

from daif.data.sources import Source, check_split


def _value_noise(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    """(H, W, 3) smooth random field in [0, 1] with features about `cell` pixels wide."""
    height, width = size
    grid = rng.random((max(2, int(height / cell) + 2), max(2, int(width / cell) + 2), 3), dtype=np.float32)
    image = Image.fromarray((grid * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def _pattern(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W) stripes or checks of a random period (3..24 px) and orientation, in [-1, 1]."""
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3.0, 24.0)
    along = (np.cos(angle) * cols + np.sin(angle) * rows) * (2 * np.pi / period)
    if rng.random() < 0.5:
        return np.sign(np.sin(along)).astype(np.float32)
    across = (-np.sin(angle) * cols + np.cos(angle) * rows) * (2 * np.pi / period)
    return np.sign(np.sin(along) * np.sin(across)).astype(np.float32)


def make_texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: a base colour, 1/f-like multi-scale noise and a sharp pattern."""
    height, width = size
    base = rng.uniform(0.15, 0.85, size=3).astype(np.float32)
    texture = np.broadcast_to(base, (height, width, 3)).copy()
    cell, amplitude = max(height, width) / 4.0, 0.35
    while cell >= 1.5:  # octaves from a quarter of the image down to 2 px
        texture += amplitude * (_value_noise(rng, size, cell) - 0.5)
        cell, amplitude = cell / 2.0, amplitude * 0.8
    texture += rng.uniform(0.08, 0.25) * _pattern(rng, size)[..., None] * rng.uniform(0.3, 1.0, size=3)
    return np.clip(texture, 0.0, 1.0)


def _room_depth(rng: np.random.Generator, size: tuple[int, int], depth_range: tuple[float, float]):
    """(H, W) z-depth of the room's planes and (H, W) plane labels 0..4."""
    height, width = size
    near, far = depth_range
    focal = width * rng.uniform(0.8, 1.2)  # pixels; a 45-65 degree field of view
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (cols + 0.5 - width / 2) / focal
    y = (rows + 0.5 - height / 2) / focal
    yaw, pitch = rng.uniform(-0.35, 0.35), rng.uniform(-0.15, 0.15)
    # ray direction (x, y, 1) turned into the room frame; depth along the camera axis is the ray parameter t
    dx = np.cos(yaw) * x + np.sin(yaw)
    dz0 = -np.sin(yaw) * x + np.cos(yaw)
    dy = np.cos(pitch) * y - np.sin(pitch) * dz0
    dz = np.sin(pitch) * y + np.cos(pitch) * dz0
    back = rng.uniform(0.55, 1.0) * far
    half_width = rng.uniform(0.25, 0.6) * back
    floor, ceiling = rng.uniform(1.0, 1.8), rng.uniform(1.0, 2.0)
    planes = [(dz, back), (dx, -half_width), (dx, half_width), (dy, floor), (dy, -ceiling)]
    depth = np.full(size, np.inf)
    labels = np.zeros(size, dtype=np.int64)
    for label, (direction, offset) in enumerate(planes):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = offset / direction
        hit = (t > 0) & (t < depth)
        depth[hit], labels[hit] = t[hit], label
    return np.clip(depth, near, far), labels


def _object_mask(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: a card (rectangle), a disc or a blob somewhere in the frame."""
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(0.08, 0.35) * height, rng.uniform(0.08, 0.35) * width
    kind = rng.integers(3)
    if kind == 0:
        return (np.abs(rows - cy) < ry) & (np.abs(cols - cx) < rx)
    radius = np.hypot((rows - cy) / ry, (cols - cx) / rx)
    if kind == 1:
        return radius < 1.0
    wobble = _value_noise(rng, size, max(height, width) / 6.0)[..., 0]
    return radius < 0.6 + 0.8 * wobble


def _paint(aif: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Cover aif[mask] with a fresh texture generated over the mask's bounding box only."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        return
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    texture = make_texture(rng, (rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]))
    aif[box][mask[box]] = texture[mask[box]]


def make_scene(seed: int, size: tuple[int, int] = (240, 320), depth_range: tuple[float, float] = (0.8, 10.0)) -> dict[str, Any]:
    """One procedural RGB-D scene.

    size: (H, W); depth_range: (near, far) metres that the scene's depth spans.
    Returns {"id": str, "aif": (H, W, 3) uint8, "depth": (H, W) float32 metres, "valid": (H, W) bool}.
    """
    near, far = (float(v) for v in depth_range)
    if not 0 < near < far:
        raise ValueError(f"depth_range: expected 0 < near < far, got {depth_range!r}")
    rng = np.random.default_rng(seed)
    depth, labels = _room_depth(rng, size, (near, far))
    aif = np.zeros((*size, 3), dtype=np.float32)
    for label in range(5):
        _paint(aif, labels == label, rng)
    num_objects = int(rng.integers(3, 9))
    object_depths = np.sort(np.exp(rng.uniform(np.log(near), np.log(far * 0.9), num_objects)))[::-1]
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
    for object_depth in object_depths:  # far to near: nearer objects occlude
        mask = _object_mask(rng, size)
        slant = rng.uniform(-0.3, 0.3, size=2) * object_depth
        plane = object_depth + slant[0] * (rows / size[0] - 0.5) + slant[1] * (cols / size[1] - 0.5)
        mask &= plane < depth
        if mask.any():
            depth[mask] = np.clip(plane[mask], near, far)
            _paint(aif, mask, rng)
    return {
        "id": f"synthetic-{seed}",
        "aif": np.round(aif * 255).astype(np.uint8),
        "depth": depth.astype(np.float32),
        "valid": np.ones(size, dtype=bool),
    }


def scene_seed(seed: int, index: int) -> int:
    """A well-mixed per-scene seed from the dataset seed and the scene index."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


@dataclasses.dataclass(frozen=True)
class SyntheticSource(Source):
    """`num_scenes` seeded scenes split train/test by a seeded shuffle (test_fraction, default 20%)."""

    num_scenes: int
    seed: int = 0
    size: tuple[int, int] = (240, 320)
    depth_range: tuple[float, float] = (0.8, 10.0)
    test_fraction: float = 0.2
    name: str = dataclasses.field(default="synthetic", init=False)

    def __post_init__(self) -> None:
        if self.num_scenes < 2:
            raise ValueError(f"scenes: a synthetic dataset needs at least 2 scenes (train and test), got {self.num_scenes}")
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "depth_range", tuple(float(v) for v in self.depth_range))

    def refs(self, split: str) -> list[dict[str, Any]]:
        order = np.random.default_rng(self.seed).permutation(self.num_scenes)
        num_test = min(self.num_scenes - 1, max(1, round(self.num_scenes * self.test_fraction)))
        chosen = order[:num_test] if check_split(split) == "test" else order[num_test:]
        return [
            {"scene_id": f"synthetic-{self.seed}-{i:05d}", "split": split, "seed": scene_seed(self.seed, int(i))}
            for i in sorted(chosen)
        ]

    def load(self, ref: dict[str, Any]) -> dict[str, np.ndarray]:
        scene = make_scene(ref["seed"], self.size, self.depth_range)
        return {"aif": scene["aif"], "depth": scene["depth"], "valid": scene["valid"]}

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "scenes": self.num_scenes,
            "seed": self.seed,
            "depth_range": list(self.depth_range),
            "test_fraction": self.test_fraction,
        }
