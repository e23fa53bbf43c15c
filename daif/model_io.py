"""Loading and logging a trained DAIF-Net without ever unpickling or running code from a model.

A model is a checkpoint directory (`daif.checkpoint`: state.pt read with weights_only=True, meta.json).
An MLflow model logged by daif (`log_model`) is a pyfunc model "from code" (daif/pyfunc_model.py)
whose one artifact is that checkpoint directory, under artifacts/checkpoint. `load_model` downloads
the MLflow model's files (mlflow.artifacts.download_artifacts), reads MLmodel as plain YAML and the
checkpoint artifact as tensors: it never calls mlflow.pyfunc/pytorch.load_model, so neither a
pickle nor the model's code (its pyfunc_model.py and code/daif, for `mlflow.pyfunc.load_model` where daif is not
installed) is ever executed. MLflow models in other formats (the pickle of
mlflow.pytorch) are refused with an error that names the file.

Both sources give the model (CPU, eval mode) and its metadata: camera (dict), focus_distances
(training stack, metres), depth_range [near, far], epoch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from daif.checkpoint import STATE_FILE, CheckpointError, is_checkpoint, load_checkpoint_model
from daif.errors import UsageError
from daif.model import DAIFNet

MODEL_URI_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/", "file:", "s3://", "gs://", "http://", "https://")
TRACKED_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")  # resolved through a tracking store
MODEL_FORMAT = "daif-checkpoint-1"  # MLmodel metadata "daif_format"
CHECKPOINT_ARTIFACT = "checkpoint"
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")


def load_model(source: str | os.PathLike, tracking_uri: str = "") -> tuple[DAIFNet, dict[str, Any]]:
    """`source`: "pretrained" or "pretrained:NAME" (a model shipped with daif, `daif.pretrained`), a checkpoint
    directory (state.pt and meta.json, as `daif train` prints: a path, or a storage URI such as
    file:///runs/<run>/checkpoint_000003 or s3://...), a local MLflow model folder, or an MLflow model
    URI (runs:/<run_id>/model, models:/name/1, ...). URIs resolve against `tracking_uri` (default:
    MLFLOW_TRACKING_URI, else the local store in the working directory).
    Raises UsageError (CheckpointError) naming the source or the file that is refused."""
    from daif import pretrained

    text = str(source)
    if pretrained.is_pretrained(text):
        return pretrained.load(text)
    path = Path(text)
    if path.is_dir():
        if is_checkpoint(path):
            return load_checkpoint_model(path)
        if (path / "MLmodel").is_file():
            return load_model_folder(path)
        raise UsageError(f"model: {text} holds neither state.pt (a checkpoint directory) nor MLmodel (an MLflow model)")
    if not text.startswith(MODEL_URI_SCHEMES):
        raise UsageError(
            f"model: {text!r} is neither a checkpoint directory (with state.pt) nor an MLflow model URI "
            "such as runs:/<run_id>/model"
        )
    if _is_stored_checkpoint(text):
        return _load_stored_checkpoint(text)
    with tempfile.TemporaryDirectory(prefix="daif-model-") as directory:
        folder = download_model(text, tracking_uri, directory)
        return load_model_folder(folder, shown=text)


def _is_stored_checkpoint(uri: str) -> bool:
    """Whether `uri` is a checkpoint directory in a storage (`daif train --storage file://... | s3://...` prints
    such URIs), rather than an MLflow model's location."""
    from daif import storage

    if "://" not in uri or uri.startswith(TRACKED_SCHEMES + ("http://", "https://")):
        return False
    try:
        return (storage.resolve(uri, "model") / STATE_FILE).is_file()
    except (UsageError, OSError):  # not a filesystem pyarrow opens: MLflow may still download it
        return False


def _load_stored_checkpoint(uri: str) -> tuple[DAIFNet, dict[str, Any]]:
    from daif import storage

    with storage.local_copy(uri) as directory:
        try:
            return load_checkpoint_model(directory)
        except CheckpointError as error:
            raise CheckpointError(str(error).replace(directory, uri)) from None


def download_model(uri: str, tracking_uri: str, directory: str) -> Path:
    """The files of the MLflow model `uri`, downloaded into `directory` (nothing is loaded)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from daif.tracking import check_reachable, resolve_tracking_uri

    store = resolve_tracking_uri(tracking_uri)
    if uri.startswith(TRACKED_SCHEMES):
        _check_store_exists(store, uri)
        check_reachable(store)
        mlflow.set_tracking_uri(store)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=directory, tracking_uri=store)
    except MlflowException as error:
        searched = f" in the tracking store {store}" if uri.startswith(TRACKED_SCHEMES) else ""
        raise UsageError(
            f"model: {uri} not found{searched} ({_first_line(error.message)}); give --tracking-uri "
            "(or set MLFLOW_TRACKING_URI) to the store it was logged in, e.g. sqlite:////path/to/mlflow.db"
        ) from None
    except OSError as error:
        raise UsageError(f"model: cannot download {uri} ({error})") from None
    folder = Path(local)
    if not (folder / "MLmodel").is_file():
        raise UsageError(f"model: {uri} is not an MLflow model (no MLmodel file in it)")
    return folder


def _check_store_exists(store: str, uri: str) -> None:
    """A local sqlite store that does not exist cannot hold `uri`: say so instead of creating an empty one."""
    if store.startswith("sqlite:///"):
        database = Path(store[len("sqlite:///") :])
        if not database.is_file():
            raise UsageError(
                f"model: {uri} needs the tracking store it was logged in, and {store} does not exist (searched: "
                "--tracking-uri, else MLFLOW_TRACKING_URI, else mlflow.db in the working directory); give --tracking-uri "
                "sqlite:////path/to/mlflow.db (or http://server:5000), or run from the directory where training ran"
            )


def load_model_folder(folder: str | os.PathLike, shown: str | None = None) -> tuple[DAIFNet, dict[str, Any]]:
    """The network of a local MLflow model folder logged by `log_model`: its MLmodel is read as YAML and
    its checkpoint artifact as tensors; anything else is refused. `shown` names the folder in errors."""
    import yaml

    folder = Path(folder)
    shown = (shown or str(folder)).rstrip("/")
    mlmodel_path = folder / "MLmodel"
    try:
        mlmodel = yaml.safe_load(mlmodel_path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UsageError(f"model: {shown}/MLmodel is not YAML ({_first_line(str(error))})") from None
    if not isinstance(mlmodel, dict):
        raise UsageError(f"model: {shown}/MLmodel is not an MLflow model description")
    flavors = mlmodel.get("flavors") or {}
    metadata = mlmodel.get("metadata") or {}
    if metadata.get("daif_format") != MODEL_FORMAT:
        if "pytorch" in flavors:
            data = (flavors["pytorch"] or {}).get("model_data", "data")
            raise UsageError(
                f"model: {shown}/{data}/model.pth refused: an mlflow.pytorch model is a pickle, and loading it would run "
                "whatever code it holds; daif loads only tensors (a checkpoint directory, or a model logged by daif's "
                "daif.model_io.log_model)"
            )
        raise UsageError(
            f"model: {shown}/MLmodel is not a daif model (expected metadata daif_format: {MODEL_FORMAT} and a "
            f"'{CHECKPOINT_ARTIFACT}' artifact); pass a checkpoint directory or a model logged by daif"
        )
    artifact = ((flavors.get("python_function") or {}).get("artifacts") or {}).get(CHECKPOINT_ARTIFACT) or {}
    relative = str(artifact.get("path", "")) if isinstance(artifact, dict) else ""
    checkpoint = (folder / relative).resolve()
    if not relative or not checkpoint.is_relative_to(folder.resolve()) or not checkpoint.is_dir():
        raise UsageError(f"model: {shown}/MLmodel names checkpoint {relative!r}, which is not a folder inside the model")
    try:
        return load_checkpoint_model(checkpoint)
    except CheckpointError as error:
        raise CheckpointError(str(error).replace(str(folder.resolve()), shown).replace(str(folder), shown)) from None


def log_model(checkpoint_dir: str | os.PathLike, name: str, metadata: dict[str, Any] | None = None,
              registered_model_name: str | None = None):
    """Log the checkpoint directory as the MLflow model `name` of the active run: a pyfunc model from code
    (daif/pyfunc_model.py) whose one artifact is the checkpoint, with a signature, an input example, and the
    daif package as `code_paths`, so `mlflow.pyfunc.load_model` works where only the model's requirements
    (mlflow, torch, numpy, pyyaml) are installed. No pickle is written. `registered_model_name` also registers
    it (a new version of that name). Returns MLflow's ModelInfo."""
    import mlflow
    import mlflow.pyfunc
    import numpy
    import torch

    from daif.tracking import provenance_tags

    _, meta = load_checkpoint_model(checkpoint_dir)  # only a readable checkpoint is logged
    requirements = [f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"numpy=={numpy.__version__}", "pyyaml"]
    with tempfile.TemporaryDirectory(prefix="daif-code-") as directory:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(CODE_FILE),
            artifacts={CHECKPOINT_ARTIFACT: str(checkpoint_dir)},
            code_paths=[str(_copy_package(Path(directory)))],
            pip_requirements=requirements,  # given, so MLflow does not load the model to infer them
            signature=model_signature(),
            input_example=input_example(meta["focus_distances"]),
            metadata={**(metadata or {}), "daif_format": MODEL_FORMAT},
            registered_model_name=registered_model_name,
            tags=provenance_tags(),  # the logged model says which commit and packages made it
        )


