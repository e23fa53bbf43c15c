"""Nothing half-done: a failed training run ends FAILED with its reason, a failed resume leaves the run it
resumed as it was, a relative --resume/--storage continues the same MLflow run, a resume logs no epoch twice,
metric times are real."""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from pathlib import Path

import mlflow
import pytest

from daif.cli import main
from daif.config import load_config, replace
from daif.data.store import file_sha256
from daif.errors import UsageError
from daif.tracking import FAILURE_TAG
from daif.train.driver import train

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def _config(store: str, root: Path, **sections):
    base = load_config(overrides=[
        f"data.path={store}", "model.width=4", "model.levels=2", "optim.batch_size=4", "train.epochs=2",
        "train.figures_every=0", f"tracking.tracking_uri=sqlite:///{root}/mlflow.db", f"tracking.storage={root}/runs",
        "scaling.cpus_per_worker=0.5", "tracking.experiment=failures",
    ])
    return replace(base, **sections) if sections else base


def _runs(root: Path):
    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("failures")
    return client, client.search_runs([experiment.experiment_id]) if experiment else []


def _crash_at_start(loop_config):
    raise RuntimeError("injected crash before the first epoch")


@pytest.fixture(scope="module")
def stopped_run(tiny_store, tmp_path_factory):
    """A run that trained one of two epochs (train.stop_after=1), as a killed run leaves it: (root, result, start time ms)."""
    root = tmp_path_factory.mktemp("stopped")
    started = int(time.time() * 1000)
    result = train(_config(tiny_store, root, train={"epochs": 2, "stop_after": 1, "figures_every": 0}), in_process=True)
    return root, result, started


def test_metric_timestamps_are_real_times(stopped_run):
    root, result, started = stopped_run
    history = mlflow.MlflowClient(result.tracking_uri).get_metric_history(result.run_id, "train/total")
    assert history and all(started <= m.timestamp <= time.time() * 1000 for m in history)


def test_a_crash_before_the_first_epoch_ends_the_run_failed_with_the_reason(tiny_store, tmp_path):
    with pytest.raises(Exception, match="injected crash before the first epoch"):
        train(_config(tiny_store, tmp_path, scaling={"num_workers": 1, "max_failures": 0}), train_loop=_crash_at_start)
    client, runs = _runs(tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "injected crash before the first epoch" in runs[0].data.tags[FAILURE_TAG]


def test_a_corrupt_shard_ends_the_run_failed_and_is_a_usage_error(tiny_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    shard = sorted(store.glob("shard-*.h5"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, other bytes: the recorded SHA-256 no longer matches
    shard.write_bytes(bytes(data))
    with pytest.raises(UsageError) as raised:
        train(_config(str(store), tmp_path))
    assert re.fullmatch(rf"data\.path: {re.escape(str(shard))}: SHA-256 \w{{12}}\.\.\. does not match the manifest's \w{{12}}\.\.\.",
                        str(raised.value))  # the store's own message, not Ray's traceback around it
    client, runs = _runs(tmp_path)
    assert [r.info.status for r in runs] == ["FAILED"] and shard.name in runs[0].data.tags[FAILURE_TAG]


def test_a_truncated_shard_whose_hash_matches_is_a_usage_error_naming_it(tiny_store, tmp_path):
    """A shard damaged before its hash and size were recorded fails to open in h5py when the store opens: one message,
    before any run or worker."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    shard = sorted(store.glob("shard-*.h5"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["shards"][shard.name].update(sha256=file_sha256(str(shard)), bytes=shard.stat().st_size)
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match=rf"^data\.path: {re.escape(str(shard))}: not a readable HDF5 shard \(") as raised:
        train(_config(str(store), tmp_path))
    assert "Traceback" not in str(raised.value)
    assert _runs(tmp_path)[1] == [] and not (tmp_path / "runs").exists()


def test_too_many_workers_is_refused_before_any_run(tiny_store, tmp_path):
    with pytest.raises(UsageError, match="scaling.num_workers: 64 workers need at least as many training scenes"):
        train(_config(tiny_store, tmp_path, scaling={"num_workers": 64}))
    assert _runs(tmp_path)[1] == [] and not (tmp_path / "runs").exists()


def test_an_unreachable_tracking_server_is_one_line_from_daif_train(tiny_store, tmp_path, capsys):
    with socket.socket() as probe:  # a free port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["train", "--data", tiny_store, "--tracking-uri", f"http://127.0.0.1:{port}", "--storage", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"MLflow tracking server http://127.0.0.1:{port} cannot be reached" in err
    assert not (tmp_path / "runs").exists()


def test_a_failing_resume_leaves_the_run_it_resumed_as_it_was(stopped_run, tiny_store):
    root, first, _ = stopped_run
    client = mlflow.MlflowClient(first.tracking_uri)
    before = client.get_run(first.run_id)
    folders = set((root / "runs").iterdir())
    with pytest.raises(Exception, match="injected crash"):
        train(_config(tiny_store, root, scaling={"num_workers": 1, "max_failures": 0}), resume=first.latest_checkpoint,
              train_loop=_crash_at_start)
    after = client.get_run(first.run_id)
    assert after.info.status == before.info.status == "FINISHED"
    assert "injected crash" in after.data.tags["daif.resume_failure"] and FAILURE_TAG not in after.data.tags
    assert set((root / "runs").iterdir()) == folders  # no empty run folder left by the failed attempt


def test_a_relative_resume_and_storage_continue_the_same_run_and_say_so(stopped_run, tiny_store, monkeypatch, capsys):
    root, first, _ = stopped_run
    monkeypatch.chdir(root)
    relative = Path(first.latest_checkpoint).relative_to(root)
    code = main(["train", "--data", tiny_store, "--set", "model.width=4", "--set", "model.levels=2", "--batch-size", "4",
                 "--epochs", "2", "--set", "train.figures_every=0", "--set", "scaling.cpus_per_worker=0.5",
                 "--experiment", "failures", "--tracking-uri", f"sqlite:///{root}/mlflow.db",
                 "--storage", "runs", "--resume", str(relative)])
    out = capsys.readouterr().out
    assert code == 0 and f"resuming MLflow run {first.run_id}" in out and f"MLflow run:       {first.run_id}" in out
    client = mlflow.MlflowClient(first.tracking_uri)
    assert client.get_run(first.run_id).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(first.run_id, "train/total")) == [0, 1]
    assert len(_runs(root)[1]) == 1  # no second run


def test_an_epoch_logged_before_a_kill_is_not_logged_again_by_the_resume(tiny_store, tmp_path):
    """A kill between an epoch's metrics and its checkpoint: the resume trains that epoch again; the run keeps the
    first logging and holds every epoch once."""
    first = train(_config(tiny_store, tmp_path, train={"epochs": 2, "stop_after": 1, "figures_every": 0}), in_process=True)
    client = mlflow.MlflowClient(first.tracking_uri)
    client.log_metric(first.run_id, "train/total", 123.0, step=1)  # epoch 1 logged, its checkpoint lost
    resumed = train(_config(tiny_store, tmp_path), resume=first.latest_checkpoint)
    assert resumed.run_id == first.run_id and resumed.metrics["epoch"] == 1
    history = client.get_metric_history(first.run_id, "train/total")
    assert sorted(m.step for m in history) == [0, 1]
    assert [m.value for m in history if m.step == 1] == [123.0]
    assert sorted(m.step for m in client.get_metric_history(first.run_id, "val/delta1")) == [0]  # epoch 1's, not logged again
