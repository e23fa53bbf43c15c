"""Beyond the paper: the "search" depth head, DAIF-Net refining the defocus search's cost volume, and its loss terms.

The `quickstart-search` preset's recipe (docs/experiments.md, entries 11, 15 and 17). It plugs into DAIF-Net as
a `daif.model.DepthHead` (`model.depth_head=search`) and into the objective through its `terms` hook.

The head: the depth is a distribution over the J candidate depths c_j of `daif.search.cost_volume`
(log-spaced over [near, far]), computed from the stack with the camera (no learning): with e_j(x) =
w i_j(x) + (1 - w) g_j(x) the coarse reconstruction error of candidate j (its intensity and gradient parts)
and e^_j = e_j / (mean_j e_j + 1e-3) its per-pixel normalisation,
    logit_j = -exp(a) e^_j + r_j,   p = softmax_j(logit),   log D = sum_j p_j log c_j,
a a learned scalar (exp(a) = 10 at initialisation) and r_j the network's output, whose last layer starts at
zero: an untrained "search" net returns the soft arg-min of the search's cost. e^ is the head's guide: it
enters every image's encoder input (4 + J channels) and the output head, so the network refines the search,
it does not relearn it. With the "select" AIF head the selection logits add log(w_k + 1e-3), w_k = sum_j p_j
[k = src_j] the probability that image k is the sharpest (src_j the stack image candidate j leaves sharpest,
p detached), so an untrained net's AIF is the coarse AIF of its depth.
The weight w: a forward call may pass one, else the head's `cost_intensity_weight` (0.2 by default) applies.
Training passes the weight its energy scores (`loss.cost_intensity_weight`, 1: the intensity error, which
trains best on rendered stacks); a trained model reads the mix, whose gradient part holds up where a real lens
departs from the renderer (occlusion at depth edges): entry 17.

Its terms (unweighted scalars, weighted by `loss.cost` and `loss.cost_smooth`; 0: off):
    cost       mean over pixels of sum_j p_j(x) e_j(x) / mean(e), the expected coarse reconstruction error under
               p, e mixed by w = `loss.cost_intensity_weight` (the energy; the network's input mixes by its own
               weight), normalised by its mean over candidates and pixels per image. Its gradient,
               p_j (e_j - sum_i p_i e_i) per logit, sees every candidate: no local minima.
    cost_smooth  mean |dL/dx| exp(-beta |dC/dx|) + mean |dL/dy| exp(-beta |dC/dy|), L = log D / step the log
               depth in candidate steps, C the detached coarse AIF, beta = `loss.cost_smooth_beta`. With `cost`
               it is an edge-aware MRF energy: where the stack holds no defocus cue (flat cost) the depth
               follows its neighbours.

One knob each: the candidates are `model.candidates`, the renderer window is `loss.kernel_size`, the one the
objective renders with and that `daif train` checks against the store's.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from daif._checks import check_kernel_size, check_unit_interval
from daif.config import PAPER_KERNEL_SIZE, SEARCH_CANDIDATES, SEARCH_INTENSITY_WEIGHT, Config, LossConfig, check_model_int
from daif.losses import ExtraTerms, smoothness_loss
from daif.model import DepthHead, require_camera
from daif.optics import ThinLensCamera
from daif.search import CostVolume, cost_volume, mixed_error

_COST_FLOOR = 1e-3  # added to the per-pixel mean error in e^ (a textureless pixel's cost tends to flat)
_SELECT_FLOOR = 1e-3  # added to w_k before its log in the "select" prior


@dataclasses.dataclass(frozen=True)
class _Reading:
    """One forward call's cost volume and its normalised error e^ (B, J, H, W)."""

    volume: CostVolume
    normalised: torch.Tensor


