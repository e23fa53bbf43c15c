"""The search: a Ray Tune Tuner over trials of the training driver, one MLflow parent run, the outputs.

    result = run_search(SearchOptions(base=config, space=load_space("table4"), epochs=20, ...))
    result.rows, result.best, result.paths, result.parent_run_id

Ray must be initialised by the caller (`daif tune` does it). The search's folder is `<storage>/<name>`, a path or a
URI (`daif.storage`: Tune, the trials and this module all go through the same pyarrow filesystem); Tune's experiment
state lives there (so `resume=True` is `Tuner.restore`), every trial's checkpoints under `trials/<trial_id>/train`,
`search.json` holds the parent run's id, so a resumed search logs into it, and `results/` the outputs (written here,
then uploaded when the storage is not on this machine).
"""

from __future__ import annotations

import dataclasses
import json
import math
import posixpath
import signal
import time
from pathlib import Path
from typing import Any

from daif import storage
from daif.signals import interrupts_raise
from daif.tune.space import Space, overrides_of, to_param_space
from daif.tune.trial import MIN_DEPTH_GAIN, STATUS, STATUS_TAG, TRIAL_ID_TAG, TrialSettings

EXPERIMENT = "daif-tune"
SEARCH_FILE = "search.json"
MLFLOW_STATUS = {"complete": "FINISHED", "collapsed": "FINISHED", "pruned": "KILLED", "diverged": "FAILED", "error": "FAILED",
                 "unfinished": "KILLED"}


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    base: Any  # daif.config.Config: every trial's starting point (train.epochs already the search's)
    space: Space
    search: str = "grid"  # "grid" | "optuna"
    num_samples: int = 1  # grid: repeats of the grid; optuna: trials
    scheduler: str = "fifo"  # "fifo" | "asha"
    max_concurrent: int = 2
    cpus_per_trial: float = 0.5
    gpus_per_trial: float = 0.0
    workers_per_trial: int = 1
    name: str = "daif-tune"
    storage: str = ""  # absolute path or URI; empty: ./runs
    experiment: str = EXPERIMENT
    out: str = ""  # path or URI; empty: <storage>/<name>/results
    resume: bool = False
    retry_errored: bool = False  # with resume: errored trials run again from scratch
    log_models: bool = False
    register: str = ""  # registered model name for the best trial's model; empty: none
    min_depth_gain: float = MIN_DEPTH_GAIN  # 0 = no collapse test
    seed: int = 0
    verbose: int = 1


@dataclasses.dataclass
class SearchResult:
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    paths: dict[str, str]  # table_csv, table_md, heatmap, best_yaml: paths, or URIs when the output folder is one
    parent_run_id: str
    tracking_uri: str
    root: storage.Location
    seconds: float
    registered_uri: str | None = None  # models:/<register>/<version> of the best trial's model
    out: storage.Location | None = None  # the folder of `paths`


def search_root(options: SearchOptions) -> storage.Location:
    from daif.train.driver import default_storage

    return storage.resolve(options.storage or default_storage()) / options.name


def run_search(options: SearchOptions) -> SearchResult:
    from daif.config import replace, to_dict, to_yaml
    from daif.tracking import check_reachable, resolve_tracking_uri

    started = time.perf_counter()
    root = search_root(options)
    tracking_uri = resolve_tracking_uri(options.base.tracking.tracking_uri)
    check_reachable(tracking_uri)
    base = replace(options.base, tracking={"tracking_uri": tracking_uri, "experiment": options.experiment})
    metric, mode = base.train.val_metric, base.train.val_mode
    parent_run_id = _parent_run(options, base, root, tracking_uri)
    settings = TrialSettings(base=to_dict(base), root=root.uri, parent_run_id=parent_run_id,
                             log_models=options.log_models, cpus_per_trial=options.cpus_per_trial,
                             min_depth_gain=options.min_depth_gain)

    try:
        with interrupts_raise(signal.SIGTERM):  # SIGTERM as Ctrl-C (which Tune handles itself): runs end KILLED
            results = _tuner(options, settings, root, mode).fit()
            rows = _rows(results, options, metric)
            _finish_child_runs(tracking_uri, parent_run_id, rows)
            best = _best(rows, mode)
            best_yaml = to_yaml(replace(base, **overrides_of({k: best[k] for k in options.space.keys}))) if best else None
            out = storage.resolve(options.out, "--out") if options.out else root / "results"
            from daif.tune.report import write_outputs

            title = f"{options.name}: {options.space.name}, {options.search}, {options.scheduler}, {base.train.epochs} epochs"
            with storage.staged(out) as folder:  # MLflow logs the local files
                written = write_outputs(rows, options.space.keys, metric, mode, folder, best_yaml, title)
                _log_parent(tracking_uri, parent_run_id, rows, best, written, metric)
            paths = {key: (out / path.name).uri for key, path in written.items()}
            registered_uri = _register_best(tracking_uri, best, options) if options.register and best else None
    except BaseException as error:  # an interrupt or a failure: no run of the search is left RUNNING
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        _end_open_runs(tracking_uri, parent_run_id, error, status)
        raise
    return SearchResult(rows, best, paths, parent_run_id, tracking_uri, root, time.perf_counter() - started, registered_uri, out)


