"""`daif quickstart`: the whole loop on one machine, on a small synthetic dataset it makes itself.

render (Ray Data) -> train (Ray Train, one CPU worker by default: the paper's DAIF-Net and objective, preset
"quickstart"; `--preset quickstart-search` trains the defocus-search recipe instead) -> evaluate the best
checkpoint (chosen on the validation reconstruction error, no ground truth) against the analytic baseline and
the defocus search, all tracked in the local MLflow store of the working directory: the evaluation run sits in
the training run's experiment, nested under it (tag mlflow.parentRunId) and tagged daif.training_run_id. Prints
the metrics table, where the model, checkpoints and figures are, and the command that opens the MLflow UI.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

DEFAULT_OUT = "daif-results/quickstart"
PRESETS = ("quickstart", "quickstart-search")
SMOKE_OVERRIDES = ("train.epochs=2", "model.width=4", "model.levels=2")


def quickstart(
    out: str = DEFAULT_OUT,
    scenes: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    tracking_uri: str = "",
    overrides: list[str] = (),
    epochs: int | None = None,
    preset: str = "quickstart",
) -> dict:
    """Render `QUICKSTART_DATA` (or `scenes` scenes of `size`); train with `preset` (`epochs` if given, `overrides`
    after); evaluate the best checkpoint. Returns {"store", "train": TrainResult, "metrics", "out"}."""
    from daif.config import QUICKSTART_DATA, load_config
    from daif.data.pipeline import render_store
    from daif.errors import UsageError
    from daif.evaluate import evaluate
    from daif.runtime import check_training_cpus, ray_session
    from daif.signals import interrupts_raise
    from daif.train.driver import train

    if preset not in PRESETS:
        raise UsageError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    out_dir = Path(out).resolve()
    scenes, size = scenes or QUICKSTART_DATA["scenes"], size or QUICKSTART_DATA["size"]
    shared = [f"data.path={out_dir / 'store'}", f"train.seed={seed}", f"tracking.storage={out_dir / 'runs'}",
              f"tracking.tracking_uri={tracking_uri}", *([f"train.epochs={epochs}"] if epochs else []), *overrides]
    try:
        config = load_config(preset=preset, overrides=shared)
    except ValueError as error:  # a --set key or value; config.py names it
        raise UsageError(str(error)) from None
    check_training_cpus(config.scaling)
    started = time.perf_counter()
    # the Ray it starts is stopped before the summary; SIGINT / SIGTERM raise daif.signals.Interrupted (after ray.init,
    # whose handler they replace), and training ends its run KILLED
    with ray_session(), interrupts_raise(signal.SIGINT, signal.SIGTERM):
        print(f"[1/3] rendering {scenes} synthetic scenes ({size[0]}x{size[1]}, camera {QUICKSTART_DATA['camera_preset']}) with Ray Data")
        summary = render_store(out=str(out_dir / "store"), source="synthetic", preset=QUICKSTART_DATA["camera_preset"],
                               size=size, scenes=scenes, seed=seed, shard_size=QUICKSTART_DATA["shard_size"],
                               kernel_size=config.loss.kernel_size)  # the stacks use the model's renderer window
        print(f"      {summary['splits']} in {summary['seconds']:.0f} s")
        print(f"[2/3] training DAIF-Net on Ray Train: {config.scaling.num_workers} CPU worker(s), {config.train.epochs} epochs "
              f"(daif train --preset {preset})")
        result = train(config)
        print("[3/3] evaluating the best checkpoint, the analytic depth-from-focus baseline and the defocus search on the test split")
        evaluation = evaluate(
            [result.best_checkpoint], str(out_dir / "store"), "test", str(out_dir / "evaluation"), tracking_uri=result.tracking_uri,
            experiment=config.tracking.experiment,
        )
        link_evaluation(result.tracking_uri, result.run_id, (evaluation.get("mlflow") or {}).get("run_id"))
    minutes = (time.perf_counter() - started) / 60
    _print_summary(out_dir, result, evaluation, minutes, config.train.val_metric)
    (out_dir / "quickstart.json").write_text(json.dumps({
        "minutes": minutes, "preset": preset, "run_id": result.run_id, "model_uri": result.model_uri,
        "best_checkpoint": result.best_checkpoint, "selected_on": config.train.val_metric,
        "metrics": evaluation.get("methods", evaluation),
    }, indent=2, default=str))
    return {"store": str(out_dir / "store"), "train": result, "metrics": evaluation, "out": str(out_dir)}


def link_evaluation(tracking_uri: str, training_run_id: str | None, evaluation_run_id: str | None) -> None:
    """Nest the evaluation run under the training run (the UI shows it there) and tag both with the other's id."""
    if not training_run_id or not evaluation_run_id or evaluation_run_id == training_run_id:
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    client.set_tag(evaluation_run_id, "mlflow.parentRunId", training_run_id)
    client.set_tag(evaluation_run_id, "daif.training_run_id", training_run_id)
    client.set_tag(training_run_id, "daif.evaluation_run_id", evaluation_run_id)


