"""`daif train` checks its inputs before Ray or a run starts: the tracking URI, the weights it starts from."""

from pathlib import Path

import numpy as np
import pytest

from daif.cli import main


@pytest.fixture
def ray_starts(tmp_path, monkeypatch) -> list:
    """The calls to ray.init a command makes (none expected), run in tmp_path as the working directory."""
    import ray

    starts: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: starts.append(a))
    monkeypatch.chdir(tmp_path)
    return starts


def test_an_unknown_tracking_scheme_is_refused_before_ray(tiny_store, tmp_path, capsys, ray_starts):
    code = main(["train", "--data", tiny_store, "--num-cpus", "2", "--tracking-uri", "foo://bar"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("daif train: error: --tracking-uri 'foo://bar': MLflow has no tracking store for scheme 'foo'")
    assert ray_starts == [] and not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.ray
def test_train_init_from_pretrained_starts_from_its_weights(tiny_store, tmp_path):
    from daif.config import load_config
    from daif.train.driver import check_inputs

    config = load_config(preset="quickstart", overrides=[f"data.path={tiny_store}", "train.init_from=pretrained",
                                                         f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db"])
    assert config.train.init_from == "pretrained"  # the shipped model's name, not a path in this folder
    state = check_inputs(config).init_state
    from daif.pretrained import load

    model, _ = load("pretrained")
    expected = model.state_dict()
    assert set(state) == set(expected)
    assert all(np.array_equal(np.asarray(state[k]), expected[k].numpy()) for k in expected)


@pytest.mark.ray
def test_a_fine_tune_keeps_its_models_depth_range_unless_one_is_given(tiny_store, tmp_path):
    """The store's scenes span 0.75..7.5 m (the quickstart's range_source "scenes"); a model learnt 1..5 m: a
    fine-tune from it keeps 1..5 m (its weights' output range), and an explicit model.near/far still wins (with the
    focus-distance input's scale, which defaults to `far`, kept at the model's)."""
    from daif.checkpoint import save_checkpoint
    from daif.config import load_config
    from daif.data.store import open_store
    from daif.train.driver import build_model, check_inputs

    store = open_store(tiny_store)
    base = ["train.init_from=" + str(tmp_path / "ckpt"), f"data.path={tiny_store}", f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db"]
    net = build_model(load_config(preset="quickstart", overrides=base), 1.0, 5.0, store.camera)
    save_checkpoint(tmp_path / "ckpt", net, {"camera": store.camera.to_dict(), "focus_distances": store.focus_distances.tolist(),
                                             "depth_range": [1.0, 5.0]})
    assert check_inputs(load_config(preset="quickstart", overrides=base[1:])).depth_range == (0.75, 7.5)  # no init: the store's
    inputs = check_inputs(load_config(preset="quickstart", overrides=base))
    assert inputs.depth_range == (1.0, 5.0)
    assert all(np.array_equal(inputs.init_state[k], v.numpy()) for k, v in net.state_dict().items())
    given = check_inputs(load_config(preset="quickstart", overrides=[*base, "model.near=0.5", "model.far=9", "model.focus_scale=5"]))
    assert given.depth_range == (0.5, 9.0)


def test_a_model_that_renders_otherwise_than_its_data_is_refused(tiny_store, tmp_path, capsys, ray_starts):
    import json

    manifest = json.loads((Path(tiny_store) / "manifest.json").read_text())
    # nyuv2-5 (f 50 mm, N 8, p 12 um), focus 1..6 m, synthetic depths 0.75..7.5 m: the blur peaks at d = 0.75, s = 6
    aperture, focal = 0.05 / 8, 0.05
    assert manifest["max_sigma"] == pytest.approx(aperture * focal * (6 - 0.75) / (0.75 * (6 - focal)) / (2 * 12e-6), rel=1e-6)
    code = main(["train", "--data", tiny_store, "--num-cpus", "2", "--set", "loss.kernel_size=5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith(f"loss.kernel_size: the model renders with a 5x5 window, the data in {tiny_store} was rendered with "
                        "no window (the ladder renderer); the data's blur reaches sigma 15.32 px: set loss.kernel_size=null")
    assert ray_starts == [] and not (tmp_path / "runs").exists()


@pytest.mark.ray
def test_a_window_that_caps_the_blur_of_other_optics_is_refused(ray_local, tmp_path, capsys):
    from daif.data.pipeline import RenderConfig, render_store

    store = tmp_path / "disc"
    render_store(RenderConfig(out=str(store), source="synthetic", preset="nyuv2-5", size=(16, 16), scenes=6, shard_size=3,
                              psf="disc", depth_range=(0.75, 7.5)))
    capsys.readouterr()
    code = main(["train", "--data", str(store), "--num-cpus", "2", "--storage", str(tmp_path / "runs"), "--set", "loss.kernel_size=7"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.endswith(f"loss.kernel_size: the model renders with a 7x7 window, which caps blur near sigma 2.90 px; the stacks in {store} (disc) "
                        "hold blur up to 15.32 px: set loss.kernel_size=null (no window)")
    assert not (tmp_path / "runs").exists()
