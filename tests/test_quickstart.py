"""The README's main command, at smoke size, on the session's local Ray: what it leaves behind."""

import json

import mlflow
import pytest

from daif.quickstart import RECIPE, quickstart

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def test_quickstart_renders_trains_evaluates_and_reports(ray_local, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = quickstart(str(tmp_path / "qs"), scenes=12, size=(32, 32), epochs=1, num_workers=2, width=4, levels=2,
                        tracking_uri=uri)
    out = capsys.readouterr().out
    evaluation = tmp_path / "qs" / "evaluation"
    table = (evaluation / "metrics.md").read_text()
    assert "baseline" in table and "defocus search" in table and table.count("\n|") >= 4  # header, rule, model, baseline, search
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert 0.0 <= metrics["delta1"] <= 1.0 and set(metrics["methods"]) >= {"baseline", "search"}
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert summary["run_id"] == result["train"].run_id and summary["model_uri"] == f"runs:/{summary['run_id']}/model"
    run = mlflow.MlflowClient(uri).get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    recipe = dict(item.split("=") for item in RECIPE)
    assert float(run.data.params["loss.search"]) == float(recipe["loss.search"]) > 0  # the search term runs through DDP
    assert run.data.metrics["train/search"] >= 0 and run.data.metrics["val/search"] >= 0
    assert mlflow.MlflowClient(uri).get_experiment(run.info.experiment_id).name == "daif-quickstart"
    for expected in ("delta1", "MLflow run:", "daif ui", str(tmp_path / "qs")):
        assert expected in out