def _print_summary(out_dir: Path, result, evaluation: dict, minutes: float, selected_on: str) -> None:
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
        verdict = "beats" if model_delta1 > search_delta1 else "does NOT beat"
        print(f"        vs the defocus search {search_delta1:.3f}: the model {verdict} the search")
    print(f"finished in {minutes:.1f} min")
    print(f"results:          {out_dir}")
    print(f"  metrics:        {out_dir / 'evaluation'} (metrics.json, metrics.csv, metrics.md, figures)")
    print(f"  checkpoints:    {result.storage_path}")
    print(f"  best checkpoint {result.best_checkpoint}  (lowest {selected_on}: no ground truth)")
    print(f"MLflow run:       {result.run_id} in {result.tracking_uri}")
    print(f"model URI:        {result.model_uri}   (daif predict --model {result.model_uri} ...)")
    print(f"open the UI with: {ui_command(result.tracking_uri)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.cli import ValuesAction
    from daif.config import QUICKSTART_DATA
    from daif.data.cli import parse_size

    width, height = QUICKSTART_DATA["size"]
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"results directory (default {DEFAULT_OUT})")
    parser.add_argument("--scenes", type=int, help=f"synthetic scenes to render (default {QUICKSTART_DATA['scenes']})")
    parser.add_argument("--size", type=parse_size, help=f"WxH of the rendered images (default {width}x{height})")
    parser.add_argument("--preset", choices=PRESETS, default="quickstart",
                        help="training recipe: quickstart, the paper's DAIF-Net and objective; quickstart-search, the "
                             "defocus-search recipe")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the recipe's)")
    parser.add_argument(
        "--num-workers", type=int,
        help="training workers (default 1; more workers pay off with more cores or GPUs, not on a 2-core laptop)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic scenes, the initialisation and the bins")
    parser.add_argument("--set", dest="overrides", action=ValuesAction, commas=False, default=[], metavar="KEY=VALUE",
                        help="override training config values of the recipe, e.g. --set model.width=8 loss.recon=100")
    parser.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default: ./mlflow.db)")
    parser.add_argument("--smoke-test", action="store_true",
                        help="a tiny run that checks the pipeline (not meant to beat anything)")


def run(args: argparse.Namespace) -> int:
    from daif.errors import UsageError

    for flag, value in (("--scenes", args.scenes), ("--epochs", args.epochs), ("--num-workers", args.num_workers)):
        if value is not None and value < 1:
            raise UsageError(f"{flag}: expected a positive integer, got {value}")
    overrides = list(args.overrides)
    if args.num_workers is not None:
        from daif.config import TRAINING_PRESETS

        # leave Ray Data a share (ray-notes.md): one worker as the preset reserves it, or 0.5-CPU DDP workers
        cpus = TRAINING_PRESETS[args.preset]["scaling"]["cpus_per_worker"] if args.num_workers == 1 else 0.5
        overrides += [f"scaling.num_workers={args.num_workers}", f"scaling.cpus_per_worker={cpus}"]
    scenes, size = args.scenes, args.size
    if args.smoke_test:
        overrides, scenes, size = [*SMOKE_OVERRIDES, *overrides], scenes or 16, size or (32, 32)
    try:
        quickstart(args.out, scenes, size, seed=args.seed, tracking_uri=args.tracking_uri, overrides=overrides,
                   epochs=args.epochs, preset=args.preset)
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: as `daif train` ends them (daif.signals)
        from daif.signals import report_interrupt

        return report_interrupt("quickstart", interrupt, getattr(interrupt, "detail", "") or "no training run was open")
    return 0
