"""Evaluation: trained models and two analytic methods on a store's test split (method.md, "Metrics").

    result = evaluate(["runs:/<run_id>/model"], data="stores/nyu", split="test", out="eval")
    result["delta1"], result["methods"]["baseline"]["image"]["delta1"], result["markdown"]

The evaluation stack is the store's middle-of-bin stack (K = the store's num_bins), the one
validation uses. Every method sees the same stacks: each model, then the analytic baseline
(`daif.baseline.depth_from_focus`, a focus measure's peak) and the defocus search
(`daif.search.defocus_search` over the first model's depth range, the target of the objective's `search`
term, so a model trained with that term is shown beside its teacher). Metrics come from
`daif.metrics.depth_metrics` per image; the two aggregations are derived from them exactly: "image" is
the mean over images (the reference), "pixel" pools all valid pixels (each per-image mean weighted by its
valid count, rmse-type metrics through their squares).
`max_depths` adds masked variants (gt < d), e.g. "image_max0.5m" (DefocusNet's 0.5 m).

Generalisation (the paper's Figure 6): delta1 against the test stack size, K images taken as the
middles of K bins of the store's stack (sizes above its F images are skipped with a note), and
against other focus-distance sets, re-rendered from the store's AIF and depth with its camera.

Inference runs in this process for small splits and as Ray Data `map_batches` over an actor pool
(each actor loads the models once) for large ones. Outputs, each written atomically, in `out`:
metrics.json, metrics.csv, metrics.md, per_image.csv, generalisation.csv, generalisation.png
(and generalisation_focus.png with focus sets); all are logged to MLflow.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daif.files import write_text_atomic

DEFAULT_STACK_SIZES = (2, 3, 5, 8, 10)
RAY_MIN_SCENES = 64  # below this, starting an actor pool costs more than it saves
BATCH_SIZE = 4
BASELINE = "baseline"
BASELINE_LABEL = "analytic baseline (depth from focus)"
SEARCH = "search"
ANALYTIC = {BASELINE: (BASELINE_LABEL, "daif.baseline.depth_from_focus"), SEARCH: ("defocus search", "daif.search.defocus_search")}
EXPERIMENT = "daif-eval"
DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log10", "rmse_log", "delta1", "delta2", "delta3")
SQUARED_KEYS = ("rmse", "rmse_log10", "rmse_log")  # pooled through their squares
AIF_KEYS = ("mg", "sf", "psnr", "ssim")
TABLE_KEYS = ("delta1", "delta2", "delta3", "rmse", "abs_rel", "sq_rel", "rmse_log10")
SCENE_COLUMNS = ("scene_id", "aif", "depth", "valid", "stack")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One way of building the test stacks. `indices` picks images of the store's stack; without
    them the stack is rendered at `focus_distances` from the store's AIF and depth."""

    name: str  # "main", "stack-3", "focus-1"
    study: str  # "main" | "stack_size" | "focus_set"
    x: float  # stack size, or mean focus distance [m]
    focus_distances: tuple[float, ...]
    indices: tuple[int, ...] | None = None


def mask_name(max_depth: float | None) -> str:
    return "all" if max_depth is None else f"max{max_depth:g}m"


def variant_name(reduction: str, mask: str) -> str:
    return reduction if mask == "all" else f"{reduction}_{mask}"


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
    """(conditions to run, {stack size: condition name}, notes). A stack size whose middle-of-bin
    indices equal the main stack's reuses "main"."""
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
    for number, focus_set in enumerate(focus_sets, start=1):
        focus = parse_focus_set(focus_set)
        if min(focus) <= store.camera.focal_length:
            raise ValueError(
                f"focus_sets: set {number} {list(focus)} has a focus distance at or below the store camera's "
                f"focal length {store.camera.focal_length} m"
            )
        conditions.append(Condition(f"focus-{number}", "focus_set", round(float(np.mean(focus)), 6), focus))
    return conditions, by_size, notes


# ------------------------------------------------------------------ per-scene evaluation (the UDF)


