"""Speed and memory of the defocus renderers: the windowed PSF layer (fast path and unfold reference, K = 7
and 11) beside the window-free Gaussian ladder and disc ladder renderers (support max_sigma = 4, 8, 16 px), and
the ladders' accuracy.

Workload (issue 2): a 5-image 320x240 RGB stack, float32, 2 torch threads; sigma uniform in [0, 8] px for
the window, in [0, max_sigma] for the ladder.
Throughput is in stack pixels per second (all 3 channels rendered), from the best of 3 rounds. Peak extra memory is the rise of
the process's resident high-water mark over its level after the inputs were made, measured in a fresh
subprocess per case, as a multiple of the input image tensor (N C H W x 4 bytes).

    python benchmarks/render.py [--device cpu|cuda] [--threads 2] [--only IMPL ...] [--out benchmarks/results/render.json]

--only fast reference ladder disc: time those renderers only (the speed-up lines need both fast and reference).
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


CASES = [("fast", 7), ("reference", 7), ("fast", 11), ("reference", 11), ("ladder", 4), ("ladder", 8), ("ladder", 16),
         ("disc", 4), ("disc", 8), ("disc", 16)]


def _renderer(impl: str, support: int):
    """(render(image, sigma), the largest sigma drawn [px]) for a case: K = support for the window, else max_sigma."""
    from daif.optics import render_defocus, render_defocus_disc, render_defocus_ladder, render_defocus_reference

    if impl == "ladder":
        return (lambda image, sigma: render_defocus_ladder(image, sigma, support)), float(support)
    if impl == "disc":
        return render_defocus_disc, float(support)
    window = render_defocus if impl == "fast" else render_defocus_reference
    return (lambda image, sigma: window(image, sigma, support)), 8.0


def _time_case(impl: str, support: int, mode: str, device: str, repeats: int) -> float:
    import torch

    fn, largest = _renderer(impl, support)
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(N, C, H, W, generator=generator).to(device)
    sigma = (torch.rand(N, 1, H, W, generator=generator) * largest).to(device)  # both branches (sigma <= 1 and above)
    grad = mode == "fwd+bwd"
    image.requires_grad_(grad)
    sigma.requires_grad_(grad)

    def step() -> None:
        if grad:
            fn(image, sigma).sum().backward()
        else:
            with torch.no_grad():
                fn(image, sigma)

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


def _memory_case(impl: str, support: int, mode: str, device: str) -> float:
    """Peak extra bytes of one call, measured in this (fresh) process."""
    import torch

    fn, largest = _renderer(impl, support)
    grad = mode == "fwd+bwd"
    if impl in ("fast", "ladder"):  # compile (or load) the numba kernels outside the measurement, on a tiny input
        tiny = torch.rand(1, C, 8, 8, device=device, requires_grad=grad)
        value = largest if impl == "ladder" else 3.0  # the ladder: every rung, the coarse ones included
        out = fn(tiny, torch.full((1, 1, 8, 8), value, device=device, requires_grad=grad))
        if grad:
            out.sum().backward()
    image = torch.rand(N, C, H, W, device=device, requires_grad=grad)
    sigma = (torch.rand(N, 1, H, W, device=device) * largest).requires_grad_(grad)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        before = _status_bytes("VmRSS")
    out = fn(image, sigma)
    if grad:
        out.sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - before)
    return float(_status_bytes("VmHWM") - before)


def _ladder_accuracy() -> dict[str, float]:
    """The ladder against the direct per-pixel Gaussian sum (render_ladder_reference) on a 24x32 image with
    sigma up to 16 px: max |error| where every sigma is a rung (float32 and float64), and where sigma is drawn
    uniformly (the blend between rungs); the point response's standard deviation at sigma = 16 px (sigma / 2 = 8
    expected), beside the K = 7 window's."""
    import torch

    from daif.optics import render_defocus, render_defocus_ladder
    from daif.optics.ladder import ladder_sigmas, render_ladder_reference

    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 24, 32, generator=generator, dtype=torch.float64)
    rungs = torch.tensor(ladder_sigmas(16.0), dtype=torch.float64)
    on_rungs = rungs[torch.randint(0, len(rungs), (2, 1, 24, 32), generator=generator)]
    drawn = 16.0 * torch.rand(2, 1, 24, 32, generator=generator, dtype=torch.float64)
    reference = render_ladder_reference(image, on_rungs)
    point = torch.zeros(1, 1, 97, 97, dtype=torch.float64)
    point[..., 48, 48] = 1.0
    flat = torch.full_like(point, 16.0)

    def spread(response: torch.Tensor) -> float:  # standard deviation along one axis of a point's response
        profile = response[0, 0].sum(0)
        offsets = torch.arange(97, dtype=torch.float64) - 48
        return float(((profile * offsets**2).sum() / profile.sum()).sqrt())

    return {
        "max error on rungs, float64": float((render_defocus_ladder(image, on_rungs, 16.0) - reference).abs().max()),
        "max error on rungs, float32": float((render_defocus_ladder(image.float(), on_rungs.float(), 16.0).double() - reference).abs().max()),
        "max error between rungs (the blend)": float((render_defocus_ladder(image, drawn, 16.0) - render_ladder_reference(image, drawn)).abs().max()),
        "mean error between rungs (the blend)": float((render_defocus_ladder(image, drawn, 16.0) - render_ladder_reference(image, drawn)).abs().mean()),
        "point std at sigma 16, ladder (8 expected)": spread(render_defocus_ladder(point, flat, 16.0)),
        "point std at sigma 16, K=7 window": spread(render_defocus(point, flat, 7)),
    }


