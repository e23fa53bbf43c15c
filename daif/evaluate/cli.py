"""`daif evaluate`: the command line of daif.evaluate.evaluate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daif._checks import RENDER_PSFS
from daif.evaluate.plan import BATCH_SIZE, DEFAULT_STACK_SIZES, RAY_MIN_SCENES
from daif.evaluate.track import EXPERIMENT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.cli import ValuesAction, add_deprecated

    parser.add_argument("--model", action=ValuesAction, commas=False, required=True, metavar="URI_OR_PATH",
                        help="MLflow model URIs (runs:/<run_id>/model, models:/NAME/latest) or checkpoint directories")
    parser.add_argument("--name", action=ValuesAction, commas=False, default=None,
                        help="a name per --model, in order (default daif-net[-i])")
    parser.add_argument("--data", required=True, help="the rendered store (daif render --out DIR)")
    parser.add_argument("--split", default="test", help="the store's split to evaluate")
    parser.add_argument("--stack-sizes", action=ValuesAction, type=int, default=list(DEFAULT_STACK_SIZES), metavar="K",
                        help="generalisation study: stack sizes to evaluate")
    focus_set = parser.add_argument(
        "--focus-set", dest="focus_sets", action=ValuesAction, type=float, nested=True, default=[], metavar="F",
        help="generalisation study: a focus-distance set [m] to re-render the test stacks at; repeat the flag for another "
             "set, e.g. --focus-set 1 1.5 2.5 4 6 --focus-set 1.2 2 3 5 7",
    )
    add_deprecated(parser, "--focus-sets", focus_set, use="--focus-set F [F ...] once per set")
    parser.add_argument("--max-depth", action=ValuesAction, type=float, default=[], metavar="M",
                        help="add metrics masked to ground truth below each of these depths [m]")
    parser.add_argument("--out", required=True, help="directory for metrics.json/.csv/.md and the generalisation plot")
    parser.add_argument("--backend", choices=("auto", "local", "ray"), default="auto",
                        help=f"Ray Data actors or in-process (auto: Ray from {RAY_MIN_SCENES} scenes)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="stacks per inference batch")
    parser.add_argument("--gpu", action="store_true", help="infer on GPUs, one per inference actor")
    parser.add_argument("--tracking-uri", default="", help="MLflow store (default MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--log-to-run", default=None, metavar="RUN_ID", help="log into this run (default: a new run)")
    parser.add_argument("--experiment", default=EXPERIMENT, help="MLflow experiment of a new run")
    parser.add_argument("--no-tracking", action="store_true", help="write the files only")
    parser.add_argument("--recon-psf", choices=RENDER_PSFS, default="gaussian",
                        help="the PSF of the recon column's re-rendering (no ground truth; default gaussian). Rank models "
                             "with one PSF for all: each model's own favours the models trained through it")


def run(args: argparse.Namespace) -> int:
    from daif.evaluate.core import evaluate
    from daif.tracking import TrackingUnavailable

    try:
        result = evaluate(
            args.model, args.data, args.split, args.out, stack_sizes=args.stack_sizes, focus_sets=args.focus_sets,
            max_depths=args.max_depth, names=args.name, backend=args.backend, batch_size=args.batch_size, use_gpu=args.gpu,
            tracking_uri=args.tracking_uri, log_to_run=args.log_to_run, experiment=args.experiment, track=not args.no_tracking,
            recon_psf=args.recon_psf,
        )
    except (ValueError, TrackingUnavailable) as error:  # bad arguments or data: the message names them
        print(f"daif evaluate: error: {error}", file=sys.stderr)
        return 2
    print(result["markdown"])
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"files: {Path(args.out).resolve()}")
    if result["mlflow"]:
        print(f"MLflow run: {result['mlflow']['run_id']} ({result['mlflow']['tracking_uri']})")
    return 0
