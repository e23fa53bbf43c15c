"""Fused CPU kernels of the defocus renderer (numba), the hot path of every CPU training step.

Same formulas and interface as the plain-torch backend in daif.optics.render (`forward`, `backward`):
with a = sigma^-2 on blurring sources (0 elsewhere) and e = exp(-2a), the weight of source q for the
output x = q - (dy, dx) is a_q e_q^(dy^2) e_q^(dx^2). Each worker handles one (image, row) at a time:
it builds the rows e^(k^2) of the K source rows by multiplication, then sweeps every window offset
over the row with contiguous loops that LLVM vectorises. Memory O(N C H W), no K^2 intermediates.

Compiled on first use (a few seconds per dtype) and cached on disk (NUMBA_CACHE_DIR, default beside
the code).
"""

from __future__ import annotations

import types

import numpy as np
import torch

import numba
from numba import prange

from daif.optics.thin_lens import IN_FOCUS_SIGMA  # a compile-time constant of the kernels


def _prepare(sigma, a, e):
    """a = sigma^-2 where sigma > 1 else 0; e = exp(-2a). Flat (size,) arrays."""
    for i in prange(sigma.size):
        s = sigma[i]
        value = 1.0 / (s * s) if s > IN_FOCUS_SIGMA else 0.0
        a[i] = value
        e[i] = np.exp(-2.0 * value)


def _fill_square_powers(powers, step, e_row, m, width):
    """powers[k, x] = e_row[x]^(k^2), k = 0..m, by e^(k^2) = e^((k-1)^2) e^(2k-1). `step`: (width,) scratch."""
    for x in range(width):
        powers[0, x] = 1.0
        step[x] = e_row[x]
    for k in range(1, m + 1):
        for x in range(width):
            powers[k, x] = powers[k - 1, x] * step[x]
            step[x] = step[x] * e_row[x] * e_row[x]


def _forward_rows(image, a, e, m, out, denominator):
    n_images, channels, height, width = image.shape
    for job in prange(n_images * height):
        n = job // height
        y = job % height
        powers = np.empty((m + 1, width), dtype=image.dtype)
        step = np.empty(width, dtype=image.dtype)
        weights = np.empty((m + 1, width), dtype=image.dtype)
        numerator = np.zeros((channels, width), dtype=image.dtype)
        den = denominator[n, 0, y]
        den[:] = 0.0
        for dy in range(-m, m + 1):
            qy = y + dy
            if qy < 0 or qy >= height:
                continue
            a_row = a[n, 0, qy]
            _fill_square_powers(powers, step, e[n, 0, qy], m, width)
            for x in range(width):
                step[x] = a_row[x] * powers[abs(dy), x]  # a_q e_q^(dy^2)
            for k in range(m + 1):  # weights[k, q] = a_q e_q^(dy^2 + k^2)
                for x in range(width):
                    weights[k, x] = step[x] * powers[k, x]
            for dx in range(-m, m + 1):
                # output x in [x_start, x_stop) reads source x + dx; slices keep indices non-negative
                x_start = max(0, -dx)
                x_stop = min(width, width - dx)
                w_src = weights[abs(dx), x_start + dx : x_stop + dx]
                den_dst = den[x_start:x_stop]
                for i in range(x_stop - x_start):
                    den_dst[i] += w_src[i]
                for c in range(channels):
                    source = image[n, c, qy, x_start + dx : x_stop + dx]
                    acc = numerator[c, x_start:x_stop]
                    for i in range(x_stop - x_start):
                        acc[i] += w_src[i] * source[i]
        a_out = a[n, 0, y]
        for c in range(channels):
            source = image[n, c, y]
            target = out[n, c, y]
            acc = numerator[c]
            for x in range(width):
                target[x] = acc[x] / den[x] if a_out[x] > 0.0 else source[x]


def _normalise_grad(grad_out, out, a, denominator, g_norm, g_dot):
    """g_norm = grad_out / den at blurred outputs (else 0); g_dot = sum_c g_norm * out."""
    n_images, channels, height, width = grad_out.shape
    for job in prange(n_images * height):
        n = job // height
        y = job % height
        for x in range(width):
            g_dot[n, 0, y, x] = 0.0
        for c in range(channels):
            for x in range(width):
                value = grad_out[n, c, y, x] / denominator[n, 0, y, x] if a[n, 0, y, x] > 0.0 else 0.0
                g_norm[n, c, y, x] = value
                g_dot[n, 0, y, x] += value * out[n, c, y, x]


