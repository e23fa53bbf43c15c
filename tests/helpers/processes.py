"""The processes a test started, found by what they cannot shed: their session id.

A command started with `start_new_session=True` leads a new session, and everything it starts inherits it
(Ray's raylet, GCS, dashboard, agents and workers do not call setsid). Ray renames its agents and workers
(`ray::DashboardAgent`), so their command lines do not say which Ray they belong to, and an agent whose
raylet was killed lives on with parent 1; its session id still names the command that started it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path


def _session_of(entry: Path) -> int | None:
    """The session id of a live process; None for one that is gone or a zombie (dead, not yet reaped)."""
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return None
    state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]  # after "pid (comm)"
    return None if state in ("Z", "X") else int(session)


def _mentions(entry: Path, texts: list[str]) -> bool:
    """The command line or the working directory of a process names one of `texts` (a job's working dir
    is unpacked under its node's temp dir)."""
    try:
        command_line = (entry / "cmdline").read_bytes().decode(errors="replace")
        cwd = os.readlink(entry / "cwd")
    except OSError:
        return False
    return any(text in command_line or cwd.startswith(text) for text in texts)


def processes_of(sessions: Sequence[int] = (), texts: Sequence[str] = ()) -> list[int]:
    """PIDs of live processes in one of `sessions`, or whose command line or working directory names one of
    `texts` (temp dirs); never this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        session = _session_of(entry)
        if session is not None and (session in sessions or (texts and _mentions(entry, list(texts)))):
            found.append(int(entry.name))
    return sorted(found)


def stop_processes(sessions: Sequence[int] = (), texts: Sequence[str] = (), signum: int = signal.SIGTERM,
                   timeout: float = 10.0) -> list[int]:
    """Signal what `processes_of` finds until none is left, SIGKILL after `timeout` s; returns the PIDs that
    needed SIGKILL."""
    deadline, killed = time.monotonic() + timeout, set()
    while pids := processes_of(sessions, texts):
        late = time.monotonic() > deadline
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL if late else signum)
            except ProcessLookupError:
                continue
            if late:
                killed.add(pid)
        time.sleep(0.5)
    return sorted(killed)


def wait_for_exit(sessions: Sequence[int] = (), texts: Sequence[str] = (), timeout: float = 30.0) -> list[int]:
    """Wait up to `timeout` s for the processes of `sessions`/`texts` to end by themselves; the PIDs still
    alive then."""
    deadline = time.monotonic() + timeout
    while (pids := processes_of(sessions, texts)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return pids
