"""`daif train` checks its inputs before Ray or a run starts: the tracking URI, the weights it starts from."""

import numpy as np
import pytest

from daif.cli import main


def test_an_unknown_tracking_scheme_is_refused_before_ray(tiny_store, tmp_path, capsys, monkeypatch):
    import ray

    starts: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: starts.append(a))
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data", tiny_store, "--num-cpus", "2", "--tracking-uri", "foo://bar"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("daif train: error: --tracking-uri 'foo://bar': MLflow has no tracking store for scheme 'foo'")
    assert starts == [] and not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


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
