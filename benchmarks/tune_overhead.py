"""The fixed cost of one `daif tune` trial beside its training time, with 1 and 2 concurrent trials.

    python benchmarks/tune_overhead.py [--trials 4] [--epochs 3] [--out benchmarks/results/tune_overhead.json]

Each trial trains a tiny DAIF-Net (width 4, 2 levels) on a 32x32 14-scene store for `--epochs` epochs. Each
in-process trial records when its actor set up, when every epoch ended and when its final result left
(daif.tune.trainables.InProcessTrial). An epoch's training time is the time between two epoch ends; the first
epoch, which also holds the start-up, is counted at the mean of the others. Per trial:
- `train_s` = epochs x the mean epoch;
- `fixed_in_actor_s` = final result - set-up - train_s: store and Ray Data reads, the MLflow run, the collapse test;
- `fixed_s` = the search's wall time per trial (x the trials at once) - train_s: everything else too (actor start,
  Tune, the parent run, the outputs), the figure the target (< 5 s) is about.
The load average (`os.getloadavg()`) is recorded before and after each search: other work on the machine moves
every figure. A first measurement of TorchTrainer trials (`--num-workers 2`) is in docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def search(store: str, root: Path, name: str, trials: int, epochs: int, concurrent: int) -> dict:
    from daif.config import load_config
    from daif.tune.runner import SearchOptions, run_search
    from daif.tune.space import parse_space

    base = load_config(overrides=[
        f"data.path={store}", "model.width=4", "model.levels=2", "optim.batch_size=4", f"train.epochs={epochs}",
        "train.figures_every=0", f"tracking.tracking_uri=sqlite:///{root}/mlflow.db",
    ])
    space = parse_space({"loss.smooth": {"grid": [float(1 + i) for i in range(trials)]}}, "benchmark", base)
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = run_search(SearchOptions(base=base, space=space, max_concurrent=concurrent, name=name, storage=str(root),
                                      cpus_per_trial=0.5, min_depth_gain=0.0, verbose=0))
    wall = time.perf_counter() - started
    per_trial = []
    for row in result.rows:
        final = _final(result.root / f"trial_{row['trial_id']}" / "result.json")
        ends = final["epoch_ends"]
        epoch_s = (ends[-1] - ends[0]) / (len(ends) - 1)
        train_s = epochs * epoch_s
        per_trial.append({"trial_id": row["trial_id"], "status": row["status"], "epoch_s": epoch_s, "train_s": train_s,
                          "fixed_in_actor_s": final["finished_at"] - final["started_at"] - train_s})
    mean = lambda key: sum(t[key] for t in per_trial) / len(per_trial)  # noqa: E731
    wall_per_trial = wall * concurrent / trials
    return {"name": name, "trials": trials, "epochs": epochs, "concurrent": concurrent,
            "statuses": sorted(r["status"] for r in result.rows), "wall_s": wall, "wall_per_trial_s": wall_per_trial,
            "epoch_s": mean("epoch_s"), "train_s": mean("train_s"), "fixed_in_actor_s": mean("fixed_in_actor_s"),
            "fixed_s": wall_per_trial - mean("train_s"), "per_trial": per_trial,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}


def _final(result_json: Path) -> dict:
    lines = [json.loads(line) for line in result_json.read_text().splitlines() if line.strip()]
    return next(r for r in reversed(lines) if "epoch_ends" in r)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_overhead.json"))
    args = parser.parse_args()

    import ray

    from daif.data.pipeline import render_store

    root = Path(tempfile.mkdtemp(prefix="daif-tune-overhead-"))
    ray.init(num_cpus=2, object_store_memory=400 << 20, include_dashboard=False)
    try:
        store = str(root / "store")
        render_store(out=store, source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=14, shard_size=8, seed=3)
        runs = [search(store, root, f"concurrent{c}", args.trials, args.epochs, c) for c in (1, 2)]
    finally:
        ray.shutdown()
    summary = {"cpus": os.cpu_count(), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    for run in runs:
        print(f"{run['concurrent']} trial(s) at once: fixed cost {run['fixed_s']:.1f} s/trial "
              f"({run['fixed_in_actor_s']:.1f} s inside the trial), training {run['train_s']:.1f} s/trial "
              f"({run['epochs']} epochs of {run['epoch_s']:.1f} s); search {run['wall_s']:.0f} s for {run['trials']} trials; "
              f"load {run['loadavg_before'][0]:.1f} -> {run['loadavg_after'][0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
