"""A captured focal stack made without our renderer: an n x n light field of textured planes, refocused by shift-and-add.

Scene: fronto-parallel planes at known depths d [m] (a back plane filling the view, nearer rectangular
cards), each textured with `daif.data.synthetic.make_texture`. Cameras: an n x n (n odd, 9 by default) grid of
pinhole views on a plane, spacing b [m], view (i, j), i, j in -(n // 2)..n // 2 (i along image columns, j
along rows), all with focal length F = f / p [px] and the same principal point. A plane at depth d appears in view (i, j)
translated by -(i, j) F b / d px against the centre view, so a view is rendered by sampling each plane's
texture at the translated position (bilinear) and compositing the planes far to near with their coverage
as alpha (nearer wins: correct occlusion for fronto-parallel planes).

Refocus by shift-and-add at disparity delta [px per view]: image(x) = mean over the views of
view_(i, j)(x - (i, j) delta), bilinear. A plane with F b / d = delta is aligned in every view and comes
out sharp, so delta focuses at s = F b / delta. A plane at depth d is spread over the positions
(i, j) (delta - F b / d): an n x n grid of points (not a Gaussian), (n - 1) F b |1/s - 1/d| px wide; with
the "disc" aperture only the views with i^2 + j^2 <= (n // 2)^2 are added, a round grid of that diameter. The
grid's points are F b |1/s - 1/d| px apart: where that exceeds about 1 px the blur of fine texture is a set
of ghosts rather than a smooth spread (angular aliasing), which a lens's continuous aperture does not make.

The equivalent thin lens (method.md): aperture A = (n - 1) b, so f_number N = f / A. Its blur diameter
is c / p = (A f / p) |d - s| / (d (s - f)) = A F |1/s - 1/d| s / (s - f); for s >> f the factor
s / (s - f) is 1 and c / p = (n - 1) F b |1/s - 1/d|, the synthetic aperture's width above (5 % apart at
s = 1 m with f = 50 mm). Only the width matches: the renderer's PSF is a Gaussian (sigma = c / (2 p)),
the synthetic aperture's a grid of points. Per axis its variance is W^2 (n + 1) / (12 (n - 1)) for the square
of width W = c / p (1.67 times the Gaussian's and a disc's W^2 / 16 at n = 9), about W^2 / 16 for the disc.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from daif.data.synthetic import make_texture

VIEWS = 9  # n: views per side


@dataclasses.dataclass(frozen=True)
class LightFieldScene:
    """Planes far to near: depths [m] and card rectangles (row0, row1, col0, col1) in centre-view pixels
    (None: the back plane, everywhere)."""

    size: tuple[int, int]  # (H, W) of the images
    depths: tuple[float, ...]
    rects: tuple[tuple[int, int, int, int] | None, ...]
    seed: int = 0

    def depth_map(self) -> np.ndarray:
        """(H, W) float32 metres of the centre view: the nearest plane covering each pixel."""
        depth = np.full(self.size, np.inf, np.float32)
        for value, rect in zip(self.depths, self.rects):
            mask = self.card_mask(rect)
            depth[mask] = np.minimum(depth[mask], value)
        return depth

    def card_mask(self, rect: tuple[int, int, int, int] | None) -> np.ndarray:
        """(H, W) bool of one plane's rectangle in the centre view."""
        mask = np.zeros(self.size, bool)
        if rect is None:
            mask[:] = True
        else:
            row0, row1, col0, col1 = rect
            mask[row0:row1, col0:col1] = True
        return mask


