"""DAIF-Net: depth and all-in-focus image from a focal stack of any size (method.md, "DAIF-Net").

Every image of the stack goes through one shared encoder with 4 input channels: RGB and a constant plane
holding its normalised focus distance, focus_distance / focus_scale. After each encoder level the pooled
features are fused across the stack by an element-wise maximum and that maximum is concatenated to every
image's features ("global pooling"); skips and the bottleneck are also maxima over the stack. A maximum does
not care about order or count, so the network accepts any S >= 1 and its output does not change when the stack
is permuted. A 2-conv head turns the fused decoder output into the AIF and the depth.

The depth head (method.md, "Depth head to metres"): one output channel mapped to metres in [near, far] by
`map_depth` (`RegressionDepth`). It is one implementation of `DepthHead`, the interface DAIF-Net reads its depth
through; `daif.search_head` plugs in another ("search", beyond the paper) the same way.

The AIF heads: "rgb", three more output channels, clipped to [0, 1] (the paper's); "select", a per-pixel
softmax over the input images, sum_k softmax_k(l_k) S_k, whose logit l_k of image k adds the defocus prior
-sigma(D, s_k) / T (`defocus_sigma` in pixels of the detached predicted depth, T = `aif_temperature` px) to
a learned part whose last layer starts at zero. An untrained "select" head's AIF is thus the soft coarse AIF
of the network's own depth ("the sharpest point of the stack", method.md); without the prior it is the
stack's mean, a blur that the reconstruction matches best with a depth at which the images pass through
unblurred: the collapse of docs/experiments.md entry 1; with it, depth learns through the reconstruction
(entry 18).

Detail input (`detail_input`, beyond the paper; off by default): each image also enters with a fifth channel,
its contrast-normalised high-pass image h_k / (n + floor) (`daif.filters.stack_high_pass`: h_k the luma
Laplacian, n the local mean of max_k |h_k| over a DETAIL_WINDOW box, floor DETAIL_FLOOR), which reads the same
for a faint texture as for a strong one, as the detail loss term does (`daif.losses.detail_error_map`). It is a
filter of the images, not a depth estimate.

Focus normalisation: the input plane is focus_distance / focus_scale with focus_scale defaulting to `far`,
so focus distances inside the working range land in (0, 1] (1..9 m with far = 10 m gives 0.1..0.9) on the
same scale as the RGB channels; it is a constructor argument, kept in `config`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from daif._checks import check_focus_distances, check_tensor
from daif.config import (AIF_HEADS, AIF_TEMPERATURE, DEPTH_HEADS, DEPTH_MAPPINGS, DEPTH_RANGE, DETAIL_FLOOR, DETAIL_WINDOW, Config,
                         LossConfig, check_model_size)
from daif.filters import stack_high_pass
from daif.losses import ExtraTerms
from daif.optics import ThinLensCamera, defocus_sigma


def _conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def _max_over_stack(features: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*S, C, H, W) -> (B, C, H, W), element-wise maximum over the stack."""
    return features.reshape(batch, -1, *features.shape[1:]).amax(dim=1)