class SearchDepth(DepthHead):
    """The "search" depth head (module docstring). candidates: J; kernel_size: the renderer window of the cost
    volume (None: no window); cost_intensity_weight: w of the error it reads after training."""

    name = "search"

    def __init__(self, near: float, far: float, candidates: int = SEARCH_CANDIDATES, kernel_size: int | None = PAPER_KERNEL_SIZE,
                 cost_intensity_weight: float = SEARCH_INTENSITY_WEIGHT) -> None:
        super().__init__(near, far)
        self.candidates = check_model_int("candidates", candidates)
        self.kernel_size = check_kernel_size("kernel_size", kernel_size)
        self.cost_intensity_weight = check_unit_interval("cost_intensity_weight", cost_intensity_weight)
        self.guide_channels = self.depth_channels = candidates
        self.cost_sharpness = nn.Parameter(torch.tensor(math.log(10.0)))  # a: logit_j = -exp(a) e^_j + r_j

    @classmethod
    def options(cls, config: Config) -> dict[str, Any]:
        return {"candidates": config.model.candidates, "kernel_size": config.loss.kernel_size,
                "cost_intensity_weight": config.model.cost_intensity_weight}

    @classmethod
    def saved_options(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A model saved without "cost_intensity_weight" read |r| alone: 1; "depth_mapping", which every saved model
        held, is the "regress" head's."""
        return {"cost_intensity_weight": 1.0, **{key: value for key, value in saved.items() if key != "depth_mapping"}}

    @property
    def config(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "kernel_size": self.kernel_size, "cost_intensity_weight": self.cost_intensity_weight}

    def initialise(self, output: nn.Conv2d, first: int) -> None:
        output.weight[first:].zero_()  # r_j = 0: an untrained net returns the search's soft arg-min
        output.bias[first:].zero_()

    def guide(self, stack: torch.Tensor, focus: torch.Tensor, camera: ThinLensCamera | None,
              cost_intensity_weight: float | None = None) -> tuple[torch.Tensor, _Reading]:
        """e^ (B, J, H, W) of the stack's cost volume read with w = cost_intensity_weight (None: the head's own)."""
        camera = require_camera(camera, "the 'search' depth head")
        with torch.autocast(stack.device.type, enabled=False):  # the renderer runs in float32
            volume = cost_volume(stack.float(), focus.float(), camera, self.near, self.far, self.candidates, self.kernel_size)
        error = volume.error(self.cost_intensity_weight if cost_intensity_weight is None else cost_intensity_weight)  # e_j
        normalised = error / (error.mean(dim=1, keepdim=True) + _COST_FLOOR)  # e^
        return normalised, _Reading(volume, normalised)

    def forward(self, raw: torch.Tensor, context: _Reading) -> dict[str, torch.Tensor]:
        """depth and "probabilities" p (B, J, H, W), "cost_intensity" and "cost_gradient" (B, J, H, W) (the raw i_j
        and g_j of `daif.search`) and "log_depths" (J,)."""
        volume = context.volume
        probabilities = torch.softmax(raw - self.cost_sharpness.exp() * context.normalised, dim=1)  # (B, J, H, W)
        log_depth = (probabilities * volume.log_depths[:, None, None]).sum(dim=1, keepdim=True)
        return {"depth": log_depth.exp().clamp(self.near, self.far), "probabilities": probabilities,
                "cost_intensity": volume.intensity, "cost_gradient": volume.gradient, "log_depths": volume.log_depths}

    def select_logits(self, logits: torch.Tensor, out: dict[str, torch.Tensor], context: _Reading, focus: torch.Tensor,
                      camera: ThinLensCamera | None, temperature: float) -> torch.Tensor:
        """l_k + log P(image k is the sharpest) under the (detached) depth distribution."""
        probabilities = out["probabilities"]
        sharpest = F.one_hot(context.volume.sharpest, logits.shape[1]).to(probabilities.dtype)  # (B, J, S)
        chance = torch.einsum("bjhw,bjs->bshw", probabilities.detach(), sharpest)
        return logits + (chance + _SELECT_FLOOR).log()[:, :, None]

    def training_options(self, loss: LossConfig) -> dict[str, Any]:
        return {"cost_intensity_weight": loss.cost_intensity_weight}

    def terms(self, loss: LossConfig, details: dict[str, torch.Tensor]) -> ExtraTerms | None:
        return cost_terms(loss, details) if loss.cost or loss.cost_smooth else None


def expected_cost(probabilities: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """mean_x sum_j p_j(x) e_j(x) / mean(e), the mean of e over (J, H, W) per image. (B, J, H, W) each -> scalar."""
    scale = cost.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return ((probabilities * cost / scale).sum(dim=1)).mean()


def cost_terms(loss: LossConfig, details: dict[str, torch.Tensor]) -> ExtraTerms:
    """The weighted ones of `cost` and `cost_smooth` (module docstring) for the head's `details` ("probabilities",
    "cost_intensity", "cost_gradient", "log_depths"), as `daif.losses.objective`'s extra_terms."""

    def terms(depth: torch.Tensor, coarse_aif: torch.Tensor) -> dict[str, torch.Tensor]:
        found = {}
        if loss.cost:
            energy = mixed_error(details["cost_intensity"], details["cost_gradient"], loss.cost_intensity_weight)
            found["cost"] = expected_cost(details["probabilities"], energy)
        if loss.cost_smooth:
            step = details["log_depths"][1] - details["log_depths"][0]
            found["cost_smooth"] = smoothness_loss(depth.clamp_min(1e-6).log() / step, coarse_aif.detach(), loss.cost_smooth_beta)
        return found

    return terms
