"""Search spaces over config keys: parsed and checked here, without Ray, before anything starts.

A space file maps config keys (their flattened names, `daif.config.flatten`) to one of

    loss.recon: {grid: [1, 10, 100, 1000]}      every value, each a trial (grid search)
    optim.lr:   {choice: [1e-4, 5e-4]}          one value drawn per trial
    loss.blur:  {uniform: [0.1, 10]}            lo < hi
    loss.smooth: {loguniform: [0.1, 100]}       0 < lo < hi

`table4` is the paper's Table 4 grid (method.md): loss.recon in {1, 10, 100, 1000} x loss.blur in {0.1, 1, 10}.
Every value is checked against the config (its type and the dataclass checks), so a value the trial
would reject fails here, naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

from daif.errors import UsageError

KINDS = ("grid", "choice", "uniform", "loguniform")
TABLE4 = {"loss.recon": {"grid": [1.0, 10.0, 100.0, 1000.0]}, "loss.blur": {"grid": [0.1, 1.0, 10.0]}}
# keys a search sets itself or that would move a trial's outputs: not searchable
RESERVED_PREFIXES = ("tracking.", "data.path", "train.epochs", "train.stop_after", "scaling.")


class SpaceError(UsageError):
    """A bad search space; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Dimension:
    key: str  # flattened config key, e.g. "loss.recon"
    kind: str  # one of KINDS
    values: tuple[Any, ...]  # grid/choice values, or (lo, hi)

    @property
    def is_grid(self) -> bool:
        return self.kind == "grid"


@dataclasses.dataclass(frozen=True)
class Space:
    name: str  # "table4" or the file path
    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    @property
    def grid_size(self) -> int:
        return math.prod(len(d.values) for d in self.dimensions if d.is_grid)

    def to_dict(self) -> dict[str, dict[str, list[Any]]]:
        return {d.key: {d.kind: list(d.values)} for d in self.dimensions}


def load_space(spec: str, base_config=None) -> Space:
    """`spec`: "table4" or a YAML file path. Raises SpaceError naming the file and key."""
    if spec == "table4":
        return parse_space(TABLE4, "table4", base_config)
    path = Path(spec)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpaceError(f"space file {spec}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise SpaceError(f"space file {spec}: not valid YAML{at} ({getattr(error, 'problem', None) or error})") from None
    return parse_space(raw, spec, base_config)


def parse_space(raw: Any, name: str, base_config=None) -> Space:
    from daif.config import Config, flatten

    base_config = base_config or Config()
    known = flatten(base_config)
    if not isinstance(raw, dict) or not raw:
        raise SpaceError(f"space file {name}: expected a non-empty mapping of config keys to {{grid|choice|uniform|loguniform: ...}}")
    dimensions = []
    for key, entry in raw.items():
        where = f"space file {name}: key '{key}'"
        if not isinstance(key, str) or key not in known:
            sections = sorted({k.split(".")[0] for k in known})
            raise SpaceError(f"{where}: not a config key (keys are section.name, sections {', '.join(sections)})")
        if key.startswith(RESERVED_PREFIXES):
            raise SpaceError(f"{where}: set by the search itself (or its command line), not searchable")
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in KINDS:
            raise SpaceError(f"{where}: expected one of {{grid: [...]}}, {{choice: [...]}}, {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, got {entry!r}")
        kind, values = next(iter(entry.items()))
        if not isinstance(values, list) or not values:
            raise SpaceError(f"{where}: {kind} needs a non-empty list, got {values!r}")
        if kind in ("uniform", "loguniform"):
            values = _range(where, kind, values, known[key])
        for value in values:
            _check_value(where, key, value, base_config)
        dimensions.append(Dimension(key, kind, tuple(values)))
    return Space(name, tuple(dimensions))


def _range(where: str, kind: str, values: list[Any], default: Any) -> list[float]:
    if isinstance(default, bool) or not isinstance(default, float):
        raise SpaceError(f"{where}: {kind} needs a real-valued key; use grid or choice for this one")
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise SpaceError(f"{where}: {kind} needs [lo, hi] numbers, got {values!r}")
    lo, hi = (float(v) for v in values)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise SpaceError(f"{where}: {kind} needs lo < hi, got [{lo:g}, {hi:g}]")
    if kind == "loguniform" and lo <= 0:
        raise SpaceError(f"{where}: loguniform needs lo > 0, got {lo:g}")
    return [lo, hi]


def _check_value(where: str, key: str, value: Any, base_config) -> None:
    from daif.config import replace

    section, _, field = key.partition(".")
    nested: dict[str, Any] = {field: value}
    for part in reversed(field.split(".")[:-1]):  # keys are section.field today; deeper keys would nest
        nested = {part: nested}
    try:
        replace(base_config, **{section: nested})
    except ValueError as error:
        raise SpaceError(f"{where}: value {value!r} rejected ({error})") from None


def overrides_of(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"loss.recon": 10} -> {"loss": {"recon": 10}}, the sections argument of daif.config.replace."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, _, field = key.partition(".")
        sections.setdefault(section, {})[field] = value
    return sections


def to_param_space(space: Space, search: str) -> dict[str, Any]:
    """Ray Tune's param_space: grid search values, or choice/uniform/loguniform domains. Optuna cannot
    take grid_search values, so under `search="optuna"` a grid becomes a categorical choice."""
    from ray import tune

    param_space: dict[str, Any] = {}
    for dimension in space.dimensions:
        values = list(dimension.values)
        if dimension.kind == "grid":
            param_space[dimension.key] = tune.grid_search(values) if search == "grid" else tune.choice(values)
        elif dimension.kind == "choice":
            param_space[dimension.key] = tune.choice(values)
        elif dimension.kind == "uniform":
            param_space[dimension.key] = tune.uniform(*values)
        else:
            param_space[dimension.key] = tune.loguniform(*values)
    return param_space