def _repeat_over_stack(features: torch.Tensor, stack_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*S, C, H, W), the same map for every image of the stack."""
    return features.repeat_interleave(stack_size, dim=0)


def require_camera(camera: ThinLensCamera | None, user: str) -> ThinLensCamera:
    """`camera`, or ValueError naming `user` (what needs it) when there is none."""
    if camera is None:
        raise ValueError(f"camera: {user} needs the camera (none given, and the model has none)")
    return camera


# ---------------------------------------------------------------- the paper's depth head


def map_depth(raw: torch.Tensor, mapping: str, near: float, far: float) -> torch.Tensor:
    """Map the network's raw depth channel (B, 1, H, W) to metres in [near, far].

    "sigmoid": near + (far - near) * sigmoid(raw).
    "inverse": 1 / D = 1 / far + (1 / near - 1 / far) * sigmoid(raw), linear in diopters, the unit the thin
        lens's blur is linear in (sigma ~ |1/D - 1/s|); raw = 0 is the middle of the diopter range.
    "log": D = near (far / near) ^ sigmoid(raw), linear in log depth, between the two: d sigma / d raw ~ 1 / D,
        where "sigmoid" gives ~ 1 / D^2 and "inverse" a constant; raw = 0 is sqrt(near far).
    """
    if mapping == "sigmoid":
        return near + (far - near) * torch.sigmoid(raw)
    if mapping == "inverse":
        return 1.0 / (1.0 / far + (1.0 / near - 1.0 / far) * torch.sigmoid(raw))
    if mapping == "log":
        return near * torch.exp(math.log(far / near) * torch.sigmoid(raw))
    raise ValueError(f"depth_mapping: expected one of {DEPTH_MAPPINGS}, got {mapping!r}")


class DepthHead(nn.Module):
    """The interface DAIF-Net reads its depth through. A head is built as `Head(near, far, **options)`; its options
    are plain JSON values that `config` returns and DAIF-Net saves beside its own.

    guide_channels: C of the guide `guide` reads from the stack before the network runs; it joins every image's
        encoder input and the output head's input (0: none).
    depth_channels: the output head's channels that `forward` turns into depth.
    The defaults below are the paper's: no guide, no options, no terms beyond the paper's, and the "select" AIF
    head's defocus prior.
    """

    name = ""
    guide_channels = 0
    depth_channels = 1

    def __init__(self, near: float, far: float) -> None:
        super().__init__()
        self.near, self.far = near, far

    @classmethod
    def options(cls, config: Config) -> dict[str, Any]:
        """The head's options under a run's configuration."""
        return {}

    @classmethod
    def saved_options(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The head's options from the keys of a saved DAIF-Net config beyond DAIF-Net's own (older saves included)."""
        return dict(saved)

    @property
    def config(self) -> dict[str, Any]:
        return {}

    def initialise(self, output: nn.Conv2d, first: int) -> None:
        """Set the head's channels of the output conv (from channel `first` on) at construction."""

    def guide(self, stack: torch.Tensor, focus: torch.Tensor, camera: ThinLensCamera | None, **options: Any) -> tuple[torch.Tensor | None, Any]:
        """(guide (B, C, H, W) or None, the call's context for `forward` and `select_logits`) of stack (B, S, 3, H, W)
        and focus (B, S) metres; `options` are a forward call's (`training_options`)."""
        return None, None

    def forward(self, raw: torch.Tensor, context: Any) -> dict[str, torch.Tensor]:
        """raw (B, depth_channels, H, W) -> {"depth": (B, 1, H, W) metres in [near, far], and any details}."""
        raise NotImplementedError

    def select_logits(self, logits: torch.Tensor, out: dict[str, torch.Tensor], context: Any, focus: torch.Tensor,
                      camera: ThinLensCamera | None, temperature: float) -> torch.Tensor:
        """The "select" AIF head's logits (B, S, 1, H, W) with the defocus prior: l_k - sigma(D, s_k) / T of the
        detached depth D, the soft coarse AIF of the network's own depth at initialisation; T = 0: none."""
        if temperature <= 0:
            return logits
        camera = require_camera(camera, "the 'select' AIF head's defocus prior")
        sigma = defocus_sigma(out["depth"].detach().float(), focus.float(), camera).to(logits.dtype)  # (B, S, H, W)
        return logits - (sigma / temperature)[:, :, None]

    def training_options(self, loss: LossConfig) -> dict[str, Any]:
        """The options every forward call passes while training with `loss` (and validating)."""
        return {}

    def terms(self, loss: LossConfig, details: dict[str, torch.Tensor]) -> ExtraTerms | None:
        """The head's own loss terms under `loss` for a forward call's `details`; None: the paper's alone."""
        return None


class RegressionDepth(DepthHead):
    """The paper's depth head: one output channel, `map_depth(raw, depth_mapping, near, far)`."""

    name = "regress"
    # every saved model config held these "search" head options before that head had a module of its own
    _UNUSED_SAVED = ("candidates", "kernel_size", "cost_intensity_weight")

    def __init__(self, near: float, far: float, depth_mapping: str = "sigmoid") -> None:
        super().__init__(near, far)
        if depth_mapping not in DEPTH_MAPPINGS:
            raise ValueError(f"depth_mapping: expected one of {DEPTH_MAPPINGS}, got {depth_mapping!r}")
        self.depth_mapping = depth_mapping

    @classmethod
    def options(cls, config: Config) -> dict[str, Any]:
        return {"depth_mapping": config.model.depth_mapping}

    @classmethod
    def saved_options(cls, saved: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in saved.items() if key not in cls._UNUSED_SAVED}

    @property
    def config(self) -> dict[str, Any]:
        return {"depth_mapping": self.depth_mapping}

    def forward(self, raw: torch.Tensor, context: Any) -> dict[str, torch.Tensor]:
        return {"depth": map_depth(raw, self.depth_mapping, self.near, self.far)}


