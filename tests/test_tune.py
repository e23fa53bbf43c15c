"""`daif tune` on a real local Ray Tune with a real MLflow sqlite store: what a search leaves behind."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from daif.checkpoint import load_checkpoint
from daif.cli import main
from daif.config import flatten, load_config, replace
from daif.model_io import load_model
from daif.tune import report
from daif.tune.space import TABLE4, SpaceError, load_space, parse_space
from daif.tune.trial import FAILED_SCORE, MIN_DEPTH_GAIN, STATUS, TRIAL_ID_TAG, depth_gain, final_result, latest_checkpoint, scored

TINY = ["--set", "model.width=4", "--set", "model.levels=2", "--set", "optim.batch_size=4", "--set", "train.figures_every=0"]


# ------------------------------------------------------------------ without Ray


@pytest.mark.parametrize("text, expected", [
    ("loss.recn: {grid: [1, 2]}", "key 'loss.recn': not a config key"),
    ("loss.recon: {grid: []}", "key 'loss.recon': grid needs a non-empty list"),
    ("loss.recon: {uniform: [10, 1]}", "key 'loss.recon': uniform needs lo < hi, got [10, 1]"),
    ("loss.recon: {loguniform: [0, 1]}", "key 'loss.recon': loguniform needs lo > 0"),
    ("model.width: {uniform: [4, 8]}", "key 'model.width': uniform needs a real-valued key"),
    ("loss.coarse_aif: {choice: [hard, sideways]}", "key 'loss.coarse_aif': value 'sideways' rejected"),
    ("tracking.experiment: {grid: [a, b]}", "key 'tracking.experiment': set by the search itself"),
    ("loss.recon: [1, 10", "not valid YAML at line 2"),
    ("loss.recon: {range: [1, 10]}", "key 'loss.recon': expected one of"),
])
def test_a_bad_space_file_is_one_line_naming_the_key_exit_2_before_ray(tmp_path, capsys, monkeypatch, text, expected):
    import daif.runtime

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a bad space")

    monkeypatch.setattr(daif.runtime, "ensure_ray", no_ray)
    space = tmp_path / "space.yaml"
    space.write_text(text + "\n")
    assert main(["tune", "--data", str(tmp_path / "no-store"), "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"daif tune: error: space file {space}: ") and expected in err


def test_a_million_trial_grid_is_refused_before_ray(tmp_path, capsys, monkeypatch):
    import daif.runtime

    monkeypatch.setattr(daif.runtime, "ensure_ray", lambda *a, **k: pytest.fail("Ray was started"))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"loss.recon": {"grid": list(range(1, 1001))}, "loss.blur": {"grid": list(range(1, 1001))}}))
    assert main(["tune", "--data", str(tmp_path / "no-store"), "--space", str(space)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"daif tune: error: --space: {space} with --num-samples 1 makes 1,000,000 trials; at most 1,000")


@pytest.mark.ray
def test_storage_is_an_absolute_path_or_the_uri_as_given_and_one_pyarrow_cannot_open_is_an_error(tiny_store, tmp_path, monkeypatch):
    import argparse

    from daif.storage import StorageError
    from daif.tune.cli import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def options(storage: str):
        return options_from_args(parser.parse_args(["--data", tiny_store, "--space", "table4", "--storage", storage]))

    with pytest.raises(StorageError, match=r"^--storage: nosuchfs://bucket/x: pyarrow cannot open it \(Unrecognized filesystem"):
        options("nosuchfs://bucket/x")
    assert options(f"file://{tmp_path}/runs").storage == f"file://{tmp_path}/runs"
    monkeypatch.chdir(tmp_path)
    assert options("runs").storage == str(tmp_path / "runs")


@pytest.mark.ray
def test_seed_seeds_every_trials_training_and_optuna(tiny_store):
    import argparse

    from daif.tune.cli import add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def options(*extra: str):
        return options_from_args(parser.parse_args(["--data", tiny_store, "--space", "table4", *extra]))

    seeded = options("--seed", "5")
    assert (seeded.seed, seeded.base.train.seed) == (5, 5)
    assert (options().seed, options().base.train.seed) == (0, 0)
    from_config = options("--set", "train.seed=3")
    assert (from_config.seed, from_config.base.train.seed) == (3, 3)


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: grid)" in text and "(default: 2)" in text and "(default: [])" not in text


def test_missing_space_file_and_missing_store_are_errors_naming_them(tmp_path, capsys):
    assert main(["tune", "--data", str(tmp_path), "--space", str(tmp_path / "nope.yaml")]) == 2
    assert f"space file {tmp_path / 'nope.yaml'}: cannot be read" in capsys.readouterr().err
    assert main(["tune", "--data", str(tmp_path / "nothing"), "--space", "table4"]) == 2
    assert str(tmp_path / "nothing") in capsys.readouterr().err
    assert main(["tune", "--data", str(tmp_path), "--space", "table4", "--cpus-per-trial", "0"]) == 2
    assert "--cpus-per-trial" in capsys.readouterr().err
    assert main(["tune", "--data", str(tmp_path), "--space", "table4", "--min-depth-gain", "-0.1"]) == 2
    assert "--min-depth-gain: expected a value >= 0, got -0.1" in capsys.readouterr().err


def test_table4_is_the_papers_grid():
    space = load_space("table4")
    assert space.keys == ["loss.recon", "loss.blur"] and space.grid_size == 12
    assert dict((d.key, d.values) for d in space.dimensions) == {"loss.recon": (1.0, 10.0, 100.0, 1000.0), "loss.blur": (0.1, 1.0, 10.0)}
    assert space.to_dict() == TABLE4


def test_space_values_are_checked_against_the_base_config():
    base = load_config(overrides=["loss.coarse_aif=soft"])
    parse_space({"loss.temperature": {"grid": [0.5, 2.0]}}, "inline", base)
    with pytest.raises(SpaceError, match="key 'loss.temperature': value -1 rejected"):
        parse_space({"loss.temperature": {"grid": [-1]}}, "inline", base)


def test_a_non_finite_loss_is_diverged_with_a_finite_worst_score():
    result = scored({"train/total": float("nan"), "val/total": 1.0, "val/delta1": 0.7, "epoch": 0}, "val/delta1", "max")
    assert result[STATUS] == "diverged" and result["score"] == FAILED_SCORE["max"] and result["epochs_done"] == 1
    healthy = scored({"train/total": 3.0, "val/total": 2.0, "val/abs_rel": 0.3, "epoch": 4}, "val/abs_rel", "min")
    assert STATUS not in healthy and healthy["score"] == 0.3 and healthy["epochs_done"] == 5


def test_latest_checkpoint_is_the_highest_epoch(tmp_path):
    for run, epoch in (("a", 3), ("b", 7), ("c", 5)):
        directory = tmp_path / f"run-{run}" / f"checkpoint_{epoch}"
        directory.mkdir(parents=True)
        (directory / "meta.json").write_text(json.dumps({"epoch": epoch}))
        (directory / "state.pt").write_bytes(b"")
    (tmp_path / "run-d" / "checkpoint_9").mkdir(parents=True)  # no state.pt: an unfinished copy
    (tmp_path / "run-d" / "checkpoint_9" / "meta.json").write_text(json.dumps({"epoch": 9}))
    assert latest_checkpoint(tmp_path) == str(tmp_path / "run-b" / "checkpoint_7")
    assert latest_checkpoint(tmp_path / "empty") is None


def test_table_and_heatmap_show_dashes_for_failed_cells(tmp_path):
    keys = ["loss.recon", "loss.blur"]
    rows = [
        {"trial_id": "t0", "loss.recon": 1.0, "loss.blur": 0.1, "status": "diverged", "final": float("nan"), "best": float("nan")},
        {"trial_id": "t1", "loss.recon": 10.0, "loss.blur": 0.1, "status": "complete", "final": 0.81, "best": 0.904},
        {"trial_id": "t2", "loss.recon": 1.0, "loss.blur": 10.0, "status": "collapsed", "final": 0.3, "best": 0.31,
         "depth_gain": 0.04},
        {"trial_id": "t3", "loss.recon": 10.0, "loss.blur": 10.0, "status": "pruned", "final": 0.5, "best": 0.52},
    ]
    paths = report.write_outputs(rows, keys, "val/delta1", "max", tmp_path, "a: 1\n", "test")
    text = paths["table_md"].read_text()
    assert "| 0.1 | - | 0.904 |" in text and "| 10 | - | 0.520 |" in text  # Table 4's layout: rows blur, columns recon
    assert "| t2 | 1 | 10 | collapsed | - | - | - | 0.04 |" in text  # the collapse test's reading stays shown
    assert paths["heatmap"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "heatmap_delta1" not in paths
    assert report.best_row(rows, "max")["trial_id"] == "t1"  # pruned t3 and collapsed t2 are not candidates
    # ranked on val/recon (min): the cell shows its lowest recon, and beside it, in a second grid and map, the
    # measured delta1 of that same trial, not the cell's highest delta1
    ranked = [{**rows[1], "best": 0.03, "delta1": 0.7}, {**rows[1], "trial_id": "t4", "best": 0.02, "delta1": 0.6},
              {**rows[2], "delta1": 0.9}]
    recon_paths = report.write_outputs(ranked, keys, "val/recon", "min", tmp_path / "recon", None, "test")
    recon_grid, delta1_grid = recon_paths["table_md"].read_text().split("measured with the depth ground truth")
    assert "| 0.1 |  | 0.020 |" in recon_grid and "| 10 | - |  |" in recon_grid
    assert "| 0.1 |  | 0.600 |" in delta1_grid and "| 10 | - |  |" in delta1_grid
    assert recon_paths["heatmap_delta1"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(paths["table_csv"]) as file:
        table = list(csv.DictReader(file))
    assert [r["status"] for r in table] == ["diverged", "complete", "collapsed", "pruned"] and table[2]["best"] == "0.31"
    assert table[2]["depth_gain"] == "0.04" and table[1]["depth_gain"] == ""


# ------------------------------------------------------------------ on a local Ray


def _tune(store, tmp_path, space, *extra, name="search"):
    space_path = tmp_path / f"{name}.yaml"
    space_path.write_text(yaml.safe_dump(space))
    args = ["tune", "--data", store, "--space", str(space_path), "--name", name, "--storage", str(tmp_path / "runs"),
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", *TINY, *extra]
    assert main(args) == 0
    out = tmp_path / "runs" / name / "results"
    with open(out / "table.csv") as file:
        return out, list(csv.DictReader(file))


def _children(tracking_uri: str, parent_run_id: str):
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_run_id}'")


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_grid_search_with_a_diverging_cell_writes_table_heatmap_best_and_mlflow_runs(tiny_store, tmp_path, capsys):
    space = {"loss.recon": {"grid": [10.0, 1000.0]}, "optim.lr": {"grid": [0.002, 1.0e12]}}  # lr 1e12: NaN weights
    out, rows = _tune(tiny_store, tmp_path, space, "--epochs", "2", "--min-depth-gain", "0", "--register", "daif-tuned")
    printed = capsys.readouterr().out
    assert len(rows) == 4
    by_cell = {(float(r["loss.recon"]), float(r["optim.lr"])): r for r in rows}
    assert sorted(by_cell) == [(10.0, 0.002), (10.0, 1e12), (1000.0, 0.002), (1000.0, 1e12)]
    for recon in (10.0, 1000.0):
        assert by_cell[(recon, 1e12)]["status"] == "diverged" and "nan" in by_cell[(recon, 1e12)]["message"]
        good = by_cell[(recon, 0.002)]
        assert good["status"] == "complete" and good["epochs"] == "2" and 0.0 <= float(good["best"]) <= 1.0
        history = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_metric_history
        recon = {m.step: m.value for m in history(good["run_id"], "val/recon")}
        delta1 = {m.step: m.value for m in history(good["run_id"], "val/delta1")}
        chosen = min(recon, key=recon.get)  # the epoch val/recon selected: its delta1 is the one reported
        assert float(good["best"]) == pytest.approx(recon[chosen]) and float(good["delta1"]) == pytest.approx(delta1[chosen])
    table = (out / "table.md").read_text()
    assert "| 1e+12 | - | - |" in table  # the diverged row of the heat-map table
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"

    # best.yaml: the base config with the best cell's values, which trains unchanged
    # trials rank on the validation reconstruction (lower is better), no depth ground truth
    best = min((r for r in rows if r["status"] == "complete"), key=lambda r: float(r["best"]))
    config = load_config(out / "best.yaml")
    assert config.loss.recon == float(best["loss.recon"]) and config.optim.lr == 0.002 and config.train.epochs == 2
    assert config.model.width == 4 and config.data.path == tiny_store and not config.tracking.run_name
    assert "daif train --config " + str(out / "best.yaml") in printed
    # --register without --log-models: the best trial's best checkpoint is logged into its run, once, and registered
    assert "registered model: models:/daif-tuned/1" in printed
    registry = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert registry.get_model_version("daif-tuned", "1").run_id == best["run_id"]
    registered, _ = load_model("models:/daif-tuned/latest", f"sqlite:///{tmp_path}/mlflow.db")
    best_state, _ = load_checkpoint(registry.get_run(best["run_id"]).data.tags["daif.model.model.checkpoint"])
    for key, tensor in registered.state_dict().items():
        torch.testing.assert_close(tensor, best_state["model"][key], rtol=0, atol=0)
    from daif.train.driver import train

    trained = train(replace(config, tracking={"storage": str(tmp_path / "retrain")}), in_process=True, log_models=False)
    assert trained.metrics["epoch"] == 1 and trained.best_metrics["val/recon"] == pytest.approx(float(best["best"]), abs=1e-6)

    # MLflow: the parent with the files, a child per trial with its params and per-epoch metrics
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri)
    search = json.loads((tmp_path / "runs" / "search" / "search.json").read_text())
    parent = client.get_run(search["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_diverged"] == 2
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"table.csv", "table.md", "heatmap.png", "best.yaml", "space.json", "config.yaml"}
    assert json.loads(parent.data.params["search.space"]) == space
    children = _children(tracking_uri, parent.info.run_id)
    assert sorted(c.data.tags[TRIAL_ID_TAG] for c in children) == sorted(r["trial_id"] for r in rows)
    for child in children:
        row = next(r for r in rows if r["trial_id"] == child.data.tags[TRIAL_ID_TAG])
        assert child.data.params["loss.recon"] == str(float(row["loss.recon"])) and child.data.tags["daif.tune.status"] == row["status"]
        expected_params = flatten(load_config(out / "best.yaml"))
        assert set(expected_params) - {"tracking.tracking_uri", "tracking.run_name", "tracking.storage"} <= set(child.data.params)
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "val/recon"))
        if row["status"] == "complete":
            assert child.info.status == "FINISHED" and steps == [0, 1]
            assert child.data.metrics["val/recon"] == pytest.approx(float(row["final"]))
        else:
            assert child.info.status == "FAILED" and steps == []


@pytest.mark.ray
@pytest.mark.parametrize(("raised", "status"), [(RuntimeError("Tuner.fit broke"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_a_search_that_fails_or_is_interrupted_leaves_no_run_running(tiny_store, tmp_path, monkeypatch, raised, status):
    import argparse

    from daif.tune import runner
    from daif.tune.cli import add_arguments, options_from_args

    class Broken:
        def fit(self):
            raise raised

    monkeypatch.setattr(runner, "_tuner", lambda *args: Broken())
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", tiny_store, "--space", "table4", "--name", "broken",
                                      "--storage", str(tmp_path / "runs"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    with pytest.raises(type(raised)):
        runner.run_search(options_from_args(args))
    search = json.loads((tmp_path / "runs" / "broken" / "search.json").read_text())
    parent = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(search["parent_run_id"])
    assert parent.info.status == status and parent.data.tags["daif.failure"].startswith(type(raised).__name__)


@pytest.mark.ray
def test_daif_tune_interrupted_by_sigterm_exits_143_in_one_line(tiny_store, tmp_path, monkeypatch, capsys):
    import signal

    from daif.cli import main
    from daif.signals import Interrupted
    from daif.tune import runner

    class Interrupt:
        def fit(self):
            raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(runner, "_tuner", lambda *args: Interrupt())
    code = main(["tune", "--data", tiny_store, "--space", "table4", "--name", "stopped", "--storage", str(tmp_path / "runs"),
                 "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 143 and err[-1].startswith("daif tune: interrupted by SIGTERM; the search's MLflow runs ended KILLED"), err
    search = json.loads((tmp_path / "runs" / "stopped" / "search.json").read_text())
    assert mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(search["parent_run_id"]).info.status == "KILLED"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_search_whose_every_trial_fails_exits_non_zero(tiny_store, tmp_path, capsys):
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump({"optim.lr": {"grid": [1.0e12]}}))  # NaN weights: diverged
    args = ["tune", "--data", tiny_store, "--space", str(space_path), "--name", "failing", "--storage", str(tmp_path / "runs"),
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--epochs", "1", "--min-depth-gain", "0", *TINY]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "daif tune: error: no trial of 1 trained to completion" in err and "table.md" in err


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_collapse_is_a_depth_that_does_not_explain_the_validation_stacks(tiny_store, tmp_path):
    """The depth gain (reconstruction error with each image's depth flattened over that with the depth, minus 1)
    is large for the scenes' true depth and AIF, which rendered the stacks, exactly 0 for a constant depth, and
    below the threshold for an untrained net, whose depth is nearly constant."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "jobs"))
    from _smoke import untrained_checkpoint

    from daif.data.store import open_store
    from daif.model_io import load_model

    store = open_store(tiny_store)
    config = load_config(overrides=[f"data.path={tiny_store}", "data.mode=fixed", "data.val_split=train"])
    truth = list(store.iter_scenes("train", ("aif", "depth")))
    assert len(truth) > 8  # more than one call of the model (8 scenes a call)

    def oracle(constant: bool):
        scenes = iter(truth)

        def model(stack, focus_distances):
            rows = [next(scenes) for _ in range(stack.shape[0])]
            aif = torch.stack([torch.from_numpy(np.asarray(r["aif"])).permute(2, 0, 1).float() / 255 for r in rows])
            depth = torch.stack([torch.from_numpy(np.asarray(r["depth"], dtype=np.float32))[None] for r in rows])
            return aif, torch.full_like(depth, 2.0) if constant else depth
        return model

    assert depth_gain(oracle(constant=False), config) > 5 * MIN_DEPTH_GAIN
    assert depth_gain(oracle(constant=True), config) == pytest.approx(0.0, abs=1e-12)
    checkpoint = untrained_checkpoint(tmp_path / "untrained", store.camera.to_dict(), store.focus_distances.tolist())
    assert depth_gain(load_model(checkpoint)[0], config) < MIN_DEPTH_GAIN
    # a trial's last result: such a model is "collapsed", and scores as failed; with the test off, "complete"
    trained = types.SimpleNamespace(metrics={"epoch": 1, "val/recon": 0.1, "train/total": 1.0, "val/total": 1.0},
                                    best_metrics={"val/recon": 0.1}, best_checkpoint=checkpoint, latest_checkpoint=checkpoint, run_id="r")
    result = final_result(trained, config, "val/recon", "min", 0.0)
    assert result[STATUS] == "collapsed" and result["depth_gain"] < MIN_DEPTH_GAIN and result["score"] == FAILED_SCORE["min"]
    assert final_result(trained, config, "val/recon", "min", 0.0, min_depth_gain=0)[STATUS] == "complete"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_asha_stops_a_trial_whose_depth_range_cannot_reach_the_scenes(tiny_store, tmp_path):
    # far = 0.2 m: every predicted depth is below 0.2 m, the scenes are metres away: delta1 0 from the first epoch.
    # A study on data with depth, so the trials rank on val/delta1 here (the default, val/recon, uses no ground truth)
    space = {"model.far": {"grid": [10.0, 0.2]}}
    _, rows = _tune(tiny_store, tmp_path, space, "--epochs", "2", "--scheduler", "asha", "--max-concurrent", "1",
                    "--set", "model.near=0.1", "--set", "model.far=10", "--set", "train.val_metric=val/delta1",
                    "--set", "train.val_mode=max", "--min-depth-gain", "0", name="asha")
    by_far = {float(r["model.far"]): r for r in rows}
    assert by_far[10.0]["status"] == "complete" and by_far[10.0]["epochs"] == "2" and float(by_far[10.0]["best"]) > 0
    assert by_far[0.2]["status"] == "pruned" and by_far[0.2]["epochs"] == "1" and float(by_far[0.2]["final"]) == 0.0
    search = json.loads((tmp_path / "runs" / "asha" / "search.json").read_text())
    pruned = next(c for c in _children(f"sqlite:///{tmp_path}/mlflow.db", search["parent_run_id"])
                  if c.data.tags[TRIAL_ID_TAG] == by_far[0.2]["trial_id"])
    assert pruned.info.status == "KILLED" and pruned.data.tags["daif.tune.status"] == "pruned"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_optuna_search_samples_inside_the_space(tiny_store, tmp_path):
    space = {"optim.lr": {"loguniform": [1e-3, 1e-2]}, "loss.smooth": {"choice": [1.0, 10.0]}}
    _, rows = _tune(tiny_store, tmp_path, space, "--epochs", "1", "--search", "optuna", "--num-samples", "3",
                    "--min-depth-gain", "0", name="optuna")  # one-epoch tiny nets have learned no depth
    assert len(rows) == 3
    lrs = [float(r["optim.lr"]) for r in rows]
    assert all(1e-3 <= lr <= 1e-2 for lr in lrs) and len(set(lrs)) == 3
    assert {float(r["loss.smooth"]) for r in rows} <= {1.0, 10.0}
    assert all(r["status"] == "complete" and r["epochs"] == "1" for r in rows)
    assert all(math.isfinite(float(r["final"])) for r in rows)


def _trial_states(root) -> dict[str, str]:
    """Trial id -> status in Tune's saved experiment state (trial result files reach the storage only at the end)."""
    states = {}
    for path in root.glob("experiment_state-*.json"):
        try:
            trials = [json.loads(entry[0]) for entry in json.loads(path.read_text())["trial_data"]]
        except (OSError, ValueError, KeyError, IndexError):  # being replaced right now
            continue
        states.update({t["trial_id"]: t.get("status", "") for t in trials})
    return states


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_killed_search_resumes_and_every_trial_runs_once(ray_local, tiny_store, tmp_path):
    grid = [1.0, 3.0, 10.0]
    space = {"loss.smooth": {"grid": grid}}
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    args = ["tune", "--data", tiny_store, "--space", str(space_path), "--name", "resume", "--storage", str(tmp_path / "runs"),
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--epochs", "2", "--max-concurrent", "1",
            "--min-depth-gain", "0", *TINY]
    # Tune saves its experiment state at most every 10 s by default: every loop here, so that a finished trial is
    # on disk before the search ends (what a resume reads, as after a kill of a long search)
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address, "TUNE_GLOBAL_CHECKPOINT_S": "0"}
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "daif.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    root = tmp_path / "runs" / "resume"
    deadline, finished = time.monotonic() + 600, []
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            states = _trial_states(root)  # what a resume reads: Tune's experiment state
            finished = [trial for trial, state in states.items() if state == "TERMINATED"]
            if finished and "RUNNING" in states.values():  # one trial done, the next one cut short by the kill
                break
            time.sleep(0.5)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        assert finished, "no trial finished in time"
    finally:
        driver.kill()  # SIGKILL: no cleanup, like a lost head node's driver
        driver.wait()
    first = finished[0]
    assert not (root / "results" / "table.csv").exists(), "the search ended before it was killed"

    assert main([*args, "--resume"]) == 0
    with open(root / "results" / "table.csv") as file:
        rows = list(csv.DictReader(file))
    assert sorted(float(r["loss.smooth"]) for r in rows) == grid
    assert all(r["status"] == "complete" and r["epochs"] == "2" for r in rows)
    search = json.loads((root / "search.json").read_text())
    children = _children(f"sqlite:///{tmp_path}/mlflow.db", search["parent_run_id"])
    runs_of = {r["trial_id"]: [c for c in children if c.data.tags[TRIAL_ID_TAG] == r["trial_id"]] for r in rows}
    assert len(runs_of[first]) == 1  # the finished trial was not run again
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert not [c.info.run_id for c in children if c.info.status == "RUNNING"]  # the cut-short trial's first run is ended too
    for trial_id, runs in runs_of.items():
        finished_runs = [c for c in runs if c.info.status == "FINISHED"]
        assert len(finished_runs) == 1, trial_id
        assert sorted(m.step for m in client.get_metric_history(finished_runs[0].info.run_id, "val/delta1")) == [0, 1]


