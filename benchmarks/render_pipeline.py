"""Benchmark of the rendering pipeline: dense NYUv2-size stacks on 1 and 2 Ray CPUs, compression,
and streaming vs reading the store.

    .venv/bin/python benchmarks/render_pipeline.py [--scenes 12] [--output benchmarks/results/render_pipeline.json]

Synthetic scenes at 320x240 with the nyuv2-dense preset (100 focus distances in [1, 9] m), one scene
per shard so both CPUs get work. Ray start-up and a warm-up render (numba compilation and worker
imports) are not timed. Projection: 1449 NYUv2 scenes at the measured 2-CPU rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

from daif.data.bins import BinSampler, make_batch  # noqa: E402
from daif.data.dataset import read_split  # noqa: E402
from daif.data.pipeline import RenderConfig, render_store  # noqa: E402
from daif.data.store import ShardWriter, open_store, shard_attrs  # noqa: E402
from daif.data.streaming import SCENE_COLUMNS, stream_focal_stacks  # noqa: E402

NYUV2_SCENES = 1449


def timed_render(out: str, scenes: int, num_cpus: int) -> dict:
    ray.init(num_cpus=num_cpus, object_store_memory=600 << 20, include_dashboard=False)
    try:
        warm = RenderConfig(out=out + "-warmup", preset="nyuv2-dense", size=(48, 64), scenes=2 * num_cpus, shard_size=1, val_fraction=0.0)
        render_store(warm)
        load_before = os.getloadavg()[0]
        summary = render_store(RenderConfig(out=out, preset="nyuv2-dense", scenes=scenes, shard_size=1, val_fraction=0.0))
    finally:
        ray.shutdown()
    task_seconds = [shard["seconds"] for shard in open_store(out).manifest["shards"].values()]
    return {
        "num_cpus": num_cpus,
        "scenes": summary["scenes"],
        "seconds": summary["seconds"],
        "scenes_per_s": summary["scenes_per_s"],
        "task_seconds_per_scene": float(np.mean(task_seconds)),  # load, render 100 images, write one shard
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def compression_sizes(path: str, workdir: str) -> dict:
    """Bytes, write and read seconds per scene for lzf (the rendered store) and gzip (re-encoded)."""
    store = open_store(path)
    scenes = [s for split in store.splits for s in store.iter_scenes(split)]
    result = {}
    for compression in ("lzf", "gzip"):
        target = os.path.join(workdir, f"{compression}.h5")
        attrs = shard_attrs(store.camera, store.kernel_size, "synthetic", "train", "benchmark")
        started = time.perf_counter()
        with ShardWriter(target, len(scenes), store.image_size, store.focus_distances, attrs, compression) as writer:
            for scene in scenes:
                writer.add(scene, scene["stack"])
            writer.close()
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        import h5py

        with h5py.File(target, "r") as file:
            for index in range(len(scenes)):
                file["stack"][index]
        read_s = time.perf_counter() - started
        result[compression] = {
            "bytes_per_scene": os.path.getsize(target) / len(scenes),
            "write_s_per_scene": write_s / len(scenes),
            "read_s_per_scene": read_s / len(scenes),
        }
    raw = int(np.prod(store.image_size)) * (3 * (len(store.focus_distances) + 1) + 4 + 1)
    result["uncompressed_bytes_per_scene"] = raw
    return result


def read_throughput(path: str, epochs: int = 3) -> dict:
    """Scenes/s of training batches (5 images per scene) from the dense store vs rendered on the fly."""
    ray.init(num_cpus=2, object_store_memory=600 << 20, include_dashboard=False)
    try:
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
    finally:
        ray.shutdown()
    return {"store_materialized_scenes_per_s": store_rate, "store_from_disk_scenes_per_s": cold_rate, "streaming_scenes_per_s": stream_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "render_pipeline.json"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="daif-bench-")
    try:
        runs = [timed_render(os.path.join(workdir, f"cpus{n}"), args.scenes, n) for n in (1, 2)]
        compression = compression_sizes(os.path.join(workdir, "cpus2"), workdir)
        reading = read_throughput(os.path.join(workdir, "cpus2"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rate = runs[1]["scenes_per_s"]
    result = {
        "setting": "synthetic scenes, 320x240, nyuv2-dense (100 focus distances), kernel 7, lzf, 1 scene per shard",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "render": runs,
        "scaling_2_over_1": rate / runs[0]["scenes_per_s"],
        "compression": compression,
        "reading": reading,
        "projection_nyuv2_1449_scenes": {
            "hours_at_2_cpus": NYUV2_SCENES / rate / 3600,
            "cpu_hours": NYUV2_SCENES / runs[0]["scenes_per_s"] / 3600,
            "lzf_gigabytes": NYUV2_SCENES * compression["lzf"]["bytes_per_scene"] / 1e9,
        },
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as file:
        json.dump(result, file, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