class SceneEvaluator:
    """Per-image metrics of every method under every condition for a batch of store rows.

    A Ray Data class UDF: the models load once per actor in __init__. The same object evaluates
    batches in-process on the small path. Input batch: the store columns (numpy, see
    daif.data.store). Output: one row per (scene, condition, method, mask) with columns scene_id,
    condition, method, mask, count (valid pixels), the DEPTH_KEYS and the AIF_KEYS (NaN outside
    the main condition).
    """

    def __init__(
        self,
        model_sources: Sequence[str],
        method_names: Sequence[str],
        conditions: Sequence[Condition],
        camera: dict[str, float],
        kernel_size: int,
        max_depths: Sequence[float | None] = (None,),
        tracking_uri: str = "",
        device: str = "cpu",
        threads: int | None = None,
    ):
        import torch

        from daif.model_io import load_model
        from daif.optics import ThinLensCamera

        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.models = {name: load_model(source, tracking_uri)[0].to(self.device) for name, source in zip(method_names, model_sources)}
        self.conditions = list(conditions)
        self.camera = ThinLensCamera.from_dict(camera)
        self.kernel_size = kernel_size
        self.max_depths = list(max_depths)
        first = next(iter(self.models.values()))
        self.search_range = (first.near, first.far)  # the defocus search spans the first model's depth range

    def inputs(self, batch: dict[str, np.ndarray], condition: Condition):
        """stack (B, K, 3, H, W) in [0, 1] and focus distances (B, K) of `condition` for the batch."""
        import torch

        from daif.optics import render_focal_stack

        if condition.indices is not None:
            chosen = np.asarray(batch["stack"])[:, list(condition.indices)]  # (B, K, H, W, 3) uint8
            stack = torch.from_numpy(np.ascontiguousarray(chosen.transpose(0, 1, 4, 2, 3))).float().div(255.0)
            focus = torch.tensor(condition.focus_distances, dtype=torch.float32).expand(len(chosen), -1)
            return stack.to(self.device), focus.to(self.device)
        aif = torch.from_numpy(np.ascontiguousarray(np.asarray(batch["aif"]).transpose(0, 3, 1, 2))).float().div(255.0)
        depth = torch.from_numpy(np.asarray(batch["depth"], dtype=np.float32))[:, None]
        focus = torch.tensor(condition.focus_distances, dtype=torch.float32)
        with torch.no_grad():
            stack = render_focal_stack(aif.to(self.device), depth.to(self.device), focus.to(self.device), self.camera, self.kernel_size)
        stack = stack.mul(255.0).round().div(255.0)  # the store keeps 8-bit stacks; so do these
        return stack, focus.to(self.device).expand(len(aif), -1)

    def predict(self, method: str, stack, focus):
        """(depth (B, 1, H, W) metres, aif (B, 3, H, W)) of one method."""
        import torch

        from daif.baseline import depth_from_focus
        from daif.losses import coarse_aif
        from daif.search import defocus_search

        with torch.no_grad():
            if method == BASELINE:
                return depth_from_focus(stack, focus, self.camera)
            if method == SEARCH:
                depth = defocus_search(stack, focus, self.camera, *self.search_range, kernel_size=self.kernel_size)
                return depth, coarse_aif(stack, focus, depth, self.camera)
            aif, depth = self.models[method](stack, focus)
            return depth, aif

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from daif.metrics import depth_metrics, mean_gradient, psnr, spatial_frequency, ssim

        gt_depth = torch.from_numpy(np.asarray(batch["depth"], dtype=np.float32))[:, None]
        valid = torch.from_numpy(np.asarray(batch["valid"], dtype=bool))[:, None]
        gt_aif = torch.from_numpy(np.ascontiguousarray(np.asarray(batch["aif"]).transpose(0, 3, 1, 2))).float().div(255.0)
        scene_ids = [str(s) for s in batch["scene_id"]]
        rows: list[dict[str, Any]] = []
        for condition in self.conditions:
            stack, focus = self.inputs(batch, condition)
            for method in [*self.models, *ANALYTIC]:
                depth, aif = (t.float().cpu() for t in self.predict(method, stack, focus))
                aif_values = {key: [math.nan] * len(scene_ids) for key in AIF_KEYS}
                if condition.study == "main":
                    aif_values = {
                        "mg": mean_gradient(aif).tolist(),
                        "sf": spatial_frequency(aif).tolist(),
                        "psnr": psnr(aif, gt_aif).tolist(),
                        "ssim": ssim(aif, gt_aif).tolist(),
                    }
                for max_depth in self.max_depths:
                    for i, scene_id in enumerate(scene_ids):
                        mask = valid[i : i + 1] & torch.isfinite(gt_depth[i : i + 1]) & (gt_depth[i : i + 1] > 0)
                        if max_depth is not None:
                            mask &= gt_depth[i : i + 1] < max_depth
                        values = depth_metrics(depth[i : i + 1], gt_depth[i : i + 1], valid[i : i + 1], max_depth, "image")
                        row = {"scene_id": scene_id, "condition": condition.name, "method": method,
                               "mask": mask_name(max_depth), "count": int(mask.sum())}
                        row.update(values)
                        row.update({key: float(aif_values[key][i]) for key in AIF_KEYS})
                        rows.append(row)
        columns = ["scene_id", "condition", "method", "mask", "count", *DEPTH_KEYS, *AIF_KEYS]
        return {c: np.array([r[c] for r in rows], dtype=object if c in ("scene_id", "condition", "method", "mask") else None) for c in columns}


