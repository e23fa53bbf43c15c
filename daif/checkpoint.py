"""The checkpoint format: one directory, tensors and plain values only.

    state.pt     torch.save of {"model": state_dict, "optimizer": state_dict, "step": int, "epoch": int},
                 read with weights_only=True (no pickled objects)
    meta.json    {"model": DAIFNet.config, "camera": ThinLensCamera.to_dict(), "focus_distances": [m],
                  "depth_range": [near, far] m, "epoch", "step", ...training bookkeeping}
    config.yaml  the run's whole config (optional: written by training)

`save_checkpoint` writes it (training, the smoke jobs); `load_checkpoint` and `load_checkpoint_model`
read it (resume, evaluation, prediction). Reading never unpickles an object: state.pt goes through
torch's restricted unpickler (weights_only=True), meta.json through json. Sizes are bounded before
anything is allocated: meta.json at most MAX_META_BYTES, state.pt at most MAX_STATE_BYTES, and the
network meta.json asks for within `daif.config.check_model_size` (it is read and checked before
state.pt). A file that is not such a checkpoint raises `CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from daif.errors import UsageError
from daif.model import DAIFNet

STATE_FILE = "state.pt"
META_FILE = "meta.json"
CONFIG_FILE = "config.yaml"
MAX_META_BYTES = 1 << 20  # a meta.json is a few kB
MAX_STATE_BYTES = 2 << 30  # the largest DAIF-Net (0.45 GB float32) with its Adam state is about 1.4 GB


class CheckpointError(UsageError):
    """A checkpoint directory that cannot be read; the message names the file."""


def is_checkpoint(directory: str | os.PathLike) -> bool:
    return Path(directory, STATE_FILE).is_file()


def save_checkpoint(
    directory: str | os.PathLike,
    net: DAIFNet,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    epoch: int = 0,
    config_yaml: str | None = None,
) -> Path:
    """Write state.pt, meta.json (`meta` plus epoch, step and the model's config) and config.yaml into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {"model": net.state_dict(), "optimizer": optimizer.state_dict() if optimizer else {}, "step": step, "epoch": epoch}
    torch.save(state, directory / STATE_FILE)
    (directory / META_FILE).write_text(json.dumps({**meta, "epoch": epoch, "step": step, "model": net.config}, indent=2))
    if config_yaml is not None:
        (directory / CONFIG_FILE).write_text(config_yaml)
    return directory


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of a checkpoint directory; tensors and plain values only (weights_only=True).
    Raises CheckpointError naming state.pt or meta.json when either is missing or not what it should be."""
    directory = Path(directory)
    _require(directory / STATE_FILE)
    meta = _read_meta(directory / META_FILE)
    return _read_state(directory / STATE_FILE), meta


def _require(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {path} not found; a checkpoint directory holds {STATE_FILE} and {META_FILE}")


def _check_size(path: Path, limit: int) -> None:
    size = path.stat().st_size
    if size > limit:
        raise CheckpointError(f"checkpoint: {path} is {size} bytes; a checkpoint's {path.name} holds at most {limit}")


def _read_state(path: Path) -> dict[str, Any]:
    _require(path)
    _check_size(path, MAX_STATE_BYTES)
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol: torch warns, then refuses below in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure means the file is not a torch.save archive of tensors
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if isinstance(error, pickle.UnpicklingError) and found:  # the restricted unpickler met a callable
            raise CheckpointError(
                f"checkpoint: {path} refused: it holds a pickled {found.group(1)}, not only tensors and plain values "
                "(daif reads checkpoints with weights_only=True and never runs code from them)"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(error))  # torch's reason, without its advice
        first = detail.group(1) if detail else (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"checkpoint: {path} is not a torch.save file of tensors ({type(error).__name__}: {first[:200]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"checkpoint: {path} holds no 'model' state dict (expected {{'model', 'optimizer', 'step', 'epoch'}})")
    return state


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        _check_size(path, MAX_META_BYTES)
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint: {path} not found; a checkpoint directory holds {STATE_FILE} and {META_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint: {path} is not JSON ({error})") from None
    except RecursionError:
        raise CheckpointError(f"checkpoint: {path} is nested too deeply to be a checkpoint's meta.json") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint: {path} must hold a JSON object")
    return meta


def load_checkpoint_model(directory: str | os.PathLike) -> tuple[DAIFNet, dict[str, Any]]:
    """The checkpoint's DAIF-Net (CPU, eval mode) and its meta; CheckpointError names the file that does not fit."""
    directory = Path(directory)
    _require(directory / STATE_FILE)
    meta = _read_meta(directory / META_FILE)
    if not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"checkpoint: {directory / META_FILE} has no 'model' entry (the network's configuration)")
    try:
        model = DAIFNet.from_config(meta["model"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint: {directory / META_FILE} key 'model': {error}") from None
    state = _read_state(directory / STATE_FILE)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise CheckpointError(f"checkpoint: {directory / STATE_FILE} does not fit the network of {META_FILE} ({first})") from None
    return model.eval(), meta
