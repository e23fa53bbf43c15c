"""Speed of the recon term's three renderers on focal stacks from depth: the Gaussian ladder (`loss.psf: gaussian`, no
window), the disc ladder (`disc`) and the soft-layered occlusion-aware renderer (`layered`, daif.optics.soft_layers).

Workloads, float32, 2 torch threads, camera nyuv2-5 at focus 1, 1.5, 2.5, 4, 6 m, depth drawn uniform in inverse
depth over 0.75..7.5 m (per-pixel noise over a smooth ramp):
- "stack 320x240": one scene, 5 images, forward only (what `daif evaluate --recon-psf` does per scene);
- "train 64x64": batch 4, 5 images, forward and backward through image and depth (one training step's recon).
Throughput is stack pixels per second (all 3 channels), from the best of 3 rounds after one warm-up.

    python benchmarks/render_layered.py [--threads 2] [--out benchmarks/results/render_layered.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

PSFS = ("gaussian", "disc", "layered")
FOCUS = (1.0, 1.5, 2.5, 4.0, 6.0)


def _inputs(batch: int, height: int, width: int, grad: bool):
    generator = torch.Generator().manual_seed(0)
    aif = torch.rand(batch, 3, height, width, generator=generator)
    ramp = torch.linspace(0.0, 1.0, width)[None, None, None, :].expand(batch, 1, height, width)
    mix = (0.8 * ramp + 0.2 * torch.rand(batch, 1, height, width, generator=generator)).clamp(0, 1)
    depth = 1.0 / (1 / 0.75 + mix * (1 / 7.5 - 1 / 0.75))
    return aif.requires_grad_(grad), depth.clone().requires_grad_(grad)


def _time(psf: str, batch: int, height: int, width: int, backward: bool) -> float:
    from daif.optics import ThinLensCamera, render_focal_stack

    camera = ThinLensCamera.preset("nyuv2-5")
    aif, depth = _inputs(batch, height, width, backward)
    focus = torch.tensor(FOCUS)

    def once() -> float:
        started = time.perf_counter()
        stack = render_focal_stack(aif, depth, focus, camera, None, psf)
        if backward:
            stack.square().mean().backward()
        return time.perf_counter() - started

    with torch.set_grad_enabled(backward):
        once()
        return min(once() for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/render_layered.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workloads = {"stack 320x240": (1, 240, 320, False), "train 64x64": (4, 64, 64, True)}
    rows = []
    for name, (batch, height, width, backward) in workloads.items():
        for psf in PSFS:
            seconds = _time(psf, batch, height, width, backward)
            pixels = batch * len(FOCUS) * height * width
            rows.append({"workload": name, "psf": psf, "seconds": seconds, "mpix_per_s": pixels / seconds / 1e6, "backward": backward})
            print(f"{name:14s} {psf:9s} {seconds * 1e3:8.1f} ms  {pixels / seconds / 1e6:6.2f} Mpix/s", flush=True)
    Path(args.out).write_text(json.dumps({"threads": args.threads, "focus": FOCUS, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
