"""`daif evaluate`: files, values equal to daif.metrics recomputed here, the generalisation study,
the Ray Data path with an MLflow model URI, MLflow logging."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from daif.baseline import depth_from_focus
from daif.search import defocus_search
from daif.data.bins import BinSampler
from daif.data.store import open_store
from daif.losses import coarse_aif, reconstruction_errors
from daif.metrics import depth_metrics
from daif.model import DAIFNet

pytestmark = pytest.mark.timeout(240)


def write_checkpoint(directory: Path, net: DAIFNet, store) -> Path:
    """A checkpoint directory as the training loop writes it (state.pt + meta.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "optimizer": {}, "step": 0, "epoch": 0}, directory / "state.pt")
    meta = {"model": net.config, "camera": store.camera.to_dict(), "focus_distances": store.focus_distances.tolist(),
            "depth_range": [net.near, net.far], "epoch": 0, "step": 0}
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


@pytest.fixture(scope="module")
def store_and_model(ray_local, tmp_path_factory):
    """(store path, checkpoint directory, the net) on a 10-scene 32x32 nyuv2-5 store (2 test scenes)."""
    from daif.data.pipeline import render_store

    root = tmp_path_factory.mktemp("evaluate")
    render_store(out=str(root / "store"), source="synthetic", preset="nyuv2-5", size=(32, 32), scenes=10, shard_size=8)
    store = open_store(str(root / "store"))
    torch.manual_seed(0)
    net = DAIFNet(width=4, levels=2).eval()
    return root / "store", write_checkpoint(root / "ckpt", net, store), net


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    """One sqlite store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def direct_predictions(store_path: Path, net: DAIFNet, indices) -> dict[str, torch.Tensor]:
    """Model, baseline and search depth on the test scenes' stacks at `indices`, and the model's reconstruction
    error, computed here."""
    store = open_store(str(store_path))
    scenes = list(store.iter_scenes("test"))
    stack = torch.from_numpy(np.stack([s["stack"][list(indices)] for s in scenes]).transpose(0, 1, 4, 2, 3).copy()).float() / 255
    focus = torch.tensor(store.focus_distances[list(indices)]).expand(len(scenes), -1)
    with torch.no_grad():
        model_aif, model_depth = net(stack, focus)
        model_recon = reconstruction_errors(stack, focus, model_aif, model_depth, store.camera)["recon"]
    return {
        "daif-net": model_depth,
        "daif-net recon": model_recon,  # (B,), no ground truth
        "baseline": depth_from_focus(stack, focus, store.camera)[0],
        "search": defocus_search(stack, focus, store.camera, net.near, net.far, kernel_size=store.kernel_size),  # over the model's depth range
        "gt": torch.from_numpy(np.stack([s["depth"] for s in scenes]))[:, None],
        "valid": torch.from_numpy(np.stack([s["valid"] for s in scenes]))[:, None],
    }


def assert_metrics_equal(written: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert written[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_recon_through_a_disc_is_the_disc_re_rendering_error_and_a_bad_psf_is_refused(store_and_model, tmp_path):
    from daif.evaluate import evaluate

    store_path, checkpoint, net = store_and_model
    result = evaluate(str(checkpoint), store_path, "test", tmp_path / "disc", stack_sizes=[5], backend="local",
                      track=False, recon_psf="disc")
    store = open_store(str(store_path))
    scenes = list(store.iter_scenes("test"))
    indices = list(BinSampler(5, 5, "middle").fixed)
    stack = torch.from_numpy(np.stack([s["stack"][indices] for s in scenes]).transpose(0, 1, 4, 2, 3).copy()).float() / 255
    focus = torch.tensor(store.focus_distances[indices]).expand(len(scenes), -1)
    with torch.no_grad():  # the search's depth and AIF explain the stack closely: there the PSF shows
        depth = defocus_search(stack, focus, store.camera, net.near, net.far, kernel_size=store.kernel_size)
        aif = coarse_aif(stack, focus, depth, store.camera)
        disc_errors = reconstruction_errors(stack, focus, aif, depth, store.camera, psf="disc")
        disc = disc_errors["recon"]
        gaussian = reconstruction_errors(stack, focus, aif, depth, store.camera)["recon"]
    assert result["recon_psf"] == "disc"
    assert result["methods"]["search"]["aif"]["recon"] == pytest.approx(float(disc.mean()), rel=1e-5)
    assert result["methods"]["search"]["aif"]["detail"] == pytest.approx(float(disc_errors["detail"].mean()), rel=1e-5)
    assert float(disc.mean()) != pytest.approx(float(gaussian.mean()), rel=0.01)  # another renderer, another figure
    assert "through a disc PSF" in result["markdown"]
    with pytest.raises(ValueError, match="recon_psf"):
        evaluate(str(checkpoint), store_path, "test", tmp_path / "bad", backend="local", track=False, recon_psf="box")


def test_evaluate_writes_metrics_equal_to_daif_metrics(store_and_model, tracking_uri, tmp_path):
    from daif.evaluate import evaluate

    store_path, checkpoint, net = store_and_model
    uri = tracking_uri
    result = evaluate(str(checkpoint), store_path, "test", tmp_path / "eval", stack_sizes=[2, 3, 5, 8],
                      focus_sets=["1.2,2,3,5,7"], max_depths=[3.0], backend="local", tracking_uri=uri)
    out = tmp_path / "eval"
    written = json.loads((out / "metrics.json").read_text())
    main = direct_predictions(store_path, net, BinSampler(5, 5, "middle").fixed)

    for method in ("daif-net", "baseline", "search"):
        section = written["methods"][method]
        for reduction in ("image", "pixel"):
            assert_metrics_equal(section[reduction], depth_metrics(main[method], main["gt"], main["valid"], reduction=reduction))
            masked = depth_metrics(main[method], main["gt"], main["valid"], max_depth=3.0, reduction=reduction)
            assert_metrics_equal(section[f"{reduction}_max3m"], masked)
    assert written["methods"]["daif-net"]["aif"]["recon"] == pytest.approx(float(main["daif-net recon"].mean()), rel=1e-5)
    image = depth_metrics(main["daif-net"], main["gt"], main["valid"])
    assert_metrics_equal({k: written[k] for k in ("abs_rel", "sq_rel", "rmse", "rmse_log10", "delta1", "delta2", "delta3")}, {
        k: image[k] for k in ("abs_rel", "sq_rel", "rmse", "rmse_log10", "delta1", "delta2", "delta3")})
    assert written["stack"]["focus_distances"] == pytest.approx([1.0, 1.5, 2.5, 4.0, 6.0])
    assert written["scenes"] == 2 and written == {k: v for k, v in result.items() if k not in ("markdown", "paths", "mlflow")}

    with open(out / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    by_key = {(r["method"], r["variant"]): r for r in rows}
    assert float(by_key["baseline", "pixel"]["delta1"]) == pytest.approx(written["methods"]["baseline"]["pixel"]["delta1"])
    assert len(rows) == 3 * 4  # three methods x image/pixel x all/masked

    table = (out / "metrics.md").read_text().split("###")[1].strip().splitlines()
    assert table[0] == "image: mean over images"
    assert table[4].startswith("| daif-net |") and table[5].startswith("| analytic baseline")
    assert table[6].startswith("| defocus search |")
    assert f"{written['methods']['baseline']['image']['delta1']:.4f}" in table[5]
    assert f"{written['methods']['search']['image']['delta1']:.4f}" in table[6]
    images = (out / "metrics.md").read_text().split("### images")[1].strip().splitlines()
    assert images[2].split(" | ")[-2:] == ["recon", "detail |"] and f"{written['methods']['daif-net']['aif']['recon']:.4f}" in images[4]

    # generalisation: sizes 2, 3, 5 of the 5-image stacks; 8 skipped with a note; one focus set
    with open(out / "generalisation.csv") as file:
        general = list(csv.DictReader(file))
    sizes = sorted({int(float(r["x"])) for r in general if r["study"] == "stack_size"})
    assert sizes == [2, 3, 5] and written["generalisation"]["stack_sizes"] == [2, 3, 5]
    assert any("stack size 8 skipped" in note for note in written["notes"])
    two = direct_predictions(store_path, net, BinSampler(5, 2, "middle").fixed)
    for method in ("daif-net", "baseline", "search"):
        row = next(r for r in general if r["condition"] == "stack-2" and r["method"] == method)
        assert float(row["delta1"]) == pytest.approx(depth_metrics(two[method], two["gt"], two["valid"])["delta1"])
        five = next(r for r in general if r["study"] == "stack_size" and int(float(r["x"])) == 5 and r["method"] == method)
        assert float(five["delta1"]) == pytest.approx(written["methods"][method]["image"]["delta1"])
    assert [r["method"] for r in general if r["study"] == "focus_set"] == ["daif-net", "baseline", "search"]
    for name in ("generalisation.png", "generalisation_focus.png", "per_image.csv"):
        assert (out / name).stat().st_size > 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.get_run(result["mlflow"]["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "daif-eval" and run.info.status == "FINISHED"
    assert run.data.metrics["eval/delta1"] == pytest.approx(written["delta1"])
    assert run.data.metrics["eval/baseline/pixel/rmse"] == pytest.approx(written["methods"]["baseline"]["pixel"]["rmse"])
    history = client.get_metric_history(run.info.run_id, "eval/baseline/delta1_vs_stack_size")
    assert sorted(m.step for m in history) == [2, 3, 5]
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"metrics.json", "metrics.csv", "metrics.md", "generalisation.png", "generalisation.csv"} <= artifacts


@pytest.mark.ray
def test_evaluate_on_ray_data_with_mlflow_model_uri(store_and_model, tracking_uri, tmp_path):
    """The Ray Data actor path, loading the model from runs:/<id>/model, logging into that run."""
    import mlflow

    from daif.evaluate import evaluate
    from daif.model_io import log_model
    from daif.tracking import experiment_id

    store_path, checkpoint, net = store_and_model
    uri = tracking_uri
    mlflow.set_tracking_uri(uri)
    meta = json.loads((checkpoint / "meta.json").read_text())
    with mlflow.start_run(experiment_id=experiment_id("daif-test", uri)) as run:
        log_model(checkpoint, "model", {k: meta[k] for k in ("camera", "focus_distances", "depth_range", "epoch")})
    result = evaluate([f"runs:/{run.info.run_id}/model", str(checkpoint)], store_path, "test", tmp_path / "eval",
                      stack_sizes=[3], names=["from-mlflow", "from-checkpoint"], backend="ray", batch_size=1,
                      tracking_uri=uri, log_to_run=run.info.run_id)
    assert result["backend"] == "ray"
    main = direct_predictions(store_path, net, BinSampler(5, 5, "middle").fixed)
    expected = depth_metrics(main["daif-net"], main["gt"], main["valid"], reduction="pixel")
    for name in ("from-mlflow", "from-checkpoint"):
        assert_metrics_equal(result["methods"][name]["pixel"], expected)
    assert list(result["methods"]) == ["from-mlflow", "from-checkpoint", "baseline", "search"]
    logged = mlflow.MlflowClient(uri).get_run(run.info.run_id).data.metrics
    assert logged["eval/from-checkpoint/image/delta1"] == pytest.approx(result["methods"]["from-checkpoint"]["image"]["delta1"])


def test_evaluate_cli_loads_a_registered_model_by_name(store_and_model, tracking_uri, tmp_path, capsys):
    import mlflow

    from daif.cli import main
    from daif.model_io import log_model
    from daif.tracking import experiment_id

    store_path, checkpoint, _ = store_and_model
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id("daif-test", tracking_uri)):
        log_model(checkpoint, "model", {"epoch": 0}, registered_model_name="daif-evaluate")
    code = main(["evaluate", "--model", "models:/daif-evaluate/latest", "--model", str(checkpoint), "--name", "registered",
                 "--name", "checkpoint", "--data", str(store_path), "--out", str(tmp_path / "cli"), "--stack-sizes", "5",
                 "--backend", "local", "--tracking-uri", tracking_uri, "--no-tracking"])
    assert code == 0, capsys.readouterr().err
    methods = json.loads((tmp_path / "cli" / "metrics.json").read_text())["methods"]
    assert methods["registered"]["image"] == methods["checkpoint"]["image"]


def test_evaluate_cli_and_bad_inputs(store_and_model, tracking_uri, tmp_path, capsys):
    from daif.cli import main
    from daif.evaluate import evaluate

    store_path, checkpoint, _ = store_and_model
    code = main(["evaluate", "--model", str(checkpoint), "--data", str(store_path), "--out", str(tmp_path / "cli"),
                 "--stack-sizes", "5", "--backend", "local", "--no-tracking"])
    assert code == 0 and "| analytic baseline" in capsys.readouterr().out
    written = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    model_name = next(name for name in written["methods"] if name not in ("baseline", "search"))
    assert written["delta1"] == written["methods"][model_name]["image"]["delta1"]  # the headline is the first model's
    assert not math.isnan(written["methods"]["baseline"]["image"]["rmse"])

    assert main(["evaluate", "--model", str(checkpoint), "--data", str(store_path), "--split", "nosuch", "--out", str(tmp_path / "x"),
                 "--no-tracking"]) == 2
    assert "split: " in capsys.readouterr().err
    with pytest.raises(ValueError, match="split"):
        evaluate(str(checkpoint), store_path, "nosuch", tmp_path / "x", track=False)
    with pytest.raises(ValueError, match="model"):
        evaluate(str(tmp_path), store_path, "test", tmp_path / "x", track=False)
    with pytest.raises(ValueError, match="log_to_run: no run 'nosuchrun'"):
        evaluate(str(checkpoint), store_path, "test", tmp_path / "x", tracking_uri=tracking_uri, log_to_run="nosuchrun")
    with pytest.raises(ValueError, match="focus_sets.*focal length"):
        evaluate(str(checkpoint), store_path, "test", tmp_path / "x", focus_sets=["0.01,2"], track=False)
    with pytest.raises(ValueError, match="names: expected distinct names other than 'baseline' and 'search'"):
        evaluate(str(checkpoint), store_path, "test", tmp_path / "x", names=["search"], track=False)
