"""DAIF-Net: shapes, ranges, any stack size/order, config round trip, depth mappings."""

from __future__ import annotations

import json
import math

import pytest
import torch

from daif.model import DAIFNet, map_depth
from daif.optics import ThinLensCamera

LENS = ThinLensCamera.preset("nyuv2-5").to_dict()  # the "select" head's defocus prior needs a camera


def _inputs(batch, size, height, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    stack = torch.rand(batch, size, 3, height, width, generator=generator)
    focus = 0.5 + 5 * torch.rand(batch, size, generator=generator)
    return stack, focus


def _small_net(**kwargs):
    torch.manual_seed(0)
    return DAIFNet(width=4, camera=LENS, **kwargs)


@pytest.mark.parametrize("height, width", [(240, 320), (37, 23), (5, 3)])
def test_any_image_size_gives_full_size_outputs_in_range(height, width):
    net = _small_net(levels=4, near=0.2, far=7.0)
    stack, focus = _inputs(1, 2, height, width)
    with torch.no_grad():
        aif, depth = net(stack, focus)
    assert aif.shape == (1, 3, height, width) and depth.shape == (1, 1, height, width)
    assert float(aif.min()) >= 0.0 and float(aif.max()) <= 1.0
    assert float(depth.min()) >= 0.2 and float(depth.max()) <= 7.0


@pytest.mark.parametrize("aif_head", ["rgb", "select"])
@pytest.mark.parametrize("stack_size", [1, 3, 7])
def test_any_stack_size(stack_size, aif_head):
    net = _small_net(levels=3, aif_head=aif_head)
    stack, focus = _inputs(2, stack_size, 20, 28)
    with torch.no_grad():
        aif, depth = net(stack, focus)
    assert aif.shape == (2, 3, 20, 28) and depth.shape == (2, 1, 20, 28)
    assert bool(torch.isfinite(depth).all())


@pytest.mark.parametrize("aif_head", ["rgb", "select"])
def test_permuting_the_stack_leaves_the_output_unchanged(aif_head):
    net = _small_net(levels=3, aif_head=aif_head)
    stack, focus = _inputs(2, 5, 24, 30)
    order = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        aif, depth = net(stack, focus)
        aif_permuted, depth_permuted = net(stack[:, order], focus[:, order])
        aif_other, depth_other = net(stack[:, :4], focus[:, :4])
    torch.testing.assert_close(aif_permuted, aif, atol=1e-6, rtol=0)
    torch.testing.assert_close(depth_permuted, depth, atol=1e-6, rtol=0)
    assert float((depth_other - depth).abs().max()) > 1e-4  # dropping an image does change it


def test_duplicating_an_image_changes_nothing_because_fusion_is_a_maximum():
    net = _small_net(levels=2)
    stack, focus = _inputs(1, 2, 16, 16)
    with torch.no_grad():
        aif, depth = net(stack, focus)
        aif_dup, depth_dup = net(stack[:, [0, 1, 1, 0]], focus[:, [0, 1, 1, 0]])
    torch.testing.assert_close(aif_dup, aif, atol=1e-6, rtol=0)
    torch.testing.assert_close(depth_dup, depth, atol=1e-6, rtol=0)


def test_focus_distances_reach_the_network_and_shared_focus_vector_is_accepted():
    net = _small_net(levels=2)
    stack, focus = _inputs(2, 3, 16, 16)
    with torch.no_grad():
        _, depth = net(stack, focus)
        _, depth_shifted = net(stack, focus + 1.0)
        _, depth_vector = net(stack, torch.tensor([1.0, 2.0, 3.0]))
        _, depth_matrix = net(stack, torch.tensor([[1.0, 2.0, 3.0]] * 2))
    assert float((depth_shifted - depth).abs().max()) > 1e-5
    torch.testing.assert_close(depth_vector, depth_matrix)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = DAIFNet(width=16, levels=2)
    stack, focus = _inputs(1, 2, 16, 16)
    aif, depth = net(stack, focus)
    (aif.mean() + depth.mean()).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.parameters())


