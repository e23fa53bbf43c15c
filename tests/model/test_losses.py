"""The self-supervised objective: each term against hand values and physical properties."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import CAMERA, FOCUS_DISTANCES, make_scenes
from daif.losses import (
    LossConfig,
    blurriness,
    coarse_aif,
    gaussian_taps,
    jitter_depth,
    laplacian_of_gaussian_kernel,
    objective,
    photometric_loss,
    smoothness_loss,
    ssim_map,
    total_loss,
)
from daif.optics import render_focal_stack


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


def test_photometric_loss_of_constant_images_by_hand():
    a, b, c1 = 0.3, 0.5, 0.01**2
    ssim = (2 * a * b + c1) / (a * a + b * b + c1)
    expected = 0.85 * (1 - ssim) + 0.15 * abs(a - b)
    assert float(photometric_loss(_constant(a), _constant(b), alpha=0.85)) == pytest.approx(expected, rel=1e-9)
    assert float(photometric_loss(_constant(a), _constant(b), alpha=0.0)) == pytest.approx(0.2, rel=1e-9)


def test_kernels():
    g = gaussian_taps(11, 1.5, dtype=torch.float64)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(g[5] / g[6]) == pytest.approx(math.exp(1 / (2 * 1.5**2)), rel=1e-12)
    log = laplacian_of_gaussian_kernel(7, 1.0, dtype=torch.float64)
    assert float(log.sum()) == pytest.approx(0.0, abs=1e-12)
    assert float(log[3, 3]) < 0 < float(log[0, 0])  # negative centre, positive surround


def test_blurriness_by_hand():
    # a constant image has zero LoG response: -0.25 log(0 + 1e-8)
    assert float(blurriness(_constant(0.4))) == pytest.approx(-0.25 * math.log(1e-8), rel=1e-9)
    # a grey impulse of value v far from the border: energy = v^2 sum(LoG^2)
    r = np.arange(7) - 3.0
    r2 = r[:, None] ** 2 + r[None, :] ** 2
    log = -(1 / math.pi) * (1 - r2 / 2) * np.exp(-r2 / 2)
    log -= log.mean()
    image = torch.zeros(1, 3, 15, 15, dtype=torch.float64)
    image[0, :, 7, 7] = 0.5  # grey 0.5 (luma weights sum to 1)
    energy = 0.25 * float((log**2).sum())
    expected = -0.25 * math.log(energy / (225 - (0.5 / 225) ** 2) + 1e-8)
    assert float(blurriness(image)) == pytest.approx(expected, rel=1e-9)


def test_blurriness_grows_with_defocus():
    stack, focus, aif, depth = make_scenes(2, 32, 32, seed=3)
    sharp = blurriness(aif)
    blurred = blurriness(render_focal_stack(aif, torch.full_like(depth, 3.0), [0.3], CAMERA)[:, 0])
    assert bool((blurred > sharp + 0.1).all())


def test_smoothness_by_hand():
    depth = torch.arange(4, dtype=torch.float64).reshape(1, 1, 1, 4).expand(1, 1, 3, 4)  # dD/dx = 1, dD/dy = 0
    flat = torch.zeros(1, 3, 3, 4, dtype=torch.float64)
    assert float(smoothness_loss(depth, flat, beta=2.5)) == pytest.approx(1.0)
    edges = flat.clone()
    edges[..., 2:] = 1.0  # an AIF step between columns 1 and 2: one of three x-gradients is down-weighted
    assert float(smoothness_loss(depth, edges, beta=2.5)) == pytest.approx((2 + math.exp(-2.5)) / 3)


def _depth_at_focus(height=8, width=12):
    """Left half at focus distance index 1, right half at index 3."""
    depth = torch.full((1, 1, height, width), FOCUS_DISTANCES[1], dtype=torch.float64)
    depth[..., width // 2 :] = FOCUS_DISTANCES[3]
    return depth


def test_hard_coarse_aif_picks_the_image_focused_at_the_depth():
    stack = torch.arange(5, dtype=torch.float64).reshape(1, 5, 1, 1, 1).expand(1, 5, 3, 8, 12)  # image k == k
    picked = coarse_aif(stack, torch.tensor(FOCUS_DISTANCES, dtype=torch.float64), _depth_at_focus(), CAMERA, "hard")
    assert picked.shape == (1, 3, 8, 12)
    assert picked[..., :6].unique().tolist() == [1.0] and picked[..., 6:].unique().tolist() == [3.0]
    soft = coarse_aif(stack, torch.tensor(FOCUS_DISTANCES, dtype=torch.float64), _depth_at_focus(), CAMERA, "soft", 0.01)
    torch.testing.assert_close(soft, picked)  # a cold softmin is the arg-min


def test_coarse_aif_gradient_to_depth_is_zero_for_hard_and_not_for_soft():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=1)
    stack.requires_grad_(True)  # so the hard blur term has a graph at all; the gradient must skip depth
    for mode, temperature in (("hard", 1.0), ("soft", 1.0)):
        predicted = (depth * 1.1).requires_grad_(True)
        config = LossConfig(coarse_aif=mode, temperature=temperature)
        terms = total_loss(stack, focus, aif, predicted, CAMERA, config)[1]
        (gradient,) = torch.autograd.grad(terms["blur"], predicted, allow_unused=True)
        magnitude = 0.0 if gradient is None else float(gradient.abs().sum())
        assert (magnitude == 0.0) if mode == "hard" else (magnitude > 1e-6), mode


def test_ground_truth_reconstructs_its_stack_and_a_wrong_depth_does_not():
    stack, focus, aif, depth = make_scenes(2, 32, 32, seed=2)
    right = total_loss(stack, focus, aif, depth, CAMERA)[1]["recon"]
    wrong = total_loss(stack, focus, aif, torch.full_like(depth, 1.0), CAMERA)[1]["recon"]
    assert float(right) < 1e-6
    assert float(wrong) > 0.02


def test_coarse_recon_renders_the_coarse_aif_with_the_predicted_depth():
    # depth exactly on the 3rd focus plane: that image is unblurred there, so the coarse AIF is the true AIF
    # and re-rendering it reproduces the stack exactly; a coarse AIF is otherwise blurrier than the AIF
    focus_value = FOCUS_DISTANCES[2]
    aif = make_scenes(1, 24, 24, seed=7)[2]
    on_plane = torch.full((1, 1, 24, 24), focus_value)
    focus = torch.tensor(FOCUS_DISTANCES).expand(1, -1)
    stack = render_focal_stack(aif, on_plane, focus, CAMERA)
    config = LossConfig(coarse_recon=1.0)
    assert float(objective(stack, focus, aif, on_plane, CAMERA, config).terms["coarse_recon"]) < 1e-6
    wrong = objective(stack, focus, aif, on_plane * 1.6, CAMERA, config)
    expected = photometric_loss(render_focal_stack(wrong.coarse_aif, on_plane * 1.6, focus, CAMERA), stack)
    assert float(wrong.terms["coarse_recon"]) == pytest.approx(float(expected), rel=1e-6)
    assert float(wrong.terms["coarse_recon"]) > 0.02


def test_gradient_routing_of_the_reconstruction_terms():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=8)
    config = LossConfig(coarse_recon=1.0, recon_trains_depth=False)
    predicted_aif = (aif * 0.8 + 0.1).requires_grad_(True)
    predicted = (depth * 1.2).requires_grad_(True)
    terms = objective(stack, focus, predicted_aif, predicted, CAMERA, config).terms
    to_aif, to_depth = torch.autograd.grad(terms["recon"], (predicted_aif, predicted), allow_unused=True, retain_graph=True)
    assert float(to_aif.abs().sum()) > 1e-6 and to_depth is None  # recon trains the AIF only
    to_aif, to_depth = torch.autograd.grad(terms["coarse_recon"], (predicted_aif, predicted), allow_unused=True)
    assert to_aif is None and float(to_depth.abs().sum()) > 1e-6  # coarse_recon trains depth only
    default = objective(stack, focus, predicted_aif, predicted, CAMERA, LossConfig()).terms
    assert float(torch.autograd.grad(default["recon"], predicted)[0].abs().sum()) > 1e-6  # the paper's: both
    assert "coarse_recon" not in default  # weight 0: not computed in training ...
    with torch.no_grad():  # ... but reported in validation
        assert float(objective(stack, focus, predicted_aif, predicted, CAMERA, LossConfig()).terms["coarse_recon"]) > 0


def test_targets_at_other_focus_distances():
    stack, focus, aif, depth = make_scenes(1, 32, 32, seed=4)
    target_focus = torch.tensor([[0.35, 0.6, 1.0]])
    targets = render_focal_stack(aif, depth, target_focus, CAMERA)
    result = objective(stack, focus, aif, depth, CAMERA, LossConfig(), targets, target_focus)
    assert result.reconstruction.shape == (1, 3, 3, 32, 32)
    assert float(result.terms["recon"]) < 1e-6
    wrong = objective(stack, focus, aif, depth, CAMERA, LossConfig(), targets, torch.tensor([[1.0, 0.6, 0.35]]))
    assert float(wrong.terms["recon"]) > 0.02


def test_total_is_the_weighted_sum_of_the_terms():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=5)
    config = LossConfig(sharpness=3.0)
    noisy_aif = (aif + 0.1 * torch.randn(aif.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    total, terms = total_loss(stack, focus, noisy_aif.requires_grad_(), depth * 0.9, CAMERA, config)
    assert set(terms) == {"recon", "blur", "aif_recon", "aif_blur", "smooth", "sharpness"}  # coarse_recon: weight 0
    expected = (1000 * terms["recon"] + 10 * terms["blur"] + 100 * terms["aif_recon"] + 10 * terms["aif_blur"]
                + 10 * terms["smooth"] + 3 * terms["sharpness"])
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert all(float(value.detach()) != 0 for name, value in terms.items() if name != "sharpness")


def test_loss_config_defaults_and_checks():
    config = LossConfig()
    assert (config.recon, config.blur, config.aif_recon, config.aif_blur, config.smooth) == (1000, 10, 100, 10, 10)
    assert (config.smooth_beta, config.alpha, config.sharpness, config.coarse_aif, config.kernel_size) == (2.5, 0.85, 0, "hard", 7)
    assert (config.coarse_recon, config.recon_trains_depth, config.depth_jitter) == (0, True, 0)  # the paper's objective
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.recon = 1.0
    with pytest.raises(ValueError, match="coarse_aif"):
        LossConfig(coarse_aif="median")
    with pytest.raises(ValueError, match="depth_jitter"):
        LossConfig(depth_jitter=-0.1)


def test_bad_arguments_are_named():
    stack, focus, aif, depth = make_scenes(1, 16, 16)
    with pytest.raises(ValueError, match="depth"):
        total_loss(stack, focus, aif, depth[..., :8], CAMERA)
    with pytest.raises(ValueError, match="focus_distances"):
        total_loss(stack, focus[:, :3], aif, depth, CAMERA)
    with pytest.raises(ValueError, match="target_focus_distances"):
        total_loss(stack, focus, aif, depth, CAMERA, targets=stack)


def test_sharpness_penalises_an_aif_blurrier_than_the_coarse_aif():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=6)
    flat = torch.full_like(aif, 0.5)  # blurriness -0.25 log(1e-8), the largest possible
    result = objective(stack, focus, flat, depth, CAMERA, LossConfig(sharpness=1.0))
    expected = -0.25 * math.log(1e-8) - float(blurriness(result.coarse_aif)[0])
    assert float(result.terms["sharpness"]) == pytest.approx(expected, rel=1e-5)
    assert float(objective(stack, focus, aif, depth, CAMERA).terms["sharpness"]) == 0.0  # the true AIF is sharper


def test_depth_jitter_is_a_log_normal_factor_per_pixel():
    depth = torch.full((4, 1, 128, 128), 2.0, dtype=torch.float64)
    jittered = jitter_depth(depth, 0.2, torch.Generator().manual_seed(0))
    log_factor = torch.log(jittered / depth)
    assert abs(float(log_factor.mean())) < 0.005 and float(log_factor.std()) == pytest.approx(0.2, rel=0.02)
    assert float(torch.corrcoef(torch.stack([log_factor[..., 1:].flatten(), log_factor[..., :-1].flatten()]))[0, 1]) < 0.02
    again = jitter_depth(depth, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(jittered, again)  # the generator fixes the draw
    assert jitter_depth(depth, 0.2, None) is depth and jitter_depth(depth, 0.0, torch.Generator()) is depth


def test_depth_jitter_reaches_depth_inside_a_dead_zone():
    # The predicted depth sits on the one focus plane: the renderer passes every pixel through (defocus 0),
    # so the reconstruction does not depend on depth there and its gradient is exactly zero. The target was
    # rendered at a depth 40 % further, blurred. Jittered renders land outside the dead zone: a gradient.
    aif = make_scenes(1, 24, 24, seed=9)[2]
    focus = torch.tensor([[FOCUS_DISTANCES[2]]])
    on_plane = torch.full((1, 1, 24, 24), FOCUS_DISTANCES[2])
    target = render_focal_stack(aif, on_plane * 1.4, focus, CAMERA)
    assert float((target - aif[:, None]).abs().mean()) > 0.01  # the target is blurred
    config = LossConfig(depth_jitter=0.3)
    predicted = on_plane.clone().requires_grad_(True)
    still = objective(target, focus, aif, predicted, CAMERA, config).terms["recon"]  # no generator: no jitter
    assert float(torch.autograd.grad(still, predicted)[0].abs().sum()) == 0.0
    moved = objective(target, focus, aif, predicted, CAMERA, config, generator=torch.Generator().manual_seed(3)).terms["recon"]
    assert float(torch.autograd.grad(moved, predicted)[0].abs().sum()) > 1e-6
    assert float(moved.detach()) < float(still.detach())  # some pixels now render blurred, closer to the target


def test_soft_coarse_recon_trains_the_selection_and_tends_to_the_hard_one():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=14)
    predicted = (depth * 1.3).requires_grad_(True)
    config = LossConfig(coarse_recon=1.0, coarse_recon_temperature=2.0)
    term = objective(stack, focus, aif, predicted, CAMERA, config).terms["coarse_recon"]
    through_weights = torch.autograd.grad(term, predicted)[0]
    # by hand: the same soft coarse AIF, held fixed; the difference is the gradient through its weights
    source = coarse_aif(stack, focus, predicted, CAMERA, "soft", 2.0).detach()
    held = photometric_loss(render_focal_stack(source, predicted, focus, CAMERA), stack)
    assert float(term.detach()) == pytest.approx(float(held.detach()), rel=1e-6)
    assert float((through_weights - torch.autograd.grad(held, predicted)[0]).abs().sum()) > 1e-4
    hard = objective(stack, focus, aif, predicted, CAMERA, LossConfig(coarse_recon=1.0)).terms["coarse_recon"]
    sharp = objective(stack, focus, aif, predicted, CAMERA, LossConfig(coarse_recon=1.0, coarse_recon_temperature=1e-3))
    assert float(sharp.terms["coarse_recon"].detach()) == pytest.approx(float(hard.detach()), rel=1e-5)  # T -> 0: arg-min
    with pytest.raises(ValueError, match="coarse_recon_temperature"):
        LossConfig(coarse_recon_temperature=-1.0)
