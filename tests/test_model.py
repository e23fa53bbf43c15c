"""DAIF-Net: shapes, ranges, any stack size/order, config round trip, depth mappings."""

from __future__ import annotations

import json
import math

import pytest
import torch

from daif.config import DETAIL_FLOOR, DETAIL_WINDOW
from daif.model import DAIFNet, map_depth
from daif.optics import ThinLensCamera
from tests.helpers.references import high_pass_reference

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


@pytest.mark.parametrize("aif_head, detail_input", [("rgb", False), ("select", False), ("select", True)])
def test_permuting_the_stack_leaves_the_output_unchanged(aif_head, detail_input):
    net = _small_net(levels=3, aif_head=aif_head, detail_input=detail_input)
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
    net = _small_net(levels=2, depth_mapping="inverse", near=0.3, far=4.0, focus_scale=2.0)
    config = json.loads(json.dumps(net.config))
    assert config == {"width": 4, "levels": 2, "depth_mapping": "inverse", "near": 0.3, "far": 4.0, "focus_scale": 2.0, "aif_head": "rgb",
                      "depth_head": "regress", "camera": LENS, "aif_temperature": 1.0, "detail_input": False}
    rebuilt = DAIFNet.from_config(config)
    rebuilt.load_state_dict(net.state_dict())
    stack, focus = _inputs(1, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(stack, focus), net(stack, focus))
    assert DAIFNet(far=6.0).config["focus_scale"] == 6.0  # default: the far end of the depth range


def test_the_detail_input_is_each_images_normalised_high_pass_whatever_its_contrast():
    # the first convolution's fifth input channel is h_k / (n + floor) (daif.model's docstring), checked against a loop
    # reference; the same stack at a hundredth of its contrast about grey gives the same channel (up to the floor)
    net = _small_net(levels=2, detail_input=True)
    seen = []
    net.encoder[0][0][0].register_forward_hook(lambda module, args, output: seen.append(args[0][:, 4].clone()))
    stack, focus = _inputs(1, 3, 12, 10, seed=4)
    stack = stack.double()
    net.double()
    with torch.no_grad():
        net(stack, focus.double())
        net(0.5 + 0.01 * (stack - 0.5), focus.double())
    high, energy = high_pass_reference(stack[0].numpy(), DETAIL_WINDOW)
    expected = high / (energy + DETAIL_FLOOR)
    torch.testing.assert_close(seen[0][:, :12, :10], torch.from_numpy(expected), atol=1e-9, rtol=1e-9)
    faint = 0.01 * high / (0.01 * energy + DETAIL_FLOOR)
    torch.testing.assert_close(seen[1][:, :12, :10], torch.from_numpy(faint), atol=1e-9, rtol=1e-9)
    assert float((seen[1] - seen[0]).abs().max()) < 0.5 * float(seen[0].abs().max())  # contrast / 100, channel far less
    assert DAIFNet.from_config({**net.config, "detail_input": True}).encoder[0][0][0].in_channels == 5
    assert DAIFNet.from_config({key: v for key, v in net.config.items() if key != "detail_input"}).detail_input is False


def test_depth_mappings_by_hand():
    raw = torch.tensor([0.0, 1.0, 2.0]).reshape(1, 1, 1, 3)
    near, far = 1.0, 3.0
    sigmoid = map_depth(raw, "sigmoid", near, far).flatten().tolist()
    assert sigmoid == pytest.approx([1 + 2 / (1 + math.exp(-x)) for x in (0.0, 1.0, 2.0)], rel=1e-6)
    inverse = [1 / (1 / 3 + (1 - 1 / 3) / (1 + math.exp(-x))) for x in (0.0, 1.0, 2.0)]  # linear in diopters
    assert map_depth(raw, "inverse", near, far).flatten().tolist() == pytest.approx(inverse, rel=1e-6)
    geometric = [3 ** (1 / (1 + math.exp(-x))) for x in (0.0, 1.0, 2.0)]  # linear in log depth, 1..3 m
    assert map_depth(raw, "log", near, far).flatten().tolist() == pytest.approx(geometric, rel=1e-6)
    with pytest.raises(ValueError, match="depth_mapping: expected one of \\('sigmoid', 'inverse', 'log'\\), got 'max'"):
        map_depth(raw, "max", near, far)  # the reference's per-image maximum, retired (issue 24)


def test_a_regress_model_saved_with_the_search_heads_options_loads_without_them():
    """Before the "search" head had a module of its own every saved config carried its options (models saved
    then hold them in their meta.json); a "regress" model ignores them. Another key is an error naming it."""
    net = _small_net(levels=2)
    saved = {**net.config, "candidates": 24, "kernel_size": 11, "cost_intensity_weight": 0.2}
    rebuilt = DAIFNet.from_config(saved)
    assert rebuilt.config == net.config
    with pytest.raises(TypeError, match="window"):
        DAIFNet.from_config({**net.config, "window": 3})


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