def _another_filesystem(tmp_path: Path) -> Path:
    """A fresh folder on another local filesystem than tmp_path's (/dev/shm, a tmpfs, where it is one), else in tmp_path."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="daif-test-", dir=shm))
    return tmp_path / "b"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
@pytest.mark.parametrize("given", ["file-uri", "another-filesystem"])
def test_a_search_keeps_its_state_trials_and_results_in_the_storage_given(tiny_store, tmp_path, capsys, monkeypatch, given):
    """--storage file://<tmp>/a, or a plain path on another filesystem: Tune's experiment state, every trial's
    checkpoints and results, search.json, the tables and the best trial's evaluation land there (nothing in ./runs),
    and a search stored under a file:// URI resumes into the same parent run."""
    import shutil

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "a" if given == "file-uri" else _another_filesystem(tmp_path)
    given_storage = f"file://{folder}" if given == "file-uri" else str(folder)
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump({"loss.recon": {"grid": [10.0]}}))
    args = ["tune", "--data", tiny_store, "--space", str(space_path), "--name", "stored", "--storage", given_storage,
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--epochs", "1", "--min-depth-gain", "0", *TINY]
    try:
        assert main([*args, "--evaluate-best"]) == 0
        printed = capsys.readouterr().out
        root = folder / "stored"
        assert (root / "tuner.pkl").is_file() and list(root.glob("experiment_state-*.json"))  # what Tuner.restore reads
        [trial_folder] = root.glob("trial_*")
        assert (trial_folder / "result.json").is_file() and (trial_folder / "progress.csv").is_file()
        with open(root / "results" / "table.csv") as file:
            [row] = list(csv.DictReader(file))
        assert row["status"] == "complete" and row["epochs"] == "1"
        [checkpoint] = [p.parent for p in (root / "trials" / row["trial_id"] / "train").glob("daif-*/checkpoint_*/state.pt")]
        assert load_checkpoint(checkpoint)[0]["epoch"] == 0
        search = json.loads((root / "search.json").read_text())
        evaluation = json.loads((root / "results" / "evaluate-best" / "metrics.json").read_text())
        assert 0.0 <= evaluation["delta1"] <= 1.0
        shown = f"{given_storage}/stored/results"  # the files as the storage names them
        assert f"files:            {shown}/table.csv" in printed and f"({shown}/evaluate-best/metrics.md)" in printed
        assert not (tmp_path / "runs").exists()
        client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
        [child] = _children(f"sqlite:///{tmp_path}/mlflow.db", search["parent_run_id"])
        assert child.data.params["tracking.storage"] == f"{given_storage}/stored/trials/{row['trial_id']}/train"
        if given != "file-uri":
            return
        assert main([*args, "--resume"]) == 0  # Tuner.restore from file://...: the finished trial is not run again
        assert json.loads((root / "search.json").read_text()) == search
        assert [c.info.run_id for c in _children(f"sqlite:///{tmp_path}/mlflow.db", search["parent_run_id"])] == [child.info.run_id]
        assert client.get_run(search["parent_run_id"]).info.status == "FINISHED"
        with open(root / "results" / "table.csv") as file:
            assert [r["trial_id"] for r in csv.DictReader(file)] == [row["trial_id"]]
    finally:
        if not folder.is_relative_to(tmp_path):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.ray
def test_resume_without_a_search_is_an_error_before_ray(tmp_path, capsys, monkeypatch, tiny_store):
    import daif.runtime

    monkeypatch.setattr(daif.runtime, "ensure_ray", lambda *a, **k: (_ for _ in ()).throw(AssertionError("Ray started")))
    assert main(["tune", "--data", tiny_store, "--space", "table4", "--storage", str(tmp_path), "--resume"]) == 2
    assert f"--resume: no search to resume in {tmp_path / 'daif-tune'}" in capsys.readouterr().err



@pytest.mark.parametrize("log_models", [False, True])
def test_register_best_registers_the_best_trials_model_whether_or_not_trials_logged_models(tmp_path, log_models):
    from daif.checkpoint import save_checkpoint
    from daif.model import DAIFNet
    from daif.tracking import RunLogger, start_run
    from daif.train.driver import log_checkpoint_model
    from daif.tune.runner import SearchOptions, _register_best

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    torch.manual_seed(0)
    checkpoint = str(save_checkpoint(tmp_path / "ckpt", DAIFNet(width=4, levels=2),
                                     {"camera": {"focal_length": 0.015, "f_number": 2.0, "pixel_size": 1e-5},
                                      "focus_distances": [1.0, 2.0], "depth_range": [0.1, 10.0]}))
    run_id = start_run(uri, "daif-tune", "trial", {}, "")
    if log_models:  # the trial logged its model already: registering must not log the weights again
        log_checkpoint_model(RunLogger(uri, run_id), "model", checkpoint)
    options = SearchOptions(base=None, space=None, log_models=log_models, register="daif-best")
    assert _register_best(uri, {"run_id": run_id, "best_checkpoint": checkpoint}, options) == "models:/daif-best/1"
    client = mlflow.MlflowClient(uri)
    assert client.get_model_version("daif-best", "1").run_id == run_id
    assert len(list((tmp_path / "mlartifacts").rglob("state.pt"))) == 1  # one copy of the weights in MLflow
    model, meta = load_model("models:/daif-best/latest", uri)
    assert meta["focus_distances"] == [1.0, 2.0]
