"""One error path for every command: bad input ends in one line naming the file, key or argument,
exit status 2, no traceback (unless --debug / DAIF_DEBUG=1), and nothing started or left behind."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from daif.cli import DESCRIPTION, main
from daif.errors import UsageError

DAIF = str(Path(sys.executable).with_name("daif"))


def run_daif(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | env
    return subprocess.run([DAIF, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300)


def one_line(result_or_err, code: int | None = None) -> str:
    """The single stderr line of a failed command (asserting exit status 2 and no traceback)."""
    if isinstance(result_or_err, subprocess.CompletedProcess):
        assert result_or_err.returncode == 2, result_or_err.stderr
        err = result_or_err.stderr
    else:
        assert code == 2
        err = result_or_err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ render: checked before Ray or a store folder


@pytest.fixture
def ray_starts(monkeypatch) -> list:
    """The calls to ray.init while the test runs. Earlier tests may have left a Ray up: it is made to look
    absent, so that any start would show as a call."""
    import ray

    calls: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: calls.append((a, k)))
    return calls


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--kernel-size", "4"], "--kernel-size: expected an odd integer >= 3 (the PSF window is centred) or null (no window), got 4"),
        (["--compression", "zstd"], "--compression: expected lzf, gzip, gzip-<0..9> or none, got 'zstd'"),
        (["--depth-range", "5", "1"], "--depth-range: expected 0 < LOW < HIGH metres, got 5 1"),
        (["--num-focus", "0"], "--num-focus: expected a positive integer, got 0"),
        (["--scenes", "0"], "--scenes: expected a positive integer, got 0"),
        (["--shard-size", "0"], "--shard-size: expected a positive integer, got 0"),
    ],
)
def test_bad_render_options_fail_before_ray_and_leave_no_store(options, expected, tmp_path, capsys, ray_starts):
    out = tmp_path / "store"
    code = main(["render", "--out", str(out), "--size", "16x16", *options])
    assert one_line(capsys.readouterr().err, code) == f"daif render: error: {expected}"
    assert not out.exists()
    assert ray_starts == []  # no Ray started for a rejected option


def test_render_store_from_python_checks_its_options_before_ray(tmp_path, ray_starts):
    from daif.data.pipeline import render_store

    for options, expected in (({"kernel_size": 6}, "--kernel-size: expected an odd integer >= 3"),
                              ({"out": "s3://bucket/store"}, "--out: s3://bucket/store: a store lives on a file system path"),
                              ({"scenes": 0}, "--scenes: expected a positive integer, got 0")):
        with pytest.raises(UsageError, match=f"^{re.escape(expected)}"):
            render_store(**{"out": str(tmp_path / "store"), "size": (16, 16), **options})
    assert not (tmp_path / "store").exists() and ray_starts == []


def test_a_store_uri_is_refused_by_render_and_train(tmp_path, capsys):
    assert main(["render", "--out", "s3://bucket/store", "--size", "16x16"]) == 2
    err = capsys.readouterr().err
    assert one_line(err, 2).startswith("daif render: error: --out: s3://bucket/store: a store lives on a file system path")
    assert main(["train", "--data", "s3://bucket/store"]) == 2
    assert "data.path: s3://bucket/store: a store lives on a file system path" in one_line(capsys.readouterr().err, 2)


def test_render_rejects_a_bad_option_in_a_fresh_process(tmp_path):
    result = run_daif("render", "--out", str(tmp_path / "store"), "--kernel-size", "6", cwd=tmp_path)
    assert one_line(result).startswith("daif render: error: --kernel-size: expected an odd integer >= 3 (the PSF window is centred) or null (no window), got 6")
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------ train: config, store, tracking, resume, counts


@pytest.fixture
def bad_yaml(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("train: [epochs: 2\n")
    return path


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--set", "train.nosuch=1"], "unknown config key 'train.nosuch'"),
        (["--set", "train.epochs=many"], "config key 'train.epochs': expected an integer, got 'many'"),
        (["--config", "{bad_yaml}"], "config file {bad_yaml}: while parsing a flow sequence"),
        (["--config", "{tmp}/missing.yaml"], "--config: {tmp}/missing.yaml is not a file"),
        (["--data", "{tmp}/nostore"], "data.path: "),
        (["--epochs", "0"], "--epochs: expected a positive integer, got 0"),
        (["--num-workers", "0"], "--num-workers: expected a positive integer, got 0"),
        (["--set", "train.epochs=0"], "train.epochs: expected a positive integer, got 0"),
        (["--set", "scaling.placement_strategy=spread"],
         "config section 'scaling': placement_strategy: expected one of ('PACK', 'SPREAD', 'STRICT_SPREAD', "
         "'STRICT_PACK'), got 'spread'"),
        (["--set", "model.width=0"], "config section 'model': width: expected an integer in [1, 512], got 0"),
        (["--set", "model.near=5", "--set", "model.far=1"],
         "config section 'model': near, far: expected 0 < near < far metres, or both 0 (the store's range), got 5.0, 1.0"),
        (["--resume", "{tmp}/nockpt"], "--resume: {tmp}/nockpt is not a checkpoint directory"),
        (["--resume", "{tmp}"], "resume: checkpoint: {tmp}/state.pt not found"),
        (["--storage", "{tmp}/runs", "--resume"], "--resume: no run with a checkpoint under {tmp}/runs; name one: --resume FOLDER"),
    ],
)
def test_bad_train_input_is_one_line_before_ray(options, expected, bad_yaml, tmp_path, capsys):
    fill = {"bad_yaml": bad_yaml, "tmp": tmp_path}
    options = [o.format(**fill) for o in options]
    if "--data" not in options:
        options += ["--data", str(tmp_path / "nostore")]
    code = main(["train", *options, "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    line = one_line(capsys.readouterr().err, code)
    assert line.startswith(f"daif train: error: {expected.format(**fill)}"), line
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_train_missing_store_and_unreachable_server_in_a_fresh_process(tmp_path):
    import socket

    result = run_daif("train", "--data", str(tmp_path / "nostore"), cwd=tmp_path)
    assert one_line(result).startswith(f"daif train: error: data.path: ") and "nostore" in result.stderr
    with socket.socket() as probe:  # a free port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from daif.tracking import check_reachable, TrackingUnavailable

    with pytest.raises(TrackingUnavailable, match=f"127.0.0.1:{port} cannot be reached"):
        check_reachable(f"http://127.0.0.1:{port}", timeout=2)
    assert not (tmp_path / "mlflow.db").exists()


def test_debug_shows_the_traceback(tmp_path):
    flag = run_daif("--debug", "train", "--set", "train.nosuch=1", cwd=tmp_path)
    assert flag.returncode == 2 and "Traceback" in flag.stderr and "UsageError: unknown config key 'train.nosuch'" in flag.stderr
    assert flag.stderr.rstrip().splitlines()[-1].startswith("daif train: error: unknown config key 'train.nosuch'")
    variable = run_daif("train", "--set", "train.nosuch=1", cwd=tmp_path, DAIF_DEBUG="1")
    assert variable.returncode == 2 and "Traceback" in variable.stderr


def test_quickstart_rejects_zero_counts(tmp_path, capsys):
    for flag in ("--scenes", "--epochs", "--num-workers"):
        code = main(["quickstart", "--out", str(tmp_path / "qs"), flag, "0"])
        assert one_line(capsys.readouterr().err, code) == f"daif quickstart: error: {flag}: expected a positive integer, got 0"
    assert not (tmp_path / "qs").exists()


# ------------------------------------------------------------------ the command itself


def test_help_describes_the_project_for_a_user(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and " ".join(DESCRIPTION.split()[:6]) in " ".join(out.split())
    assert "Each subcommand lives" not in out and "--debug" in out


def test_printed_ui_command_runs_without_an_activated_venv(tmp_path):
    from daif.tracking import ui_command

    command = ui_command(f"sqlite:///{tmp_path}/mlflow.db")
    words = shlex.split(command)
    assert Path(words[0]).is_absolute() and words[-2:] == ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}  # no venv on PATH
    result = subprocess.run([*words[: words.index("ui") + 1], "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "daif ui" in result.stdout, result.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["train", "--preset", "quickstart", "--num-cpus", "1"],
         "daif train: error: 1 training worker(s) x scaling.cpus_per_worker 1.5: one asks for 1.5 CPUs and the local Ray "
         "has 1 (it would wait forever)"),
        (["train", "--num-workers", "2", "--num-cpus", "2"],
         "daif train: error: 2 training worker(s) x scaling.cpus_per_worker 1: 2 of the local Ray's 2 CPUs at once leave "
         "less than 0.5 for Ray Data's reads"),
        (["tune", "--space", "table4", "--cpus-per-trial", "1", "--max-concurrent", "2", "--num-cpus", "2"],
         "daif tune: error: --max-concurrent 2 trials of 1 CPUs: 2 of the local Ray's 2 CPUs at once leave less than 0.5"),
        (["tune", "--space", "table4", "--cpus-per-trial", "3", "--num-cpus", "2"],
         "daif tune: error: --max-concurrent 2 trials of 3 CPUs: one asks for 3 CPUs and the local Ray has 2"),
    ],
)
def test_a_run_that_would_wait_forever_for_cpus_is_refused_before_ray(command, expected, tmp_path, capsys, ray_starts):
    """Ray waits without end for a worker group or trials it cannot place, and Ray Data's reads wait when the
    trials or workers hold every CPU: both are refused first, naming what was asked and what exists."""
    code = main([*command, "--data", str(tmp_path / "nostore"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    line = one_line(capsys.readouterr().err, code)
    assert line.startswith(expected), line
    assert not ray_starts and not (tmp_path / "mlflow.db").exists()


def test_the_shipped_runs_fit_two_cpus(ray_starts):
    """The quickstart's worker (1.5 CPUs) and `daif tune`'s default two trials of 0.5 CPU fit a 2-CPU local Ray;
    twelve trials of 0.5 at once do not: Tune would start four and leave Ray Data nothing."""
    from daif.config import load_config
    from daif.errors import UsageError
    from daif.runtime import check_cpu_request, check_training_cpus

    check_training_cpus(load_config(preset="quickstart").scaling, 2)
    check_cpu_request(0.5, 2, "tune", "", 2)
    with pytest.raises(UsageError, match="tune: 2 of the local Ray's 2 CPUs at once"):
        check_cpu_request(0.5, 12, "tune", "", 2)
