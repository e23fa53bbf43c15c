"""The fully self-supervised objective (method.md, "Losses").

Terms (all scalars, batch means):
    recon      alpha (1 - SSIM(R, T)) + (1 - alpha) |R - T|_1, R the focal stack rendered from the
               predicted AIF and depth at the targets' focus distances, T the targets (the input stack
               by default, or other images of a dense stack). With `recon_trains_depth` False the depth
               is detached in R: the term trains the AIF only.
    detail     beyond the paper, weight 0 by default: the same R against T compared in their high-pass
               (Laplacian) images, each pixel's error divided by the targets' local high-pass energy
               (`detail_error_map`): faint texture counts as much as strong texture.
    blur       blurriness of the coarse AIF (the per-pixel sharpest stack image under the predicted depth).
    aif_recon  alpha (1 - SSIM) + (1 - alpha) L1 between the predicted AIF and the detached coarse AIF.
    aif_blur   blurriness of the predicted AIF.
    smooth     edge-aware smoothness of the depth.
total = sum over terms of weight * term (`daif.config.LossConfig`). A recipe beyond the paper adds terms of
its own through `objective`'s extra_terms hook (the "search" depth head's: `daif.search_head`).

Coarse AIF modes: "hard" takes, per pixel, the image of smallest predicted defocus (an arg-min; no
gradient reaches depth, as in the reference, so with the input stack fixed the blur term is then a
constant to the network); "soft" weights the images by softmax(-sigma / temperature) over the stack, so
the blurriness loss trains depth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from daif._checks import check_focus_distances, check_tensor
from daif.config import COARSE_AIF_MODES, DETAIL_FLOOR, DETAIL_WINDOW, LossConfig
from daif.filters import filter_channels, laplacian_of_gaussian_kernel, luma_laplacian, ssim_map, stack_high_pass, to_grey
from daif.optics import ThinLensCamera, defocus_sigma, render_focal_stack

PAPER_TERMS = ("recon", "blur", "aif_recon", "aif_blur", "smooth")

# objective's hook for terms beyond the paper's: (depth (B, 1, H, W) metres, coarse AIF (B, 3, H, W)) ->
# {name: unweighted scalar}, each weighted by `LossConfig.weights[name]`
ExtraTerms = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def term_names(config: LossConfig) -> list[str]:
    """The unweighted terms `objective` returns under `config`: the paper's five, and every other weighted one."""
    return [*PAPER_TERMS, *(name for name, weight in config.weights.items() if weight and name not in PAPER_TERMS)]


def _flatten_stack(images: torch.Tensor) -> torch.Tensor:
    """(B, S, C, H, W) -> (B*S, C, H, W); 4-D input is returned as is."""
    return images.reshape(-1, *images.shape[-3:]) if images.dim() == 5 else images


# ---------------------------------------------------------------- photometric terms


