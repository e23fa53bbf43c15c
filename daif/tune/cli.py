"""`daif tune`: search loss scales (or any config keys) with Ray Tune; every trial a whole training run.

    daif tune --data stores/quick --space table4 --epochs 20            # the paper's Table 4 grid
    daif tune --data stores/quick --space space.yaml --search optuna --num-samples 16 --scheduler asha
    daif tune ... --resume                                              # continue a killed search
    daif train --config <out>/best.yaml                                 # train the winner

Bad input (the space, the config, the store, the numbers) is one line naming it, exit status 2,
before Ray starts.
"""

from __future__ import annotations

import argparse
import sys

from daif.config import TRAINING_PRESETS
from daif.errors import UsageError
from daif.signals import report_interrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.cli import ValuesAction, add_deprecated, add_resume_argument

    parser.add_argument("--data", required=True, help="rendered store directory (data.path)")
    parser.add_argument("--preset", choices=sorted(TRAINING_PRESETS), help="a training recipe, every trial's starting point")
    parser.add_argument("--config", help="YAML config file: every trial's starting point")
    parser.add_argument("--set", dest="overrides", action=ValuesAction, commas=False, default=[], metavar="KEY=VALUE",
                        help="override config values of every trial, e.g. --set model.width=8 loss.recon=100")
    parser.add_argument("--space", required=True, help="'table4' (the paper's grid) or a SPACE.yaml of {grid|choice|uniform|loguniform}")
    parser.add_argument("--search", choices=("grid", "optuna"), default="grid", help="Tune's grid, or Optuna's TPE (seeded)")
    parser.add_argument("--num-samples", type=int, default=1, help="grid: repeats of the grid; optuna: number of trials")
    parser.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo", help="asha stops weak trials early (per-epoch metric)")
    parser.add_argument("--max-concurrent", type=int, default=2, help="trials at once")
    parser.add_argument("--epochs", type=int, help="epochs of every trial (train.epochs)")
    parser.add_argument("--cpus-per-trial", type=float, default=0.5,
                        help="CPUs Ray reserves per trial of one worker (0.5 fits two trials and Ray Data's reads on 2 cores)")
    gpu = parser.add_argument("--gpu", nargs="?", type=float, const=1.0, default=0.0, metavar="SHARE",
                              help="train every trial on GPUs, one per worker; a trial of one worker may take a share "
                                   "of one instead, e.g. --gpu 0.5 (two trials per GPU)")
    add_deprecated(parser, "--gpus-per-trial", gpu, nargs=None)
    workers = parser.add_argument("--num-workers", type=int, default=1,
                                  help="training workers of every trial: 1 trains in the trial's own process, more are "
                                       "data-parallel workers on Ray Train")
    add_deprecated(parser, "--workers-per-trial", workers)
    parser.add_argument("--name", default=DEFAULT_NAME, help="the search's name: its folder under --storage and its MLflow run")
    parser.add_argument("--storage", help="folder of the search's state and trial checkpoints: a path, or a URI pyarrow "
                        "opens (file://, s3://bucket/runs, gs://...); on a cluster one every node reaches (default ./runs)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--experiment", default="daif-tune", help="MLflow experiment of the parent and trial runs")
    parser.add_argument("--out", help="folder for table.csv/.md, heatmap.png, best.yaml (default <storage>/<name>/results)")
    add_resume_argument(parser)
    parser.add_argument("--retry-errored", action="store_true", help="with --resume: run the trials that errored again")
    parser.add_argument("--evaluate-best", action="store_true", help="evaluate the best trial's model on the test split")
    parser.add_argument("--log-models", action="store_true", help="log every trial's model to MLflow")
    parser.add_argument("--register", metavar="NAME", help="register the best trial's model in the MLflow model registry as "
                        "NAME (logged into that trial's run if --log-models did not); use it as --model models:/NAME/latest")
    parser.add_argument("--min-depth-gain", type=float, default=None,
                        help="a trial is 'collapsed' when flattening its depth to each image's mean raises its validation "
                             "reconstruction error by less than this fraction (default 0.2; 0 turns the test off)")
    parser.add_argument("--seed", type=int, help="seeds every trial's training (train.seed: the same initialisation and "
                        "draws in every cell, so cells differ by their settings alone) and Optuna's sampler (default: "
                        "train.seed of the config, 0)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray started here (default: all)")


