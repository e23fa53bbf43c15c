"""Fused CPU kernels of the defocus renderer (numba), the hot path of every CPU training step.

Same formulas as daif.optics.render (`_torch_forward`, `_torch_backward`): with a = sigma^-2 on
blurring sources (0 elsewhere) and e = exp(-2a), the weight of source q for output x = q - (dy, dx)
is a_q e_q^(dy^2) e_q^(dx^2). Each worker handles one (image, row) at a time: it builds the rows
of e^(k^2) for the K source rows by multiplication, then sweeps each window offset over the row with
contiguous, vectorisable loops. Memory: O(N C H W), no K^2 intermediates.

Compiled on first use (a few seconds) and cached on disk (NUMBA_CACHE_DIR, default beside the code).
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import numba
    from numba import prange

    AVAILABLE = True
except ImportError:  # the plain-torch path in render.py serves instead
    AVAILABLE = False


def _fill_square_powers(powers, e_row, m, width):
    """powers[k, x] = e_row[x]^(k^2), k = 0..m."""
    for x in range(width):
        e = e_row[x]
        e2 = e * e
        step = e
        value = 1.0
        powers[0, x] = 1.0
        for k in range(1, m + 1):
            value = value * step
            powers[k, x] = value
            step = step * e2


def _forward_rows(image, a, e, m, out, denominator):
    n_images, channels, height, width = image.shape
    for job in prange(n_images * height):
        n = job // height
        y = job % height
        powers = np.empty((m + 1, width), dtype=image.dtype)
        weights = np.empty((m + 1, width), dtype=image.dtype)
        numerator = np.zeros((channels, width), dtype=image.dtype)
        den = denominator[n, 0, y]
        den[:] = 0.0
        for dy in range(-m, m + 1):
            qy = y + dy
            if qy < 0 or qy >= height:
                continue
            a_row = a[n, 0, qy]
            _fill_square_powers(powers, e[n, 0, qy], m, width)
            for k in range(m + 1):  # weights[k, q] = a_q e_q^(dy^2 + k^2)
                for x in range(width):
                    weights[k, x] = a_row[x] * powers[abs(dy), x] * powers[k, x]
            for dx in range(-m, m + 1):
                w_row = weights[abs(dx)]
                x_start = max(0, -dx)
                x_stop = min(width, width - dx)
                for x in range(x_start, x_stop):
                    den[x] += w_row[x + dx]
                for c in range(channels):
                    source = image[n, c, qy]
                    acc = numerator[c]
                    for x in range(x_start, x_stop):
                        acc[x] += w_row[x + dx] * source[x + dx]
        a_out = a[n, 0, y]
        for c in range(channels):
            source = image[n, c, y]
            target = out[n, c, y]
            acc = numerator[c]
            for x in range(width):
                target[x] = acc[x] / den[x] if a_out[x] > 0.0 else source[x]


def _backward_rows(image, a, e, g_norm, g_dot, m, grad_image, grad_a):
    n_images, channels, height, width = image.shape
    for job in prange(n_images * height):
        n = job // height
        qy = job % height
        powers = np.empty((m + 1, width), dtype=image.dtype)
        _fill_square_powers(powers, e[n, 0, qy], m, width)
        sum_e = np.zeros((channels + 1, width), dtype=image.dtype)  # sum_off E [G_c..., g_dot]
        sum_r2e = np.zeros((channels + 1, width), dtype=image.dtype)  # sum_off r^2 E [G_c..., g_dot]
        ew = np.empty(width, dtype=image.dtype)
        for dy in range(-m, m + 1):
            y = qy - dy  # the output row that source row qy reaches at this offset
            if y < 0 or y >= height:
                continue
            for dx in range(-m, m + 1):
                r2 = dy * dy + dx * dx
                x_start = max(0, dx)
                x_stop = min(width, width + dx)
                for q in range(x_start, x_stop):
                    ew[q] = powers[abs(dy), q] * powers[abs(dx), q]
                for c in range(channels + 1):
                    target = g_dot[n, 0, y] if c == channels else g_norm[n, c, y]
                    acc = sum_e[c]
                    acc_r2 = sum_r2e[c]
                    for q in range(x_start, x_stop):
                        term = ew[q] * target[q - dx]
                        acc[q] += term
                        acc_r2[q] += r2 * term
        a_row = a[n, 0, qy]
        grad_a_row = grad_a[n, 0, qy]
        for q in range(width):
            dot_e = -sum_e[channels, q]
            dot_r2e = -sum_r2e[channels, q]
            for c in range(channels):
                dot_e += image[n, c, qy, q] * sum_e[c, q]
                dot_r2e += image[n, c, qy, q] * sum_r2e[c, q]
            grad_a_row[q] = dot_e - 2.0 * a_row[q] * dot_r2e
            for c in range(channels):
                grad_image[n, c, qy, q] = a_row[q] * sum_e[c, q]


if AVAILABLE:
    _jit = numba.njit(cache=True, fastmath=True, nogil=True)
    _fill_square_powers = _jit(_fill_square_powers)
    _forward_rows = numba.njit(cache=True, fastmath=True, parallel=True, nogil=True)(_forward_rows)
    _backward_rows = numba.njit(cache=True, fastmath=True, parallel=True, nogil=True)(_backward_rows)


def _set_threads() -> None:
    """Use as many numba threads as torch does, so both respect the same thread budget."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def forward(image: torch.Tensor, a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blurred image and denominator. image (N, C, H, W), a (N, 1, H, W), both contiguous CPU."""
    _set_threads()
    e = torch.exp(-2.0 * a)
    out = torch.empty_like(image)
    denominator = torch.empty_like(a)
    _forward_rows(image.detach().numpy(), a.detach().numpy(), e.numpy(), m, out.numpy(), denominator.numpy())
    return out, denominator


def backward(
    image: torch.Tensor, a: torch.Tensor, g_norm: torch.Tensor, g_dot: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. image (blurred outputs only) and a; see render._torch_backward."""
    _set_threads()
    e = torch.exp(-2.0 * a)
    grad_image = torch.empty_like(image)
    grad_a = torch.empty_like(a)
    _backward_rows(
        image.detach().numpy(),
        a.detach().numpy(),
        e.numpy(),
        g_norm.contiguous().numpy(),
        g_dot.contiguous().numpy(),
        m,
        grad_image.numpy(),
        grad_a.numpy(),
    )
    return grad_image, grad_a
