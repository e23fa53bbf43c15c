"""The one error type for bad input: a wrong argument, config key, file or store.

Every command raises `UsageError` (or a subclass: `daif.data.sources.DataError`,
`daif.predict.PredictionInputError`, `daif.tracking.TrackingUnavailable`, ...) with a message that
names the file, key or argument and what was expected. `daif.cli.main` catches it once and prints
"daif COMMAND: error: MESSAGE" on one line with exit status 2; `--debug` or DAIF_DEBUG=1 shows the
traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input; the message names the file, key or argument and what was expected."""


def as_usage_error(error: BaseException, prefix: str = "") -> UsageError:
    """`error`'s message as a UsageError (for a library's ValueError met on user input)."""
    text = str(error) or type(error).__name__
    return UsageError(f"{prefix}{text}" if prefix else text)