def test_config_is_json_and_rebuilds_the_same_model():
    net = _small_net(levels=2, depth_mapping="max", near=0.3, far=4.0, focus_scale=2.0)
    config = json.loads(json.dumps(net.config))
    assert config == {"width": 4, "levels": 2, "depth_mapping": "max", "near": 0.3, "far": 4.0, "focus_scale": 2.0, "aif_head": "rgb",
                      "depth_head": "regress", "camera": LENS, "candidates": 24, "kernel_size": 7,
                      "cost_intensity_weight": 0.2, "aif_temperature": 1.0}
    rebuilt = DAIFNet.from_config(config)
    rebuilt.load_state_dict(net.state_dict())
    stack, focus = _inputs(1, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(stack, focus), net(stack, focus))
    assert DAIFNet(far=6.0).config["focus_scale"] == 6.0  # default: the far end of the depth range


def test_depth_mappings_by_hand():
    raw = torch.tensor([0.0, 1.0, 2.0]).reshape(1, 1, 1, 3)
    near, far = 1.0, 3.0
    sigmoid = map_depth(raw, "sigmoid", near, far).flatten().tolist()
    assert sigmoid == pytest.approx([1 + 2 / (1 + math.exp(-x)) for x in (0.0, 1.0, 2.0)], rel=1e-6)
    softplus = [math.log1p(math.exp(x)) for x in (0.0, 1.0, 2.0)]
    expected_max = [1 + 2 * s / softplus[-1] for s in softplus]
    assert map_depth(raw, "max", near, far).flatten().tolist() == pytest.approx(expected_max, abs=1e-5)


def _pure_colour_stack(colour, size=5, height=24, width=32, seed=0):
    """(1, S, 3, H, W): every pixel of every image is `colour` times a random brightness in [0.3, 1]."""
    generator = torch.Generator().manual_seed(seed)
    brightness = 0.3 + 0.7 * torch.rand(1, size, 1, height, width, generator=generator)
    return brightness * torch.tensor(colour).reshape(1, 1, 3, 1, 1)


@pytest.mark.parametrize("colour", [(1.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.9, 0.5, 0.1)])
def test_select_head_keeps_the_colour_of_a_pure_colour_stack(colour):
    """Issue 12: a magenta region came out blue-purple, green came out yellow. With the "select" head the
    AIF is a per-pixel mixture of the input images, so a stack of one hue gives that hue at every pixel
    (chromaticity r:g:b = the colour's), whatever the weights; the "rgb" head starts grey and has to learn it."""
    stack = _pure_colour_stack(colour)
    focus = torch.tensor([1.0, 1.5, 2.5, 4.0, 6.0])
    for seed in range(3):
        torch.manual_seed(seed)
        net = DAIFNet(width=8, levels=2, aif_head="select", camera=LENS)
        for parameter in net.select.parameters():  # weights far from uniform: still one hue
            torch.nn.init.normal_(parameter, std=1.0)
        with torch.no_grad():
            aif, _ = net(stack, focus)
        chromaticity = aif / aif.sum(dim=1, keepdim=True)
        expected = torch.tensor(colour).reshape(1, 3, 1, 1) / sum(colour)
        torch.testing.assert_close(chromaticity, expected.expand_as(chromaticity), atol=1e-5, rtol=0)
        assert bool((aif >= stack.amin(dim=1) - 1e-6).all() and (aif <= stack.amax(dim=1) + 1e-6).all())  # a convex mixture
    with torch.no_grad():
        grey, _ = DAIFNet(width=8, levels=2, aif_head="rgb")(stack, focus)
    assert float((grey / grey.sum(dim=1, keepdim=True) - expected).abs().max()) > 0.1  # the "rgb" head has no such guarantee