def _backward_rows(image, a, e, grad_out, g_norm, g_dot, m, grad_image, grad_sigma):
    n_images, channels, height, width = image.shape
    for job in prange(n_images * height):
        n = job // height
        qy = job % height
        powers = np.empty((m + 1, width), dtype=image.dtype)
        step = np.empty(width, dtype=image.dtype)
        _fill_square_powers(powers, step, e[n, 0, qy], m, width)
        sum_e = np.zeros((channels + 1, width), dtype=image.dtype)  # sum_off E [G_c..., g_dot]
        sum_r2e = np.zeros((channels + 1, width), dtype=image.dtype)  # sum_off r^2 E [G_c..., g_dot]
        ew = np.empty(width, dtype=image.dtype)
        ew_r2 = np.empty(width, dtype=image.dtype)
        for dy in range(-m, m + 1):
            y = qy - dy  # the output row that source row qy reaches at this offset
            if y < 0 or y >= height:
                continue
            for dx in range(-m, m + 1):
                r2 = dy * dy + dx * dx
                # source q in [x_start, x_stop) reaches output q - dx; slices keep indices non-negative
                x_start = max(0, dx)
                x_stop = min(width, width + dx)
                count = x_stop - x_start
                for i in range(count):
                    q = x_start + i
                    ew[i] = powers[abs(dy), q] * powers[abs(dx), q]
                    ew_r2[i] = r2 * ew[i]
                for c in range(channels + 1):
                    if c == channels:
                        target = g_dot[n, 0, y, x_start - dx : x_stop - dx]
                    else:
                        target = g_norm[n, c, y, x_start - dx : x_stop - dx]
                    acc = sum_e[c, x_start:x_stop]
                    acc_r2 = sum_r2e[c, x_start:x_stop]
                    for i in range(count):
                        acc[i] += ew[i] * target[i]
                        acc_r2[i] += ew_r2[i] * target[i]
        for q in range(width):
            a_q = a[n, 0, qy, q]
            blurred = a_q > 0.0
            # dL/da_q = sum_off E (1 - 2 r^2 a_q)(sum_c I_c G_c - g_dot); da/dsigma = -2 sigma^-3 = -2 a^1.5
            dot_e = -sum_e[channels, q]
            dot_r2e = -sum_r2e[channels, q]
            for c in range(channels):
                dot_e += image[n, c, qy, q] * sum_e[c, q]
                dot_r2e += image[n, c, qy, q] * sum_r2e[c, q]
            grad_a = dot_e - 2.0 * a_q * dot_r2e
            grad_sigma[n, 0, qy, q] = -2.0 * a_q * np.sqrt(a_q) * grad_a if blurred else 0.0
            for c in range(channels):
                passed = 0.0 if blurred else grad_out[n, c, qy, q]  # in-focus pixels pass the gradient through
                grad_image[n, c, qy, q] = a_q * sum_e[c, q] + passed


def _stack_uint8(aif, sigma, m, out):
    """out[s, y, x, c] = the 8-bit rendering of `aif` (C, H, W) under sigma[s] (S, H, W): `_forward_rows`'
    formula for one shared source image, then clamp to [0, 1], x 255, round half to even (torch's rounding).

    One job per image: each source row's a, e^(k^2) rows are computed once, into a ring of 2m+1 rows,
    instead of once per output row that reads them; no per-image copy of the AIF, no float output.
    """
    n_images, height, width = sigma.shape
    channels = aif.shape[0]
    ring = 2 * m + 1
    for s in prange(n_images):
        a_rows = np.empty((ring, width), dtype=aif.dtype)
        powers = np.empty((ring, m + 1, width), dtype=aif.dtype)
        e_row = np.empty(width, dtype=aif.dtype)
        step = np.empty(width, dtype=aif.dtype)
        weights = np.empty((m + 1, width), dtype=aif.dtype)
        numerator = np.empty((channels, width), dtype=aif.dtype)
        den = np.empty(width, dtype=aif.dtype)
        for qy in range(min(m, height)):  # prime the ring with the rows above the first output row's window end
            _source_row(sigma[s, qy], a_rows[qy % ring], e_row, powers[qy % ring], step, m, width)
        for y in range(height):
            if y + m < height:  # the row entering the window
                slot = (y + m) % ring
                _source_row(sigma[s, y + m], a_rows[slot], e_row, powers[slot], step, m, width)
            den[:] = 0.0
            numerator[:, :] = 0.0
            for dy in range(-m, m + 1):
                qy = y + dy
                if qy < 0 or qy >= height:
                    continue
                slot = qy % ring
                a_row = a_rows[slot]
                row_powers = powers[slot]
                for x in range(width):
                    step[x] = a_row[x] * row_powers[abs(dy), x]  # a_q e_q^(dy^2)
                for k in range(m + 1):  # weights[k, q] = a_q e_q^(dy^2 + k^2)
                    for x in range(width):
                        weights[k, x] = step[x] * row_powers[k, x]
                for dx in range(-m, m + 1):
                    x_start = max(0, -dx)
                    x_stop = min(width, width - dx)
                    w_src = weights[abs(dx), x_start + dx : x_stop + dx]
                    den_dst = den[x_start:x_stop]
                    for i in range(x_stop - x_start):
                        den_dst[i] += w_src[i]
                    for c in range(channels):
                        source = aif[c, qy, x_start + dx : x_stop + dx]
                        acc = numerator[c, x_start:x_stop]
                        for i in range(x_stop - x_start):
                            acc[i] += w_src[i] * source[i]
            a_out = a_rows[y % ring]
            for c in range(channels):
                source = aif[c, y]
                acc = numerator[c]
                for x in range(width):
                    value = acc[x] / den[x] if a_out[x] > 0.0 else source[x]
                    value = min(max(value, 0.0), 1.0) * 255.0
                    out[s, y, x, c] = np.uint8(np.rint(value))