# ------------------------------------------------------------------ running it


def scenes_to_batch(scenes: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Store scenes -> a numpy batch shaped like Ray Data's (scene_id as an object array)."""
    batch = {c: np.stack([s[c] for s in scenes]) for c in SCENE_COLUMNS if c != "scene_id"}
    batch["scene_id"] = np.array([s["scene_id"] for s in scenes], dtype=object)
    return batch


def _local_batches(store, split: str, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    scenes: list[dict[str, Any]] = []
    for scene in store.iter_scenes(split, SCENE_COLUMNS):
        scenes.append(scene)
        if len(scenes) == batch_size:
            yield scenes_to_batch(scenes)
            scenes = []
    if scenes:
        yield scenes_to_batch(scenes)


def _rows_of(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*(columns[n] for n in names))]


def run_scenes(
    data: str, split: str, evaluator_kwargs: dict[str, Any], backend: str, batch_size: int = BATCH_SIZE, use_gpu: bool = False
) -> list[dict[str, Any]]:
    """Per-image rows (SceneEvaluator's output) over the split, in-process ("local") or on Ray ("ray")."""
    from daif.data.store import open_store

    if backend == "local":
        store = open_store(data)
        evaluator = SceneEvaluator(**evaluator_kwargs)
        rows = []
        for batch in _local_batches(store, split, batch_size):
            rows += _rows_of(evaluator(batch))
        return rows

    import ray

    from daif.data.dataset import read_split
    from daif.runtime import ensure_ray

    ensure_ray()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if use_gpu:
        max_actors, per_actor = max(1, int(ray.cluster_resources().get("GPU", 1))), {"num_gpus": 1, "num_cpus": 1}
    else:
        max_actors, per_actor = max(1, cpus - 1), {"num_cpus": 1}  # leave a CPU for the read tasks
    dataset = read_split(data, split, SCENE_COLUMNS).map_batches(
        SceneEvaluator,
        fn_constructor_kwargs={**evaluator_kwargs, "threads": 1 if not use_gpu else None},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max_actors),
        **per_actor,
    )
    rows = []
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        rows += _rows_of(batch)
    return rows