def sample_shifted(image: np.ndarray, rows: float, cols: float, origin: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Bilinear samples of `image` (h, w, ...) at (origin + (y, x) + (rows, cols)) for y, x over `size` (H, W).

    The sampled window must lie inside `image` (the callers pad it)."""
    row_floor, col_floor = math.floor(rows), math.floor(cols)
    row_frac, col_frac = rows - row_floor, cols - col_floor
    top, left = origin[0] + row_floor, origin[1] + col_floor
    height, width = size
    if top < 0 or left < 0 or top + height + 1 > image.shape[0] or left + width + 1 > image.shape[1]:
        raise ValueError(f"sample_shifted: window at ({top}, {left}) of {size} leaves the image {image.shape[:2]}")

    def crop(dy: int, dx: int) -> np.ndarray:
        return image[top + dy : top + dy + height, left + dx : left + dx + width]

    return ((1 - row_frac) * ((1 - col_frac) * crop(0, 0) + col_frac * crop(0, 1))
            + row_frac * ((1 - col_frac) * crop(1, 0) + col_frac * crop(1, 1)))


def aperture_views(views: int = VIEWS, aperture: str = "square") -> list[tuple[int, int]]:
    """The (j, i) view indices of an n x n grid (n = `views`, odd), i, j in -(n // 2)..n // 2: all of them for a
    "square" aperture, those with i^2 + j^2 <= (n // 2)^2 for a "disc" (a round lens's aperture)."""
    if views < 3 or views % 2 == 0 or aperture not in ("square", "disc"):
        raise ValueError(f"views, aperture: expected an odd views >= 3 and 'square' or 'disc', got {views!r}, {aperture!r}")
    half = views // 2
    grid = [(j, i) for j in range(-half, half + 1) for i in range(-half, half + 1)]
    return grid if aperture == "square" else [(j, i) for j, i in grid if i * i + j * j <= half * half]


def render_views(
    scene: LightFieldScene, focal_px: float, baseline: float, margin: int, offsets: list[tuple[int, int]]
) -> list[np.ndarray]:
    """(H + 2 margin, W + 2 margin, 3) float64 views in [0, 1], one per (j, i) of `offsets` (rows, columns)."""
    height, width = scene.size
    half = max(max(abs(j), abs(i)) for j, i in offsets)
    view_size = (height + 2 * margin, width + 2 * margin)
    max_disparity = focal_px * baseline / min(scene.depths)
    pad = margin + math.ceil(half * max_disparity) + 2  # canvas border beyond the images
    canvas = (height + 2 * pad, width + 2 * pad)
    rng = np.random.default_rng(scene.seed)
    planes = []
    for depth, rect in zip(scene.depths, scene.rects):
        texture = make_texture(rng, canvas).astype(np.float64)
        coverage = np.zeros(canvas)
        if rect is None:
            coverage[:] = 1.0
        else:
            row0, row1, col0, col1 = rect
            coverage[pad + row0 : pad + row1, pad + col0 : pad + col1] = 1.0
        planes.append((focal_px * baseline / depth, texture, coverage[..., None]))
    origin = (pad - margin, pad - margin)  # canvas index of the padded view's pixel (0, 0)
    views = []
    for j, i in offsets:
        image = np.zeros((*view_size, 3))
        for disparity, texture, coverage in planes:  # far to near: the nearer plane is painted over
            alpha = sample_shifted(coverage, j * disparity, i * disparity, origin, view_size)
            colour = sample_shifted(texture, j * disparity, i * disparity, origin, view_size)
            image = (1 - alpha) * image + alpha * colour
        views.append(image)
    return views


def refocus(views: list[np.ndarray], offsets: list[tuple[int, int]], delta: float, margin: int) -> np.ndarray:
    """(H, W, 3) float64 shift-and-add image at disparity `delta` [px per view] of padded `views` (render_views)."""
    height, width = views[0].shape[0] - 2 * margin, views[0].shape[1] - 2 * margin
    total = np.zeros((height, width, 3))
    for view, (j, i) in zip(views, offsets):
        total += sample_shifted(view, -j * delta, -i * delta, (margin, margin), (height, width))
    return total / len(views)


@dataclasses.dataclass(frozen=True)
class CapturedStack:
    """What `light_field_stack` returns: the images and what a camera would record with them."""

    images: np.ndarray  # (K, H, W, 3) uint8, ascending focus distance
    focus_distances: tuple[float, ...]  # metres
    camera: dict[str, float]  # the equivalent thin lens: focal_length, f_number, pixel_size
    depth: np.ndarray  # (H, W) float32 metres, the centre view's
    aif: np.ndarray  # (H, W, 3) uint8, the centre pinhole view: in focus everywhere
    scene: LightFieldScene


def light_field_stack(
    scene: LightFieldScene, focus_distances, focal_length: float, pixel_size: float, baseline: float,
    views: int = VIEWS, aperture: str = "square",
) -> CapturedStack:
    """Refocus the n x n light field of `scene` (n = `views`; all of it, or its disc: `aperture_views`) at each
    focus distance s (delta = F b / s, F = f / p). The equivalent f-number is f / ((n - 1) b) either way."""
    focal_px = focal_length / pixel_size
    offsets = aperture_views(views, aperture)
    deltas = [focal_px * baseline / s for s in focus_distances]
    margin = math.ceil((views // 2) * max(deltas)) + 2
    rendered = render_views(scene, focal_px, baseline, margin, offsets)
    images = np.stack([
        np.round(np.clip(refocus(rendered, offsets, delta, margin), 0, 1) * 255).astype(np.uint8) for delta in deltas
    ])
    camera = {"focal_length": focal_length, "f_number": focal_length / ((views - 1) * baseline), "pixel_size": pixel_size}
    centre = rendered[offsets.index((0, 0))][margin:-margin, margin:-margin]
    aif = np.round(np.clip(centre, 0, 1) * 255).astype(np.uint8)
    return CapturedStack(images, tuple(float(s) for s in focus_distances), camera, scene.depth_map(), aif, scene)


def write_captured_scene(folder: Path, stack: CapturedStack, depth: bool = True, aif: bool = False, camera: bool = True) -> Path:
    """A scene folder of `daif.data.captured`'s layout: 00.png ..., stack.json (with the camera when `camera`),
    depth.npy when `depth`, aif.png (the centre view) when `aif`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{k:02d}.png" for k in range(len(stack.images))]
    for name, image in zip(names, stack.images):
        Image.fromarray(image).save(folder / name)
    content = {"images": names, "focus_distances": list(stack.focus_distances)}
    if camera:
        content["camera"] = stack.camera
    (folder / "stack.json").write_text(json.dumps(content, indent=1))
    if depth:
        np.save(folder / "depth.npy", stack.depth)
    if aif:
        Image.fromarray(stack.aif).save(folder / "aif.png")
    return folder
