"""What an evaluation runs: the methods, the test conditions (stack sizes, focus-distance sets) and
the depth masks, decided from the arguments and the store before any inference."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

DEFAULT_STACK_SIZES = (2, 3, 5, 8, 10)
BACKENDS = ("auto", "local", "ray")
RAY_MIN_SCENES = 64  # below this, starting an actor pool costs more than it saves
BATCH_SIZE = 4
BASELINE = "baseline"
BASELINE_LABEL = "analytic baseline (depth from focus)"
SEARCH = "search"
# the analytic methods, evaluated after the models: name -> (label in the tables, source)
ANALYTIC = {BASELINE: (BASELINE_LABEL, "daif.baseline.depth_from_focus"), SEARCH: ("defocus search", "daif.search.defocus_search")}


@dataclasses.dataclass(frozen=True)
class Condition:
    """One way of building the test stacks. `indices` picks images of the store's stack; without
    them the stack is rendered at `focus_distances` from the store's AIF and depth."""

    name: str  # "main", "stack-3", "focus-1"
    study: str  # "main" | "stack_size" | "focus_set"
    x: float  # stack size, or mean focus distance [m]
    focus_distances: tuple[float, ...]
    indices: tuple[int, ...] | None = None


def label_of(method: str) -> str:
    """The name a table or plot shows for `method`."""
    return ANALYTIC[method][0] if method in ANALYTIC else method


def mask_name(max_depth: float | None) -> str:
    return "all" if max_depth is None else f"max{max_depth:g}m"


def variant_name(reduction: str, mask: str) -> str:
    return reduction if mask == "all" else f"{reduction}_{mask}"


def parse_max_depths(max_depths: Sequence[float]) -> list[float | None]:
    """[None (all valid pixels), *max_depths as floats]; rejects anything but positive metres."""
    masks: list[float | None] = [None]
    for value in max_depths:
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"max_depths: expected positive metres, got {value!r}")
        masks.append(float(value))
    return masks


def check_run_options(backend: str, batch_size: int) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected 'auto', 'local' or 'ray', got {backend!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")


def choose_backend(backend: str, scenes: int) -> str:
    """The backend to run on: `backend` itself unless "auto", which takes Ray from RAY_MIN_SCENES scenes on."""
    return backend if backend != "auto" else ("ray" if scenes >= RAY_MIN_SCENES else "local")


def method_names(model_sources: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    if names:
        if len(names) != len(model_sources):
            raise ValueError(f"names: {len(names)} names for {len(model_sources)} models")
        if len(set(names)) != len(names) or set(names) & set(ANALYTIC):
            raise ValueError(f"names: expected distinct names other than {' and '.join(map(repr, ANALYTIC))}, got {list(names)}")
        return list(names)
    return ["daif-net"] if len(model_sources) == 1 else [f"daif-net-{i}" for i in range(1, len(model_sources) + 1)]


def parse_focus_set(text: str | Sequence[float]) -> tuple[float, ...]:
    """ "1,1.5,2.5" (metres) or a sequence of numbers -> a tuple of floats."""
    try:
        values = tuple(float(v) for v in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ValueError(f"focus_sets: expected comma-separated metres such as '1,1.5,2.5', got {text!r}") from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"focus_sets: expected positive metres, got {text!r}")
    return values


def plan_conditions(store, stack_sizes: Sequence[int], focus_sets: Sequence[Sequence[float]]) -> tuple[list[Condition], dict[int, str], list[str]]:
    """(conditions to run, {stack size: condition name}, notes). The first condition is "main", the
    store's middle-of-bin stack; a stack size whose middle-of-bin indices equal its indices reuses it."""
    from daif.data.bins import BinSampler

    focus_all = [float(f) for f in store.focus_distances]
    num_images = len(focus_all)
    main_indices = tuple(int(i) for i in BinSampler(num_images, store.num_bins, "middle").fixed)
    conditions = [Condition("main", "main", len(main_indices), tuple(focus_all[i] for i in main_indices), main_indices)]
    by_size: dict[int, str] = {}
    notes = []
    for size in sorted(set(int(s) for s in stack_sizes)):
        if size < 1:
            raise ValueError(f"stack_sizes: expected positive integers, got {size}")
        if size > num_images:
            notes.append(f"stack size {size} skipped: the store's stacks hold only {num_images} images")
            continue
        indices = tuple(int(i) for i in BinSampler(num_images, size, "middle").fixed)
        if indices == main_indices:
            by_size[size] = "main"
            continue
        name = f"stack-{size}"
        conditions.append(Condition(name, "stack_size", size, tuple(focus_all[i] for i in indices), indices))
        by_size[size] = name
    if focus_sets and getattr(store, "captured", False):
        raise ValueError(
            f"focus_sets: {store.path} holds captured stacks; they cannot be re-rendered at other focus distances "
            "(that would be our renderer, not the camera): evaluate them at their own focus distances"
        )
    for number, focus_set in enumerate(focus_sets, start=1):
        focus = parse_focus_set(focus_set)
        if min(focus) <= store.camera.focal_length:
            raise ValueError(
                f"focus_sets: set {number} {list(focus)} has a focus distance at or below the store camera's "
                f"focal length {store.camera.focal_length} m"
            )
        conditions.append(Condition(f"focus-{number}", "focus_set", round(float(np.mean(focus)), 6), focus))
    return conditions, by_size, notes