DEFAULT_NAME = "daif-tune"
MAX_TRIALS = 1000  # trials one search may make (grid cells x samples): a typo of a grid is not a week of compute


class TuneInputError(UsageError):
    """Bad command-line input to `daif tune`."""


def options_from_args(args: argparse.Namespace):
    """Everything checked and built without Ray: the SearchOptions, or a ValueError naming the input."""
    from daif.config import load_config
    from daif.data.store import open_store
    from daif.runtime import check_cpu_request
    from daif.storage import check as check_storage
    from daif.tune.runner import SearchOptions
    from daif.tune.space import load_space

    for flag, value, low in (("--num-samples", args.num_samples, 1), ("--max-concurrent", args.max_concurrent, 1),
                             ("--num-workers", args.num_workers, 1), ("--epochs", args.epochs, 1)):
        if value is not None and value < low:
            raise TuneInputError(f"{flag}: expected at least {low}, got {value}")
    if not args.cpus_per_trial > 0:
        raise TuneInputError(f"--cpus-per-trial: expected > 0 (Ray rejects 0), got {args.cpus_per_trial}")
    if args.gpu < 0:
        raise TuneInputError(f"--gpu: expected a share >= 0, got {args.gpu:g}")
    if args.retry_errored and args.resume is None:
        raise TuneInputError("--retry-errored: only with --resume")
    if args.min_depth_gain is not None and not args.min_depth_gain >= 0:
        raise TuneInputError(f"--min-depth-gain: expected a value >= 0, got {args.min_depth_gain}")
    if args.register is not None:
        from daif.model_io import check_registered_name

        check_registered_name(args.register)
    if args.resume:
        args.storage, args.name = _search_folder(args.resume, args.storage, args.name)
    if not args.name or "/" in args.name:
        raise TuneInputError(f"--name: expected a plain folder name, got {args.name!r}")
    overrides = [*args.overrides, f"data.path={args.data}"]
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.tracking_uri:
        overrides.append(f"tracking.tracking_uri={args.tracking_uri}")
    if args.gpu > 0:
        overrides.append("scaling.use_gpu=true")
    if args.num_workers > 1:
        overrides.append(f"scaling.num_workers={args.num_workers}")
    base = load_config(args.config, overrides, args.preset)
    per_trial = args.cpus_per_trial if args.num_workers == 1 else 0.1 + args.num_workers * base.scaling.cpus_per_worker
    check_cpu_request(per_trial, args.max_concurrent, f"--max-concurrent {args.max_concurrent} trials of {per_trial:g} CPUs",
                      "lower --max-concurrent or --cpus-per-trial, or give Ray more CPUs (--num-cpus)", args.num_cpus)
    space = load_space(args.space, base)
    trials = space.grid_size * args.num_samples
    if trials > MAX_TRIALS:
        raise TuneInputError(f"--space: {space.name} with --num-samples {args.num_samples} makes {trials:,} trials; at most "
                             f"{MAX_TRIALS:,} are run by one search (daif.tune.cli.MAX_TRIALS): narrow the space")
    store = open_store(args.data, verify=False)
    needed = [base.data.train_split, base.data.val_split] + (["test"] if args.evaluate_best else [])
    missing = [s for s in needed if s not in store.splits]
    if missing:
        raise TuneInputError(f"--data: {args.data} holds splits {store.splits}; '{missing[0]}' is missing")
    if args.storage:  # an absolute path (Ray fails late on a relative one) or the URI; StorageError if it cannot be read
        args.storage = check_storage(args.storage).uri
    options = SearchOptions(
        base=base, space=space, search=args.search, num_samples=args.num_samples, scheduler=args.scheduler,
        max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpu,
        workers_per_trial=args.num_workers, name=args.name, storage=args.storage or "", experiment=args.experiment,
        out=args.out or "", resume=args.resume is not None, retry_errored=args.retry_errored, log_models=args.log_models, seed=base.train.seed,
        register=args.register or "",
        **({"min_depth_gain": args.min_depth_gain} if args.min_depth_gain is not None else {}),
    )
    if args.resume is not None:
        from daif.tune.runner import SEARCH_FILE, search_root

        if not (search_root(options) / SEARCH_FILE).exists():
            raise TuneInputError(f"--resume: no search to resume in {search_root(options).uri} (run it once without --resume)")
    return options


