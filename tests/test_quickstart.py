"""The README's main command, at smoke size, on the session's local Ray: what it leaves behind."""

import json

import mlflow
import pytest

from daif.config import flatten, load_config
from daif.quickstart import quickstart

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def test_quickstart_renders_trains_evaluates_and_reports(ray_local, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = ["train.epochs=1", "scaling.num_workers=2", "scaling.cpus_per_worker=0.5", "model.width=4", "model.levels=2"]
    result = quickstart(str(tmp_path / "qs"), scenes=12, size=(32, 32), tracking_uri=uri, overrides=overrides)
    out = capsys.readouterr().out
    evaluation = tmp_path / "qs" / "evaluation"
    table = (evaluation / "metrics.md").read_text()
    assert "baseline" in table and "defocus search" in table and table.count("\n|") >= 4  # header, rule, model, baseline, search
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(metrics["methods"]) >= {"baseline", "search"}
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert summary["run_id"] == result["train"].run_id and summary["model_uri"] == f"runs:/{summary['run_id']}/model"
    run = mlflow.MlflowClient(uri).get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    # `daif train --preset quickstart` with the same overrides is exactly what the quickstart trained
    expected = flatten(load_config(preset="quickstart", overrides=[
        f"data.path={tmp_path / 'qs' / 'store'}", f"tracking.storage={tmp_path / 'qs' / 'runs'}", *overrides]))
    for key, value in expected.items():
        if key != "tracking.tracking_uri":
            assert run.data.params[key] == str(value), key
    # the search depth head and its MRF energy run through DDP
    assert run.data.params["model.depth_head"] == "search" and float(run.data.params["loss.cost"]) > 0
    assert run.data.metrics["train/cost"] > 0 and run.data.metrics["val/cost"] > 0
    assert mlflow.MlflowClient(uri).get_experiment(run.info.experiment_id).name == "daif-quickstart"
    evaluation_run = mlflow.MlflowClient(uri).get_run(result["metrics"]["mlflow"]["run_id"])
    assert evaluation_run.info.experiment_id == run.info.experiment_id  # the evaluation sits beside the training run
    assert evaluation_run.data.tags["mlflow.parentRunId"] == run.info.run_id == evaluation_run.data.tags["daif.training_run_id"]
    assert mlflow.MlflowClient(uri).get_run(run.info.run_id).data.tags["daif.evaluation_run_id"] == evaluation_run.info.run_id
    from daif.tracking import ui_command

    for expected in ("delta1", "MLflow run:", ui_command(uri), str(tmp_path / "qs")):
        assert expected in out
