"""Depth and all-in-focus metrics (method.md, "Metrics").

Depth, over valid pixels (gt finite and > 0, optionally a user mask and gt < max_depth):
    abs_rel = mean |D - D*| / D*            sq_rel = mean (D - D*)^2 / D*
    rmse = sqrt(mean (D - D*)^2)            rmse_log10 = sqrt(mean (log10 D - log10 D*)^2)  (the reference)
    rmse_log = sqrt(mean (ln D - ln D*)^2)  (natural log, as most of the field)
    delta_k = fraction of pixels with max(D / D*, D* / D) < 1.25^k, k = 1, 2, 3
Aggregation (`reduction`): "image" computes every metric per image over its valid pixels and then
averages over the images that have any valid pixel (the reference); "pixel" pools the valid pixels of
the whole batch. The two differ for rmse-type metrics and when images have different valid counts.

AIF: mean gradient (MG) and spatial frequency (SF) need no ground truth, larger is sharper; PSNR and
SSIM compare with a ground-truth AIF. All AIF metrics are computed per image and averaged.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from daif._checks import check_tensor
from daif.filters import ssim_map, to_grey

DEPTH_METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log10", "rmse_log", "delta1", "delta2", "delta3")
AIF_METRIC_NAMES = ("mg", "sf", "psnr", "ssim")
REDUCTIONS = ("image", "pixel")


def _as_tensor(value):
    """numpy arrays become tensors; integer tensors become float64; anything else is returned as is."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor) and not value.is_floating_point() and value.dtype != torch.bool:
        value = value.double()
    return value


def _depth_errors(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Metrics of 1-D tensors of matched valid pixels (float64)."""
    difference = pred - gt
    ratio = torch.maximum(pred / gt, gt / pred)
    return {
        "abs_rel": (difference.abs() / gt).mean(),
        "sq_rel": (difference.square() / gt).mean(),
        "rmse": difference.square().mean().sqrt(),
        "rmse_log10": (torch.log10(pred) - torch.log10(gt)).square().mean().sqrt(),
        "rmse_log": (torch.log(pred) - torch.log(gt)).square().mean().sqrt(),
        "delta1": (ratio < 1.25).double().mean(),
        "delta2": (ratio < 1.25**2).double().mean(),
        "delta3": (ratio < 1.25**3).double().mean(),
    }


def depth_metrics(
    pred,
    gt,
    valid=None,
    max_depth: float | None = None,
    reduction: str = "image",
    min_pred: float = 1e-3,
) -> dict[str, float]:
    """Depth metrics of `pred` against `gt`.

    pred, gt: (B, 1, H, W) metres, torch or numpy. valid: optional (B, 1, H, W) boolean mask.
    max_depth: if given, only pixels with gt < max_depth count (e.g. 0.5 m on DefocusNet).
    reduction: "image" (per image, then mean over images; the reference) or "pixel" (all valid pixels
    pooled). pred is clamped to >= min_pred metres so logs and ratios stay finite.
    Returns {name: float} for DEPTH_METRIC_NAMES; NaN everywhere when no pixel is valid.
    """
    pred = check_tensor("pred", _as_tensor(pred), ("B", 1, "H", "W"))
    gt = check_tensor("gt", _as_tensor(gt), tuple(pred.shape))
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    pred, gt = pred.detach().double().clamp_min(min_pred), gt.detach().double()
    mask = torch.isfinite(gt) & (gt > 0)
    if valid is not None:
        valid = _as_tensor(valid)
        if not isinstance(valid, torch.Tensor) or tuple(valid.shape) != tuple(pred.shape):
            shape = tuple(valid.shape) if isinstance(valid, torch.Tensor) else type(valid).__name__
            raise ValueError(f"valid: expected a mask of shape {tuple(pred.shape)}, got {shape}")
        mask &= valid.to(device=mask.device).bool()
    if max_depth is not None:
        mask &= gt < max_depth

    if reduction == "pixel":
        if not mask.any():
            return {name: math.nan for name in DEPTH_METRIC_NAMES}
        return {name: float(value) for name, value in _depth_errors(pred[mask], gt[mask]).items()}
    per_image = [_depth_errors(p[m], g[m]) for p, g, m in zip(pred, gt, mask) if m.any()]
    if not per_image:
        return {name: math.nan for name in DEPTH_METRIC_NAMES}
    return {name: float(torch.stack([e[name] for e in per_image]).mean()) for name in DEPTH_METRIC_NAMES}


# ---------------------------------------------------------------- AIF


def _check_images(name: str, images) -> torch.Tensor:
    images = check_tensor(name, _as_tensor(images), ("B", "C", "H", "W"))
    if images.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected 1 or 3 channels, got shape {tuple(images.shape)}")
    return images.detach().double()


def _grey(images: torch.Tensor) -> torch.Tensor:
    return to_grey(images) if images.shape[1] == 3 else images


def mean_gradient(images) -> torch.Tensor:
    """MG per image: mean over pixels of sqrt((dx^2 + dy^2) / 2), forward differences of the luma.

    images: (B, 3 or 1, H, W) in [0, 1] (H, W >= 2). Returns (B,).
    """
    grey = _grey(_check_images("images", images))[:, 0]
    dx = grey[:, :-1, 1:] - grey[:, :-1, :-1]
    dy = grey[:, 1:, :-1] - grey[:, :-1, :-1]
    return ((dx.square() + dy.square()) / 2).sqrt().mean(dim=(1, 2))


def spatial_frequency(images) -> torch.Tensor:
    """SF per image: sqrt(RF^2 + CF^2), RF^2 = sum (dx)^2 / (H W), CF^2 = sum (dy)^2 / (H W) of the luma.

    images: (B, 3 or 1, H, W) in [0, 1]. Returns (B,).
    """
    grey = _grey(_check_images("images", images))[:, 0]
    count = grey.shape[-2] * grey.shape[-1]
    row_frequency = (grey[:, :, 1:] - grey[:, :, :-1]).square().sum(dim=(1, 2)) / count
    column_frequency = (grey[:, 1:, :] - grey[:, :-1, :]).square().sum(dim=(1, 2)) / count
    return (row_frequency + column_frequency).sqrt()


def psnr(pred, gt, data_range: float = 1.0) -> torch.Tensor:
    """PSNR per image, 10 log10(data_range^2 / MSE) dB. pred, gt: (B, C, H, W). Returns (B,)."""
    pred, gt = _check_images("pred", pred), _check_images("gt", gt)
    check_tensor("gt", gt, tuple(pred.shape))
    mse = (pred - gt).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(pred, gt) -> torch.Tensor:
    """SSIM per image (11x11 Gaussian window, sigma 1.5, data range 1), mean over the positions where
    the window fits inside the image (replicate padding for images smaller than 11). Returns (B,)."""
    pred, gt = _check_images("pred", pred), _check_images("gt", gt)
    check_tensor("gt", gt, tuple(pred.shape))
    padding = "valid" if min(pred.shape[-2:]) >= 11 else "replicate"
    return ssim_map(pred, gt, padding=padding).mean(dim=(1, 2, 3))


def aif_metrics(pred, gt=None) -> dict[str, float]:
    """Batch means of mg and sf of `pred`, plus psnr and ssim against `gt` when given. (B, C, H, W)."""
    metrics = {"mg": float(mean_gradient(pred).mean()), "sf": float(spatial_frequency(pred).mean())}
    if gt is not None:
        metrics["psnr"] = float(psnr(pred, gt).mean())
        metrics["ssim"] = float(ssim(pred, gt).mean())
    return metrics
