"""The shipped pretrained model: tensors only, it predicts depth on scenes it never saw, and it refuses a camera
it was not trained for."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from daif.errors import UsageError
from daif.pretrained import DIRECTORY, check_camera, describe, load, names


def _delta1(depth: torch.Tensor, truth: np.ndarray) -> float:
    """Fraction of pixels with max(D/D*, D*/D) < 1.25 (method.md), written out here."""
    predicted = depth.numpy().astype(np.float64)
    ratio = np.maximum(predicted / truth, truth / predicted)
    return float(np.mean(ratio < 1.25))


def test_the_shipped_model_is_small_and_holds_tensors_only():
    assert names() == ["quickstart-seed0"]
    weights = DIRECTORY / "quickstart-seed0.safetensors"
    assert weights.stat().st_size < 4 << 20  # a few MB at most
    assert weights.read_bytes()[8:9] == b"{"  # safetensors: an 8-byte length, then a JSON header, then raw tensors


def test_the_pretrained_model_reads_depth_of_scenes_it_never_saw():
    from daif.data.pipeline import render_scene_stack
    from daif.data.synthetic import make_scene, scene_seed
    from daif.optics import ThinLensCamera

    model, meta = load("pretrained")
    camera, focus = ThinLensCamera.from_dict(meta["camera"]), np.asarray(meta["focus_distances"])
    scores = []
    for index in range(8):  # dataset seed 99: not among the quickstart's training scenes (seed 0)
        scene = make_scene(scene_seed(99, index), (64, 64), (0.8, 7.5))
        stack = torch.from_numpy(render_scene_stack(scene, focus, camera)).float().div(255).permute(0, 3, 1, 2)
        with torch.no_grad():
            _, depth = model(stack[None], torch.tensor(focus, dtype=torch.float32)[None])
        scores.append(_delta1(depth[0, 0], scene["depth"]))
    # measured 0.94 / 0.95 (8 / 16 scenes; the 80-epoch model without the detail input, shipped before it, 0.95); an
    # untrained net of the same shape about 0.3
    assert np.mean(scores) > 0.8, scores


def test_another_camera_is_refused_with_the_fine_tune_command():
    from daif.optics import ThinLensCamera

    _, meta = load("pretrained")
    check_camera(meta, None, "pretrained")
    check_camera(meta, ThinLensCamera.from_dict(meta["camera"]), "pretrained")
    with pytest.raises(UsageError, match=r"^--camera: pretrained learned depth .* daif train --data STORE --init-from pretrained$"):
        check_camera(meta, ThinLensCamera(0.004, 1.8, 1.4e-6), "pretrained")
    assert describe(meta).startswith("pretrained model: camera f=0.05 m, N=8, p=1.2e-05 m; trained on stacks focused at 1, 1.5")
    with pytest.raises(UsageError, match="no pretrained model 'nosuch'; shipped: quickstart-seed0"):
        load("pretrained:nosuch")


def test_daif_predict_with_the_pretrained_model_prints_its_camera_and_refuses_another(tmp_path, capsys):
    import sys
    from pathlib import Path

    from daif.cli import main

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "jobs"))
    from _smoke import stack_folder

    stack = stack_folder(tmp_path / "stack", size=(64, 64))  # nyuv2-5: the camera and focus distances it learned
    assert main(["predict", "--model", "pretrained", "--images", stack, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pretrained model: camera f=0.05 m, N=8, p=1.2e-05 m;") and (tmp_path / "out" / "depth.npy").is_file()
    assert main(["predict", "--model", "pretrained", "--images", stack, "--camera", "0.004,1.8,1.4e-6", "--out", str(tmp_path / "phone")]) == 2
    err = capsys.readouterr().err
    assert "--refine-steps 100" in err and "--init-from pretrained" in err and not (tmp_path / "phone").exists()
    # refined on the stack, the objective re-renders it through the camera given: accepted, and recorded
    assert main(["predict", "--model", "pretrained", "--images", stack, "--camera", "0.05,4,2.4e-5", "--refine-steps", "2",
                 "--out", str(tmp_path / "refined")]) == 0
    summary = json.loads((tmp_path / "refined" / "prediction.json").read_text())
    assert summary["camera"]["f_number"] == 4 and summary["refinement"]["steps_taken"] == 2

