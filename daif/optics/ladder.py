"""The ladder renderer: Gaussian defocus with no window, for blur of any size the data holds.

The windowed PSF layer (daif.optics.render, method.md) sums over a K x K window, so its blur saturates
near sigma = K / 2. This renderer has no window. With the same Gaussian as method.md (weight
g_s(d) = exp(-2 d^2 / s^2), i.e. a Gaussian of standard deviation s / 2 pixels), it blurs the whole image
at a ladder of sigmas and blends the two rungs around each output pixel's own sigma:

    B_j(x)  = sum_q g_{s_j}(q - x) I(q) / sum_q g_{s_j}(q - x)          (q over the image)
    out(x)  = I(x)                                          if sigma(x) <= 1
    out(x)  = (1 - t) B_j(x) + t B_{j+1}(x)                 if s_j <= sigma(x) <= s_{j+1},
    t       = (sigma(x)^2 - s_j^2) / (s_{j+1}^2 - s_j^2)    (linear in variance),

over rungs s_0 = 1 < s_1 < ... (ratio `LADDER_RATIO`, s_j = 2^(j/2)) up to the first rung >= the call's largest
sigma. At a rung (sigma(x) = s_j) the output is the direct per-pixel Gaussian sum B_j(x); between rungs the
blend has the variance of the Gaussian of sigma(x) (a mixture's variance is the weights' mix of its parts').
Sources outside the image are left out; a constant image stays constant.

Each rung is separable: B_j = (M_y I M_x^T) / (M_y 1 (M_x 1)^T), with one 1-D operator M per axis.
  - Direct rungs (s < 2 COARSE_FROM = 7.2 px): M[x, q] = g_s(q - x) for |q - x| <= ceil(2.5 s) (exp(-12.5) =
    3.7e-6 of the peak).
  - Larger rungs pass through a coarse grid p_k = k D, D = floor(s / COARSE_FROM) >= 2: M = A^T A with
    A[k, q] = g_a(p_k - q), a = s / sqrt(2), |p_k - q| <= ceil(3 a). By Poisson summation over k,
    M[x, q] = sum_k g_a(x - p_k) g_a(p_k - q) = c g_s(x - q) (1 + e) with |e| <= 2 exp(-2 pi^2 (s / 4D)^2):
    2.3e-7 at the bound s / 4D >= 0.9, 5e-8 on the rungs (s / 4D = 1 or 0.94). Splitting s into two equal
    halves a makes s / 4D, hence the accuracy at a given D, largest. The taps per pixel stop growing with s
    (about 2 ceil(3 a) / D per axis).
Both forms are within 1e-6 of the direct per-pixel sum at a rung (`render_ladder_reference`).

Unlike the windowed layer, the blur at x is set by x's own sigma (a gather), not by each source's.
Gradients to the image and to sigma are exact for this formula: every M is symmetric, so the image's
gradient applies the same operators to the weighted output gradient; d out / d sigma is piecewise smooth,
with a kink at each rung. Two backends compute it: fused numba kernels on CPU (daif.optics._ladder_kernels;
memory: the output, d out / dt and each coarse rung's coarse rows), and dense products with the (H, H) and
(W, W) matrices M in torch on other devices (memory: one blurred image per rung).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from daif._checks import check_tensor
from daif.optics.thin_lens import IN_FOCUS_SIGMA

LADDER_RATIO = 2**0.5  # rung spacing in sigma (s_j^2 = 2^j; the CPU kernels rely on it); benchmarks/render.py reports the blend's error
COARSE_FROM = 3.6  # a rung s uses a coarse grid of spacing floor(s / 3.6) when that is >= 2: s / 4D >= 0.9, |e| <= 2.3e-7
_TAIL = 2.5  # direct rungs end at 2.5 s: exp(-2 * 2.5^2) = 3.7e-6 of the peak
_COARSE_TAIL = 3.0  # coarse rungs: each factor ends at 3 a; the pair's truncation error is below exp(-18) = 1.5e-8


def ladder_sigmas(max_sigma: float) -> list[float]:
    """The rungs s_0 = 1, s_j = LADDER_RATIO^j, up to the first one >= max_sigma (at least two rungs)."""
    if not math.isfinite(max_sigma) or max_sigma <= 0:
        raise ValueError(f"max_sigma: expected a positive number of pixels, got {max_sigma!r}")
    rungs = [IN_FOCUS_SIGMA, IN_FOCUS_SIGMA * LADDER_RATIO]
    while rungs[-1] < max_sigma * (1 - 1e-9):
        rungs.append(rungs[-1] * LADDER_RATIO)
    return rungs


def rung_spacing(rung: float) -> int:
    """D, the coarse grid's spacing [px] for a rung s: floor(s / COARSE_FROM), or 1 (no coarse grid) below 2."""
    return max(1, int(rung / COARSE_FROM))


