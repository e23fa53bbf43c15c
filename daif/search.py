"""Depth by exhaustive search of the coarse reconstruction error: no learning, no ground truth.

For each of J candidate depths c_j, spaced evenly in log depth over [near, far]:
1. the source image is the stack image that c_j would leave sharpest (smallest defocus sigma(c_j, s_k));
   at the true depth it is the coarse AIF of method.md;
2. it is rendered at every focus distance s_k with the defocus the candidate implies beyond the source's own,
   the sigma'_jk whose window kernel's variance is the rest, v(sigma'_jk) = v(sigma(c_j, s_k)) - v(sigma(c_j,
   s_src)) (variances add under convolution; v is `window_variance`, 0 where a pixel is passed through,
   sigma <= 1 px), one defocus per image: `render_uniform_defocus`, exact and separable. Without the window
   this is the quadrature remainder sqrt(sigma_k^2 - sigma_src^2); with it, two defocus values that both fill
   the window leave almost none, so a depth that blurs every image of the stack as far as the window allows
   is matched as such (docs/experiments.md, entry 15). (The full sigma(c_j, s_k) would ignore that the source
   is itself blurred where no stack image is in focus, and bias such depths towards the nearest focus
   distance: entry 5.)
3. the error of the residual r_jk = R_jk - S_k, an intensity and a gradient part,
   i_j(x) = sum_k mean_channels |r_jk(x)|,
   g_j(x) = sum_k mean_channels (|r_jk(x + 1_x) - r_jk(x)| + |r_jk(x + 1_y) - r_jk(x)|)  (0 across the last
   column and row), mixed with w = `intensity_weight` in [0, 1]: e_j = w i_j + (1 - w) g_j; averaged over
   a window x window box (`defocus_search` takes w = 0.2 by default, as a trained "search" head reads).
   The gradient part is blind to a constant and damps what varies slowly across the image: a blurred near
   object spreading over the sharp background behind it in the far-focused images of a real lens (partial
   occlusion, which the renderer's gather never makes), and shading or exposure that differ between shots;
   focus measures are high-pass for the same reason. The intensity part holds what is left of a scene nearer
   than the nearest focus distance, which every image blurs past its fine texture (docs/experiments.md,
   entry 17).
Per pixel the candidate of least error wins, refined in log depth by at most half a step to the vertex of
a V through its error and its two neighbours' (a V rather than a parabola: the error is an L1 distance).
`cost_volume` returns i_j(x) and g_j(x) of every candidate (steps 1 to 3, no box); `defocus_search` mixes and
boxes them and takes the arg-min. The per-pixel arg-min is the global minimum, over the grid, of the same
image-formation model the objective trains with, so it has neither the local minima of gradient descent on
depth nor the dead zones where defocus <= 1 px passes no gradient. `daif evaluate` reports it beside every
model; the "search" depth head (`daif.search_head`) refines the cost volume itself.

Cost: J x S separable blurs of the stack's source image (`benchmarks/model_step.py` measures it).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from daif._checks import check_focus_distances, check_odd_size, check_tensor, check_unit_interval
from daif.config import PAPER_KERNEL_SIZE, SEARCH_CANDIDATES, SEARCH_INTENSITY_WEIGHT, SEARCH_WINDOW
from daif.optics import ThinLensCamera, defocus_sigma, render_uniform_defocus, sigma_for_variance, window_variance


@dataclasses.dataclass(frozen=True)
class CostVolume:
    """The coarse reconstruction error of every candidate depth (steps 1 to 3 above, before the box).

    intensity, gradient: (B, J, H, W), i_j(x) and g_j(x) of step 3; log_depths: (J,) log metres, evenly
    spaced from log near to log far; sharpest: (B, J) int64, the stack index of candidate j's source image.
    """

    intensity: torch.Tensor
    gradient: torch.Tensor
    log_depths: torch.Tensor
    sharpest: torch.Tensor

    def error(self, intensity_weight: float) -> torch.Tensor:
        """e_j = w i_j + (1 - w) g_j, w = intensity_weight in [0, 1]: (B, J, H, W)."""
        return mixed_error(self.intensity, self.gradient, intensity_weight)

    @property
    def step(self) -> float:
        """Spacing of the candidates in log depth."""
        return float(self.log_depths[1] - self.log_depths[0])


@torch.no_grad()
def cost_volume(
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    camera: ThinLensCamera,
    near: float,
    far: float,
    candidates: int = SEARCH_CANDIDATES,
    kernel_size: int | None = PAPER_KERNEL_SIZE,
) -> CostVolume:
    """Per-pixel coarse reconstruction error of J candidate depths log-spaced over [near, far] metres.

    stack: (B, S, 3, H, W); focus_distances: (B, S) or (S,) metres; candidates: J >= 2;
    kernel_size: the renderer's window, or None: no window (the ladder renderer, an unclipped Gaussian).
    """
    check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
    batch, size, channels, height, width = stack.shape
    if not (0 < near < far and math.isfinite(far)):
        raise ValueError(f"near, far: expected 0 < near < far metres, got near={near!r}, far={far!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(f"candidates: expected an integer >= 2, got {candidates!r}")
    focus = check_focus_distances("focus_distances", focus_distances, batch, size, stack)

    log_depths = torch.linspace(math.log(near), math.log(far), candidates, dtype=stack.dtype, device=stack.device)
    rows = torch.arange(batch, device=stack.device)
    depths = log_depths.exp()[:, None, None, None].expand(candidates, batch, 1, 1).reshape(candidates * batch, 1, 1, 1)
    sigmas = defocus_sigma(depths, focus.repeat(candidates, 1), camera).reshape(candidates, batch, size).to(stack.dtype)
    sharpest = sigmas.min(dim=2)  # (J, B): each candidate's sharpest image and its defocus
    # the source already carries its own blur (unless passed through): add only the rest of the variance
    rest = window_variance(sigmas, kernel_size) - window_variance(sharpest.values, kernel_size)[..., None]
    remainders = sigma_for_variance(rest.clamp_min(0), kernel_size)  # (J, B, S)
    intensity, gradient = [], []
    for source_index, remainder in zip(sharpest.indices, remainders):
        source = stack[rows, source_index]  # (B, 3, H, W): the image this depth leaves sharpest
        images = source[:, None].expand(batch, size, channels, height, width).reshape(batch * size, channels, height, width)
        rendered = render_uniform_defocus(images, remainder.reshape(-1), kernel_size).reshape(stack.shape)
        residual = rendered - stack
        intensity.append(residual.abs().mean(dim=2).sum(dim=1, keepdim=True))  # (B, 1, H, W)
        gradient.append(gradient_l1(residual).mean(dim=2).sum(dim=1, keepdim=True))
    return CostVolume(torch.cat(intensity, dim=1), torch.cat(gradient, dim=1), log_depths, sharpest.indices.T.contiguous())


def mixed_error(intensity: torch.Tensor, gradient: torch.Tensor, intensity_weight: float) -> torch.Tensor:
    """Step 3's e = w i + (1 - w) g of same-shaped intensity and gradient errors, w = intensity_weight in [0, 1]."""
    check_unit_interval("intensity_weight", intensity_weight)
    return intensity_weight * intensity + (1.0 - intensity_weight) * gradient


