"""The training driver: config in, result out. Builds the TorchTrainer around `train_loop_per_worker`.

    result = train(load_config(overrides=["data.path=/data/store", "train.epochs=10"]))
    result.run_id, result.model_uri, result.best_checkpoint

Free of command-line parsing, so Ray Tune can wrap it. Ray must be initialised by the caller
(`daif train` does it; inside a Ray job or a Tune trial it already is).
"""

from __future__ import annotations

import dataclasses
import math
import os
import uuid
from pathlib import Path
from typing import Any

from daif.config import Config, flatten, replace, to_dict, to_yaml
from daif.data.store import open_store
from daif.optics import ThinLensCamera
from daif.tracking import check_reachable, end_run, resolve_tracking_uri, start_run
from daif.train.loop import load_state, train_loop_per_worker


@dataclasses.dataclass(frozen=True)
class TrainResult:
    run_id: str | None  # MLflow run
    model_uri: str | None  # runs:/<run_id>/model, the best checkpoint's model
    best_checkpoint: str | None  # directory (or URI) of the best checkpoint
    latest_checkpoint: str | None
    metrics: dict[str, Any]  # the last reported epoch
    best_metrics: dict[str, Any]
    storage_path: str
    tracking_uri: str


def default_storage() -> str:
    return str(Path(os.getcwd(), "runs").resolve())


def _depth_range(config: Config, store) -> tuple[float, float]:
    """model.near/far, else the depth range of the preset the store was rendered with."""
    if config.model.near > 0 and config.model.far > config.model.near:
        return config.model.near, config.model.far
    clip = store.manifest.get("content", {}).get("depth_clip")
    if not clip:
        raise ValueError("model.near/model.far: the store does not say its depth range; set both")
    return float(clip[0]), float(clip[1])


def check_camera(config: Config, store) -> ThinLensCamera:
    """The store's camera; an explicitly given data.camera must agree with it."""
    if config.data.camera:
        given = ThinLensCamera.parse(config.data.camera)
        if given != store.camera:
            raise ValueError(
                f"data.camera: {given} disagrees with the camera {store.camera} that {store.path} was rendered with; "
                "training with another camera than the rendering one is the reference code's silent mistake"
            )
    return store.camera