@dataclass(frozen=True)
class Band:
    """A banded 1-D operator: out[o] = sum_t taps[o, t] in[start[o] + t], o < len(start), over `n_in` inputs.

    start: (n_out,) int64, with start[o] + T <= n_in; taps: (n_out, T) float64 (zero outside the band).
    """

    start: np.ndarray
    taps: np.ndarray
    n_in: int

    def apply(self, values: np.ndarray) -> np.ndarray:
        """The operator applied to a vector of n_in values: (n_out,)."""
        return (self.taps * values[self.start[:, None] + np.arange(self.taps.shape[1])]).sum(axis=1)

    def dense(self) -> np.ndarray:
        """The (n_out, n_in) matrix."""
        matrix = np.zeros((self.start.size, self.n_in))
        rows = np.arange(self.start.size)[:, None]
        np.add.at(matrix, (rows, self.start[:, None] + np.arange(self.taps.shape[1])), self.taps)
        return matrix


def _gaussian_band(out_positions: np.ndarray, in_first: float, in_step: int, n_in: int, rung: float, radius: int) -> Band:
    """Band[o, i] = g_rung(out_positions[o] - (in_first + i in_step)) where that distance is <= radius, else 0."""
    low = np.clip(np.ceil((out_positions - radius - in_first) / in_step), 0, n_in - 1).astype(np.int64)
    high = np.clip(np.floor((out_positions + radius - in_first) / in_step), 0, n_in - 1).astype(np.int64)
    width = min(int((high - low).max()) + 1, n_in)
    start = np.clip(low, 0, n_in - width)
    offsets = out_positions[:, None] - (in_first + (start[:, None] + np.arange(width)) * in_step)
    taps = np.where(np.abs(offsets) <= radius, np.exp(-2.0 * offsets**2 / rung**2), 0.0)
    return Band(start, taps, n_in)


@dataclass(frozen=True)
class AxisOperator:
    """One rung's 1-D operator M along an axis of `length` pixels (module docstring), as the bands applied in
    order: (M,) for a direct rung, (A, A^T) through the coarse grid. kernel: a direct rung's taps g_s(k),
    k = -r..r (its interior rows, for the CPU kernels' fixed-kernel path); None for a coarse rung."""

    bands: tuple[Band, ...]
    kernel: np.ndarray | None

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        """M, (length, length) float64."""
        matrix = self.bands[0].dense()
        for band in self.bands[1:]:
            matrix = band.dense() @ matrix
        return matrix

    @functools.cached_property
    def normaliser(self) -> np.ndarray:
        """M 1, (length,): the weight sum of each output pixel over the sources inside the image."""
        values = np.ones(self.bands[0].n_in)
        for band in self.bands:
            values = band.apply(values)
        return values