def test_an_untrained_select_head_returns_the_soft_coarse_aif_of_its_own_depth():
    """With the "regress" depth head the selection logit of image k is -sigma(D, s_k) / T plus a learned part
    that starts at zero: the AIF is sum_k softmax_k(-sigma_k / T) S_k, the soft coarse AIF of the predicted depth
    (computed here by daif.losses.coarse_aif from the returned depth). T = 0 turns the prior off (a uniform mix)."""
    from daif.losses import coarse_aif

    stack, focus = _inputs(2, 5, 20, 20, seed=4)
    camera = ThinLensCamera.from_dict(LENS)
    for temperature in (0.5, 2.0):
        net = _small_net(levels=2, near=0.5, far=8.0, aif_head="select", aif_temperature=temperature)
        with torch.no_grad():
            aif, depth = net(stack, focus)
        torch.testing.assert_close(aif, coarse_aif(stack, focus, depth, camera, "soft", temperature), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        aif, _ = _small_net(levels=2, aif_head="select", aif_temperature=0.0)(stack, focus)
    torch.testing.assert_close(aif, stack.mean(dim=1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="camera"):
        DAIFNet(width=4, levels=2, aif_head="select")(stack, focus)


def test_bad_arguments_are_named():
    net = _small_net(levels=2)
    stack, focus = _inputs(1, 2, 16, 16)
    with pytest.raises(ValueError, match="stack"):
        net(stack[0], focus)
    with pytest.raises(ValueError, match="focus_distances"):
        net(stack, focus[:, :1])
    with pytest.raises(ValueError, match="depth_mapping"):
        DAIFNet(depth_mapping="linear")
    with pytest.raises(ValueError, match="aif_head: expected one of"):
        DAIFNet(aif_head="residual")
    with pytest.raises(ValueError, match="near, far"):
        DAIFNet(near=2.0, far=1.0)


def _search_net(**kwargs):
    from tests.helpers.scenes import CAMERA

    torch.manual_seed(0)
    return DAIFNet(width=4, levels=2, near=0.25, far=2.5, depth_head="search", camera=CAMERA.to_dict(), **kwargs)


@pytest.mark.parametrize("intensity_weight", [0.2, 1.0])
def test_an_untrained_search_head_returns_the_soft_argmin_of_the_cost_and_its_coarse_aif(intensity_weight):
    """logit_j = -10 e^_j at initialisation (module docstring): depth = exp(sum_j softmax(logit)_j log c_j);
    with the "select" head the AIF weights are proportional to P(image k is the sharpest) + 1e-3."""
    from daif.search import cost_volume
    from tests.helpers.scenes import CAMERA, make_scenes

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
    from tests.helpers.scenes import make_scenes

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
    with pytest.raises(ValueError, match="camera: the 'search' depth head and the 'select' head's defocus prior need the camera"):
        DAIFNet(width=4, levels=2, depth_head="search")(stack, focus)
    with pytest.raises(ValueError, match="depth_head: expected one of"):
        DAIFNet(depth_head="classify")
    with pytest.raises(ValueError, match="cost_intensity_weight: expected a number in"):
        DAIFNet(cost_intensity_weight=-0.1)
    # a model saved before the weight existed was trained on the intensity error alone
    saved = {key: value for key, value in net.config.items() if key != "cost_intensity_weight"}
    assert net.cost_intensity_weight == 0.2 and DAIFNet.from_config(saved).cost_intensity_weight == 1.0
    rebuilt = DAIFNet.from_config(json.loads(json.dumps(net.config)))
    rebuilt.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(stack, focus)[1], depth)


def test_training_reads_the_cost_volume_as_its_energy_scores_it_and_the_model_keeps_its_own_weight():
    """daif.model: training passes loss.cost_intensity_weight (1, the intensity error) to every forward pass; the
    saved model reads its own model.cost_intensity_weight (0.2)."""
    from types import SimpleNamespace

    from daif.config import load_config
    from daif.train.loop import _predict, build_model
    from tests.helpers.scenes import CAMERA, make_scenes

    config = load_config(preset="quickstart-search", overrides=["model.width=4", "model.levels=2"])
    torch.manual_seed(0)
    net = build_model(config, 0.25, 2.5, CAMERA)
    stack, focus, _, _ = make_scenes(1, 24, 24, seed=2)
    with torch.no_grad():
        in_training = _predict(SimpleNamespace(config=config, device=torch.device("cpu")), net, stack, focus)["depth"]
        assert torch.equal(in_training, net(stack, focus, cost_intensity_weight=1.0)[1])
        assert float((in_training - net(stack, focus)[1]).abs().max()) > 1e-3
    assert (config.loss.cost_intensity_weight, net.config["cost_intensity_weight"]) == (1.0, 0.2)
