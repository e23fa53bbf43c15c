"""Connecting to Ray: a running cluster when there is one, else a local Ray bound to 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# set by the entrypoints (`daif`, the jobs) and before a local Ray starts, unless the user set them
DEFAULT_ENVIRONMENT = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",  # silences a core-worker error on machines without it
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

LOCAL_OBJECT_STORE_BYTES = 2 << 30  # cap: Ray's default takes ~30% of RAM in /dev/shm


def set_default_environment() -> None:
    """`DEFAULT_ENVIRONMENT` for every variable the environment does not set already."""
    for name, value in DEFAULT_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def ensure_ray(num_cpus: int | None = None, object_store_memory: int | None = LOCAL_OBJECT_STORE_BYTES) -> bool:
    """Use the running Ray if initialised; else join RAY_ADDRESS's cluster (its resources are its own);
    else start a local Ray with `num_cpus` (default: all) and its dashboard on 127.0.0.1.
    Returns True when this call connected (so the caller may `ray.shutdown()` what it started)."""
    import ray

    if ray.is_initialized():
        return False
    set_default_environment()
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return True
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
