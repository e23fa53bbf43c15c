"""The fully self-supervised objective (method.md, "Losses").

Terms (all scalars, batch means):
    recon      alpha (1 - SSIM(R, T)) + (1 - alpha) |R - T|_1, R the focal stack rendered from the
               predicted AIF and depth at the targets' focus distances, T the targets (the input stack
               by default, or other images of a dense stack).
    coarse_recon  the same with R rendered from the detached coarse AIF and the predicted depth: trains
               depth only. Not in the paper; weight 0 by default (see "Depth through the coarse AIF"
               and "Soft coarse reconstruction").
    blur       blurriness of the coarse AIF (the per-pixel sharpest stack image under the predicted depth).
    aif_recon  alpha (1 - SSIM) + (1 - alpha) L1 between the predicted AIF and the detached coarse AIF.
    aif_blur   blurriness of the predicted AIF.
    smooth     edge-aware smoothness of the depth.
    sharpness  max(0, blurriness(AIF) - blurriness(coarse AIF)): the AIF should be at least as sharp as
               the sharpest stack images. Not in the paper; weight 0 by default.
    search     mean |log D - log D_s|, D_s the detached per-pixel depth of `daif.search.defocus_search`
               (the global minimum of the coarse reconstruction error over candidate depths): trains
               depth only. Not in the paper; weight 0 by default (see "Search").
total = sum over terms of weight * term (`LossConfig`).

Depth through the coarse AIF: early in training the predicted AIF is blurry, and the reconstruction
from it is best matched by a depth at which some input images pass through unblurred: depth collapses
to a near-constant map it does not leave (measured on the quickstart data: delta1 stays at 0.30 while the
reconstruction loss falls). Rendering from the coarse AIF instead, which holds the stack's sharpest
pixels from the first step, trains depth (in-process on the same data, this term and smoothness alone:
delta1 0.73 after 900 steps, 0.88 after 1800). With
`coarse_recon` > 0 and `recon_trains_depth` False, depth learns from the coarse-AIF reconstruction and the
AIF from the paper's reconstruction with the depth held fixed.

Coarse AIF modes: "hard" takes, per pixel, the image of smallest predicted defocus (an arg-min; no
gradient reaches depth, as in the reference, so with the input stack fixed the blur term is then a
constant to the network); "soft" weights the images by softmax(-sigma / temperature) over the stack, so
the blurriness loss trains depth.

Soft coarse reconstruction (`coarse_recon_temperature` > 0): with the hard, detached coarse AIF a depth
behind the true one is a trap: the coarse AIF then takes a blurred image, rendering it unblurred (depth in
that image's in-focus interval) reproduces its own stack slice exactly, and the sharper slices focused
nearer cannot be reached by adding blur, so no term pulls the depth back. `coarse_recon` then renders the
soft coarse AIF, weights softmax(-sigma / T) with T in pixels, and its gradient also reaches depth through
the weights: moving weight to the sharper image lowers the error of the sharper slices. In-process on the
quickstart data (900 steps, T = 2 px, no jitter): delta1 at 0.9..1.1 m 0.65 where the hard version had
0.00..0.58 in every run, but far pixels as before: the two options address different failures, and the
quickstart uses both (figures under "Depth jitter").

Depth jitter (`depth_jitter` > 0, training only): the renderer passes a pixel whose defocus is <= 1 px
through unchanged, so over a whole interval of depths around each focus distance a target image does not
depend on the predicted depth and gives it no gradient. With 5 focus distances these dead zones overlap:
for the NYUv2 5-stack camera, a depth anywhere in 4.1..5.7 m leaves both the 4 m and the 6 m image
unblurred, and a pixel predicted there gets a gradient from the blurrier images only, however far its true
depth. Multiplying the depth the renderer sees by a random log-normal factor per pixel and step spreads
each pixel's samples beyond such an interval, so a pixel inside a dead zone is pushed by the samples that
land outside it (the jump at the switch and the coarse AIF's arg-min still pass no gradient). The
jittered depth picks the coarse AIF of `coarse_recon` and renders it, and renders `recon` where that term
trains depth; the AIF terms, the returned coarse AIF and smoothness use the predicted depth as it is.
Measured with `daif quickstart` (test split, delta1 by true depth, `benchmarks/depth_bands.py`; the run
with jitter also had 60 epochs instead of 50 and the scenes' depth range 0.75..7.5 m as the model's):
pixels at 5.5..7 m 0.45 -> 0.74 with jitter 0.35, but pixels at 0.9..1.1 m 0.58 -> 0.00, overall
0.757 -> 0.749; with the soft coarse reconstruction as well (the quickstart's recipe): 5.5..7 m 0.90,
0.9..1.1 m 0.70, overall 0.763, but 3..4.5 m fell from 0.96..0.99 to 0.69..0.81 (predicted too far).
That bias is the jitter's own: it pushes depth towards the middle (in log depth) of the dead zone it sits
in, where fewest samples leave it. Scaling the true depth of one band of the validation pixels by a factor
and reading the coarse reconstruction at the true AIF, the 3..4.5 m band (inside the 4 m image's dead zone,
3.07..5.74 m) has its minimum at the true depth without jitter and at 1.25x with jitter 0.35.

Search (`search` > 0, needs the model's depth range as `depth_range`): gradient descent on depth only
sees its neighbourhood, and every term above leaves it traps (a depth behind the true one, dead zones) or a
bias (jitter). `daif.search.defocus_search` evaluates the coarse reconstruction error at 24 candidate
depths per pixel and takes the least, which has neither; pulling depth towards it (detached) trains depth
from the first step, everywhere. The searched depth alone, on the quickstart's test split: delta1 0.918,
AbsRel 0.187, against the analytic depth-from-focus baseline's 0.872 / 0.309. `daif evaluate` reports it
as a row of its own, so a model trained with this term is compared with its teacher.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from daif._checks import check_focus_distances, check_odd_size, check_tensor
from daif.optics import ThinLensCamera, defocus_sigma, render_focal_stack
from daif.search import defocus_search

COARSE_AIF_MODES = ("hard", "soft")
_GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
_SSIM_C1 = 0.01**2  # (K1 L)^2 with data range L = 1
_SSIM_C2 = 0.03**2


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights and parameters; defaults are the paper's published command (method.md)."""

    recon: float = 1000.0
    coarse_recon: float = 0.0
    blur: float = 10.0
    aif_recon: float = 100.0
    aif_blur: float = 10.0
    smooth: float = 10.0
    sharpness: float = 0.0
    smooth_beta: float = 2.5
    alpha: float = 0.85  # SSIM share of the photometric terms
    coarse_aif: str = "hard"  # "hard" | "soft"
    temperature: float = 1.0  # px of defocus, softmin temperature of the "soft" coarse AIF
    kernel_size: int = 7  # renderer window
    recon_trains_depth: bool = True  # False: the recon term's gradient reaches the AIF only
    depth_jitter: float = 0.0  # std of the log-normal factor on the depth the renderer sees in training; 0 = off
    coarse_recon_temperature: float = 0.0  # px; > 0: coarse_recon renders a soft coarse AIF trained through its weights
    search: float = 0.0  # weight of |log depth - log depth searched| (daif.search); not in the paper
    search_candidates: int = 24  # candidate depths of the search, log-spaced over the model's depth range
    search_window: int = 3  # px, box the search's reconstruction error is averaged over

    def __post_init__(self) -> None:
        if self.coarse_aif not in COARSE_AIF_MODES:
            raise ValueError(f"coarse_aif: expected one of {COARSE_AIF_MODES}, got {self.coarse_aif!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature!r}")
        if not (math.isfinite(self.coarse_recon_temperature) and self.coarse_recon_temperature >= 0):
            raise ValueError(f"coarse_recon_temperature: expected a finite value >= 0, got {self.coarse_recon_temperature!r}")
        if not (math.isfinite(self.depth_jitter) and self.depth_jitter >= 0):
            raise ValueError(f"depth_jitter: expected a finite value >= 0, got {self.depth_jitter!r}")
        if not (math.isfinite(self.search) and self.search >= 0):
            raise ValueError(f"search: expected a finite weight >= 0, got {self.search!r}")
        if isinstance(self.search_candidates, bool) or not isinstance(self.search_candidates, int) or self.search_candidates < 2:
            raise ValueError(f"search_candidates: expected an integer >= 2, got {self.search_candidates!r}")
        check_odd_size("search_window", self.search_window)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {self.alpha!r}")

    @property
    def weights(self) -> dict[str, float]:
        return {
            "recon": self.recon,
            "coarse_recon": self.coarse_recon,
            "blur": self.blur,
            "aif_recon": self.aif_recon,
            "aif_blur": self.aif_blur,
            "smooth": self.smooth,
            "sharpness": self.sharpness,
            "search": self.search,
        }


