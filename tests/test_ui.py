"""`daif ui`: SIGTERM stops the MLflow server's whole process group (nothing keeps listening); a busy port is refused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

DAIF = str(Path(sys.executable).with_name("daif"))


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of `pid`, None once it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[2]))


def _members(pgid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").glob("[0-9]*") if (_stat(int(p.name)) or (0, -1))[1] == pgid]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_stops_the_whole_ui_process_group(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ui = subprocess.Popen([DAIF, "ui", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--port", str(port)],
                          cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert ui.poll() is None and time.monotonic() < deadline, "the UI did not come up"
            time.sleep(1)
        servers = [int(p.name) for p in Path("/proc").glob("[0-9]*") if (_stat(int(p.name)) or (0, 0))[0] == ui.pid]
        assert servers, "daif ui runs the server as a child"
        group = _stat(servers[0])[1]
        assert group != os.getpgid(ui.pid) and len(_members(group)) >= 1  # its own process group

        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while _members(group) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _members(group) == []
        with socket.socket() as client:
            assert client.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    finally:
        if ui.poll() is None:
            ui.kill()


def test_ui_on_a_busy_port_is_refused(tmp_path, capsys):
    """A port something already listens on: exit 2 naming it, nothing started (it printed another process's URL)."""
    from daif.cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["ui", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"daif ui: error: --port: 127.0.0.1:{port} is in use"), err
    assert main(["ui", "--port", "70000"]) == 2 and "expected a TCP port in 1..65535, got 70000" in capsys.readouterr().err
