"""Focal stacks made without our renderer: an n x n light field of textured planes, refocused by shift-and-add.

An optics model independent of daif.optics (a box or round grid of views, exact per-ray occlusion), for the
real-optics benchmark (benchmarks/lightfield.py) and the tests of captured stacks; `write_captured_scene` stores a
stack in the folder layout `--source focal-stack-folder` reads.

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

`SurfaceScene` generalises the planes to any planes, slanted ones included (a floor or
wall receding in depth), with any coverage. Its light field is not rendered view by view: each refocused pixel x
is the mean over the views of the colour that view's ray through x - (i, j) delta meets first (`cast_rays`:
every plane intersected, composited front to back by depth along that ray), so occlusion is exact per ray
and a plane at the focus distance is sampled once, unblurred. `SCENE_FAMILIES` draws its scenes from a seed.
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


# ---------------------------------------------------------------------------------------------------------------
# Scenes of slanted planes, rendered by casting each view's rays (benchmarks/lightfield.py)

WEAK_CONTRAST = 0.05  # a barely textured region keeps this share of its texture's deviation from its mean colour
SCENE_DEPTH_RANGE = (1.0, 8.0)  # metres: every scene family stays inside it


@dataclasses.dataclass(frozen=True)
class Surface:
    """One plane of a `SurfaceScene`, painted as the centre view sees it.

    inverse_depth (a, b_x, b_y): 1/z = a + b_x x + b_y y [1/m] at the centre view's pixel (x column, y row,
    image coordinates); every plane the camera centre does not lie in is one. texture (Hc, Wc, 3) and
    coverage (Hc, Wc) in [0, 1], weak (Hc, Wc) bool (barely textured), all over the centre view's canvas:
    image pixel (y, x) is canvas pixel (y + pad, x + pad).
    """

    inverse_depth: tuple[float, float, float]
    texture: np.ndarray
    coverage: np.ndarray
    weak: np.ndarray


@dataclasses.dataclass(frozen=True)
class SurfaceScene:
    """Planes in any order (occlusion is decided per ray), over an (H, W) image with a canvas border of `pad` px."""

    name: str
    size: tuple[int, int]
    pad: int
    surfaces: tuple[Surface, ...]

    def inverse_depths(self) -> np.ndarray:
        """(K, H, W) 1/z [1/m] of every surface at the centre view's pixels."""
        rows, cols = np.mgrid[0 : self.size[0], 0 : self.size[1]].astype(np.float64)
        return np.stack([a + b_x * cols + b_y * rows for a, b_x, b_y in (s.inverse_depth for s in self.surfaces)])

    def front(self) -> np.ndarray:
        """(H, W) int64: index of the nearest surface covering each pixel of the centre view."""
        window = (slice(self.pad, self.pad + self.size[0]), slice(self.pad, self.pad + self.size[1]))
        covered = np.stack([s.coverage[window] >= 0.5 for s in self.surfaces])
        inverse = np.where(covered, self.inverse_depths(), -np.inf)
        if not np.isfinite(inverse.max(axis=0)).all():
            raise ValueError(f"scene {self.name!r}: some pixel of the centre view is covered by no surface")
        return inverse.argmax(axis=0)

    def depth_map(self) -> np.ndarray:
        """(H, W) float32 metres: the centre view's depth (z), the nearest covering surface's."""
        return (1.0 / np.take_along_axis(self.inverse_depths(), self.front()[None], 0)[0]).astype(np.float32)

    def weak_map(self) -> np.ndarray:
        """(H, W) bool: pixels of the centre view whose nearest surface is barely textured there."""
        window = (slice(self.pad, self.pad + self.size[0]), slice(self.pad, self.pad + self.size[1]))
        weak = np.stack([s.weak[window] for s in self.surfaces])
        return np.take_along_axis(weak, self.front()[None], 0)[0]


