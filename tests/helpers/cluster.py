"""A real multi-node Ray cluster and a real MLflow server on this machine, started the way a user starts
them (`ray start --head`, `ray start --address`, `mlflow server`), for the cluster tests.

Every node's `ray start` leads a session of its own, which its processes (raylet, GCS, agents, workers)
inherit, and gets its own `--temp-dir`, which the raylet and GCS carry in their command lines:
`Node.stop()` signals exactly those PIDs, never `ray stop` (which stops every Ray on the machine). The
session finds the agents too, which Ray renames (`ray::DashboardAgent`) and which outlive a SIGKILLed
raylet with parent 1 (`tests.helpers.processes`). Every port is a free one picked here (two Rays on one machine collide on the
defaults). Token authentication stays on, as on a user's cluster: one random token, passed to every
node and client in RAY_AUTH_TOKEN with RAY_AUTH_MODE=token (`~/.ray/auth_token` is not touched).

Addresses: the nodes advertise NODE_IP (loopback) and every client talks to loopback only; the MLflow
server and the dashboard bind 127.0.0.1. Ray's GCS and raylets, though, listen on all interfaces once
multi-node clusters are enabled (Ray 2.60 has no switch for that); the token is what guards them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from tests.helpers.processes import processes_of, stop_processes

BIN = Path(sys.executable).parent  # the environment that has the project: its `ray`, `mlflow`, `python`
REPO = Path(__file__).resolve().parents[2]
# The nodes' address: loopback, but not 127.0.0.1 itself, which `ray start` replaces with the machine's
# own (reachable) address when multi-node clusters are enabled. All of 127.0.0.0/8 is loopback on Linux.
NODE_IP = "127.0.0.2"


_HANDED_OUT: set[int] = set()  # every port free_ports has returned in this process


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now (held open together so that none repeats), none returned
    before by this process: a port handed to a component that has not bound it yet still looks free to the OS, and
    `ray start` refuses one port named for two components (a head's dashboard port drawn again as its agent's)."""
    ports: list[int] = []
    with ExitStack() as stack:
        while len(ports) < count:
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                ports.append(port)
    _HANDED_OUT.update(ports)
    return ports


def cluster_environment(token: str) -> dict[str, str]:
    """The environment of every node and client: the project's bin first on PATH (so that jobs run with
    it), token auth on, no usage stats or telemetry, no inherited cluster address or tracking URI."""
    drop = {"RAY_ADDRESS", "MLFLOW_TRACKING_URI", "RAY_AUTH_TOKEN_PATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # "0" (daif.runtime's single-node switch) refuses a second node
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


class Node:
    """One `ray start` node: its session (the PID of its `ray start`) and its temp dir mark its processes."""

    def __init__(self, name: str, temp_dir: Path):
        self.name, self.temp_dir = name, temp_dir
        self.session: int | None = None

    def _marks(self) -> dict:
        return {"sessions": [self.session] if self.session else [], "texts": [f"{self.temp_dir}/", f"--temp-dir={self.temp_dir}"]}

    def pids(self) -> list[int]:
        return processes_of(**self._marks())

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 8.0) -> None:
        """Signal this node's processes (and SIGKILL what is left after `timeout`)."""
        stop_processes(**self._marks(), signum=signum, timeout=timeout)


