"""Inputs for the --smoke-test runs of the jobs: a tiny store, an
untrained checkpoint (daif.checkpoint.save_checkpoint) and a small focal stack on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def untrained_checkpoint(directory: str | Path, camera: dict, focus_distances: list[float], depth_range=(0.1, 10.0)) -> str:
    """A checkpoint directory (state.pt + meta.json) of a freshly initialised small DAIF-Net."""
    import torch

    from daif.checkpoint import save_checkpoint
    from daif.model import DAIFNet

    torch.manual_seed(0)
    net = DAIFNet(width=4, levels=2, near=depth_range[0], far=depth_range[1])
    meta = {"camera": camera, "focus_distances": list(focus_distances), "depth_range": list(depth_range)}
    return str(save_checkpoint(directory, net, meta))


def tiny_store(directory: str | Path) -> str:
    """A 10-scene 32x32 synthetic nyuv2-5 store rendered with Ray Data (Ray must be running)."""
    from daif.data.pipeline import render_store

    render_store(out=str(directory), source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=10, shard_size=8)
    return str(directory)


def stack_folder(directory: str | Path, preset: str = "nyuv2-5", size=(48, 64)) -> str:
    """A synthetic scene's focal stack as PNGs plus focus_distances.txt, in `directory`."""
    from PIL import Image

    from daif.data.pipeline import render_scene_stack
    from daif.data.synthetic import make_scene
    from daif.optics import get_preset

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chosen = get_preset(preset)
    scene = make_scene(0, size, (0.8, 7.5))
    stack = render_scene_stack(scene, np.asarray(chosen.focus_distances), chosen.camera)  # (S, H, W, 3) uint8
    for k, image in enumerate(stack):
        Image.fromarray(image).save(directory / f"focus_{k:02d}.png")
    (directory / "focus_distances.txt").write_text("\n".join(f"{f:g}" for f in chosen.focus_distances) + "\n")
    return str(directory)