def cast_rays(scene: SurfaceScene, x, y, view_cols, view_rows, focal_baseline: float):
    """Colour (B, H', W', 3) float32 seen by pinhole views (i, j) = (view_cols, view_rows) (B,) at their pixels
    (x, y) (B, H', W') (image coordinates, any real values; all views share the centre view's intrinsics).

    View (i, j) sits at (i b, j b, 0); its ray through pixel (x, y) meets surface (a, b_x, b_y) at
    1/z = (a + b_x x + b_y y) / (1 - F b (b_x i + b_y j)), where the centre view sees it at
    (x + F b i / z, y + F b j / z): the texture and coverage are sampled there (bilinear). Along each ray the
    surfaces are composited front to back with their coverage as alpha (a tie: the earlier surface in front);
    focal_baseline: F b [px m].
    """
    import torch
    import torch.nn.functional as F

    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    view_cols = torch.as_tensor(view_cols, dtype=torch.float32)[:, None, None]
    view_rows = torch.as_tensor(view_rows, dtype=torch.float32)[:, None, None]
    batch, height, width = x.shape
    canvas_height, canvas_width = scene.surfaces[0].coverage.shape
    inverse, sampled = [], []
    for surface in scene.surfaces:
        a, b_x, b_y = surface.inverse_depth
        inverse_z = (a + b_x * x + b_y * y) / (1.0 - focal_baseline * (b_x * view_cols + b_y * view_rows))
        u = x + focal_baseline * view_cols * inverse_z + scene.pad  # canvas column, row
        v = y + focal_baseline * view_rows * inverse_z + scene.pad
        seen = inverse_z > 0
        inside_u, inside_v = torch.where(seen, u, scene.pad), torch.where(seen, v, scene.pad)
        if min(float(inside_u.min()), float(inside_v.min())) < 0 or float(inside_u.max()) > canvas_width - 1 or float(inside_v.max()) > canvas_height - 1:
            raise ValueError(f"scene {scene.name!r}: a ray leaves the canvas; pad {scene.pad} px is too small for this blur")
        planes = np.concatenate([surface.texture, surface.coverage[..., None]], axis=2).transpose(2, 0, 1)
        planes = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[None]  # (1, 4, Hc, Wc)
        grid = torch.stack([u * (2 / (canvas_width - 1)) - 1, v * (2 / (canvas_height - 1)) - 1], dim=-1)  # (B, H', W', 2)
        values = F.grid_sample(planes, grid.reshape(1, batch * height, width, 2), align_corners=True)[0]  # (4, B*H', W')
        values = values.reshape(4, batch, height, width)
        values[3] *= seen  # nothing behind the camera
        inverse.append(inverse_z)
        sampled.append(values)
    order = torch.stack(inverse).argsort(dim=0, descending=True, stable=True)  # (K, B, H', W'): nearest first
    sampled = torch.stack(sampled, dim=1).gather(1, order[None].expand(4, -1, -1, -1, -1))  # (4, K, B, H', W')
    alpha = sampled[3]
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1.0 - alpha[:-1]]), dim=0)
    return (sampled[:3] * (alpha * transmittance)).sum(dim=1).permute(1, 2, 3, 0)


def surface_light_field_stack(
    scene: SurfaceScene, focus_distances, focal_length: float, pixel_size: float, baseline: float,
    views: int = VIEWS, aperture: str = "square", chunk: int = 12,
) -> CapturedStack:
    """`light_field_stack` for a `SurfaceScene`: the same n x n views (or their disc), refocused by shift-and-add
    at delta = F b / s, but each refocused pixel x is the mean of the views' rays through x - (i, j) delta,
    cast directly (`cast_rays`): no intermediate view images, so a surface at the focus distance comes out exactly
    as the centre view sees it. `chunk` (focus distance, view) pairs are cast at once (memory)."""
    import torch

    focal_px = focal_length / pixel_size
    focal_baseline = focal_px * baseline
    offsets = aperture_views(views, aperture)  # (j, i)
    height, width = scene.size
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    pairs = [(delta, j, i) for delta in (focal_baseline / s for s in focus_distances) for j, i in offsets]
    sums = torch.zeros(len(focus_distances), height, width, 3)
    for start in range(0, len(pairs), chunk):
        deltas, view_rows, view_cols = (torch.tensor(v, dtype=torch.float32) for v in zip(*pairs[start : start + chunk]))
        x = cols[None] - (view_cols * deltas)[:, None, None]
        y = rows[None] - (view_rows * deltas)[:, None, None]
        colour = cast_rays(scene, x, y, view_cols, view_rows, focal_baseline)  # (chunk, H, W, 3)
        index = torch.arange(start, start + len(deltas)) // len(offsets)  # the focus distance of each pair
        sums.index_add_(0, index, colour)
    images = (sums / len(offsets)).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    centre = cast_rays(scene, cols[None], rows[None], [0.0], [0.0], focal_baseline)[0]
    aif = centre.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    camera = {"focal_length": focal_length, "f_number": focal_length / ((views - 1) * baseline), "pixel_size": pixel_size}
    return CapturedStack(images, tuple(float(s) for s in focus_distances), camera, scene.depth_map(), aif, scene)


