"""`evaluate`: check the arguments, plan, run the scenes, aggregate, write the files, log to MLflow."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daif._checks import RENDER_PSFS
from daif.evaluate.plan import (
    ANALYTIC,
    BATCH_SIZE,
    DEFAULT_STACK_SIZES,
    Condition,
    check_run_options,
    choose_backend,
    mask_name,
    method_names,
    parse_max_depths,
    plan_conditions,
    variant_name,
)
from daif.evaluate.track import EXPERIMENT

if TYPE_CHECKING:
    from daif.evaluate.rows import GeneralisationRow

# The modules that import torch, Ray or MLflow are imported inside the functions, so importing
# daif.evaluate (for `daif evaluate --help`) stays light.


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
    recon_psf: str = "gaussian",
) -> dict[str, Any]:
    """Evaluate models (MLflow URIs or checkpoint directories) and the analytic methods on `split` of
    the store `data`; write the files of daif.evaluate's docstring into `out` and log them to MLflow
    (`log_to_run`, else a new run of `experiment`; `track=False` skips MLflow).

    stack_sizes: test stack sizes of the generalisation study (default 2, 3, 5, 8, 10).
    focus_sets: other focus-distance sets [m] ("1,2,4" or sequences), re-rendered from AIF + depth.
    max_depths: masked variants, ground truth < each [m]. backend: "auto" (Ray from RAY_MIN_SCENES
    scenes on), "local" or "ray". recon_psf: the PSF of the `recon` and `detail` columns' re-rendering, "gaussian", "disc" or
    "layered" (daif.losses.reconstruction_errors), one for every method: a yardstick common to the models it ranks.
    Returns metrics.json's content: top-level DEPTH_METRIC_NAMES of the first model (image mean, all valid
    pixels), "methods" {name: {source, image, pixel, <masked variants>, aif}} with "baseline" and "search" last,
    "generalisation", "notes", plus "markdown" (metrics.md's text), "paths" and "mlflow".
    """
    from daif.data.store import open_store
    from daif.evaluate.report import write_outputs
    from daif.evaluate.rows import generalisation_rows, method_sections
    from daif.evaluate.scenes import run_scenes
    from daif.evaluate.track import check_tracking, log_evaluation

    sources = [str(model_sources)] if isinstance(model_sources, (str, os.PathLike)) else [str(s) for s in model_sources]
    if not sources:
        raise ValueError("model_sources: at least one model is needed")
    check_run_options(backend, batch_size)
    if recon_psf not in RENDER_PSFS:
        raise ValueError(f"recon_psf: expected one of {RENDER_PSFS}, got {recon_psf!r}")
    masks = parse_max_depths(max_depths)
    labels = method_names(sources, names)
    if track:
        check_tracking(tracking_uri, log_to_run)
    data = str(Path(data).resolve())
    store = open_store(data)
    scenes = store.num_scenes(split)
    if scenes == 0:
        raise ValueError(f"split: {data} holds no scenes in split {split!r}")
    conditions, by_size, notes = plan_conditions(store, DEFAULT_STACK_SIZES if stack_sizes is None else stack_sizes, focus_sets)
    chosen = choose_backend(backend, scenes)
    notes += camera_notes(labels, sources, store, data, tracking_uri)
    without_aif = store.scenes_without_aif(split)
    if without_aif:
        notes.append(f"{len(without_aif)} of {scenes} scenes have no ground-truth AIF: no AIF PSNR/SSIM for them")

    started = time.perf_counter()
    evaluator_kwargs = {
        "model_sources": sources, "method_names": labels, "conditions": conditions, "camera": store.camera.to_dict(),
        "kernel_size": store.kernel_size, "max_depths": masks, "tracking_uri": tracking_uri,
        "device": "cuda" if use_gpu else "cpu", "recon_psf": recon_psf,
    }
    per_image = run_scenes(data, split, evaluator_kwargs, chosen, batch_size, use_gpu)
    seconds = time.perf_counter() - started
    without_depth = sorted({r.scene_id for r in per_image if r.condition == "main" and r.mask == "all" and r.count == 0})
    if without_depth:
        notes.append(f"{len(without_depth)} of {scenes} scenes have no ground-truth depth: no depth metrics for them")

    methods = method_sections(per_image, [*zip(labels, sources), *((name, source) for name, (_, source) in ANALYTIC.items())], masks)
    generalisation = generalisation_rows(per_image, conditions, by_size, list(methods))
    result = result_document(store, data, split, scenes, labels, masks, methods, conditions, by_size, generalisation)
    result.update({"recon_psf": recon_psf, "notes": notes, "backend": chosen, "seconds": seconds})
    out_path = Path(out).resolve()
    paths = write_outputs(result, per_image, generalisation, out_path)
    result["markdown"] = (out_path / "metrics.md").read_text()
    result["paths"] = {k: str(v) for k, v in paths.items()}
    result["mlflow"] = log_evaluation(result, paths, tracking_uri, log_to_run, experiment) if track else None
    return result


def camera_notes(labels: Sequence[str], sources: Sequence[str], store, data: str, tracking_uri: str) -> list[str]:
    """Load every model here, before any Ray work starts (a bad source fails now); a note for each
    model trained with another camera than the store's."""
    from daif.model_io import load_model

    notes = []
    for label, source in zip(labels, sources):
        _, meta = load_model(source, tracking_uri)
        camera = meta.get("camera")
        if camera and camera != store.camera.to_dict():
            notes.append(f"{label} was trained with camera {camera}; {data} was rendered with {store.camera.to_dict()}")
    return notes


def result_document(
    store, data: str, split: str, scenes: int, labels: Sequence[str], masks: Sequence[float | None],
    methods: dict[str, dict[str, Any]], conditions: Sequence[Condition], by_size: dict[int, str],
    generalisation: Sequence[GeneralisationRow],
) -> dict[str, Any]:
    """metrics.json's content up to "generalisation" (the caller adds notes, backend and seconds)."""
    from daif.metrics import DEPTH_METRIC_NAMES

    main = conditions[0]
    result: dict[str, Any] = {key: methods[labels[0]]["image"][key] for key in DEPTH_METRIC_NAMES}
    result.update({
        "model": labels[0],
        "reduction": "image",
        "data": data,
        "split": split,
        "scenes": scenes,
        "camera": store.camera.to_dict(),
        "stack": {"indices": list(main.indices or ()), "focus_distances": list(main.focus_distances)},
        "variants": [variant_name(r, mask_name(m)) for m in masks for r in ("image", "pixel")],
        "methods": methods,
        "generalisation": {
            "stack_sizes": sorted(by_size),
            "focus_sets": [list(c.focus_distances) for c in conditions if c.study == "focus_set"],
            "rows": [row.record() for row in generalisation],
        },
    })
    return result
