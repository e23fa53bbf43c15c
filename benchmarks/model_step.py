"""Time of one training step (forward + backward), split into network, rendering and the other loss terms.

Workload (issue 4): B = 4, S = 5, 256x256, float32, CPU, 2 torch threads, DAIF-Net width 16 / 4 levels,
the paper's loss weights, DefocusNet camera and focus distances. Each part is timed on its own with
forward + backward (inputs of the later parts are detached leaves that require grad):
    network    net(stack, focus) and backward of a scalar of both outputs
    rendering  render_focal_stack(aif, depth, focus) and backward
    loss       objective(...) and backward, minus rendering (SSIM, coarse AIF, blurriness, smoothness)
    step       the whole thing end to end (network + objective, one backward)
    search     daif.search.defocus_search over 24 candidates in 0.1..3 m (no backward): the analytic
               search `daif evaluate` reports beside the model (not part of this step)
Times are medians over repeats; the machine's load average is recorded because other processes share it.

    python benchmarks/model_step.py [--threads 2] [--repeats 5] [--out benchmarks/results/model_step.json]

`--quickstart SIZE` times instead the whole training step of the quickstart's workload (DAIF-Net width 16,
3 levels, batch 8, 5-image nyuv2-5 stacks at SIZE x SIZE, the `quickstart` training preset's loss, AdamW) with
`--threads` threads and `--variant` plain | channels_last | compile, in wall and CPU seconds, and prints
the loss of each timed step (equal results: the same seed gives the same curve):

    python benchmarks/model_step.py --quickstart 64 --threads 1 --variant channels_last
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

B, S, H, W = 4, 5, 256, 256


def _median_time(step, repeats: int) -> float:
    step()  # warm-up: numba compilation, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def quickstart_step(size: int, threads: int, repeats: int, variant: str) -> dict:
    """Wall and CPU seconds of one quickstart training step (module docstring), median of `repeats`."""
    import torch

    from daif.config import load_config
    from daif.optics import get_preset, render_focal_stack
    from daif.train.loop import build_model, forward_objective

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = load_config(preset="quickstart")
    preset = get_preset("nyuv2-5")
    batch, near, far = 8, 0.75, 7.5
    generator = torch.Generator().manual_seed(0)
    focus = torch.tensor(preset.focus_distances, dtype=torch.float32).expand(batch, -1).contiguous()
    with torch.no_grad():
        depth = 1.0 + 5.0 * torch.rand(batch, 1, size, size, generator=generator)
        stack = render_focal_stack(torch.rand(batch, 3, size, size, generator=generator), depth, focus, preset.camera)
    net = build_model(config, near, far, preset.camera)
    if variant == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    model = torch.compile(net) if variant == "compile" else net
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)

    def step() -> float:
        _, result = forward_objective(net, model, stack, focus, preset.camera, config.loss)  # as daif train
        optimizer.zero_grad(set_to_none=True)
        result.total.backward()
        optimizer.step()
        return float(result.total)

    started = time.perf_counter()
    first_loss = step()  # warm-up: numba, allocator, compilation
    warm_up = time.perf_counter() - started
    walls, cpus, losses = [], [], [first_loss]
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        losses.append(step())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall = statistics.median(walls)
    return {"size": size, "threads": threads, "variant": variant, "batch": batch, "warm_up_s": warm_up,
            "wall_s_per_step": wall, "cpu_s_per_step": statistics.median(cpus), "samples_per_s": batch / wall,
            "losses": losses, "load_average_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/model_step.json")
    parser.add_argument("--quickstart", type=int, default=0, help="SIZE: time the quickstart's whole step instead")
    parser.add_argument("--variant", choices=("plain", "channels_last", "compile"), default="plain")
    args = parser.parse_args()
    if args.quickstart:
        print(json.dumps(quickstart_step(args.quickstart, args.threads, args.repeats, args.variant)))
        return

    import torch

    from daif.config import LossConfig
    from daif.losses import objective
    from daif.model import DAIFNet
    from daif.optics import get_preset, render_focal_stack
    from daif.search import defocus_search

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preset = get_preset("defocusnet")
    camera = preset.camera
    net = DAIFNet(width=16, levels=4, near=0.1, far=3.0)
    config = LossConfig()
    stack = torch.rand(B, S, 3, H, W)
    focus = torch.tensor(preset.focus_distances).expand(B, -1)
    with torch.no_grad():
        aif_value, depth_value = net(stack, focus)

    def leaves():
        return aif_value.clone().requires_grad_(True), depth_value.clone().requires_grad_(True)

    def network() -> None:
        net.zero_grad(set_to_none=True)
        aif, depth = net(stack, focus)
        (aif.mean() + depth.mean()).backward()

    def rendering() -> None:
        aif, depth = leaves()
        render_focal_stack(aif, depth, focus, camera, config.kernel_size).mean().backward()

    def loss() -> None:
        aif, depth = leaves()
        objective(stack, focus, aif, depth, camera, config).total.backward()

    def step() -> None:
        net.zero_grad(set_to_none=True)
        aif, depth = net(stack, focus)
        objective(stack, focus, aif, depth, camera, config).total.backward()

    def search() -> None:
        defocus_search(stack, focus, camera, 0.1, 3.0)

    seconds = {name: _median_time(fn, args.repeats) for name, fn in
               (("network", network), ("rendering", rendering), ("loss_with_rendering", loss), ("step", step),
                ("search", search))}
    seconds["loss"] = seconds["loss_with_rendering"] - seconds["rendering"]
    parts = seconds["network"] + seconds["rendering"] + seconds["loss"]
    result = {
        "workload": {"batch": B, "stack_size": S, "height": H, "width": W, "dtype": "float32", "device": "cpu",
                     "threads": args.threads, "repeats": args.repeats, "model": net.config, "loss": vars(config)},
        "seconds": seconds,
        "sum_of_parts_s": parts,
        "rendering_share_of_parts": seconds["rendering"] / parts,
        "rendering_share_of_step": seconds["rendering"] / seconds["step"],
        "goal_rendering_share": 0.25,
        "load_average_1min": os.getloadavg()[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    print(f"one training step, B={B} S={S} {H}x{W}, CPU, {args.threads} threads (median of {args.repeats})")
    print(f"{'part':<12}{'seconds':>10}{'share':>9}")
    for name in ("network", "rendering", "loss"):
        print(f"{name:<12}{seconds[name]:>10.3f}{seconds[name] / parts:>9.1%}")
    print(f"{'sum':<12}{parts:>10.3f}")
    print(f"{'step (e2e)':<12}{seconds['step']:>10.3f}")
    print(f"{'search':<12}{seconds['search']:>10.3f}   (the analytic search, not in this step)")
    print(f"rendering share: {result['rendering_share_of_parts']:.1%} of the parts, "
          f"{result['rendering_share_of_step']:.1%} of the end-to-end step (goal <= 25%); "
          f"load average {result['load_average_1min']:.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
