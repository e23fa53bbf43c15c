"""`daif render-demo`: render one synthetic focal stack and save a montage (stack, depth, defocus maps)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from daif.config import KERNEL_SIZE
from daif.data.synthetic import make_scene
from daif.data.pipeline import render_scene_stack
from daif.optics import defocus_sigma, get_preset
from daif.viz import focal_stack_rows, grid_figure, save_figure


def render_demo(out: str | Path, camera: str = "nyuv2-5", seed: int = 0, kernel_size: int | None = KERNEL_SIZE) -> Path:
    """Render a textured synthetic scene with the camera preset's lens and focus distances; returns the PNG path."""
    setting = get_preset(camera)
    near = max(setting.depth_range[0], setting.focus_distances[0] * 0.7)
    far = min(setting.depth_range[1], setting.focus_distances[-1] * 1.5)
    scene = make_scene(seed, size=setting.image_size, depth_range=(near, far))
    focus = np.asarray(setting.focus_distances, dtype=np.float32)
    if len(focus) > 5:  # a dense preset: show 5 of its images, evenly spread
        focus = focus[np.linspace(0, len(focus) - 1, 5).round().astype(int)]
    stack = render_scene_stack(scene, focus, setting.camera, kernel_size)  # (S, H, W, 3) uint8, as a store holds it
    depth = torch.from_numpy(scene["depth"])[None, None]  # (1, 1, H, W) metres
    sigma = defocus_sigma(depth, torch.from_numpy(focus), setting.camera)[0].numpy()  # (S, H, W)
    rows = focal_stack_rows(stack, focus.tolist(), sigma=sigma)
    rows.append([
        {"image": scene["aif"], "title": "all-in-focus"},
        {"map": scene["depth"], "vmin": near, "vmax": far, "label": "depth [m]", "title": "depth"},
    ])
    figure = grid_figure(rows, title=f"camera {camera}: f={setting.camera.focal_length * 1e3:g} mm, N={setting.camera.f_number:g}")
    return save_figure(figure, Path(out) / "render_demo.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.cli import KERNEL_SIZE_HELP, add_deprecated, window_size
    from daif.optics import CAMERA_PRESETS

    parser.add_argument("--out", required=True, help="output directory")
    camera = parser.add_argument("--camera", choices=sorted(CAMERA_PRESETS), default="nyuv2-5",
                                 help="camera preset: its camera, focus distances and image size")
    add_deprecated(parser, "--preset", camera)
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic scene")
    parser.add_argument("--kernel-size", type=window_size, default=KERNEL_SIZE, help=KERNEL_SIZE_HELP)


def run(args: argparse.Namespace) -> int:
    path = render_demo(args.out, args.camera, args.seed, args.kernel_size)
    print(f"wrote {path}")
    return 0