def photometric_loss(prediction: torch.Tensor, target: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """alpha (1 - SSIM) + (1 - alpha) L1, means over all pixels. (…, C, H, W) images in [0, 1] -> scalar."""
    prediction, target = _flatten_stack(prediction), _flatten_stack(target)
    ssim_term = (1.0 - ssim_map(prediction, target)).mean()
    return alpha * ssim_term + (1.0 - alpha) * (prediction - target).abs().mean()


def detail_error_map(prediction: torch.Tensor, target: torch.Tensor, floor: float = DETAIL_FLOOR, window: int = DETAIL_WINDOW) -> torch.Tensor:
    """Contrast-normalised high-pass error per pixel (beyond the paper):

        e_b(p) = mean over k of |h(R_bk)(p) - h(T_bk)(p)| / (n_b(p) + floor),
        n_b(p) = mean over the window x window box around p of max_k |h(T_bk)|   (targets only: no gradient)

    h the luma Laplacian (`daif.filters.stack_high_pass`). A texture's sharpness decides its depth whatever its
    contrast (as the depth-from-focus focus measure's arg-max does); the photometric terms weigh errors by their
    size, so a faint texture's defocus barely moves them (its local contrast below SSIM's C2 ** 0.5 = 0.03).
    `floor` (in [0, 1] luma per pixel; default one 8-bit grey level, the input's quantisation step) keeps flat
    regions from dividing noise by zero. Dividing both stacks' contrast by c about their means leaves detail unchanged where floor << n.
    prediction, target: (B, T, 3, H, W). Returns e (B, H, W); `detail_errors` is its mean over pixels.
    """
    check_tensor("target", target, ("B", "T", 3, "H", "W"))
    check_tensor("prediction", prediction, tuple(target.shape))
    height, width = target.shape[-2:]
    high_target, energy = stack_high_pass(target, window)  # (B, T, H, W), (B, 1, H, W)
    high_prediction = luma_laplacian(prediction.reshape(-1, 3, height, width)).reshape(high_target.shape)
    return ((high_prediction - high_target).abs() / (energy + floor)).mean(dim=1)


def detail_errors(prediction: torch.Tensor, target: torch.Tensor, floor: float = DETAIL_FLOOR, window: int = DETAIL_WINDOW) -> torch.Tensor:
    """The detail term of each scene, detail_b = mean over pixels of `detail_error_map`. (B, T, 3, H, W) -> (B,)."""
    return detail_error_map(prediction, target, floor, window).mean(dim=(1, 2))


def reconstruction_errors(
    stack: torch.Tensor, focus_distances: torch.Tensor, aif: torch.Tensor, depth: torch.Tensor, camera: ThinLensCamera,
    alpha: float = 0.85, psf: str = "gaussian", detail: bool = True,
) -> dict[str, torch.Tensor]:
    """The recon and detail terms of each scene, unweighted and with no ground truth: a model's fit to a stack it was given.

        recon_b  = photometric_loss(R_b, I_b, alpha),   R_b = render_focal_stack(aif_b, depth_b, s_b, camera, None, psf)
        detail_b = detail_errors(R_b, I_b)

    I_b the scene's stack (S, 3, H, W) in [0, 1], R_b its re-rendering from the predicted AIF and depth through the
    thin lens and the `psf` (`daif.optics.RENDER_PSFS`) with no window (every blur the camera makes), means over the S
    images and all pixels, as the training's `val/recon` at one scale. They need no depth and no AIF truth, so they
    compare models (and the analytic methods' depth with their AIF) on captured stacks.
    stack: (B, S, 3, H, W); focus_distances: (B, S) or (S,) metres; aif: (B, 3, H, W); depth: (B, 1, H, W) metres.
    Returns {"recon": (B,), "detail": (B,)}; without "detail" when `detail` is False.
    """
    check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
    rendered = render_focal_stack(aif, depth, focus_distances, camera, kernel_size=None, psf=psf)
    errors = {"recon": torch.stack([photometric_loss(rendered[b], stack[b], alpha) for b in range(stack.shape[0])])}
    if detail:
        errors["detail"] = detail_errors(rendered, stack)
    return errors


def held_out_errors(
    predict: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]], stack: torch.Tensor,
    focus_distances: torch.Tensor, camera: ThinLensCamera, psf: str = "gaussian", alpha: float = 0.85,
) -> torch.Tensor:
    """Leave-one-image-out prediction error of each scene and image, with no ground truth: (B, S).

        E_bi = photometric_loss(R_bi, I_bi, alpha),   R_bi = render(A_bi, D_bi, s_bi, camera, psf) (no window),
        (A_bi, D_bi) = predict(I_b with image i left out, s_b with s_bi left out)

    The method never sees image i, so E_bi measures how well it and its optics model (the `psf`,
    `daif.optics.RENDER_PSFS`) predict a measurement they were not fitted to: cross-validation on the stack itself
    (a PSF flexible enough to fit the images it was given gains nothing on the one it was not). With one method's
    AIF and depth rendered through several PSFs it compares the optics models; between trained networks it also
    measures how each predicts from S - 1 images where it was trained on S, which need not follow depth accuracy.
    predict: (stack (B, S-1, 3, H, W) in [0, 1], focus (B, S-1) metres) -> (aif (B, 3, H, W), depth (B, 1, H, W)
    metres). stack: (B, S, 3, H, W), S >= 2; focus_distances: (B, S) or (S,) metres.
    """
    check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
    batch, images = stack.shape[:2]
    if images < 2:
        raise ValueError(f"stack: leaving one image out needs at least 2 images, got {images}")
    focus = focus_distances.to(stack).expand(batch, images)
    errors = []
    for i in range(images):
        others = [k for k in range(images) if k != i]
        aif, depth = predict(stack[:, others], focus[:, others])
        left_out = (stack[:, i:i + 1], focus[:, i:i + 1])
        errors.append(reconstruction_errors(*left_out, aif, depth, camera, alpha, psf, detail=False)["recon"])
    return torch.stack(errors, dim=1)


