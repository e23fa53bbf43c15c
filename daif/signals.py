"""Interrupts, as `daif train` and `daif tune` end them: SIGINT (Ctrl-C) and SIGTERM raise `Interrupted` in the
main thread, so the command can end its MLflow runs KILLED and exit with the conventional status, 128 + the
signal's number (130 for SIGINT, 143 for SIGTERM).

    try:
        with interrupts_raise(signal.SIGINT, signal.SIGTERM):
            ...                               # Interrupted (a KeyboardInterrupt) on either signal
    except KeyboardInterrupt as interrupt:
        return exit_status(interrupt)

Why a handler of our own: Ray installs its own for SIGTERM (`ray.init`: `sys.exit`, and the core worker's crash
handler, which aborts: exit 134), and Ray Train's `fit` one for SIGINT (abort, then `sys.exit`); both reached
the runs as `SystemExit`, recorded FAILED. Install the handler after `ray.init`, which replaces it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM received; `signum` says which, `detail` what the interrupted command left behind."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(f"{signal.Signals(signum).name}" + (f": {detail}" if detail else ""))
        self.signum, self.detail = int(signum), detail


_received: int | None = None  # the signal caught last: `ray.get` raises a plain KeyboardInterrupt in place of Interrupted


def signal_number(interrupt: KeyboardInterrupt) -> int:
    """The signal behind `interrupt`: its own, else the one `interrupts_raise` caught, else SIGINT (Python's own
    KeyboardInterrupt)."""
    return getattr(interrupt, "signum", None) or _received or signal.SIGINT


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention for a command ended by a signal: 128 + its number."""
    return 128 + signal_number(interrupt)


def report_interrupt(command: str, interrupt: KeyboardInterrupt, detail: str) -> int:
    """Print the one line a command ends with when interrupted, "daif COMMAND: interrupted by SIGNAME; DETAIL", to
    stderr, and return its exit status (`exit_status`)."""
    print(f"daif {command}: interrupted by {signal.Signals(signal_number(interrupt)).name}; {detail}", file=sys.stderr)
    return exit_status(interrupt)


@contextlib.contextmanager
def interrupts_raise(*signums: int) -> Iterator[None]:
    """For the block, each of `signums` raises `Interrupted` in the main thread; the same signal again, while the
    first is handled (ending runs, stopping Ray), gets the default action: the process ends at once. The previous
    handlers come back on leaving. Outside the main thread (a Tune trial) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        global _received
        _received = signum
        signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C or SIGTERM is not caught
        raise Interrupted(signum)

    global _received
    _received = None
    previous = {signum: signal.signal(signum, interrupt) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
