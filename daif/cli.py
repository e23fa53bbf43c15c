"""The `daif` command. Each subcommand lives in the module that owns its job and is imported lazily,
so `daif --help` stays fast and Ray is imported only by the subcommands that use it.

A subcommand module provides `add_arguments(parser)` and `run(args) -> int`. Bad input raises
`daif.errors.UsageError`; `main` is the one place that catches it: one line on stderr naming the
file, key or argument, exit status 2, no traceback unless `--debug` or DAIF_DEBUG=1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

DESCRIPTION = (
    "Fully self-supervised depth and all-in-focus estimation from focal stacks (DAIF-Net, CVPR 2023): "
    "render focal-stack datasets, train, evaluate and predict, on Ray and tracked in MLflow."
)
EPILOG = "Run 'daif COMMAND --help' for a command's options. --debug (or DAIF_DEBUG=1) shows the traceback of an error."

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "render-demo": ("daif.demo", "render one synthetic focal stack and save a PNG montage"),
    "render": ("daif.data.cli", "render focal-stack datasets from RGB-D sources with Ray Data"),
    "train": ("daif.train.cli", "train DAIF-Net with Ray Train, tracked in MLflow"),
    "evaluate": ("daif.evaluate", "evaluate a model (and the analytic baseline) on a test split"),
    "predict": ("daif.predict", "predict depth and AIF from your own focal stack"),
    "quickstart": ("daif.quickstart", "render, train, evaluate end to end on a small synthetic dataset"),
    "tune": ("daif.tune.cli", "search loss scales (Table 4) or any config keys with Ray Tune and Optuna"),
    "ui": ("daif.tracking", "start the MLflow UI on 127.0.0.1 for the local store"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daif", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("DAIF_DEBUG", "").lower() in ("1", "true", "yes")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one and its text does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_wanted(argv)
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints usage or the unknown-command error and exits
        return 2
    from daif.errors import UsageError
    from daif.runtime import set_default_environment

    set_default_environment()
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"daif {name}", description=COMMANDS[name][1], epilog=EPILOG,
                                     formatter_class=DefaultsHelpFormatter)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except UsageError as error:
        if debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or type(error).__name__  # one line
        print(f"daif {name}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
