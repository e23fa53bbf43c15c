"""The fixed cost of one `daif tune` trial beside its training time, with 1 and 2 concurrent trials.

    python benchmarks/tune_overhead.py [--trials 4] [--torch-trainer] [--out benchmarks/results/tune_overhead.json]

Each trial trains a tiny DAIF-Net (width 4, 2 levels) on a 32x32 14-scene store. The same search of `--trials`
trials runs with 1 and with 3 epochs per trial; its wall time per trial W(E) = F + E * t_epoch gives
t_epoch = (W(3) - W(1)) / 2 and the fixed cost F = (3 W(1) - W(3)) / 2: everything a trial costs beside its
epochs (actor start, store and Ray Data reads, the MLflow runs, the collapse test, teardown, and its share of
the search's own start and outputs). With 2 trials at once, W is the wall time per trial of the search (so F is
the fixed cost the search pays per trial when two overlap). `--torch-trainer` also times trials that each run a
TorchTrainer of 2 DDP workers (`--workers-per-trial 2`), the Train V2 pattern. The load average
(`os.getloadavg()`) is recorded before and after each search: other work on the machine moves every figure.
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


def search(store: str, root: Path, name: str, trials: int, epochs: int, concurrent: int, workers: int) -> dict:
    from daif.config import load_config
    from daif.tune.runner import SearchOptions, run_search
    from daif.tune.space import parse_space

    base = load_config(overrides=[
        f"data.path={store}", "model.width=4", "model.levels=2", "optim.batch_size=4", f"train.epochs={epochs}",
        "train.figures_every=0", f"tracking.tracking_uri=sqlite:///{root}/mlflow.db",
        *([f"scaling.num_workers={workers}", "scaling.cpus_per_worker=0.5"] if workers > 1 else []),
    ])
    space = parse_space({"loss.smooth": {"grid": [float(1 + i) for i in range(trials)]}}, "benchmark", base)
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = run_search(SearchOptions(base=base, space=space, max_concurrent=concurrent, name=name, storage=str(root),
                                      workers_per_trial=workers, cpus_per_trial=0.5, collapse_ratio=0.0, verbose=0))
    wall = time.perf_counter() - started
    return {"name": name, "trials": trials, "epochs": epochs, "concurrent": concurrent, "workers_per_trial": workers,
            "statuses": sorted(r["status"] for r in result.rows), "wall_s": wall, "wall_per_trial_s": wall / trials,
            "trial_seconds": [r["seconds"] for r in result.rows],
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}


def fixed_cost(one: dict, three: dict) -> dict:
    """F and t_epoch from W(1) and W(3) (seconds per trial)."""
    w1, w3 = one["wall_per_trial_s"], three["wall_per_trial_s"]
    return {"concurrent": one["concurrent"], "workers_per_trial": one["workers_per_trial"], "W1_s": w1, "W3_s": w3,
            "epoch_s": (w3 - w1) / 2, "fixed_s": (3 * w1 - w3) / 2,
            "loadavg": [one["loadavg_before"][0], three["loadavg_after"][0]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--torch-trainer", action="store_true", help="also time TorchTrainer trials (2 DDP workers each)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_overhead.json"))
    args = parser.parse_args()

    import ray

    from daif.data.pipeline import render_store

    root = Path(tempfile.mkdtemp(prefix="daif-tune-overhead-"))
    ray.init(num_cpus=2, object_store_memory=400 << 20, include_dashboard=False)
    try:
        store = str(root / "store")
        render_store(out=store, source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=14, shard_size=8, seed=3)
        runs, figures = [], []
        settings = [(c, 1, args.trials) for c in (1, 2)] + ([(1, 2, 2)] if args.torch_trainer else [])
        for concurrent, workers, trials in settings:
            pair = [search(store, root, f"c{concurrent}w{workers}e{e}", trials, e, concurrent, workers) for e in (1, 3)]
            runs += pair
            figures.append(fixed_cost(*pair))
    finally:
        ray.shutdown()
    summary = {"cpus": os.cpu_count(), "figures": figures, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    for f in figures:
        print(f"{f['concurrent']} trial(s) at once, {f['workers_per_trial']} worker(s)/trial: fixed cost {f['fixed_s']:.1f} s/trial, "
              f"epoch {f['epoch_s']:.1f} s (W(1) {f['W1_s']:.1f} s, W(3) {f['W3_s']:.1f} s); load {f['loadavg'][0]:.1f} -> {f['loadavg'][1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
