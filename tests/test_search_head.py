"""The "search" depth head (daif.search_head): DAIF-Net refining the defocus search's cost volume, and its terms."""

from __future__ import annotations

import json
import math

import pytest
import torch

from daif.config import LossConfig
from daif.losses import objective, term_names
from daif.model import DAIFNet
from daif.search_head import cost_terms, expected_cost
from tests.helpers.scenes import CAMERA, make_scenes


def _search_net(**kwargs):
    torch.manual_seed(0)
    return DAIFNet(width=4, levels=2, near=0.25, far=2.5, depth_head="search", camera=CAMERA.to_dict(), **kwargs)


@pytest.mark.parametrize("intensity_weight", [0.2, 1.0])
def test_an_untrained_search_head_returns_the_soft_argmin_of_the_cost_and_its_coarse_aif(intensity_weight):
    """logit_j = -10 e^_j at initialisation (daif.search_head): depth = exp(sum_j softmax(logit)_j log c_j);
    with the "select" head the AIF weights are proportional to P(image k is the sharpest) + 1e-3."""
    from daif.search import cost_volume

    stack, focus, _, _ = make_scenes(2, 24, 24, seed=3)
    net = _search_net(aif_head="select")  # w = 0.2, its default; a call may read the volume with another
    with torch.no_grad():
        out = net(stack, focus, details=True, cost_intensity_weight=None if intensity_weight == 0.2 else intensity_weight)
    volume = cost_volume(stack, focus, CAMERA, 0.25, 2.5, 24)
    error = intensity_weight * volume.intensity + (1 - intensity_weight) * volume.gradient
    normalised = error / (error.mean(dim=1, keepdim=True) + 1e-3)
    p = torch.softmax(-10.0 * normalised, dim=1)
    expected_depth = torch.exp((p * volume.log_depths[:, None, None]).sum(dim=1, keepdim=True))
    torch.testing.assert_close(out["depth"], expected_depth, rtol=1e-4, atol=1e-5)
    chance = torch.zeros(2, stack.shape[1], 24, 24)
    for b in range(2):
        for j in range(24):
            chance[b, int(volume.sharpest[b, j])] += p[b, j]
    weights = (chance + 1e-3) / (chance + 1e-3).sum(dim=1, keepdim=True)
    torch.testing.assert_close(out["aif"], (weights[:, :, None] * stack).sum(dim=1), rtol=1e-4, atol=1e-5)
    assert out["probabilities"].shape == (2, 24, 24, 24)


def test_search_head_ignores_stack_order_and_uses_the_camera_it_is_given():
    from daif.optics import ThinLensCamera

    stack, focus, _, _ = make_scenes(1, 16, 16, seed=4)
    net = _search_net(aif_head="select")
    order = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        aif, depth = net(stack, focus)
        aif_p, depth_p = net(stack[:, order], focus[:, order])
        _, other = net(stack, focus, camera=ThinLensCamera(focal_length=7.2e-3, f_number=4.0, pixel_size=5.6e-6))
    torch.testing.assert_close(depth_p, depth, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(aif_p, aif, rtol=1e-4, atol=1e-5)
    assert float((other - depth).abs().max()) > 1e-2  # another lens, another cost volume
    with pytest.raises(ValueError, match="camera: the 'search' depth head needs the camera"):
        DAIFNet(width=4, levels=2, depth_head="search")(stack, focus)
    with pytest.raises(ValueError, match="depth_head: expected one of"):
        DAIFNet(depth_head="classify")
    with pytest.raises(ValueError, match="cost_intensity_weight: expected a number in"):
        DAIFNet(depth_head="search", cost_intensity_weight=-0.1)
    with pytest.raises(ValueError, match="candidates: expected an integer in \\[2, 256\\]"):
        DAIFNet(depth_head="search", candidates=1)
    rebuilt = DAIFNet.from_config(json.loads(json.dumps(net.config)))
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(stack, focus)[1], depth)


