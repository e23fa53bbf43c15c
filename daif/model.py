"""DAIF-Net: depth and all-in-focus image from a focal stack of any size (method.md, "DAIF-Net").

Every image of the stack goes through one shared encoder with 4 input channels: RGB and a constant
plane holding its normalised focus distance, focus_distance / focus_scale. After each encoder level
the pooled features are fused across the stack by an element-wise maximum and that maximum is
concatenated to every image's features ("global pooling"); skips and the bottleneck are also maxima
over the stack. A maximum does not care about order or count, so the network accepts any S >= 1 and
its output does not change when the stack is permuted.

Depth heads. "regress": one output channel mapped to metres (`map_depth`). "search": the depth is a distribution
over the J candidate depths c_j of `daif.search.cost_volume` (log-spaced over [near, far]), computed from the
stack with the camera (no learning): with e_j(x) = w i_j(x) + (1 - w) g_j(x) the coarse reconstruction error of
candidate j (its intensity and gradient parts) and e^_j = e_j / (mean_j e_j + 1e-3) its per-pixel normalisation,
    logit_j = -exp(a) e^_j + r_j,   p = softmax_j(logit),   log D = sum_j p_j log c_j,
a a learned scalar (exp(a) = 10 at initialisation) and r_j the network's output, whose last layer starts at
zero: an untrained "search" net returns the soft arg-min of the search's cost. e^ also enters every image's
encoder input (4 + J channels) and the depth head, so the network refines the search, it does not relearn it.
With the "select" AIF head the selection logits then add log(w_k + 1e-3), w_k = sum_j p_j [k = src_j] the
probability that image k is the sharpest (src_j the stack image candidate j leaves sharpest, p detached), so
an untrained net's AIF is the coarse AIF of its depth.

The "select" AIF head on the "regress" depth head: the selection logit of image k adds the defocus prior
-sigma(D, s_k) / T (`defocus_sigma` in pixels of the detached predicted depth, T = `aif_temperature` px), so the
AIF is the soft coarse AIF of the network's own depth ("the sharpest point of the stack", method.md) plus the
head's learned correction, whose last layer starts at zero. Without it an untrained head's AIF is the stack's
mean, a blur that the reconstruction matches best with a depth at which the images pass through unblurred:
the collapse of docs/experiments.md entry 1; with it, depth learns through the reconstruction (entry 18).
The weight w: a forward call may pass one, else the model's `cost_intensity_weight` (0.2 by default) applies.
Training passes the weight its energy scores (`loss.cost_intensity_weight`, 1: the intensity error, which
trains best on rendered stacks); a trained model reads the mix, whose gradient part holds up where a real lens
departs from the renderer (occlusion at depth edges): docs/experiments.md, entry 17.

Focus normalisation: the input plane is focus_distance / focus_scale with focus_scale defaulting to
`far`, so focus distances inside the working range land in (0, 1] (1..9 m with far = 10 m gives
0.1..0.9) on the same scale as the RGB channels; it is a constructor argument, kept in `config`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from daif._checks import check_focus_distances, check_kernel_size, check_tensor, check_unit_interval
from daif.config import AIF_HEADS, DEPTH_HEADS, DEPTH_MAPPINGS, check_model_size
from daif.optics import ThinLensCamera, defocus_sigma
from daif.search import cost_volume

_EPS = 1e-6
_COST_FLOOR = 1e-3  # added to the per-pixel mean error in e^ (a textureless pixel's cost tends to flat)
_SELECT_FLOOR = 1e-3  # added to w_k before its log in the "select" prior


def _conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def _max_over_stack(features: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*S, C, H, W) -> (B, C, H, W), element-wise maximum over the stack."""
    return features.reshape(batch, -1, *features.shape[1:]).amax(dim=1)


