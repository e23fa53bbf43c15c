"""Shared fixtures: one local Ray per test session (real, 127.0.0.1, 2 CPUs), environment for tests."""

from __future__ import annotations

import os

import pytest

# Tests only: no usage stats, no telemetry, no token auth, no preemption-watcher noise.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the test Ray listens on 127.0.0.1 (daif/runtime.py)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 2 CPUs (or the cluster RAY_ADDRESS names, without passing resources); shut
    down at the end only if this fixture started it."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(
            num_cpus=2,
            object_store_memory=400 * 1024 * 1024,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
        )
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(items):
    """Tests on a real Ray are slow too: `pytest -m "not slow"` is the fast loop."""
    for item in items:
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_store(ray_local, tmp_path_factory):
    """A 14-scene 32x32 synthetic store (nyuv2-5), rendered once per session; tests that change a store copy it."""
    from daif.data.pipeline import render_store

    out = tmp_path_factory.mktemp("store")
    render_store(out=str(out), source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=14, shard_size=8, seed=3)
    return str(out)