def aggregate(rows: Sequence[dict[str, Any]], condition: str, method: str, mask: str) -> dict[str, dict[str, float]]:
    """{"image": ..., "pixel": ...} depth metrics (and "aif") of one (condition, method, mask) from per-image rows."""
    chosen = [r for r in rows if r["condition"] == condition and r["method"] == method and r["mask"] == mask]
    counted = [r for r in chosen if int(r["count"]) > 0]
    nan = {key: math.nan for key in DEPTH_KEYS}
    if not counted:
        return {"image": nan, "pixel": dict(nan), "aif": {k: _mean([r[k] for r in chosen]) for k in AIF_KEYS}}
    counts = np.array([float(r["count"]) for r in counted])
    image, pixel = {}, {}
    for key in DEPTH_KEYS:
        values = np.array([float(r[key]) for r in counted])
        image[key] = float(values.mean())
        if key in SQUARED_KEYS:
            pixel[key] = float(np.sqrt((counts * values**2).sum() / counts.sum()))
        else:
            pixel[key] = float((counts * values).sum() / counts.sum())
    return {"image": image, "pixel": pixel, "aif": {k: _mean([r[k] for r in chosen]) for k in AIF_KEYS}}


def _mean(values: Sequence[float]) -> float:
    finite = [float(v) for v in values if v == v]
    return float(np.mean(finite)) if finite else math.nan


# ------------------------------------------------------------------ files


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{value:.4f}"