def pyramid_photometric_loss(prediction: torch.Tensor, target: torch.Tensor, alpha: float = 0.85, scales: int = 1) -> torch.Tensor:
    """Mean over levels l = 0..scales-1 of `photometric_loss` between both images average-pooled 2^l x 2^l
    (level 0 the images themselves). (…, C, H, W) -> scalar."""
    prediction, target = _flatten_stack(prediction), _flatten_stack(target)
    levels = []
    for level in range(scales):
        if level:
            prediction, target = F.avg_pool2d(prediction, 2), F.avg_pool2d(target, 2)
        levels.append(photometric_loss(prediction, target, alpha))
    return torch.stack(levels).mean()


def blurriness(images: torch.Tensor, kernel_size: int = 7, sigma: float = 1.0) -> torch.Tensor:
    """Blurriness per image, method.md: -0.25 log( sum((LoG * g)^2) / (H W - mean(g)^2) + 1e-8 ).

    images: (N, 3, H, W) in [0, 1]; g is the luma; the LoG is filtered with replicate padding.
    Returns (N,); larger means blurrier.
    """
    grey = to_grey(images)
    height, width = grey.shape[-2:]
    response = filter_channels(grey, laplacian_of_gaussian_kernel(kernel_size, sigma, grey.dtype, grey.device), "replicate")
    energy = response.square().sum(dim=(1, 2, 3))
    normaliser = height * width - grey.mean(dim=(1, 2, 3)).square()
    return -0.25 * torch.log(energy / normaliser + 1e-8)


def smoothness_loss(depth: torch.Tensor, aif: torch.Tensor, beta: float = 2.5) -> torch.Tensor:
    """Edge-aware smoothness: mean |dD/dx| exp(-beta |dA/dx|) + mean |dD/dy| exp(-beta |dA/dy|).

    depth: (B, 1, H, W) metres; aif: (B, 3, H, W); |dA| is the channel mean of absolute differences.
    """
    depth_dx = (depth[..., :, 1:] - depth[..., :, :-1]).abs()
    depth_dy = (depth[..., 1:, :] - depth[..., :-1, :]).abs()
    aif_dx = (aif[..., :, 1:] - aif[..., :, :-1]).abs().mean(dim=1, keepdim=True)
    aif_dy = (aif[..., 1:, :] - aif[..., :-1, :]).abs().mean(dim=1, keepdim=True)
    return (depth_dx * torch.exp(-beta * aif_dx)).mean() + (depth_dy * torch.exp(-beta * aif_dy)).mean()


# ---------------------------------------------------------------- coarse AIF


