"""Image filters: Gaussian and LoG kernels, SSIM, against hand values and the defining sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from daif.filters import gaussian_taps, laplacian_of_gaussian_kernel, ssim_map, to_grey


def _constant(value, height=16, width=16, channels=3):
    return torch.full((1, channels, height, width), value, dtype=torch.float64)


def test_ssim_of_constant_images_by_hand():
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variances and covariance are 0: the contrast factor is 1
    values = ssim_map(_constant(a), _constant(b))
    assert float(values.min()) == pytest.approx(expected, rel=1e-9)
    assert float(values.max()) == pytest.approx(expected, rel=1e-9)
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(ssim_map(x, x).min()) == pytest.approx(1.0, abs=1e-12)


def test_ssim_at_one_pixel_equals_the_direct_weighted_sums():
    """The separable filtering against the defining sums over one full 11x11 window (numpy, float64)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 15, 15, generator=generator, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(1, 1, 15, 15, generator=generator, dtype=torch.float64)).clamp(0, 1)
    offsets = np.arange(11) - 5.0
    g = np.exp(-offsets**2 / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    px, py = x[0, 0, 2:13, 2:13].numpy(), y[0, 0, 2:13, 2:13].numpy()  # the window around pixel (7, 7)
    mx, my = (w * px).sum(), (w * py).sum()
    vx, vy, cxy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2, (w * px * py).sum() - mx * my
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert float(ssim_map(x, y)[0, 0, 7, 7]) == pytest.approx(expected, rel=1e-10)
    assert float(ssim_map(x, y, padding="valid")[0, 0, 2, 2]) == pytest.approx(expected, rel=1e-10)


def test_kernels():
    g = gaussian_taps(11, 1.5, dtype=torch.float64)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(g[5] / g[6]) == pytest.approx(math.exp(1 / (2 * 1.5**2)), rel=1e-12)
    log = laplacian_of_gaussian_kernel(7, 1.0, dtype=torch.float64)
    assert float(log.sum()) == pytest.approx(0.0, abs=1e-12)
    assert float(log[3, 3]) < 0 < float(log[0, 0])  # negative centre, positive surround


def test_grey_is_the_bt601_luma():
    image = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64).reshape(1, 3, 1, 1)
    assert float(to_grey(image)) == pytest.approx(0.299 * 1.0 + 0.587 * 0.5 + 0.114 * 0.25, rel=1e-12)