def markdown_table(methods: dict[str, dict[str, Any]], variant: str) -> str:
    header = ["method", *TABLE_KEYS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, section in methods.items():
        label = ANALYTIC[name][0] if name in ANALYTIC else name
        lines.append("| " + " | ".join([label, *(_fmt(section[variant][k]) for k in TABLE_KEYS)]) + " |")
    return "\n".join(lines)


def markdown_report(result: dict[str, Any]) -> str:
    variants = [v for v in result["variants"]]
    parts = [f"Depth metrics on split '{result['split']}' of {result['data']} ({result['scenes']} scenes, "
             f"stack of {len(result['stack']['focus_distances'])} at {', '.join(f'{f:g}' for f in result['stack']['focus_distances'])} m)."]
    for variant in variants:
        reduction, _, mask = variant.partition("_")
        title = "mean over images" if reduction == "image" else "all pixels pooled"
        if mask:
            title += f", ground truth < {mask[3:]}"
        parts += ["", f"### {variant}: {title}", "", markdown_table(result["methods"], variant)]
    return "\n".join(parts) + "\n"


def _generalisation_outputs(result: dict[str, Any], rows: list[list[Any]], out: Path) -> dict[str, Path]:
    from daif.viz import line_plot, save_figure

    paths = {}
    methods = list(result["methods"])
    label = {m: (ANALYTIC[m][0] if m in ANALYTIC else m) for m in methods}
    sizes = [r for r in rows if r[0] == "stack_size"]
    series = {label[m]: ([r[2] for r in sizes if r[4] == m], [r[5] for r in sizes if r[4] == m]) for m in methods}
    figure = line_plot(series, "number of test images (middles of equal bins)", "delta1", "delta1 vs test stack size")
    paths["generalisation_png"] = save_figure(figure, out / "generalisation.png")
    focus = [r for r in rows if r[0] == "focus_set"]
    if focus:
        series = {label[m]: ([r[2] for r in focus if r[4] == m], [r[5] for r in focus if r[4] == m]) for m in methods}
        figure = line_plot(series, "mean focus distance of the test stack [m]", "delta1", "delta1 vs focus-distance set")
        paths["generalisation_focus_png"] = save_figure(figure, out / "generalisation_focus.png")
    header = ["study", "condition", "x", "focus_distances", "method", "delta1", *[k for k in DEPTH_KEYS if k != "delta1"]]
    paths["generalisation_csv"] = write_text_atomic(out / "generalisation.csv", _csv_text(header, rows))
    return paths


def write_outputs(result: dict[str, Any], per_image: list[dict[str, Any]], generalisation_rows: list[list[Any]], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics_json": write_text_atomic(out / "metrics.json", json.dumps(result, indent=1, allow_nan=True) + "\n")}
    header = ["method", "source", "variant", *DEPTH_KEYS, *AIF_KEYS]
    table = [
        [name, section["source"], variant, *(section[variant][k] for k in DEPTH_KEYS), *(section["aif"][k] for k in AIF_KEYS)]
        for name, section in result["methods"].items()
        for variant in result["variants"]
    ]
    paths["metrics_csv"] = write_text_atomic(out / "metrics.csv", _csv_text(header, table))
    paths["metrics_md"] = write_text_atomic(out / "metrics.md", markdown_report(result))
    columns = ["scene_id", "condition", "method", "mask", "count", *DEPTH_KEYS, *AIF_KEYS]
    paths["per_image_csv"] = write_text_atomic(out / "per_image.csv", _csv_text(columns, [[r[c] for c in columns] for r in per_image]))
    paths.update(_generalisation_outputs(result, generalisation_rows, out))
    return paths


# ------------------------------------------------------------------ MLflow


def _metric_key(*parts: str) -> str:
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", p) for p in parts)


def check_tracking(tracking_uri: str, run_id: str | None) -> None:
    """Fail before any work when the tracking server is down or `run_id` is not a run there."""
    import mlflow

    from daif.tracking import check_reachable, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    if run_id is not None:
        try:
            mlflow.MlflowClient(uri).get_run(run_id)
        except mlflow.exceptions.MlflowException as error:
            raise ValueError(f"log_to_run: no run {run_id!r} in {uri} ({error.message})") from None


def log_evaluation(result: dict[str, Any], paths: dict[str, Path], tracking_uri: str, run_id: str | None, experiment: str) -> dict[str, Any]:
    """Log metrics and files into run `run_id`, or into a new run of `experiment`; returns {tracking_uri, run_id, errors}."""
    import mlflow

    from daif.tracking import RunLogger, end_run, experiment_id, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    owns_run = run_id is None
    if owns_run:
        client = mlflow.MlflowClient(uri)
        run = client.create_run(experiment_id(experiment, uri), run_name=f"evaluate-{result['split']}")
        run_id = run.info.run_id
        params = {"data": result["data"], "split": result["split"], "scenes": result["scenes"],
                  "stack_focus_distances": ",".join(f"{f:g}" for f in result["stack"]["focus_distances"])}
        params.update({f"model.{name}": section["source"] for name, section in result["methods"].items() if name not in ANALYTIC})
        client.log_batch(run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()])
    logger = RunLogger(uri, run_id)
    values = {}
    for name, section in result["methods"].items():
        for variant in result["variants"]:
            values.update({_metric_key("eval", name, variant, k): v for k, v in section[variant].items()})
        values.update({_metric_key("eval", name, "aif", k): v for k, v in section["aif"].items()})
    values.update({_metric_key("eval", k): result[k] for k in DEPTH_KEYS})
    logger.metrics(values, step=0)
    for row in result["generalisation"]["rows"]:
        if row["study"] == "stack_size":
            logger.metrics({_metric_key("eval", row["method"], "delta1_vs_stack_size"): row["delta1"]}, step=int(row["x"]))
    for path in paths.values():
        logger.artifact(path, "evaluation")
    if owns_run:
        end_run(uri, run_id, "FINISHED" if logger.ok else "FAILED")
    return {"tracking_uri": uri, "run_id": run_id, "errors": logger.errors}


# ------------------------------------------------------------------ the function


def method_names(model_sources: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    if names:
        if len(names) != len(model_sources):
            raise ValueError(f"names: {len(names)} names for {len(model_sources)} models")
        if len(set(names)) != len(names) or set(names) & set(ANALYTIC):
            raise ValueError(f"names: expected distinct names other than {' and '.join(map(repr, ANALYTIC))}, got {list(names)}")
        return list(names)
    return ["daif-net"] if len(model_sources) == 1 else [f"daif-net-{i}" for i in range(1, len(model_sources) + 1)]


def evaluate(
    model_sources: str | Sequence[str],
    data: str | os.PathLike,
    split: str = "test",
    out: str | os.PathLike = "evaluation",
    stack_sizes: Sequence[int] | None = None,
    focus_sets: Sequence[str | Sequence[float]] = (),
    max_depths: Sequence[float] = (),
    names: Sequence[str] | None = None,
    backend: str = "auto",
    batch_size: int = BATCH_SIZE,
    use_gpu: bool = False,
    tracking_uri: str = "",
    log_to_run: str | None = None,
    experiment: str = EXPERIMENT,
    track: bool = True,
) -> dict[str, Any]:
    """Evaluate models (MLflow URIs or checkpoint directories) and the analytic methods on `split` of
    the store `data`; write the files of the module docstring into `out` and log them to MLflow
    (`log_to_run`, else a new run of `experiment`; `track=False` skips MLflow).

    stack_sizes: test stack sizes of the generalisation study (default 2, 3, 5, 8, 10).
    focus_sets: other focus-distance sets [m] ("1,2,4" or sequences), re-rendered from AIF + depth.
    max_depths: masked variants, ground truth < each [m]. backend: "auto" (Ray from RAY_MIN_SCENES
    scenes on), "local" or "ray".
    Returns metrics.json's content: top-level DEPTH_KEYS of the first model (image mean, all valid
    pixels), "methods" {name: {source, image, pixel, <masked variants>, aif}} with "baseline" and "search" last,
    "generalisation", "notes", plus "markdown" (metrics.md's text), "paths" and "mlflow".
    """
    from daif.data.store import open_store

    sources = [str(model_sources)] if isinstance(model_sources, (str, os.PathLike)) else [str(s) for s in model_sources]
    if not sources:
        raise ValueError("model_sources: at least one model is needed")
    if backend not in ("auto", "local", "ray"):
        raise ValueError(f"backend: expected 'auto', 'local' or 'ray', got {backend!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    masks: list[float | None] = [None]
    for value in max_depths:
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"max_depths: expected positive metres, got {value!r}")
        masks.append(float(value))
    labels = method_names(sources, names)
    if track:
        check_tracking(tracking_uri, log_to_run)
    data = str(Path(data).resolve())
    store = open_store(data)
    scenes = store.num_scenes(split)
    if scenes == 0:
        raise ValueError(f"split: {data} holds no scenes in split {split!r}")
    conditions, by_size, notes = plan_conditions(store, DEFAULT_STACK_SIZES if stack_sizes is None else stack_sizes, focus_sets)
    chosen = backend if backend != "auto" else ("ray" if scenes >= RAY_MIN_SCENES else "local")

    from daif.model_io import load_model  # check every model loads here, before any Ray work starts

    for label, source in zip(labels, sources):
        _, meta = load_model(source, tracking_uri)
        camera = meta.get("camera")
        if camera and camera != store.camera.to_dict():
            notes.append(f"{label} was trained with camera {camera}; {data} was rendered with {store.camera.to_dict()}")

    started = time.perf_counter()
    evaluator_kwargs = {
        "model_sources": sources, "method_names": labels, "conditions": conditions, "camera": store.camera.to_dict(),
        "kernel_size": store.kernel_size, "max_depths": masks, "tracking_uri": tracking_uri,
        "device": "cuda" if use_gpu else "cpu",
    }
    per_image = run_scenes(data, split, evaluator_kwargs, chosen, batch_size, use_gpu)
    seconds = time.perf_counter() - started

    variants = [variant_name(r, mask_name(m)) for m in masks for r in ("image", "pixel")]
    methods: dict[str, dict[str, Any]] = {}
    for label, source in [*zip(labels, sources), *((name, source) for name, (_, source) in ANALYTIC.items())]:
        section: dict[str, Any] = {"source": source}
        for max_depth in masks:
            values = aggregate(per_image, "main", label, mask_name(max_depth))
            section[variant_name("image", mask_name(max_depth))] = values["image"]
            section[variant_name("pixel", mask_name(max_depth))] = values["pixel"]
            section["aif"] = values["aif"] if max_depth is None else section["aif"]
        methods[label] = section

    generalisation_rows: list[list[Any]] = []
    records = []
    studies = [("stack_size", size, name) for size, name in by_size.items()]
    studies += [("focus_set", c.x, c.name) for c in conditions if c.study == "focus_set"]
    condition_of = {c.name: c for c in conditions}
    for study, x, name in studies:
        condition = condition_of[name]
        for label in methods:
            image = aggregate(per_image, name, label, "all")["image"]
            focus_text = ",".join(f"{f:g}" for f in condition.focus_distances)
            generalisation_rows.append([study, name, x, focus_text, label, image["delta1"], *[image[k] for k in DEPTH_KEYS if k != "delta1"]])
            records.append({"study": study, "condition": name, "x": x, "focus_distances": list(condition.focus_distances),
                            "method": label, **image})

    main = conditions[0]
    result: dict[str, Any] = {key: methods[labels[0]]["image"][key] for key in DEPTH_KEYS}
    result.update({
        "model": labels[0],
        "reduction": "image",
        "data": data,
        "split": split,
        "scenes": scenes,
        "camera": store.camera.to_dict(),
        "stack": {"indices": list(main.indices or ()), "focus_distances": list(main.focus_distances)},
        "variants": variants,
        "methods": methods,
        "generalisation": {
            "stack_sizes": sorted(by_size),
            "focus_sets": [list(c.focus_distances) for c in conditions if c.study == "focus_set"],
            "rows": records,
        },
        "notes": notes,
        "backend": chosen,
        "seconds": seconds,
    })
    out_path = Path(out).resolve()
    paths = write_outputs(result, per_image, generalisation_rows, out_path)
    result["markdown"] = (out_path / "metrics.md").read_text()
    result["paths"] = {k: str(v) for k, v in paths.items()}
    result["mlflow"] = log_evaluation(result, paths, tracking_uri, log_to_run, experiment) if track else None
    return result


# ------------------------------------------------------------------ `daif evaluate`


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 2,3,5, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="URI_OR_PATH",
                        help="MLflow model URI (runs:/<run_id>/model) or checkpoint directory; repeat for several models")
    parser.add_argument("--name", action="append", default=None, help="a name per --model, in order (default daif-net[-i])")
    parser.add_argument("--data", required=True, help="the rendered store (daif render --out DIR)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--stack-sizes", type=_int_list, default=list(DEFAULT_STACK_SIZES), help="generalisation study, e.g. 2,3,5,8,10")
    parser.add_argument("--focus-sets", nargs="+", default=[], metavar="F1,F2,...",
                        help="focus-distance sets [m] to re-render the test stacks at, e.g. 1,1.5,2.5,4,6 1.2,2,3,5,7")
    parser.add_argument("--max-depth", type=float, action="append", default=[], help="add metrics masked to ground truth < this [m]")
    parser.add_argument("--out", required=True, help="directory for metrics.json/.csv/.md and the generalisation plot")
    parser.add_argument("--backend", choices=("auto", "local", "ray"), default="auto",
                        help=f"Ray Data actors or in-process (auto: Ray from {RAY_MIN_SCENES} scenes)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--gpu", action="store_true", help="one GPU per inference actor")
    parser.add_argument("--tracking-uri", default="", help="MLflow store (default MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--log-to-run", default=None, metavar="RUN_ID", help="log into this run (default: a new run)")
    parser.add_argument("--experiment", default=EXPERIMENT)
    parser.add_argument("--no-tracking", action="store_true", help="write the files only")


def run(args: argparse.Namespace) -> int:
    from daif.tracking import TrackingUnavailable

    try:
        result = evaluate(
            args.model, args.data, args.split, args.out, stack_sizes=args.stack_sizes, focus_sets=args.focus_sets,
            max_depths=args.max_depth, names=args.name, backend=args.backend, batch_size=args.batch_size, use_gpu=args.gpu,
            tracking_uri=args.tracking_uri, log_to_run=args.log_to_run, experiment=args.experiment, track=not args.no_tracking,
        )
    except (ValueError, TrackingUnavailable) as error:  # bad arguments or data: the message names them
        print(f"daif evaluate: error: {error}", file=sys.stderr)
        return 2
    print(result["markdown"])
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"files: {Path(args.out).resolve()}")
    if result["mlflow"]:
        print(f"MLflow run: {result['mlflow']['run_id']} ({result['mlflow']['tracking_uri']})")
    return 0
