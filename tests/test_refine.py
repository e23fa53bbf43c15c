"""daif.refine: the objective minimised on one stack, with the model left untouched."""

import dataclasses

import pytest
import torch

from daif.config import LossConfig
from daif.losses import objective
from daif.model import DAIFNet
from daif.optics import ThinLensCamera, render_stack
from daif.refine import REFINE_LOSS, RefineConfig, plateaued, refine

CAMERA = ThinLensCamera(50e-3, 4.0, 24e-6)
FOCUS = torch.tensor([1.0, 1.5, 2.5, 4.0, 6.0])
GAUSSIAN = dataclasses.replace(REFINE_LOSS, psf="gaussian")  # cheaper than the soft layers; the same objective otherwise


def two_plane_stack(size: int = 32) -> torch.Tensor:
    """(1, 5, 3, size, size): a random texture at 1.2 m on the left half and 5 m on the right, rendered by the Gaussian PSF."""
    generator = torch.Generator().manual_seed(0)
    aif = torch.rand(3, size, size, generator=generator)
    depth = torch.full((1, size, size), 5.0)
    depth[..., : size // 2] = 1.2
    return render_stack(aif, depth, FOCUS, CAMERA, kernel_size=None)[None].float()


def small_net() -> DAIFNet:
    torch.manual_seed(0)
    return DAIFNet(width=4, levels=2, near=0.75, far=7.5, aif_head="select", detail_input=True, depth_mapping="log").eval()


def test_plateau_rule_by_hand():
    assert not plateaued([10.0, 9.0], patience=2, min_improvement=0.01)  # nothing before the window yet
    assert not plateaued([10.0, 9.0, 8.0, 7.0], patience=2, min_improvement=0.01)  # 7 < 9 * 0.99
    assert plateaued([10.0, 9.0, 8.0, 8.0, 7.95], patience=2, min_improvement=0.01)  # 7.95 > 8 * 0.99
    assert not plateaued([10.0, 9.0, 8.0, 8.0, 7.9], patience=2, min_improvement=0.01)  # 7.9 < 7.92


def test_refinement_lowers_the_stacks_objective_and_leaves_the_model_alone():
    stack, net = two_plane_stack(), small_net()
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        aif_before, depth_before = net(stack, FOCUS, camera=CAMERA)
        before = objective(stack, FOCUS, aif_before, depth_before, CAMERA, GAUSSIAN).total.item()
    aif, depth, history = refine(net, stack, FOCUS, CAMERA, RefineConfig(steps=15, lr=3e-3, loss=GAUSSIAN))
    with torch.no_grad():
        after = objective(stack, FOCUS, aif, depth, CAMERA, GAUSSIAN).total.item()
    assert len(history) == 15
    assert history[0] == pytest.approx(before, rel=1e-5)  # the first step starts from the model's own prediction
    assert after < 0.9 * before
    assert depth.shape == (1, 1, 32, 32) and aif.shape == (1, 3, 32, 32)
    assert float(depth.min()) >= 0.75 - 1e-6 and float(depth.max()) <= 7.5 + 1e-6
    assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())
    assert not net.training


def test_no_steps_is_the_models_prediction():
    stack, net = two_plane_stack(16), small_net()
    with torch.no_grad():
        expected = net(stack, FOCUS, camera=CAMERA)
    aif, depth, history = refine(net, stack, FOCUS, CAMERA, RefineConfig(steps=0))
    assert history == [] and torch.equal(depth, expected[1]) and torch.equal(aif, expected[0])


def test_refinement_stops_on_a_plateau():
    # a required improvement of 99 % per `patience` steps is never met: it stops after patience + 1 steps
    config = RefineConfig(steps=50, lr=1e-4, patience=3, min_improvement=0.99, loss=GAUSSIAN)
    _, _, history = refine(small_net(), two_plane_stack(16), FOCUS, CAMERA, config)
    assert len(history) == 4


@pytest.mark.parametrize("field, value", [("steps", -1), ("steps", 2.5), ("patience", 0), ("lr", 0.0), ("lr", float("nan")),
                                          ("min_improvement", 1.0)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        RefineConfig(**{field: value})


def test_the_default_objective_is_the_camera_fine_tunes():
    assert REFINE_LOSS.psf == "layered" and REFINE_LOSS.kernel_size is None and REFINE_LOSS.detail == 20.0
    assert (REFINE_LOSS.recon, REFINE_LOSS.blur, REFINE_LOSS.smooth, REFINE_LOSS.coarse_aif) == (100.0, 10.0, 1.0, "soft")
    assert LossConfig().psf == "gaussian"  # training's default is untouched
