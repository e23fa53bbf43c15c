"""`daif render`: render a focal-stack store from an RGB-D source with Ray Data.

Examples:
    daif render --source synthetic --scenes 200 --preset nyuv2-5 --out stores/synthetic
    daif render --source nyuv2-mat --input nyu_depth_v2_labeled.mat --split all --preset nyuv2-dense --out stores/nyuv2-dense
    daif render --source rgbd-folder --input data/nyu --depth-scale 1e3 --out stores/nyu-folder

Options are checked (`check_render_config`) before Ray starts or the store folder is made; bad input
raises `daif.errors.UsageError` (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys

from daif.errors import UsageError


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' (width x height, as the paper writes it) -> (H, W)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"expected at least 8x8, got {text!r}")
    return height, width


def _pair(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in metres such as 1,9, got {text!r}") from None
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.data.pipeline import SPLIT_CHOICES
    from daif.data.registry import SOURCES
    from daif.data.store import DEFAULT_COMPRESSION
    from daif.optics import CAMERA_PRESETS

    parser.add_argument("--source", choices=SOURCES, default="synthetic")
    parser.add_argument("--input", help="the .mat file or folder of the source (not for synthetic)")
    parser.add_argument("--split", choices=list(SPLIT_CHOICES), default="all", help="train also writes a 'val' split")
    parser.add_argument("--preset", choices=sorted(CAMERA_PRESETS), default="nyuv2-5")
    parser.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT, default the preset's (320x240 for NYUv2)")
    parser.add_argument("--out", required=True, help="store directory (shared storage on a cluster)")
    parser.add_argument("--scenes", type=int, help="synthetic: number of scenes (default 100); others: at most N per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=32, help="scenes per shard (one Ray task each)")
    parser.add_argument("--num-focus", type=int, help="number of focus distances, uniform in --focus-range")
    parser.add_argument("--focus-range", type=_pair, help="LOW,HIGH metres, default the preset's range")
    parser.add_argument("--camera", help="override the preset camera: 'f,N,p' in metres")
    parser.add_argument("--kernel-size", type=int, default=7)
    parser.add_argument(
        "--compression", default=DEFAULT_COMPRESSION,
        help=f"none, lzf, gzip or gzip-<level> (default {DEFAULT_COMPRESSION}); gzip-1 keeps real stacks in 69%% of the bytes",
    )
    parser.add_argument("--num-bins", type=int, default=5, help="bins of the dense stack (the input stack size K)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share of the training scenes")
    parser.add_argument("--depth-scale", type=float, default=1e4, help="rgbd-folder: PNG value / scale = metres")
    parser.add_argument("--splits-mat", help="nyuv2-mat: a splits.mat instead of the official split")
    parser.add_argument("--depth-range", type=_pair, help="synthetic: NEAR,FAR metres of the scenes")
    parser.add_argument("--gpu", action="store_true", help="render on GPUs (one per task)")
    parser.add_argument("--cpus-per-task", type=float, default=1.0)


def config_from_args(args: argparse.Namespace):
    from daif.data.pipeline import RenderConfig

    return RenderConfig(
        out=args.out,
        source=args.source,
        input=args.input,
        split=args.split,
        preset=args.preset,
        size=args.size,
        scenes=args.scenes,
        seed=args.seed,
        shard_size=args.shard_size,
        num_focus=args.num_focus,
        focus_range=args.focus_range,
        camera=args.camera,
        kernel_size=args.kernel_size,
        compression=args.compression,
        num_bins=args.num_bins,
        val_fraction=args.val_fraction,
        depth_scale=args.depth_scale,
        splits_mat=args.splits_mat,
        depth_range=args.depth_range,
        gpu=args.gpu,
        cpus_per_task=args.cpus_per_task,
        command=shlex.join(["daif", "render", *sys.argv[1:]]) if sys.argv else None,
    )


def check_render_config(config) -> None:
    """Reject what the Ray workers would fail on, or what would silently mean something else (0 is not
    "the default": None is), before anything starts. Raises UsageError naming the option."""
    from daif.data.store import StoreError, _compression, check_local_path

    def positive_int(flag: str, value, allow_none: bool = True) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{flag}: expected a positive integer, got {value!r}")

    def positive(flag: str, value) -> None:
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{flag}: expected a positive number, got {value!r}")

    def metre_range(flag: str, pair, strict: bool) -> None:
        if pair is None:
            return
        low, high = pair
        ordered = low < high if strict else low <= high
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low and ordered):
            relation = "<" if strict else "<="
            raise UsageError(f"{flag}: expected 0 < LOW {relation} HIGH metres, got {low:g},{high:g}")

    if isinstance(config.kernel_size, bool) or not isinstance(config.kernel_size, int) or config.kernel_size < 1 \
            or config.kernel_size % 2 == 0:
        raise UsageError(f"--kernel-size: expected an odd positive integer (the blur window is centred), got {config.kernel_size!r}")
    try:
        _compression(config.compression)
    except ValueError as error:
        raise UsageError(f"--{error}") from None
    for flag, value in (("--scenes", config.scenes), ("--num-focus", config.num_focus)):
        positive_int(flag, value)
    for flag, value in (("--shard-size", config.shard_size), ("--num-bins", config.num_bins)):
        positive_int(flag, value, allow_none=False)
    positive("--cpus-per-task", config.cpus_per_task)
    positive("--depth-scale", config.depth_scale)
    try:
        check_local_path(config.out)
    except StoreError as error:
        raise UsageError(f"--out: {error}") from None
    if not 0 <= config.val_fraction < 1:
        raise UsageError(f"--val-fraction: expected a number in [0, 1), got {config.val_fraction!r}")
    metre_range("--depth-range", config.depth_range, strict=True)
    metre_range("--focus-range", config.focus_range, strict=False)
    if config.source != "synthetic":
        if not config.input:
            raise UsageError(f"--input: source {config.source!r} needs --input PATH")
        if not os.path.exists(config.input):
            raise UsageError(f"--input: {config.input} does not exist")


def run(args: argparse.Namespace) -> int:
    from daif.data.pipeline import format_summary, render_store
    from daif.data.sources import DataError
    from daif.data.store import StoreError

    config = config_from_args(args)
    check_render_config(config)
    try:
        summary = render_store(config)
    except (DataError, StoreError, ValueError) as error:  # the message names the file, scene or option
        raise UsageError(str(error)) from None
    print(format_summary(summary), flush=True)
    return 0