def depth_head_type(name: str) -> type[DepthHead]:
    """The depth head called `name`: the paper's "regress", or "search" (`daif.search_head`, beyond the paper)."""
    if name == "regress":
        return RegressionDepth
    if name == "search":
        from daif.search_head import SearchDepth

        return SearchDepth
    raise ValueError(f"depth_head: expected one of {DEPTH_HEADS}, got {name!r}")


# ---------------------------------------------------------------- the network

_OWN_KEYS = ("width", "levels", "near", "far", "focus_scale", "aif_head", "depth_head", "camera", "aif_temperature", "detail_input")


class DAIFNet(nn.Module):
    """DAIF-Net. `net(stack, focus_distances) -> (aif, depth)`.

    width: channels of the first level (W, 16 in the paper); level i has width * 2**i.
    levels: encoder levels (D, 4 in the paper); inputs are padded to a multiple of 2**levels.
    near, far: depth range [m].
    focus_scale: the focus-distance input plane is focus_distance / focus_scale [m]; None means `far`.
    aif_head: "rgb", the AIF as three output channels of the shared decoder, clipped to [0, 1] (the paper's);
        "select", the AIF as a per-pixel convex combination of the input images, sum_k softmax_k(l_k) S_k, the
        logit l_k of image k from its own first-level features and the fused decoder output plus the depth head's
        prior (module docstring), so every colour of the AIF is a mixture of the colours the stack holds at that
        pixel. The "rgb" head has to rebuild colour from features the depth terms also train.
    depth_head: "regress" (the paper's, `RegressionDepth`) or "search" (`daif.search_head.SearchDepth`);
        head_options are its options (`depth_mapping` for "regress").
    camera: the thin-lens camera as a dict (`ThinLensCamera.to_dict`), the default of a forward call's.
    aif_temperature: T [px] of the "select" head's defocus prior; 0 turns it off.
    detail_input: add each image's contrast-normalised high-pass channel (module docstring).
    All arguments are plain JSON values; `config` returns them and `from_config` rebuilds the model.
    """

    def __init__(
        self,
        width: int = 16,
        levels: int = 4,
        near: float = DEPTH_RANGE[0],
        far: float = DEPTH_RANGE[1],
        focus_scale: float | None = None,
        aif_head: str = "rgb",
        depth_head: str = "regress",
        camera: dict[str, float] | None = None,
        aif_temperature: float = AIF_TEMPERATURE,
        detail_input: bool = False,
        **head_options: Any,
    ) -> None:
        super().__init__()
        check_model_size(width, levels)
        if not (0 < near < far):
            raise ValueError(f"near, far: expected 0 < near < far metres, got near={near!r}, far={far!r}")
        if aif_head not in AIF_HEADS:
            raise ValueError(f"aif_head: expected one of {AIF_HEADS}, got {aif_head!r}")
        if isinstance(aif_temperature, bool) or not isinstance(aif_temperature, (int, float)) or not 0 <= aif_temperature < math.inf:
            raise ValueError(f"aif_temperature: expected a finite number of pixels >= 0, got {aif_temperature!r}")
        self.aif_temperature = float(aif_temperature)
        if not isinstance(detail_input, bool):
            raise ValueError(f"detail_input: expected true or false, got {detail_input!r}")
        self.detail_input = detail_input
        self.camera = None if camera is None else ThinLensCamera.from_dict(camera)
        focus_scale = float(far) if focus_scale is None else float(focus_scale)
        if focus_scale <= 0:
            raise ValueError(f"focus_scale: expected positive metres, got {focus_scale!r}")
        self.width, self.levels = width, levels
        self.near, self.far, self.focus_scale = float(near), float(far), focus_scale
        self.aif_head = aif_head
        # built before any layer (its options are checked first); registered first, so its parameters lead the
        # network's as when they were the network's own (an optimiser's saved state follows that order)
        self.depth_head = head = depth_head_type(depth_head)(self.near, self.far, **head_options)

        channels = [width * 2**i for i in range(levels + 1)]
        self.encoder = nn.ModuleList()
        in_channels = 4 + int(detail_input) + head.guide_channels  # RGB + focus plane (+ detail) (+ the depth head's guide)
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
        self.head = nn.Sequential(_conv_relu(width + head.guide_channels, width),
                                  nn.Conv2d(width, colour_channels + head.depth_channels, 3, padding=1))
        with torch.no_grad():
            if aif_head == "rgb":  # an untrained net starts mid-grey, inside the AIF clip range
                self.head[-1].bias[:3].fill_(0.5)
            head.initialise(self.head[-1], colour_channels)
        if aif_head == "select":
            # per-image selection logit from [own first-level features, fused decoder output]
            self.select = nn.Sequential(_conv_relu(channels[0] + width, width), nn.Conv2d(width, 1, 3, padding=1))
            with torch.no_grad():  # a uniform mixture at initialisation (with a prior: the coarse AIF of its depth)
                self.select[-1].weight.zero_()
                self.select[-1].bias.zero_()

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain values: DAIFNet.from_config(net.config) rebuilds the model."""
        return {
            "width": self.width,
            "levels": self.levels,
            "near": self.near,
            "far": self.far,
            "focus_scale": self.focus_scale,
            "aif_head": self.aif_head,
            "depth_head": self.depth_head.name,
            "camera": None if self.camera is None else self.camera.to_dict(),
            "aif_temperature": self.aif_temperature,
            "detail_input": self.detail_input,
            **self.depth_head.config,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DAIFNet":
        """`cls(**config)`, the keys beyond DAIF-Net's own read by the depth head's `saved_options`; a config without
        "aif_temperature" was saved before the select head's defocus prior: 0."""
        own = {key: value for key, value in config.items() if key in _OWN_KEYS}
        saved = {key: value for key, value in config.items() if key not in _OWN_KEYS}
        head_options = depth_head_type(own.get("depth_head", "regress")).saved_options(saved)
        return cls(**{"aif_temperature": 0.0, **own}, **head_options)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved before the depth head was a module held its parameters at the network's top level
        for name in self.depth_head.state_dict():
            old, new = prefix + name, f"{prefix}depth_head.{name}"
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self, stack: torch.Tensor, focus_distances: torch.Tensor, camera: ThinLensCamera | None = None, details: bool = False,
        **head_options: Any,
    ) -> tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        """stack: (B, S, 3, H, W) in [0, 1]; focus_distances: (B, S) or (S,) metres; camera: the depth head's and the
        "select" head's defocus prior's (None: the model's own); head_options: the depth head's (`training_options`).

        Returns aif (B, 3, H, W) in [0, 1] and depth (B, 1, H, W) metres in [near, far]. With `details` a dict:
        "aif", "depth" and the depth head's details.
        """
        check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
        batch, stack_size, _, height, width = stack.shape
        focus = check_focus_distances("focus_distances", focus_distances, batch, stack_size, stack)
        camera = camera if camera is not None else self.camera
        guide, context = self.depth_head.guide(stack, focus, camera, **head_options)

        multiple = 2**self.levels
        pad_h, pad_w = -height % multiple, -width % multiple
        images = stack.reshape(batch * stack_size, 3, height, width)  # (B*S, 3, H, W)
        planes = [(focus / self.focus_scale).reshape(batch * stack_size, 1, 1, 1).expand(-1, 1, height, width)]
        if self.detail_input:
            high, energy = stack_high_pass(stack, DETAIL_WINDOW)  # (B, S, H, W), (B, 1, H, W)
            planes.append((high / (energy + DETAIL_FLOOR)).reshape(batch * stack_size, 1, height, width))
        if guide is not None:
            planes.append(_repeat_over_stack(guide, stack_size))
        features = torch.cat([images, *planes], dim=1)  # (B*S, 4 [+ 1] [+ C], H, W)
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
        head_in = decoded
        if guide is not None:
            head_in = torch.cat([decoded, F.pad(guide, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else guide], dim=1)
        raw = self.head(head_in)[crop]  # (B, [3 +] depth_channels, H, W)
        colour_channels = 3 if self.aif_head == "rgb" else 0
        out = self.depth_head(raw[:, colour_channels:], context)

        if self.aif_head == "rgb":
            aif = raw[:, :3].clamp(0.0, 1.0)
        else:
            logits = self.select(torch.cat([first, _repeat_over_stack(decoded, stack_size)], dim=1))[crop]
            logits = logits.reshape(batch, stack_size, 1, height, width)
            logits = self.depth_head.select_logits(logits, out, context, focus, camera, self.aif_temperature)
            weights = torch.softmax(logits, dim=1)  # (B, S, 1, H, W)
            aif = (weights * stack).sum(dim=1)
        if details:
            return {"aif": aif, **out}
        return aif, out["depth"]