def _repeat_over_stack(features: torch.Tensor, stack_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*S, C, H, W), the same map for every image of the stack."""
    return features.repeat_interleave(stack_size, dim=0)


def map_depth(raw: torch.Tensor, mapping: str, near: float, far: float) -> torch.Tensor:
    """Map the network's raw depth channel (B, 1, H, W) to metres in [near, far].

    "sigmoid": near + (far - near) * sigmoid(raw).
    "inverse": 1 / D = 1 / far + (1 / near - 1 / far) * sigmoid(raw), linear in diopters, the unit the thin
        lens's blur is linear in (sigma ~ |1/D - 1/s|); raw = 0 is the middle of the diopter range.
    "max": softplus(raw) / its per-image maximum, scaled to [near, far] (the reference's normalisation;
        softplus keeps it positive without dead gradients).
    """
    if mapping == "sigmoid":
        unit = torch.sigmoid(raw)
    elif mapping == "inverse":
        return 1.0 / (1.0 / far + (1.0 / near - 1.0 / far) * torch.sigmoid(raw))
    elif mapping == "max":
        positive = F.softplus(raw)
        unit = positive / (positive.amax(dim=(2, 3), keepdim=True) + _EPS)
    else:
        raise ValueError(f"depth_mapping: expected one of {DEPTH_MAPPINGS}, got {mapping!r}")
    return near + (far - near) * unit


class DAIFNet(nn.Module):
    """DAIF-Net. `net(stack, focus_distances) -> (aif, depth)`.

    width: channels of the first level (W, 16 in the paper); level i has width * 2**i.
    levels: encoder levels (D, 4 in the paper); inputs are padded to a multiple of 2**levels.
    depth_mapping: "sigmoid" | "max" (see `map_depth`).
    near, far: depth range [m].
    focus_scale: the focus-distance input plane is focus_distance / focus_scale [m]; None means `far`.
    aif_head: "rgb", the AIF as three output channels of the shared decoder, clipped to [0, 1] (the paper's);
        "select", the AIF as a per-pixel convex combination of the input images, sum_k softmax_k(l_k) S_k, the
        logit l_k of image k from its own first-level features and the fused decoder output (so every
        colour of the AIF is a mixture of the colours the stack holds at that pixel; a uniform mixture at
        initialisation). The "rgb" head has to rebuild colour from features the depth terms also train.
    depth_head: "regress" (one channel, `map_depth`) or "search" (a distribution over the candidates of the
        defocus search's cost volume; see the module docstring); `depth_mapping` applies to "regress" only.
    camera: the thin-lens camera as a dict (`ThinLensCamera.to_dict`), the "search" head's default (a forward
        call may pass another); candidates: J; kernel_size: the renderer window of the cost volume;
        cost_intensity_weight: w of its error, w |r| + (1 - w) |grad r| (`daif.search`, step 3).
    aif_temperature: T [px] of the "select" head's defocus prior on the "regress" depth head; 0 turns it off.
    All arguments are plain JSON values; `config` returns them and `from_config` rebuilds the model.
    """

    def __init__(
        self,
        width: int = 16,
        levels: int = 4,
        depth_mapping: str = "sigmoid",
        near: float = 0.1,
        far: float = 10.0,
        focus_scale: float | None = None,
        aif_head: str = "rgb",
        depth_head: str = "regress",
        camera: dict[str, float] | None = None,
        candidates: int = 24,
        kernel_size: int = 7,
        cost_intensity_weight: float = 0.2,
        aif_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        check_model_size(width, levels, candidates)
        if depth_mapping not in DEPTH_MAPPINGS:
            raise ValueError(f"depth_mapping: expected one of {DEPTH_MAPPINGS}, got {depth_mapping!r}")
        if not (0 < near < far):
            raise ValueError(f"near, far: expected 0 < near < far metres, got near={near!r}, far={far!r}")
        if aif_head not in AIF_HEADS:
            raise ValueError(f"aif_head: expected one of {AIF_HEADS}, got {aif_head!r}")
        if depth_head not in DEPTH_HEADS:
            raise ValueError(f"depth_head: expected one of {DEPTH_HEADS}, got {depth_head!r}")
        check_kernel_size("kernel_size", kernel_size)
        cost_intensity_weight = check_unit_interval("cost_intensity_weight", cost_intensity_weight)
        if isinstance(aif_temperature, bool) or not isinstance(aif_temperature, (int, float)) or not 0 <= aif_temperature < math.inf:
            raise ValueError(f"aif_temperature: expected a finite number of pixels >= 0, got {aif_temperature!r}")
        self.aif_temperature = float(aif_temperature)
        self.camera = None if camera is None else ThinLensCamera.from_dict(camera)
        focus_scale = float(far) if focus_scale is None else float(focus_scale)
        if focus_scale <= 0:
            raise ValueError(f"focus_scale: expected positive metres, got {focus_scale!r}")
        self.width, self.levels, self.depth_mapping = width, levels, depth_mapping
        self.near, self.far, self.focus_scale = float(near), float(far), focus_scale
        self.aif_head, self.depth_head = aif_head, depth_head
        self.candidates, self.kernel_size, self.cost_intensity_weight = candidates, kernel_size, cost_intensity_weight
        searching = depth_head == "search"
        cost_channels = candidates if searching else 0
        depth_channels = candidates if searching else 1

        channels = [width * 2**i for i in range(levels + 1)]
        self.encoder = nn.ModuleList()
        in_channels = 4 + cost_channels  # RGB + focus plane (+ the normalised cost volume)
        for level in range(levels):
            self.encoder.append(nn.Sequential(_conv_relu(in_channels, channels[level]), _conv_relu(channels[level], channels[level])))
            in_channels = 2 * channels[level]  # own pooled features + their maximum over the stack
        self.bottleneck = _conv_relu(in_channels, channels[levels])
        self.up_convs = nn.ModuleList()
        self.merge_convs = nn.ModuleList()
        for level in reversed(range(levels)):
            self.up_convs.append(_conv_relu(channels[level + 1], channels[level]))
            self.merge_convs.append(_conv_relu(2 * channels[level], channels[level]))
        colour_channels = 3 if aif_head == "rgb" else 0
        self.head = nn.Sequential(_conv_relu(width + cost_channels, width), nn.Conv2d(width, colour_channels + depth_channels, 3, padding=1))
        with torch.no_grad():
            if aif_head == "rgb":  # an untrained net starts mid-grey, inside the AIF clip range
                self.head[-1].bias[:3].fill_(0.5)
            if searching:  # an untrained net returns the search's soft arg-min
                self.head[-1].weight[colour_channels:].zero_()
                self.head[-1].bias[colour_channels:].zero_()
        if aif_head == "select":
            # per-image selection logit from [own first-level features, fused decoder output]
            self.select = nn.Sequential(_conv_relu(channels[0] + width, width), nn.Conv2d(width, 1, 3, padding=1))
            with torch.no_grad():  # a uniform mixture at initialisation (with a prior: the coarse AIF of its depth)
                self.select[-1].weight.zero_()
                self.select[-1].bias.zero_()
        if searching:
            self.cost_sharpness = nn.Parameter(torch.tensor(math.log(10.0)))  # a: logit_j = -exp(a) e^_j + r_j

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain values: DAIFNet.from_config(net.config) rebuilds the model."""
        return {
            "width": self.width,
            "levels": self.levels,
            "depth_mapping": self.depth_mapping,
            "near": self.near,
            "far": self.far,
            "focus_scale": self.focus_scale,
            "aif_head": self.aif_head,
            "depth_head": self.depth_head,
            "camera": None if self.camera is None else self.camera.to_dict(),
            "candidates": self.candidates,
            "kernel_size": self.kernel_size,
            "cost_intensity_weight": self.cost_intensity_weight,
            "aif_temperature": self.aif_temperature,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DAIFNet":
        """`cls(**config)`; a config without "cost_intensity_weight" was saved when the error was |r| alone: 1; one
        without "aif_temperature" before the select head's defocus prior: 0."""
        return cls(**{"cost_intensity_weight": 1.0, "aif_temperature": 0.0, **config})

    def forward(
        self, stack: torch.Tensor, focus_distances: torch.Tensor, camera: ThinLensCamera | None = None, details: bool = False,
        cost_intensity_weight: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        """stack: (B, S, 3, H, W) in [0, 1]; focus_distances: (B, S) or (S,) metres; camera: the "search"
        head's and the "select" head's defocus prior's camera (None: the model's own); cost_intensity_weight: the w
        its cost volume is read with (None: the model's own; training passes the energy's).

        Returns aif (B, 3, H, W) in [0, 1] and depth (B, 1, H, W) metres in [near, far]. With `details` a dict:
        "aif", "depth", and for the "search" head also "probabilities" (B, J, H, W), "cost_intensity" and
        "cost_gradient" (B, J, H, W), the raw i_j and g_j of `daif.search`, and "log_depths" (J,).
        """
        check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
        batch, stack_size, _, height, width = stack.shape
        focus = check_focus_distances("focus_distances", focus_distances, batch, stack_size, stack)
        searching = self.depth_head == "search"
        volume = self._cost_volume(stack, focus, camera) if searching else None

        multiple = 2**self.levels
        pad_h, pad_w = -height % multiple, -width % multiple
        images = stack.reshape(batch * stack_size, 3, height, width)  # (B*S, 3, H, W)
        planes = [(focus / self.focus_scale).reshape(batch * stack_size, 1, 1, 1).expand(-1, 1, height, width)]
        if volume is not None:
            weight = self.cost_intensity_weight if cost_intensity_weight is None else cost_intensity_weight
            error = volume.error(weight)  # e_j, (B, J, H, W)
            normalised = error / (error.mean(dim=1, keepdim=True) + _COST_FLOOR)  # e^
            planes.append(_repeat_over_stack(normalised, stack_size))
        features = torch.cat([images, *planes], dim=1)  # (B*S, 4 [+ J], H, W)
        if pad_h or pad_w:
            features = F.pad(features, (0, pad_w, 0, pad_h), mode="replicate")
        crop = (..., slice(0, height), slice(0, width))

        skips = []
        for index, level in enumerate(self.encoder):
            features = level(features)
            if index == 0:
                first = features  # (B*S, C_0, H', W'), per image
            skips.append(_max_over_stack(features, batch))  # (B, C_i, H_i, W_i)
            pooled = F.max_pool2d(features, 2)
            fused = _repeat_over_stack(_max_over_stack(pooled, batch), stack_size)
            features = torch.cat([pooled, fused], dim=1)  # (B*S, 2 C_i, H_i/2, W_i/2)
        decoded = _max_over_stack(self.bottleneck(features), batch)  # (B, C_D, ...)

        for up_conv, merge_conv, skip in zip(self.up_convs, self.merge_convs, reversed(skips)):
            decoded = up_conv(F.interpolate(decoded, scale_factor=2, mode="bilinear", align_corners=False))
            decoded = merge_conv(torch.cat([decoded, skip], dim=1))
        if volume is None:
            raw = self.head(decoded)[crop]  # (B, 4, H, W) "rgb", (B, 1, H, W) "select"
            depth = map_depth(raw[:, -1:], self.depth_mapping, self.near, self.far)
            out: dict[str, torch.Tensor] = {}
        else:
            cost_in = F.pad(normalised, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else normalised
            raw = self.head(torch.cat([decoded, cost_in], dim=1))[crop]  # (B, [3 +] J, H, W)
            logits = raw[:, -self.candidates:] - self.cost_sharpness.exp() * normalised
            probabilities = torch.softmax(logits, dim=1)  # (B, J, H, W)
            log_depth = (probabilities * volume.log_depths[:, None, None]).sum(dim=1, keepdim=True)
            depth = log_depth.exp().clamp(self.near, self.far)
            out = {"probabilities": probabilities, "cost_intensity": volume.intensity, "cost_gradient": volume.gradient,
                   "log_depths": volume.log_depths}

        if self.aif_head == "rgb":
            aif = raw[:, :3].clamp(0.0, 1.0)
        else:
            logits = self.select(torch.cat([first, _repeat_over_stack(decoded, stack_size)], dim=1))[crop]
            logits = logits.reshape(batch, stack_size, 1, height, width)
            if volume is not None:  # log P(image k is the sharpest) under the (detached) depth distribution
                sharpest = F.one_hot(volume.sharpest, stack_size).to(probabilities.dtype)  # (B, J, S)
                chance = torch.einsum("bjhw,bjs->bshw", probabilities.detach(), sharpest)
                logits = logits + (chance + _SELECT_FLOOR).log()[:, :, None]
            elif self.aif_temperature > 0:  # the defocus prior: the soft coarse AIF of the (detached) depth
                sigma = defocus_sigma(depth.detach().float(), focus.float(), self._camera(camera)).to(logits.dtype)  # (B, S, H, W)
                logits = logits - (sigma / self.aif_temperature)[:, :, None]
            weights = torch.softmax(logits, dim=1)  # (B, S, 1, H, W)
            aif = (weights * stack).sum(dim=1)
        if details:
            return {"aif": aif, "depth": depth, **out}
        return aif, depth

    def _camera(self, camera: ThinLensCamera | None) -> ThinLensCamera:
        camera = camera if camera is not None else self.camera
        if camera is None:
            raise ValueError("camera: the 'search' depth head and the 'select' head's defocus prior need the camera "
                             "(none given, and the model has none)")
        return camera

    def _cost_volume(self, stack: torch.Tensor, focus: torch.Tensor, camera: ThinLensCamera | None):
        camera = self._camera(camera)
        with torch.autocast(stack.device.type, enabled=False):  # the renderer runs in float32
            return cost_volume(stack.float(), focus.float(), camera, self.near, self.far, self.candidates, self.kernel_size)
