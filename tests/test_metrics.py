"""Depth and AIF metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import pytest
import torch

from daif.metrics import aif_metrics, depth_metrics, mean_gradient, psnr, spatial_frequency, ssim

LN2, LN15 = math.log(2.0), math.log(1.5)


def _pair():
    """Image 0: 4 valid pixels. Image 1: pixels (gt 2, pred 2) and (gt 1, pred 2) valid; gt 0 and a masked pixel not."""
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[2.0, 2.0], [2.0, 2.0]]]], dtype=torch.float64)
    gt = torch.tensor([[[[1.0, 1.0], [2.0, 4.0]]], [[[2.0, 0.0], [4.0, 1.0]]]], dtype=torch.float64)
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[1, 0, 1, 0] = False
    return pred, gt, valid


def test_single_image_by_hand():
    pred, gt, _ = _pair()
    m = depth_metrics(pred[:1], gt[:1])
    assert m["abs_rel"] == pytest.approx((0 + 1 / 1 + 1 / 2 + 0) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 1 + 1 / 2 + 0) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 4))
    assert m["rmse_log"] == pytest.approx(math.sqrt((LN2**2 + LN15**2) / 4))
    assert m["rmse_log10"] == pytest.approx(math.sqrt((math.log10(2) ** 2 + math.log10(1.5) ** 2) / 4))
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((2 / 4, 3 / 4, 3 / 4))  # ratio 2 > 1.25^3


def test_image_and_pixel_reductions_by_hand():
    pred, gt, valid = _pair()
    per_image = depth_metrics(pred, gt, valid, reduction="image")
    pooled = depth_metrics(pred, gt, valid, reduction="pixel")
    # image 1 alone: abs_rel (0 + 1) / 2, delta2 1 / 2
    assert per_image["abs_rel"] == pytest.approx((0.375 + 0.5) / 2)
    assert pooled["abs_rel"] == pytest.approx((1.5 + 1.0) / 6)
    assert per_image["delta2"] == pytest.approx((0.75 + 0.5) / 2)
    assert pooled["delta2"] == pytest.approx(4 / 6)
    assert pooled["rmse"] == pytest.approx(math.sqrt(3 / 6))
    assert per_image["rmse_log"] == pytest.approx((math.sqrt((LN2**2 + LN15**2) / 4) + math.sqrt(LN2**2 / 2)) / 2)
    assert depth_metrics(pred, gt, valid) == per_image  # "image" (the reference) is the default


def test_max_depth_mask_numpy_input_and_empty_mask():
    pred, gt, _ = _pair()
    m = depth_metrics(pred[:1].numpy(), gt[:1].numpy(), max_depth=3.0)  # keeps gt 1, 1, 2
    assert m["abs_rel"] == pytest.approx((0 + 1 + 0.5) / 3)
    assert m["delta1"] == pytest.approx(1 / 3)
    empty = depth_metrics(pred, gt, max_depth=0.5)
    assert all(math.isnan(v) for v in empty.values())
    assert set(empty) == {"abs_rel", "sq_rel", "rmse", "rmse_log10", "rmse_log", "delta1", "delta2", "delta3"}


def test_perfect_prediction():
    gt = 0.5 + torch.rand(2, 1, 5, 7, generator=torch.Generator().manual_seed(0))
    m = depth_metrics(gt.clone(), gt)
    assert (m["abs_rel"], m["rmse"], m["rmse_log"], m["delta1"]) == pytest.approx((0, 0, 0, 1), abs=1e-12)


def test_bad_depth_arguments_are_named():
    pred, gt, _ = _pair()
    with pytest.raises(ValueError, match="gt"):
        depth_metrics(pred, gt[:, :, :1])
    with pytest.raises(ValueError, match="valid"):
        depth_metrics(pred, gt, valid=torch.ones(2, 1, 2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="reduction"):
        depth_metrics(pred, gt, reduction="mean")


def _dot():
    image = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    image[0, 0, 1, 1] = 1.0
    return image


def test_mean_gradient_by_hand():
    # forward differences at the 4 top-left pixels: (0, 0), (0, 1), (1, 0), (-1, -1)
    expected = (0 + math.sqrt(0.5) + math.sqrt(0.5) + 1.0) / 4
    assert float(mean_gradient(_dot())[0]) == pytest.approx(expected)
    assert float(mean_gradient(_dot().expand(1, 3, 3, 3))[0]) == pytest.approx(expected)  # grey RGB = luma


def test_spatial_frequency_by_hand():
    # row differences: 1 and -1 on the middle row; column differences likewise; 9 pixels
    assert float(spatial_frequency(_dot())[0]) == pytest.approx(math.sqrt(2 / 9 + 2 / 9))


def test_psnr_and_ssim_by_hand():
    pred = torch.full((2, 3, 16, 16), 0.5, dtype=torch.float64)
    gt = torch.full((2, 3, 16, 16), 0.6, dtype=torch.float64)
    assert psnr(pred, gt).tolist() == pytest.approx([20.0, 20.0])  # MSE 0.01
    c1 = 0.01**2
    assert ssim(pred, gt).tolist() == pytest.approx([(2 * 0.3 + c1) / (0.25 + 0.36 + c1)] * 2)
    metrics = aif_metrics(pred, gt)
    assert metrics["psnr"] == pytest.approx(20.0) and metrics["mg"] == 0.0 and metrics["sf"] == 0.0
    assert set(aif_metrics(pred)) == {"mg", "sf"}


def test_sharper_image_scores_higher():
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    smoothed = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    assert float(mean_gradient(image)[0]) > 1.5 * float(mean_gradient(smoothed)[0])
    assert float(spatial_frequency(image)[0]) > 1.5 * float(spatial_frequency(smoothed)[0])
    assert float(ssim(smoothed, image)[0]) < 0.9 and float(ssim(image, image)[0]) == pytest.approx(1.0)
