"""The `daif` command. Each subcommand lives in the module that owns its job and is imported lazily,
so `daif --help` stays fast and Ray is imported only by the subcommands that use it.

A subcommand module provides `add_arguments(parser)` and `run(args) -> int`; the options share one vocabulary
(lists, deprecated spellings and --resume, below). Bad input raises
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


def command_parser(name: str) -> tuple[object, argparse.ArgumentParser]:
    """(the subcommand's module, its parser): every subcommand's options with the same help formatter."""
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"daif {name}", description=COMMANDS[name][1], epilog=EPILOG,
                                     formatter_class=DefaultsHelpFormatter)
    module.add_arguments(parser)
    return module, parser


def debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("DAIF_DEBUG", "").lower() in ("1", "true", "yes")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one and its text does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        default = " ".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {default})"

    def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
        count = getattr(action, "count", None)  # a ValuesAction of fixed size, parsed as nargs="+" so that 1,9 still reads
        if count:
            return " ".join(self._metavar_formatter(action, default_metavar)(count))
        return super()._format_args(action, default_metavar)


# ------------------------------------------------------------------ the options' one vocabulary
# Lists are space-separated values (`--stack-sizes 2 3 5`); a list of lists repeats its flag (`--focus-set 1 2
# --focus-set 3 4`). An old spelling stays for one release, hidden from --help, and says so once on stderr.


def window_size(text: str) -> int | None:
    """--kernel-size's value: an integer, or "none" for no window (the ladder renderer)."""
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an odd integer >= 3 or none, got {text!r}") from None


KERNEL_SIZE_HELP = ("the renderer's blur window: none (the default), the ladder renderer, whose blur has no ceiling; or its "
                    "side K in pixels (odd, >= 3; the paper's 7), which caps blur near sigma 0.41 K")


def warn_deprecated(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """One line on stderr naming the spelling to use instead, once per option the user typed (`old`'s first word)."""
    warned = parser.__dict__.setdefault("deprecations_warned", set())
    option = old.split()[0]
    if option not in warned:
        warned.add(option)
        print(f"{parser.prog}: {old} is deprecated, use {new} (it will be removed in the next release)", file=sys.stderr)


class ValuesAction(argparse.Action):
    """Space-separated values, each read by `type`: a flag given again adds to its list (with `nested`, adds one
    more list); `count` values exactly make a tuple that a later flag replaces. The old comma form (`2,3,5`; nested:
    `1,2 3,4`, one list per word) still reads, with one deprecation line; `commas=False` keeps commas in a value."""

    def __init__(self, option_strings, dest, type=str, count: int | None = None, nested: bool = False,
                 commas: bool = True, **kwargs):
        super().__init__(option_strings, dest, nargs="+", **kwargs)
        self.convert, self.count, self.nested, self.commas = type, count, nested, commas

    def __call__(self, parser, namespace, values, option_string=None):
        groups = [list(values)]
        if self.commas and any("," in value for value in values):
            words = [[part for part in value.split(",") if part.strip()] for value in values]
            groups = words if self.nested else [[part for word in words for part in word]]
            new = " ".join(f"{self.option_strings[0]} {' '.join(group)}" for group in groups)
            warn_deprecated(parser, f"{option_string} {' '.join(values)}", new)
        lists = [[self._read(value) for value in group] for group in groups]
        if self.count:
            if len(lists[0]) != self.count:
                expected = " ".join(self.metavar) if isinstance(self.metavar, tuple) else f"{self.count} values"
                raise argparse.ArgumentError(self, f"expected {expected}, got {' '.join(values)}")
            setattr(namespace, self.dest, tuple(lists[0]))
            return
        existing = getattr(namespace, self.dest, None)
        items = [] if existing is None or existing is self.default else list(existing)  # the first flag replaces the default
        setattr(namespace, self.dest, items + (lists if self.nested else lists[0]))

    def _read(self, value: str):
        try:
            return self.convert(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            kind = {int: "an integer", float: "a number"}.get(self.convert, "a value")
            raise argparse.ArgumentError(self, f"expected {kind}, got {value!r}") from None


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, new: argparse.Action, use: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.use = new, use

    def __call__(self, parser, namespace, values, option_string=None):
        warn_deprecated(parser, option_string, self.use)
        if self.nargs is None and self.new.nargs not in (None, "?"):  # one old value into a list option
            values = [values]
        self.new(parser, namespace, values, option_string)


def add_deprecated(parser: argparse.ArgumentParser, old: str, new: argparse.Action, use: str = "", **kwargs) -> None:
    """`old` as a hidden spelling of `new` (the action add_argument returned): it does what `new` does and prints
    one deprecation line. `use` is the spelling the line recommends (default new's flag); kwargs (nargs, type,
    choices) say how `old`'s values are read where they differ from `new`'s."""
    settings = {"nargs": new.nargs, "const": new.const, "type": new.type, "choices": new.choices, "metavar": new.metavar}
    parser.add_argument(old, action=_DeprecatedAlias, new=new, use=use or new.option_strings[0], dest=new.dest,
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **(settings | kwargs))


RESUME_HELP = ("continue a stopped run: --resume alone takes train's newest run or tune's search --name under --storage; "
               "--resume FOLDER takes the run in FOLDER (train: also a checkpoint folder)")


def add_resume_argument(parser: argparse.ArgumentParser) -> None:
    """--resume [FOLDER], the same in every command that continues a run: None when absent, "" alone, else FOLDER."""
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="FOLDER", help=RESUME_HELP)


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
    module, parser = command_parser(name)
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
