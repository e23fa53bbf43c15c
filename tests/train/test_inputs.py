"""`daif train` checks its tracking URI before Ray or a run starts."""

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
