"""The training driver: config in, result out. Builds the TorchTrainer around `train_loop_per_worker`.

    result = train(load_config(overrides=["data.path=/data/store", "train.epochs=10"]))
    result.run_id, result.model_uri, result.best_checkpoint

Free of command-line parsing, so Ray Tune can wrap it. Ray must be initialised by the caller
(`daif train` does it; inside a Ray job or a Tune trial it already is).

Bad input raises `daif.errors.UsageError` before a run or a worker starts. A run that fails later
ends FAILED with the reason in its tag `daif.failure`; a failed *resume* leaves the run it resumed
in the status it had (reason in `daif.resume_failure`) and removes the Ray run folder it created
when that holds no checkpoint. An interrupt (SIGINT, SIGTERM: `daif.signals`) ends the run KILLED, the
signal in `daif.failure`, and raises `daif.signals.Interrupted` naming the latest complete checkpoint,
which `--resume` continues from.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daif import storage
from daif.checkpoint import CheckpointError, load_checkpoint, load_checkpoint_model
from daif.config import Config, flatten, replace, to_dict, to_yaml
from daif.data.store import StoreError, open_store
from daif.errors import UsageError
from daif.optics import ThinLensCamera
from daif.signals import Interrupted, interrupts_raise, signal_number
from daif.tracking import check_reachable, end_run, fail_run, resolve_tracking_uri, start_run
from daif.train.loop import build_model, train_loop_per_worker


@dataclasses.dataclass(frozen=True)
class TrainResult:
    run_id: str | None  # MLflow run
    model_uri: str | None  # runs:/<run_id>/model, the best checkpoint's model
    best_checkpoint: str | None  # directory of the best checkpoint (a URI when the storage is one)
    latest_checkpoint: str | None
    metrics: dict[str, Any]  # the last reported epoch
    best_metrics: dict[str, Any]
    storage_path: str  # the run's folder in the storage (path or URI)
    tracking_uri: str
    registered_uri: str | None = None  # models:/<name>/<version> of the best model, with `register`


def default_storage() -> str:
    return str(Path(os.getcwd(), "runs").resolve())


def _depth_range(config: Config, store, init_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """model.near/far, else `init_range` (train.init_from's network's: a fine-tune keeps the output range its
    weights learnt), else the store's: the depth clip of the preset it was rendered with (model.range_source
    "clip"), or the depths its scenes were made with ("scenes", synthetic stores)."""
    if config.model.near > 0 and config.model.far > config.model.near:
        return config.model.near, config.model.far
    if init_range is not None:
        return init_range
    content = store.manifest.get("content", {})
    if config.model.range_source == "scenes":
        scenes = content.get("source", {}).get("depth_range")
        if not scenes:
            raise UsageError(f"model.range_source: 'scenes', but {store.path} does not record the depths its scenes span; "
                             "set model.near/model.far or model.range_source=clip")
        return float(scenes[0]), float(scenes[1])
    clip = content.get("depth_clip")
    if not clip:
        raise UsageError("model.near/model.far: the store does not say its depth range; set both")
    return float(clip[0]), float(clip[1])


def check_camera(config: Config, store) -> ThinLensCamera:
    """The store's camera; an explicitly given data.camera must agree with it."""
    if config.data.camera:
        try:
            given = ThinLensCamera.parse(config.data.camera)
        except (TypeError, ValueError) as error:
            raise UsageError(f"data.camera: {error}") from None
        if given != store.camera:
            raise UsageError(
                f"data.camera: {given} disagrees with the camera {store.camera} that {store.path} was rendered with; "
                "training with another camera than the rendering one is the reference code's silent mistake"
            )
    return store.camera


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What `check_inputs` found: everything a run needs, checked."""

    config: Config  # tracking.tracking_uri and tracking.storage resolved (absolute path or URI)
    store: Any
    camera: ThinLensCamera
    depth_range: tuple[float, float]
    resume: str | None  # absolute path or URI
    resume_meta: dict[str, Any]
    rows_per_worker: int
    init_state: dict[str, Any] | None = None  # train.init_from's weights (numpy), for the workers
    checkpoint_storage: storage.Location | None = None  # tracking.storage's filesystem and path


def check_inputs(config: Config, resume: str | None = None) -> Inputs:
    """Check everything on the driver, without Ray and before any run: counts, the store, the camera, the depth
    range, the checkpoint to resume from (or the weights to start from) and the tracking server. Raises UsageError
    naming what is wrong."""
    _check_counts(config)
    checkpoint_storage = storage.check(config.tracking.storage or default_storage(), "tracking.storage")
    resume = storage.resolve(resume, "resume").uri if resume else None  # the workers' working directory is not ours
    resume_meta = _check_resume(resume)
    store = _open_store(config)
    camera = check_camera(config, store)
    _check_resume_store(resume, resume_meta, store)
    tracking_uri = resolve_tracking_uri(config.tracking.tracking_uri)
    check_reachable(tracking_uri)
    initial = None if resume else _load_init(config, tracking_uri)  # a resume has its weights
    depth_range = _depth_range(config, store, None if initial is None else (initial.near, initial.far))
    init_state = None if initial is None else _init_state(config, initial, depth_range, camera)
    config = replace(config, tracking={"tracking_uri": tracking_uri, "storage": checkpoint_storage.uri})
    rows_per_worker = store.num_scenes(config.data.train_split) // config.scaling.num_workers
    if rows_per_worker < 1:
        raise UsageError(
            f"scaling.num_workers: {config.scaling.num_workers} workers need at least as many training scenes; "
            f"{store.path} holds {store.num_scenes(config.data.train_split)} in split '{config.data.train_split}'"
        )
    return Inputs(config, store, camera, depth_range, resume, resume_meta, rows_per_worker, init_state, checkpoint_storage)


@interrupts_raise(signal.SIGINT, signal.SIGTERM)  # on every call: the run ends KILLED, not as Ray's SystemExit
def train(
    config: Config,
    resume: str | None = None,
    train_loop: Callable[[dict], None] = train_loop_per_worker,
    *,
    tags: dict[str, str] | None = None,
    callbacks: list | None = None,
    in_process: bool = False,
    on_report=None,
    log_models: bool = True,
    register: str | None = None,
) -> TrainResult:
    """Train DAIF-Net on Ray Train as `config` says; `resume` is a checkpoint directory to continue from.
    `train_loop` is the function every worker runs (`daif.train.loop.train_loop_per_worker`; tests wrap it).
    Everything is checked on the driver (`check_inputs`) before a run or a worker starts.

    Hooks for a caller such as Ray Tune (daif.tune): `tags` go on the MLflow run it creates (e.g.
    mlflow.parentRunId); `callbacks` join the TorchTrainer's RunConfig (e.g. TuneReportCallback);
    `in_process` runs the one worker in this process (daif.train.local.InProcessTrainer, no worker group
    to start) and `on_report(metrics, checkpoint_dir)` then sees every epoch; `log_models` False skips
    logging the models to MLflow (the checkpoints stay in the storage). `register` names the registered model
    that the best model becomes a new version of (`TrainResult.registered_uri`)."""
    inputs = check_inputs(config, resume)
    config, store, camera, resume, resume_meta = inputs.config, inputs.store, inputs.camera, inputs.resume, inputs.resume_meta
    (near, far), rows_per_worker = inputs.depth_range, inputs.rows_per_worker
    tracking_uri = config.tracking.tracking_uri

    run_id = resume_meta.get("run_id")
    resumed_status = _resume_run(tracking_uri, run_id, resume, resume_meta) if run_id else None
    if not run_id:
        params = {**flatten(config), "data.manifest_hash": store.manifest_hash, "data.camera_used": str(camera.to_dict()),
                  "model.depth_range_used": f"{near!r},{far!r}"}  # model.near/far 0: from the store or train.init_from
        run_id = start_run(tracking_uri, config.tracking.experiment, config.tracking.run_name, params, to_yaml(config), tags=tags)
    per_worker_batch = max(1, config.optim.batch_size // config.scaling.num_workers)
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
        "init_state": inputs.init_state,
    }
    name = f"daif-{run_id[:8]}-{uuid.uuid4().hex[:6]}"
    checkpoint_storage = inputs.checkpoint_storage
    run_folder = checkpoint_storage / name
    trainer = None
    try:
        if in_process:
            trainer = _in_process_trainer(config, store.path, run_folder, train_loop, loop_config, on_report)
        else:
            trainer = _trainer(config, store.path, checkpoint_storage, name, train_loop, loop_config, callbacks)
        result = trainer.fit()
        best = result.get_best_checkpoint(config.train.val_metric, config.train.val_mode) if result.best_checkpoints else None
        best_metrics = next((m for c, m in result.best_checkpoints if best is not None and c.path == best.path), {})
        model_uri, registered_uri = (_log_models(tracking_uri, run_id, best, result.checkpoint, run_folder, register) if log_models
                                     else (None, None))
    except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM: the run must not stay RUNNING
        raise _interrupted(interrupt, trainer, tracking_uri, run_id, run_folder, resume) from None
    except BaseException as error:
        if resumed_status is None:
            fail_run(tracking_uri, run_id, error, "FAILED")
        else:  # the run being resumed keeps its status: a failed attempt does not damage it
            fail_run(tracking_uri, run_id, error, resumed_status, tag="daif.resume_failure")
            _remove_if_no_checkpoint(run_folder)
        store_error = _store_error(error)
        if store_error is not None:  # a corrupt shard met by a read task or a worker
            raise UsageError(f"data.path: {str(store_error).splitlines()[0]}") from error  # Ray Data appends lines
        raise
    end_run(tracking_uri, run_id, "FINISHED")
    return TrainResult(
        run_id=run_id,
        model_uri=model_uri,
        best_checkpoint=run_folder.at(best.path).uri if best else None,
        latest_checkpoint=run_folder.at(result.checkpoint.path).uri if result.checkpoint else None,
        metrics=dict(result.metrics or {}),
        best_metrics=dict(best_metrics),
        storage_path=run_folder.uri,
        tracking_uri=tracking_uri,
        registered_uri=registered_uri,
    )


def _interrupted(interrupt: KeyboardInterrupt, trainer, tracking_uri: str, run_id: str, run_folder: storage.Location,
                 resume: str | None) -> Interrupted:
    """Stop the workers, end the run KILLED (a resumed one too: it has moved on) and say where to continue."""
    signum = signal_number(interrupt)
    abort = getattr(trainer, "abort", None)
    if abort is not None:
        abort()
    fail_run(tracking_uri, run_id, Interrupted(signum), "KILLED")
    checkpoint = latest_checkpoint(run_folder)
    if checkpoint is None and resume:
        _remove_if_no_checkpoint(run_folder)
        checkpoint = resume  # no epoch finished since: the checkpoint it resumed from is still the latest
    where = f"continue with: daif train --resume {checkpoint} (same options)" if checkpoint else "no checkpoint was written"
    return Interrupted(signum, f"MLflow run {run_id} ended KILLED; {where}")


def latest_checkpoint(run_folder: str | os.PathLike | storage.Location) -> str | None:
    """The checkpoint (path or URI) of the latest epoch in a Ray run folder that reads whole (a kill may cut one short)."""
    found = []
    for folder in storage.resolve(run_folder).subfolders():
        if not os.path.basename(folder.path).startswith("checkpoint_"):
            continue
        try:
            with storage.local_copy(folder) as directory:
                state, meta = load_checkpoint(directory)
        except (CheckpointError, OSError):  # OSError: a copy in the storage that is not whole either
            continue
        found.append((int(meta.get("epoch", state.get("epoch", -1))), folder.uri))
    return max(found)[1] if found else None


def _store_error(error: BaseException, depth: int = 0) -> StoreError | None:
    """The StoreError under a Ray wrapper (a read task's RayTaskError, a worker group's failures)."""
    if depth > 8 or error is None or isinstance(error, UsageError):
        return None
    cause = getattr(error, "cause", None)  # RayTaskError: the exception the task raised
    if isinstance(error, StoreError) and not isinstance(cause, BaseException):
        return error
    inner = [cause, error.__cause__, getattr(error, "controller_failure", None),
             *(getattr(error, "worker_failures", None) or {}).values()]
    return next((found for e in inner if isinstance(e, BaseException) and (found := _store_error(e, depth + 1))), None)


def _check_counts(config: Config) -> None:
    """Counts that must be positive: zero is not "the default" (None is, before the config is built)."""
    for key, value in (("train.epochs", config.train.epochs), ("optim.batch_size", config.optim.batch_size),
                       ("scaling.num_workers", config.scaling.num_workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{key}: expected a positive integer, got {value!r}")
    if not config.scaling.cpus_per_worker > 0:
        raise UsageError(f"scaling.cpus_per_worker: expected a positive number, got {config.scaling.cpus_per_worker!r}")


def _open_store(config: Config):
    """The store of data.path, holding the train and validation splits."""
    if not config.data.path:
        raise UsageError("data.path: the rendered store to train on is required (daif render ... --out DIR)")
    try:
        store = open_store(config.data.path)
    except StoreError as error:
        raise UsageError(f"data.path: {error}") from None
    for split in (config.data.train_split, config.data.val_split):
        if split not in store.splits:
            raise UsageError(f"data: {store.path} holds splits {store.splits}; '{split}' is missing")
    _check_renderer_support(config.loss.kernel_size, store)
    return store


def _load_init(config: Config, tracking_uri: str):
    """`train.init_from`'s network (None without it), read through daif.model_io: tensors only, never a pickle."""
    source = config.train.init_from
    if not source:
        return None
    from daif.model_io import load_model

    try:
        return load_model(source, tracking_uri)[0]
    except UsageError as error:
        raise UsageError(f"train.init_from: {error}") from None