# ---------------------------------------------------------------- filters


def gaussian_taps(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,); the 2-D Gaussian window is its outer product with itself."""
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * sigma**2))
    return g / g.sum()


def laplacian_of_gaussian_kernel(size: int = 7, sigma: float = 1.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """LoG (size, size): -(1 / (pi s^4)) (1 - r^2 / (2 s^2)) exp(-r^2 / (2 s^2)), shifted to sum to 0.

    Zero sum makes a constant image's response exactly 0 despite the truncated window.
    """
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    log = -(1.0 / (math.pi * sigma**4)) * (1 - r2 / (2 * sigma**2)) * torch.exp(-r2 / (2 * sigma**2))
    return log - log.mean()


def _filter_channels(images: torch.Tensor, kernel: torch.Tensor, padding: str) -> torch.Tensor:
    """Filter every channel of (N, C, H, W) with `kernel`: (k, k), or (k,) for the separable kernel that
    is its outer product with itself (two 1-D passes, 2k instead of k^2 multiplies per pixel).
    padding "replicate" or "valid"."""
    channels = images.shape[1]
    if padding == "replicate":
        m = kernel.shape[-1] // 2
        images = F.pad(images, (m, m, m, m), mode="replicate")
    kernel = kernel.to(images)
    if kernel.dim() == 1:
        images = F.conv2d(images, kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
        return F.conv2d(images, kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(images, kernel[None, None].expand(channels, 1, *kernel.shape), groups=channels)


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) luma."""
    weights = torch.tensor(_GREY_WEIGHTS, dtype=images.dtype, device=images.device)
    return (images * weights[None, :, None, None]).sum(dim=1, keepdim=True)


