"""Benchmark of the rendering pipeline: dense NYUv2-size stacks on 1 and 2 Ray CPUs against the bare
renderer on the same scenes and CPUs, and streaming vs reading the store.

    .venv/bin/python benchmarks/render_pipeline.py [--scenes 24] [--shard-size 2] [--repeats 2]
        [--compression none] [--skip-reading] [--output benchmarks/results/render_pipeline.json]

Synthetic scenes at 320x240 with the nyuv2-dense preset (100 focus distances in [1, 9] m). For each CPU
count n: one local Ray with num_cpus=n, a warm-up render (numba's cached kernels, worker imports) that is
not timed, then `--repeats` timed renders of the same scenes into fresh stores. Between the renders, in
this process, the bare renderer renders the same prepared scenes with n torch/numba threads and nothing
else: `render_focal_stack_uint8` (the pipeline's renderer: one fused kernel to uint8) and
`render_focal_stack` (the float renderer, chunks of 25 focus distances). pipeline / bare compares the two
on the same CPUs in the same run; n threads and n Ray workers get the same share of a shared machine.
The 1-minute load average is recorded beside every figure: other processes share these cores.
Projection: 1449 NYUv2 scenes at the measured 2-CPU rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time

import numpy as np
import torch

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")  # a loaded shared machine starts Ray slowly

import ray  # noqa: E402

from daif.data.bins import BinSampler, make_batch  # noqa: E402
from daif.data.dataset import read_split  # noqa: E402
from daif.data.pipeline import RenderConfig, plan_render, render_store  # noqa: E402
from daif.data.sources import prepare_scene  # noqa: E402
from daif.data.store import open_store  # noqa: E402
from daif.data.streaming import SCENE_COLUMNS, stream_focal_stacks  # noqa: E402
from daif.optics import render_focal_stack, render_focal_stack_uint8  # noqa: E402

NYUV2_SCENES = 1449


def bare_render(config: RenderConfig, threads: int) -> dict:
    """Seconds to render the configuration's scenes with the bare renderers, `threads` threads, no I/O."""
    plan = plan_render(config)
    refs = [ref for shard in plan.shards for ref in shard["refs"]]
    scenes = [prepare_scene(plan.source.load(ref), ref["scene_id"], plan.size, plan.clip_range) for ref in refs]
    focus = torch.from_numpy(plan.focus_distances)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    result = {"load_average": os.getloadavg()[0]}
    try:
        for name in ("uint8", "float"):
            started = time.perf_counter()
            for scene in scenes:
                aif = torch.from_numpy(np.ascontiguousarray(scene["aif"].transpose(2, 0, 1))).float() / 255.0
                depth = torch.from_numpy(scene["depth"])[None]
                with torch.no_grad():
                    if name == "uint8":
                        render_focal_stack_uint8(aif, depth, focus, plan.camera, plan.config.kernel_size)
                    else:
                        for start in range(0, len(focus), 25):
                            render_focal_stack(aif[None], depth[None], focus[start : start + 25], plan.camera, plan.config.kernel_size)
            result[f"{name}_seconds"] = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
    return result


def timed_renders(workdir: str, scenes: int, shard_size: int, compression: str, num_cpus: int, repeats: int, reading: bool) -> dict:
    config = RenderConfig(out="", preset="nyuv2-dense", scenes=scenes, shard_size=shard_size, val_fraction=0.0, compression=compression,
                          kernel_size=7)  # the window its recorded figures used
    ray.init(num_cpus=num_cpus, object_store_memory=600 << 20, include_dashboard=False)
    runs, bares = [], [bare_render(config, num_cpus)]
    try:
        warm = RenderConfig(out=os.path.join(workdir, f"warmup-{num_cpus}"), preset="nyuv2-dense", size=(48, 64),
                            scenes=2 * num_cpus, shard_size=1, val_fraction=0.0, compression=compression, kernel_size=7)
        render_store(warm)
        for repeat in range(repeats):
            out = os.path.join(workdir, f"cpus{num_cpus}-{repeat}")
            load_before = os.getloadavg()[0]
            summary = render_store(config, out=out)
            task_seconds = [shard["seconds"] for shard in open_store(out).manifest["shards"].values()]
            runs.append({"seconds": summary["seconds"], "scenes_per_s": summary["scenes_per_s"], "bytes": summary["bytes"],
                         "task_seconds_per_scene": float(np.sum(task_seconds)) / summary["scenes"],
                         "load_average_before": load_before, "load_average_after": os.getloadavg()[0]})
            bares.append(bare_render(config, num_cpus))
            if repeat < repeats - 1:
                shutil.rmtree(out)
        read = {**read_throughput(out), "load_average": os.getloadavg()[0]} if reading else None
    finally:
        ray.shutdown()
    pipeline = statistics.median(r["seconds"] for r in runs)
    bare_uint8 = statistics.median(b["uint8_seconds"] for b in bares)
    bare_float = statistics.median(b["float_seconds"] for b in bares)
    return {
        "num_cpus": num_cpus, "scenes": scenes, "shard_size": shard_size, "compression": compression,
        "pipeline_seconds": pipeline, "scenes_per_s": scenes / pipeline,
        "bare_uint8_seconds": bare_uint8, "bare_float_seconds": bare_float,
        "pipeline_over_bare_uint8": pipeline / bare_uint8, "pipeline_over_bare_float": pipeline / bare_float,
        "runs": runs, "bare": bares, "reading": read,
    }


