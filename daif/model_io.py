"""Loading a trained DAIF-Net: from an MLflow model URI or from a training checkpoint directory.

Both give the model (CPU, eval mode) and its metadata: camera (dict), focus_distances (training
stack, metres), depth_range [near, far], epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from daif.checkpoint import is_checkpoint, load_checkpoint_model
from daif.model import DAIFNet

MODEL_URI_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/", "file:", "s3://", "gs://", "http://", "https://")


def load_model(source: str | os.PathLike, tracking_uri: str = "") -> tuple[DAIFNet, dict[str, Any]]:
    """`source`: an MLflow model URI (runs:/<run_id>/model, models:/name/1, ...) or a checkpoint directory
    (holding state.pt and meta.json, as `daif train` prints). MLflow URIs resolve against `tracking_uri`
    (default: MLFLOW_TRACKING_URI, else the local store in the working directory)."""
    text = str(source)
    path = Path(text)
    if path.is_dir() and is_checkpoint(path):
        return load_checkpoint_model(path)
    if path.is_dir() and (path / "MLmodel").exists():
        text = path.resolve().as_uri()
    elif not text.startswith(MODEL_URI_SCHEMES):
        raise ValueError(
            f"model: {text!r} is neither a checkpoint directory (with state.pt) nor an MLflow model URI "
            "such as runs:/<run_id>/model"
        )
    import mlflow
    import mlflow.pytorch

    from daif.tracking import resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    model = mlflow.pytorch.load_model(text, map_location="cpu")
    metadata = mlflow.models.get_model_info(text).metadata or {}
    return model.eval(), dict(metadata)
