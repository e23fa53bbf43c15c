import math

import numpy as np
import pytest
import torch

from daif.optics import ThinLensCamera
from daif.optics.psf import PSF_MODELS, depth_layers, render_disc, render_layers, render_stack

CAMERA = ThinLensCamera.preset("nyuv2-5")  # f = 50 mm, N = 8, p = 12 um
GRID = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.25, 3.0])  # radii on the default 0.25 px grid


# Slow, direct references in numpy: a loop over source pixels, each scattering by its explicit kernel.


def _reach(blur: float, psf: str, kernel_size: int | None = 7) -> int:
    """The kernel's half-width: the disc's rim, the window, or (no window) the ladder's 2.5 b tail."""
    if (psf == "disc" and blur <= 0.5) or (psf == "gaussian" and blur <= 1.0):
        return 0
    if psf == "disc":
        return math.ceil(blur + 0.5)
    return kernel_size // 2 if kernel_size is not None else math.ceil(2.5 * blur)


def _kernel(blur: float, psf: str, kernel_size: int | None = 7) -> tuple[int, np.ndarray]:
    """(reach, normalised kernel over offsets -reach..reach); a delta where the PSF passes through."""
    reach = _reach(blur, psf, kernel_size)
    if reach == 0:
        return 0, np.ones((1, 1))
    oy, ox = np.mgrid[-reach : reach + 1, -reach : reach + 1].astype(float)
    if psf == "disc":
        weights = np.clip(blur + 0.5 - np.hypot(oy, ox), 0.0, 1.0)  # pixel coverage of the disc
    else:
        weights = np.exp(-2.0 * (oy**2 + ox**2) / blur**2)
    return reach, weights / weights.sum()


def _scatter_reference(image: np.ndarray, blur_of_source, pad: int, psf: str = "disc", kernel_size: int | None = 7) -> np.ndarray:
    """sum over padded sources q of image(q) kernel_q(x - q), cropped to the frame. image: (C, H+2pad, W+2pad)."""
    channels, height, width = image.shape
    out = np.zeros((channels, height + 2 * pad, width + 2 * pad))
    for y in range(height):
        for x in range(width):
            reach, kernel = _kernel(blur_of_source(y, x), psf, kernel_size)
            out[:, pad + y - reach : pad + y + reach + 1, pad + x - reach : pad + x + reach + 1] += image[:, y, x, None, None] * kernel
    return out[:, 2 * pad : height, 2 * pad : width]