def read_throughput(path: str, epochs: int = 2) -> dict:
    """Scenes/s of training batches (5 images per scene) from the dense store vs rendered on the fly (running Ray)."""
    store = open_store(path)
    sampler = BinSampler(len(store.focus_distances), 5, "random")
    dense = read_split(path, "train").materialize()
    count, started = 0, time.perf_counter()
    for epoch in range(epochs):
        rng = np.random.default_rng([0, epoch, 0])
        for rows in dense.iter_batches(batch_size=4, batch_format="numpy"):
            batch = make_batch(rows, sampler.draw(rng, len(rows["scene_id"])), store.focus_distances)
            count += batch["stack"].shape[0]
    store_rate = count / (time.perf_counter() - started)
    cold_started = time.perf_counter()
    cold = sum(len(r["scene_id"]) for r in read_split(path, "train").iter_batches(batch_size=4, batch_format="numpy"))
    cold_rate = cold / (time.perf_counter() - cold_started)
    scenes = read_split(path, "train", columns=SCENE_COLUMNS).materialize()
    count, started = 0, time.perf_counter()
    for epoch in range(epochs):
        streamed = stream_focal_stacks(scenes, store.camera, store.focus_distances, 5, seed=0, epoch=epoch)
        for rows in streamed.iter_batches(batch_size=4, batch_format="numpy"):
            batch = make_batch(rows, np.tile(np.arange(5), (len(rows["scene_id"]), 1)), rows["focus_distances"])
            count += batch["stack"].shape[0]
    stream_rate = count / (time.perf_counter() - started)
    return {"store_materialized_scenes_per_s": store_rate, "store_from_disk_scenes_per_s": cold_rate, "streaming_scenes_per_s": stream_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--shard-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--cpus", default="1,2")
    parser.add_argument("--skip-reading", action="store_true")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "render_pipeline.json"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="daif-bench-")
    try:
        counts = [int(n) for n in args.cpus.split(",")]
        runs = [timed_renders(workdir, args.scenes, args.shard_size, args.compression, n, args.repeats,
                              reading=not args.skip_reading and n == counts[-1]) for n in counts]
        reading = runs[-1]["reading"]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rate = runs[-1]["scenes_per_s"]
    result = {
        "setting": f"synthetic scenes, 320x240, nyuv2-dense (100 focus distances), kernel 7, {args.compression}, "
                   f"{args.shard_size} scenes per shard",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "render": runs,
        "scaling": runs[-1]["scenes_per_s"] / runs[0]["scenes_per_s"] if len(runs) > 1 else None,
        "bare_scaling_uint8": runs[0]["bare_uint8_seconds"] / runs[-1]["bare_uint8_seconds"] if len(runs) > 1 else None,
        "reading": reading,
        "projection_nyuv2_1449_scenes": {
            "minutes_at_measured_rate": NYUV2_SCENES / rate / 60,
            "gigabytes": NYUV2_SCENES * runs[-1]["runs"][-1]["bytes"] / args.scenes / 1e9,
        },
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(result, file, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "render"}, indent=2))
    for run in runs:
        print(f"{run['num_cpus']} CPU(s): {run['scenes_per_s']:.2f} scenes/s, pipeline {run['pipeline_seconds']:.1f} s, "
              f"bare uint8 {run['bare_uint8_seconds']:.1f} s ({run['pipeline_over_bare_uint8']:.2f}x), "
              f"bare float {run['bare_float_seconds']:.1f} s ({run['pipeline_over_bare_float']:.2f}x), "
              f"load {[round(r['load_average_before'], 1) for r in run['runs']]}")


if __name__ == "__main__":
    main()
