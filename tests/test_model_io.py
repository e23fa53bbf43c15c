"""No code runs from a model: checkpoints and MLflow models are read as tensors, crafted pickles are refused."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from daif.checkpoint import CheckpointError, load_checkpoint_model
from daif.errors import UsageError
from daif.model_io import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs"))
from _smoke import untrained_checkpoint  # noqa: E402

CAMERA = {"focal_length": 0.015, "f_number": 2.0, "pixel_size": 1e-5}
DAIF = str(Path(sys.executable).with_name("daif"))


class Payload:
    """Unpickling this creates `marker` (builtins.open(marker, "w")): the trace of code run from a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def run_daif(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`daif ARGS` in a fresh process, without the tracking URI that mlflow.set_tracking_uri exported here."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([DAIF, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return Path(untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt", CAMERA, [1.0, 2.0, 3.0]))


@pytest.fixture(scope="module")
def logged(checkpoint, tmp_path_factory):
    """(tracking URI, runs:/ URI) of the checkpoint logged as an MLflow model by daif."""
    import mlflow

    from daif.model_io import log_model
    from daif.tracking import experiment_id

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id("model-io", uri)) as run:
        log_model(checkpoint, "model", {"epoch": 0})
    return uri, f"runs:/{run.info.run_id}/model"


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory) -> Path:
    from PIL import Image

    directory = tmp_path_factory.mktemp("stack")
    for k in range(3):
        Image.new("RGB", (16, 12), (40 * k, 90, 200)).save(directory / f"f{k}.png")
    (directory / "focus_distances.txt").write_text("1\n2\n3\n")
    return directory


def test_a_logged_model_holds_no_pickle_and_loads_for_any_stack_size(checkpoint, logged, tmp_path):
    import mlflow

    uri, model_uri = logged
    folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path), tracking_uri=uri))
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pkl", ".pth", ".pickle", ".cloudpickle"))], files
    assert {"MLmodel", "pyfunc_model.py"} <= files and any(f.endswith("/state.pt") for f in files)

    reference, _ = load_checkpoint_model(checkpoint)
    model, meta = load_model(model_uri, uri)
    assert meta["camera"] == CAMERA and meta["focus_distances"] == [1.0, 2.0, 3.0]
    for size in (2, 3, 7):  # the network takes any stack size: nothing was traced or exported for one
        stack, focus = torch.rand(1, size, 3, 12, 20), torch.linspace(1.0, 4.0, size)[None]
        with torch.no_grad():
            torch.testing.assert_close(model(stack, focus)[1], reference(stack, focus)[1])


# Loads the model folder argv[1] with mlflow.pyfunc in a python started with -I -S (no site: no editable install of
# daif, no repo on sys.path) and only the site-packages folder argv[3] appended; predicts its input example into argv[2].
LOAD_WITHOUT_DAIF = r"""
import importlib.util, sys
sys.path.append(sys.argv[3])
assert importlib.util.find_spec("daif") is None, "daif is importable before the model is loaded"
import mlflow.pyfunc, numpy
from mlflow.models import Model
folder, out = sys.argv[1], sys.argv[2]
model = mlflow.pyfunc.load_model(folder)
example = Model.load(folder).load_input_example(folder)
depth = model.predict(example)["depth"]
import daif
print(daif.__file__)
numpy.save(out, depth)
"""


