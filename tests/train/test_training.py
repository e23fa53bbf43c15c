"""Training on a real local Ray (Train + Data) with a real MLflow store: what a run leaves behind."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from daif.config import flatten, load_config, replace
from daif.data.store import open_store
from daif.errors import UsageError
from daif.model import DAIFNet
from daif.model_io import load_model
from daif.tracking import TrackingUnavailable
from daif.train.driver import train
from daif.checkpoint import load_checkpoint
from daif.train.loop import lr_factor, train_loop_per_worker

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def _config(store: str, tmp_path: Path, **sections):
    base = load_config(overrides=[
        f"data.path={store}", "model.width=4", "model.levels=2", "optim.batch_size=4", "train.epochs=2",
        "train.figures_every=1", f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.storage={tmp_path}/runs", "scaling.cpus_per_worker=0.5",
    ])
    return replace(base, **sections) if sections else base


@pytest.mark.timeout(600)
def test_two_cpu_workers_log_params_metrics_figures_a_loadable_model_and_stop_early_together(tiny_store, tmp_path):
    """Two DDP workers; only rank 0 validates and the other must follow its early-stopping decision
    (else DDP hangs: the timeout). The network is the quickstart-search preset's ("search" depth head, "select" AIF
    head) with its MRF energy beside the paper's terms, here under DDP."""
    config = _config(tiny_store, tmp_path, scaling={"num_workers": 2}, model={"depth_head": "search", "aif_head": "select"},
                     loss={"cost": 1.0, "cost_smooth": 0.1},
                     train={"epochs": 4, "patience": 1, "val_metric": "val/recon", "val_mode": "min", "figures_every": 1})
    result = train(config)
    client = mlflow.MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    for key, value in flatten(config).items():
        if key != "tracking.tracking_uri":
            assert params[key] == str(value), key
    assert params["data.manifest_hash"] == open_store(tiny_store).manifest_hash
    tags = run.data.tags
    assert tags["daif.version.torch"] == importlib.metadata.version("torch") and len(tags["mlflow.source.git.commit"]) == 40
    assert not [key for key in params if key.startswith("version.") or key == "git_commit"]

    recon = [m.value for m in sorted(client.get_metric_history(result.run_id, "val/recon"), key=lambda m: m.step)]
    last = next((i for i in range(1, len(recon)) if recon[i] >= min(recon[:i])), 3)  # first epoch without improvement
    assert result.metrics["epoch"] == last
    for name in ("train/recon", "train/total", "train/cost", "val/recon", "val/cost_smooth", "val/delta1", "val/abs_rel", "val/psnr", "val/ssim",
                 "train/samples_per_s"):  # psnr / ssim: every rendered scene has its true AIF
        history = client.get_metric_history(result.run_id, name)
        assert sorted(m.step for m in history) == list(range(last + 1)), name
    assert all(0.0 <= value <= 1.0 for value in recon)  # alpha (1 - SSIM) + (1 - alpha) L1 of [0, 1] images
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "figures")}
    assert artifacts == {f"figures/epoch_{epoch:04d}.png" for epoch in range(last + 1)}
    assert "config.yaml" in {a.path for a in client.list_artifacts(result.run_id)}

    model, _ = load_model(result.model_uri, result.tracking_uri)  # daif's loader: tensors only, no pickle
    assert isinstance(model, DAIFNet)
    with torch.no_grad():
        aif, depth = model(torch.rand(1, 3, 3, 24, 40), torch.tensor([[1.0, 2.5, 6.0]]))
    assert aif.shape == (1, 3, 24, 40) and depth.shape == (1, 1, 24, 40)
    assert float(depth.min()) >= 0.1 - 1e-6 and float(depth.max()) <= 10.0 + 1e-6  # the store's depth clip

    state, meta = load_checkpoint(result.best_checkpoint)
    assert set(state) == {"model", "optimizer", "step", "epoch"}
    assert meta["manifest_hash"] == open_store(tiny_store).manifest_hash
    assert meta["camera"] == open_store(tiny_store).camera.to_dict()
    # 10 training scenes, 2 workers: 5 rows each, per-worker batch 2 -> 3 steps an epoch
    assert state["epoch"] in range(last + 1) and state["step"] == 3 * (state["epoch"] + 1)
    saved = yaml.safe_load((Path(result.best_checkpoint) / "config.yaml").read_text())
    assert saved["model"]["width"] == 4 and saved["data"]["path"] == tiny_store


