"""The checkpoint format: one directory, tensors and plain values only.

    state.pt     torch.save of {"model": state_dict, "optimizer": state_dict, "step": int, "epoch": int},
                 read with weights_only=True (no pickled objects)
    meta.json    {"model": DAIFNet.config, "camera": ThinLensCamera.to_dict(), "focus_distances": [m],
                  "depth_range": [near, far] m, "epoch", "step", ...training bookkeeping}
    config.yaml  the run's whole config (optional: written by training)

`save_checkpoint` writes it (training, the smoke jobs); `load_checkpoint` and `load_checkpoint_model`
read it (resume, evaluation, prediction).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from daif.model import DAIFNet

STATE_FILE = "state.pt"
META_FILE = "meta.json"
CONFIG_FILE = "config.yaml"


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
    """(state, meta) of a checkpoint directory; tensors only (weights_only=True)."""
    directory = Path(directory)
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    return state, json.loads((directory / META_FILE).read_text())


def load_checkpoint_model(directory: str | os.PathLike) -> tuple[DAIFNet, dict[str, Any]]:
    """The checkpoint's DAIF-Net (CPU, eval mode) and its meta."""
    state, meta = load_checkpoint(directory)
    model = DAIFNet.from_config(meta["model"])
    model.load_state_dict(state["model"])
    return model.eval(), meta
