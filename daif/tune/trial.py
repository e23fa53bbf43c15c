"""One Tune trial: a whole training run of `daif.train.driver.train` with the trial's values.

Two trainables (daif.tune.trainables), the same trial underneath:
- `InProcessTrial` (one worker per trial, the default): a class `ray.tune.Trainable` that runs the training loop
  in its own actor through `daif.train.local.InProcessTrainer` and hands each epoch to Tune from `step()`.
  A class, not a function trainable, because Ray raises on `ray.train.report` inside a Tune function.
  It skips the TorchTrainer's controller and worker-group start (benchmarks/tune_overhead.py).
- `trainer_trial` (several DDP workers or GPUs per trial): the Train V2 pattern, a Tune function that runs the
  TorchTrainer with a `TuneReportCallback` (here `ScoredTuneReport`, which adds the search score and status).

Every result carries `score` (the validation metric, finite: a diverged epoch scores `FAILED_SCORE`, since
ASHA never stops a NaN trial and Optuna fails it) and, on the last, `trial_status`:
- "diverged": a non-finite training or validation loss (the trial stops at that epoch), or training raised on a
  non-finite value (NaN weights give NaN depth, which the renderer's input check rejects within the epoch).
- "collapsed": training ended but the best model's depth does not explain the stacks: re-rendering the
  validation stacks with each image's depth flattened to its mean raises the reconstruction error by less than
  MIN_DEPTH_GAIN (`depth_gain`; no ground truth: the threshold lies between the untrained and the trained
  checkpoints of two Table 4 grids, docs/experiments.md entry 39).
- "complete": trained, not collapsed.
ASHA-stopped trials end without a status ("pruned"), failing ones as Tune errors ("error"); daif.tune.runner
reads both from Tune. A trial resumes from the newest checkpoint in its own storage folder
(`<root>/trials/<trial_id>/train`), continuing its MLflow run, so `Tuner.restore` needs no Tune checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from typing import Any

from daif import storage

MIN_DEPTH_GAIN = 0.2  # depth_gain below this = collapsed
FAILED_SCORE = {"max": -1.0, "min": 1e9}  # the score of a diverged epoch: worse than any real value of delta/error metrics
LOSS_KEYS = ("train/total", "val/total")
STATUS = "trial_status"
TRIAL_ID_TAG = "daif.tune.trial_id"
STATUS_TAG = "daif.tune.status"


@dataclasses.dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search shares (passed with tune.with_parameters)."""

    base: dict[str, Any]  # the base config, daif.config.to_dict
    root: str  # the search's folder (path or URI, daif.storage); trial storage under root/trials/<trial_id>
    parent_run_id: str  # MLflow parent run
    log_models: bool = False
    cpus_per_trial: float = 0.5
    min_depth_gain: float = MIN_DEPTH_GAIN  # 0 = no collapse test


class TrialStopped(Exception):
    """Raised in the training thread when Tune stops the trial (ASHA) or the trial diverged."""


def trial_config(settings: TrialSettings, params: dict[str, Any], trial_id: str):
    """The base config with the trial's values, its run name and its own storage folder."""
    from daif.config import from_dict, replace
    from daif.tune.space import overrides_of

    config = replace(from_dict(settings.base), **overrides_of(params))
    return replace(config, tracking={"run_name": f"trial-{trial_id}", "storage": (trial_dir(settings, trial_id) / "train").uri})


def trial_dir(settings: TrialSettings, trial_id: str) -> storage.Location:
    return storage.resolve(settings.root) / "trials" / trial_id


def latest_checkpoint(runs: str | os.PathLike | storage.Location) -> str | None:
    """The checkpoint folder (meta.json + state.pt; path or URI) of the highest epoch in the run folders under
    `runs`, for resuming."""
    import json

    best: tuple[int, str] | None = None
    for run in storage.resolve(runs).subfolders():
        for checkpoint in run.subfolders():
            if not (checkpoint / "state.pt").is_file():
                continue
            try:
                epoch = int(json.loads((checkpoint / "meta.json").read_text()).get("epoch", -1))
            except (OSError, ValueError, AttributeError):
                continue
            if best is None or epoch > best[0]:
                best = (epoch, checkpoint.uri)
    return best[1] if best else None


def is_diverged(metrics: dict[str, Any]) -> bool:
    return any(key in metrics and not math.isfinite(float(metrics[key])) for key in LOSS_KEYS)


NON_FINITE = re.compile(r"(?<![a-z])(nan|inf)(?![a-z])", re.IGNORECASE)


def is_non_finite_error(error: BaseException) -> bool:
    """An exception raised because a value went non-finite (e.g. "depth: expected positive metres, got min nan")."""
    return isinstance(error, (ValueError, RuntimeError, FloatingPointError)) and bool(NON_FINITE.search(str(error)))