def coarse_aif(
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    depth: torch.Tensor,
    camera: ThinLensCamera,
    mode: str = "hard",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per pixel, the stack image that the predicted depth says is sharpest.

    stack: (B, S, 3, H, W); focus_distances: (B, S) or (S,) metres; depth: (B, 1, H, W) metres.
    mode "hard": the image of smallest defocus sigma(depth, s_k) (arg-min; no gradient to depth).
    mode "soft": sum_k softmax_k(-sigma_k / temperature) S_k, temperature in pixels (gradient to depth).
    Returns (B, 3, H, W).
    """
    if mode == "hard":
        with torch.no_grad():
            sharpest = defocus_sigma(depth.detach(), focus_distances, camera).argmin(dim=1)  # (B, H, W)
        index = sharpest[:, None, None].expand(-1, 1, stack.shape[2], -1, -1)  # (B, 1, 3, H, W)
        return stack.gather(1, index).squeeze(1)
    if mode == "soft":
        sigma = defocus_sigma(depth, focus_distances, camera).to(stack.dtype)  # (B, S, H, W)
        weights = torch.softmax(-sigma / temperature, dim=1)
        return (weights[:, :, None] * stack).sum(dim=1)
    raise ValueError(f"mode: expected one of {COARSE_AIF_MODES}, got {mode!r}")


# ---------------------------------------------------------------- the objective


@dataclasses.dataclass(frozen=True)
class Objective:
    """The result of `objective`: total (scalar), terms (name -> scalar, unweighted),
    reconstruction (B, T, 3, H, W) rendered at the targets' focus distances, coarse_aif (B, 3, H, W)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    reconstruction: torch.Tensor
    coarse_aif: torch.Tensor


def objective(
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    aif: torch.Tensor,
    depth: torch.Tensor,
    camera: ThinLensCamera,
    config: LossConfig = LossConfig(),
    targets: torch.Tensor | None = None,
    target_focus_distances: torch.Tensor | None = None,
    extra_terms: ExtraTerms | None = None,
) -> Objective:
    """The weighted total, every unweighted term (`term_names(config)`) and the intermediate images.

    stack: (B, S, 3, H, W) input stack in [0, 1]; focus_distances: (B, S) or (S,) metres.
    aif: (B, 3, H, W) in [0, 1] and depth: (B, 1, H, W) metres, the network's predictions.
    camera: the thin-lens camera the data was rendered/captured with.
    targets: (B, T, 3, H, W) images to reconstruct with target_focus_distances (B, T) or (T,) metres;
    None reconstructs the input stack.
    extra_terms: terms beyond the paper's (`ExtraTerms`, e.g. a depth head's `terms`); a weighted term that
    neither the paper nor extra_terms computes is a ValueError naming it.
    """
    check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
    batch, stack_size, _, height, width = stack.shape
    check_tensor("aif", aif, (batch, 3, height, width))
    check_tensor("depth", depth, (batch, 1, height, width))
    focus = check_focus_distances("focus_distances", focus_distances, batch, stack_size, stack)
    if targets is None:
        if target_focus_distances is not None:
            raise ValueError("target_focus_distances: given without targets")
        targets, target_focus = stack, focus
    else:
        check_tensor("targets", targets, (batch, "T", 3, height, width))
        if target_focus_distances is None:
            raise ValueError("target_focus_distances: required with targets")
        target_focus = check_focus_distances("target_focus_distances", target_focus_distances, batch, targets.shape[1], stack)

    depth_for_recon = depth if config.recon_trains_depth else depth.detach()
    reconstruction = render_focal_stack(aif, depth_for_recon, target_focus, camera, config.kernel_size, config.psf)
    coarse = coarse_aif(stack, focus, depth, camera, config.coarse_aif, config.temperature)
    terms = {
        "recon": pyramid_photometric_loss(reconstruction, targets, config.alpha, config.recon_scales),
        "blur": blurriness(coarse).mean(),
        "aif_recon": photometric_loss(aif, coarse.detach(), config.alpha),
        "aif_blur": blurriness(aif).mean(),
        "smooth": smoothness_loss(depth, aif, config.smooth_beta),
    }
    if config.detail:
        terms["detail"] = detail_errors(reconstruction, targets, config.detail_floor).mean()
    if extra_terms is not None:
        terms.update(extra_terms(depth, coarse))
    missing = [name for name, weight in config.weights.items() if weight and name not in terms]
    if missing:
        raise ValueError(f"{missing[0]}: weighted {config.weights[missing[0]]}, but it is neither one of the paper's terms "
                         f"{PAPER_TERMS} nor returned by extra_terms (the 'search' depth head's terms: daif.search_head)")
    total = sum(weight * terms[name] for name, weight in config.weights.items() if weight)
    return Objective(total, terms, reconstruction, coarse)