def test_the_learning_rate_warms_up_linearly_then_anneals_over_the_remaining_steps():
    # 4 warm-up steps of 12: 1/4, 2/4, 3/4, 1, then cos annealing over the other 8 steps
    factors = [lr_factor(step, 12, "cosine", warmup_steps=4) for step in range(14)]
    expected = [0.25, 0.5, 0.75, 1.0, 1.0, 0.9619, 0.8536, 0.6913, 0.5, 0.3087, 0.1464, 0.0381, 0.0, 0.0]
    assert factors == pytest.approx(expected, abs=1e-4)
    assert [lr_factor(step, 12, "constant", warmup_steps=2) for step in (0, 1, 2, 11)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(6, 12, "cosine") == pytest.approx(0.5)  # no warm-up: the cosine over all steps


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_store, tmp_path):
    # the uninterrupted reference and the interrupted first part run the same loop in this process (no worker
    # group to start); the resume runs on Ray Train
    # a warm-up of 1.5 epochs: the interruption falls inside it
    warmup = {"warmup_epochs": 1.5}
    whole = train(_config(tiny_store, tmp_path / "whole", train={"epochs": 3, "figures_every": 0}, optim=warmup), in_process=True)
    first = train(_config(tiny_store, tmp_path / "split", train={"epochs": 3, "stop_after": 1, "figures_every": 0}, optim=warmup),
                  in_process=True)
    assert first.metrics["epoch"] == 0
    resumed = train(_config(tiny_store, tmp_path / "split", train={"epochs": 3, "figures_every": 0}, optim=warmup),
                    resume=first.latest_checkpoint)
    assert resumed.metrics["epoch"] == 2 and resumed.run_id == first.run_id  # the same MLflow run goes on
    for key in ("train/total", "val/total", "val/abs_rel", "lr"):
        assert resumed.metrics[key] == pytest.approx(whole.metrics[key], rel=1e-4, abs=1e-7), key
    whole_state, _ = load_checkpoint(whole.latest_checkpoint)
    resumed_state, _ = load_checkpoint(resumed.latest_checkpoint)
    for name, tensor in whole_state["model"].items():
        torch.testing.assert_close(resumed_state["model"][name], tensor, rtol=1e-4, atol=1e-6)
    history = mlflow.MlflowClient(resumed.tracking_uri).get_metric_history(resumed.run_id, "train/total")
    assert sorted(m.step for m in history) == [0, 1, 2]


def test_a_file_uri_storage_holds_the_checkpoints_and_daif_train_resumes_from_one_named_by_uri(tiny_store, tmp_path, capsys):
    """--storage file://...: the in-process trainer and Ray Train write their checkpoints there, name them by URI,
    and `daif train --resume <checkpoint URI>` continues the same MLflow run on Ray Train."""
    from daif.cli import main

    storage = f"file://{tmp_path}/uri-runs"
    first = train(_config(tiny_store, tmp_path, tracking={"storage": storage}, train={"epochs": 2, "stop_after": 1, "figures_every": 0}),
                  in_process=True)
    assert first.storage_path.startswith(f"{storage}/daif-") and first.latest_checkpoint.startswith(f"{first.storage_path}/checkpoint_")
    assert load_checkpoint(first.latest_checkpoint.removeprefix("file://"))[0]["epoch"] == 0
    client = mlflow.MlflowClient(first.tracking_uri)
    assert client.get_run(first.run_id).data.tags["daif.model.model.checkpoint"] == first.best_checkpoint  # named by its URI
    code = main(["train", "--data", tiny_store, "--set", "model.width=4", "--set", "model.levels=2", "--set", "optim.batch_size=4",
                 "--set", "train.epochs=2", "--set", "train.figures_every=0", "--set", "scaling.num_workers=1",
                 "--set", "scaling.cpus_per_worker=0.5", "--tracking-uri", first.tracking_uri, "--storage", storage,
                 "--resume", first.latest_checkpoint])
    out = capsys.readouterr().out
    assert code == 0 and f"resuming MLflow run {first.run_id}" in out and f"MLflow run:       {first.run_id}" in out
    resumed = [line.split()[-1] for line in out.splitlines() if line.startswith("best checkpoint:")][0]
    assert resumed.startswith(f"{storage}/daif-") and not resumed.startswith(first.storage_path)  # the resume's own run folder
    assert load_checkpoint(resumed.removeprefix("file://"))[0]["epoch"] in (0, 1)
    assert sorted(m.step for m in client.get_metric_history(first.run_id, "train/total")) == [0, 1]
    run_folders = sorted(p.name for p in (tmp_path / "uri-runs").iterdir())
    assert len(run_folders) == 2 and not (tmp_path / "runs").exists()


