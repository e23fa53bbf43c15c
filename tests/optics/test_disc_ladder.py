"""The disc ladder (daif.optics.disc_ladder) against a direct per-pixel disc sum written here, the data renderer's
scattered disc, finite differences and physical properties."""

import math

import numpy as np
import pytest
import torch

from daif.config import LossConfig
from daif.optics import render_defocus, render_disc, render_focal_stack, render_stack
from daif.optics.disc_ladder import disc_rungs, render_defocus_disc
from tests.helpers.scenes import CAMERA, FOCUS_DISTANCES, textured_image


def direct_disc(image: np.ndarray, radius: float, y: int, x: int) -> np.ndarray:
    """Pixel (y, x) of `image` (C, H, W) blurred by the antialiased disc of `radius` px, sources inside the image
    only: sum_q a(x - q) I(q) / sum_q a(x - q), a(o) = clamp(R + 1/2 - |o|, 0, 1)."""
    _, height, width = image.shape
    total, weight = np.zeros(image.shape[0]), 0.0
    for qy in range(height):
        for qx in range(width):
            a = min(1.0, max(0.0, radius + 0.5 - math.hypot(qy - y, qx - x)))
            total += a * image[:, qy, qx]
            weight += a
    return total / weight


def direct_render(image: np.ndarray, sigma: np.ndarray, step: float = 0.5) -> np.ndarray:
    """The module docstring's formula pixel by pixel: identity at sigma <= 1/2, else the blend, linear in sigma^2, of
    the direct disc sums at the rungs 1/2 + j step around sigma."""
    out = image.copy()
    for y in range(image.shape[1]):
        for x in range(image.shape[2]):
            s = sigma[y, x]
            if s <= 0.5:
                continue
            low = 0.5 + step * math.floor((s - 0.5) / step)
            high = low + step
            if s == low:  # on a rung
                out[:, y, x] = direct_disc(image, low, y, x)
                continue
            t = (s * s - low * low) / (high * high - low * low)
            out[:, y, x] = (1 - t) * direct_disc(image, low, y, x) + t * direct_disc(image, high, y, x)
    return out


def test_rungs_are_half_a_pixel_apart_from_the_sharp_disc_to_the_largest_sigma():
    assert disc_rungs(0.7) == [0.5, 1.0]
    assert disc_rungs(3.0) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert disc_rungs(3.01)[-1] == 3.5


def test_per_pixel_sigma_is_the_direct_disc_sum_blended_between_rungs():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 13, 11, generator=generator, dtype=torch.float64)
    sigma = 0.2 + 4.8 * torch.rand(1, 1, 13, 11, generator=generator, dtype=torch.float64)
    sigma[0, 0, 0, :4] = torch.tensor([0.5, 2.0, 3.5, 5.0], dtype=torch.float64)  # at the pass-through and on rungs
    out = render_defocus_disc(image, sigma)
    expected = direct_render(image[0].numpy(), sigma[0, 0].numpy())
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-10, rtol=0)


def test_a_plane_at_a_rung_is_the_data_renderers_scattered_disc_inside_the_frame():
    # one radius everywhere: gathering and scattering the same disc agree where no source lies outside the frame
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 24, 24, generator=generator, dtype=torch.float64)
    radius = torch.full((2, 1, 24, 24), 4.0, dtype=torch.float64)
    inside = (..., slice(5, -5), slice(5, -5))  # the disc of radius 4 reaches 4 px
    np.testing.assert_allclose(render_defocus_disc(image, radius)[inside].numpy(),
                               render_disc(image, radius)[inside].numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("depth", [0.5, 0.9])
def test_a_round_apertures_stack_is_re_rendered_by_the_disc_not_by_the_gaussian(depth):
    # the data renderer's disc stack of a textured plane (radii rounded to 0.25 px, mirrored borders) against the
    # model's re-rendering of it from the true AIF and depth, 12 px inside the frame (blur up to 5.6 / 8.8 px)
    aif = textured_image(48, 48, torch.Generator().manual_seed(4))
    plane = torch.full((1, 48, 48), depth, dtype=torch.float64)
    focus = torch.tensor(FOCUS_DISTANCES, dtype=torch.float64)
    stack = render_stack(aif, plane, focus, CAMERA, "disc")
    inside = (..., slice(12, -12), slice(12, -12))
    error = {psf: float((render_focal_stack(aif[None], plane[None], focus, CAMERA, None, psf)[0] - stack)[inside].abs().mean())
             for psf in ("gaussian", "disc")}
    assert error["disc"] < 0.005 < 0.015 < error["gaussian"], error


def test_physical_properties():
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 32, 32, generator=generator, dtype=torch.float64)
    grey = torch.full_like(image, 0.37)
    sigma = 1.0 + 6.0 * torch.rand(1, 1, 32, 32, generator=generator, dtype=torch.float64)
    # a constant image stays constant whatever the blur, up to the border
    np.testing.assert_allclose(render_defocus_disc(grey, sigma).numpy(), 0.37, atol=1e-12)
    # in focus everywhere: the image itself; continuous into the blur (a 0.51 px disc is nearly a delta)
    assert torch.equal(render_defocus_disc(image, torch.full_like(sigma, 0.5)), image)
    assert float((render_defocus_disc(image, torch.full_like(sigma, 0.51)) - image).abs().max()) < 0.01
    # a wider disc leaves less of the image's detail: the gradient energy falls as sigma grows, rung or not
    energies = []
    for value in (1.5, 2.2, 3.0, 4.7, 6.0):
        blurred = render_defocus_disc(image, torch.full_like(sigma, value))
        energies.append(float((blurred.diff(dim=-1) ** 2).mean()))
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


def test_gradcheck_image_and_sigma_between_rungs():
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(1, 2, 7, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    # away from the rungs (kinks) and the pass-through: radii 1.6..1.9 and 2.6..2.9 (rungs every 0.5 px from 0.5)
    sigma = (1.6 + 0.3 * torch.rand(1, 1, 7, 6, generator=generator, dtype=torch.float64)
             + torch.randint(0, 2, (1, 1, 7, 6), generator=generator).double()).requires_grad_()
    assert torch.autograd.gradcheck(render_defocus_disc, (image, sigma), eps=1e-6, atol=1e-7)


def test_the_renderer_and_the_loss_config_take_the_disc_without_a_window_only():
    image, sigma = torch.rand(1, 3, 8, 8), torch.full((1, 1, 8, 8), 2.0)
    assert torch.equal(render_defocus(image, sigma, None, "disc"), render_defocus_disc(image, sigma))
    with pytest.raises(ValueError, match="kernel_size"):
        render_defocus(image, sigma, 7, "disc")
    with pytest.raises(ValueError, match="psf"):
        render_defocus(image, sigma, None, "box")
    with pytest.raises(ValueError, match="psf"):
        LossConfig(psf="disc", kernel_size=7)
    with pytest.raises(ValueError, match="psf"):
        LossConfig(psf="square")
    assert LossConfig(psf="disc", kernel_size=None).psf == "disc"
