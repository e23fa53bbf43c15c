"""Run configuration: one frozen, nested dataclass, loadable from YAML, overridable from the command line.

    config = load_config("my.yaml", overrides=["loss.recon=100", "optim.lr=1e-4"], preset="nyuv2-robust")
    load_config(preset="quickstart")   # the quickstart's training, exactly (`daif train --preset quickstart`)
    flatten(config)   # {"loss.recon": 100.0, ...}: what goes to mlflow.log_params and train_loop_config
    to_yaml(config)   # the full file, logged as an artifact so every run says exactly what ran

Unknown keys and values of the wrong type are errors that name the key. Every default lives here: the
dataclass fields (the paper's published command) and the named presets in `TRAINING_PRESETS`.
Importing this module needs no torch.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from daif._checks import RENDER_PSFS, check_kernel_size

COARSE_AIF_MODES = ("hard", "soft")
DEPTH_MAPPINGS = ("sigmoid", "inverse", "log")
SCHEDULES = ("cosine", "constant")  # optim.schedule (daif.train.loop.lr_factor)
AIF_HEADS = ("rgb", "select")
DEPTH_HEADS = ("regress", "search")  # "search": daif.search_head, beyond the paper
SEARCH_TERMS = ("cost", "cost_smooth")  # loss terms of the "search" depth head (daif.search_head)
DETAIL_FLOOR = 1.0 / 255  # one 8-bit grey level: the floor of the detail term's normaliser (daif.losses.detail_error_map)
DETAIL_WINDOW = 9  # px: the box over which the detail normaliser averages the stack's high-pass energy (also model.detail_input)

# Defaults that the model, the defocus search and the dataclasses below share (one place each)
DEPTH_RANGE = (0.1, 10.0)  # metres, DAIF-Net's [near, far] when none is given (NYUv2's depth clip, method.md)
# the renderer's window K [px] of `daif render`, `daif demo` and training (loss.kernel_size) by default: none, the
# ladder renderer (daif.optics.ladder), whose blur has no ceiling, so the support covers whatever blur the camera
# makes; a window K caps blur near sigma 0.41 K (the store records the data's largest blur, training checks it)
KERNEL_SIZE: int | None = None
# px, the paper's window: the default of the optics primitives (daif.optics.render) and the defocus search
# (daif.search), which callers give the store's or the model's window
PAPER_KERNEL_SIZE = 7
AIF_TEMPERATURE = 1.0  # px, T of the "select" AIF head's defocus prior -sigma(D, s_k) / T
SEARCH_CANDIDATES = 24  # candidate depths of the defocus search and the "search" head, log-spaced over [near, far]
SEARCH_WINDOW = 3  # px, the box the defocus search averages its error over
# w of the error e = w |r| + (1 - w) |grad r| that a trained "search" head and the defocus search read
# (docs/experiments.md, entry 17); training reads and scores the intensity error (LossConfig.cost_intensity_weight)
SEARCH_INTENSITY_WEIGHT = 0.2

# Keys a saved config may still hold from before they were dropped (issue 24), with the value they had by default:
# at that value the key is ignored (it changed nothing), at any other it is an error naming it (docs/usage.md).
RETIRED_KEYS: dict[str, Any] = {
    "data.min_stack_size": 0,  # random sub-stacks in training (docs/experiments.md, entry 6)
    "loss.search": 0.0,  # the defocus search as a detached depth target (entry 5)
    "loss.search_candidates": SEARCH_CANDIDATES,
    "loss.search_window": SEARCH_WINDOW,
}
DEPTH_RANGE_SOURCES = ("clip", "scenes")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_SPREAD", "STRICT_PACK")  # Ray's placement-group strategies
# DAIF-Net's size bounds, checked by ModelConfig and by DAIFNet (so a checkpoint's meta.json cannot ask for more).
# The deepest level has width * 2**levels channels; 2048 is about 1.1e8 parameters (0.45 GB in float32).
MODEL_INT_RANGES = {"width": (1, 512), "levels": (1, 8), "candidates": (2, 256)}
MAX_DEEPEST_CHANNELS = 2048


def check_model_int(name: str, value: object) -> int:
    """Raise ValueError naming the argument when `value` is not an integer in MODEL_INT_RANGES[name]."""
    low, high = MODEL_INT_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
    return value


def check_model_size(width: object, levels: object) -> None:
    """Raise ValueError naming the argument when DAIF-Net's size is outside MODEL_INT_RANGES or MAX_DEEPEST_CHANNELS."""
    check_model_int("width", width)
    check_model_int("levels", levels)
    if width * 2**levels > MAX_DEEPEST_CHANNELS:
        raise ValueError(f"width, levels: the deepest level's width * 2**levels = {width * 2**levels} channels exceeds "
                         f"{MAX_DEEPEST_CHANNELS}; use a smaller width or fewer levels")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    path: str = ""  # the rendered store (directory or URI the workers can read)
    train_split: str = "train"
    val_split: str = "val"  # taken from the training scenes at render time, never from test
    mode: str = "binned"  # "binned": one random image per bin each step (robust); "fixed": `fixed_indices`
    num_bins: int = 5  # input stack size K
    fixed_indices: tuple[int, ...] = ()  # stack indices of "fixed" mode; empty = every image of the store
    camera: str = ""  # empty: the store's camera; a preset name or "f,N,p" must agree with the store


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    width: int = 16
    levels: int = 4
    depth_mapping: str = "sigmoid"  # "sigmoid" (linear in metres), "inverse" (in diopters), "log" (in log depth); see daif.model.map_depth
    near: float = 0.0  # metres; 0 = the store's depth range (`range_source`)
    far: float = 0.0
    range_source: str = "clip"  # near/far 0: "clip", the store's depth clip; "scenes", the depths its scenes span
    focus_scale: float = 0.0  # focus-distance input plane = focus / focus_scale; 0 = far
    aif_head: str = "rgb"  # "rgb" (the paper's: three output channels) or "select" (a per-pixel mixture of the stack); see daif.model
    depth_head: str = "regress"  # "regress" (the paper's: one channel) or "search" (refines the defocus search's cost volume; daif.search_head)
    candidates: int = SEARCH_CANDIDATES  # "search" head: candidate depths, log-spaced over [near, far]
    cost_intensity_weight: float = SEARCH_INTENSITY_WEIGHT  # "search" head: w of the cost volume it reads after training
    aif_temperature: float = AIF_TEMPERATURE  # px; "select" AIF head on the "regress" depth head: T of its defocus prior -sigma/T (0 = off)
    detail_input: bool = False  # beyond the paper: each image also enters as its contrast-normalised high-pass channel (daif.model)

    def __post_init__(self) -> None:
        check_model_size(self.width, self.levels)
        check_model_int("candidates", self.candidates)
        if not all(math.isfinite(v) and v >= 0 for v in (self.near, self.far, self.focus_scale)):
            raise ValueError(f"near, far, focus_scale: expected finite metres >= 0 (0 = from the store), got "
                             f"{self.near!r}, {self.far!r}, {self.focus_scale!r}")
        if (self.near > 0) != (self.far > 0) or (self.near > 0 and not self.near < self.far):
            raise ValueError(f"near, far: expected 0 < near < far metres, or both 0 (the store's range), got {self.near!r}, {self.far!r}")
        if self.aif_head not in AIF_HEADS:
            raise ValueError(f"aif_head: expected one of {AIF_HEADS}, got {self.aif_head!r}")
        if self.depth_head not in DEPTH_HEADS:
            raise ValueError(f"depth_head: expected one of {DEPTH_HEADS}, got {self.depth_head!r}")
        _check_unit("cost_intensity_weight", self.cost_intensity_weight)
        if not (math.isfinite(self.aif_temperature) and self.aif_temperature >= 0):
            raise ValueError(f"aif_temperature: expected a finite number of pixels >= 0, got {self.aif_temperature!r}")
        if self.depth_mapping not in DEPTH_MAPPINGS:
            raise ValueError(f"depth_mapping: expected one of {DEPTH_MAPPINGS}, got {self.depth_mapping!r}")
        if self.range_source not in DEPTH_RANGE_SOURCES:
            raise ValueError(f"range_source: expected one of {DEPTH_RANGE_SOURCES}, got {self.range_source!r}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights and parameters (`daif.losses.objective`); defaults are the paper's published command, except the
    renderer: no window (KERNEL_SIZE), where the paper's 7x7 window caps blur near sigma 2.9 px."""

    recon: float = 1000.0
    blur: float = 10.0
    aif_recon: float = 100.0
    aif_blur: float = 10.0
    smooth: float = 10.0
    smooth_beta: float = 2.5
    alpha: float = 0.85  # SSIM share of the photometric terms
    coarse_aif: str = "hard"  # "hard" | "soft"
    temperature: float = 1.0  # px of defocus, softmin temperature of the "soft" coarse AIF
    kernel_size: int | None = KERNEL_SIZE  # renderer window K (odd, the paper's 7), or null: no window (daif.optics.ladder, no blur ceiling)
    psf: str = "gaussian"  # the recon term's PSF: "gaussian" (method.md's), "disc", a round aperture (daif.optics.disc_ladder), or "layered", round-aperture depth layers with partial occlusion (daif.optics.soft_layers); the last two with kernel_size null
    recon_scales: int = 1  # the recon term is the mean over this many pyramid levels (2x average pooling each)
    recon_trains_depth: bool = True  # False: the recon term's gradient reaches the AIF only
    # beyond the paper: weight of the contrast-normalised high-pass reconstruction (daif.losses.detail_error_map); 0: off
    detail: float = 0.0
    detail_floor: float = DETAIL_FLOOR  # luma per pixel added to the local high-pass energy that divides the detail error
    # the "search" depth head's terms (daif.search_head), beyond the paper; weight 0: off
    cost: float = 0.0  # weight of the expected coarse reconstruction error under the head's depth distribution
    cost_intensity_weight: float = 1.0  # w of the `cost` energy's error (daif.search), also the w the head reads in training
    cost_smooth: float = 0.0  # weight of the edge-aware total variation of log depth (in candidate steps)
    cost_smooth_beta: float = 10.0  # edge weight exp(-beta |grad coarse AIF|) of `cost_smooth`

    def __post_init__(self) -> None:
        if self.coarse_aif not in COARSE_AIF_MODES:
            raise ValueError(f"coarse_aif: expected one of {COARSE_AIF_MODES}, got {self.coarse_aif!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature!r}")
        for name in (*SEARCH_TERMS, "detail"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name}: expected a finite weight >= 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.detail_floor) and self.detail_floor > 0):
            raise ValueError(f"detail_floor: expected a finite luma step > 0, got {self.detail_floor!r}")
        _check_unit("cost_intensity_weight", self.cost_intensity_weight)
        check_kernel_size("kernel_size", self.kernel_size)
        if self.psf not in RENDER_PSFS:
            raise ValueError(f"psf: expected one of {RENDER_PSFS}, got {self.psf!r}")
        if self.psf != "gaussian" and self.kernel_size is not None:
            raise ValueError(f"psf: the {self.psf} renderer has no window; set kernel_size null (got {self.kernel_size})")
        if isinstance(self.recon_scales, bool) or not isinstance(self.recon_scales, int) or not 1 <= self.recon_scales <= 6:
            raise ValueError(f"recon_scales: expected an integer in [1, 6], got {self.recon_scales!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {self.alpha!r}")

    @property
    def weights(self) -> dict[str, float]:
        """Term name -> weight of every weighted term of the objective."""
        return {"recon": self.recon, "blur": self.blur, "aif_recon": self.aif_recon, "aif_blur": self.aif_blur,
                "smooth": self.smooth, "detail": self.detail, "cost": self.cost, "cost_smooth": self.cost_smooth}


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" annealing over all iterations, or "constant"
    batch_size: int = 32  # global, split across workers
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    warmup_epochs: float = 0.0  # linear warm-up of the learning rate over this many epochs, then the schedule

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        if not (math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise ValueError(f"warmup_epochs: expected a finite number of epochs >= 0, got {self.warmup_epochs!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    seed: int = 0
    # picks the best checkpoint and ranks tune trials: the paper's reconstruction error of the validation stacks
    # (unweighted, so trials of different loss scales compare), no depth or AIF ground truth (docs/experiments.md,
    # entry 18); val/delta1 (max) stays available for studies on data with depth
    val_metric: str = "val/recon"
    val_mode: str = "min"
    patience: int = 0  # epochs without improvement before stopping; 0 = never
    figures_every: int = 10  # epochs between figure logs (and always at the end)
    mixed_precision: bool = True  # bf16 autocast for the network on GPU (the renderer stays float32)
    stop_after: int = 0  # stop this invocation after N epochs (resume continues); 0 = run to the end
    # fine-tuning: the network starts from the weights of this checkpoint directory, model folder or MLflow model
    # URI (same architecture); the optimiser, schedule and epochs start afresh; a resume ignores it (its checkpoint
    # holds the weights). Empty: a fresh initialisation
    init_from: str = ""


@dataclasses.dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    max_failures: int = 1  # worker-group restarts from the latest checkpoint
    # how Ray places the workers' bundles: PACK (fewest nodes), SPREAD (as many nodes as it can),
    # STRICT_SPREAD (one worker per node, or the run waits for nodes), STRICT_PACK (one node)
    placement_strategy: str = "PACK"

    def __post_init__(self) -> None:
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            raise ValueError(f"placement_strategy: expected one of {PLACEMENT_STRATEGIES}, got {self.placement_strategy!r}")


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str = ""  # empty: MLFLOW_TRACKING_URI, else the local store in the working directory
    experiment: str = "daif"
    run_name: str = ""
    storage: str = ""  # Ray Train storage for checkpoints (absolute path or URI); empty: ./runs


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    tracking: TrackingConfig = TrackingConfig()

    def __post_init__(self) -> None:
        for name in SEARCH_TERMS:
            if getattr(self.loss, name) and self.model.depth_head != "search":
                raise ValueError(f"loss.{name}: a term of the 'search' depth head (daif.search_head), and model.depth_head is "
                                 f"{self.model.depth_head!r}; set model.depth_head=search or loss.{name}=0")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


# The paper's DAIF-Net and objective as this project trains them (docs/experiments.md, entry 18): depth is the one
# regressed channel and learns through the paper's reconstruction; the "select" AIF head carries the defocus prior of
# that depth (an untrained head's AIF is the soft coarse AIF, not the stack's mean, whose blur made depth collapse in
# entry 1); the coarse AIF is soft, so the coarse-AIF blur loss reaches depth (Table 4's blur axis); loss scales at the
# paper's best Table-4 cell (recon 100, blur 10); no renderer window (the default): the stacks and the model's renders
# carry every blur the camera makes (sigma up to 15.3 px on the quickstart's 64x64 data, where a 7x7 window caps it
# near 2.9 px and the objective collapsed; entry 23).
PAPER_RECIPE: dict[str, Any] = {
    "model": {"depth_head": "regress", "aif_head": "select", "aif_temperature": 1.0},
    "loss": {"recon": 100.0, "blur": 10.0, "coarse_aif": "soft", "temperature": 1.0, "aif_recon": 0.0, "aif_blur": 0.0,
             "smooth": 1.0},
    "optim": {"lr": 1e-3},
}

# what the quickstart's presets share: the network's size, the data, one worker, the experiment
_QUICKSTART_RUN: dict[str, Any] = {
    "data": {"mode": "fixed"},
    "model": {"width": 16, "levels": 3, "range_source": "scenes"},
    "scaling": {"num_workers": 1, "cpus_per_worker": 1.5},
    "tracking": {"experiment": "daif-quickstart"},
}

TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    # the paper's 5-image NYUv2 stacks at fixed focus distances (1, 1.5, 2.5, 4, 6 m)
    "nyuv2-5": _merge(PAPER_RECIPE, {"data": {"mode": "fixed"}, "model": {"near": 0.1, "far": 10.0}}),
    # appendix A.1/A.2: dense 100-image stacks, one random image per bin each step
    "nyuv2-robust": _merge(PAPER_RECIPE, {"data": {"mode": "binned", "num_bins": 5}, "model": {"near": 0.1, "far": 10.0}}),
    # `daif quickstart`'s training on its small synthetic store (QUICKSTART_DATA): the paper's model and objective;
    # one worker of 1.5 CPUs (two torch threads, half a CPU left to Ray Data on a 2-core machine)
    # (batch 4 and 40 epochs, chosen on the validation reconstruction: at equal compute, 2400 steps of batch 4
    # reached val/recon 0.0223 where 800 steps of batch 12 reached 0.0284, and it still fell at 2400; entry 18);
    # depth linear in log depth (d sigma / d raw ~ 1 / D, not 1 / D^2: the far range keeps a gradient; chosen on the
    # validation reconstruction, entry 27); the learning rate rises linearly over 2 epochs to twice the paper
    # recipe's, then anneals (best `val/recon` 0.0178 / 0.0219 / 0.0181 against 0.0233 / 0.0265 / 0.0251 at lr 1e-3
    # without a warm-up, seeds 0 / 1 / 2; entry 34); each image's contrast-normalised high-pass image as a fifth
    # input channel (a filter of the stack, no depth estimate; best `val/recon` 0.0124 / 0.0130 / 0.0116 against
    # 0.0178 / 0.0219 / 0.0181 without it, seeds 0 / 1 / 2; entry 47)
    "quickstart": _merge(_merge(_QUICKSTART_RUN, PAPER_RECIPE), {
        "model": {"depth_mapping": "log", "detail_input": True},
        "optim": {"batch_size": 4, "lr": 2e-3, "warmup_epochs": 2.0},
        "train": {"epochs": 40, "figures_every": 10},
    }),
    # `daif quickstart --preset quickstart-search`: beyond the paper, the "search" depth head refines the defocus
    # search's cost volume (daif.search), trained on the expected cost with a light edge-aware smoothness (an MRF
    # energy); the "select" AIF head starts at the coarse AIF of that depth and learns from the paper's
    # reconstruction with depth held fixed (docs/experiments.md, entries 11, 15 and 17); its cost volume renders with
    # the paper's 7x7 window, as measured there (`daif quickstart` renders its store the same way)
    "quickstart-search": _merge(_QUICKSTART_RUN, {
        "model": {"depth_head": "search", "aif_head": "select"},
        "loss": {"cost": 1.0, "cost_smooth": 0.01, "recon": 1.0, "recon_trains_depth": False,
                 "blur": 0.0, "aif_recon": 0.0, "aif_blur": 0.0, "smooth": 0.0, "kernel_size": PAPER_KERNEL_SIZE},
        "optim": {"batch_size": 8, "lr": 1e-3},
        "train": {"epochs": 16, "figures_every": 8},
    }),
}

# the store `daif quickstart` renders before training with the "quickstart" preset
QUICKSTART_DATA: dict[str, Any] = {"scenes": 320, "size": (64, 64), "camera_preset": "nyuv2-5", "shard_size": 32}


def _convert(key: str, value: Any, annotation: Any) -> Any:
    """Check (and where lossless, convert) `value` to the field type `annotation`."""
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ValueError(f"config key '{key}': expected a mapping, got {value!r}")
        return _build(annotation, value, key + ".")
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key '{key}': expected a list, got {value!r}")
        item_type = typing.get_args(annotation)[0]
        return tuple(_convert(f"{key}[{i}]", item, item_type) for i, item in enumerate(value))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key '{key}': expected true/false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"config key '{key}': expected a string, got {value!r}")
        return value
    if isinstance(annotation, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) != 1 or len(typing.get_args(annotation)) != 2:
            raise TypeError(f"config key '{key}': only 'X | None' unions are supported")
        return None if value is None else _convert(key, value, members[0])
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key '{prefix}{unknown[0]}' (known: {', '.join(prefix + f for f in fields)})")
    types_of = typing.get_type_hints(cls)
    kwargs = {name: _convert(prefix + name, value, types_of[name]) for name, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"config section '{prefix.rstrip('.') or 'root'}': {error}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), the YAML form."""
    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def from_dict(values: dict[str, Any]) -> Config:
    return _build(Config, _drop_retired(values))


def _drop_retired(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the RETIRED_KEYS that hold their old default; ValueError naming one that holds another value."""
    values = dict(values)
    for key, default in RETIRED_KEYS.items():
        section, name = key.split(".")
        if not isinstance(values.get(section), dict) or name not in values[section]:
            continue
        value = values[section][name]
        if value != default or isinstance(value, bool):
            raise ValueError(f"config key '{key}' was retired (issue 24; docs/usage.md): only its old default {default!r} "
                             f"is accepted, got {value!r}")
        values[section] = {k: v for k, v in values[section].items() if k != name}
    return values


def parse_override(text: str) -> dict[str, Any]:
    """'loss.recon=100' -> {"loss": {"recon": 100}}; the value is parsed as YAML (numbers, true, [1, 2])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r}: expected KEY=VALUE, e.g. loss.recon=100")
    value = yaml.safe_load(raw) if raw.strip() else ""
    parts = key.strip().split(".")
    nested: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        nested = {part: nested}
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] = (), preset: str | None = None) -> Config:
    """Defaults, then a preset, then the YAML file, then `--set` overrides; validated."""
    values: dict[str, Any] = {}
    if preset:
        if preset not in TRAINING_PRESETS:
            raise ValueError(f"config preset: expected one of {sorted(TRAINING_PRESETS)}, got {preset!r}")
        values = _merge(values, TRAINING_PRESETS[preset])
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"config file {path}: {error}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path}: expected a mapping at the top level")
        values = _merge(values, loaded)
    for text in overrides:
        values = _merge(values, parse_override(text))
    for section, key in _LOCAL_PATHS:  # relative to where the command runs, not to a Ray worker's folder
        value = values.get(section, {}).get(key)
        if isinstance(value, str) and value and not _SCHEME.match(value) and not Path(value).is_absolute() \
                and value != "pretrained":  # train.init_from's name of the shipped model (daif.pretrained)
            values = _merge(values, {section: {key: str(Path(value).resolve())}})
    return from_dict(values)


_LOCAL_PATHS = (("data", "path"), ("train", "init_from"), ("tracking", "storage"))
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # s3://, runs:/, models:/, file: ... stay as given


def replace(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy with some fields of some sections changed: replace(c, train={"epochs": 3})."""
    return from_dict(_merge(to_dict(config), sections))


def flatten(config: Any) -> dict[str, Any]:
    """{"section.key": value} with lists joined by commas: MLflow params and Ray's train_loop_config."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = ",".join(str(v) for v in value) if isinstance(value, list) else value

    walk("", to_dict(config))
    return flat


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