def _disc_accuracy() -> dict[str, float]:
    """The disc ladder against the exact disc of each radius (daif.optics.render_disc, the data renderer, whose
    0.25 px radius grid holds these radii exactly), 5 px inside the frame of a 48x48 image, float64: on a rung
    (4.0 px, the formulas agree) and between rungs (4.25 px, the blend of the 4.0 and 4.5 px discs), as the
    largest and the mean |difference| for values in [0, 1]."""
    import torch

    from daif.optics import render_defocus_disc, render_disc

    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    figures = {}
    for label, radius in (("on a rung, 4.0 px", 4.0), ("between rungs, 4.25 px", 4.25)):
        flat = torch.full((1, 1, 48, 48), radius, dtype=torch.float64)
        error = (render_defocus_disc(image, flat) - render_disc(image, flat))[..., 5:-5, 5:-5].abs()
        figures[f"max error {label}"] = float(error.max())
        figures[f"mean error {label}"] = float(error.mean())
    return figures


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
    parser.add_argument("--only", nargs="+", choices=sorted({impl for impl, _ in CASES}), help="time these renderers only")
    parser.add_argument("--_memory", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args._memory:  # child process of a memory case
        impl, support, mode = args._memory
        print(_memory_case(impl, int(support), mode, args.device))
        return

    input_bytes = N * C * H * W * 4
    pixels = N * H * W
    rows = []
    for impl, support in (case for case in CASES if args.only is None or case[0] in args.only):
        for mode in ("fwd", "fwd+bwd"):
            repeats = max(2, args.repeats // 5) if impl == "reference" else args.repeats
            seconds = _time_case(impl, support, mode, args.device, repeats)
            child = subprocess.run(
                [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                 "--_memory", impl, str(support), mode],
                capture_output=True, text=True, check=True,
            )
            peak = float(child.stdout.strip().splitlines()[-1])
            rows.append({
                "impl": impl, "support": support, "mode": mode, "ms": seconds * 1e3,
                "mpix_per_s": pixels / seconds / 1e6, "peak_extra_mib": peak / 2**20,
                "peak_extra_x_input": peak / input_bytes,
            })
            print(f"done {impl} {support} {mode}", file=sys.stderr)
    accuracy = _ladder_accuracy()
    disc_accuracy = _disc_accuracy()

    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(f"\nrenderers, {N}x{C}x{H}x{W} float32, {device_name}, {args.threads} torch threads, torch {torch.__version__}")
    print("| impl | support (K, or max sigma px) | pass | ms | Mpix/s | peak extra MiB | x input |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['impl']} | {row['support']} | {row['mode']} | {row['ms']:.1f} | {row['mpix_per_s']:.2f} "
              f"| {row['peak_extra_mib']:.1f} | {row['peak_extra_x_input']:.2f} |")
    for kernel_size in (7, 11):
        for mode in ("fwd", "fwd+bwd"):
            fast, ref = (next((r for r in rows if r["impl"] == i and r["support"] == kernel_size and r["mode"] == mode), None)
                         for i in ("fast", "reference"))
            if fast and ref:
                print(f"speed-up K={kernel_size} {mode}: {ref['ms'] / fast['ms']:.0f}x")
    for key, value in accuracy.items():
        print(f"ladder accuracy, {key}: {value:.3g}")
    for key, value in disc_accuracy.items():
        print(f"disc ladder against the exact disc, {key}: {value:.3g}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device_name, "threads": args.threads, "shape": [N, C, H, W], "rows": rows,
                               "ladder_accuracy": accuracy, "disc_accuracy": disc_accuracy}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