def _loop_failing_once_at_epoch_1(loop_config):
    """`train_loop_per_worker` whose report of epoch 1 raises, once (a marker file in the storage says so)."""
    import ray.train

    marker = Path(loop_config["config"]["tracking"]["storage"]) / "fault-injected"
    real_report = ray.train.report

    def report(metrics, checkpoint=None, **options):
        if metrics["epoch"] == 1 and not marker.exists():
            marker.write_text("injected")
            raise RuntimeError("injected fault at epoch 1")
        return real_report(metrics, checkpoint=checkpoint, **options)

    ray.train.report = report
    try:
        train_loop_per_worker(loop_config)
    finally:
        ray.train.report = real_report


def test_a_worker_failure_restarts_from_the_latest_checkpoint(tiny_store, tmp_path):
    config = _config(tiny_store, tmp_path, train={"epochs": 3, "figures_every": 0}, scaling={"num_workers": 1, "max_failures": 1})
    result = train(config, train_loop=_loop_failing_once_at_epoch_1)
    assert result.metrics["epoch"] == 2
    assert (tmp_path / "runs" / "fault-injected").exists()  # the fault did fire
    state, _ = load_checkpoint(result.latest_checkpoint)
    assert state["epoch"] == 2 and state["step"] == 3 * 3  # 10 scenes, batch 4: 3 steps an epoch, none lost


def test_init_from_starts_a_new_run_from_the_given_weights_and_refuses_another_architecture(tiny_store, tmp_path):
    source = train(_config(tiny_store, tmp_path, train={"epochs": 1, "figures_every": 0}), in_process=True, register="daif-test")
    assert source.registered_uri == "models:/daif-test/1"  # the best model, registered (a real sqlite store)
    registered, _ = load_model("models:/daif-test/latest", source.tracking_uri)
    best_state, _ = load_checkpoint(source.best_checkpoint)
    for name, tensor in registered.state_dict().items():
        torch.testing.assert_close(tensor, best_state["model"][name], rtol=0, atol=0)
    client = mlflow.MlflowClient(source.tracking_uri)
    assert client.get_model_version("daif-test", "1").run_id == source.run_id
    # weights stored once in MLflow: one epoch, so best == final and only "model" is logged; no checkpoints/ artifacts
    assert "checkpoints" not in {a.path for a in client.list_artifacts(source.run_id)}
    assert client.get_run(source.run_id).data.tags["daif.model.model.checkpoint"] == source.best_checkpoint
    assert len(list((tmp_path / "mlartifacts").rglob("state.pt"))) == 1
    # lr 0 (AdamW's decay is lr x weight_decay): the fine-tuned weights must stay exactly the source's
    frozen = _config(tiny_store, tmp_path, train={"epochs": 1, "figures_every": 0, "init_from": source.model_uri},
                     optim={"lr": 0.0})
    tuned = train(frozen, in_process=True)
    assert tuned.run_id != source.run_id and tuned.metrics["epoch"] == 0  # a new run, from epoch 0
    source_state, _ = load_checkpoint(source.latest_checkpoint)
    tuned_state, _ = load_checkpoint(tuned.latest_checkpoint)
    for name, tensor in source_state["model"].items():
        torch.testing.assert_close(tuned_state["model"][name], tensor, rtol=0, atol=0)
    assert tuned.metrics["val/total"] == pytest.approx(source.metrics["val/total"], rel=1e-6)  # same net, same split
    client = mlflow.MlflowClient(tuned.tracking_uri)
    assert client.get_run(tuned.run_id).data.params["train.init_from"] == source.model_uri
    experiment = client.get_run(tuned.run_id).info.experiment_id
    wider = _config(tiny_store, tmp_path, model={"width": 8}, train={"init_from": source.latest_checkpoint})
    with pytest.raises(UsageError, match="train.init_from: .* width=4; this config builds width=8"):
        train(wider, in_process=True)
    assert len(client.search_runs([experiment])) == 2  # refused before any run


def test_explicit_camera_that_disagrees_with_the_store_is_an_error(tiny_store, tmp_path):
    with pytest.raises(ValueError, match="data.camera"):
        train(_config(tiny_store, tmp_path, data={"camera": "defocusnet"}))


def test_unreachable_tracking_server_fails_fast(tiny_store, tmp_path):
    import socket

    with socket.socket() as probe:  # a free port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TrackingUnavailable, match=f"127.0.0.1:{port}"):
        train(_config(tiny_store, tmp_path, tracking={"tracking_uri": f"http://127.0.0.1:{port}"}))
    assert not (tmp_path / "runs").exists()  # nothing started


def test_checkpoint_state_loads_safely(tiny_store, tmp_path):
    """weights_only=True refuses arbitrary objects: a checkpoint holding one does not load."""
    directory = tmp_path / "bad"
    directory.mkdir()
    torch.save({"model": {}, "payload": np.dtype("float32")}, directory / "state.pt")
    (directory / "meta.json").write_text(json.dumps({}))
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        load_checkpoint(directory)

