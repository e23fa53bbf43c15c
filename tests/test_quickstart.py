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
    # with the optional second stage, so that both runs and their link are checked
    result = quickstart(str(tmp_path / "qs"), scenes=12, size=(32, 32), tracking_uri=uri, overrides=overrides, finetune_epochs=1)
    out = capsys.readouterr().out
    evaluation = tmp_path / "qs" / "evaluation"
    table = (evaluation / "metrics.md").read_text()
    assert "baseline" in table and "defocus search" in table and table.count("\n|") >= 4  # header, rule, model, baseline, search
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert set(metrics["methods"]) >= {"baseline", "search"}
    summary = json.loads((tmp_path / "qs" / "quickstart.json").read_text())
    assert summary["run_id"] == result["train"].run_id and summary["model_uri"] == f"runs:/{summary['run_id']}/model"
    first = mlflow.MlflowClient(uri).get_run(summary["first_stage"]["run_id"])
    run = mlflow.MlflowClient(uri).get_run(summary["run_id"])  # the second stage's: the model evaluated
    assert first.info.status == run.info.status == "FINISHED" and first.info.run_id != run.info.run_id
    # `daif train --preset quickstart` with the same overrides is exactly what the first stage trained, and
    # `daif train --preset quickstart-finetune --init-from <its best checkpoint>` the second
    shared = [f"data.path={tmp_path / 'qs' / 'store'}", f"tracking.storage={tmp_path / 'qs' / 'runs'}", *overrides]
    best_first = summary["first_stage"]["best_checkpoint"]
    for stage, preset, extra in ((first, "quickstart", []), (run, "quickstart-finetune", [f"train.init_from={best_first}"])):
        for key, value in flatten(load_config(preset=preset, overrides=[*shared, *extra])).items():
            if key != "tracking.tracking_uri":
                assert stage.data.params[key] == str(value), (preset, key)
    assert run.data.tags["daif.first_stage_run_id"] == first.info.run_id
    # the search depth head and its MRF energy in the first stage, the paper's terms in the second
    assert first.data.params["model.depth_head"] == "search" and float(first.data.params["loss.cost"]) > 0
    assert first.data.metrics["train/cost"] > 0 and first.data.metrics["val/cost"] > 0
    assert float(run.data.params["loss.recon"]) == 1000.0 and run.data.metrics["train/blur"] > 0
    assert mlflow.MlflowClient(uri).get_experiment(run.info.experiment_id).name == "daif-quickstart"
    evaluation_run = mlflow.MlflowClient(uri).get_run(result["metrics"]["mlflow"]["run_id"])
    assert evaluation_run.info.experiment_id == run.info.experiment_id  # the evaluation sits beside the training run
    assert evaluation_run.data.tags["mlflow.parentRunId"] == run.info.run_id == evaluation_run.data.tags["daif.training_run_id"]
    assert mlflow.MlflowClient(uri).get_run(run.info.run_id).data.tags["daif.evaluation_run_id"] == evaluation_run.info.run_id
    from daif.tracking import ui_command

    for expected in ("delta1", "MLflow run:", ui_command(uri), str(tmp_path / "qs")):
        assert expected in out