def load_without_daif(python: str, folder: Path, out: Path, site_packages: str, flags=("-I", "-S")) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([python, *flags, "-c", LOAD_WITHOUT_DAIF, str(folder), str(out), site_packages], cwd=out.parent, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_logged_model_has_a_signature_and_an_input_example_and_loads_without_daif_installed(checkpoint, logged, tmp_path):
    import mlflow
    import numpy
    from mlflow.models import Model

    uri, model_uri = logged
    folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model"), tracking_uri=uri))
    mlmodel = Model.load(str(folder))
    inputs = {spec.name: (spec.type, spec.shape) for spec in mlmodel.signature.inputs.inputs}
    outputs = {spec.name: (spec.type, spec.shape) for spec in mlmodel.signature.outputs.inputs}
    float32 = numpy.dtype("float32")
    assert inputs == {"stack": (float32, (-1, -1, 3, -1, -1)), "focus_distances": (float32, (-1, -1))}
    assert outputs == {"aif": (float32, (-1, 3, -1, -1)), "depth": (float32, (-1, 1, -1, -1))}
    example = mlmodel.load_input_example(str(folder))
    assert example["stack"].shape == (1, 3, 3, 8, 8) and example["focus_distances"].tolist() == [[1.0, 2.0, 3.0]]
    code = {p.suffix for p in (folder / "code").rglob("*") if p.is_file()}
    assert (folder / "code" / "daif" / "checkpoint.py").is_file() and code == {".py"}  # no caches, no data files
    requirements = (folder / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} == {"mlflow", "torch", "numpy", "pyyaml"}

    result = load_without_daif(sys.executable, folder, tmp_path / "depth.npy", sysconfig.get_paths()["purelib"])
    assert_predicts_with_its_own_daif(result, folder, checkpoint, example, tmp_path / "depth.npy")


def assert_predicts_with_its_own_daif(result: subprocess.CompletedProcess, folder: Path, checkpoint: Path, example: dict,
                                      depth_file: Path) -> None:
    import numpy

    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.strip().splitlines()[-1]).is_relative_to(folder / "code" / "daif")  # the model's own copy
    reference, _ = load_checkpoint_model(checkpoint)
    with torch.no_grad():
        expected = reference(torch.as_tensor(example["stack"]), torch.as_tensor(example["focus_distances"]))[1]
    numpy.testing.assert_allclose(numpy.load(depth_file), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.install
@pytest.mark.timeout(600)
def test_a_logged_model_loads_in_a_fresh_venv_holding_only_its_requirements(checkpoint, logged, tmp_path):
    """The honest check: a new venv (no system site-packages), `pip install -r` the model's requirements.txt from
    the configured index (about 1.5 min here with a warm pip cache), then mlflow.pyfunc.load_model + predict."""
    import mlflow
    from mlflow.models import Model

    uri, model_uri = logged
    folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model"), tracking_uri=uri))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(folder / "requirements.txt")],
                             capture_output=True, text=True, timeout=480)
    if install.returncode != 0:
        pytest.skip(f"pip could not install the model's requirements here: {install.stderr.strip().splitlines()[-1:]}")
    site_packages = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    assert not list(Path(site_packages).glob("*daif*"))  # daif is not installed there, in any form
    result = load_without_daif(python, folder, tmp_path / "depth.npy", site_packages, flags=("-I",))
    example = Model.load(str(folder)).load_input_example(str(folder))
    assert_predicts_with_its_own_daif(result, folder, checkpoint, example, tmp_path / "depth.npy")


def test_a_crafted_pickle_in_state_pt_is_refused_and_never_runs(checkpoint, stack_dir, tmp_path):
    crafted = tmp_path / "crafted"
    shutil.copytree(checkpoint, crafted)
    torch.save({"model": Payload(tmp_path / "pwned")}, crafted / "state.pt")
    probe = tmp_path / "probe.pt"
    torch.save({"model": Payload(tmp_path / "live")}, probe)
    torch.load(probe, weights_only=False)  # the payload is live: an unrestricted load runs it
    assert (tmp_path / "live").exists()

    with pytest.raises(CheckpointError, match=f"{crafted / 'state.pt'} refused"):
        load_checkpoint_model(crafted)
    result = run_daif("predict", "--model", str(crafted), "--images", str(stack_dir), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, "daif predict: error:", str(crafted / "state.pt"), "refused")
    assert not (tmp_path / "pwned").exists()

    with open(crafted / "state.pt", "wb") as file:  # a bare pickle (protocol 4), not a torch.save archive
        pickle.dump({"model": Payload(tmp_path / "pwned")}, file, protocol=4)
    result = run_daif("predict", "--model", str(crafted), "--images", str(stack_dir), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, "daif predict: error:", str(crafted / "state.pt"), "is not a torch.save file of tensors")
    assert not (tmp_path / "pwned").exists()


def test_a_crafted_pickle_in_an_mlflow_pytorch_model_folder_is_refused_and_never_runs(checkpoint, stack_dir, tmp_path):
    import mlflow.pytorch

    net, _ = load_checkpoint_model(checkpoint)
    folder = tmp_path / "pickled-model"
    mlflow.pytorch.save_model(net, str(folder), serialization_format="pickle", pip_requirements=[])
    torch.save(Payload(tmp_path / "live"), folder / "data" / "model.pth")
    with contextlib.suppress(Exception):  # MLflow's own loader runs the payload (then finds no network): a real threat
        mlflow.pytorch.load_model(str(folder))
    assert (tmp_path / "live").exists()
    (folder / "data" / "model.pth").unlink()
    torch.save(Payload(tmp_path / "pwned"), folder / "data" / "model.pth")

    with pytest.raises(UsageError, match=r"data/model\.pth refused"):
        load_model(folder)
    result = run_daif("predict", "--model", str(folder), "--images", str(stack_dir), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, str(folder / "data" / "model.pth"), "refused")
    assert not (tmp_path / "pwned").exists()


def test_a_daif_model_folder_never_runs_its_code_file_and_refuses_a_crafted_state(logged, tmp_path):
    import mlflow

    uri, model_uri = logged
    folder = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model"), tracking_uri=uri))
    (folder / "pyfunc_model.py").write_text(f"open({str(tmp_path / 'pwned-code')!r}, 'w')\n")
    load_model(folder)  # the weights load; the (crafted) code file is never executed
    assert not (tmp_path / "pwned-code").exists()

    state = next(folder.glob("artifacts/*/state.pt"))
    torch.save({"model": Payload(tmp_path / "pwned")}, state)
    with pytest.raises(CheckpointError, match=f"{state} refused"):
        load_model(folder)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned-code").exists()