class LocalCluster:
    """A head node, worker nodes and an MLflow server, all on 127.0.0.1; `close()` stops what it started."""

    def __init__(self, root: Path):
        self.root = root
        self.token = secrets.token_hex(32)
        self.env = cluster_environment(self.token)
        self.nodes: list[Node] = []
        self.gcs_port, self.dashboard_port, self.client_port = free_ports(3)
        self.mlflow: subprocess.Popen | None = None
        self.tracking_uri = ""

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start_node(self, name: str, cpus: int, head_args: list[str]) -> Node:
        # a short temp dir: Ray's socket paths must stay under 107 bytes
        node = Node(name, Path(tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp")))
        agent, agent_grpc, runtime_env, metrics, manager, objects = free_ports(6)
        command = [
            str(BIN / "ray"), "start", f"--node-ip-address={NODE_IP}", "--disable-usage-stats",
            f"--num-cpus={cpus}", f"--resources={json.dumps({name: 1})}", f"--temp-dir={node.temp_dir}",
            "--object-store-memory=300000000", f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
            f"--metrics-export-port={metrics}", f"--node-manager-port={manager}", f"--object-manager-port={objects}",
            *head_args,
        ]
        self.nodes.append(node)  # before starting: close() stops a half-started node too
        starter = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        node.session = starter.pid  # every process of the node inherits the session `ray start` leads
        stdout, stderr = starter.communicate(timeout=180)
        if starter.returncode != 0:
            raise RuntimeError(f"ray start failed for node {name}:\n{stdout}\n{stderr}")
        return node

    def start_head(self, cpus: int = 2) -> Node:
        return self._start_node("head", cpus, [
            "--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={self.client_port}",
            # notice a lost node within seconds, not the default half minute
            '--system-config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3}',
        ])

    def add_node(self, name: str, cpus: int = 2) -> Node:
        return self._start_node(name, cpus, [f"--address={self.address}"])

    def launch_mlflow(self) -> None:
        """Start `mlflow server` (SQLite backend, served artifacts under root, 127.0.0.1, a free port)."""
        (port,) = free_ports(1)
        log = open(self.root / "mlflow-server.log", "w")  # noqa: SIM115 - lives as long as the server
        self.mlflow = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "mlartifacts")],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.tracking_uri = f"http://127.0.0.1:{port}"

    def wait_for_mlflow(self, timeout: float = 120.0) -> str:
        """The server's URI, once it answers /health."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mlflow.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'mlflow-server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self.tracking_uri
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer /health within {timeout:.0f} s")

    def wait_for_nodes(self, count: int, timeout: float = 120.0) -> list[dict]:
        """The cluster's alive nodes (ray.nodes() rows), once `count` are alive."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = [n for n in self.nodes_info() if n["Alive"]]
            if len(nodes) >= count or time.monotonic() > deadline:
                return nodes
            time.sleep(1)

    def nodes_info(self) -> list[dict]:
        """ray.nodes() of this cluster, read by a client process (as a user's script would)."""
        script = "import json, ray; ray.init(address='auto', log_to_driver=False); print(json.dumps(ray.nodes()))"
        result = subprocess.run([sys.executable, "-c", script], env=self.env | {"RAY_ADDRESS": self.address},
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"could not list the cluster's nodes:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def submit(self, *entrypoint: str, submission_id: str | None = None, wait: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess:
        """`ray job submit --working-dir <repo> -- <entrypoint>` (the README's command); waits for the job
        unless `wait` is False (then poll `job_status(submission_id)`)."""
        options = ([] if wait else ["--no-wait"]) + (["--submission-id", submission_id] if submission_id else [])
        return subprocess.run(
            [str(BIN / "ray"), "job", "submit", *options, "--address", self.dashboard, "--working-dir", str(REPO),
             "--", *entrypoint],
            env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
        )

    def jobs_api(self, path: str, token: str | None = "") -> dict:
        """GET the dashboard's Jobs REST API (`/api/jobs/...`) with the cluster's token as a Bearer token
        (`token=None`: without one). Cheap to poll, unlike a `ray job status` process."""
        request = urllib.request.Request(f"{self.dashboard}/api/jobs/{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def job_status(self, submission_id: str) -> str:
        """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        return self.jobs_api(submission_id)["status"]

    def job_logs(self, submission_id: str) -> str:
        return self.jobs_api(f"{submission_id}/logs")["logs"]

    def close(self) -> None:
        """Stop the MLflow server's process group and every node's processes, worker nodes first."""
        if self.mlflow is not None and self.mlflow.poll() is None:
            os.killpg(self.mlflow.pid, signal.SIGTERM)
            try:
                self.mlflow.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.mlflow.pid, signal.SIGKILL)
        for node in reversed(self.nodes):
            node.stop()
            shutil.rmtree(node.temp_dir, ignore_errors=True)

    def leftovers(self) -> list[int]:
        """PIDs still alive of any process this cluster started: a node's session, or a command line or working
        directory naming a node's temp dir or the cluster's root (the MLflow server, jobs)."""
        return processes_of(sessions=[n.session for n in self.nodes if n.session],
                            texts=[f"{self.root}/", *(f"{n.temp_dir}/" for n in self.nodes),
                                   *(f"--temp-dir={n.temp_dir}" for n in self.nodes)])
