"""Depth by exhaustive defocus search, against scenes of known depth rendered here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.scenes import CAMERA, FOCUS_DISTANCES, textured_image
from daif.optics import ThinLensCamera, render_focal_stack
from daif.search import cost_volume, defocus_search, gradient_l1

NEAR, FAR, CANDIDATES = 0.25, 2.5, 25
STEP = math.log(FAR / NEAR) / (CANDIDATES - 1)  # log-depth spacing of the candidates
SIZE = 40


def _render(depth: torch.Tensor, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    aif = torch.stack([textured_image(SIZE, SIZE, generator, scales=(1, 2)) for _ in range(depth.shape[0])]).float()
    focus = torch.tensor(FOCUS_DISTANCES).expand(depth.shape[0], -1)
    return render_focal_stack(aif, depth, focus, CAMERA), focus, aif


def test_fronto_parallel_planes_are_found_within_half_a_step():
    # planes on and between the candidates, across the focus range (0.3 .. 1.8 m)
    depths = [NEAR * math.exp(STEP * index) for index in (3, 8, 12.5, 15.3, 19)]
    depth = torch.tensor(depths).reshape(-1, 1, 1, 1).expand(-1, 1, SIZE, SIZE).contiguous()
    stack, focus, _ = _render(depth)
    found = defocus_search(stack, focus, CAMERA, NEAR, FAR, CANDIDATES)
    assert found.shape == depth.shape
    error = (found.log() - depth.log()).abs() / STEP  # in candidate steps
    assert float(error.median()) < 0.25
    assert float(error[1:].max()) <= 0.5 + 1e-4
    # the nearest plane's sharpest image has sigma 1.3 px and the others 3 to 9.5 px, partly cut by the 7-px
    # window: matching the window kernels' variances (not the shape) leaves its error at up to 0.75 step
    assert float(error[0].max()) <= 0.75


def test_two_planes_each_found_away_from_their_edge():
    depth = torch.full((2, 1, SIZE, SIZE), 0.46)
    depth[..., SIZE // 2 :] = 1.5  # left half near, right half far
    depth[1] = depth[1].flip(-1)
    stack, focus, _ = _render(depth, seed=1)
    found = defocus_search(stack, focus, CAMERA, NEAR, FAR, CANDIDATES, window=5)
    margin = 3 + 2 + 1  # renderer half-window + error half-window + one
    interior = torch.ones_like(depth, dtype=torch.bool)
    interior[..., SIZE // 2 - margin : SIZE // 2 + margin] = False
    error = (found.log() - depth.log()).abs()[interior] / STEP
    assert float(error.max()) <= 0.5 + 1e-4


@pytest.mark.parametrize("plane", [0.6, 0.7])
def test_a_plane_every_image_blurs_past_the_window_is_put_before_the_nearest_focus(plane):
    # NYUv2 5-image camera: at 0.6 / 0.7 m every image has sigma >= 5.9 px, past what a 7-px window can
    # tell apart, so the stack only says "nearer than about 0.8 m", where image 0 still has sigma < 3 px
    camera, focus = ThinLensCamera.preset("nyuv2-5"), torch.tensor([1.0, 1.5, 2.5, 4.0, 6.0]).expand(3, -1)
    generator = torch.Generator().manual_seed(0)
    aif = torch.stack([textured_image(SIZE, SIZE, generator, scales=(1, 2)) for _ in range(3)]).float()
    stack = render_focal_stack(aif, torch.full((3, 1, SIZE, SIZE), plane), focus, camera)
    found = defocus_search(stack, focus, camera, 0.5, 8.0)[..., 4:-4, 4:-4]
    assert float(found.median()) < 0.8
    assert float((found < 1.0).float().mean()) > 0.8


def test_bad_arguments_are_named():
    stack, focus, _ = _render(torch.full((1, 1, SIZE, SIZE), 1.0))
    with pytest.raises(ValueError, match="near, far"):
        defocus_search(stack, focus, CAMERA, 2.0, 1.0)
    with pytest.raises(ValueError, match="candidates"):
        defocus_search(stack, focus, CAMERA, NEAR, FAR, candidates=1)
    with pytest.raises(ValueError, match="window"):
        defocus_search(stack, focus, CAMERA, NEAR, FAR, window=4)
    with pytest.raises(ValueError, match="focus_distances"):
        defocus_search(stack, focus[:, :3], CAMERA, NEAR, FAR)
    with pytest.raises(ValueError, match="intensity_weight: expected a number in"):
        defocus_search(stack, focus, CAMERA, NEAR, FAR, intensity_weight=1.5)
    with pytest.raises(ValueError, match="intensity_weight: expected a number in"):
        cost_volume(stack, focus, CAMERA, NEAR, FAR).error(-0.5)


def test_cost_volume_is_least_at_the_true_depth_and_names_each_candidates_source():
    # a plane on candidate 10: its error is the least of all candidates at every pixel
    depth = torch.full((2, 1, SIZE, SIZE), NEAR * math.exp(STEP * 10))
    stack, focus, _ = _render(depth)
    volume = cost_volume(stack, focus, CAMERA, NEAR, FAR, CANDIDATES)
    assert volume.intensity.shape == volume.gradient.shape == (2, CANDIDATES, SIZE, SIZE)
    assert volume.sharpest.shape == (2, CANDIDATES) and volume.step == pytest.approx(STEP, rel=1e-5)
    for part in (volume.intensity, volume.gradient):
        assert float((part[..., 4:-4, 4:-4].argmin(dim=1) == 10).float().mean()) > 0.95
    # the source of candidate c is the image of least thin-lens defocus at c, by method.md's formula
    aperture = CAMERA.focal_length / CAMERA.f_number
    for j in range(CANDIDATES):
        d = math.exp(float(volume.log_depths[j]))
        blur = [aperture * CAMERA.focal_length * abs(d - s) / (d * (s - CAMERA.focal_length)) for s in FOCUS_DISTANCES]
        assert int(volume.sharpest[0, j]) == min(range(len(blur)), key=blur.__getitem__)


def test_gradient_l1_equals_a_loop_over_pixels():
    difference = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gradient = gradient_l1(difference)
    expected = torch.zeros_like(difference)
    for row in range(5):
        for column in range(7):
            here = difference[..., row, column]
            if column + 1 < 7:
                expected[..., row, column] += (difference[..., row, column + 1] - here).abs()
            if row + 1 < 5:
                expected[..., row, column] += (difference[..., row + 1, column] - here).abs()
    assert torch.allclose(gradient, expected, atol=1e-12)


def test_the_gradient_cost_is_blind_to_each_images_brightness():
    # a constant added to image k shifts every residual r_jk by a constant (the renderer's weights sum to 1),
    # which the forward differences remove; the intensity error sees it
    depth = torch.full((1, 1, SIZE, SIZE), NEAR * math.exp(STEP * 10))
    stack, focus, _ = _render(depth)
    offsets = torch.tensor([0.05, -0.03, 0.0, 0.08, -0.06]).reshape(1, 5, 1, 1, 1)
    plain, shifted = (cost_volume(images, focus, CAMERA, NEAR, FAR, CANDIDATES) for images in (stack, stack + offsets))
    assert float((plain.gradient - shifted.gradient).abs().max()) < 1e-4
    assert float((plain.intensity - shifted.intensity).abs().max()) > 1e-2
    torch.testing.assert_close(shifted.error(0.25), 0.25 * shifted.intensity + 0.75 * shifted.gradient)


def _layered_stack(background: torch.Tensor, card: torch.Tensor, card_mask: torch.Tensor, depths: tuple[float, float]):
    """A near card over a background plane, each blurred by its own thin-lens Gaussian and composited with
    the card's blurred coverage as alpha (a scatter model, unlike the renderer's gather): the blurred card
    spreads over the sharp background in the images focused behind it. Full Gaussians, no window."""
    images = []
    for focus in FOCUS_DISTANCES:
        blurred = []
        for image, depth in ((background, depths[0]), (torch.cat([card * card_mask, card_mask]), depths[1])):
            aperture, f = CAMERA.focal_length / CAMERA.f_number, CAMERA.focal_length  # thin-lens CoC, method.md
            sigma = max(aperture * f * abs(depth - focus) / (depth * (focus - f)) / (2 * CAMERA.pixel_size), 1e-3)
            radius = int(2 * sigma + 1)
            taps = torch.exp(-2.0 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)  # std sigma / 2
            taps = (taps / taps.sum())[None, None]
            planes = F.pad(image[:, None], (radius, radius, radius, radius), mode="replicate")
            planes = F.conv2d(F.conv2d(planes, taps[..., None, :]), taps[..., :, None])[:, 0]
            blurred.append(planes)
        (far_image, (near_colour, alpha)) = blurred[0], (blurred[1][:3], blurred[1][3:])
        images.append(near_colour + (1 - alpha) * far_image)
    return torch.stack(images)[None].float(), torch.tensor(FOCUS_DISTANCES)[None]


def test_the_background_beside_a_blurred_near_card_is_found_behind_it():
    # background at 1.6 m (sharp in the 1.2 and 1.8 m images), a dark card at 0.35 m over the left third: in the
    # images focused at 0.75..1.8 m its blur (sigma 5.9..8.9 px) spreads over the background beside it, which
    # the intensity error reads as nearer (seeds 0..3: 6 to 13 % of the band within a step, 95 to 99 % by the
    # gradient error alone, about half with the default mix w = 0.2)
    size, edge = 48, 16
    generator = torch.Generator().manual_seed(0)
    background, card = textured_image(size, size, generator, scales=(1, 2)), textured_image(size, size, generator, scales=(1, 2))
    mask = torch.zeros(1, size, size, dtype=torch.float64)
    mask[..., :edge] = 1
    stack, focus = _layered_stack(background, 0.3 * card, mask, (1.6, 0.35))
    band = (slice(4, -4), slice(edge + 2, edge + 10))  # 2..9 px from the card, away from the top and bottom
    found = {weight: defocus_search(stack, focus, CAMERA, NEAR, FAR, CANDIDATES, intensity_weight=weight)[0, 0][band]
             for weight in (0.0, 0.2, 1.0)}
    behind = {weight: float(((depth.log() - math.log(1.6)).abs() < STEP).float().mean()) for weight, depth in found.items()}
    assert behind[0.0] >= 0.9 and behind[1.0] < 0.5 and behind[0.2] > behind[1.0] + 0.2, behind
