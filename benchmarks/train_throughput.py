"""Training throughput on Ray Train: samples/s with 1 and 2 CPU workers (or N GPUs).

Renders a small synthetic store at the given size (5-image nyuv2-5 stacks), then trains DAIF-Net
(paper width 16, 4 levels) for a few epochs per worker count and reads the per-epoch throughput the
training loop reports (`train/samples_per_s`, summed over workers; the first epoch, which includes
numba compilation and worker start-up, is dropped). The split of one step into network, rendering and
loss is benchmarks/model_step.py's job.

    python benchmarks/train_throughput.py [--size 256] [--scenes 24] [--epochs 3] [--workers 1,2] [--gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import mlflow

    from daif.config import load_config
    from daif.data.pipeline import render_store
    from daif.runtime import ensure_ray
    from daif.train.driver import train

    ensure_ray()
    work = Path(tempfile.mkdtemp(prefix="daif-bench-train-"))
    render_store(out=str(work / "store"), source="synthetic", preset="nyuv2-5", size=(args.size, args.size),
                 scenes=args.scenes, shard_size=8, seed=0)
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        config = load_config(preset="nyuv2-5", overrides=[
            f"data.path={work / 'store'}", f"train.epochs={args.epochs}", f"optim.batch_size={args.batch_size}",
            f"scaling.num_workers={workers}", f"scaling.use_gpu={str(args.gpu).lower()}",
            f"scaling.cpus_per_worker={1 if args.gpu else 0.5}", "train.figures_every=0",
            f"tracking.tracking_uri=sqlite:///{work}/mlflow.db", f"tracking.storage={work}/runs",
        ])
        started = time.perf_counter()
        result = train(config)
        wall = time.perf_counter() - started
        history = mlflow.MlflowClient(result.tracking_uri).get_metric_history(result.run_id, "train/samples_per_s")
        steady = [m.value for m in sorted(history, key=lambda m: m.step)][1:] or [history[-1].value]
        rows.append({"workers": workers, "samples_per_s": sum(steady) / len(steady), "wall_s": wall})
        print(f"{workers} worker(s): {rows[-1]['samples_per_s']:.2f} samples/s (fit {wall:.0f} s)")

    print(f"\nDAIF-Net training, {args.size}x{args.size}, 5-image stacks, batch {args.batch_size}, "
          f"{'GPU' if args.gpu else 'CPU'} workers, {os.cpu_count()} cores")
    print("| workers | samples/s | speed-up |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['samples_per_s']:.2f} | {row['samples_per_s'] / rows[0]['samples_per_s']:.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"size": args.size, "batch_size": args.batch_size, "gpu": args.gpu, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
