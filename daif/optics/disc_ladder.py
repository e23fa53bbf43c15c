"""The disc ladder: differentiable defocus through a round aperture (a uniform disc PSF), no window.

The disc of radius R px is daif.optics.psf's: over integer pixel offsets o,
    D_R(o) = a_R(o) / sum_o' a_R(o'),      a_R(o) = clamp(R + 1/2 - |o|, 0, 1),
whose second moment (R^2 / 4 per axis) is that of method.md's Gaussian exp(-2 |o|^2 / sigma^2) at sigma = R: the
defocus b = c / (2 p) of daif.optics.thin_lens is the disc's radius. Like the Gaussian ladder
(daif.optics.ladder), it blurs the whole image at a ladder of radii and blends the two rungs around each output
pixel's own sigma (a gather: the blur at x is set by x's sigma):

    B_j(x)  = sum_q D_{R_j}(x - q) I(q) / sum_q D_{R_j}(x - q)          (q over the image)
    out(x)  = I(x)                                          if sigma(x) <= 1/2
    out(x)  = (1 - t) B_j(x) + t B_{j+1}(x)                 if R_j <= sigma(x) <= R_{j+1},
    t       = (sigma(x)^2 - R_j^2) / (R_{j+1}^2 - R_j^2)    (linear in R^2, the variance's measure),

over rungs R_j = 1/2 + j * `DISC_RUNG_STEP` up to the first rung >= the call's largest sigma. D_{1/2} is the
identity (a_{1/2}(o) = 0 for o != 0), so the output is continuous in sigma: a disc of radius <= 1/2 px is a sharp
pixel, as in daif.optics.psf (the Gaussian's pass-through is sigma <= 1, method.md's). A disc's shape changes with
its radius faster than a Gaussian's, so the rungs are spaced evenly in radius (0.5 px), not geometrically: at a
rung the output is the direct per-pixel disc sum B_j(x); between rungs a mix of two discs half a pixel apart.
Sources outside the image are left out (the normalisation); a constant image stays constant.

Each B_j is one FFT product: the image's spectrum (taken once, zero-padded to a period >= H + reach) times the
disc's. Gradients to the image and to sigma are exact for this formula (autograd through the FFTs and the blend;
d out / d sigma has a kink at each rung). Each rung is computed for the images with a pixel on it only; memory:
one blurred image per (image, rung) used. Pure torch: any device.
"""

from __future__ import annotations

import math

import torch

from daif._checks import check_tensor

SHARP_RADIUS = 0.5  # px: a disc of this radius or less covers one pixel only (the first rung, the identity)
DISC_RUNG_STEP = 0.5  # px between the rungs' radii; benchmarks/render.py reports the blend's difference from the exact disc


def fast_length(size: int) -> int:
    """The smallest n >= size whose only prime factors are 2, 3 and 5 (a fast FFT length)."""
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


def periodic_offsets(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The signed offsets 0, 1, ..., -2, -1 of a periodic grid of `size` points. (size,)."""
    index = torch.arange(size, dtype=dtype, device=device)
    return torch.where(index <= size // 2, index, index - size)


def disc_spectra(radius: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """rfft2 of the normalised discs D_R (module docstring) of radii `radius` (J,) px, centred at (0, 0) of a
    periodic grid of `shape`. (J, h, w // 2 + 1)."""
    offset_y = periodic_offsets(shape[0], radius.dtype, radius.device)[:, None]
    offset_x = periodic_offsets(shape[1], radius.dtype, radius.device)[None, :]
    weights = (radius[:, None, None] + 0.5 - (offset_y**2 + offset_x**2).sqrt()).clamp(0.0, 1.0)
    return torch.fft.rfft2(weights / weights.sum(dim=(-2, -1), keepdim=True))


def disc_rungs(largest_sigma: float, step: float = DISC_RUNG_STEP) -> list[float]:
    """The rung radii 1/2, 1/2 + step, ... up to the first >= largest_sigma (at least two). px."""
    count = max(2, math.ceil((largest_sigma - SHARP_RADIUS) / step - 1e-9) + 1)
    return [SHARP_RADIUS + j * step for j in range(count)]


def render_defocus_disc(image: torch.Tensor, sigma: torch.Tensor, step: float = DISC_RUNG_STEP) -> torch.Tensor:
    """Blur `image` by the per-pixel disc radius `sigma` through the disc ladder (module docstring).

    image: (N, C, H, W) float32/float64; sigma: (N, 1, H, W) px (method.md's sigma = the disc's radius), same
    dtype and device; step: px between rung radii. Returns (N, C, H, W), differentiable in image and sigma.
    """
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("sigma", sigma, (image.shape[0], 1, image.shape[2], image.shape[3]))
    if not step > 0:
        raise ValueError(f"step: expected a positive rung spacing in px, got {step!r}")
    blurred = sigma > SHARP_RADIUS
    if not bool(blurred.any()):
        return image * 1.0
    radii = disc_rungs(float(sigma.detach().max()), step)
    rungs = torch.tensor(radii, dtype=image.dtype, device=image.device)
    height, width = image.shape[-2:]
    reach = math.ceil(radii[-1] + 0.5)  # D_R(o) = 0 for |o| >= R + 1/2
    shape = (fast_length(height + reach), fast_length(width + reach))  # wrapped sources land in the zero padding
    kernels = disc_spectra(rungs, shape)  # (J, ., .)
    frame = (..., slice(0, height), slice(0, width))
    inside = torch.ones(1, 1, height, width, dtype=image.dtype, device=image.device)
    coverage = torch.fft.irfft2(torch.fft.rfft2(inside, s=shape) * kernels[:, None], s=shape)[frame]  # (J, 1, H, W)
    spectrum = torch.fft.rfft2(image, s=shape)
    # the rung below each pixel's sigma and the blend weight t towards the rung above
    lower = torch.clamp(torch.floor((sigma.detach() - SHARP_RADIUS) / step), 0, len(radii) - 2).long()
    low, high = rungs[lower], rungs[lower + 1]
    t = ((sigma.square() - low.square()) / (high.square() - low.square())).clamp(0.0, 1.0)
    out = torch.where(blurred, 0.0, image)
    for j in range(len(radii)):
        below, above = blurred & (lower == j), blurred & (lower == j - 1)  # pixels blending rung j from above / below it
        users = (below | above).flatten(1).any(1).nonzero()[:, 0]  # the images with a pixel on rung j
        if len(users) == 0:
            continue
        weight = torch.where(below[users], 1.0 - t[users], 0.0) + torch.where(above[users], t[users], 0.0)
        rung = torch.fft.irfft2(spectrum[users] * kernels[j], s=shape)[frame] / coverage[j]
        out = out.index_add(0, users, weight * rung)
    return out