def _register_best(tracking_uri: str, best: dict[str, Any], options: SearchOptions) -> str | None:
    """Register the best trial's model as `options.register`; return its models:/<name>/<version> URI. With
    --log-models the trial's run already holds it (runs:/<run>/model); otherwise its best checkpoint is logged
    there now, once, as that run's model. A failure is a warning (the search's results stand), and None."""
    from daif.tracking import RunLogger
    from daif.train.driver import log_checkpoint_model

    run_id = best.get("run_id")
    if not run_id or not best.get("best_checkpoint"):
        return None
    logger = RunLogger(tracking_uri, run_id)
    if options.log_models:
        return logger.register(f"runs:/{run_id}/model", options.register)
    return log_checkpoint_model(logger, "model", best["best_checkpoint"], options.register)


def _end_open_runs(tracking_uri: str, parent_run_id: str, error: BaseException, status: str) -> None:
    """Mark the parent and every child run still RUNNING as `status`, the reason in their failure tag."""
    from daif.tracking import fail_run

    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri)
        experiment = client.get_run(parent_run_id).info.experiment_id
        children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'")
    except Exception:  # noqa: BLE001 - the tracking store may be the failure; the parent is still tried below
        children = []
    for child in children:
        fail_run(tracking_uri, child.info.run_id, error, status)
    fail_run(tracking_uri, parent_run_id, error, status)


def _parent_run(options: SearchOptions, base, root: storage.Location, tracking_uri: str) -> str:
    """The search's MLflow run: created for a new search, reused (from search.json) by a resumed one."""
    from daif.config import flatten, to_yaml
    from daif.tracking import start_run

    record = root / SEARCH_FILE
    if options.resume and record.exists():
        return json.loads(record.read_text())["parent_run_id"]
    settings = {f"search.{k}": v for k, v in dataclasses.asdict(options).items() if k not in ("base", "space", "resume", "retry_errored")}
    params = {**flatten(base), **settings, "search.space": json.dumps(options.space.to_dict())}
    parent = start_run(tracking_uri, options.experiment, options.name, params, to_yaml(base), tags={"daif.tune": "search"})
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    client.log_text(parent, json.dumps(options.space.to_dict(), indent=1), "space.json")
    record.write_text(json.dumps({"parent_run_id": parent, "space": options.space.to_dict()}, indent=1))
    return parent


def _tuner(options: SearchOptions, settings: TrialSettings, root: storage.Location, mode: str):
    from ray import tune

    from daif.tune.trainables import InProcessTrial, trainer_trial

    if options.workers_per_trial == 1:
        trainable = tune.with_resources(tune.with_parameters(InProcessTrial, settings=settings),
                                        {"CPU": options.cpus_per_trial, "GPU": options.gpus_per_trial})
    else:  # the trial's function holds a sliver of a CPU; its TorchTrainer's workers ask for their own
        trainable = tune.with_resources(tune.with_parameters(trainer_trial, settings=settings), {"CPU": 0.1})
    if options.resume:  # Tune takes the filesystem and its path, as daif resolved them
        if not tune.Tuner.can_restore(root.path, storage_filesystem=root.filesystem):
            raise ValueError(f"--resume: no search to resume in {root.uri} (run it once without --resume)")
        return tune.Tuner.restore(root.path, trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=options.retry_errored, storage_filesystem=root.filesystem)
    return tune.Tuner(
        trainable,
        param_space=to_param_space(options.space, options.search),
        tune_config=tune.TuneConfig(
            metric="score", mode=mode, search_alg=_search_alg(options, mode), scheduler=_scheduler(options),
            num_samples=options.num_samples, max_concurrent_trials=options.max_concurrent,
            reuse_actors=options.workers_per_trial == 1,  # InProcessTrial.reset_config; a function trainable is not reused
            trial_name_creator=lambda trial: f"trial_{trial.trial_id}",
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=options.name, storage_path=posixpath.dirname(root.path), storage_filesystem=root.filesystem,
            verbose=options.verbose,
            stop=lambda trial_id, result: result.get(STATUS) == "diverged",  # the TorchTrainer path's stop
            failure_config=tune.FailureConfig(max_failures=0),  # a crashing trial is recorded, the search goes on
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=0),  # trials keep their own (daif.tune.trial)
        ),
    )


def _search_alg(options: SearchOptions, mode: str):
    if options.search == "grid":
        return None  # Tune's own grid (BasicVariantGenerator), limited by max_concurrent_trials
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=options.seed)
    return ConcurrencyLimiter(OptunaSearch(sampler=sampler), max_concurrent=options.max_concurrent)


