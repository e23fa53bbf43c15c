"""The cluster path as a user walks it: a two-node Ray (two raylets on 127.0.0.1, token auth on), a real
`mlflow server`, and the jobs submitted with `ray job submit --working-dir .` as the README says.

The tests share one cluster (module scope) and run in file order: render, train on both nodes, tune,
evaluate, then lose a node mid-training (the cluster is damaged after that, so it comes last)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers.cluster import NODE_IP, LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(1500)]

TINY_NET = ["--set", "model.width=4", "--set", "model.levels=2", "--set", "scaling.cpus_per_worker=0.5"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.launch_mlflow()  # starts while the nodes come up
        cluster.start_head(cpus=2)
        cluster.add_node("node_b", cpus=2)
        cluster.wait_for_mlflow()
        yield cluster
    finally:
        cluster.close()
    # nothing the cluster started outlives it: the agents of the node killed by the node-loss test stayed behind once
    left = cluster.leftovers()
    described = _describe(left)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the test cluster still alive after close(): {described}"


def _describe(pids: list[int]) -> list[str]:
    described = []
    for pid in pids:
        try:
            described.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes().replace(bytes(1), b' ').decode()[:200]}")
        except OSError:
            described.append(f"{pid}: (gone)")
    return described


@pytest.fixture(scope="module")
def shared(cluster) -> Path:
    """Storage both nodes see (one machine: any local path; on a real cluster a shared volume or a URI)."""
    path = cluster.root / "shared"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def node_ids(cluster) -> dict[str, str]:
    """Custom resource name (head, node_b) -> Ray node id."""
    nodes = cluster.wait_for_nodes(2)
    named = {name: n["NodeID"] for n in nodes for name in ("head", "node_b") if name in n["Resources"]}
    assert set(named) == {"head", "node_b"}, nodes
    return named


def succeeded(result) -> None:
    assert result.returncode == 0, f"job failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def store(cluster, shared) -> Path:
    out = shared / "store"
    succeeded(cluster.submit("python", "jobs/render.py", "--source", "synthetic", "--scenes", "16", "--size", "32x32",
                             "--shard-size", "4", "--camera", "nyuv2-5", "--out", str(out)))
    return out


def mlflow_client(cluster):
    import mlflow

    return mlflow.MlflowClient(cluster.tracking_uri)


def run_named(cluster, experiment: str, name: str):
    client = mlflow_client(cluster)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               f"attributes.run_name = '{name}'")
    assert len(found) == 1, [r.info.run_name for r in found]
    return found[0]


@pytest.fixture(scope="module")
def trained(cluster, shared, store):
    """Two workers, one per node (STRICT_SPREAD), tracking to the MLflow server."""
    succeeded(cluster.submit(
        "python", "jobs/train.py", "--data", str(store), "--num-workers", "2", "--epochs", "2", "--batch-size", "4",
        "--storage", str(shared / "runs"), "--tracking-uri", cluster.tracking_uri, "--experiment", "cluster",
        *TINY_NET, "--set", "scaling.placement_strategy=STRICT_SPREAD", "--set", "tracking.run_name=two-nodes",
        "--set", "train.figures_every=1",
    ))
    return run_named(cluster, "cluster", "two-nodes")


def test_the_jobs_api_refuses_a_client_without_the_token(cluster):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        cluster.jobs_api("", token=None)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        cluster.jobs_api("", token="0" * 64)
    assert wrong.value.code == 403
    assert isinstance(cluster.jobs_api(""), list)  # with the cluster's token: the job list


def test_render_job_writes_a_store_on_shared_storage(store):
    from daif.data.store import open_store

    opened = open_store(str(store))
    assert set(opened.splits) >= {"train", "val", "test"}
    assert sum(opened.num_scenes(s) for s in opened.splits) == 16


def test_training_runs_one_worker_on_each_node_and_logs_through_the_server(cluster, shared, trained, node_ids):
    from daif.checkpoint import load_checkpoint

    tags = trained.data.tags
    assert trained.info.status == "FINISHED"
    # the workers said where they ran, and STRICT_SPREAD put them on different nodes
    assert {tags["daif.worker.0.node_id"], tags["daif.worker.1.node_id"]} == set(node_ids.values())
    assert tags["daif.worker.0.node_ip"] == tags["daif.worker.1.node_ip"] == NODE_IP
    # artifacts went over HTTP to the server, which wrote them under its own destination
    assert trained.info.artifact_uri.startswith("mlflow-artifacts:")
    client = mlflow_client(cluster)
    assert "figures" in {a.path for a in client.list_artifacts(trained.info.run_id)}  # weights: in the logged models only
    served = list((cluster.root / "mlartifacts").rglob("state.pt"))
    assert served, "no checkpoint reached the server's artifact destination"
    import mlflow

    mlflow.set_tracking_uri(cluster.tracking_uri)
    models = mlflow.search_logged_models(experiment_ids=[trained.info.experiment_id], output_format="list")
    assert {"model"} <= {m.name for m in models if m.source_run_id == trained.info.run_id} <= {"model", "final_model"}
    # the checkpoints are on the shared storage and load as tensors
    folders = [f for f in (shared / "runs").glob(f"daif-{trained.info.run_id[:8]}-*/checkpoint_*") if f.is_dir()]
    assert folders
    for folder in folders:
        state, meta = load_checkpoint(folder)
        assert meta["run_id"] == trained.info.run_id and state["model"]
    assert [m.step for m in client.get_metric_history(trained.info.run_id, "val/delta1")] == [0, 1]  # two epochs


def test_tune_job_with_ddp_trials_records_a_parent_and_its_trials_and_evaluates_the_best(cluster, shared, store, node_ids):
    """Each trial a TorchTrainer of two workers, one per node (the Train V2 pattern); the best is evaluated."""
    space = shared / "space.yaml"
    space.write_text("loss.recon: {grid: [10, 100]}\n")
    out = shared / "tune-results"
    succeeded(cluster.submit(
        "python", "jobs/tune.py", "--data", str(store), "--space", str(space), "--epochs", "1", *TINY_NET,
        "--set", "optim.batch_size=4", "--set", "train.figures_every=0", "--min-depth-gain", "0",
        "--set", "scaling.placement_strategy=STRICT_SPREAD", "--num-workers", "2", "--evaluate-best",
        "--max-concurrent", "1", "--name", "cluster-tune", "--storage", str(shared / "runs"),
        "--tracking-uri", cluster.tracking_uri, "--experiment", "cluster-tune", "--out", str(out),
    ))
    import csv

    rows = list(csv.DictReader((out / "table.csv").open()))
    assert sorted(float(r["loss.recon"]) for r in rows) == [10.0, 100.0] and {r["status"] for r in rows} == {"complete"}
    parent = run_named(cluster, "cluster-tune", "cluster-tune")
    client = mlflow_client(cluster)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
    for child in children:  # two DDP workers, one on each node
        assert {child.data.tags[f"daif.worker.{rank}.node_id"] for rank in (0, 1)} == set(node_ids.values())
    assert parent.info.status == "FINISHED"
    report = json.loads((out / "evaluate-best" / "metrics.json").read_text())
    assert report, "the best trial's model was not evaluated"


def test_evaluate_job_reads_the_model_from_the_server(cluster, shared, store, trained):
    out = shared / "eval"
    succeeded(cluster.submit(
        "python", "jobs/evaluate.py", "--model", f"runs:/{trained.info.run_id}/model", "--data", str(store),
        "--split", "test", "--out", str(out), "--tracking-uri", cluster.tracking_uri, "--backend", "ray",
    ))
    report = json.loads((out / "metrics.json").read_text())
    assert report, "evaluate wrote no metrics"


def test_losing_a_node_mid_training_resumes_from_the_latest_checkpoint(cluster, shared, store, node_ids):
    from daif.checkpoint import load_checkpoint

    storage = shared / "runs-node-loss"
    succeeded(cluster.submit(
        "python", "jobs/train.py", "--data", str(store), "--num-workers", "2", "--epochs", "8",
        "--batch-size", "4", "--storage", str(storage), "--tracking-uri", cluster.tracking_uri,
        "--experiment", "cluster", *TINY_NET, "--set", "scaling.placement_strategy=SPREAD",
        "--set", "tracking.run_name=node-loss", "--set", "train.figures_every=0",
        submission_id="node-loss", wait=False, timeout=120,
    ))
    deadline = time.monotonic() + 300
    while not list(storage.glob("*/checkpoint_*/meta.json")):
        assert time.monotonic() < deadline, cluster.job_logs("node-loss")[-6000:]
        assert cluster.job_status("node-loss") in ("PENDING", "RUNNING"), cluster.job_logs("node-loss")[-6000:]
        time.sleep(0.5)
    killed_at = time.monotonic()
    cluster.nodes[1].stop(signal.SIGKILL)  # node_b: its raylet, agents and the training worker on it
    while (status := cluster.job_status("node-loss")) in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline + 300, cluster.job_logs("node-loss")[-6000:]
        time.sleep(2)
    logs = cluster.job_logs("node-loss")
    (cluster.root / "node-loss.log").write_text(f"job ended {time.monotonic() - killed_at:.0f} s after the kill\n{logs}")
    run = run_named(cluster, "cluster", "node-loss")
    assert status == "SUCCEEDED", logs[-6000:]  # FailureConfig(max_failures=1): restarted on what was left
    assert run.info.status == "FINISHED"
    history = mlflow_client(cluster).get_metric_history(run.info.run_id, "val/delta1")
    assert sorted({m.step for m in history}) == list(range(8))  # every epoch logged, none lost (one cut off by the kill may log twice)
    # after the restart both workers ran on the head
    assert run.data.tags["daif.worker.0.node_id"] == run.data.tags["daif.worker.1.node_id"] == node_ids["head"]
    folders = [f for f in storage.glob("*/checkpoint_*") if f.is_dir()]
    assert folders
    for folder in folders:
        state, meta = load_checkpoint(folder)  # none left half-written
        assert meta["run_id"] == run.info.run_id