def train(
    config: Config,
    resume: str | None = None,
    *,
    tags: dict[str, str] | None = None,
    callbacks: list | None = None,
    in_process: bool = False,
    on_report=None,
    log_models: bool = True,
) -> TrainResult:
    """Train DAIF-Net on Ray Train as `config` says; `resume` is a checkpoint directory to continue from.

    Hooks for a caller such as Ray Tune (daif.tune): `tags` go on the MLflow run it creates (e.g.
    mlflow.parentRunId); `callbacks` join the TorchTrainer's RunConfig (e.g. TuneReportCallback);
    `in_process` runs the one worker in this process (daif.train.local.InProcessTrainer, no worker group
    to start) and `on_report(metrics, checkpoint_dir)` then sees every epoch; `log_models` False skips
    logging the models to MLflow (the checkpoints stay in the storage).
    """
    import ray

    if not config.data.path:
        raise ValueError("data.path: the rendered store to train on is required (daif render ... --out DIR)")
    store = open_store(config.data.path)
    camera = check_camera(config, store)
    near, far = _depth_range(config, store)
    for split in (config.data.train_split, config.data.val_split):
        if split not in store.splits:
            raise ValueError(f"data: {store.path} holds splits {store.splits}; '{split}' is missing")

    resume_meta: dict[str, Any] = {}
    if resume:
        _, resume_meta = load_state(resume)
        if resume_meta.get("manifest_hash") != store.manifest_hash:
            print(f"WARNING: {resume} was trained on a store with another manifest than {store.path}")

    tracking_uri = resolve_tracking_uri(config.tracking.tracking_uri)
    check_reachable(tracking_uri)
    config = replace(config, tracking={"tracking_uri": tracking_uri})
    run_id = resume_meta.get("run_id")
    if not run_id:
        params = {**flatten(config), "data.manifest_hash": store.manifest_hash, "data.camera_used": str(camera.to_dict())}
        run_id = start_run(
            tracking_uri, config.tracking.experiment, config.tracking.run_name, params, to_yaml(config), tags=tags
        )

    world_size = config.scaling.num_workers
    rows_per_worker = store.num_scenes(config.data.train_split) // world_size
    if rows_per_worker < 1:
        raise ValueError(f"scaling.num_workers: {world_size} workers need at least as many training scenes")
    per_worker_batch = max(1, config.optim.batch_size // world_size)
    storage = config.tracking.storage or default_storage()
    name = f"daif-{run_id[:8]}-{uuid.uuid4().hex[:6]}" if run_id else f"daif-{uuid.uuid4().hex[:8]}"
    loop_config = {
        "config": to_dict(config),
        "camera": camera.to_dict(),
        "focus_distances": store.focus_distances.tolist(),
        "depth_range": [near, far],
        "manifest_hash": store.manifest_hash,
        "steps_per_epoch": math.ceil(rows_per_worker / per_worker_batch),
        "tracking_uri": tracking_uri,
        "run_id": run_id,
        "resume_from": resume,
        "storage_dir": str(Path(storage) / name) if "://" not in storage else "",
    }
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # reproducible batches
    datasets = {"train": _read(store.path, config.data.train_split), "val": _read(store.path, config.data.val_split)}
    if in_process:
        if world_size != 1:
            raise ValueError(f"scaling.num_workers: in-process training runs one worker, got {world_size}")
        from daif.train.local import InProcessTrainer

        trainer = InProcessTrainer(
            train_loop_per_worker, loop_config, datasets, str(Path(storage) / name), config.train.val_metric,
            config.train.val_mode, on_report=on_report, experiment_name=name,
        )
    else:
        trainer = _torch_trainer(config, loop_config, datasets, name, storage, callbacks)
    status = "FAILED"
    try:
        result = trainer.fit()
        best = result.get_best_checkpoint(config.train.val_metric, config.train.val_mode) if result.best_checkpoints else None
        best_metrics = next((m for c, m in result.best_checkpoints if best is not None and c.path == best.path), {})
        model_uri = _log_models(tracking_uri, run_id, best, result.checkpoint) if log_models else None
        status = "FINISHED"
    finally:
        if run_id:
            end_run(tracking_uri, run_id, status)
    return TrainResult(
        run_id=run_id,
        model_uri=model_uri,
        best_checkpoint=best.path if best else None,
        latest_checkpoint=result.checkpoint.path if result.checkpoint else None,
        metrics=dict(result.metrics or {}),
        best_metrics=dict(best_metrics),
        storage_path=str(Path(storage) / name),
        tracking_uri=tracking_uri,
    )


def _torch_trainer(config: Config, loop_config: dict[str, Any], datasets: dict[str, Any], name: str, storage: str, callbacks):
    import ray.train
    from ray.train.torch import TorchTrainer

    world_size = config.scaling.num_workers
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=world_size,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker={"CPU": config.scaling.cpus_per_worker, **({"GPU": 1} if config.scaling.use_gpu else {})},
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage,
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1,  # the best by the validation metric; Ray always keeps the latest too
                checkpoint_score_attribute=config.train.val_metric,
                checkpoint_score_order=config.train.val_mode,
            ),
            failure_config=ray.train.FailureConfig(max_failures=config.scaling.max_failures),
            callbacks=list(callbacks or []) or None,
        ),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),  # rank 0 validates on the whole split
    )


def _read(path: str, split: str):
    """The split as a Ray Dataset, held in the object store when it fits in a quarter of it: the store is
    then read (and its shards hash-checked) once, not every epoch. Larger splits stream from the store."""
    import ray

    from daif.data.dataset import StoreDatasource, read_split

    dataset = read_split(path, split)
    capacity = ray.cluster_resources().get("object_store_memory", 0)
    if StoreDatasource(path, split).estimate_inmemory_data_size() < capacity / 4:
        dataset = dataset.materialize()
    return dataset


def _log_models(tracking_uri: str, run_id: str | None, best, latest) -> str | None:
    """Log the best and the final model with mlflow.pytorch (loadable by `daif predict`); return the best's URI."""
    if not run_id or latest is None:
        return None
    import mlflow
    import mlflow.pytorch

    from daif.model_io import load_model
    from daif.tracking import RunLogger

    mlflow.set_tracking_uri(tracking_uri)
    logged = RunLogger(tracking_uri, run_id)
    for checkpoint, name in ((best or latest, "model"), (latest, "final_model")):
        with checkpoint.as_directory() as directory:
            model, meta = load_model(directory)
            def log(model=model, meta=meta, directory=directory, name=name):
                with mlflow.start_run(run_id=run_id):
                    mlflow.pytorch.log_model(model, name=name, serialization_format="pickle", metadata={k: meta[k] for k in ("camera", "focus_distances", "depth_range", "epoch")})
                    mlflow.log_artifacts(directory, artifact_path=f"checkpoints/{name}")
            logged._guard(f"the {name}", log)
    return f"runs:/{run_id}/model" if logged.ok else None