def _source_row(sigma_row, a_row, e_row, powers, step, m, width):
    """a = sigma^-2 where sigma > 1 else 0, and powers[k] = exp(-2a)^(k^2), of one source row."""
    for x in range(width):
        value = sigma_row[x]
        a_row[x] = 1.0 / (value * value) if value > IN_FOCUS_SIGMA else 0.0
        e_row[x] = np.exp(-2.0 * a_row[x])
    _fill_square_powers(powers, step, e_row, m, width)


_PARALLEL = ("_prepare", "_forward_rows", "_normalise_grad", "_backward_rows", "_stack_uint8")
_fill_square_powers = numba.njit(cache=True, fastmath=True, nogil=True)(_fill_square_powers)
_source_row = numba.njit(cache=True, fastmath=True, nogil=True)(_source_row)


def _compiled(function, parallel: bool):
    """`function` compiled threaded or serial. The serial variant is a copy under its own name: numba's
    disk cache keys a function by its name and line, not by `parallel`, so without the copy the serial
    variant would load the threaded machine code and start the OpenMP pool after all."""
    if not parallel:
        name = f"{function.__name__}_serial"
        function = types.FunctionType(function.__code__, function.__globals__, name, function.__defaults__, function.__closure__)
        function.__qualname__ = name
    return numba.njit(cache=True, fastmath=True, parallel=parallel, nogil=True)(function)


def compile_variants(functions) -> dict[bool, dict]:
    """{parallel: {name: compiled kernel}} for both variants (threaded True, serial False) of each function."""
    return {parallel: {f.__name__: _compiled(f, parallel) for f in functions} for parallel in (True, False)}


def for_thread_budget(variants: dict[bool, dict]) -> dict:
    """The variant for torch's thread budget, with numba's thread count set to match it."""
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if threads == 1:
        return variants[False]
    numba.set_num_threads(threads)
    return variants[True]


# Two compiled variants of each row kernel: threaded, and serial for a one-thread budget (a Ray worker
# with one CPU or less). Once numba's OpenMP pool has started, it spin-waits between kernels and it also
# resets the OpenMP thread count torch's own kernels use, so a worker that reserved one CPU would run
# two threads (and two such processes on two cores slow each other down several times).
_KERNELS = compile_variants([globals()[name] for name in _PARALLEL])


def _kernels() -> dict:
    return for_thread_budget(_KERNELS)


def _a_and_e(kernels: dict, sigma: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    sigma_np = sigma.detach().contiguous().numpy()
    a = np.empty_like(sigma_np)
    e = np.empty_like(sigma_np)
    kernels["_prepare"](sigma_np.reshape(-1), a.reshape(-1), e.reshape(-1))
    return a, e


def forward(image: torch.Tensor, sigma: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rendered image (N, C, H, W) and the per-pixel weight sum (N, 1, H, W). CPU tensors."""
    kernels = _kernels()
    a, e = _a_and_e(kernels, sigma)
    out = torch.empty_like(image, memory_format=torch.contiguous_format)
    denominator = torch.empty_like(sigma, memory_format=torch.contiguous_format)
    kernels["_forward_rows"](image.detach().contiguous().numpy(), a, e, m, out.numpy(), denominator.numpy())
    return out, denominator


def backward(
    image: torch.Tensor, sigma: torch.Tensor, out: torch.Tensor, denominator: torch.Tensor, grad_out: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. image and sigma, given the forward's output and weight sum."""
    kernels = _kernels()
    a, e = _a_and_e(kernels, sigma)
    grad_out_np = grad_out.detach().contiguous().numpy()
    g_norm = np.empty_like(grad_out_np)
    g_dot = np.empty_like(a)
    kernels["_normalise_grad"](grad_out_np, out.numpy(), a, denominator.numpy(), g_norm, g_dot)
    grad_image = torch.empty_like(image, memory_format=torch.contiguous_format)
    grad_sigma = torch.empty_like(sigma, memory_format=torch.contiguous_format)
    kernels["_backward_rows"](
        image.detach().contiguous().numpy(), a, e, grad_out_np, g_norm, g_dot, m, grad_image.numpy(), grad_sigma.numpy()
    )
    return grad_image, grad_sigma


def stack_uint8(aif: torch.Tensor, sigma: torch.Tensor, m: int) -> torch.Tensor:
    """(S, H, W, C) uint8 renderings of one image aif (C, H, W) under each defocus map sigma (S, H, W). CPU tensors."""
    kernels = _kernels()
    out = torch.empty((sigma.shape[0], sigma.shape[1], sigma.shape[2], aif.shape[0]), dtype=torch.uint8)
    kernels["_stack_uint8"](aif.detach().contiguous().numpy(), sigma.detach().contiguous().numpy(), m, out.numpy())
    return out