def gradient_l1(difference: torch.Tensor) -> torch.Tensor:
    """|dr/dx| + |dr/dy| of a difference image r (..., H, W) by forward differences, 0 across the last column
    and row; same shape."""
    along_x = F.pad((difference[..., :, 1:] - difference[..., :, :-1]).abs(), (0, 1))
    along_y = F.pad((difference[..., 1:, :] - difference[..., :-1, :]).abs(), (0, 0, 0, 1))
    return along_x + along_y


@torch.no_grad()
def defocus_search(
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    camera: ThinLensCamera,
    near: float,
    far: float,
    candidates: int = SEARCH_CANDIDATES,
    window: int = SEARCH_WINDOW,
    kernel_size: int | None = PAPER_KERNEL_SIZE,
    intensity_weight: float = SEARCH_INTENSITY_WEIGHT,
) -> torch.Tensor:
    """Per-pixel depth (B, 1, H, W) metres in [near, far] minimising the coarse reconstruction error.

    stack: (B, S, 3, H, W); focus_distances: (B, S) or (S,) metres; near, far: the candidates' range [m];
    candidates: J >= 2 depths, log-spaced; window: odd box size [px] the error is averaged over;
    kernel_size: the renderer's window (None: no window); intensity_weight: w of step 3, in [0, 1].
    """
    check_odd_size("window", window)
    check_unit_interval("intensity_weight", intensity_weight)
    volume = cost_volume(stack, focus_distances, camera, near, far, candidates, kernel_size)
    error, log_depths = volume.error(intensity_weight), volume.log_depths
    if window > 1:
        error = F.avg_pool2d(F.pad(error, [window // 2] * 4, mode="replicate"), window, stride=1)

    best = error.argmin(dim=1, keepdim=True)  # (B, 1, H, W)
    centre = best.clamp(1, candidates - 2)
    before, at, after = (error.gather(1, centre + shift) for shift in (-1, 0, 1))
    rise = torch.maximum(before, after) - at  # a V through the three errors (the error is an L1 distance)
    offset = torch.where(rise > 0, 0.5 * (before - after) / rise.clamp_min(1e-12), torch.zeros_like(at))
    offset = torch.where((best > 0) & (best < candidates - 1), offset.clamp(-0.5, 0.5), torch.zeros_like(at))
    return (log_depths[best] + offset * volume.step).exp().clamp(near, far)
