"""MLflow tracking: where runs go, what a run records, and logging that survives a lost server.

Default store on a fresh machine: `sqlite:///<working dir>/mlflow.db` with artifacts in
`<working dir>/mlartifacts` (no server needed); `--tracking-uri http://...` or MLFLOW_TRACKING_URI
name a server, which every Ray worker then uses too (the driver passes the resolved URI on).
The driver owns a run (creates it, logs params and the config, the models at the end); rank 0 of
the training workers logs metrics and figures into the same run through `RunLogger`.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daif.errors import UsageError

logger = logging.getLogger(__name__)

PACKAGES = ("daif", "torch", "ray", "mlflow", "optuna", "numpy", "h5py", "numba")


class TrackingUnavailable(UsageError):
    """The tracking server could not be reached."""


def default_tracking_uri(directory: str | os.PathLike | None = None) -> str:
    return f"sqlite:///{Path(directory or os.getcwd()).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(uri: str = "") -> str:
    """The given URI, else MLFLOW_TRACKING_URI, else the local store in the working directory."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        return default_tracking_uri()
    if "://" not in uri:  # a plain directory: MLflow's file store, made absolute for the workers
        return Path(uri).resolve().as_uri()
    return uri


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any Ray work, on a tracking URI MLflow cannot use.

    Every URI must name a store MLflow knows (its scheme is checked by building a client); an HTTP
    server must answer its /health with 200 within `timeout` seconds. Raises TrackingUnavailable.
    """
    import mlflow

    try:
        mlflow.MlflowClient(uri)
    except Exception as error:  # MLflow raises its own exception types for an unknown scheme
        raise TrackingUnavailable(
            f"--tracking-uri {uri!r}: MLflow has no tracking store for scheme {uri.split(':', 1)[0]!r} "
            f"({type(error).__name__}); expected http(s)://HOST:PORT, sqlite:///PATH, file:///PATH or a directory"
        ) from None
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status == 200:
                return
            raise TrackingUnavailable(f"MLflow tracking server {uri} answered /health with HTTP {response.status}")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} cannot be reached ({type(error).__name__}: {' '.join(str(error).split())}). Start it, or drop "
            "--tracking-uri to use the local store in the working directory."
        ) from None


def local_artifact_root(uri: str) -> str | None:
    """Where a local sqlite store keeps its artifacts: `mlartifacts` beside the database file."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()


def experiment_id(name: str, uri: str) -> str:
    """The id of experiment `name`, created if missing (local stores keep artifacts beside mlflow.db)."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=local_artifact_root(uri))


def git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return result.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's standard tag (the UI shows it with the run's source)
VERSION_TAG = "daif.version."  # + package name


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def provenance_tags() -> dict[str, str]:
    """What ran: the git commit (`mlflow.source.git.commit`) and `daif.version.<package>` for every package."""
    return {GIT_COMMIT_TAG: git_commit(), **{f"{VERSION_TAG}{name}": version for name, version in package_versions().items()}}


def start_run(
    uri: str, experiment: str, run_name: str, params: dict[str, Any], config_yaml: str, tags: dict[str, str] | None = None
) -> str:
    """Create a run holding params, the full config and, as tags, package versions and the git commit
    (`provenance_tags`); return its id."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.create_run(experiment_id(experiment, uri), run_name=run_name or None, tags={**provenance_tags(), **(tags or {})})
    run_id = run.info.run_id
    client.log_batch(run_id, params=[mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()])
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(config_yaml)
        client.log_artifact(run_id, str(path))
    return run_id