def test_a_garbage_state_pt_names_the_file(checkpoint, stack_dir, tmp_path):
    garbage = tmp_path / "garbage"
    shutil.copytree(checkpoint, garbage)
    (garbage / "state.pt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match=f"{garbage / 'state.pt'} is not a torch.save file"):
        load_checkpoint_model(garbage)
    result = run_daif("predict", "--model", str(garbage), "--images", str(stack_dir), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(result, str(garbage / "state.pt"))


def test_a_checkpoint_whose_meta_is_broken_names_meta_json(checkpoint, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{broken / 'meta.json'} is not JSON"):
        load_checkpoint_model(broken)
    (broken / "meta.json").write_text(json.dumps({"model": {"width": 9, "levels": 2}}))
    with pytest.raises(CheckpointError, match="state.pt does not fit the network of meta.json"):
        load_checkpoint_model(broken)


def test_a_checkpoint_cannot_ask_for_an_unbounded_network_or_file(checkpoint, tmp_path, monkeypatch):
    import resource

    import daif.checkpoint

    crafted = tmp_path / "crafted"
    shutil.copytree(checkpoint, crafted)
    meta = json.loads((crafted / "meta.json").read_text())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    for model, expected in (({"width": 1_000_000}, "width: expected an integer in [1, 512], got 1000000"),
                            ({"width": 256, "levels": 8}, "width, levels: the deepest level's width * 2**levels = 65536 channels exceeds 2048"),
                            ({"depth_head": "search", "candidates": 10**9}, "candidates: expected an integer in [2, 256]")):
        (crafted / "meta.json").write_text(json.dumps({**meta, "model": {**meta["model"], **model}}))
        with pytest.raises(CheckpointError, match=re.escape(f"{crafted / 'meta.json'} key 'model': {expected}")):
            load_checkpoint_model(crafted)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # no network was built (1e6 wide: GBs)
    (crafted / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint_model(crafted)
    (crafted / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setattr(daif.checkpoint, "MAX_STATE_BYTES", 1000)  # the real bound is 2 GiB: too big to write in a test
    size = (crafted / "state.pt").stat().st_size
    with pytest.raises(CheckpointError, match=re.escape(f"{crafted / 'state.pt'} is {size} bytes; a checkpoint's state.pt holds at most 1000")):
        load_checkpoint_model(crafted)


def test_a_missing_run_says_which_store_was_searched_and_creates_none(logged, stack_dir, tmp_path):
    uri, model_uri = logged
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_daif("predict", "--model", model_uri, "--images", str(stack_dir), "--out", str(tmp_path / "out"), cwd=elsewhere)
    assert_one_line_error(result, f"sqlite:///{elsewhere / 'mlflow.db'} does not exist", "--tracking-uri")
    assert not (elsewhere / "mlflow.db").exists()

    with pytest.raises(UsageError, match=f"runs:/0123456789abcdef/model not found in the tracking store {uri}.*--tracking-uri"):
        load_model("runs:/0123456789abcdef/model", uri)


def test_a_registered_model_loads_by_name_latest_and_version_in_predict(checkpoint, stack_dir, tmp_path):
    import mlflow

    from daif.model_io import log_model
    from daif.tracking import experiment_id

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    second = untrained_checkpoint(tmp_path / "second", CAMERA, [1.0, 2.0, 3.0], depth_range=(0.2, 5.0))
    with mlflow.start_run(experiment_id=experiment_id("registry", uri)):
        first_info = log_model(checkpoint, "model", {"epoch": 0}, registered_model_name="daif-depth")
        second_info = log_model(second, "model", {"epoch": 1}, registered_model_name="daif-depth")
    assert (first_info.registered_model_version, second_info.registered_model_version) == (1, 2)
    assert load_model("models:/daif-depth/latest", uri)[1]["depth_range"] == [0.2, 5.0]
    assert load_model("models:/daif-depth/1", uri)[1]["depth_range"] == [0.1, 10.0]
    with pytest.raises(UsageError, match="models:/daif-depth/3 not found in the tracking store"):
        load_model("models:/daif-depth/3", uri)

    result = run_daif("predict", "--model", "models:/daif-depth/latest", "--tracking-uri", uri, "--images", str(stack_dir),
                      "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert written["model"] == "models:/daif-depth/latest" and written["model_depth_range"] == [0.2, 5.0]


def test_a_bad_registered_model_name_is_a_one_line_error(tmp_path):
    result = run_daif("train", "--register", "a/b", cwd=tmp_path)
    assert_one_line_error(result, "--register: 'a/b' is not a registered model name")
