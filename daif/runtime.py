"""Connecting to Ray: a running cluster when there is one, else a local Ray bound to 127.0.0.1.

A local Ray (no RAY_ADDRESS) listens on 127.0.0.1 only: GCS, raylet, object manager, agents and the
dashboard. Ray 2.60 picks the address its servers bind to in `ray._private.services.get_node_ip_address`,
which returns 127.0.0.1 when `ray_constants.ENABLE_RAY_CLUSTER` is off (the switch Ray itself uses to keep
laptops on loopback, read from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when Ray is imported);
`ray.init(_node_ip_address="127.0.0.1")` does not do it (Ray maps loopback to the machine's address).
Ray's token authentication stays as Ray sets it (on by default in 2.60); only tests turn it off.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

from daif.errors import UsageError

# set by the entrypoints (`daif`, the jobs) and before a local Ray starts, unless the user set them
DEFAULT_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",  # silences a core-worker error on machines without it
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
LOCAL_ONLY_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a Ray started here binds 127.0.0.1 (module docstring)

LOCAL_OBJECT_STORE_BYTES = 2 << 30  # cap: Ray's default takes ~30% of RAM in /dev/shm


def set_default_environment() -> None:
    """`DEFAULT_ENVIRONMENT` for every variable the environment does not set already; without RAY_ADDRESS
    (no cluster to join) also the loopback-only switch, before Ray is imported."""
    for name, value in DEFAULT_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault(LOCAL_ONLY_VARIABLE, "0")


def _bind_loopback() -> None:
    """Make the Ray about to start here listen on 127.0.0.1, also when Ray was imported before the
    environment was set (its constant is read at import)."""
    from ray._private import ray_constants

    if os.environ.get(LOCAL_ONLY_VARIABLE, "0") == "0" and hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def ensure_ray(num_cpus: int | None = None, object_store_memory: int | None = LOCAL_OBJECT_STORE_BYTES) -> bool:
    """Use the running Ray if initialised; else join RAY_ADDRESS's cluster (its resources are its own);
    else start a local Ray with `num_cpus` (default: all) and its dashboard on 127.0.0.1.
    Returns True when this call connected (so the caller may `ray.shutdown()` what it started)."""
    set_default_environment()
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return True
    _bind_loopback()
    ray.init(
        num_cpus=num_cpus,
        object_store_memory=object_store_memory,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
    )
    return True


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[None]:
    """`ensure_ray(num_cpus)` for the block; on leaving it, shut down the Ray this call connected to (one
    that was already initialised stays). Shutting down also ends Ray's progress output before a summary."""
    connected = ensure_ray(num_cpus)
    try:
        yield
    finally:
        if connected:
            import ray

            ray.shutdown()


DATA_CPUS = 0.5  # CPUs a run leaves free for Ray Data's read tasks: with none free they wait forever


def local_cpus(num_cpus: int | None) -> float | None:
    """CPUs of the Ray a command will use: the running one's, else the local Ray it starts (`num_cpus`, default
    every core); None when it joins RAY_ADDRESS's cluster (whose size may change: an autoscaler)."""
    if os.environ.get("RAY_ADDRESS"):
        return None
    import ray

    if ray.is_initialized():
        return float(ray.cluster_resources().get("CPU", 0.0))
    return float(num_cpus if num_cpus is not None else os.cpu_count() or 1)


def check_cpu_request(per_unit: float, units: int, what: str, hint: str, num_cpus: int | None) -> None:
    """Before any Ray work: UsageError when `units` runs of `per_unit` CPUs each (a worker group, concurrent
    trials) cannot start on the local Ray, or would take every CPU so that Ray Data's reads wait forever. Ray
    itself waits without end in both cases. Tune runs fewer trials at once when they do not all fit, so
    `units` is capped at what fits."""
    available = local_cpus(num_cpus)
    if available is None:
        return
    if per_unit > available + 1e-9:
        raise UsageError(f"{what}: one asks for {per_unit:g} CPUs and the local Ray has {available:g} (it would wait "
                         f"forever); {hint}")
    running = min(units, math.floor(available / per_unit + 1e-9)) * per_unit
    if running > available - DATA_CPUS + 1e-9:
        raise UsageError(f"{what}: {running:g} of the local Ray's {available:g} CPUs at once leave less than {DATA_CPUS:g} "
                         f"for Ray Data's reads, which would wait forever; {hint}")


def check_training_cpus(scaling, num_cpus: int | None = None) -> None:
    """`check_cpu_request` for a training run's worker group (its workers start together or not at all)."""
    check_cpu_request(scaling.num_workers * scaling.cpus_per_worker, 1,
                      f"{scaling.num_workers} training worker(s) x scaling.cpus_per_worker {scaling.cpus_per_worker:g}",
                      "lower --num-workers or scaling.cpus_per_worker, or give Ray more CPUs (--num-cpus)", num_cpus)


def cpu_threads(cpus: float) -> int:
    """torch's thread count for a task or worker that reserved `cpus` CPUs: the reservation rounded up
    (0.5 -> 1, 1 -> 1, 1.5 -> 2), so that a fractional share still gets a thread and the threads of the
    processes on a node add up to about its CPUs (torch's default is every core, in every process)."""
    return max(1, math.ceil(cpus - 1e-9))


def on_cluster() -> str:
    """Why the connected Ray is a cluster whose other nodes do not see this machine's files ("" when it is not):
    more than one node is alive, or RAY_ADDRESS names a head off this machine (an autoscaler may add nodes
    later, so one node alive is not proof). Call with Ray initialised."""
    import ray

    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    if alive > 1:
        return f"{alive} Ray nodes are alive"
    address = os.environ.get("RAY_ADDRESS", "")
    host = address.split("://", 1)[-1].rsplit(":", 1)[0] if address else ""
    if host and host not in ("auto", "local", "localhost") and not host.startswith("127."):
        return f"RAY_ADDRESS={address} names a cluster"
    return ""


def check_shared_defaults(storage: str, tracking_uri: str, command: str) -> None:
    """On a cluster (`on_cluster`), refuse the defaults that only this machine sees: checkpoints in ./runs (give
    --storage: a path every node mounts, or an s3:// / gs:// URI) and runs in ./mlflow.db (give --tracking-uri or
    MLFLOW_TRACKING_URI: an MLflow server every node reaches). `storage` and `tracking_uri` are what the user
    gave ("" for the default). UsageError naming both flags."""
    missing = [flag for flag, given in (("--storage", storage), ("--tracking-uri", tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")))
               if not given]
    reason = on_cluster() if missing else ""
    if reason:
        raise UsageError(
            f"{' and '.join(missing)}: required on a Ray cluster ({reason}): the defaults ./runs and ./mlflow.db exist "
            f"on this machine only, so other nodes' workers could not write checkpoints or log to them; pass "
            f"--storage /shared/path-every-node-mounts (or s3://bucket/path) and --tracking-uri http://mlflow-server:5000 "
            f"to daif {command}"
        )