def _disc_reference(image: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """The "disc" model for one image (C, H, W) and radii (H, W) on the grid; the scene mirrored (np.pad)."""
    pad = math.ceil(radius.max() + 0.5)
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    padded_radius = np.pad(radius, pad, mode="reflect")
    return _scatter_reference(padded, lambda y, x: padded_radius[y, x], pad)


def _layered_reference(image: np.ndarray, layer: np.ndarray, blur: np.ndarray, psf: str, kernel_size: int | None) -> np.ndarray:
    """Blur every layer's [alpha I, alpha] by its own loop, then composite "over" pixel by pixel. (S, C, H, W)."""
    channels, height, width = image.shape
    pad = max(_reach(b, psf, kernel_size) for b in blur.reshape(-1))
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    padded_layer = np.pad(layer, pad, mode="reflect")
    stack = np.zeros((blur.shape[0], channels, height, width))
    for s in range(blur.shape[0]):
        planes = []
        for k in range(blur.shape[1]):
            alpha = (padded_layer == k).astype(float)
            layer_k = np.concatenate([padded * alpha, alpha[None]])
            planes.append(_scatter_reference(layer_k, lambda y, x: blur[s, k], pad, psf, kernel_size))
        for y in range(height):
            for x in range(width):
                colour, transmittance = np.zeros(channels), 1.0
                for plane in planes:
                    colour += transmittance * plane[:channels, y, x]
                    transmittance *= 1.0 - plane[channels, y, x]
                stack[s, :, y, x] = colour / (1.0 - transmittance)
    return stack


def _random(shape, seed, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _grid_radius(shape, seed, choices=GRID):
    rng = np.random.default_rng(seed)
    return rng.choice(choices, size=shape)


# disc


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("height, width", [(11, 13), (4, 5)])  # 4 x 5: the padding exceeds the image (repeated mirror)
def test_disc_equals_direct_scatter(height, width, dtype, tolerance):
    image = _random((2, 3, height, width), seed=1, dtype=dtype)
    radius = _grid_radius((2, 1, height, width), seed=2)
    got = render_disc(image, torch.as_tensor(radius, dtype=dtype))
    for n in range(2):
        expected = _disc_reference(image[n].double().numpy(), radius[n, 0])
        assert np.abs(got[n].double().numpy() - expected).max() <= tolerance


def test_disc_rounds_radius_to_the_step():
    image = _random((1, 3, 12, 14), seed=3)
    assert torch.equal(render_disc(image, torch.full((1, 1, 12, 14), 3.1, dtype=torch.float64)),
                       render_disc(image, torch.full((1, 1, 12, 14), 3.0, dtype=torch.float64)))
    finer = render_disc(image, torch.full((1, 1, 12, 14), 3.1, dtype=torch.float64), radius_step=0.1)
    assert (finer - render_disc(image, torch.full((1, 1, 12, 14), 3.0, dtype=torch.float64))).abs().max() > 1e-3


def test_disc_conserves_energy_inside_a_dark_border():
    # no light leaves the frame when every source lies >= ceil(R_max + 1/2) = 6 px from its edge (and the mirror is dark)
    image = torch.zeros(1, 3, 30, 34, dtype=torch.float64)
    image[..., 6:-6, 6:-6] = _random((1, 3, 18, 22), seed=4)
    radius = torch.as_tensor(_grid_radius((1, 1, 30, 34), seed=5, choices=np.arange(0, 21) * 0.25), dtype=torch.float64)
    out = render_disc(image, radius)
    assert out.sum(dim=(-2, -1))[0].tolist() == pytest.approx(image.sum(dim=(-2, -1))[0].tolist(), rel=1e-12)


@pytest.mark.parametrize("radius", [3.0, 6.25, 6.5])
def test_point_source_makes_a_disc_of_its_radius(radius):
    size, centre = 31, 15
    image = torch.zeros(1, 1, size, size, dtype=torch.float64)
    image[..., centre, centre] = 1.0
    out = render_disc(image, torch.full_like(image, radius))[0, 0].numpy()
    oy, ox = np.mgrid[:size, :size] - centre
    distance = np.hypot(oy, ox)
    peak = out.max()
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(out[distance >= radius + 0.5]).max() < 1e-12  # nothing beyond the rim's outer edge
    assert np.allclose(out[distance <= radius - 0.5], peak, rtol=0, atol=1e-12)  # flat inside
    assert np.array_equal(out > peak / 2, distance < radius)  # half coverage exactly on the rim (no pixel lies on it)
    # lattice bounds: pi (R - 1/sqrt2)^2 <= #{|o| <= R} <= pi (R + 1/sqrt2)^2, and for the coverage sum 1 / peak the
    # same with + 1/12 (the ramp's mean of (R + 1/2 - t)^2 over t in [0, 1])
    low, high = math.pi * (radius - 0.5**0.5) ** 2, math.pi * (radius + 0.5**0.5) ** 2
    assert low <= (distance < radius).sum() <= high
    assert low + math.pi / 12 <= 1.0 / peak <= high + math.pi / 12


def test_disc_below_half_a_pixel_returns_the_input():
    image = _random((2, 3, 9, 11), seed=6, dtype=torch.float32)
    radius = 0.62 * _random((2, 1, 9, 11), seed=7, dtype=torch.float32)  # rounds to <= 0.5
    assert torch.equal(render_disc(image, radius), image)


@pytest.mark.parametrize("radius", [0.75, 2.5, 9.0])  # 9 px > the 10 x 12 image: mirrored more than once
def test_disc_keeps_a_constant_image_constant(radius):
    image = torch.full((1, 3, 10, 12), 0.37, dtype=torch.float64)
    out = render_disc(image, torch.full((1, 1, 10, 12), radius, dtype=torch.float64))
    assert (out - 0.37).abs().max().item() < 1e-12


# layered


@pytest.mark.parametrize("psf, kernel_size", [("disc", 7), ("gaussian", 7), ("gaussian", None)])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_layered_equals_direct_per_layer_compositing(psf, kernel_size, dtype, tolerance):
    image = _random((3, 9, 10), seed=8, dtype=dtype)
    layer = torch.as_tensor(np.random.default_rng(9).integers(0, 3, size=(1, 9, 10)))
    choices = GRID if psf == "disc" else np.array([0.5, 1.0, 1.7, 2.5, 3.2])
    blur = _grid_radius((2, 3), seed=10, choices=choices)
    got = render_layers(image, layer, torch.as_tensor(blur, dtype=dtype), psf, kernel_size=kernel_size)
    expected = _layered_reference(image.double().numpy(), layer[0].numpy(), blur, psf, kernel_size)
    assert np.abs(got.double().numpy() - expected).max() <= tolerance


def test_depth_layers_are_uniform_in_inverse_depth():
    inverse = torch.tensor([[[1.0, 0.9, 0.5, 0.26, 0.25]]], dtype=torch.float64)
    layer, layer_depth = depth_layers(1.0 / inverse, num_layers=3)  # bins of 0.25 / m from 1 / m
    assert layer.tolist() == [[[0, 0, 2, 2, 2]]]
    assert (1.0 / layer_depth).tolist() == pytest.approx([0.95, 0.625, (0.5 + 0.26 + 0.25) / 3], rel=1e-12)  # empty: centre


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_single_depth_layered_equals_the_plain_model(dtype, tolerance):
    aif, depth = _random((3, 20, 24), seed=11, dtype=dtype), torch.full((1, 20, 24), 2.0, dtype=dtype)
    focus = [1.0, 2.0, 4.0]  # R = 6.85 (-> 6.75), 0, 3.29 (-> 3.25) px
    layered = render_stack(aif, depth, focus, CAMERA, "layered")
    assert (layered - render_stack(aif, depth, focus, CAMERA, "disc")).abs().max().item() <= tolerance
    # the gaussian model leaves sources beyond the frame out; given the mirrored scene it agrees everywhere
    mirrored_aif = torch.as_tensor(np.pad(aif.numpy(), ((0, 0), (3, 3), (3, 3)), mode="reflect"))
    mirrored_depth = torch.full((1, 26, 30), 2.0, dtype=dtype)
    gaussian = render_stack(mirrored_aif, mirrored_depth, focus, CAMERA, "gaussian")[..., 3:-3, 3:-3]
    layered_gaussian = render_stack(aif, depth, focus, CAMERA, "layered", layer_psf="gaussian")
    assert (layered_gaussian - gaussian).abs().max().item() <= tolerance


NEAR, FAR, EDGE = 1.6, 4.0, 16  # metres; the near plane covers columns < EDGE. R = 4.94 / 5.04 -> 5 px, either way


def _two_planes():
    aif = torch.zeros(3, 12, 32, dtype=torch.float64)
    aif[0, :, :EDGE] = 1.0  # near: red
    aif[1:, :, EDGE:] = _random((2, 12, 32 - EDGE), seed=12)  # far: a texture with no red
    depth = torch.full((1, 12, 32), FAR, dtype=torch.float64)
    depth[..., :EDGE] = NEAR
    return aif, depth


def _near_alpha(column: int, radius: float = 5.0) -> float:
    """The near plane's alpha blurred by the disc, at `column`: the kernel's weight on sources left of the edge."""
    reach, kernel = _kernel(radius, "disc")
    return float(kernel[:, column - EDGE + 1 + reach :].sum())  # offset ox = j - reach reaches from column - ox < EDGE


def test_defocused_near_plane_covers_the_in_focus_far_plane():
    aif, depth = _two_planes()
    layered = render_stack(aif, depth, [FAR], CAMERA, "layered")[0]
    near_alpha = torch.tensor([_near_alpha(c) for c in range(EDGE, 32)], dtype=torch.float64)
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)[:, None, None]
    expected_far = near_alpha * red + (1.0 - near_alpha) * aif[:, :, EDGE:]  # near's blurred colour "over" the far plane
    assert (layered[:, :, EDGE:] - expected_far).abs().max().item() < 1e-10
    assert near_alpha[0] > 0.3 and near_alpha[5] == 0.0  # covered next to the edge; sharp beyond R + 1/2
    assert (layered[:, :, :EDGE] - red).abs().max().item() < 1e-10  # the near side stays pure near colour
    # the gaussian gather passes in-focus pixels through: no near light on the far side at all
    gaussian = render_stack(aif, depth, [FAR], CAMERA, "gaussian")[0]
    assert gaussian[0, :, EDGE].abs().max().item() == 0.0
    # the disc scatter adds the near light without dimming the far plane (no occlusion)
    disc = render_stack(aif, depth, [FAR], CAMERA, "disc")[0]
    assert (disc[0, :, EDGE] - near_alpha[0]).abs().max() < 1e-10 and (disc[1:, :, EDGE] - aif[1:, :, EDGE]).abs().max() < 1e-10


def test_in_focus_near_plane_hides_the_defocused_far_plane():
    aif, depth = _two_planes()
    layered = render_stack(aif, depth, [NEAR], CAMERA, "layered")[0]
    assert (layered[:, :, :EDGE] - aif[:, :, :EDGE]).abs().max().item() < 1e-10  # sharp near plane, no far colour on it
    assert layered[0, :, EDGE:].abs().max().item() < 1e-10  # and none of its red on the far side
    assert (layered[1:, :, EDGE + 2] - aif[1:, :, EDGE + 2]).abs().max().item() > 1e-2  # the far plane is blurred
    disc = render_stack(aif, depth, [NEAR], CAMERA, "disc")[0]
    assert disc[1:, :, EDGE - 1].min().item() > 0.01  # the scatter lets the far colour bleed over the near plane


# shapes, dtypes, bad inputs


@pytest.mark.parametrize("psf", PSF_MODELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_render_stack_shape_dtype_and_focus_forms(psf, dtype):
    aif = _random((3, 10, 14), seed=13, dtype=dtype)
    depth = 1.0 + 4.0 * _random((1, 10, 14), seed=14, dtype=dtype)
    out = render_stack(aif, depth, (1.0, 2.5, 4.0), CAMERA, psf)
    assert out.shape == (3, 3, 10, 14) and out.dtype == dtype
    assert torch.equal(out, render_stack(aif, depth, torch.tensor([1.0, 2.5, 4.0]), CAMERA, psf))
    assert torch.isfinite(out).all()


def test_layered_all_in_focus_returns_the_input():
    aif = _random((3, 8, 9), seed=15)
    out = render_stack(aif, torch.full((1, 8, 9), 2.0, dtype=torch.float64), [2.0], CAMERA, "layered")
    assert torch.equal(out[0], aif)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"psf": "box"}, r"psf: expected one of \('gaussian', 'disc', 'layered'\), got 'box'"),
        ({"psf": "layered", "layer_psf": "box"}, r"layer_psf: expected one of \('disc', 'gaussian'\)"),
        ({"psf": "layered", "num_layers": 0}, "num_layers: expected a positive integer"),
        ({"psf": "disc", "radius_step": 0.0}, "radius_step: expected a positive number"),
        ({"kernel_size": 4}, "kernel_size"),
    ],
)
def test_render_stack_rejects_bad_options(arguments, message):
    aif, depth = _random((3, 6, 7), seed=16), torch.full((1, 6, 7), 2.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        render_stack(aif, depth, [1.0], CAMERA, **arguments)


def test_bad_shapes_name_the_argument():
    aif, depth = _random((3, 6, 7), seed=17), torch.full((1, 6, 7), 2.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="aif"):
        render_stack(aif[:1], depth, [1.0], CAMERA, "disc")
    with pytest.raises(ValueError, match="depth"):
        render_stack(aif, depth[..., :5], [1.0], CAMERA, "disc")
    with pytest.raises(ValueError, match="focus_distances"):
        render_stack(aif, depth, [[1.0]], CAMERA, "disc")
    with pytest.raises(ValueError, match="radius"):
        render_disc(aif[None], depth[None, :, :5])
    with pytest.raises(ValueError, match=r"layer: expected indices in \[0, 2\)"):
        render_layers(aif, torch.full((1, 6, 7), 2), torch.ones(1, 2, dtype=torch.float64))