def _search_folder(folder: str, storage: str | None, name: str) -> tuple[str, str]:
    """(storage, name) of `--resume FOLDER`: its parent and its own name; TuneInputError if --storage or --name
    say otherwise."""
    if "://" in folder:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(folder)  # a query (s3://bucket/runs/x?region=...) belongs to the storage, not the name
        parent_path, _, own = parts.path.rstrip("/").rpartition("/")
        parent = urlunsplit((parts.scheme, parts.netloc, parent_path, parts.query, ""))
        same_storage = storage is None or storage.rstrip("/") == parent.rstrip("/")
    else:
        from pathlib import Path

        path = Path(folder).resolve()
        parent, own = str(path.parent), path.name
        same_storage = storage is None or "://" not in storage and Path(storage).resolve() == path.parent
    if not same_storage:
        raise TuneInputError(f"--resume: {folder} is not in --storage {storage}; give one of them")
    if name not in (DEFAULT_NAME, own):
        raise TuneInputError(f"--resume: {folder} is not the search --name {name}; give one of them")
    return parent, own


def run(args: argparse.Namespace) -> int:
    from daif.tracking import TrackingUnavailable

    try:
        options = options_from_args(args)
    except (ValueError, TrackingUnavailable) as error:  # SpaceError, StoreError, config errors: the message names them
        print(f"daif tune: error: {error}", file=sys.stderr)
        return 2

    from daif.runtime import check_shared_defaults, ray_session
    from daif.storage import resolve
    from daif.tracking import ui_command
    from daif.tune.runner import run_search

    try:
        with ray_session(args.num_cpus):
            check_shared_defaults(options.storage, options.base.tracking.tracking_uri, "tune")  # a cluster needs both
            result = run_search(options)
            evaluation = _evaluate_best(options, result) if args.evaluate_best and result.best else None
    except (ValueError, TrackingUnavailable) as error:  # e.g. --resume without a search to resume
        print(f"daif tune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: run_search ended its MLflow runs KILLED
        return report_interrupt("tune", interrupt, "the search's MLflow runs ended KILLED; continue with: daif tune --resume (same options)")
    print(resolve(result.paths["table_md"]).read_text())
    counts = {}
    for row in result.rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    print(f"trials: {len(result.rows)} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}) in {result.seconds / 60:.1f} min")
    if result.best:
        keys = ", ".join(f"{k}={result.best[k]}" for k in options.space.keys)
        print(f"best: trial {result.best['trial_id']} ({keys}): {options.base.train.val_metric} {result.best['best']:.4f}")
        print(f"train it:         daif train --config {result.paths['best_yaml']}")
        if options.register:
            print(f"registered model: {result.registered_uri or 'not registered (see the warning above)'}")
    else:
        print("best: no trial trained to completion")
    if evaluation is not None:
        print(f"test split of the best model: delta1 {evaluation.get('delta1')}  ({evaluation['paths']['metrics_md']})")
    print(f"files:            {', '.join(str(p) for p in result.paths.values())}")
    print(f"MLflow parent run: {result.parent_run_id}  ({result.tracking_uri})")
    print(f"open the UI with: {ui_command(result.tracking_uri)}")
    if result.best is None:  # every trial failed, errored, collapsed or was pruned: not a success
        print(f"daif tune: error: no trial of {len(result.rows)} trained to completion; the reasons are in "
              f"{result.paths['table_md']}", file=sys.stderr)
        return 1
    return 0


def _evaluate_best(options, result) -> dict:
    """The best trial's best checkpoint on the test split, into <out>/evaluate-best (uploaded there when the
    output folder is a URI); its `paths` name the files there."""
    from pathlib import Path

    from daif.evaluate import evaluate
    from daif.storage import staged

    out = result.out / "evaluate-best"
    with staged(out) as folder:
        evaluation = evaluate([result.best["best_checkpoint"]], options.base.data.path, "test", str(folder),
                              tracking_uri=result.tracking_uri, log_to_run=result.parent_run_id)
    evaluation["paths"] = {key: (out / str(Path(path).relative_to(folder))).uri for key, path in evaluation["paths"].items()}
    return evaluation