def test_a_search_model_saved_before_the_head_had_its_module_loads_as_it_was():
    """Its config held every option at the top level ("depth_mapping" too) and its weights held `cost_sharpness`
    at the network's top level; one saved before the weight existed was trained on the intensity error alone."""
    net = _search_net(aif_head="select")
    old_config = {**net.config, "depth_mapping": "sigmoid"}
    old_state = {("cost_sharpness" if name == "depth_head.cost_sharpness" else name): value for name, value in net.state_dict().items()}
    assert list(old_state)[0] == "cost_sharpness"  # the head's parameters lead, as the network's own did
    rebuilt = DAIFNet.from_config(old_config)
    rebuilt.load_state_dict(old_state)
    assert rebuilt.config == net.config and torch.equal(rebuilt.depth_head.cost_sharpness, net.depth_head.cost_sharpness)
    saved = {key: value for key, value in old_config.items() if key != "cost_intensity_weight"}
    assert net.depth_head.cost_intensity_weight == 0.2 and DAIFNet.from_config(saved).depth_head.cost_intensity_weight == 1.0


def test_training_reads_the_cost_volume_as_its_energy_scores_it_and_the_model_keeps_its_own_weight():
    """daif.search_head: training passes loss.cost_intensity_weight (1, the intensity error) to every forward pass; the
    saved model reads its own model.cost_intensity_weight (0.2)."""
    from daif.config import load_config
    from daif.train.loop import build_model, forward_objective

    config = load_config(preset="quickstart-search", overrides=["model.width=4", "model.levels=2"])
    torch.manual_seed(0)
    net = build_model(config, 0.25, 2.5, CAMERA)
    stack, focus, _, _ = make_scenes(1, 24, 24, seed=2)
    with torch.no_grad():
        in_training = forward_objective(net, net, stack, focus, CAMERA, config.loss)[0]["depth"]
        assert torch.equal(in_training, net(stack, focus, cost_intensity_weight=1.0)[1])
        assert float((in_training - net(stack, focus)[1]).abs().max()) > 1e-3
    assert (config.loss.cost_intensity_weight, net.config["cost_intensity_weight"]) == (1.0, 0.2)


def test_expected_cost_by_hand_and_its_gradient_sees_every_candidate():
    cost = torch.tensor([1.0, 2.0, 3.0, 6.0]).reshape(1, 4, 1, 1).expand(1, 4, 2, 2).contiguous()  # mean 3
    one_hot = torch.zeros(1, 4, 2, 2)
    one_hot[:, 1] = 1
    assert float(expected_cost(one_hot, cost)) == pytest.approx(2.0 / 3.0)
    logits = torch.zeros(1, 4, 2, 2, requires_grad=True)
    expected_cost(torch.softmax(logits, dim=1), cost).backward()
    # d/dlogit_j mean_x sum_i p_i e_i / 3 = p_j (e_j - sum_i p_i e_i) / 3 / (pixels), p uniform: mean e = 3
    expected = 0.25 * (torch.tensor([1.0, 2.0, 3.0, 6.0]) - 3.0) / 3.0 / 4
    torch.testing.assert_close(logits.grad[0, :, 0, 0], expected)


def test_cost_terms_of_the_objective():
    stack, focus, aif, depth = make_scenes(1, 16, 16)
    config = LossConfig(cost=1.0, cost_smooth=1.0, cost_smooth_beta=0.0, cost_intensity_weight=0.25)
    log_depths = torch.linspace(math.log(0.25), math.log(2.5), 24)
    step = float(log_depths[1] - log_depths[0])
    probabilities = torch.softmax(torch.randn(1, 24, 16, 16), dim=1)
    intensity, gradient = torch.rand(1, 24, 16, 16), torch.rand(1, 24, 16, 16)
    distribution = {"probabilities": probabilities, "cost_intensity": intensity, "cost_gradient": gradient, "log_depths": log_depths}
    cost = 0.25 * intensity + 0.75 * gradient  # the energy mixes the two parts by loss.cost_intensity_weight
    ramp = torch.exp(torch.arange(16.0) * step).reshape(1, 1, 1, 16).expand(1, 1, 16, 16)  # one step per column
    terms = objective(stack, focus, aif, ramp, CAMERA, config, extra_terms=cost_terms(config, distribution)).terms
    assert float(terms["cost"]) == pytest.approx(float((probabilities * cost).sum(dim=1).mean() / cost.mean()), rel=1e-5)
    assert float(terms["cost_smooth"]) == pytest.approx(1.0, rel=1e-4)  # beta 0: mean |dL/dx| = 1 step, dL/dy = 0
    assert list(terms) == ["recon", "blur", "aif_recon", "aif_blur", "smooth", "cost", "cost_smooth"] == term_names(config)
    only_cost = LossConfig(cost=1.0)
    assert list(objective(stack, focus, aif, ramp, CAMERA, only_cost, extra_terms=cost_terms(only_cost, distribution)).terms)[5:] == ["cost"]