def _flatten_stack(images: torch.Tensor) -> torch.Tensor:
    """(B, S, C, H, W) -> (B*S, C, H, W); 4-D input is returned as is."""
    return images.reshape(-1, *images.shape[-3:]) if images.dim() == 5 else images


# ---------------------------------------------------------------- photometric terms


def ssim_map(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5, padding: str = "replicate") -> torch.Tensor:
    """Per-pixel SSIM of images in [0, 1] with a Gaussian window (Wang et al. 2004).

    x, y: (N, C, H, W). padding "replicate" returns (N, C, H, W); "valid" returns the
    (N, C, H - window_size + 1, W - window_size + 1) positions where the window fits.
    """
    kernel = gaussian_taps(window_size, sigma, dtype=x.dtype, device=x.device)  # separable
    mu_x, mu_y = _filter_channels(x, kernel, padding), _filter_channels(y, kernel, padding)
    var_x = _filter_channels(x * x, kernel, padding) - mu_x**2
    var_y = _filter_channels(y * y, kernel, padding) - mu_y**2
    cov = _filter_channels(x * y, kernel, padding) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return numerator / denominator


def photometric_loss(prediction: torch.Tensor, target: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """alpha (1 - SSIM) + (1 - alpha) L1, means over all pixels. (…, C, H, W) images in [0, 1] -> scalar."""
    prediction, target = _flatten_stack(prediction), _flatten_stack(target)
    ssim_term = (1.0 - ssim_map(prediction, target)).mean()
    return alpha * ssim_term + (1.0 - alpha) * (prediction - target).abs().mean()


def blurriness(images: torch.Tensor, kernel_size: int = 7, sigma: float = 1.0) -> torch.Tensor:
    """Blurriness per image, method.md: -0.25 log( sum((LoG * g)^2) / (H W - mean(g)^2) + 1e-8 ).

    images: (N, 3, H, W) in [0, 1]; g is the luma; the LoG is filtered with replicate padding.
    Returns (N,); larger means blurrier.
    """
    grey = to_grey(images)
    height, width = grey.shape[-2:]
    response = _filter_channels(grey, laplacian_of_gaussian_kernel(kernel_size, sigma, grey.dtype, grey.device), "replicate")
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


def jitter_depth(depth: torch.Tensor, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    """depth * exp(scale * n), n ~ N(0, 1) per pixel drawn from `generator` (on its device, then moved to
    depth's); depth itself when scale is 0 or generator is None. The gradient reaches depth through the factor."""
    if scale == 0 or generator is None:
        return depth
    noise = torch.randn(depth.shape, generator=generator, device=generator.device, dtype=depth.dtype)
    return depth * torch.exp(scale * noise.to(depth.device))


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
    generator: torch.Generator | None = None,
    depth_range: tuple[float, float] | None = None,
) -> Objective:
    """The full objective with its intermediate images; see `total_loss` for the arguments.

    generator: draws the depth jitter (`LossConfig.depth_jitter`) of a training step; None (validation,
    evaluation) renders the predicted depth as it is.
    depth_range: (near, far) metres of the model, the range of the `search` term's candidates; required when
    that term's weight is not 0; without it the term is not computed (and not in `terms`).
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

    # the jittered depth goes where the renderer trains depth; the AIF learns from the predicted depth as it is
    jittered = jitter_depth(depth, config.depth_jitter, generator)
    depth_for_recon = jittered if config.recon_trains_depth else depth.detach()
    reconstruction = render_focal_stack(aif, depth_for_recon, target_focus, camera, config.kernel_size)
    coarse = coarse_aif(stack, focus, depth, camera, config.coarse_aif, config.temperature)
    # at weight 0 coarse_recon is a reported value only: computed without gradient (validation), skipped in training
    coarse_recon = None
    if config.coarse_recon != 0 or not torch.is_grad_enabled():
        if config.coarse_recon_temperature > 0:  # a soft selection whose weights learn from this reconstruction
            source = coarse_aif(stack, focus, jittered, camera, "soft", config.coarse_recon_temperature)
        elif jittered is depth:
            source = coarse.detach()
        else:
            source = coarse_aif(stack, focus, jittered, camera, config.coarse_aif, config.temperature).detach()
        from_coarse = render_focal_stack(source, jittered, target_focus, camera, config.kernel_size)
        coarse_recon = photometric_loss(from_coarse, targets, config.alpha)
    coarse_blur = blurriness(coarse)
    aif_blur = blurriness(aif)

    terms = {
        "recon": photometric_loss(reconstruction, targets, config.alpha),
        "blur": coarse_blur.mean(),
        "aif_recon": photometric_loss(aif, coarse.detach(), config.alpha),
        "aif_blur": aif_blur.mean(),
        "smooth": smoothness_loss(depth, aif, config.smooth_beta),
        "sharpness": F.relu(aif_blur - coarse_blur.detach()).mean(),
    }
    if coarse_recon is not None:
        terms["coarse_recon"] = coarse_recon
    if depth_range is not None:
        searched = defocus_search(stack, focus, camera, *depth_range, config.search_candidates, config.search_window, config.kernel_size)
        terms["search"] = (depth.clamp_min(1e-6).log() - searched.log()).abs().mean()
    elif config.search:
        raise ValueError(f"depth_range: the search term (weight {config.search}) needs the model's (near, far)")
    total = sum(weight * terms[name] for name, weight in config.weights.items() if weight)
    return Objective(total, terms, reconstruction, coarse)


def total_loss(
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    aif: torch.Tensor,
    depth: torch.Tensor,
    camera: ThinLensCamera,
    config: LossConfig = LossConfig(),
    targets: torch.Tensor | None = None,
    target_focus_distances: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted total and every unweighted term (recon, coarse_recon, blur, aif_recon, aif_blur, smooth, sharpness).

    stack: (B, S, 3, H, W) input stack in [0, 1]; focus_distances: (B, S) or (S,) metres.
    aif: (B, 3, H, W) in [0, 1] and depth: (B, 1, H, W) metres, the network's predictions.
    camera: the thin-lens camera the data was rendered/captured with.
    targets: (B, T, 3, H, W) images to reconstruct with target_focus_distances (B, T) or (T,) metres;
    None reconstructs the input stack. generator: draws the depth jitter of a training step (None: none).
    Returns (total scalar, {name: scalar}).
    """
    result = objective(stack, focus_distances, aif, depth, camera, config, targets, target_focus_distances, generator)
    return result.total, result.terms
