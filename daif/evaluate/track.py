"""MLflow for an evaluation: check the tracking server before any work, then log the metrics and files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from daif.evaluate.plan import ANALYTIC

EXPERIMENT = "daif-eval"


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


def _start_run(uri: str, result: dict[str, Any], experiment: str) -> str:
    """A new run of `experiment` named evaluate-<split>, with the data, stack and models as parameters."""
    import mlflow

    from daif.tracking import experiment_id

    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(experiment_id(experiment, uri), run_name=f"evaluate-{result['split']}").info.run_id
    params = {"data": result["data"], "split": result["split"], "scenes": result["scenes"],
              "stack_focus_distances": ",".join(f"{f:g}" for f in result["stack"]["focus_distances"])}
    params.update({f"model.{name}": section["source"] for name, section in result["methods"].items() if name not in ANALYTIC})
    client.log_batch(run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()])
    return run_id


def log_evaluation(result: dict[str, Any], paths: dict[str, Path], tracking_uri: str, run_id: str | None, experiment: str) -> dict[str, Any]:
    """Log metrics and files into run `run_id`, or into a new run of `experiment`; returns {tracking_uri, run_id, errors}."""
    from daif.metrics import DEPTH_METRIC_NAMES
    from daif.tracking import RunLogger, end_run, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    owns_run = run_id is None
    if owns_run:
        run_id = _start_run(uri, result, experiment)
    logger = RunLogger(uri, run_id)
    values = {}
    for name, section in result["methods"].items():
        for variant in result["variants"]:
            values.update({_metric_key("eval", name, variant, k): v for k, v in section[variant].items()})
        values.update({_metric_key("eval", name, "aif", k): v for k, v in section["aif"].items()})
    values.update({_metric_key("eval", k): result[k] for k in DEPTH_METRIC_NAMES})
    logger.metrics(values, step=0)
    for row in result["generalisation"]["rows"]:
        if row["study"] == "stack_size":
            logger.metrics({_metric_key("eval", row["method"], "delta1_vs_stack_size"): row["delta1"]}, step=int(row["x"]))
    for path in paths.values():
        logger.artifact(path, "evaluation")
    if owns_run:
        end_run(uri, run_id, "FINISHED" if logger.ok else "FAILED")
    return {"tracking_uri": uri, "run_id": run_id, "errors": logger.errors}
