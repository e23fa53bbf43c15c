"""Tracking against a real `mlflow server` process on 127.0.0.1 that goes away mid-run."""

import os
import socket
import subprocess
import sys
import time

import mlflow
import pytest

from daif.tracking import RunLogger, TrackingUnavailable, check_reachable, resolve_tracking_uri, start_run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_resolve_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri() == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("relative/dir") == (tmp_path / "relative/dir").resolve().as_uri()


def test_unreachable_server_is_a_clear_error():
    port = _free_port()
    with pytest.raises(TrackingUnavailable, match=f"127.0.0.1:{port}.*cannot be reached"):
        check_reachable(f"http://127.0.0.1:{port}", timeout=2)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_logging_survives_a_server_that_dies_mid_run(tmp_path):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "artifacts"),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                check_reachable(uri, timeout=2)
                break
            except TrackingUnavailable:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        run_id = start_run(uri, "survival", "r", {"a": 1}, "a: 1\n")
        logger = RunLogger(uri, run_id)
        logger.metrics({"loss": 1.0}, step=0)
        assert logger.ok
        assert [m.value for m in mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")] == [1.0]
    finally:
        os.killpg(server.pid, 9)  # the server and its workers: only what this test started
        server.wait(timeout=30)
    started = time.time()
    logger.metrics({"loss": 0.5}, step=1)  # must not raise
    logger.metrics({"loss": 0.25}, step=2)  # reported once, then skipped
    assert not logger.ok and len(logger.errors) == 1 and "metrics" in logger.errors[0]
    assert time.time() - started < 60  # retries are bounded


def test_a_uri_with_a_scheme_mlflow_has_no_store_for_is_refused():
    with pytest.raises(TrackingUnavailable, match=r"^--tracking-uri 'foo://bar': MLflow has no tracking store for scheme 'foo'"):
        check_reachable("foo://bar")


def test_a_port_that_answers_non_http_is_a_one_line_error():
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer_garbage() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed at the end of the test
                return
            with connection:
                connection.recv(1024)
                connection.sendall(b"SSH-2.0-not-http\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        with pytest.raises(TrackingUnavailable) as raised:
            check_reachable(f"http://127.0.0.1:{port}", timeout=5)
    finally:
        listener.close()
    message = str(raised.value)
    assert f"127.0.0.1:{port} cannot be reached (BadStatusLine" in message and "\n" not in message


def test_a_run_records_package_versions_and_the_git_commit_as_tags_not_params(tmp_path):
    import importlib.metadata

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = start_run(uri, "provenance", "r", {"optim.lr": 0.001}, "optim:\n  lr: 0.001\n", tags={"extra": "yes"})
    run = mlflow.MlflowClient(uri).get_run(run_id)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=os.path.dirname(__file__), capture_output=True, text=True).stdout.strip()
    assert run.data.tags["mlflow.source.git.commit"] == (head or "unknown")
    assert run.data.tags["daif.version.torch"] == importlib.metadata.version("torch")
    assert run.data.tags["daif.version.mlflow"] == mlflow.__version__ and run.data.tags["extra"] == "yes"
    assert run.data.params == {"optim.lr": "0.001"}