def model_signature():
    """Inputs "stack" (B, S, 3, H, W) in [0, 1] and "focus_distances" (B, S) metres; outputs "aif" (B, 3, H, W)
    and "depth" (B, 1, H, W) metres; all float32, any batch, stack size and image size."""
    import numpy
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    float32 = numpy.dtype(numpy.float32)
    return ModelSignature(
        inputs=Schema([TensorSpec(float32, (-1, -1, 3, -1, -1), "stack"), TensorSpec(float32, (-1, -1), "focus_distances")]),
        outputs=Schema([TensorSpec(float32, (-1, 3, -1, -1), "aif"), TensorSpec(float32, (-1, 1, -1, -1), "depth")]),
    )


def input_example(focus_distances, size: int = 8) -> dict[str, Any]:
    """A tiny valid input: one grey size x size stack taken at the training focus distances."""
    import numpy

    focus = numpy.asarray(focus_distances, dtype=numpy.float32)[None]  # (1, S)
    return {"stack": numpy.full((1, focus.shape[1], 3, size, size), 0.5, dtype=numpy.float32), "focus_distances": focus}


def _copy_package(directory: Path) -> Path:
    """The daif package's Python source files, copied to `directory`/daif for `code_paths`: no caches and no data
    files (the pretrained weights stay out of every logged model)."""
    import shutil

    def not_source(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == "__pycache__" or (not n.endswith(".py") and not Path(folder, n).is_dir())]

    source = Path(__file__).parent
    return Path(shutil.copytree(source, directory / source.name, ignore=not_source))


def check_registered_name(name: str, flag: str = "--register") -> str:
    """A registered model name usable in models:/NAME/VERSION URIs; UsageError naming `flag` otherwise."""
    if not name.strip() or "/" in name or name != name.strip():
        raise UsageError(f"{flag}: {name!r} is not a registered model name (non-empty, no '/', no surrounding spaces), "
                         "e.g. --register daif-depth; load it as models:/daif-depth/latest")
    return name


def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0][:300]
