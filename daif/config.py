"""Run configuration: one frozen, nested dataclass, loadable from YAML, overridable from the command line.

    config = load_config("my.yaml", overrides=["loss.recon=100", "optim.lr=1e-4"], preset="nyuv2-robust")
    flatten(config)   # {"loss.recon": 100.0, ...}: what goes to mlflow.log_params and train_loop_config
    to_yaml(config)   # the full file, logged as an artifact so every run says exactly what ran

Unknown keys and values of the wrong type are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from daif.losses import LossConfig


@dataclasses.dataclass(frozen=True)
class DataConfig:
    path: str = ""  # the rendered store (directory or URI the workers can read)
    train_split: str = "train"
    val_split: str = "val"  # taken from the training scenes at render time, never from test
    mode: str = "binned"  # "binned": one random image per bin each step (robust); "fixed": `fixed_indices`
    num_bins: int = 5  # input stack size K
    fixed_indices: tuple[int, ...] = ()  # stack indices of "fixed" mode; empty = every image of the store
    min_stack_size: int = 0  # > 0: each training batch keeps a random subset of K' in [min_stack_size, K] of its K images; 0 = all K
    camera: str = ""  # empty: the store's camera; a preset name or "f,N,p" must agree with the store


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    width: int = 16
    levels: int = 4
    depth_mapping: str = "sigmoid"  # "max" (the reference's), "minmax", "sigmoid", "log" or "clip"; see daif.model
    near: float = 0.0  # metres; 0 = the store's depth range
    far: float = 0.0
    focus_scale: float = 0.0  # focus-distance input plane = focus / focus_scale; 0 = far
    aif_head: str = "rgb"  # "rgb" (the paper's: three output channels) or "select" (a per-pixel mixture of the stack); see daif.model


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" annealing over all iterations, or "constant"
    batch_size: int = 32  # global, split across workers
    grad_clip: float = 0.0  # max gradient norm; 0 = off


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    seed: int = 0
    val_metric: str = "val/delta1"  # picks the best checkpoint
    val_mode: str = "max"
    patience: int = 0  # epochs without improvement before stopping; 0 = never
    figures_every: int = 10  # epochs between figure logs (and always at the end)
    mixed_precision: bool = True  # bf16 autocast for the network on GPU (the renderer stays float32)
    stop_after: int = 0  # stop this invocation after N epochs (resume continues); 0 = run to the end
    fail_at_epoch: int = -1  # fault injection for tests: a worker raises once at this epoch


@dataclasses.dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    max_failures: int = 1  # worker-group restarts from the latest checkpoint


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


PRESETS: dict[str, dict[str, Any]] = {
    # the paper's 5-image NYUv2 stacks at fixed focus distances (1, 1.5, 2.5, 4, 6 m)
    "nyuv2-5": {"data": {"mode": "fixed"}, "model": {"near": 0.1, "far": 10.0}},
    # appendix A.1/A.2: dense 100-image stacks, one random image per bin each step
    "nyuv2-robust": {"data": {"mode": "binned", "num_bins": 5}, "model": {"near": 0.1, "far": 10.0}},
}


def _convert(key: str, value: Any, annotation: Any) -> Any:
    """Check (and where lossless, convert) `value` to the field type `annotation`."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), globals())  # noqa: S307 (a field annotation of this module)
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
        raise TypeError(f"config key '{key}': union fields are not supported")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key '{prefix}{unknown[0]}' (known: {', '.join(prefix + f for f in fields)})")
    kwargs = {name: _convert(prefix + name, value, fields[name].type) for name, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"config section '{prefix.rstrip('.') or 'root'}': {error}") from None


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


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
    return _build(Config, values)


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
        if preset not in PRESETS:
            raise ValueError(f"config preset: expected one of {sorted(PRESETS)}, got {preset!r}")
        values = _merge(values, PRESETS[preset])
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
    return from_dict(values)


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
