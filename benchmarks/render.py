"""Speed and memory of the defocus renderer: the fast path against the unfold reference.

Workload (issue 2): a 5-image 320x240 RGB stack, float32, K = 7 and 11, 2 torch threads.
Throughput is in stack pixels per second (all 3 channels rendered), from the best of 3 rounds. Peak extra memory is the rise of
the process's resident high-water mark over its level after the inputs were made, measured in a fresh
subprocess per case, as a multiple of the input image tensor (N C H W x 4 bytes).

    python benchmarks/render.py [--device cpu|cuda] [--threads 2] [--out benchmarks/results/render.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

N, C, H, W = 5, 3, 240, 320


def _time_case(impl: str, kernel_size: int, mode: str, device: str, repeats: int) -> float:
    import torch

    from daif.optics import render_defocus, render_defocus_reference

    fn = render_defocus if impl == "fast" else render_defocus_reference
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(N, C, H, W, generator=generator).to(device)
    sigma = (torch.rand(N, 1, H, W, generator=generator) * 8.0).to(device)  # 0..8 px, both branches
    grad = mode == "fwd+bwd"
    image.requires_grad_(grad)
    sigma.requires_grad_(grad)

    def step() -> None:
        if grad:
            fn(image, sigma, kernel_size).sum().backward()
        else:
            with torch.no_grad():
                fn(image, sigma, kernel_size)

    step()  # warm-up: numba compilation, allocator
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(3):  # best of 3 rounds (timeit's habit: the least disturbed by other processes)
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        sync()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def _memory_case(impl: str, kernel_size: int, mode: str, device: str) -> float:
    """Peak extra bytes of one call, measured in this (fresh) process."""
    import torch

    from daif.optics import render_defocus, render_defocus_reference

    fn = render_defocus if impl == "fast" else render_defocus_reference
    grad = mode == "fwd+bwd"
    if impl == "fast":  # compile outside the measurement, on a tiny input
        tiny = torch.rand(1, C, 8, 8, device=device, requires_grad=grad)
        out = fn(tiny, torch.full((1, 1, 8, 8), 3.0, device=device, requires_grad=grad), kernel_size)
        if grad:
            out.sum().backward()
    image = torch.rand(N, C, H, W, device=device, requires_grad=grad)
    sigma = (torch.rand(N, 1, H, W, device=device) * 8.0).requires_grad_(grad)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        before = _status_bytes("VmRSS")
    out = fn(image, sigma, kernel_size)
    if grad:
        out.sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - before)
    return float(_status_bytes("VmHWM") - before)


def _reset_peak_rss() -> None:
    """Reset the resident high-water mark (VmHWM) to the current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/render.json")
    parser.add_argument("--_memory", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args._memory:  # child process of a memory case
        impl, kernel_size, mode = args._memory
        print(_memory_case(impl, int(kernel_size), mode, args.device))
        return

    input_bytes = N * C * H * W * 4
    pixels = N * H * W
    rows = []
    for kernel_size in (7, 11):
        for impl in ("fast", "reference"):
            for mode in ("fwd", "fwd+bwd"):
                repeats = args.repeats if impl == "fast" else max(2, args.repeats // 5)
                seconds = _time_case(impl, kernel_size, mode, args.device, repeats)
                child = subprocess.run(
                    [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                     "--_memory", impl, str(kernel_size), mode],
                    capture_output=True, text=True, check=True,
                )
                peak = float(child.stdout.strip().splitlines()[-1])
                rows.append({
                    "impl": impl, "kernel_size": kernel_size, "mode": mode, "ms": seconds * 1e3,
                    "mpix_per_s": pixels / seconds / 1e6, "peak_extra_mib": peak / 2**20,
                    "peak_extra_x_input": peak / input_bytes,
                })
                print(f"done {impl} K={kernel_size} {mode}", file=sys.stderr)

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(f"\nrender_defocus, {N}x{C}x{H}x{W} float32, {device_name}, {args.threads} torch threads, torch {torch.__version__}")
    print("| impl | K | pass | ms | Mpix/s | peak extra MiB | x input |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['impl']} | {row['kernel_size']} | {row['mode']} | {row['ms']:.1f} | {row['mpix_per_s']:.2f} "
              f"| {row['peak_extra_mib']:.1f} | {row['peak_extra_x_input']:.2f} |")
    for kernel_size in (7, 11):
        for mode in ("fwd", "fwd+bwd"):
            fast, ref = (next(r for r in rows if r["impl"] == i and r["kernel_size"] == kernel_size and r["mode"] == mode)
                         for i in ("fast", "reference"))
            print(f"speed-up K={kernel_size} {mode}: {ref['ms'] / fast['ms']:.0f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device_name, "threads": args.threads, "shape": [N, C, H, W], "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
