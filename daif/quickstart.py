"""`daif quickstart`: the whole loop on one machine, on a small synthetic dataset it makes itself.

render (Ray Data) -> train (Ray Train, one CPU worker by default) -> evaluate against the analytic baseline,
all tracked in the local MLflow store of the working directory. Prints the metrics table, where the
model, checkpoints and figures are, and the command that opens the MLflow UI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_OUT = "daif-results/quickstart"

# The loss recipe that trains depth from scratch in minutes (daif/losses.py, daif/search.py): depth learns
# from the defocus search, the per-pixel least coarse reconstruction error over 24 candidate depths, and
# from smoothness; the AIF from the paper's reconstruction with the depth held fixed and from the coarse AIF,
# at scales small enough not to starve depth in the shared decoder. Quickstart test split (delta1, AIF PSNR):
# gradient-only recipe (coarse_recon, soft selection, depth jitter) 0.763, 22.1 dB; search 100: 0.863,
# 21.6 dB; search 300: 0.878, 16.8 dB (the analytic baseline: 0.872; the search alone 0.918).
RECIPE = ("loss.search=300", "loss.recon_trains_depth=false", "loss.recon=10", "loss.aif_recon=1", "loss.aif_blur=0.1")


def quickstart(
    out: str = DEFAULT_OUT,
    scenes: int = 320,
    size: tuple[int, int] = (64, 64),
    epochs: int = 60,
    num_workers: int = 1,
    width: int = 16,
    levels: int = 3,
    batch_size: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    tracking_uri: str = "",
) -> dict:
    """Run render -> train -> evaluate; returns {"store", "train": TrainResult, "metrics": dict, "out"}."""
    from daif.config import load_config
    from daif.data.pipeline import render_store
    from daif.data.store import open_store
    from daif.evaluate import evaluate
    from daif.runtime import ray_session
    from daif.train.driver import train

    out_dir = Path(out).resolve()
    started = time.perf_counter()
    with ray_session():  # the Ray it starts is stopped before the summary
        print(f"[1/3] rendering {scenes} synthetic scenes ({size[0]}x{size[1]}, preset nyuv2-5) with Ray Data")
        summary = render_store(
            out=str(out_dir / "store"), source="synthetic", preset="nyuv2-5", size=size, scenes=scenes, seed=seed, shard_size=32
        )
        print(f"      {summary['splits']} in {summary['seconds']:.0f} s")
        # the model's depth range is the one the scenes were made with (focus range widened by a quarter)
        near, far = open_store(str(out_dir / "store")).manifest["content"]["source"]["depth_range"]

        print(f"[2/3] training DAIF-Net on Ray Train: {num_workers} CPU worker(s), {epochs} epochs")
        config = load_config(
            preset="nyuv2-5",
            overrides=[
                f"data.path={out_dir / 'store'}", f"train.epochs={epochs}", f"train.seed={seed}",
                f"model.width={width}", f"model.levels={levels}", f"model.near={near}", f"model.far={far}",
                f"optim.batch_size={batch_size}", f"optim.lr={lr}",
                # leave Ray Data a CPU (ray-notes.md): one 1-CPU worker, or two 0.5-CPU DDP workers
                f"scaling.num_workers={num_workers}", f"scaling.cpus_per_worker={1.0 if num_workers == 1 else 0.5}",
                f"train.figures_every={max(1, epochs // 3)}", "tracking.experiment=daif-quickstart",
                f"tracking.storage={out_dir / 'runs'}", f"tracking.tracking_uri={tracking_uri}", *RECIPE,
            ],
        )
        result = train(config)

        print("[3/3] evaluating the trained model and the analytic depth-from-focus baseline on the test split")
        evaluation = evaluate(
            [result.best_checkpoint], str(out_dir / "store"), "test", str(out_dir / "evaluation"), tracking_uri=result.tracking_uri
        )
    minutes = (time.perf_counter() - started) / 60
    _print_summary(out_dir, result, evaluation, minutes)
    (out_dir / "quickstart.json").write_text(json.dumps({
        "minutes": minutes, "run_id": result.run_id, "model_uri": result.model_uri,
        "best_checkpoint": result.best_checkpoint, "metrics": evaluation.get("methods", evaluation),
    }, indent=2, default=str))
    return {"store": str(out_dir / "store"), "train": result, "metrics": evaluation, "out": str(out_dir)}


def _print_summary(out_dir: Path, result, evaluation: dict, minutes: float) -> None:
    from daif.tracking import ui_command

    table = (out_dir / "evaluation" / "metrics.md")
    print()
    print(table.read_text() if table.exists() else json.dumps(evaluation, indent=2, default=str))
    model_delta1 = evaluation.get("delta1")
    methods = evaluation.get("methods", {})
    baseline_delta1 = methods.get("baseline", {}).get("image", {}).get("delta1")
    if model_delta1 is not None and baseline_delta1 is not None:
        verdict = "beats" if model_delta1 > baseline_delta1 else "does NOT beat"
        print(f"delta1: DAIF-Net {model_delta1:.3f} vs analytic baseline {baseline_delta1:.3f}: the model {verdict} the baseline")
    search_delta1 = methods.get("search", {}).get("image", {}).get("delta1")
    if model_delta1 is not None and search_delta1 is not None:
        print(f"        the defocus search its `search` loss term distils: {search_delta1:.3f}")
    print(f"finished in {minutes:.1f} min")
    print(f"results:          {out_dir}")
    print(f"  metrics:        {out_dir / 'evaluation'} (metrics.json, metrics.csv, metrics.md, figures)")
    print(f"  checkpoints:    {result.storage_path}")
    print(f"  best checkpoint {result.best_checkpoint}")
    print(f"MLflow run:       {result.run_id} in {result.tracking_uri}")
    print(f"model URI:        {result.model_uri}   (daif predict --model {result.model_uri} ...)")
    print(f"open the UI with: {ui_command(result.tracking_uri)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"results directory (default {DEFAULT_OUT})")
    parser.add_argument("--scenes", type=int, default=320)
    from daif.data.cli import parse_size

    parser.add_argument("--size", type=parse_size, default=(64, 64), help="WxH of the rendered images (default 64x64)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--num-workers", type=int, default=1,
        help="Ray Train workers (default 1: on 2 cores, two DDP workers over gloo train 3.3x slower than one)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic scenes, the initialisation and the bins")
    parser.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default: ./mlflow.db)")
    parser.add_argument("--smoke-test", action="store_true", help="a tiny run in about a minute (not meant to beat anything)")


def run(args: argparse.Namespace) -> int:
    if args.smoke_test:
        quickstart(args.out, scenes=16, size=(32, 32), epochs=2, num_workers=args.num_workers, width=4, levels=2,
                   seed=args.seed, tracking_uri=args.tracking_uri)
    else:
        quickstart(args.out, args.scenes, args.size, args.epochs, args.num_workers, seed=args.seed, tracking_uri=args.tracking_uri)
    return 0
