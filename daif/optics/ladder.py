"""The ladder renderer: Gaussian defocus with no window, for blur of any size the data holds.

The windowed PSF layer (daif.optics.render, method.md) sums over a K x K window, so its blur saturates
near sigma = K / 2. This renderer has no window. With the same Gaussian as method.md (weight
exp(-2 r^2 / sigma^2), i.e. a Gaussian of standard deviation sigma / 2 pixels), it blurs the whole image
at a ladder of sigmas and blends the two rungs around each output pixel's own sigma:

    B_j(x)  = sum_q exp(-2 |q - x|^2 / s_j^2) I(q) / sum_q exp(-2 |q - x|^2 / s_j^2)   (q over the image)
    out(x)  = I(x)                                          if sigma(x) <= 1
    out(x)  = (1 - t) B_j(x) + t B_{j+1}(x)                 if s_j <= sigma(x) <= s_{j+1},
    t       = (sigma(x)^2 - s_j^2) / (s_{j+1}^2 - s_j^2)    (linear in variance),

over rungs s_0 = 1 < s_1 < ... (ratio `LADDER_RATIO`) up to the first rung >= `max_sigma`. At a rung
(sigma(x) = s_j) the output is the direct per-pixel Gaussian sum B_j(x), exactly; between rungs the blend
has the variance of the Gaussian of sigma(x) (a mixture's variance is the weights' mix of its parts').
Each B_j is separable: both axes are filtered by the rung's 1-D kernel, truncated at |q - x| <= 2.5 s_j
(where it is exp(-12.5) = 3.7e-6 of its peak), as a banded matrix product per block of pixels, and the
normaliser is the product of the two 1-D filterings of ones. Sources outside the image are left out, as in
the windowed layer; a constant image stays constant.

Unlike the windowed layer, the blur at x is set by x's own sigma (a gather), not by each source's.
Gradients to the image and to sigma are exact for this formula (torch autograd through the FFTs and the
blend); d out / d sigma is piecewise smooth, with a kink at each rung. Memory: one blurred image per rung.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from daif._checks import check_tensor
from daif.optics.thin_lens import IN_FOCUS_SIGMA

LADDER_RATIO = 2**0.5  # rung spacing in sigma; benchmarks/render.py reports the blend's error between rungs
_TAIL = 2.5  # the zero margin is TAIL * sigma: the kernel there is exp(-2 * 2.5^2) = 3.7e-6 of its peak


def ladder_sigmas(max_sigma: float) -> list[float]:
    """The rungs s_0 = 1, s_j = LADDER_RATIO^j, up to the first one >= max_sigma (at least two rungs)."""
    if not math.isfinite(max_sigma) or max_sigma <= 0:
        raise ValueError(f"max_sigma: expected a positive number of pixels, got {max_sigma!r}")
    rungs = [IN_FOCUS_SIGMA, IN_FOCUS_SIGMA * LADDER_RATIO]
    while rungs[-1] < max_sigma * (1 - 1e-9):
        rungs.append(rungs[-1] * LADDER_RATIO)
    return rungs


def _block_size(radius: int) -> int:
    """Output pixels per block of the banded product: large enough for an efficient matrix product."""
    return max(32, 2 * radius)


@functools.lru_cache(maxsize=128)
def _band_matrix(rung: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    """The 1-D kernel of one rung as a (b + 2r, b) band: M[i, o] = exp(-2 (i - r - o)^2 / s^2) for |i - r - o| <= r,
    r = ceil(TAIL * s). A window of b + 2r inputs times M gives b outputs."""
    radius = math.ceil(_TAIL * rung)
    block = _block_size(radius)
    gap = torch.arange(block + 2 * radius, dtype=torch.float64)[:, None] - radius - torch.arange(block, dtype=torch.float64)[None, :]
    band = torch.where(gap.abs() <= radius, torch.exp(-2.0 * gap**2 / rung**2), 0.0)
    return band.to(dtype=dtype, device=device)


def _filter_axis(values: torch.Tensor, rung: float, dim: int) -> torch.Tensor:
    """sum_q exp(-2 (q - x)^2 / s^2) values[q] along `dim` (-1 or -2) over |q - x| <= r, q inside; same shape.
    One matrix product per block of b outputs: exact, at matrix-multiply speed (a depthwise convolution
    runs an order of magnitude slower on CPU)."""
    band = _band_matrix(rung, values.dtype, str(values.device))
    radius = (band.shape[0] - band.shape[1]) // 2
    block, length = band.shape[1], values.shape[dim]
    blocks = -(-length // block)
    pad = (radius, blocks * block - length + radius)  # zeros: sources outside the image are left out
    if dim == -1:
        windows = F.pad(values, pad).unfold(-1, block + 2 * radius, block).reshape(-1, block + 2 * radius)
        return (windows @ band).reshape(*values.shape[:-1], blocks * block)[..., :length]
    slabs = F.pad(values, (0, 0, *pad)).unfold(-2, block + 2 * radius, block).transpose(-1, -2)  # (..., blocks, b + 2r, W)
    return (band.T @ slabs).reshape(*values.shape[:-2], blocks * block, values.shape[-1])[..., :length, :]


class _AxisBlur(torch.autograd.Function):
    """`_filter_axis` with its adjoint as backward: the operator M[x, q] = exp(-2 (q - x)^2 / s^2) (|q - x| <= r,
    both inside the image) is symmetric, so the gradient is the same filter applied to the output's gradient
    (autograd through the overlapping windows' unfold is an order of magnitude slower)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, rung: float, dim: int) -> torch.Tensor:
        ctx.rung, ctx.dim = rung, dim
        return _filter_axis(values, rung, dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _AxisBlur.apply(grad, ctx.rung, ctx.dim), None, None


def _blur_axis(values: torch.Tensor, rung: float, dim: int) -> torch.Tensor:
    """The rung's 1-D filter along `dim` (-1 or -2), differentiable (`_filter_axis`, `_AxisBlur`)."""
    return _AxisBlur.apply(values, rung, dim)


def _blur_rung(image: torch.Tensor, rung: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One rung: the image filtered along both axes (N, C, H, W), and the same filtering of ones (H, W), the
    normaliser: B = first / second."""
    h, w = image.shape[-2:]
    ones = _blur_axis(image.new_ones(h, 1), rung, -2) * _blur_axis(image.new_ones(1, w), rung, -1)  # (H, W)
    return _blur_axis(_blur_axis(image, rung, -1), rung, -2), ones


def rung_coordinate(sigma: torch.Tensor) -> torch.Tensor:
    """u = j + t for s_j <= sigma <= s_{j+1} (t linear in sigma^2, module docstring); same shape as sigma.

    With s_j = ratio^j: j = floor(log(sigma^2) / log(ratio^2)), t = (sigma^2 / s_j^2 - 1) / (ratio^2 - 1).
    Rung j's blend weight is max(0, 1 - |u - j|). Meaningful where sigma > 1.
    """
    squared = sigma.clamp_min(IN_FOCUS_SIGMA).square()
    step = LADDER_RATIO**2
    index = torch.floor(torch.log(squared) / math.log(step)).detach()
    return index + (squared / step**index - 1.0) / (step - 1.0)


def render_defocus_ladder(image: torch.Tensor, sigma: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """Blur `image` by the per-pixel defocus `sigma` with the ladder renderer (module docstring).

    image: (N, C, H, W) float; sigma: (N, 1, H, W) pixels, same dtype and device. max_sigma: the support [px];
    None: the largest sigma of the call, so no blur is ever clipped; given: ValueError if a sigma exceeds it.
    Returns (N, C, H, W), differentiable w.r.t. image and sigma.
    """
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("sigma", sigma, (image.shape[0], 1, image.shape[2], image.shape[3]))
    largest = float(sigma.detach().max()) if sigma.numel() else 0.0
    if not math.isfinite(largest):
        raise ValueError(f"sigma: expected finite pixels, got a largest value of {largest}")
    if max_sigma is not None and not largest <= max(max_sigma, IN_FOCUS_SIGMA) * (1 + 1e-6):
        raise ValueError(f"sigma: the largest blur {largest:.3g} px exceeds the renderer's support max_sigma = {max_sigma:g} px")
    rungs = ladder_sigmas(max_sigma if max_sigma is not None else max(largest, IN_FOCUS_SIGMA))
    coordinate = rung_coordinate(sigma)
    blended = torch.zeros_like(image)
    for j, rung in enumerate(rungs):
        filtered, normaliser = _blur_rung(image, rung)
        weight = (1.0 - (coordinate - j).abs()).clamp_min(0.0) / normaliser  # (N, 1, H, W): one channel to divide
        blended = blended + weight * filtered
    return torch.where(sigma > IN_FOCUS_SIGMA, blended, image)


def render_ladder_reference(image: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Slow, obviously correct: the direct per-pixel Gaussian sum with each output pixel's own sigma.

    out(x) = sum_q exp(-2 |q - x|^2 / sigma(x)^2) I(q) / sum_q (same weights), q over the whole image; I(x)
    where sigma(x) <= 1. Equals `render_defocus_ladder` wherever sigma(x) is a rung. Shapes as there.
    """
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("sigma", sigma, (image.shape[0], 1, image.shape[2], image.shape[3]))
    n, c, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij")
    squared = ((ys.reshape(-1, 1) - ys.reshape(1, -1)) ** 2 + (xs.reshape(-1, 1) - xs.reshape(1, -1)) ** 2).to(image.device)
    flat_sigma = sigma.reshape(n, h * w, 1).clamp_min(IN_FOCUS_SIGMA)
    weights = torch.exp(-2.0 * squared[None] / flat_sigma**2)  # (N, out pixel, source pixel)
    blurred = torch.einsum("nxq,ncq->ncx", weights, image.reshape(n, c, h * w)) / weights.sum(-1)[:, None]
    return torch.where(sigma > IN_FOCUS_SIGMA, blurred.reshape(n, c, h, w), image)
