"""Fused CPU kernels of the ladder renderer (numba), same formulas as daif.optics.ladder.

Forward: each coarse rung first reduces the image to its coarse rows A_y I A_x^T A_x (P, K_y, W), in banded
row passes and two transposes. One fused kernel then takes each output row y of each image: it computes,
for every rung that a pixel of the row needs, the row (M_y I M_x^T)[y] (a direct rung from the image's rows, a
coarse rung from its coarse rows), blends the two rungs around each pixel's sigma, and writes the output and
the difference of the two normalised rungs (d out / d t, kept for the backward pass). No rung is stored
whole, and rungs that no pixel of a row uses are skipped.

Backward: d loss / d sigma = du/dsigma sum_c grad (B_{j+1} - B_j); the image's gradient applies each used
rung's symmetric operator to the gradient weighted by that rung's blend weight over its normaliser.
All loops over a row are contiguous (LLVM vectorises them); taps are applied eight per sweep.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
import torch
from numba import prange

from daif.optics._cpu_kernels import compile_variants, for_thread_budget
from daif.optics.thin_lens import IN_FOCUS_SIGMA  # a compile-time constant of the kernels

_ROWS_PER_JOB = 8  # output rows per parallel job: the row buffers are allocated once per job


def _accumulate_rows(target, rows, first, weights):
    """target[x] += sum_t weights[t] rows[first + t, x], eight taps per sweep (fewer loads and stores per FMA)."""
    width = target.size
    n_taps = weights.size
    t = 0
    while t + 8 <= n_taps:
        w0, w1, w2, w3 = weights[t], weights[t + 1], weights[t + 2], weights[t + 3]
        w4, w5, w6, w7 = weights[t + 4], weights[t + 5], weights[t + 6], weights[t + 7]
        r0, r1, r2, r3 = rows[first + t], rows[first + t + 1], rows[first + t + 2], rows[first + t + 3]
        r4, r5, r6, r7 = rows[first + t + 4], rows[first + t + 5], rows[first + t + 6], rows[first + t + 7]
        for x in range(width):
            target[x] += (w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x]) + (w4 * r4[x] + w5 * r5[x] + w6 * r6[x] + w7 * r7[x])
        t += 8
    while t < n_taps:
        w0 = weights[t]
        r0 = rows[first + t]
        for x in range(width):
            target[x] += w0 * r0[x]
        t += 1


def _correlate_row(target, padded, kernel):
    """target[x] += sum_t kernel[t] padded[x + t], eight taps per sweep."""
    width = target.size
    n_taps = kernel.size
    t = 0
    while t + 8 <= n_taps:
        w0, w1, w2, w3 = kernel[t], kernel[t + 1], kernel[t + 2], kernel[t + 3]
        w4, w5, w6, w7 = kernel[t + 4], kernel[t + 5], kernel[t + 6], kernel[t + 7]
        r0, r1 = padded[t : t + width], padded[t + 1 : t + 1 + width]  # slices of the output's length: LLVM vectorises
        r2, r3 = padded[t + 2 : t + 2 + width], padded[t + 3 : t + 3 + width]
        r4, r5 = padded[t + 4 : t + 4 + width], padded[t + 5 : t + 5 + width]
        r6, r7 = padded[t + 6 : t + 6 + width], padded[t + 7 : t + 7 + width]
        for x in range(width):
            target[x] += (w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x]) + (w4 * r4[x] + w5 * r5[x] + w6 * r6[x] + w7 * r7[x])
        t += 8
    while t < n_taps:
        w0 = kernel[t]
        r0 = padded[t : t + width]
        for x in range(width):
            target[x] += w0 * r0[x]
        t += 1


def _direct_row(target, padded, rows, first, weights, kernel):
    """target[x] += (M_x (M_y rows))[x] of one output row: the column band (first, weights) into the middle of the
    zero-margined `padded` (its first width + 2m entries), then the row kernel (2m + 1 taps)."""
    width = target.size
    margin = kernel.size // 2
    for i in range(width + 2 * margin):
        padded[i] = 0.0
    _accumulate_rows(padded[margin : margin + width], rows, first, weights)
    _correlate_row(target, padded[: width + 2 * margin], kernel)


def _rows_op(source, start, taps, out, accumulate):
    """out[p, o] (+)= sum_t taps[o, t] source[p, start[o] + t]: a banded operator along axis 1 (ladder.Band)."""
    n_planes = source.shape[0]
    n_out = start.size
    for job in prange(n_planes * n_out):
        plane = job // n_out
        o = job % n_out
        target = out[plane, o]
        if not accumulate:
            target[:] = 0.0
        _accumulate_rows(target, source[plane], start[o], taps[o])


def _direct_rung(source, start, taps, kernel, out):
    """out[p] += M_y source[p] M_x^T for a direct rung (both axes' band: (start, taps) along y, kernel along x)."""
    n_planes, height, width = out.shape
    blocks = (height + _ROWS_PER_JOB - 1) // _ROWS_PER_JOB
    for job in prange(n_planes * blocks):
        plane = job // blocks
        padded = np.empty(width + kernel.size - 1, dtype=out.dtype)
        first_row = (job % blocks) * _ROWS_PER_JOB
        for y in range(first_row, min(first_row + _ROWS_PER_JOB, height)):
            _direct_row(out[plane, y], padded, source[plane], start[y], taps[y], kernel)


def _ladder_rows(
    image, sigma, direct_start, direct_taps, direct_count, direct_kernels, direct_size,
    coarse_rows, coarse_start, coarse_taps, coarse_count, norm_y, norm_x, out, diff, low, share,
):  # fmt: skip
    """out = B_j + t (B_{j+1} - B_j) and diff = B_{j+1} - B_j per pixel (the image and 0 where sigma <= 1), with
    B_j = (M_y I M_x^T)_j / (norm_y[j] norm_x[j]) computed row by row (module docstring), and the blend positions
    low = j (-1 in focus), share = t. On the rungs s_j = 2^(j/2), with sigma^2 = m 2^e (m in [0.5, 1)):
    u = e - 2 + 2m, j = min(e - 1, R - 2), t = u - j.
    Rungs 0..Rd-1 are direct (bands direct_start/taps[:count] along y, direct_kernels[:size] along x), the rest
    coarse (their coarse rows and the bands coarse_start/taps[:count] back to the pixels along y)."""
    n_images, channels, height, width = image.shape
    n_direct = direct_start.shape[0]
    n_rungs = norm_y.shape[0]
    blocks = (height + _ROWS_PER_JOB - 1) // _ROWS_PER_JOB
    for job in prange(n_images * blocks):
        n = job // blocks
        rungs = np.empty((n_rungs, width), dtype=out.dtype)
        padded = np.empty(width + direct_kernels.shape[1] - 1, dtype=out.dtype)
        needed = np.zeros(n_rungs, dtype=np.bool_)
        inv_low = np.empty(width, dtype=out.dtype)
        inv_high = np.empty(width, dtype=out.dtype)
        first_row = (job % blocks) * _ROWS_PER_JOB
        for y in range(first_row, min(first_row + _ROWS_PER_JOB, height)):
            needed[:] = False
            for x in range(width):
                value = np.float64(sigma[n, 0, y, x])
                j = -1
                if value > IN_FOCUS_SIGMA:
                    mantissa, exponent = math.frexp(value * value)
                    j = min(exponent - 1, n_rungs - 2)
                    share[n, 0, y, x] = exponent - 2 + 2.0 * mantissa - j
                low[n, 0, y, x] = j
                if j >= 0:
                    needed[j] = True
                    needed[j + 1] = True
                    inv_low[x] = 1.0 / (norm_y[j, y] * norm_x[j, x])
                    inv_high[x] = 1.0 / (norm_y[j + 1, y] * norm_x[j + 1, x])
            for c in range(channels):
                for j in range(n_rungs):
                    if not needed[j]:
                        continue
                    rungs[j, :] = 0.0
                    if j < n_direct:
                        weights = direct_taps[j, y, : direct_count[j]]
                        kernel = direct_kernels[j, : direct_size[j]]
                        _direct_row(rungs[j], padded, image[n, c], direct_start[j, y], weights, kernel)
                    else:
                        k = j - n_direct
                        weights = coarse_taps[k, y, : coarse_count[k]]
                        _accumulate_rows(rungs[j], coarse_rows[k, n * channels + c], coarse_start[k, y], weights)
                for x in range(width):
                    j = low[n, 0, y, x]
                    if j < 0:
                        out[n, c, y, x] = image[n, c, y, x]
                        diff[n, c, y, x] = 0.0
                    else:
                        below = rungs[j, x] * inv_low[x]
                        step = rungs[j + 1, x] * inv_high[x] - below
                        out[n, c, y, x] = below + share[n, 0, y, x] * step
                        diff[n, c, y, x] = step


def _grad_sigma(sigma, diff, grad_out, grad_sigma):
    """grad_sigma = du/dsigma sum_c grad_out diff, du/dsigma = 2 sigma / s_j^2 = 4m / sigma (sigma^2 = m 2^e); 0 in focus."""
    n_images, channels, height, width = grad_out.shape
    for job in prange(n_images * height):
        n = job // height
        y = job % height
        for x in range(width):
            value = np.float64(sigma[n, 0, y, x])
            total = 0.0
            if value > IN_FOCUS_SIGMA:
                mantissa, _ = math.frexp(value * value)
                for c in range(channels):
                    total += grad_out[n, c, y, x] * diff[n, c, y, x]
                total *= 4.0 * mantissa / value
            grad_sigma[n, 0, y, x] = total


def _weighted_grad(grad_out, low, share, rung, norm_y, norm_x, out):
    """out = grad_out w / (norm_y[rung] norm_x[rung]), w = 1 - t where low = rung, t where low = rung - 1, else 0."""
    n_images, channels, height, width = grad_out.shape
    for job in prange(n_images * height):
        n = job // height
        y = job % height
        weight = np.empty(width, dtype=out.dtype)
        for x in range(width):
            j = low[n, 0, y, x]
            t = share[n, 0, y, x]
            w = 1.0 - t if j == rung else (t if (j >= 0 and j + 1 == rung) else 0.0)
            weight[x] = w / (norm_y[rung, y] * norm_x[rung, x])
        for c in range(channels):
            target = out[n, c, y]
            source = grad_out[n, c, y]
            for x in range(width):
                target[x] = source[x] * weight[x]


_accumulate_rows = numba.njit(cache=True, fastmath=True, nogil=True)(_accumulate_rows)
_correlate_row = numba.njit(cache=True, fastmath=True, nogil=True)(_correlate_row)
_direct_row = numba.njit(cache=True, fastmath=True, nogil=True)(_direct_row)
_KERNELS = compile_variants([_rows_op, _direct_rung, _ladder_rows, _grad_sigma, _weighted_grad])


@dataclass(frozen=True)
class Plan:
    """The rungs' operators for one image size and dtype, packed for the kernels (daif.optics.ladder.AxisOperator).

    direct: per direct rung (rungs 0..Rd-1) its band along y (start (H,), taps (H, T)) and kernel along x (K,);
    direct_*: the same packed (start (Rd, H), taps (Rd, H, T_max), count (Rd,), kernels (Rd, K_max), size (Rd,)).
    coarse: per coarse rung its four bands (start, taps): to and from the coarse grid along y, then along x;
    coarse_start/taps/count: the bands from the coarse grid along y, packed. norm_y (R, H), norm_x (R, W).
    """

    direct: tuple
    direct_start: np.ndarray
    direct_taps: np.ndarray
    direct_count: np.ndarray
    direct_kernels: np.ndarray
    direct_size: np.ndarray
    coarse: tuple
    coarse_start: np.ndarray
    coarse_taps: np.ndarray
    coarse_count: np.ndarray
    norm_y: np.ndarray
    norm_x: np.ndarray


def _packed(arrays: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of shape (..., T_i) zero-padded to the largest T into one (len, ..., T) array, and the T_i."""
    counts = np.array([a.shape[-1] for a in arrays], dtype=np.int64)
    shape = arrays[0].shape[:-1] if arrays else (0,)
    packed = np.zeros((len(arrays), *shape, max(counts, default=1)), dtype=dtype)
    for i, array in enumerate(arrays):
        packed[i, ..., : array.shape[-1]] = array
    return packed, counts


@functools.lru_cache(maxsize=64)
def plan(height: int, width: int, rungs: tuple[float, ...], dtype: torch.dtype) -> Plan:
    """The Plan of `rungs` for (height, width) images of `dtype` (cached)."""
    from daif.optics.ladder import axis_operator

    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    ops = [(axis_operator(height, rung), axis_operator(width, rung)) for rung in rungs]
    direct = [(rows, cols) for rows, cols in ops if cols.kernel is not None]
    coarse = [(rows, cols) for rows, cols in ops if cols.kernel is None]
    direct_taps, direct_count = _packed([rows.bands[0].taps for rows, _ in direct], np_dtype)
    direct_kernels, direct_size = _packed([cols.kernel for _, cols in direct], np_dtype)
    coarse_taps, coarse_count = _packed([rows.bands[1].taps for rows, _ in coarse], np_dtype)
    cast = lambda band: (band.start, np.ascontiguousarray(band.taps, dtype=np_dtype))  # noqa: E731
    return Plan(
        direct=tuple((rows.bands[0].start, *(cast(rows.bands[0])[1:]), cols.kernel.astype(np_dtype)) for rows, cols in direct),
        direct_start=np.stack([rows.bands[0].start for rows, _ in direct]) if direct else np.zeros((0, height), np.int64),
        direct_taps=direct_taps,
        direct_count=direct_count,
        direct_kernels=direct_kernels,
        direct_size=direct_size,
        coarse=tuple(tuple(cast(b) for b in (*rows.bands, *cols.bands)) for rows, cols in coarse),
        coarse_start=np.stack([rows.bands[1].start for rows, _ in coarse]) if coarse else np.zeros((0, height), np.int64),
        coarse_taps=coarse_taps,
        coarse_count=coarse_count,
        norm_y=np.stack([rows.normaliser for rows, _ in ops]).astype(np_dtype),
        norm_x=np.stack([cols.normaliser for _, cols in ops]).astype(np_dtype),
    )


def _to_coarse_rows(kernels: dict, bands: tuple, source: np.ndarray, out: np.ndarray) -> None:
    """out (P, K_y, W) = A_y source A_x^T A_x for planes source (P, H, W) (a coarse rung's bands)."""
    (to_y_start, to_y), _, (to_x_start, to_x), (from_x_start, from_x) = bands
    planes, _, width = source.shape
    coarse_rows = np.empty((planes, to_y_start.size, width), dtype=source.dtype)  # (P, K_y, W)
    kernels["_rows_op"](source, to_y_start, to_y, coarse_rows, False)
    flipped = np.ascontiguousarray(coarse_rows.transpose(0, 2, 1))  # (P, W, K_y)
    coarse = np.empty((planes, to_x_start.size, to_y_start.size), dtype=source.dtype)  # (P, K_x, K_y)
    kernels["_rows_op"](flipped, to_x_start, to_x, coarse, False)
    kernels["_rows_op"](coarse, from_x_start, from_x, flipped, False)
    np.copyto(out, flipped.transpose(0, 2, 1))


def ladder_forward(image: torch.Tensor, sigma: torch.Tensor, rungs: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
    """(out, diff, low, share): the ladder's output (N, C, H, W), d out / d t (N, C, H, W) and the blend positions
    (N, 1, H, W) for the backward pass. CPU tensors; rungs: daif.optics.ladder.ladder_sigmas of the largest sigma
    (every rung carries weight somewhere, or is the top rung's neighbour)."""
    kernels = for_thread_budget(_KERNELS)
    n, c, h, w = image.shape
    operators = plan(h, w, rungs, image.dtype)
    source = image.detach().contiguous().numpy()
    low = np.empty((n, 1, h, w), dtype=np.int64)
    share = np.zeros((n, 1, h, w), dtype=source.dtype)
    rows_y = max((bands[0][0].size for bands in operators.coarse), default=0)
    coarse_rows = np.empty((len(operators.coarse), n * c, rows_y, w), dtype=source.dtype)
    for k, bands in enumerate(operators.coarse):
        _to_coarse_rows(kernels, bands, source.reshape(n * c, h, w), coarse_rows[k, :, : bands[0][0].size])
    out = torch.empty_like(image, memory_format=torch.contiguous_format)
    diff = torch.empty_like(out)
    kernels["_ladder_rows"](
        source, sigma.detach().contiguous().numpy(), operators.direct_start, operators.direct_taps, operators.direct_count,
        operators.direct_kernels, operators.direct_size, coarse_rows, operators.coarse_start, operators.coarse_taps,
        operators.coarse_count, operators.norm_y, operators.norm_x, out.numpy(), diff.numpy(), low, share,
    )  # fmt: skip
    return out, diff, torch.from_numpy(low), torch.from_numpy(share)


def ladder_backward(
    sigma: torch.Tensor, diff: torch.Tensor, low: torch.Tensor, share: torch.Tensor, rungs: tuple[float, ...], grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. the image and sigma from `ladder_forward`'s saved tensors (module docstring)."""
    kernels = for_thread_budget(_KERNELS)
    n, c, h, w = grad_out.shape
    operators = plan(h, w, rungs, grad_out.dtype)
    grad = grad_out.detach().contiguous().numpy()
    grad_sigma = torch.empty_like(sigma, memory_format=torch.contiguous_format)
    kernels["_grad_sigma"](sigma.detach().contiguous().numpy(), diff.numpy(), grad, grad_sigma.numpy())
    grad_image = torch.where(low < 0, grad_out, 0.0).contiguous()  # in focus: passed through
    target = grad_image.numpy().reshape(n * c, h, w)
    weighted = np.empty_like(grad)
    planes = weighted.reshape(n * c, h, w)
    n_direct = operators.direct_start.shape[0]
    for j in range(len(rungs)):
        kernels["_weighted_grad"](grad, low.numpy(), share.numpy(), j, operators.norm_y, operators.norm_x, weighted)
        if j < n_direct:  # M symmetric: the adjoint is the operator itself
            kernels["_direct_rung"](planes, *operators.direct[j], target)
        else:
            bands = operators.coarse[j - n_direct]
            coarse_rows = np.empty((n * c, bands[0][0].size, w), dtype=grad.dtype)
            _to_coarse_rows(kernels, bands, planes, coarse_rows)
            kernels["_rows_op"](coarse_rows, *bands[1], target, True)
    return grad_image, grad_sigma
