"""What each store compression costs and saves on dense stacks of real and synthetic scenes.

    .venv/bin/python benchmarks/compression.py [--rgbd ../shared/data/rgbd-dev] [--synthetic 6]
        [--options none,lzf,gzip-1,gzip-4,gzip-9] [--repeats 3] [--output benchmarks/results/compression.json]

Scenes: the RGB-D frames of `--rgbd` (source rgbd-folder, depth scale 1000: real textures and depth
layouts) and `--synthetic` synthetic scenes, each rendered once with the nyuv2-dense preset (320x240,
100 focus distances, kernel 7) in this process. Every option then writes the same scenes as one shard
with `daif.data.store.ShardWriter` (fsync and SHA-256 included, as the pipeline does) and reads every
stack image back. Per scene: bytes, write seconds, read seconds (medians over `--repeats`, one thread).
Projection for a NYUv2 dense store (1449 scenes): GB at the real frames' size per scene, and the extra
write minutes over `none` on 2 CPUs.
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
from pathlib import Path

import h5py
import numpy as np
import torch

from daif.data import store
from daif.data.pipeline import RenderConfig, plan_render, render_scene_stack
from daif.data.sources import prepare_scene

NYUV2_SCENES = 1449
DEFAULT_RGBD = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd-dev"


def rendered_scenes(config: RenderConfig) -> tuple[list[tuple[dict, np.ndarray]], object]:
    plan = plan_render(config)
    refs = [ref for shard in plan.shards for ref in shard["refs"]]
    scenes = []
    for ref in refs:
        scene = prepare_scene(plan.source.load(ref), ref["scene_id"], plan.size, plan.clip_range)
        scenes.append((scene, render_scene_stack(scene, plan.focus_distances, plan.camera, plan.config.kernel_size)))
    return scenes, plan


def measure(scenes, plan, option: str, workdir: str, repeats: int) -> dict:
    attrs = store.shard_attrs(plan.camera, plan.config.kernel_size, plan.source.name, "train", "benchmark")
    writes, reads, write_cpu, read_cpu = [], [], [], []
    for repeat in range(repeats):
        path = os.path.join(workdir, f"{option}-{repeat}.h5")
        started, cpu = time.perf_counter(), time.process_time()
        with store.ShardWriter(path, len(scenes), plan.size, plan.focus_distances, attrs, option) as writer:
            for scene, stack in scenes:
                writer.add(scene, stack)
            writer.close()
        writes.append(time.perf_counter() - started)
        write_cpu.append(time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        with h5py.File(path, "r") as file:
            for index in range(len(scenes)):
                file["stack"][index]
        reads.append(time.perf_counter() - started)
        read_cpu.append(time.process_time() - cpu)
        with h5py.File(path, "r") as file:
            stack_bytes = file["stack"].id.get_storage_size()
        size = os.path.getsize(path)
        if repeat < repeats - 1:
            os.remove(path)
    raw = sum(stack.nbytes + scene["aif"].nbytes + scene["depth"].nbytes + scene["valid"].nbytes for scene, stack in scenes)
    return {
        "bytes_per_scene": size / len(scenes),
        "ratio_to_raw": size / raw,
        "stack_ratio_to_raw": stack_bytes / sum(stack.nbytes for _, stack in scenes),
        "write_s_per_scene": statistics.median(writes) / len(scenes),
        "read_s_per_scene": statistics.median(reads) / len(scenes),
        "write_cpu_s_per_scene": statistics.median(write_cpu) / len(scenes),  # CPU seconds: less hit by other load
        "read_cpu_s_per_scene": statistics.median(read_cpu) / len(scenes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rgbd", default=str(DEFAULT_RGBD))
    parser.add_argument("--synthetic", type=int, default=6)
    parser.add_argument("--options", default="none,lzf,gzip-1,gzip-4,gzip-9")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "compression.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = args.options.split(",")
    sets = {
        "rgbd-dev": RenderConfig(out="unused", source="rgbd-folder", input=args.rgbd, depth_scale=1000.0, preset="nyuv2-dense",
                                 split="test", val_fraction=0.0, kernel_size=7),
        "synthetic": RenderConfig(out="unused", preset="nyuv2-dense", scenes=args.synthetic, split="train", val_fraction=0.0, kernel_size=7),
    }
    workdir = tempfile.mkdtemp(prefix="daif-bench-compression-", dir=os.environ.get("TMPDIR"))
    result = {"setting": "nyuv2-dense preset, 320x240, 100 focus distances, kernel 7; one shard per set; 1 thread",
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, h5py {h5py.__version__}",
              "sets": {}}
    try:
        for name, config in sets.items():
            scenes, plan = rendered_scenes(config)
            load_before = os.getloadavg()[0]
            rows = {option: measure(scenes, plan, option, workdir, args.repeats) for option in options}
            result["sets"][name] = {"scenes": len(scenes), "load_average_before": load_before,
                                    "load_average_after": os.getloadavg()[0], "options": rows}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    real = result["sets"]["rgbd-dev"]["options"]
    result["projection_nyuv2_1449_scenes_real_frames"] = {
        option: {"gigabytes": NYUV2_SCENES * row["bytes_per_scene"] / 1e9,
                 "extra_write_minutes_on_2_cpus": NYUV2_SCENES * (row["write_s_per_scene"] - real["none"]["write_s_per_scene"]) / 2 / 60}
        for option, row in real.items()
    } if "none" in real else {}
    print("| set | option | MB/scene | of raw | write s/scene (CPU s) | read s/scene (CPU s) | load avg |")
    print("|---|---|---|---|---|---|---|")
    for name, entry in result["sets"].items():
        for option, row in entry["options"].items():
            print(f"| {name} | {option} | {row['bytes_per_scene'] / 1e6:.2f} | {row['ratio_to_raw']:.1%} | "
                  f"{row['write_s_per_scene']:.3f} ({row['write_cpu_s_per_scene']:.3f}) | {row['read_s_per_scene']:.3f} "
                  f"({row['read_cpu_s_per_scene']:.3f}) | {entry['load_average_before']:.1f} |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