def _scheduler(options: SearchOptions):
    if options.scheduler == "fifo":
        return None
    from ray.tune.schedulers import ASHAScheduler

    # one rung per halving from the first epoch: a weak trial stops after 1, 2, 4, ... epochs. A TorchTrainer trial's
    # final result (its status) comes after its last epoch's report, so there max_t is one more than the epochs
    max_t = max(1, options.base.train.epochs) + (1 if options.workers_per_trial > 1 else 0)
    return ASHAScheduler(time_attr="epochs_done", max_t=max_t, grace_period=1, reduction_factor=2)


def _rows(results, options: SearchOptions, metric: str) -> list[dict[str, Any]]:
    rows = []
    epochs = options.base.train.epochs
    # Result.config comes from the last result; a trial that failed before reporting has only its Tune config
    analysis = getattr(results, "_experiment_analysis", None)  # ResultGrid's own record of the trials
    trials = {trial.path: trial for trial in analysis.trials} if analysis is not None else {}
    for result in results:
        last = dict(result.metrics or {})
        trial = trials.get(result.path)
        config = result.config or (trial.config if trial is not None else {})
        params = {k: config.get(k) for k in options.space.keys}
        history = result.metrics_dataframe
        values = [] if history is None or metric not in history else [float(v) for v in history[metric] if v == v]
        if result.error is not None:
            status, message = "error", _first_line(result.error)
        elif last.get(STATUS):
            status, message = last[STATUS], str(last.get("message", ""))
        elif int(last.get("epochs_done", 0)) < epochs and options.scheduler == "asha":
            status, message = "pruned", ""
        elif int(last.get("epochs_done", 0)) < epochs:  # the search was interrupted (Ctrl-C): --resume continues it
            status, message = "unfinished", "interrupted; run the same command with --resume"
        else:
            status, message = "error", "ended without a final result"
        best = last.get("best_metric")
        if not isinstance(best, float) or math.isnan(best):
            best = (max(values) if options.base.train.val_mode == "max" else min(values)) if values else float("nan")
        final = last.get(metric)
        rows.append({
            "trial_id": _trial_id(result, trial), **params, "status": status,
            "final": float(final) if isinstance(final, (int, float)) else float("nan"), "best": float(best),
            "delta1": float(last.get("selected_delta1", float("nan"))),
            "epochs": int(last.get("epochs_done", 0)), "seconds": float(last.get("time_total_s", float("nan"))),
            "run_id": last.get("mlflow_run_id", ""), "message": message,
            "best_checkpoint": last.get("best_checkpoint", ""), "depth_gain": last.get("depth_gain"),
        })
    return sorted(rows, key=lambda r: r["trial_id"])


def _trial_id(result, trial) -> str:
    """Tune's trial id, the MLflow tag of the trial's runs. Not the folder name: a trial that a resume restarts
    gets a new folder (trial_<id>_<suffix>) under the same id."""
    trial_id = trial.trial_id if trial is not None else (result.metrics or {}).get("trial_id")
    return str(trial_id) if trial_id else Path(result.path).name.removeprefix("trial_") if result.path else "?"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # Tune wraps the trial's exception; its last line is the original "Type: message"
    return (lines[-1] if lines else type(error).__name__)[:300]


def _best(rows: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    from daif.tune.report import best_row

    return best_row(rows, mode)


def _finish_child_runs(tracking_uri: str, parent_run_id: str, rows: list[dict[str, Any]]) -> None:
    """Every trial's MLflow run gets its trial status as a tag and an ended state (a stopped trial's
    thread may have had no time to end it)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=5000)
    by_trial = {r["trial_id"]: r for r in rows}
    for child in children:
        row = by_trial.get(child.data.tags.get(TRIAL_ID_TAG, ""))
        if row is None:
            continue
        if row["run_id"] and child.info.run_id != row["run_id"]:  # a run the trial left when its search was killed
            client.set_tag(child.info.run_id, STATUS_TAG, "superseded")
            if child.info.status == "RUNNING":
                client.set_terminated(child.info.run_id, "KILLED")
            continue
        row["run_id"] = row["run_id"] or child.info.run_id
        client.set_tag(child.info.run_id, STATUS_TAG, row["status"])
        if row["message"]:
            client.set_tag(child.info.run_id, "daif.tune.message", row["message"])
        wanted = MLFLOW_STATUS[row["status"]]
        if child.info.status != wanted:
            client.set_terminated(child.info.run_id, wanted)


def _log_parent(tracking_uri: str, parent_run_id: str, rows, best, paths: dict[str, Path], metric: str) -> None:
    """The parent run gets the search's files (`paths`: local), the trial counts, the best trial; it ends FINISHED."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    for path in paths.values():
        client.log_artifact(parent_run_id, str(path))
    counts = {f"trials_{status}": sum(r["status"] == status for r in rows) for status in MLFLOW_STATUS}
    for key, value in counts.items():
        client.log_metric(parent_run_id, key, value)
    if best is not None:
        client.log_metric(parent_run_id, f"best_{metric.replace('/', '_')}", best["best"])
        client.set_tag(parent_run_id, "daif.tune.best_trial", best["trial_id"])
        client.set_tag(parent_run_id, "daif.tune.best_run_id", best.get("run_id", ""))
    client.set_terminated(parent_run_id, "FINISHED")
