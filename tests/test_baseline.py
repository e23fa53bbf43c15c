"""Analytic depth from focus on synthetic textured ramps (rendered here with the optics renderer)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.scenes import CAMERA, FOCUS_DISTANCES, depth_ramp, textured_image
from daif.baseline import depth_from_focus, modified_laplacian
from daif.metrics import depth_metrics, psnr
from daif.optics import render_focal_stack

# measured on the 48x96 ramp below (0.3 -> 1.8 m, linear in inverse depth, DefocusNet camera, 5 images):
# delta1 1.000, abs_rel 0.064, rmse 0.060 m; with 10 focus distances in 0.3..1.8 m: delta1 0.990, abs_rel 0.056.
MEASURED_DELTA1 = 1.0


def _ramp_scene(focus):
    generator = torch.Generator().manual_seed(0)
    aif = textured_image(48, 96, generator)[None].float()
    depth = depth_ramp(48, 96, 0.3, 1.8)[None].float()
    return render_focal_stack(aif, depth, focus, CAMERA), aif, depth


def _ranks(values):
    return values.argsort().argsort().double()


def test_recovers_a_textured_ramp_monotonically():
    focus = torch.tensor(FOCUS_DISTANCES)
    stack, aif, depth = _ramp_scene(focus)
    predicted, predicted_aif = depth_from_focus(stack, focus, CAMERA)
    assert predicted.shape == (1, 1, 48, 96) and predicted_aif.shape == (1, 3, 48, 96)
    columns = predicted[0, 0].median(dim=0).values  # depth grows left to right
    assert bool((columns[8:] >= columns[:-8]).all())  # monotone over 8-px steps
    spearman = torch.corrcoef(torch.stack([_ranks(columns), _ranks(depth[0, 0, 0])]))[0, 1]
    assert float(spearman) > 0.95
    metrics = depth_metrics(predicted, depth)
    assert metrics["delta1"] >= MEASURED_DELTA1 - 0.02
    assert metrics["abs_rel"] < 0.1
    assert float(predicted.min()) >= 0.3 - 1e-6 and float(predicted.max()) <= 1.8 + 1e-6


def test_aif_is_sharper_than_every_stack_image():
    focus = torch.tensor(FOCUS_DISTANCES)
    stack, aif, _ = _ramp_scene(focus)
    _, predicted_aif = depth_from_focus(stack, focus, CAMERA)
    best_single = max(float(psnr(stack[:, k], aif)[0]) for k in range(stack.shape[1]))
    assert float(psnr(predicted_aif, aif)[0]) > best_single + 3.0  # measured 26.7 dB against 20.5 dB


def test_order_of_the_stack_does_not_matter_and_plane_at_a_focus_distance_is_exact():
    focus = torch.tensor(FOCUS_DISTANCES)
    stack, _, _ = _ramp_scene(focus)
    order = torch.tensor([2, 4, 0, 3, 1])
    reference, _ = depth_from_focus(stack, focus, CAMERA)
    permuted, _ = depth_from_focus(stack[:, order], focus[order], CAMERA)
    torch.testing.assert_close(permuted, reference)
    # a fronto-parallel plane at the middle focus distance: the middle image is the sharpest; the fit over its
    # unevenly spaced neighbours (1/0.45 and 1/1.2 around 1/0.75) pulls it off by 0.066 m (measured median 0.684 m)
    aif = textured_image(32, 32, torch.Generator().manual_seed(1))[None].float()
    plane_stack = render_focal_stack(aif, torch.full((1, 1, 32, 32), 0.75), focus, CAMERA)
    plane, _ = depth_from_focus(plane_stack, focus, CAMERA)
    assert float((plane - 0.75).abs().median()) < 0.1


def test_modified_laplacian_by_hand():
    image = torch.zeros(1, 3, 5, 5)
    image[0, :, 2, 2] = 1.0
    measure = modified_laplacian(image, window=1)
    # centre: |2 - 0 - 0| + |2 - 0 - 0| = 4; 4-neighbours: |0 - 1 - 0| = 1 along one axis only
    assert float(measure[0, 0, 2, 2]) == pytest.approx(4.0)
    assert float(measure[0, 0, 2, 1]) == pytest.approx(1.0) and float(measure[0, 0, 1, 1]) == 0.0
    assert float(modified_laplacian(image, window=5)[0, 0, 2, 2]) == pytest.approx(8.0 / 25)  # 4 + 4 * 1 over 25


def test_bad_arguments_are_named():
    stack = torch.rand(1, 3, 3, 8, 8)
    with pytest.raises(ValueError, match="focus_distances"):
        depth_from_focus(stack, torch.tensor([0.5, 1.0]), CAMERA)
    with pytest.raises(ValueError, match="stack"):
        depth_from_focus(stack[0], torch.tensor([0.5, 1.0, 2.0]), CAMERA)
    with pytest.raises(ValueError, match="window"):
        depth_from_focus(stack, torch.tensor([0.5, 1.0, 2.0]), CAMERA, window=4)
