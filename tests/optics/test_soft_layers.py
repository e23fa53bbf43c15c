"""The soft-layered renderer (daif.optics.soft_layers), the recon term's occlusion-aware PSF, against independent
references: a direct disc convolution for one depth, the data renderer's hard layers (daif.optics.psf.render_layers,
itself checked against a slow scatter) for planes at the layer centres, and central finite differences for the
gradients in depth and image."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from daif.config import LossConfig
from daif.optics import ThinLensCamera, defocus_sigma, depth_layers, render_focal_stack, render_layers
from daif.optics.render import render_defocus
from daif.optics.soft_layers import layer_weights, render_soft_layers

CAMERA = ThinLensCamera(focal_length=0.05, f_number=4.8, pixel_size=24e-6)  # the light-field suite's lens
FOCUS = torch.tensor([1.0, 2.5, 6.0], dtype=torch.float64)
SIZE = (20, 24)


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, *SIZE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _direct_disc(image: torch.Tensor, radius: float) -> torch.Tensor:
    """image (1, 3, H, W) convolved with the disc clamp(R + 1/2 - |o|, 0, 1) / sum, the scene mirrored at the border."""
    reach = int(radius + 1.5)
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    disc = (radius + 0.5 - (offsets[:, None] ** 2 + offsets[None, :] ** 2).sqrt()).clamp(0.0, 1.0)
    disc = disc / disc.sum()
    padded = F.pad(image, (reach,) * 4, mode="reflect")
    return F.conv2d(padded, disc.flip(0, 1)[None, None].expand(3, 1, -1, -1), groups=3)


def test_one_depth_is_the_disc_blur_of_the_image():
    image, depth = _image(), torch.full((1, 1, *SIZE), 2.0, dtype=torch.float64)
    stack = render_soft_layers(image, depth, FOCUS, CAMERA)
    radii = defocus_sigma(depth[..., :1, :1], FOCUS, CAMERA).flatten().tolist()  # 5.7, 1.1 and 3.6 px
    expected = torch.cat([_direct_disc(image, radius) for radius in radii])
    assert stack.shape == (1, 3, 3, *SIZE)
    assert torch.allclose(stack[0], expected, atol=1e-10)


def test_a_near_card_over_a_far_plane_is_the_hard_layered_composite():
    """Two planes at the nearest and farthest layer centres: every pixel in one layer, so the soft renderer is
    daif.optics.psf's front-to-back composite of the two blurred layers (partial occlusion at the card's edge)."""
    image = _image(1)
    depth = torch.full((1, 1, *SIZE), 5.0, dtype=torch.float64)
    depth[..., 5:14, 6:16] = 1.2
    layer, layer_depth = depth_layers(depth[0], 16)
    blur = defocus_sigma(layer_depth.reshape(1, 1, 1, -1), FOCUS, CAMERA)[0, :, 0]
    expected = render_layers(image[0], layer, blur, "disc", radius_step=1e-9, kernel_size=None)  # radii unrounded
    stack = render_soft_layers(image, depth, FOCUS, CAMERA)[0]
    assert torch.allclose(stack, expected, atol=1e-8)
    plain_disc = render_focal_stack(image, depth, FOCUS, CAMERA, None, "disc")[0]
    assert (stack - plain_disc).abs().max() > 0.05  # occlusion changes the edge: not the disc without it


def test_tent_weights_sum_to_one_and_centre_on_the_layers():
    depth = 1.0 / torch.linspace(1 / 6.0, 1 / 1.5, 48, dtype=torch.float64).reshape(1, 1, 6, 8)
    weights, centres = layer_weights(depth, 8)
    assert torch.allclose(weights.sum(dim=1), torch.ones(1, 6, 8, dtype=torch.float64))
    assert torch.allclose(1 / centres[0, [0, -1]], torch.tensor([1 / 1.5, 1 / 6.0], dtype=torch.float64))
    assert int((weights > 0).sum(dim=1).max()) <= 2  # at most two adjacent layers per pixel


@pytest.mark.parametrize("pixel", [(10, 10), (3, 20), (16, 5)])
def test_gradients_in_depth_and_image_match_finite_differences(pixel):
    generator = torch.Generator().manual_seed(2)
    image = _image(2)
    depth = 1.5 + 3.0 * torch.rand(1, 1, *SIZE, generator=generator, dtype=torch.float64)
    depth[0, 0, 0, 0], depth[0, 0, 0, 1] = 1.0, 6.0  # the range's ends away from the probed pixels (the centres move with them)
    target = torch.rand(1, 3, 3, *SIZE, generator=generator, dtype=torch.float64)

    def loss(d: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return ((render_soft_layers(i, d, FOCUS, CAMERA) - target) ** 2).sum()

    d, i = depth.clone().requires_grad_(), image.clone().requires_grad_()
    loss(d, i).backward()
    y, x = pixel
    step = 1e-6
    for tensor, grad, index in ((depth, d.grad, (0, 0, y, x)), (image, i.grad, (0, 1, y, x))):
        up, down = tensor.clone(), tensor.clone()
        up[index] += step
        down[index] -= step
        args_up, args_down = ((up, image), (down, image)) if tensor is depth else ((depth, up), (depth, down))
        numeric = float((loss(*args_up) - loss(*args_down)) / (2 * step))
        assert abs(float(grad[index]) - numeric) <= 1e-6 * max(1.0, abs(numeric)), (index, float(grad[index]), numeric)


def test_the_loss_config_and_the_renderers_take_layers_without_a_window_only():
    assert LossConfig(psf="layered", kernel_size=None).psf == "layered"
    with pytest.raises(ValueError, match="psf: the layered renderer has no window"):
        LossConfig(psf="layered", kernel_size=7)
    image, depth = torch.rand(1, 3, 8, 8), torch.full((1, 1, 8, 8), 2.0)
    with pytest.raises(ValueError, match="kernel_size"):
        render_focal_stack(image, depth, [1.0, 2.0], CAMERA, 7, "layered")
    with pytest.raises(ValueError, match="render_focal_stack takes depth"):
        render_defocus(image, torch.full((1, 1, 8, 8), 2.0), None, "layered")
