"""How much Ray Data prints while it runs a Dataset: `DAIF_DATA_PROGRESS` = auto | concise | full.

Ray 2.60 picks its progress display per process: a terminal gets tqdm bars redrawn in place; anything
else (CI, `ray job submit` logs, a command piped to a file) gets `LoggingExecutionProgressManager`, which
logs a block of "Running Dataset" lines every 10 s per running Dataset, plus a "Starting execution" line and
the execution plan each time a Dataset starts. A training epoch runs two Datasets (train and val), so every
epoch adds its own pile of these lines.

    concise  `DataContext.enable_progress_bars` and `print_on_execution_start` off: each Dataset execution
             logs one line, when it finishes ("Dataset ... execution finished in N seconds"); Ray warns
             once per process that bars are off.
    full     Ray's own defaults, untouched.
    auto     (default) full when the driver's stdout is a terminal, else concise.

The setting goes into the driver's `DataContext`, which every Dataset copies when it is created and Ray
Train hands to its workers, so it is applied by the functions of daif.data that create Datasets.
"""

from __future__ import annotations

import os
import sys

ENV = "DAIF_DATA_PROGRESS"
MODES = ("auto", "concise", "full")


def progress_mode(value: str | None = None, stdout=None) -> str:
    """The effective mode, "concise" or "full", of `value` (default: $DAIF_DATA_PROGRESS, else "auto")."""
    value = (value if value is not None else os.environ.get(ENV, "auto")).strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV}: expected one of {list(MODES)}, got {value!r}")
    if value == "auto":
        stream = stdout if stdout is not None else sys.stdout
        return "full" if getattr(stream, "isatty", lambda: False)() else "concise"
    return value


def configure_progress(mode: str | None = None, context=None) -> str:
    """Apply the mode (`progress_mode(mode)`) to `context` (default: the current DataContext); returns it.

    "full" leaves the context as it is, so settings a user made there stay.
    """
    import ray.data

    effective = progress_mode(mode)
    if effective == "concise":
        context = context if context is not None else ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
    return effective