def _canvas_grid(size: tuple[int, int], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(Hc, Wc) rows and columns of the canvas in image coordinates (-pad .. H + pad - 1)."""
    rows, cols = np.mgrid[-pad : size[0] + pad, -pad : size[1] + pad]
    return rows.astype(np.float64), cols.astype(np.float64)


def _rect(size, pad, row0, row1, col0, col1) -> np.ndarray:
    """(Hc, Wc) float coverage of image rows row0..row1 - 1, columns col0..col1 - 1."""
    rows, cols = _canvas_grid(size, pad)
    return ((rows >= row0) & (rows < row1) & (cols >= col0) & (cols < col1)).astype(np.float64)


def _ellipse(size, pad, row, col, radius_rows, radius_cols) -> np.ndarray:
    """(Hc, Wc) float coverage of an axis-aligned ellipse centred at image (row, col)."""
    rows, cols = _canvas_grid(size, pad)
    return ((((rows - row) / radius_rows) ** 2 + ((cols - col) / radius_cols) ** 2) <= 1).astype(np.float64)


def _fronto(depth: float) -> tuple[float, float, float]:
    return (1.0 / depth, 0.0, 0.0)


def _surface(rng, size, pad, inverse_depth, coverage, weak=None) -> Surface:
    """A surface with its own `make_texture`, flattened to WEAK_CONTRAST of its contrast where `weak`."""
    canvas = (size[0] + 2 * pad, size[1] + 2 * pad)
    texture = make_texture(rng, canvas).astype(np.float64)
    weak = np.zeros(canvas, bool) if weak is None else weak
    mean = texture.reshape(-1, 3).mean(axis=0)
    texture = np.where(weak[..., None], mean + WEAK_CONTRAST * (texture - mean), texture)
    return Surface(inverse_depth, texture, coverage, weak)


def planes_scene(seed: int, size: tuple[int, int], pad: int) -> SurfaceScene:
    """benchmarks/lightfield.py's first scene, scaled to `size`: a back plane at 7 m and overlapping cards at 3.2,
    2.0 and 1.2 m (`RECTS` of a 240 x 320 image); the seed draws the textures."""
    rng = np.random.default_rng([0, seed])
    scale_rows, scale_cols = size[0] / 240, size[1] / 320
    rects = (None, (20, 130, 170, 300), (90, 210, 30, 170), (140, 225, 200, 305))
    surfaces = []
    for depth, rect in zip((7.0, 3.2, 2.0, 1.2), rects):
        if rect is None:
            coverage = np.ones((size[0] + 2 * pad, size[1] + 2 * pad))
        else:
            row0, row1, col0, col1 = rect
            coverage = _rect(size, pad, round(row0 * scale_rows), round(row1 * scale_rows), round(col0 * scale_cols), round(col1 * scale_cols))
        surfaces.append(_surface(rng, size, pad, _fronto(depth), coverage))
    return SurfaceScene("planes", size, pad, tuple(surfaces))


def receding_scene(seed: int, size: tuple[int, int], pad: int) -> SurfaceScene:
    """A floor (far at the top) or a wall (far at the left or right) receding from about 1 m to about 8 m over the
    whole image, linear in inverse depth across it; part of it barely textured (one side of a line through
    the bust's head). In front of it, on its far side, a bust (a head and shoulders, fronto-parallel) 1.2..1.5
    times nearer than the nearest of the surface behind its head (a floor may hide the shoulders' lower part:
    a crease, not an edge), and a post, a strip 1.2 times nearer than the
    surface wherever it is shown (so a post over a floor hangs from the top edge)."""
    rng = np.random.default_rng([1, seed])
    height, width = size
    near, far = rng.uniform(1.0, 1.15), rng.uniform(7.0, 8.0)
    slope = 1.0 / near - 1.0 / far
    orientation = rng.choice(["floor", "wall left", "wall right"])
    head_radius = rng.uniform(0.09, 0.13) * height
    if orientation == "floor":  # far at row 0, near at row H - 1
        plane = (1.0 / far, 0.0, slope / (height - 1))
        head_row, head_col = rng.uniform(0.15, 0.35) * height, rng.uniform(0.25, 0.75) * width
    else:  # far at column 0 or W - 1: the bust on the far half
        plane = (1.0 / far, slope / (width - 1), 0.0) if orientation == "wall left" else (1.0 / near, -slope / (width - 1), 0.0)
        head_row, head_col = rng.uniform(0.25, 0.4) * height, rng.uniform(0.15, 0.4) * width
        head_col = head_col if orientation == "wall left" else width - head_col
    rows, cols = _canvas_grid(size, pad)
    background_inverse = plane[0] + plane[1] * cols + plane[2] * rows  # (Hc, Wc) 1/z behind everything
    canvas = (height + 2 * pad, width + 2 * pad)
    angle = rng.uniform(0, 2 * np.pi)
    weak = np.cos(angle) * (cols - head_col) + np.sin(angle) * (rows - head_row) > 0
    background = _surface(rng, size, pad, plane, np.ones(canvas), weak)
    head = _ellipse(size, pad, head_row, head_col, 1.25 * head_radius, head_radius)
    bust = np.maximum(head, _ellipse(size, pad, head_row + 2.6 * head_radius, head_col, 1.5 * head_radius, 2.4 * head_radius))
    behind = 1.0 / background_inverse[head > 0].max()  # the nearest of the surface behind the head
    bust_surface = _surface(rng, size, pad, _fronto(max(SCENE_DEPTH_RANGE[0], behind / rng.uniform(1.2, 1.5))), bust)
    post_depth = rng.uniform(1.2, 2.0)
    far_side = background_inverse * 1.2 * post_depth < 1.0  # where the surface is 1.2 times farther than the post
    post_col = rng.uniform(0.05, 0.95) * width
    while not far_side[pad + height // 2, pad + round(post_col)] and orientation != "floor":
        post_col = rng.uniform(0.05, 0.95) * width
    post_width = rng.uniform(0.04, 0.08) * width
    post = _rect(size, pad, -pad, height + pad, post_col - post_width / 2, post_col + post_width / 2) * far_side
    post_surface = _surface(rng, size, pad, _fronto(post_depth), post)
    return SurfaceScene("receding", size, pad, (background, bust_surface, post_surface))


def occluders_scene(seed: int, size: tuple[int, int], pad: int, count: int = 6) -> SurfaceScene:
    """A textured background (5.5..8 m at either side, linear in inverse depth between) behind `count` occluders at depths log-uniform over
    1..3.5 m: cards, discs and thin bars (2..6 % of the width: narrower than the largest blur)."""
    rng = np.random.default_rng([2, seed])
    height, width = size
    left, right = rng.uniform(5.5, 8.0, size=2)  # the background's depth at the first and the last column
    canvas = (height + 2 * pad, width + 2 * pad)
    plane = (1.0 / left, (1.0 / right - 1.0 / left) / (width - 1), 0.0)
    surfaces = [_surface(rng, size, pad, plane, np.ones(canvas))]
    for shape in rng.permutation(["card", "card", "disc", "disc", "bar", "bar"] * (count // 6 + 1))[:count]:
        row, col = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        if shape == "card":
            half_rows, half_cols = rng.uniform(0.08, 0.2, size=2) * height
            coverage = _rect(size, pad, row - half_rows, row + half_rows, col - half_cols, col + half_cols)
        elif shape == "disc":
            radius = rng.uniform(0.08, 0.18) * height
            coverage = _ellipse(size, pad, row, col, radius, radius)
        else:  # a thin bar, vertical or horizontal, across much of the image
            half = rng.uniform(0.01, 0.03) * width
            length = rng.uniform(0.3, 0.5) * max(height, width)
            if rng.random() < 0.5:
                coverage = _rect(size, pad, row - length, row + length, col - half, col + half)
            else:
                coverage = _rect(size, pad, row - half, row + half, col - length, col + length)
        surfaces.append(_surface(rng, size, pad, _fronto(float(np.exp(rng.uniform(0.0, np.log(3.5))))), coverage))
    return SurfaceScene("occluders", size, pad, tuple(surfaces))


SCENE_FAMILIES = {"planes": planes_scene, "receding": receding_scene, "occluders": occluders_scene}