def diverged_result(error: BaseException, started: float, mode: str) -> dict[str, Any]:
    message = [line for line in str(error).splitlines() if line.strip()]
    return {STATUS: "diverged", "score": FAILED_SCORE[mode], "message": (message[-1] if message else type(error).__name__)[:300],
            "trial_seconds": time.perf_counter() - started}


def scored(metrics: dict[str, Any], metric: str, mode: str) -> dict[str, Any]:
    """The epoch's metrics plus `score` and `epochs_done`; a diverged epoch gets trial_status "diverged"."""
    out = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    value = metrics.get(metric)
    finite = isinstance(value, (int, float)) and math.isfinite(value)
    out["score"] = float(value) if finite and not is_diverged(metrics) else FAILED_SCORE[mode]
    out["epochs_done"] = int(metrics.get("epoch", -1)) + 1
    if is_diverged(metrics):
        out[STATUS] = "diverged"
    return out


def depth_gain(model, config) -> float:
    """How much the model's depth explains the validation stacks (the collapse test; the stacks only, no ground truth):

        G = r_flat / r_model - 1,   r = mean over scenes of daif.losses.reconstruction_errors(I, s, A, D)["recon"]

    r_model with the AIF A and depth D that `model(stack, focus_distances)` returns (a DAIFNet, or any callable
    with its contract) for the validation stacks I (the validation draw of each stack's images, in store order,
    8 scenes a call), r_flat with each image's D replaced by its mean over the image (A kept), through the
    config's PSF and alpha. A near-constant depth, or one the re-rendering ignores, gives G near 0; a depth the
    stack's defocus is rendered from gives G of order 1 (docs/experiments.md entry 39). NaN without validation
    scenes.
    """
    import numpy as np
    import torch

    from daif.data.bins import make_batch
    from daif.data.store import open_store
    from daif.losses import reconstruction_errors
    from daif.train.loop import samplers

    store = open_store(config.data.path)
    focus_all = np.asarray(store.focus_distances, dtype=np.float32)
    _, sampler = samplers(config, len(focus_all))
    stacks = [scene["stack"] for scene in store.iter_scenes(config.data.val_split, ("stack",))]
    model_errors, flat_errors = [], []
    with torch.no_grad():
        for start in range(0, len(stacks), 8):
            rows = {"stack": np.stack(stacks[start:start + 8])}
            batch = make_batch(rows, sampler.draw(np.random.default_rng(0), len(rows["stack"])), focus_all)
            aif, depth = model(batch["stack"], batch["focus_distances"])
            flat = depth.mean(dim=(1, 2, 3), keepdim=True).expand_as(depth)
            for target, errors in ((depth, model_errors), (flat, flat_errors)):
                errors += reconstruction_errors(batch["stack"], batch["focus_distances"], aif, target, store.camera,
                                                config.loss.alpha, config.loss.psf, detail=False)["recon"].tolist()
    if not model_errors:
        return float("nan")
    return float(np.mean(flat_errors) / max(float(np.mean(model_errors)), 1e-12) - 1.0)


def final_result(train_result, config, metric: str, mode: str, started: float, min_depth_gain: float = MIN_DEPTH_GAIN) -> dict[str, Any]:
    """The last result of a trained trial: its last epoch, best values, depth gain and status."""
    from daif.model_io import load_model

    result = scored(train_result.metrics, metric, mode)
    if STATUS not in result:
        checkpoint = train_result.best_checkpoint or train_result.latest_checkpoint
        gain = depth_gain(load_model(checkpoint)[0], config) if checkpoint and min_depth_gain > 0 else float("nan")
        result["depth_gain"] = gain
        result[STATUS] = "collapsed" if min_depth_gain > 0 and not (gain >= min_depth_gain) else "complete"
    best = train_result.best_metrics.get(metric)
    result["best_metric"] = float(best) if isinstance(best, (int, float)) else float("nan")
    measured = train_result.best_metrics.get("val/delta1")  # reported beside the ranking metric, never ranks
    result["selected_delta1"] = float(measured) if isinstance(measured, (int, float)) else float("nan")
    result["best_checkpoint"] = train_result.best_checkpoint or ""
    result["mlflow_run_id"] = train_result.run_id or ""
    result["trial_seconds"] = time.perf_counter() - started
    if result[STATUS] != "complete":
        result["score"] = FAILED_SCORE[mode]
    return result


def _train(settings: TrialSettings, config, trial_id: str, **hooks):
    from daif.train.driver import train

    resume = latest_checkpoint(config.tracking.storage)
    tags = {"mlflow.parentRunId": settings.parent_run_id, TRIAL_ID_TAG: trial_id}
    return train(config, resume=resume, tags=tags, log_models=settings.log_models, **hooks)

