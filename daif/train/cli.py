"""`daif train`: train DAIF-Net on a rendered store with Ray Train, tracked in MLflow.

The config (file, preset, --set, flags) is built and checked before Ray starts; bad input raises
`daif.errors.UsageError` (one line, exit status 2 from `daif.cli.main`). Ctrl-C or SIGTERM ends the MLflow
run KILLED and prints one line naming the checkpoint to `--resume` from; the exit status is 130 or 143.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from daif.config import TRAINING_PRESETS, load_config
from daif.errors import UsageError
from daif.signals import interrupts_raise, report_interrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.cli import ValuesAction, add_resume_argument

    parser.add_argument("--data", help="rendered store directory (data.path)")
    parser.add_argument("--config", help="YAML config file")
    parser.add_argument("--preset", choices=sorted(TRAINING_PRESETS), help="a training recipe: the paper's fixed 5-stacks "
                        "or robust bins, or the quickstart's")
    parser.add_argument("--set", dest="overrides", action=ValuesAction, commas=False, default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set loss.recon=100 optim.lr=1e-3")
    parser.add_argument("--epochs", type=int, help="training epochs (train.epochs)")
    parser.add_argument("--batch-size", type=int, help="global batch size, split across workers")
    parser.add_argument("--num-workers", type=int, help="training workers, data-parallel on Ray Train (scaling.num_workers)")
    parser.add_argument("--gpu", action="store_true", help="train on GPUs, one per worker, with bf16 autocast")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--experiment", help="MLflow experiment name")
    parser.add_argument("--storage", help="checkpoint storage: a path, or a URI pyarrow opens (file://, s3://bucket/runs, "
                        "gs://...); on a cluster one every node reaches (default ./runs)")
    add_resume_argument(parser)
    parser.add_argument("--init-from", metavar="MODEL", help="fine-tune: start a new run from the weights of 'pretrained', "
                        "a checkpoint directory or an MLflow model URI (train.init_from; same architecture; its depth range unless "
                        "model.near/far are set)")
    parser.add_argument("--register", metavar="NAME", help="register the best model in the MLflow model registry as NAME "
                        "(a new version each run); use it as --model models:/NAME/latest")
    parser.add_argument("--seed", type=int, help="seeds the initialisation and the bins' draws (train.seed)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray started here (default: all)")


def config_from_args(args: argparse.Namespace):
    """The Config the arguments describe; UsageError naming the file, key or flag that is wrong."""
    import yaml

    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--num-workers", args.num_workers),
                        ("--num-cpus", args.num_cpus)):
        if value is not None and value < 1:
            raise UsageError(f"{flag}: expected a positive integer, got {value}")
    if args.config and not Path(args.config).is_file():
        raise UsageError(f"--config: {args.config} is not a file")
    overrides = list(args.overrides)
    flags = {
        "data.path": args.data, "train.epochs": args.epochs, "optim.batch_size": args.batch_size,
        "scaling.num_workers": args.num_workers, "tracking.tracking_uri": args.tracking_uri,
        "tracking.experiment": args.experiment, "tracking.storage": args.storage, "train.init_from": args.init_from,
        "train.seed": args.seed,
    }
    overrides += [f"{key}={value}" for key, value in flags.items() if value is not None]
    if args.gpu:
        overrides.append("scaling.use_gpu=true")
    try:
        return load_config(args.config, overrides, args.preset)
    except (ValueError, yaml.YAMLError) as error:  # config.py names the file or key
        raise UsageError(" ".join(str(error).split())) from None


def resume_checkpoint(resume: str | None, storage_root: str) -> str | None:
    """The checkpoint `--resume [FOLDER]` names (None without --resume): FOLDER itself when it is a checkpoint, the
    latest checkpoint of FOLDER when it is a run folder, and with FOLDER left out the latest checkpoint of the run
    under `storage_root` (default ./runs) whose last checkpoint is the newest. UsageError when there is none."""
    from daif import storage
    from daif.train.driver import default_storage, latest_checkpoint

    if resume is None:
        return None
    if resume:
        run_folder = storage.check(resume, "--resume")
        if not run_folder.is_dir():
            raise UsageError(f"--resume: {resume} is not a checkpoint directory (as `daif train` prints: best checkpoint ...)")
        if not _checkpoints(run_folder):
            return resume  # a checkpoint folder; check_inputs reads it
    else:
        root = storage.check(storage_root or default_storage(), "--storage")
        runs = [(time, folder) for folder in root.subfolders() if (time := _last_checkpoint_time(folder)) is not None]
        if not runs:
            raise UsageError(f"--resume: no run with a checkpoint under {root.uri}; name one: --resume FOLDER")
        run_folder = max(runs, key=lambda item: item[0])[1]
    checkpoint = latest_checkpoint(run_folder)
    if checkpoint is None:
        raise UsageError(f"--resume: {run_folder.uri} holds no checkpoint that reads whole")
    return checkpoint


def _checkpoints(folder) -> list:
    """The checkpoint_* folders of a run folder (a storage.Location), as Ray Train names them."""
    return [checkpoint for checkpoint in folder.subfolders()
            if checkpoint.path.rstrip("/").rsplit("/", 1)[-1].startswith("checkpoint_")]


def _last_checkpoint_time(folder) -> int | None:
    """When the newest checkpoint of a run folder was written (its meta.json, ns); None when it holds none."""
    from daif.checkpoint import META_FILE

    times = [folder.filesystem.get_file_info((checkpoint / META_FILE).path).mtime_ns for checkpoint in _checkpoints(folder)]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def run(args: argparse.Namespace) -> int:
    from daif.runtime import check_shared_defaults, check_training_cpus, ray_session
    from daif.tracking import ui_command
    from daif.train.driver import check_inputs, train

    config = config_from_args(args)
    if args.register is not None:
        from daif.model_io import check_registered_name

        check_registered_name(args.register)
    resume = resume_checkpoint(args.resume, config.tracking.storage)
    check_training_cpus(config.scaling, args.num_cpus)
    check_inputs(config, resume)  # bad input fails here, before Ray starts
    try:
        with interrupts_raise(signal.SIGINT, signal.SIGTERM), ray_session(args.num_cpus):
            check_shared_defaults(config.tracking.storage, config.tracking.tracking_uri, "train")  # a cluster needs both
            result = train(config, resume=resume, register=args.register)  # which handles the signals while a run is open
    except KeyboardInterrupt as interrupt:
        return report_interrupt("train", interrupt, getattr(interrupt, "detail", "") or "before a run started")
    print(f"MLflow run:       {result.run_id}  ({result.tracking_uri})")
    print(f"model URI:        {result.model_uri}")
    if args.register is not None:
        print(f"registered model: {result.registered_uri or 'not registered (see the warning above)'}")
    print(f"best checkpoint:  {result.best_checkpoint}")
    print(f"best {config.train.val_metric}: {result.best_metrics.get(config.train.val_metric)}")
    print(f"open the UI with: {ui_command(result.tracking_uri)}")
    return 0