@functools.lru_cache(maxsize=256)
def axis_operator(length: int, rung: float) -> AxisOperator:
    """The rung's operator along an axis of `length` pixels (cached: built once per size and rung)."""
    pixels = np.arange(length, dtype=np.float64)
    spacing = rung_spacing(rung)
    if spacing == 1:
        radius = math.ceil(_TAIL * rung - 1e-9)  # rungs are products of sqrt(2): 2.5 * 2.0000000000000004 is 5
        kernel = np.exp(-2.0 * np.arange(-radius, radius + 1) ** 2 / rung**2)
        return AxisOperator((_gaussian_band(pixels, 0.0, 1, length, rung, radius),), kernel)
    half = rung / LADDER_RATIO  # a = s / sqrt(2): two passes of g_a make g_s
    radius = math.ceil(_COARSE_TAIL * half)
    first, last = -(radius // spacing), (length - 1 + radius) // spacing  # every coarse point within reach of a pixel
    coarse = np.arange(first, last + 1, dtype=np.float64) * spacing
    to_coarse = _gaussian_band(coarse, 0.0, 1, length, half, radius)
    from_coarse = _gaussian_band(pixels, first * spacing, spacing, coarse.size, half, radius)
    return AxisOperator((to_coarse, from_coarse), None)


def rung_coordinate(sigma: torch.Tensor) -> torch.Tensor:
    """u = j + t for s_j <= sigma <= s_{j+1} (t linear in sigma^2, module docstring); same shape as sigma.

    With s_j = ratio^j: j = floor(log(sigma^2) / log(ratio^2)), t = (sigma^2 / s_j^2 - 1) / (ratio^2 - 1).
    Rung j's blend weight is max(0, 1 - |u - j|). Meaningful where sigma > 1.
    """
    squared = sigma.clamp_min(IN_FOCUS_SIGMA).square()
    step = LADDER_RATIO**2
    index = torch.floor(torch.log(squared) / math.log(step)).detach()
    return index + (squared / step**index - 1.0) / (step - 1.0)


@functools.lru_cache(maxsize=64)
def _dense_operators(height: int, width: int, rung: float, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(M_y (H, H), M_x (W, W), normaliser (H, W)) of a rung on `device` (cached: copied there once)."""
    rows, cols = axis_operator(height, rung), axis_operator(width, rung)
    return tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in (rows.matrix, cols.matrix, np.outer(rows.normaliser, cols.normaliser)))


def _render_dense(image: torch.Tensor, coordinate: torch.Tensor, rungs: list[float]) -> torch.Tensor:
    """The blend of the rungs with each M as a dense matrix product (any device; autograd). coordinate: (N, 1, H, W)."""
    h, w = image.shape[-2:]
    blended = torch.zeros_like(image)
    for j, rung in enumerate(rungs):
        along_y, along_x, normaliser = _dense_operators(h, w, rung, image.dtype, image.device)
        weight = (1.0 - (coordinate - j).abs()).clamp_min(0.0) / normaliser  # (N, 1, H, W): one channel to divide
        blended = blended + weight * (along_y @ image @ along_x.T)
    return blended


class _RenderLadderCPU(torch.autograd.Function):
    """The ladder with the fused CPU kernels (daif.optics._ladder_kernels)."""

    @staticmethod
    def forward(ctx, image: torch.Tensor, sigma: torch.Tensor, rungs: tuple[float, ...]) -> torch.Tensor:
        from daif.optics import _ladder_kernels

        out, diff, low, share = _ladder_kernels.ladder_forward(image, sigma, rungs)
        ctx.save_for_backward(sigma, diff, low, share)
        ctx.rungs = rungs
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        from daif.optics import _ladder_kernels

        grad_image, grad_sigma = _ladder_kernels.ladder_backward(*ctx.saved_tensors, ctx.rungs, grad_out)
        return grad_image, grad_sigma, None


def render_defocus_ladder(image: torch.Tensor, sigma: torch.Tensor, max_sigma: float | None = None) -> torch.Tensor:
    """Blur `image` by the per-pixel defocus `sigma` with the ladder renderer (module docstring).

    image: (N, C, H, W) float; sigma: (N, 1, H, W) pixels, same dtype and device. max_sigma: the support [px]
    the caller promises, checked (ValueError if a sigma exceeds it); None: no check. The rungs always reach the
    call's largest sigma, so no blur is clipped. Returns (N, C, H, W), differentiable w.r.t. image and sigma.
    """
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("sigma", sigma, (image.shape[0], 1, image.shape[2], image.shape[3]))
    largest = float(sigma.detach().max()) if sigma.numel() else 0.0
    if not math.isfinite(largest):
        raise ValueError(f"sigma: expected finite pixels, got a largest value of {largest}")
    if max_sigma is not None and not (math.isfinite(max_sigma) and max_sigma > 0):
        raise ValueError(f"max_sigma: expected a positive number of pixels, got {max_sigma!r}")
    if max_sigma is not None and not largest <= max(max_sigma, IN_FOCUS_SIGMA) * (1 + 1e-6):
        raise ValueError(f"sigma: the largest blur {largest:.3g} px exceeds the renderer's support max_sigma = {max_sigma:g} px")
    rungs = ladder_sigmas(max(largest, IN_FOCUS_SIGMA))  # rungs above the largest sigma would carry no weight
    if image.device.type == "cpu":
        return _RenderLadderCPU.apply(image, sigma, tuple(rungs))
    return torch.where(sigma > IN_FOCUS_SIGMA, _render_dense(image, rung_coordinate(sigma), rungs), image)


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
