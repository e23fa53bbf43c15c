"""Ctrl-C's SIGINT during `daif train` and SIGTERM (what `ray job stop` and a scheduler send) during `daif
quickstart`, each sent to the real command once it has written a checkpoint: the run ends KILLED with the signal
tagged, the command exits 128 + the signal's number with one line naming the checkpoint, that checkpoint resumes the
same MLflow run, and nothing the command started stays alive. Both commands train through the same driver
(daif.train.driver, whose override of Ray Train's own SIGINT handler the first test exercises) and the same handlers
(daif.signals, whose unit tests below take both signals), so each command is run with one signal.
(Before: FAILED with `SystemExit: 1`, exit 1 for SIGINT and 134, an abort, for SIGTERM.)"""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from daif.checkpoint import load_checkpoint
from daif.config import load_config
from daif.signals import Interrupted, exit_status, interrupts_raise, signal_number
from daif.tracking import FAILURE_TAG
from daif.train.driver import train
from tests.helpers.processes import stop_processes, wait_for_exit

pytestmark = pytest.mark.timeout(600)

DAIF = Path(sys.executable).parent / "daif"
RAY_LINE = re.compile(r"^(\x1b\[\d+m)?\(([\w.:-]+ pid=\d+[^)]*|raylet[^)]*|autoscaler[^)]*)\)")  # forwarded by Ray from its processes


def _overrides(store: str, root: Path) -> list[str]:
    return [f"data.path={store}", "model.width=4", "model.levels=2", "optim.batch_size=4", "train.epochs=200",
            "train.figures_every=0", "scaling.cpus_per_worker=0.5", f"tracking.tracking_uri=sqlite:///{root}/mlflow.db",
            f"tracking.storage={root}/runs", "tracking.experiment=signals"]


def _interrupt_after_the_first_checkpoint(command: list[str], root: Path, signum: int) -> tuple[int, str]:
    """Run `command` in its own session, send `signum` once a checkpoint is on disk; (exit status, stderr).
    Whatever of the session is still alive 30 s after the command ended is killed, and fails the test."""
    stderr_path = root / "stderr.txt"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not glob.glob(f"{root}/runs/*/checkpoint_*/meta.json"):
            assert process.poll() is None and time.monotonic() < deadline, stderr_path.read_text()[-4000:]
            time.sleep(0.5)
        process.send_signal(signum)
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        left = wait_for_exit(sessions=[process.pid], timeout=30)
        stop_processes(sessions=[process.pid])
    assert not left, f"processes of the interrupted command still alive: {left}"
    return status, stderr_path.read_text()


@pytest.mark.ray
@pytest.mark.process
def test_ctrl_c_ends_the_run_killed_exits_128_plus_the_signal_and_the_checkpoint_resumes(tiny_store, tmp_path):
    signum = signal.SIGINT
    overrides = _overrides(tiny_store, tmp_path)
    command = [str(DAIF), "train", *(f"--set={o}" for o in overrides), "--num-cpus", "2"]
    status, stderr = _interrupt_after_the_first_checkpoint(command, tmp_path, signum)

    name = signal.Signals(signum).name
    own_lines = [line for line in stderr.splitlines() if not RAY_LINE.match(line)]
    assert status == 128 + signum, stderr[-4000:]
    assert not any("Traceback" in line for line in own_lines), "\n".join(own_lines[-60:])
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("signals").experiment_id])
    assert [(r.info.status, r.data.tags.get(FAILURE_TAG)) for r in runs] == [("KILLED", f"Interrupted: {name}")]
    run_id = runs[0].info.run_id
    said = re.search(rf"daif train: interrupted by {name}; MLflow run {run_id} ended KILLED; continue with: "
                     r"daif train --resume (\S+)", own_lines[-1])
    assert said, own_lines[-1]

    checkpoint = said.group(1)
    _, meta = load_checkpoint(checkpoint)
    assert meta["run_id"] == run_id
    config = load_config(overrides=[*overrides, f"train.epochs={meta['epoch'] + 2}"])
    resumed = train(config, resume=checkpoint, in_process=True, log_models=False)  # one more epoch
    assert resumed.run_id == run_id and resumed.metrics["epoch"] == meta["epoch"] + 1
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_the_block_raises_interrupted_and_the_handlers_come_back(signum):
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as raised, interrupts_raise(signal.SIGINT, signal.SIGTERM):
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert raised.value.signum == signum and exit_status(raised.value) == 128 + signum
    assert signal.getsignal(signum) is before


def test_a_plain_keyboard_interrupt_is_the_signal_caught_last():
    """`ray.get` replaces the handler's Interrupted by a KeyboardInterrupt of its own; the signal is remembered."""
    with pytest.raises(KeyboardInterrupt), interrupts_raise(signal.SIGTERM):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Interrupted:
            raise KeyboardInterrupt from None
    assert signal_number(KeyboardInterrupt()) == signal.SIGTERM
    with interrupts_raise(signal.SIGTERM):  # a new block forgets it
        assert signal_number(KeyboardInterrupt()) == signal.SIGINT


def test_ray_train_still_registers_its_sigint_handler_through_the_hook_the_driver_overrides():
    """daif.train.driver's trainer replaces `_register_sigint_handler` (a private hook of Ray Train's `fit`); were it
    renamed, Ray's handler (abort, then sys.exit: a FAILED run) would be back."""
    import inspect

    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    assert "self._register_sigint_handler(controller)" in inspect.getsource(DataParallelTrainer._initialize_and_run_controller)


@pytest.mark.ray
@pytest.mark.process
def test_an_interrupted_quickstart_says_so_in_one_line_and_leaves_no_run_running(tmp_path):
    command = [str(DAIF), "quickstart", "--smoke-test", "--out", str(tmp_path), "--set", "train.epochs=200",
               "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    status, stderr = _interrupt_after_the_first_checkpoint(command, tmp_path, signal.SIGTERM)

    own_lines = [line for line in stderr.splitlines() if not RAY_LINE.match(line)]
    assert status == 128 + signal.SIGTERM, stderr[-4000:]
    assert not any("Traceback" in line for line in own_lines), "\n".join(own_lines[-60:])
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("daif-quickstart").experiment_id])
    assert [(r.info.status, r.data.tags.get(FAILURE_TAG)) for r in runs] == [("KILLED", "Interrupted: SIGTERM")]
    assert re.search(rf"daif quickstart: interrupted by SIGTERM; MLflow run {runs[0].info.run_id} ended KILLED; continue with: "
                     r"daif train --resume \S+", own_lines[-1]), own_lines[-1]
