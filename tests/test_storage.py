"""`--storage` as a pyarrow filesystem and a path: plain paths, file:// and s3:// URIs kept as given, a store off this
machine read through downloads, and a URI that cannot be opened or reached is one line. No Ray here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.fs
import pytest
import torch

from daif import storage
from daif.checkpoint import load_checkpoint, save_checkpoint
from daif.cli import main
from daif.model import DAIFNet
from daif.model_io import load_model
from daif.storage import StorageError
from daif.train.driver import latest_checkpoint as latest_whole_checkpoint
from daif.tune.trial import latest_checkpoint

META = {"camera": {"focal_length": 0.015, "f_number": 2.0, "pixel_size": 1e-5}, "focus_distances": [1.0, 2.0],
        "depth_range": [0.1, 10.0]}


def _checkpoint(folder: Path, epoch: int, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(folder, DAIFNet(width=4, levels=2), META, epoch=epoch)


def test_a_plain_path_is_the_local_filesystem_and_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = storage.resolve("runs")
    assert isinstance(runs.filesystem, pyarrow.fs.LocalFileSystem) and runs.path == runs.uri == str(tmp_path / "runs")
    assert (runs / "search" / "search.json").uri == str(tmp_path / "runs" / "search" / "search.json")


def test_a_file_uri_is_local_and_every_location_below_it_stays_a_file_uri(tmp_path):
    runs = storage.resolve(f"file://{tmp_path}/runs")
    assert runs.is_local and runs.path == f"{tmp_path}/runs" and runs.uri == f"file://{tmp_path}/runs"
    checkpoint = runs / "daif-1" / "checkpoint_000002"
    assert checkpoint.uri == f"file://{tmp_path}/runs/daif-1/checkpoint_000002"
    assert runs.at(f"{tmp_path}/runs/daif-1/checkpoint_000002") == checkpoint  # Ray's Checkpoint.path, shown as the URI


def test_an_s3_uri_is_s3_not_a_local_folder_and_keeps_its_query(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = storage.resolve("s3://bucket/runs?region=us-east-1")  # the region given: nothing is asked of the network
    assert runs.filesystem.type_name == "s3" and not runs.is_local and runs.path == "bucket/runs"
    assert (runs / "search" / "search.json").uri == "s3://bucket/runs/search/search.json?region=us-east-1"
    assert runs.at("bucket/runs/daif-1/checkpoint_000000").path == "bucket/runs/daif-1/checkpoint_000000"
    assert not list(tmp_path.iterdir())  # no ./s3:/bucket/runs


@pytest.mark.parametrize("uri, expected", [
    ("nosuchfs://bucket/runs", "Unrecognized filesystem type in URI: nosuchfs://bucket/runs"),
    ("file://host/runs", "Unsupported hostname in non-Windows local URI"),
])
def test_a_uri_pyarrow_cannot_open_is_one_line_naming_the_flag(uri, expected):
    with pytest.raises(StorageError) as raised:
        storage.resolve(uri, "--storage")
    message = str(raised.value)
    assert message.startswith(f"--storage: {uri}: pyarrow cannot open it (") and expected in message and "\n" not in message


def test_an_unreachable_s3_storage_is_one_line_exit_2_before_ray(tmp_path, capsys, monkeypatch):
    """An S3 endpoint that does not answer (loopback, a closed port; dummy credentials so that nothing asks a
    metadata service): `daif train --storage s3://...` reaches S3 with it, and says so in one line."""
    import daif.runtime

    monkeypatch.setattr(daif.runtime, "ensure_ray", lambda *a, **k: pytest.fail("Ray was started"))
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    uri = "s3://bucket/runs?region=us-east-1&endpoint_override=127.0.0.1:9&scheme=http"
    started = time.monotonic()
    assert main(["train", "--data", str(tmp_path / "store"), "--storage", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and time.monotonic() - started < 60
    assert err.startswith(f"daif train: error: tracking.storage: {uri} cannot be read (") and "127.0.0.1" in err


def test_a_store_off_this_machine_is_listed_read_written_and_downloaded(tmp_path):
    """pyarrow's in-memory mock:// filesystem stands in for S3: nothing in it is a local file."""
    runs = storage.resolve("mock:///bucket/runs")
    assert not runs.is_local
    for run, epoch in (("daif-a", 3), ("daif-b", 7)):
        (runs / run / f"checkpoint_{epoch:06d}").upload(_checkpoint(tmp_path / "local" / run, epoch))
    (runs / "daif-c" / "checkpoint_000009").write_text("{}")  # a copy cut short: no state.pt
    assert [f.uri for f in runs.subfolders()] == [f"mock:///bucket/runs/daif-{x}" for x in "abc"]
    assert latest_checkpoint(runs) == "mock:///bucket/runs/daif-b/checkpoint_000007"  # a trial's resume
    assert latest_whole_checkpoint(runs / "daif-a") == "mock:///bucket/runs/daif-a/checkpoint_000003"  # read whole
    with storage.local_copy(runs / "daif-b" / "checkpoint_000007") as directory:
        assert Path(directory).is_dir()  # a local download
        state, meta = load_checkpoint(directory)
        assert state["epoch"] == 7 and meta["focus_distances"] == [1.0, 2.0]
    assert not Path(directory).exists()  # the download is gone
    record = (runs / "search" / "search.json").write_text(json.dumps({"parent_run_id": "abc"}))
    assert json.loads(record.read_text()) == {"parent_run_id": "abc"} and record.is_file() and not record.is_dir()
    with storage.staged(runs / "search" / "results") as folder:
        (folder / "table.csv").write_text("trial_id\n")
    assert (runs / "search" / "results" / "table.csv").read_text() == "trial_id\n"
    (runs / "daif-a").delete()
    assert not (runs / "daif-a").exists() and (runs / "daif-b").is_dir()


def test_a_checkpoint_named_by_a_file_uri_loads_as_a_model_and_resumes(tmp_path):
    _checkpoint(tmp_path / "runs" / "daif-a" / "checkpoint_000001", 1, seed=1)
    uri = f"file://{tmp_path}/runs/daif-a/checkpoint_000001"
    model, meta = load_model(uri)  # daif predict/evaluate --model, the search's best-trial evaluation
    expected, _ = load_model(tmp_path / "runs" / "daif-a" / "checkpoint_000001")
    assert meta["epoch"] == 1
    for name, tensor in expected.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)
    assert latest_checkpoint(f"file://{tmp_path}/runs") == uri
    assert latest_whole_checkpoint(f"file://{tmp_path}/runs/daif-a") == uri