def _init_state(config: Config, loaded, depth_range: tuple[float, float], camera) -> dict[str, Any]:
    """`loaded`'s (train.init_from's) weights as numpy arrays, checked against the network this config builds:
    every constructor argument but the depth range and the camera must agree (UsageError naming the first that
    does not)."""
    source = config.train.init_from
    wanted, found = build_model(config, *depth_range, camera).config, loaded.config
    for key in [*found, *(key for key in wanted if key not in found)]:  # the depth heads' options differ
        if key not in ("near", "far", "camera") and wanted.get(key) != found.get(key):
            raise UsageError(f"train.init_from: {source} is a network with {key}={found.get(key)!r}; this config builds "
                             f"{key}={wanted.get(key)!r} (set model.* and loss.kernel_size as it was trained)")
    return {name: tensor.detach().cpu().numpy() for name, tensor in loaded.state_dict().items()}


def _check_renderer_support(kernel_size: int | None, store) -> None:
    """The model must render as the data was made (UsageError otherwise): with stacks our Gaussian renderer made,
    the model's renderer is the store's (loss.kernel_size = the manifest's kernel_size, a window or null); with
    other optics (captured stacks, or the disc and layered PSFs), the model's window must not cap the data's
    largest blur (daif.optics.window_support against the manifest's max_sigma, when it records one)."""
    from daif.optics import window_support

    def name(size: int | None) -> str:
        return f"a {size}x{size} window" if size is not None else "no window (the ladder renderer)"

    if not store.captured and store.psf == "gaussian":
        if kernel_size != store.kernel_size:
            clipped = "" if store.max_sigma is None else f"; the data's blur reaches sigma {float(store.max_sigma):.2f} px"
            raise UsageError(f"loss.kernel_size: the model renders with {name(kernel_size)}, the data in {store.path} was rendered "
                             f"with {name(store.kernel_size)}{clipped}: set loss.kernel_size={store.kernel_size if store.kernel_size else 'null'}")
        return
    if store.max_sigma is not None and window_support(kernel_size) < float(store.max_sigma):
        raise UsageError(f"loss.kernel_size: the model renders with {name(kernel_size)}, which caps blur near sigma {window_support(kernel_size):.2f} px; "
                         f"the stacks in {store.path} ({store.psf if not store.captured else 'captured'}) hold blur up to "
                         f"{float(store.max_sigma):.2f} px: set loss.kernel_size=null (no window)")


