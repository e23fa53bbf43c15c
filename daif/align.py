"""Alignment of a focal stack for focus breathing: one scale about the image centre and one shift per image.

A lens that focuses by moving changes its magnification with the focus distance (a phone's image grows by
about 1-4 % from far to near focus), and a hand-held stack also moves a little between shots. Image k is
related to the reference image r by

    x_k = c + s_k (x_r - c) + t_k      pixel centres, c = ((W - 1) / 2, (H - 1) / 2): the optical centre is
                                       taken to be the image centre; no rotation and no perspective

so an object of size L in the reference appears s_k L in image k, displaced by t_k pixels.

Estimation from the images alone (`estimate_alignment`):
1. features: a difference of Gaussians of the grey image (sigmas _BAND px at every level), a linear band-pass.
   Linear on purpose: the cross-correlation of two differently blurred copies of an image is the image's
   autocorrelation convolved with both (symmetric) PSFs, so its peak stays at the true offset whatever the blur;
   a non-linear feature (a gradient magnitude) merges neighbouring edges differently at each blur and moved
   the peak by up to 0.6 px in our trials;
2. every image against an anchor, the middle image in focus order (the smallest blur difference to either
   end): a search at about COARSE_SIDE px on the long side over scales in SCALE_LIMITS, each scale with its best
   shift from an FFT cross-correlation, then (s, t) refined by L-BFGS on the normalised cross-correlation
   (NCC) of the features, coarse to fine up to at most ESTIMATE_SIDE px on the long side (the estimate is
   scaled to the image's size);
3. the reference is the image of the narrowest field of view (the largest s): every other image, scaled into
   its frame, covers it up to a margin of its shift.
A failed alignment is refused (`AlignmentError`, naming the file): a scale outside SCALE_LIMITS or a shift
beyond MAX_SHIFT of the image; a feature NCC with the anchor after alignment below MIN_CORRELATION (not one
scene) or below the NCC before it (the search made it worse); or scales that do not change monotonically with
the focus distance (breathing does), beyond ORDER_TOLERANCE.

Warping (`warp_stack`): each image resampled at x_k (bicubic, torch grid_sample, clamped to [0, 1]); an image
whose transform moves no pixel by more than IDENTITY_PX is passed through unchanged (resampling would only
blur it). Pixels of the reference frame outside `overlap` (the box every image covers) hold the nearest edge
pixel of the images that do not cover them: defined, but not measured. `daif predict` crops to the overlap;
a captured store keeps the frame and marks them invalid (`daif.data.captured`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from daif._checks import check_tensor
from daif.errors import UsageError
from daif.filters import filter_channels, gaussian_taps, to_grey

ALIGN_MODES = ("scale", "none")  # scale: scale + shift per image (module docstring); none: images as given
SCALE_LIMITS = (0.9, 1.1)
MAX_SHIFT = 1 / 8  # of the image's width / height
MIN_CORRELATION = 0.4  # feature NCC at the coarse level: unrelated textures reach 0.16, one scene blurred by 10 px 0.6
ORDER_TOLERANCE = 0.002  # scale: about the estimate's precision
IDENTITY_PX = 0.05  # a transform moving no pixel more than this is the identity
MIN_ALIGN_SIDE = 64  # px: below it a scale is not measured to better than about 1 %
COARSE_SIDE = 128  # px on the long side of the coarse search
ESTIMATE_SIDE = 1024  # px on the long side of the finest level the estimate is refined at
TAPER = 0.15  # of each side: the refinement's weights fall to 0 over it (`_taper`)
_BAND = (1.5, 6.0)  # px at each level: the difference of Gaussians the features keep


class AlignmentError(UsageError):
    """An alignment refused (module docstring); the message names the image file."""


@dataclasses.dataclass(frozen=True)
class ImageAlignment:
    """One image's transform to the reference, x_k = c + scale (x_r - c) + (shift_x, shift_y) [px], and the
    coarse-level feature NCC with the anchor before (identity) and after alignment."""

    scale: float
    shift_x: float
    shift_y: float
    correlation_before: float
    correlation_after: float

    def moves(self, height: int, width: int) -> float:
        """The largest displacement [px] of a pixel of a (height, width) image."""
        corner = math.hypot((width - 1) / 2, (height - 1) / 2)
        return abs(self.scale - 1) * corner + math.hypot(self.shift_x, self.shift_y)


@dataclasses.dataclass(frozen=True)
class StackAlignment:
    """The alignment of a stack of (height, width) images: reference index, one ImageAlignment per image (the
    reference's is the identity), and the overlap (top, left, height, width) that every image covers."""

    reference: int
    images: tuple[ImageAlignment, ...]
    overlap: tuple[int, int, int, int]
    height: int
    width: int

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        top, left, height, width = self.overlap
        return {
            "mode": "scale",
            "reference": str(names[self.reference]),
            "size": [self.height, self.width],
            "overlap": {"top": top, "left": left, "height": height, "width": width},
            "images": [{"image": str(name), "scale": round(a.scale, 6), "shift_x": round(a.shift_x, 3), "shift_y": round(a.shift_y, 3),
                        "correlation_before": round(a.correlation_before, 4), "correlation_after": round(a.correlation_after, 4)}
                       for name, a in zip(names, self.images)],
        }

    def describe(self, names: Sequence[str]) -> list[str]:
        """One line per image, as `daif predict` prints them."""
        top, left, height, width = self.overlap
        lines = [f"align: reference {_name(names[self.reference])} (narrowest field of view); overlap {width}x{height} at "
                 f"({left}, {top}) of {self.width}x{self.height}"]
        for name, a in zip(names, self.images):
            shift_x, shift_y = round(a.shift_x, 2) + 0.0, round(a.shift_y, 2) + 0.0  # + 0.0: no "-0.00"
            lines.append(f"align: {_name(name)}: scale {a.scale:.4f}, shift ({shift_x:+.2f}, {shift_y:+.2f}) px, "
                         f"correlation {a.correlation_before:.3f} -> {a.correlation_after:.3f}")
        return lines


def _name(path: Any) -> str:
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


# ------------------------------------------------------------------ features and warping


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * math.ceil(3 * sigma) + 1
    return filter_channels(images, gaussian_taps(size, sigma, images.dtype, images.device), "replicate")


def breathing_features(grey: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grey -> (N, 1, H, W): a difference of Gaussians of the grey image (module docstring)."""
    return _blur(grey, _BAND[0]) - _blur(grey, _BAND[1])


def _grid(height: int, width: int, scale: torch.Tensor, shift: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """(1, H, W, 2) sampling grid of x_k = c + scale (x_r - c) + shift in grid_sample's normalised coordinates
    (align_corners=False: u = (2 x + 1) / W - 1, so x - c = u W / 2 at every size). shift: (2,) px (x, y)."""
    ux = (2 * torch.arange(width, dtype=dtype) + 1) / width - 1
    uy = (2 * torch.arange(height, dtype=dtype) + 1) / height - 1
    gx = scale * ux[None, :] + 2 * shift[0] / width
    gy = scale * uy[:, None] + 2 * shift[1] / height
    return torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)[None]


def warp_image(image: torch.Tensor, scale: float, shift_x: float, shift_y: float, mode: str = "bicubic") -> torch.Tensor:
    """(C, H, W) image resampled into the reference frame: out(x_r) = image(c + scale (x_r - c) + shift);
    outside the image, its nearest edge pixel."""
    _, height, width = image.shape
    grid = _grid(height, width, torch.tensor(scale, dtype=torch.float64), torch.tensor([shift_x, shift_y], dtype=torch.float64))
    # the grid in the image's dtype: float32 places a sample of a 4000 px image within 1e-4 px
    return F.grid_sample(image[None], grid.to(image.dtype), mode=mode, padding_mode="border", align_corners=False)[0]


def warp_stack(stack: torch.Tensor, alignment: StackAlignment) -> torch.Tensor:
    """(S, C, H, W) in [0, 1] -> (S, C, H, W) in the reference frame (module docstring); an image whose transform
    moves no pixel more than IDENTITY_PX is returned unchanged."""
    check_tensor("stack", stack, (len(alignment.images), "C", alignment.height, alignment.width))
    out = []
    for image, a in zip(stack, alignment.images):
        if a.moves(alignment.height, alignment.width) <= IDENTITY_PX:
            out.append(image)
        else:
            out.append(warp_image(image, a.scale, a.shift_x, a.shift_y).clamp(0.0, 1.0))
    return torch.stack(out)


def overlap_mask(alignment: StackAlignment) -> torch.Tensor:
    """(H, W) bool: True inside the overlap every image covers."""
    top, left, height, width = alignment.overlap
    mask = torch.zeros(alignment.height, alignment.width, dtype=torch.bool)
    mask[top : top + height, left : left + width] = True
    return mask


# ------------------------------------------------------------------ estimation


def _ncc(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Normalised cross-correlation of a and b weighted by `weight` (a mask or window, same shapes)."""
    weight = weight.to(a.dtype)
    count = weight.sum()
    a = a - (a * weight).sum() / count
    b = b - (b * weight).sum() / count
    return (a * b * weight).sum() / torch.sqrt((a * a * weight).sum() * (b * b * weight).sum() + 1e-30)


def _sample(features: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) features read at x = c + scale (x_r - c) + shift (px of this level), bilinear."""
    _, _, height, width = features.shape
    return F.grid_sample(features, _grid(height, width, scale, shift, features.dtype), mode="bilinear",
                         padding_mode="border", align_corners=False)


def _taper(height: int, width: int, dtype) -> torch.Tensor:
    """(1, 1, h, w) weights falling smoothly to 0 over the outer TAPER of each side (a Tukey window): pixels near
    the frame, where one image's blur reaches outside it, count less."""
    def ramp(n: int) -> torch.Tensor:
        edge = torch.minimum(torch.arange(n, dtype=dtype) + 0.5, n - 0.5 - torch.arange(n, dtype=dtype)) / (TAPER * n)
        return torch.sin(0.5 * math.pi * edge.clamp(max=1.0)) ** 2
    return torch.outer(ramp(height), ramp(width))[None, None]


def _inside(height: int, width: int, scale: float, shift: tuple[float, float], margin: float = 1.5) -> torch.Tensor:
    """(1, 1, h, w) bool: reference pixels whose sample under (scale, shift) lies `margin` px inside the image."""
    grid = _grid(height, width, torch.tensor(scale, dtype=torch.float64), torch.tensor(shift, dtype=torch.float64))
    x = (grid[..., 0] + 1) * width / 2 - 0.5
    y = (grid[..., 1] + 1) * height / 2 - 0.5
    return ((x >= margin) & (x <= width - 1 - margin) & (y >= margin) & (y <= height - 1 - margin))[:, None]


def _coarse_search(anchor: torch.Tensor, moving: torch.Tensor) -> tuple[float, float, float]:
    """(scale, shift_x, shift_y) maximising the windowed cross-correlation of two (1, 1, h, w) feature maps,
    scales on a grid over SCALE_LIMITS (0.5 px steps at the long side's end), shifts to MAX_SHIFT by FFT."""
    _, _, height, width = anchor.shape
    window = torch.outer(torch.hann_window(height, periodic=False, dtype=anchor.dtype),
                         torch.hann_window(width, periodic=False, dtype=anchor.dtype))
    a = (anchor[0, 0] - anchor.mean()) * window
    spectrum = torch.fft.rfft2(a, s=(2 * height, 2 * width)).conj()
    reach_y, reach_x = int(height * MAX_SHIFT), int(width * MAX_SHIFT)
    step = 0.5 / (max(height, width) / 2)
    best = (-math.inf, 1.0, 0.0, 0.0)
    for scale in torch.arange(SCALE_LIMITS[0], SCALE_LIMITS[1] + step / 2, step, dtype=torch.float64).tolist():
        sampled = _sample(moving, torch.tensor(scale, dtype=moving.dtype), torch.zeros(2, dtype=moving.dtype))[0, 0]
        b = (sampled - sampled.mean()) * window
        correlation = torch.fft.irfft2(spectrum * torch.fft.rfft2(b, s=(2 * height, 2 * width)), s=(2 * height, 2 * width))
        correlation = torch.roll(correlation, (reach_y, reach_x), dims=(0, 1))[: 2 * reach_y + 1, : 2 * reach_x + 1]
        value = float(correlation.max()) / float(torch.sqrt((a * a).sum() * (b * b).sum()) + 1e-30)
        if value > best[0]:
            row, col = divmod(int(correlation.argmax()), correlation.shape[1])
            dy, dx = row - reach_y, col - reach_x  # b(x + d) matches a(x): moving(c + s (x - c) + s d)
            best = (value, scale, scale * dx, scale * dy)
    return best[1], best[2], best[3]


def _refine(anchor: torch.Tensor, moving: torch.Tensor, scale: float, shift: tuple[float, float], iterations: int) -> tuple[float, float, float]:
    """(scale, shift_x, shift_y) maximising the feature NCC from a start, by L-BFGS over (edge displacement of
    the scale, shift) in pixels of this level; the NCC is taken over the pixels the start keeps inside."""
    _, _, height, width = anchor.shape
    radius = max(height, width) / 2
    mask = _inside(height, width, scale, shift, margin=2.0 + 0.02 * radius) * _taper(height, width, anchor.dtype)
    params = torch.tensor([(scale - 1) * radius, shift[0], shift[1]], dtype=anchor.dtype, requires_grad=True)
    optimiser = torch.optim.LBFGS([params], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        optimiser.zero_grad()
        loss = -_ncc(_sample(moving, 1 + params[0] / radius, params[1:]), anchor, mask)
        loss.backward()
        return loss

    optimiser.step(closure)
    values = params.detach().tolist()
    return 1 + values[0] / radius, values[1], values[2]


def _pyramid(grey: torch.Tensor) -> list[torch.Tensor]:
    """Features of (1, 1, H, W) grey at sizes from about COARSE_SIDE up to min(long side, ESTIMATE_SIDE), coarse first."""
    _, _, height, width = grey.shape
    long_side = max(height, width)
    finest = min(1.0, ESTIMATE_SIDE / long_side)
    levels = max(0, int(math.floor(math.log2(finest * long_side / COARSE_SIDE))))
    pyramid = []
    for level in range(levels, -1, -1):
        factor = finest / 2**level
        size = (max(8, round(height * factor)), max(8, round(width * factor)))
        resized = grey if size == (height, width) else F.interpolate(grey, size=size, mode="area")
        pyramid.append(breathing_features(resized))
    return pyramid


def _to_anchor(anchor: list[torch.Tensor], moving: list[torch.Tensor]) -> tuple[float, float, float, float, float]:
    """(scale, shift_x, shift_y in px of the finest level, NCC before, NCC after at the coarsest level) of one
    image's pyramid `moving` against the anchor's."""
    scale, shift_x, shift_y = _coarse_search(anchor[0], moving[0])
    previous = anchor[0].shape[-1]
    for level, (a, m) in enumerate(zip(anchor, moving)):
        ratio = a.shape[-1] / previous
        previous = a.shape[-1]
        shift_x, shift_y = shift_x * ratio, shift_y * ratio
        scale, shift_x, shift_y = _refine(a, m, scale, (shift_x, shift_y), iterations=40 if level == 0 else 20)
    to_coarse = anchor[0].shape[-1] / anchor[-1].shape[-1]
    height, width = anchor[0].shape[-2:]
    coarse_shift = (shift_x * to_coarse, shift_y * to_coarse)
    aligned = _sample(moving[0], torch.tensor(scale, dtype=moving[0].dtype), torch.tensor(coarse_shift, dtype=moving[0].dtype))
    ncc_after = float(_ncc(aligned, anchor[0], _inside(height, width, scale, coarse_shift)))
    ncc_before = float(_ncc(moving[0], anchor[0], _inside(height, width, 1.0, (0.0, 0.0))))
    return scale, shift_x, shift_y, ncc_before, ncc_after


def estimate_alignment(stack: torch.Tensor, focus_distances: Sequence[float], names: Sequence[Any]) -> StackAlignment:
    """The alignment of a stack (module docstring).

    stack: (S, 3, H, W) in [0, 1], S >= 2, each side at least MIN_ALIGN_SIDE px; focus_distances: S metres;
    names: S file names for the messages. Shifts are in pixels of the (H, W) images. Raises AlignmentError
    naming the file whose alignment failed.
    """
    check_tensor("stack", stack, ("S", 3, "H", "W"))
    count, _, height, width = stack.shape
    if len(focus_distances) != count or len(names) != count:
        raise ValueError(f"focus_distances, names: expected {count} each, got {len(focus_distances)} and {len(names)}")
    if min(height, width) < MIN_ALIGN_SIDE:
        raise ValueError(f"stack: {width}x{height} images are under {MIN_ALIGN_SIDE} px a side, too small to align")
    order = sorted(range(count), key=lambda k: float(focus_distances[k]))
    anchor_index = order[(count - 1) // 2]
    with torch.no_grad():
        pyramids = [_pyramid(to_grey(image[None].double())) for image in stack]
    finest_width = pyramids[0][-1].shape[-1]
    to_image_px = width / finest_width
    scales, shifts, correlations = [1.0] * count, [(0.0, 0.0)] * count, [(1.0, 1.0)] * count
    way_out = "; give --align none to use the images as they are"
    for k in range(count):
        if k == anchor_index:
            continue
        scale, shift_x, shift_y, before, after = _to_anchor(pyramids[anchor_index], pyramids[k])
        scales[k], shifts[k], correlations[k] = scale, (shift_x * to_image_px, shift_y * to_image_px), (before, after)
        problem = _problem(scale, shifts[k], before, after, height, width)
        if problem is None:
            continue
        other = next((j for j in order if j not in (k, anchor_index)), None)  # which of the two is the odd one?
        if other is not None and _problem(*_pair(pyramids[other], pyramids[k], to_image_px), height, width) is None:
            raise AlignmentError(f"{names[anchor_index]}: alignment refused: {_name(names[k])} does not match it ({problem}) but "
                                 f"matches {_name(names[other])}{way_out}")
        raise AlignmentError(f"{names[k]}: alignment to {_name(names[anchor_index])} refused: {problem}{way_out}")
    _check_order([names[k] for k in order], [scales[k] for k in order])

    reference = max(range(count), key=lambda k: scales[k])
    ref_scale, (ref_x, ref_y) = scales[reference], shifts[reference]
    images = []
    for k in range(count):  # x_k = c + s_k (x_a - c) + t_k and x_a = c + (x_r - c - t_r) / s_r
        relative = scales[k] / ref_scale
        images.append(ImageAlignment(relative, shifts[k][0] - relative * ref_x, shifts[k][1] - relative * ref_y, *correlations[k]))
    images[reference] = ImageAlignment(1.0, 0.0, 0.0, *correlations[reference])
    return StackAlignment(reference, tuple(images), _overlap(images, height, width), height, width)


def _pair(anchor: list[torch.Tensor], moving: list[torch.Tensor], to_image_px: float) -> tuple:
    """(scale, (shift_x, shift_y) in image px, NCC before, NCC after) of one image against another."""
    scale, shift_x, shift_y, before, after = _to_anchor(anchor, moving)
    return scale, (shift_x * to_image_px, shift_y * to_image_px), before, after


def _problem(scale: float, shift: tuple[float, float], before: float, after: float, height: int, width: int) -> str | None:
    """Why an estimated alignment is refused (module docstring), or None."""
    low, high = SCALE_LIMITS
    if not low <= scale <= high:
        return f"estimated scale {scale:.4f} is outside [{low:g}, {high:g}] (focus breathing changes the scale by a few per cent)"
    if abs(shift[0]) > MAX_SHIFT * width or abs(shift[1]) > MAX_SHIFT * height:
        return f"estimated shift ({shift[0]:+.1f}, {shift[1]:+.1f}) px is beyond {MAX_SHIFT:g} of the image"
    if after < MIN_CORRELATION:
        return f"the images correlate {after:.2f} after alignment (at least {MIN_CORRELATION:g} is expected of one scene)"
    if after < before - 1e-3:  # the identity is among the candidates: worse means the search failed
        return f"the correlation falls from {before:.3f} to {after:.3f}"
    return None


def _check_order(names: list, scales: list[float]) -> None:
    """Scales in focus order must be monotonic (either way) within ORDER_TOLERANCE; names the first image breaking it."""
    steps = [b - a for a, b in zip(scales, scales[1:])]
    direction = 1.0 if sum(steps) >= 0 else -1.0
    for k, step in enumerate(steps, start=1):
        if step * direction < -ORDER_TOLERANCE:
            raise AlignmentError(
                f"{names[k]}: alignment refused: its estimated scale {scales[k]:.4f} breaks the focus order (scales "
                f"{', '.join(f'{s:.4f}' for s in scales)} from near to far focus; focus breathing changes them "
                "monotonically); give --align none to use the images as they are")


def _overlap(images: Sequence[ImageAlignment], height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the reference pixels whose samples lie within every image (pixel centres)."""
    left, top, right, bottom = 0, 0, width - 1, height - 1
    for a in images:  # x_k in [0, W - 1] <=> x_r in [c + (0 - c - t) / s, c + (W - 1 - c - t) / s]
        cx, cy = (width - 1) / 2, (height - 1) / 2
        left = max(left, math.ceil(cx + (-cx - a.shift_x) / a.scale - 1e-6))
        right = min(right, math.floor(cx + (cx - a.shift_x) / a.scale + 1e-6))
        top = max(top, math.ceil(cy + (-cy - a.shift_y) / a.scale - 1e-6))
        bottom = min(bottom, math.floor(cy + (cy - a.shift_y) / a.scale + 1e-6))
    return top, left, max(0, bottom - top + 1), max(0, right - left + 1)


def align_stack(stack: torch.Tensor, focus_distances: Sequence[float], names: Sequence[Any]) -> tuple[torch.Tensor, StackAlignment]:
    """`estimate_alignment` then `warp_stack`: ((S, 3, H, W) in the reference frame, the alignment)."""
    alignment = estimate_alignment(stack, focus_distances, names)
    return warp_stack(stack, alignment), alignment