class RunLogger:
    """Logs into an existing run. A failure (server gone) is reported once and logging stops; the
    caller's work (training, checkpoints) goes on. `errors` keeps what went wrong."""

    def __init__(self, uri: str, run_id: str):
        # bounded retries: a lost server costs seconds once, not minutes of backoff per call
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        import mlflow

        self.uri = uri
        self.client = mlflow.MlflowClient(uri)
        self.run_id = run_id
        self.errors: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.errors

    def _guard(self, what: str, action: Callable[[], None]) -> None:
        if self.errors:
            return
        try:
            action()
        except Exception as error:  # noqa: BLE001 - any tracking failure must not stop training
            message = f"MLflow logging failed while logging {what} ({type(error).__name__}: {error}); training continues without tracking"
            logger.warning(message)
            print(f"WARNING: {message}", file=sys.stderr)
            self.errors.append(message)

    def metrics(self, values: dict[str, float], step: int) -> None:
        import mlflow

        now = int(time.time() * 1000)  # milliseconds since the epoch: the UI's time axes
        entries = [mlflow.entities.Metric(k, float(v), now, step) for k, v in values.items() if v == v]  # skip NaN
        self._guard("metrics", lambda: self.client.log_batch(self.run_id, metrics=entries))

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which the run already holds metric `key` (empty if it cannot be read)."""
        steps: set[int] = set()
        self._guard(f"the history of {key}", lambda: steps.update(m.step for m in self.client.get_metric_history(self.run_id, key)))
        return steps

    def tags(self, values: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._guard("tags", lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in values.items()]))

    def model(self, name: str, checkpoint_dir: str | os.PathLike, metadata: dict[str, Any],
              registered_model_name: str | None = None, source: str | None = None):
        """Log the checkpoint directory as the MLflow model `name` (with `metadata`; no pickle:
        `daif.model_io.log_model`), registered as a new version of `registered_model_name` if given. The model is
        the run's one MLflow copy of those weights (no run artifact repeats them); the run's tags
        daif.model.<name>.checkpoint and daif.model.<name>.id name the checkpoint it came from (`source`, e.g. Ray's
        copy in the storage; default `checkpoint_dir`) and the logged model. Returns MLflow's ModelInfo, None if
        logging failed."""
        import mlflow

        from daif.model_io import log_model

        logged = []

        def log() -> None:
            mlflow.set_tracking_uri(self.uri)
            with mlflow.start_run(run_id=self.run_id):
                info = log_model(checkpoint_dir, name, metadata, registered_model_name)
                mlflow.set_tags({f"daif.model.{name}.checkpoint": str(source or checkpoint_dir), f"daif.model.{name}.id": info.model_id})
                logged.append(info)

        self._guard(f"the {name}", log)
        return logged[0] if logged else None

    def register(self, model_uri: str, name: str) -> str | None:
        """Register the logged model `model_uri` (runs:/<run_id>/model) as a new version of `name`; return
        models:/<name>/<version>, None if that failed."""
        import mlflow

        versions = []

        def register() -> None:
            mlflow.set_tracking_uri(self.uri)
            versions.append(mlflow.register_model(model_uri, name).version)

        self._guard(f"the registration of {model_uri} as {name}", register)
        return f"models:/{name}/{versions[0]}" if versions else None

    def artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._guard(f"artifact {path}", lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def figure(self, figure, name: str, artifact_path: str = "figures") -> None:
        """Save a matplotlib figure as PNG and log it."""
        from daif.viz import save_figure

        with tempfile.TemporaryDirectory() as directory:
            path = save_figure(figure, Path(directory) / name)
            self.artifact(path, artifact_path)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    import mlflow

    mlflow.MlflowClient(uri).set_terminated(run_id, status)


FAILURE_TAG = "daif.failure"  # why a run ended FAILED: "<ExceptionType>: <message>"


def failure_reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"[:5000]


def fail_run(uri: str, run_id: str, error: BaseException, status: str = "FAILED", tag: str = FAILURE_TAG) -> None:
    """End `run_id` with `status`, the reason in tag `tag`. Never raises: the caller re-raises `error`."""
    try:
        import mlflow

        client = mlflow.MlflowClient(uri)
        client.set_tag(run_id, tag, failure_reason(error))
        client.set_terminated(run_id, status)
    except Exception as tracking_error:  # noqa: BLE001 - the original error is the one to report
        print(f"WARNING: could not mark MLflow run {run_id} {status} ({tracking_error})", file=sys.stderr)


# ------------------------------------------------------------------ `daif ui`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", default="", help="store to show (default: the local store here)")
    parser.add_argument("--port", type=int, default=5000, help="port of the UI on 127.0.0.1")


def check_port_free(port: int, flag: str = "--port") -> None:
    """UsageError when `port` is not a TCP port or something already listens on 127.0.0.1:`port` (a UI started
    there would fail, and the printed address would show the other process)."""
    import socket

    if not 1 <= port <= 65535:
        raise UsageError(f"{flag}: expected a TCP port in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise UsageError(f"{flag}: 127.0.0.1:{port} is in use ({error.strerror}); pick another port") from None


def run(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.tracking_uri)
    check_port_free(args.port)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(args.port)]
    artifact_root = local_artifact_root(uri)
    if artifact_root:
        command += ["--default-artifact-root", artifact_root]
    print(f"MLflow UI for {uri} at http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    return serve_process_group(command)


def serve_process_group(command: list[str]) -> int:
    """Run `command` in its own process group until it exits; SIGTERM, SIGINT or SIGHUP to this process
    stop the whole group (the MLflow server's workers too), as does leaving by any other way."""
    process = subprocess.Popen(command, start_new_session=True)
    stopped = []

    def forward(signum, _frame) -> None:
        stopped.append(signum)
        _signal_group(process.pid, signal.SIGTERM)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        code = process.wait()
    finally:
        _stop_group(process)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if stopped else code


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of `process` (its leader may be gone, its children not), SIGKILL after `grace` s."""
    if not _signal_group(process.pid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process.poll() is not None and not _signal_group(process.pid, 0):
            return
        time.sleep(0.1)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def daif_command() -> list[str]:
    """How to run `daif` again without an activated venv: this executable's full path, else python -m daif.cli."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "daif" and argv0.is_file():
        return [str(argv0.absolute())]
    return [sys.executable, "-m", "daif.cli"]


def ui_command(uri: str) -> str:
    """The one command that opens the UI for `uri`, runnable from any shell."""
    words = [*daif_command(), "ui"]
    if uri != default_tracking_uri():
        words += ["--tracking-uri", uri]
    return shlex.join(words)
