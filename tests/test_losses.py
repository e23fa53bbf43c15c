"""The self-supervised objective: each term against hand values and physical properties."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from daif.config import LossConfig
from daif.losses import (blurriness, coarse_aif, detail_errors, held_out_errors, objective, photometric_loss,
                         reconstruction_errors, smoothness_loss, term_names)
from daif.optics import render_focal_stack
from tests.helpers.references import high_pass_reference
from tests.helpers.scenes import CAMERA, FOCUS_DISTANCES, make_scenes


def _constant(value, height=16, width=16, channels=3):
    return torch.full((1, channels, height, width), value, dtype=torch.float64)


def test_photometric_loss_of_constant_images_by_hand():
    a, b, c1 = 0.3, 0.5, 0.01**2
    ssim = (2 * a * b + c1) / (a * a + b * b + c1)
    expected = 0.85 * (1 - ssim) + 0.15 * abs(a - b)
    assert float(photometric_loss(_constant(a), _constant(b), alpha=0.85)) == pytest.approx(expected, rel=1e-9)
    assert float(photometric_loss(_constant(a), _constant(b), alpha=0.0)) == pytest.approx(0.2, rel=1e-9)


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
        terms = objective(stack, focus, aif, predicted, CAMERA, config).terms
        (gradient,) = torch.autograd.grad(terms["blur"], predicted, allow_unused=True)
        magnitude = 0.0 if gradient is None else float(gradient.abs().sum())
        assert (magnitude == 0.0) if mode == "hard" else (magnitude > 1e-6), mode


def test_ground_truth_reconstructs_its_stack_and_a_wrong_depth_does_not():
    stack, focus, aif, depth = make_scenes(2, 32, 32, seed=2)
    right = objective(stack, focus, aif, depth, CAMERA).terms["recon"]
    wrong = objective(stack, focus, aif, torch.full_like(depth, 1.0), CAMERA).terms["recon"]
    assert float(right) < 1e-6
    assert float(wrong) > 0.02


def test_reconstruction_error_per_scene_by_hand():
    # constant AIFs re-render to themselves at any depth; each scene's stack is another constant
    aif = torch.cat([_constant(0.3), _constant(0.6)])
    stack = torch.cat([_constant(0.5), _constant(0.2)])[:, None].expand(-1, 3, -1, -1, -1)
    depth = torch.full((2, 1, 16, 16), 2.0, dtype=torch.float64)
    c1 = 0.01**2
    expected = [0.85 * (1 - (2 * a * b + c1) / (a * a + b * b + c1)) + 0.15 * abs(a - b) for a, b in ((0.3, 0.5), (0.6, 0.2))]
    got = reconstruction_errors(stack, torch.tensor([1.0, 2.0, 4.0]), aif, depth, CAMERA)
    assert got["recon"].shape == (2,) and got["recon"].tolist() == pytest.approx(expected, rel=1e-9)
    assert got["detail"].max() < 1e-12  # constant images have no high-pass content (to rounding)
    recon_only = reconstruction_errors(stack, torch.tensor([1.0, 2.0, 4.0]), aif, depth, CAMERA, detail=False)
    assert list(recon_only) == ["recon"] and recon_only["recon"].tolist() == pytest.approx(expected, rel=1e-9)


def test_reconstruction_error_is_zero_for_the_truth_of_a_ladder_stack_only():
    _, focus, aif, depth = make_scenes(2, 32, 32, seed=2)
    stack = render_focal_stack(aif, depth, focus, CAMERA, kernel_size=None)  # no window: the blur recon renders
    right = reconstruction_errors(stack, focus, aif, depth, CAMERA)
    wrong = reconstruction_errors(stack, focus, aif, torch.full_like(depth, 1.0), CAMERA)
    assert right["recon"].max() < 1e-6 and right["detail"].max() < 1e-4
    assert wrong["recon"].min() > 0.02 and wrong["detail"].min() > 0.05


def test_held_out_error_of_constant_stacks_by_hand():
    # a predictor returning the mean of the images it was given: constants re-render to themselves at any depth, so
    # E_bi is the photometric loss between image i's constant and the mean of the others'
    values = [(0.2, 0.4, 0.7), (0.5, 0.5, 0.1)]
    stack = torch.cat([torch.cat([_constant(v) for v in scene])[None] for scene in values])  # (2, 3, 3, 16, 16)
    depth = torch.full((2, 1, 16, 16), 2.0, dtype=torch.float64)
    got = held_out_errors(lambda given, _: (given.mean(dim=1), depth), stack, torch.tensor([1.0, 2.0, 4.0]), CAMERA)
    c1 = 0.01**2
    for b, scene in enumerate(values):
        for i, value in enumerate(scene):
            a = (sum(scene) - value) / 2
            expected = 0.85 * (1 - (2 * a * value + c1) / (a * a + value * value + c1)) + 0.15 * abs(a - value)
            assert float(got[b, i]) == pytest.approx(expected, rel=1e-9)


def test_held_out_error_never_shows_the_image_and_is_zero_only_through_the_stacks_own_psf():
    _, focus, aif, depth = make_scenes(2, 32, 32, seed=3)
    stack = render_focal_stack(aif, depth, focus, CAMERA, kernel_size=None, psf="disc")  # a round aperture
    given = []

    def oracle(images, distances):  # the true AIF and depth, whatever it is given; records what it was given
        given.append((images, distances))
        return aif, depth

    through_disc = held_out_errors(oracle, stack, focus, CAMERA, psf="disc")
    through_gaussian = held_out_errors(oracle, stack, focus, CAMERA, psf="gaussian")
    assert through_disc.shape == (2, 5) and through_disc.max() < 1e-6
    assert through_gaussian.min() > 10 * through_disc.max() and through_gaussian.mean() > 0.003
    for i, (images, distances) in enumerate(given[:5]):
        others = [k for k in range(5) if k != i]
        assert torch.equal(images, stack[:, others]) and torch.equal(distances, focus[:, others])
    with pytest.raises(ValueError, match="at least 2 images"):
        held_out_errors(oracle, stack[:, :1], focus[:, :1], CAMERA)


def _detail_reference(prediction: np.ndarray, target: np.ndarray, floor: float, window: int) -> float:
    """detail_errors of one scene from loop references: (T, 3, H, W) float64 arrays."""
    high_target, energy = high_pass_reference(target, window)
    high_prediction, _ = high_pass_reference(prediction, window)
    return float((np.abs(high_prediction - high_target) / (energy + floor)).mean())


def test_detail_errors_against_a_loop_reference_and_its_contrast_invariance():
    rng = np.random.default_rng(3)
    target = rng.uniform(0, 1, (2, 3, 3, 7, 9))
    prediction = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    got = detail_errors(torch.from_numpy(prediction), torch.from_numpy(target), floor=0.01, window=5)
    expected = [_detail_reference(prediction[b], target[b], 0.01, 5) for b in range(2)]
    assert got.tolist() == pytest.approx(expected, rel=1e-9)
    # the same scene at a hundredth of its contrast about grey (under one 8-bit level per pixel) scores the same
    # where the floor is small against its high-pass energy; the photometric loss falls with the contrast
    faint = lambda images: 0.5 + 0.01 * (images - 0.5)
    faint_detail = detail_errors(torch.from_numpy(faint(prediction)), torch.from_numpy(faint(target)), floor=1e-9, window=5)
    strong_detail = detail_errors(torch.from_numpy(prediction), torch.from_numpy(target), floor=1e-9, window=5)
    assert faint_detail.tolist() == pytest.approx(strong_detail.tolist(), rel=1e-6)
    strong_photometric = float(photometric_loss(torch.from_numpy(prediction), torch.from_numpy(target)))
    assert float(photometric_loss(torch.from_numpy(faint(prediction)), torch.from_numpy(faint(target)))) < 0.05 * strong_photometric


def test_detail_tells_a_faint_texture_at_the_wrong_depth_where_recon_barely_does():
    # the same scene at a fiftieth of its contrast (texture std 0.004, about one 8-bit grey level), re-rendered at
    # 1.5 times its depth: the photometric recon's rise falls below 2 % of the full-contrast scene's, the detail
    # term's keeps more than half of it
    stack, focus, aif, depth = make_scenes(1, 32, 32, seed=6)
    rise = {}
    for contrast in (1.0, 0.02):
        scaled = aif.mean() + contrast * (aif - aif.mean())
        scaled_stack = render_focal_stack(scaled, depth, focus, CAMERA, kernel_size=None)
        right = reconstruction_errors(scaled_stack, focus, scaled, depth, CAMERA)
        wrong = reconstruction_errors(scaled_stack, focus, scaled, depth * 1.5, CAMERA)
        rise[contrast] = {key: float(wrong[key] - right[key]) for key in right}
    assert rise[1.0]["recon"] > 0.05 and rise[1.0]["detail"] > 0.2
    assert rise[0.02]["recon"] < 0.02 * rise[1.0]["recon"]
    assert rise[0.02]["detail"] > 0.5 * rise[1.0]["detail"]


def test_gradient_routing_of_the_reconstruction_terms():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=8)
    config = LossConfig(recon_trains_depth=False)
    predicted_aif = (aif * 0.8 + 0.1).requires_grad_(True)
    predicted = (depth * 1.2).requires_grad_(True)
    terms = objective(stack, focus, predicted_aif, predicted, CAMERA, config).terms
    to_aif, to_depth = torch.autograd.grad(terms["recon"], (predicted_aif, predicted), allow_unused=True)
    assert float(to_aif.abs().sum()) > 1e-6 and to_depth is None  # recon trains the AIF only
    default = objective(stack, focus, predicted_aif, predicted, CAMERA, LossConfig()).terms
    to_aif, to_depth = torch.autograd.grad(default["recon"], (predicted_aif, predicted))
    assert float(to_aif.abs().sum()) > 1e-6 and float(to_depth.abs().sum()) > 1e-6  # the paper's: both
    detail = objective(stack, focus, predicted_aif, predicted, CAMERA, LossConfig(detail=1.0)).terms["detail"]
    to_aif, to_depth = torch.autograd.grad(detail, (predicted_aif, predicted))
    assert float(to_aif.abs().sum()) > 1e-6 and float(to_depth.abs().sum()) > 1e-6  # detail: both as well


def test_targets_at_other_focus_distances():
    stack, focus, aif, depth = make_scenes(1, 32, 32, seed=4)
    target_focus = torch.tensor([[0.35, 0.6, 1.0]])
    targets = render_focal_stack(aif, depth, target_focus, CAMERA, LossConfig().kernel_size)
    result = objective(stack, focus, aif, depth, CAMERA, LossConfig(), targets, target_focus)
    assert result.reconstruction.shape == (1, 3, 3, 32, 32)
    assert float(result.terms["recon"]) < 1e-6
    wrong = objective(stack, focus, aif, depth, CAMERA, LossConfig(), targets, torch.tensor([[1.0, 0.6, 0.35]]))
    assert float(wrong.terms["recon"]) > 0.02


def test_total_is_the_weighted_sum_of_the_terms():
    stack, focus, aif, depth = make_scenes(1, 24, 24, seed=5)
    config = LossConfig(smooth=3.0)
    noisy_aif = (aif + 0.1 * torch.randn(aif.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    result = objective(stack, focus, noisy_aif.requires_grad_(), depth * 0.9, CAMERA, config)
    terms = result.terms
    assert list(terms) == term_names(config) == ["recon", "blur", "aif_recon", "aif_blur", "smooth"]  # the paper's five
    expected = (1000 * terms["recon"] + 10 * terms["blur"] + 100 * terms["aif_recon"] + 10 * terms["aif_blur"]
                + 3 * terms["smooth"])
    assert float(result.total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert all(float(value.detach()) != 0 for value in terms.values())
    with_detail = objective(stack, focus, noisy_aif, depth * 0.9, CAMERA, dataclasses.replace(config, detail=2.0))
    assert list(with_detail.terms) == term_names(with_detail_config := dataclasses.replace(config, detail=2.0))
    assert "detail" in with_detail.terms and with_detail_config.weights["detail"] == 2.0
    assert float(with_detail.total.detach()) == pytest.approx(float((expected + 2 * with_detail.terms["detail"]).detach()), rel=1e-6)


def test_loss_config_defaults_and_checks():
    config = LossConfig()
    assert (config.recon, config.blur, config.aif_recon, config.aif_blur, config.smooth) == (1000, 10, 100, 10, 10)
    assert (config.smooth_beta, config.alpha, config.coarse_aif, config.kernel_size) == (2.5, 0.85, "hard", None)
    assert (config.recon_trains_depth, config.cost, config.cost_smooth) == (True, 0, 0)  # the paper's objective
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.recon = 1.0
    with pytest.raises(ValueError, match="coarse_aif"):
        LossConfig(coarse_aif="median")
    with pytest.raises(ValueError, match="kernel_size"):
        LossConfig(kernel_size=6)
    assert (config.detail, config.detail_floor) == (0, 1 / 255)  # off by default: the paper's five terms
    with pytest.raises(ValueError, match="detail"):
        LossConfig(detail=-1.0)
    with pytest.raises(ValueError, match="detail_floor"):
        LossConfig(detail_floor=0.0)


def test_bad_arguments_are_named():
    stack, focus, aif, depth = make_scenes(1, 16, 16)
    with pytest.raises(ValueError, match="depth"):
        objective(stack, focus, aif, depth[..., :8], CAMERA)
    with pytest.raises(ValueError, match="focus_distances"):
        objective(stack, focus[:, :3], aif, depth, CAMERA)
    with pytest.raises(ValueError, match="target_focus_distances"):
        objective(stack, focus, aif, depth, CAMERA, targets=stack)

    with pytest.raises(ValueError, match="cost: weighted 1.0, but it is neither one of the paper's terms"):
        objective(stack, focus, aif, depth, CAMERA, LossConfig(cost=1.0))  # the "search" head's term, without its hook