def _check_resume(resume: str | None) -> dict[str, Any]:
    """The meta of the checkpoint to resume from, which must read and fit its network (UsageError naming the file),
    before any run is touched."""
    if not resume:
        return {}
    if not storage.check(resume, "resume").is_dir():
        raise UsageError(f"resume: {resume} is not a checkpoint directory (state.pt and meta.json, as `daif train` prints)")
    with storage.local_copy(resume) as directory:
        try:
            _, meta = load_checkpoint_model(directory)
        except CheckpointError as error:
            raise CheckpointError(f"resume: {str(error).replace(directory, resume)}") from None
    return meta


def _check_resume_store(resume: str | None, meta: dict[str, Any], store) -> None:
    """A warning when the checkpoint to resume from was trained on another store."""
    if resume and meta.get("manifest_hash") != store.manifest_hash:
        print(f"WARNING: {resume} was trained on a store with another manifest than {store.path}")


def _resume_run(tracking_uri: str, run_id: str, resume: str, meta: dict[str, Any]) -> str:
    """Reopen the MLflow run a checkpoint belongs to; returns the status it had (restored if the resume fails)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri)
    try:
        status = client.get_run(run_id).info.status
    except MlflowException:
        raise UsageError(
            f"resume: {resume} belongs to MLflow run {run_id}, which is not in {tracking_uri}; "
            "give the --tracking-uri it was trained with"
        ) from None
    client.update_run(run_id, status="RUNNING")
    print(f"resuming MLflow run {run_id} (was {status}) from {resume}, after epoch {meta.get('epoch')}", flush=True)
    return status


def _remove_if_no_checkpoint(folder: storage.Location) -> None:
    """Remove the Ray run folder a failed attempt created, unless a checkpoint made it there."""
    try:
        if folder.is_dir() and not any(os.path.basename(f.path).startswith("checkpoint") for f in folder.subfolders()):
            folder.delete()
    except OSError:  # the storage itself may be the failure: the folder stays
        pass


def _datasets(config: Config, store_path: str) -> dict[str, Any]:
    import ray

    ray.data.DataContext.get_current().execution_options.preserve_order = True  # reproducible batches
    return {"train": _read(store_path, config.data.train_split), "val": _read(store_path, config.data.val_split)}


def _in_process_trainer(config: Config, store_path: str, run_folder: storage.Location, train_loop, loop_config: dict[str, Any],
                        on_report):
    from daif.train.local import InProcessTrainer

    if config.scaling.num_workers != 1:
        raise UsageError(f"scaling.num_workers: in-process training runs one worker, got {config.scaling.num_workers}")
    return InProcessTrainer(
        train_loop, loop_config, _datasets(config, store_path), run_folder,
        config.train.val_metric, config.train.val_mode, on_report=on_report, experiment_name=os.path.basename(run_folder.path),
    )


def _trainer(config: Config, store_path: str, checkpoint_storage: storage.Location, name: str, train_loop: Callable[[dict], None],
             loop_config: dict[str, Any], callbacks=None):
    import ray.train

    from daif.train.rendezvous import TorchConfig

    return _trainer_class()(
        train_loop,
        train_loop_config=loop_config,
        torch_config=TorchConfig(),  # the rendezvous store on 127.0.0.1 when the workers' node is
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.scaling.num_workers,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker={"CPU": config.scaling.cpus_per_worker, **({"GPU": 1} if config.scaling.use_gpu else {})},
            placement_strategy=config.scaling.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=checkpoint_storage.path,  # with its filesystem: Ray writes where daif reads
            storage_filesystem=checkpoint_storage.filesystem,
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1,  # the best by the validation metric; Ray always keeps the latest too
                checkpoint_score_attribute=config.train.val_metric,
                checkpoint_score_order=config.train.val_mode,
            ),
            failure_config=ray.train.FailureConfig(max_failures=config.scaling.max_failures),
            callbacks=list(callbacks or []) or None,
        ),
        datasets=_datasets(config, store_path),
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),  # rank 0 validates on the whole split
    )


@functools.cache
def _trainer_class():
    from ray.train.torch import TorchTrainer

    class AbortableTrainer(TorchTrainer):
        """A TorchTrainer whose Ctrl-C is daif.signals': Ray Train's own SIGINT handler (registered by `fit` in the
        main thread, a private hook) aborts and calls sys.exit, which ended runs FAILED. Here the interrupt leaves
        `fit` and the driver calls `abort`, Ray Train's graceful stop of the controller and its workers."""

        controller = None

        def _register_sigint_handler(self, controller):
            self.controller = controller

        def abort(self, timeout_s: float = 30.0) -> None:
            import ray

            if self.controller is None:
                return
            try:
                ray.get(self.controller.abort.remote(), timeout=timeout_s)
            except Exception:  # noqa: BLE001 - the controller exits inside abort: RayActorError is its normal answer
                pass

    return AbortableTrainer


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


