"""`daif render`: render a focal-stack store from an RGB-D source with Ray Data.

Examples:
    daif render --source synthetic --scenes 200 --camera nyuv2-5 --out stores/synthetic
    daif render --source nyuv2-mat --input nyu_depth_v2_labeled.mat --split all --camera nyuv2-dense --out stores/nyuv2-dense
    daif render --source rgbd-folder --input data/nyu --depth-scale 1e3 --out stores/nyu-folder
    daif render --source focal-stack-folder --input captures --split test --out stores/captured   # stored as given

Options are checked (`daif.data.pipeline.check_render_config`) before Ray starts or the store folder is made; bad input
raises `daif.errors.UsageError` (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from daif.errors import UsageError


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' (width x height, as the paper writes it) -> (H, W), each side at least MIN_IMAGE_SIZE."""
    from daif.data.sources import MIN_IMAGE_SIZE

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    if width < MIN_IMAGE_SIZE or height < MIN_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}, got {text!r}")
    return height, width


def command_line() -> str:
    """This process's command line, recorded in the manifest: `daif render ...` when run as the daif command,
    else the interpreter's own (`python jobs/render.py --smoke-test`, `python -m daif.cli render ...`)."""
    if sys.argv and os.path.basename(sys.argv[0]) == "daif":
        return shlex.join(["daif", *sys.argv[1:]])
    return shlex.join(sys.orig_argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.align import ALIGN_MODES
    from daif.cli import KERNEL_SIZE_HELP, ValuesAction, add_deprecated, window_size
    from daif.config import KERNEL_SIZE
    from daif.data.pipeline import DEFAULT_PRESET, SPLIT_CHOICES
    from daif.data.registry import SOURCES
    from daif.data.store import DEFAULT_COMPRESSION
    from daif.optics import CAMERA_PRESETS

    parser.add_argument("--source", choices=SOURCES, default="synthetic", help="where the scenes come from")
    parser.add_argument("--input", help="the .mat file or folder of the source (not for synthetic)")
    parser.add_argument("--split", choices=list(SPLIT_CHOICES), default="all", help="train also writes a 'val' split")
    camera = parser.add_argument(
        "--camera", action=ValuesAction, commas=False, metavar="CAMERA",
        help=f"a camera preset, {', '.join(sorted(CAMERA_PRESETS))} (its lens, focus distances, size and depth clip), a lens "
             f"'f,N,p' in metres with {DEFAULT_PRESET}'s other settings, or both: PRESET f,N,p (default {DEFAULT_PRESET}); "
             "focal-stack-folder: the lens, which must agree with stack.json's, and the depth clip only",
    )
    add_deprecated(parser, "--preset", camera, nargs=None, choices=sorted(CAMERA_PRESETS))
    parser.add_argument(
        "--size", type=parse_size,
        help="WIDTHxHEIGHT, default the camera preset's (320x240 for NYUv2); focal-stack-folder: default the images' own",
    )
    parser.add_argument("--out", required=True, help="store directory (shared storage on a cluster)")
    parser.add_argument("--scenes", type=int, help="synthetic: number of scenes (default 100); others: at most N per split")
    parser.add_argument("--seed", type=int, default=0, help="seeds the synthetic scenes and the choice of validation scenes")
    parser.add_argument("--shard-size", type=int, default=32, help="scenes per shard (one Ray task each)")
    parser.add_argument("--num-focus", type=int, help="number of focus distances, uniform in --focus-range")
    parser.add_argument("--focus-range", action=ValuesAction, type=float, count=2, metavar=("LOW", "HIGH"),
                        help="metres, default the camera preset's range")
    parser.add_argument("--kernel-size", type=window_size, default=KERNEL_SIZE, help=KERNEL_SIZE_HELP)
    parser.add_argument("--psf", default="gaussian", choices=["gaussian", "disc", "layered"],
                        help="point-spread function of the rendered stacks: gaussian (the model's renderer, --kernel-size), "
                             "disc (a round aperture) or layered (discs with occlusion at depth edges, as a real lens)")
    parser.add_argument(
        "--compression", default=DEFAULT_COMPRESSION,
        help="compression of the stored stacks: none, lzf, gzip or gzip-<level> (gzip: smaller, slower to write)",
    )
    parser.add_argument("--num-bins", type=int, default=5, help="bins of the dense stack (the input stack size K)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share of the training scenes")
    parser.add_argument("--align", choices=ALIGN_MODES, default="scale",
                        help="focal-stack-folder: align each stack for focus breathing (a scale and a shift per image, "
                             "recorded in the store; pixels outside the overlap marked invalid), or none")
    parser.add_argument("--depth-scale", type=float, default=1e4, help="rgbd-folder, focal-stack-folder: PNG value / scale = metres")
    parser.add_argument("--splits-mat", help="nyuv2-mat: a splits.mat instead of the official split")
    parser.add_argument("--depth-range", action=ValuesAction, type=float, count=2, metavar=("NEAR", "FAR"),
                        help="synthetic: metres of the scenes")
    parser.add_argument("--gpu", action="store_true", help="render on GPUs, one per task")
    parser.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs Ray reserves per rendering task")


def preset_and_lens(words: list[str] | None) -> tuple[str | None, str | None]:
    """--camera's words as (preset name, lens 'f,N,p'), each None when not given."""
    from daif.optics import CAMERA_PRESETS

    words = words or []
    presets = [w for w in words if w in CAMERA_PRESETS]
    lenses = [w for w in words if w not in CAMERA_PRESETS]
    if len(presets) > 1 or len(lenses) > 1:
        raise UsageError(f"--camera: expected a preset, a lens f,N,p or PRESET f,N,p, got {' '.join(words)}")
    return (presets or [None])[0], (lenses or [None])[0]


def config_from_args(args: argparse.Namespace):
    from daif.data.pipeline import RenderConfig

    preset, camera = preset_and_lens(args.camera)
    return RenderConfig(
        out=args.out,
        source=args.source,
        input=args.input,
        split=args.split,
        preset=preset,
        size=args.size,
        scenes=args.scenes,
        seed=args.seed,
        shard_size=args.shard_size,
        num_focus=args.num_focus,
        focus_range=args.focus_range,
        camera=camera,
        kernel_size=args.kernel_size,
        psf=args.psf,
        align=args.align,
        compression=args.compression,
        num_bins=args.num_bins,
        val_fraction=args.val_fraction,
        depth_scale=args.depth_scale,
        splits_mat=args.splits_mat,
        depth_range=args.depth_range,
        gpu=args.gpu,
        cpus_per_task=args.cpus_per_task,
        command=command_line(),
    )


def run(args: argparse.Namespace) -> int:
    from daif.data.pipeline import format_summary, render_store
    from daif.data.sources import DataError
    from daif.data.store import StoreError

    config = config_from_args(args)
    try:
        summary = render_store(config)  # checks the options first (check_render_config), before Ray
    except (DataError, StoreError, ValueError) as error:  # the message names the file, scene or option
        raise UsageError(str(error)) from None
    print(format_summary(summary), flush=True)
    _note_clipping(summary["path"])
    return 0


def _note_clipping(path: str) -> None:
    """One line when the store's window caps blur the camera makes (the manifest records both)."""
    from daif.data.store import read_manifest
    from daif.optics import window_support

    manifest = read_manifest(path) or {}
    size, largest = manifest.get("kernel_size"), manifest.get("max_sigma")
    if manifest.get("psf", "gaussian") == "gaussian" and size is not None and largest is not None and window_support(size) < largest:
        print(f"note: the {size}x{size} window caps blur near sigma {window_support(size):.2f} px; this camera blurs the scenes' depths "
              f"up to {largest:.2f} px (--kernel-size none renders them without a ceiling)", flush=True)
