"""The README's main command, at smoke size, on the session's local Ray: what it leaves behind."""

import json

import mlflow
import pytest

from daif.config import flatten, load_config
from daif.quickstart import quickstart

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def test_quickstart_renders_trains_evaluates_and_reports(ray_local, tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = ["train.epochs=1", "model.width=4", "model.levels=2"]  # one worker, as shipped (DDP: test_training.py)
    result = quickstart(str(tmp_path / "qs"), scenes=12, size=(32, 32), tracking_uri=uri, overrides=overrides)
    out = capsys.readouterr().out
    evaluation = tmp_path / "qs" / "evaluation"
    table = (evaluation / "metrics.md").read_text()
    assert "baseline" in table and "defocus search" in table and table.count("\n|") >= 4  # header, rule, model, baseline, search
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(metrics["methods"]) >= {"baseline", "search"}
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert summary["run_id"] == result["train"].run_id and summary["model_uri"] == f"runs:/{summary['run_id']}/model"
    assert summary["preset"] == "quickstart" and summary["selected_on"] == "val/recon"
    client = mlflow.MlflowClient(uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    # `daif train --preset quickstart` with the same overrides is exactly what the quickstart trained
    shared = [f"data.path={tmp_path / 'qs' / 'store'}", f"tracking.storage={tmp_path / 'qs' / 'runs'}", *overrides]
    for key, value in flatten(load_config(preset="quickstart", overrides=shared)).items():
        if key != "tracking.tracking_uri":
            assert run.data.params[key] == str(value), key
    # the paper's model and objective: one regressed depth channel, trained through the reconstruction and the
    # coarse AIF's blur; the checkpoint chosen on the validation reconstruction, not on depth ground truth
    assert run.data.params["model.depth_head"] == "regress" and run.data.params["loss.coarse_aif"] == "soft"
    assert run.data.metrics["train/recon"] > 0 and run.data.metrics["train/blur"] > 0
    assert run.data.params["train.val_metric"] == "val/recon" and run.data.metrics["val/recon"] > 0
    assert client.get_experiment(run.info.experiment_id).name == "daif-quickstart"
    evaluation_run = client.get_run(result["metrics"]["mlflow"]["run_id"])
    assert evaluation_run.info.experiment_id == run.info.experiment_id  # the evaluation sits beside the training run
    assert evaluation_run.data.tags["mlflow.parentRunId"] == run.info.run_id == evaluation_run.data.tags["daif.training_run_id"]
    assert client.get_run(run.info.run_id).data.tags["daif.evaluation_run_id"] == evaluation_run.info.run_id
    from daif.tracking import ui_command

    for expected in ("delta1", "MLflow run:", ui_command(uri), str(tmp_path / "qs"), "val/recon"):
        assert expected in out