def _log_models(tracking_uri: str, run_id: str | None, best, latest, run_folder: storage.Location,
                register: str | None = None) -> tuple[str | None, str | None]:
    """Log the best model (loadable by `daif predict`), registered as `register`, and the final one when it is another
    checkpoint (the same weights are not logged twice); return the best's runs:/ URI and its models:/<register>/<version>.
    `run_folder` names the checkpoints as the storage shows them (a URI when it is one)."""
    if not run_id or latest is None:
        return None, None
    from daif.tracking import RunLogger

    logger = RunLogger(tracking_uri, run_id)
    best = best or latest
    models = [(best, "model", register)] + ([(latest, "final_model", None)] if latest.path != best.path else [])
    registered_uri = None
    for checkpoint, name, registered_name in models:
        with checkpoint.as_directory() as directory:
            source = run_folder.at(checkpoint.path).uri
            registered_uri = log_checkpoint_model(logger, name, directory, registered_name, source=source) or registered_uri
    return (f"runs:/{run_id}/model" if logger.ok else None), registered_uri


def log_checkpoint_model(logger, name: str, checkpoint_dir: str, register: str | None = None, source: str | None = None) -> str | None:
    """Log `checkpoint_dir` (a path or a storage URI; from `source`, default itself) as the model `name` of the logger's
    run (daif.tracking.RunLogger), its metadata read from the checkpoint; with `register`, a new version of that
    registered model, whose models:/ URI is returned."""
    from daif.model_io import load_model

    with storage.local_copy(checkpoint_dir) as directory:  # MLflow logs local files
        _, meta = load_model(directory)
        metadata = {k: meta[k] for k in ("camera", "focus_distances", "depth_range", "epoch")}
        info = logger.model(name, directory, metadata, register, source=source or str(checkpoint_dir))
    version = getattr(info, "registered_model_version", None) if register else None
    return f"models:/{register}/{version}" if version is not None else None
