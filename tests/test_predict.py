"""`daif predict`: the files it writes (16-bit millimetre PNG agreeing with depth.npy, AIF, colour
map), equality with the model run directly, folder input, and a clear error for each bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from daif.model import DAIFNet
from daif.optics import ThinLensCamera, get_preset, render_focal_stack

PRESET = get_preset("nyuv2-5")  # f = 50 mm
FOCUS = [1.0, 2.5, 6.0]


def write_checkpoint(directory: Path, net: DAIFNet) -> Path:
    """A checkpoint directory as the training loop writes it (state.pt + meta.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "optimizer": {}, "step": 0, "epoch": 0}, directory / "state.pt")
    meta = {"model": net.config, "camera": PRESET.camera.to_dict(), "focus_distances": list(PRESET.focus_distances),
            "depth_range": [net.near, net.far], "epoch": 0, "step": 0}
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(checkpoint, net, image paths of a 3-image 20x24 stack rendered from a textured two-plane scene)."""
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    net = DAIFNet(width=4, levels=2).eval()
    generator = torch.Generator().manual_seed(1)
    aif = torch.nn.functional.interpolate(torch.rand(1, 3, 10, 12, generator=generator), size=(20, 24), mode="bilinear")
    depth = torch.full((1, 1, 20, 24), 1.2)
    depth[..., 12:] = 4.0
    stack = render_focal_stack(aif, depth, FOCUS, PRESET.camera)[0]  # (3, 3, H, W)
    images = []
    for k, image in enumerate(stack):
        path = root / "stack" / f"img_{k}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
        images.append(path)
    (root / "stack" / "focus_distances.txt").write_text("# metres\n" + "\n".join(str(f) for f in FOCUS) + "\n")
    return write_checkpoint(root / "ckpt", net), net, images


def test_predict_writes_depth_png_npy_colour_and_aif(setup, tmp_path):
    from daif.predict import predict

    checkpoint, net, images = setup
    paths = predict(str(checkpoint), images, FOCUS, out=tmp_path / "out")
    depth = np.load(paths["depth_npy"])
    assert depth.dtype == np.float32 and depth.shape == (20, 24)
    with Image.open(paths["depth_png"]) as png:
        assert png.mode.startswith("I;16") or png.mode == "I"
        millimetres = np.asarray(png).astype(np.float64)
    assert np.abs(millimetres / 1000 - depth).max() <= 1e-3

    stack = torch.from_numpy(np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in images])).permute(0, 3, 1, 2)
    with torch.no_grad():
        aif, expected = net(stack[None], torch.tensor(FOCUS)[None])
    np.testing.assert_allclose(depth, expected[0, 0].numpy(), rtol=1e-5)
    with Image.open(paths["aif"]) as image:
        assert image.mode == "RGB" and image.size == (24, 20)
        assert np.abs(np.asarray(image) / 255 - aif[0].permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
    with Image.open(paths["depth_color"]) as image:
        assert image.mode == "RGB" and image.size == (24, 20)
    summary = json.loads(Path(paths["json"]).read_text())
    assert summary["focus_distances"] == FOCUS and summary["camera"] == PRESET.camera.to_dict()
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_refining_on_the_stack_lowers_its_objective_and_is_recorded(setup, tmp_path, capsys):
    from daif.cli import main
    from daif.losses import objective
    from daif.refine import REFINE_LOSS

    checkpoint, net, images = setup
    out = tmp_path / "refined"
    code = main(["predict", "--model", str(checkpoint), "--images", *map(str, images), "--focus-distances", *map(str, FOCUS),
                 "--refine-steps", "4", "--out", str(out)])
    assert code == 0
    assert re.search(r"refined on the stack: \d of at most 4 steps, objective", capsys.readouterr().out)
    record = json.loads((out / "prediction.json").read_text())["refinement"]
    assert 1 <= record["steps_taken"] <= 4 and record["lr"] == 1e-4 and record["loss"]["psf"] == "layered"
    stack = torch.from_numpy(np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in images])).permute(0, 3, 1, 2)[None]
    focus = torch.tensor(FOCUS)
    with torch.no_grad():
        before = objective(stack, focus, *net(stack, focus), PRESET.camera, REFINE_LOSS).total.item()
    assert record["objective_first"] == pytest.approx(before, rel=1e-4)  # the model's own prediction, refined from there
    assert record["objective_last"] < before
    with torch.no_grad():
        unrefined = net(stack, focus)[1][0, 0].numpy()
    assert np.abs(np.load(out / "depth.npy") - unrefined).max() > 1e-4  # the files hold the refined prediction


def test_predict_cli_reads_a_folder_with_focus_file(setup, tmp_path, capsys):
    from daif.cli import main
    from daif.predict import predict

    checkpoint, _, images = setup
    assert main(["predict", "--model", str(checkpoint), "--images", str(images[0].parent), "--out", str(tmp_path / "cli")]) == 0
    assert "depth_png" in capsys.readouterr().out
    listed = predict(str(checkpoint), images, FOCUS, camera="nyuv2-5", out=tmp_path / "listed")
    np.testing.assert_array_equal(np.load(tmp_path / "cli" / "depth.npy"), np.load(listed["depth_npy"]))


def test_predict_rejects_bad_inputs(setup, tmp_path, capsys):
    from daif.cli import main
    from daif.predict import PredictionInputError, predict

    checkpoint, _, images = setup
    out = tmp_path / "bad"
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(small)
    with pytest.raises(PredictionInputError, match=r"small\.png is 12x10.*same size"):
        predict(str(checkpoint), [*images[:2], small], FOCUS, out=out)
    with pytest.raises(PredictionInputError, match="2 focus distances for 3 images"):
        predict(str(checkpoint), images, FOCUS[:2], out=out)
    with pytest.raises(PredictionInputError, match=r"^focus_distances: 0.05 m must be above the focal length 0.05 m \(for img_1.png\)"):
        predict(str(checkpoint), images, [1.0, 0.05, 6.0], out=out)
    with pytest.raises(PredictionInputError, match=r"0.09 m must be above the focal length 0.1 m"):  # an explicit camera wins over the model's
        predict(str(checkpoint), images, [1.0, 0.09, 6.0], camera=ThinLensCamera(0.1, 2.0, 5e-6), out=out)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(PredictionInputError, match=r"broken\.png: cannot read as an image"):
        predict(str(checkpoint), [*images[:2], broken], FOCUS, out=out)
    with pytest.raises(PredictionInputError, match=r"missing\.png does not exist"):
        predict(str(checkpoint), [*images[:2], tmp_path / "missing.png"], FOCUS, out=out)
    for value, expected in (("nan", "nan must be finite"), ("inf", "inf must be finite"), (1e301, "1e+301 m must be at most 10000 m (daif.optics.MAX_FOCUS_DISTANCE)")):
        with pytest.raises(PredictionInputError, match=rf"^focus_distances: {re.escape(expected)} \(for img_2.png\)"):
            predict(str(checkpoint), images, [1.0, 2.5, float(value)], out=out)
    folder = tmp_path / "nofocus"
    folder.mkdir()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(folder / "b.png")
    with pytest.raises(PredictionInputError, match="focus_distances.txt not found"):
        predict(str(checkpoint), folder, out=out)
    with pytest.raises(PredictionInputError, match="camera"):
        predict(str(checkpoint), images, FOCUS, camera="1,2", out=out)
    with pytest.raises(PredictionInputError, match=r"^--refine-steps: expected a number of steps >= 0, got -1"):
        predict(str(checkpoint), images, FOCUS, refine_steps=-1, out=out)
    assert not out.exists()  # nothing written for a rejected input

    code = main(["predict", "--model", str(checkpoint), "--images", *map(str, images), "--focus-distances", "1", "2", "--out", str(out)])
    assert code == 2 and "2 focus distances for 3 images" in capsys.readouterr().err


def test_predict_checks_its_output_folder_before_the_model_runs(setup, tmp_path, capsys, monkeypatch):
    import os

    import daif.model_io
    from daif.cli import main

    checkpoint, _, images = setup
    loads: list = []
    monkeypatch.setattr(daif.model_io, "load_model", lambda *a, **k: loads.append(a))  # the model must not be reached
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with_folder = tmp_path / "with_folder"
    (with_folder / "aif.png").mkdir(parents=True)
    cases = [(a_file, f"--out: {a_file} is a file; expected a folder"),
             (a_file / "sub", f"--out: {a_file / 'sub'} lies under {a_file}, which is a file"),
             (with_folder, f"--out: {with_folder / 'aif.png'} is a folder; it would be replaced by a file")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((locked / "out", f"--out: {locked / 'out'}: {locked} is not writable"))
    for out, expected in cases:
        code = main(["predict", "--model", str(checkpoint), "--images", *map(str, images), "--focus-distances", *map(str, FOCUS),
                     "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"daif predict: error: {expected}"), err
    assert loads == [] and a_file.read_text() == "x" and sorted(p.name for p in with_folder.iterdir()) == ["aif.png"]


def test_a_failed_write_leaves_no_output_file(setup, tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from daif.predict import predict

    checkpoint, _, images = setup
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    real_save = PILImage.Image.save

    def failing_save(self, fp, *args, **kwargs):  # the colour map (third file) cannot be written: a full disk
        if "depth_color" in str(fp):
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(PILImage.Image, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        predict(str(checkpoint), images, FOCUS, out=out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # neither depth.png nor a temporary file
    with pytest.raises(OSError, match="No space left"):
        predict(str(checkpoint), images, FOCUS, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_model_whose_weights_hold_nan_writes_nothing(setup, tmp_path):
    import shutil

    from daif.predict import PredictionInputError, predict

    checkpoint, _, images = setup
    poisoned = tmp_path / "poisoned"
    shutil.copytree(checkpoint, poisoned)
    state = torch.load(poisoned / "state.pt", weights_only=True)
    next(iter(state["model"].values())).fill_(float("nan"))
    torch.save(state, poisoned / "state.pt")
    with pytest.raises(PredictionInputError, match=r"returned non-finite depth or AIF for finite images"):
        predict(str(poisoned), images, FOCUS, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_predict_rejects_stacks_that_cannot_give_depth(setup, tmp_path, capsys):
    """Duplicate focus distances, a single image, images below 8x8 pixels, non-finite pixels and images larger
    than the pixel limit: refused with the reason."""
    from daif.cli import main
    from daif.predict import PredictionInputError, predict

    checkpoint, _, images = setup
    out = tmp_path / "bad"
    with pytest.raises(PredictionInputError, match=r"2.5 m is given for both img_1.png and img_2.png; each image .* own focus"):
        predict(str(checkpoint), images, [1.0, 2.5, 2.5], out=out)
    with pytest.raises(PredictionInputError, match="gives 1 image; a focal stack needs at least 2 images"):
        predict(str(checkpoint), images[:1], [1.0], out=out)
    tiny = []
    for k in range(2):
        tiny.append(tmp_path / f"tiny_{k}.png")
        Image.fromarray(np.full((1, 1, 3), 100 * k, np.uint8)).save(tiny[-1])
    with pytest.raises(PredictionInputError, match=r"tiny_0.png: 1x1 \(WxH\) pixels; at least 8x8 are needed"):
        predict(str(checkpoint), tiny, [1.0, 2.0], out=out)
    nan = tmp_path / "nan.tif"  # a float TIFF with one NaN pixel: a NaN depth map if it went through
    values = np.full((20, 24), 0.5, np.float32)  # the stack's size: the sizes are checked first, from the headers
    values[3, 4] = np.nan
    Image.fromarray(values, mode="F").save(nan)
    with pytest.raises(PredictionInputError, match=r"nan\.tif holds 1 non-finite pixel value\(s\) \(NaN or inf\)"):
        predict(str(checkpoint), [*images[:2], nan], FOCUS, out=out)
    huge = tmp_path / "huge.png"  # a header declaring 10000x10000: refused before decoding
    Image.new("1", (10000, 10000)).save(huge)
    with pytest.raises(PredictionInputError, match=r"^images: .*huge\.png: declares 10000x10000 \(WxH\) pixels; at most 40,000,000"):
        predict(str(checkpoint), [*images[:2], huge], FOCUS, out=out)
    assert not out.exists()
    code = main(["predict", "--model", str(checkpoint), "--images", *map(str, images), "--focus-distances", "1", "1", "6", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("daif predict: error: focus_distances: 1 m is given for both")


@pytest.mark.slow
def test_predict_job_smoke_test(tmp_path):
    """jobs/predict.py --smoke-test end to end: a synthetic stack, an untrained checkpoint, the files."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "jobs/predict.py", "--smoke-test", "--out", str(tmp_path / "smoke")],
                          cwd=root, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    depth = np.load(tmp_path / "smoke" / "depth.npy")
    with Image.open(tmp_path / "smoke" / "depth.png") as png:
        assert np.abs(np.asarray(png) / 1000 - depth).max() <= 1e-3
    assert json.loads((tmp_path / "smoke" / "prediction.json").read_text())["focus_distances"] == list(PRESET.focus_distances)


def test_a_search_head_model_predicts_with_the_camera_it_is_given(setup, tmp_path):
    """A "search" depth head computes its cost volume with the camera: the model's own by default (an untrained
    one finds the two planes of the scene, 1.2 and 4 m), or `--camera`'s."""
    from daif.predict import predict

    _, _, images = setup
    torch.manual_seed(0)
    net = DAIFNet(width=4, levels=2, near=0.75, far=7.5, depth_head="search", aif_head="select", camera=PRESET.camera.to_dict()).eval()
    checkpoint = write_checkpoint(tmp_path / "search-ckpt", net)
    own = np.load(predict(str(checkpoint), images, FOCUS, out=tmp_path / "own")["depth_npy"])
    assert abs(np.median(own[4:-4, 2:9]) / 1.2 - 1) < 0.25 and abs(np.median(own[4:-4, 15:22]) / 4.0 - 1) < 0.25
    other = np.load(predict(str(checkpoint), images, FOCUS, camera="0.05,2.8,1.2e-5", out=tmp_path / "other")["depth_npy"])
    stack = torch.from_numpy(np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in images])).permute(0, 3, 1, 2)
    with torch.no_grad():
        _, expected = net(stack[None], torch.tensor(FOCUS)[None], camera=ThinLensCamera(0.05, 2.8, 1.2e-5))
    np.testing.assert_allclose(other, expected[0, 0].numpy(), rtol=1e-5)
    assert np.abs(other - own).max() > 0.05


# ------------------------------------------------------------------ resize, focus breathing, memory


def test_resizing_scales_the_pixel_pitch_as_the_blur_scales(setup, tmp_path):
    """A stack rendered at 120x160 with pitch p and box-resized to 60x80 is (nearly) the stack rendered at 60x80 with
    pitch 2 p, and much less the one rendered with p: so predict, resizing 120x160 files to 60x80, gives the model
    the camera with 2 p."""
    from daif.data.synthetic import make_texture
    from daif.predict import predict

    camera = ThinLensCamera(0.05, 2.0, 12e-6)
    aif = torch.from_numpy(make_texture(np.random.default_rng(5), (120, 160))).permute(2, 0, 1)[None]
    depth = torch.full((1, 1, 120, 160), 1.3)
    depth[..., 80:] = 3.0
    focus = [1.0, 1.5, 2.5]
    full = render_focal_stack(aif, depth, focus, camera, kernel_size=None)[0]  # blur up to about 4 px
    half = torch.nn.functional.avg_pool2d(full, 2)
    small_aif, small_depth = torch.nn.functional.avg_pool2d(aif, 2), depth[..., ::2, ::2]
    scaled = render_focal_stack(small_aif, small_depth, focus, ThinLensCamera(0.05, 2.0, 24e-6), kernel_size=None)[0]
    unscaled = render_focal_stack(small_aif, small_depth, focus, camera, kernel_size=None)[0]
    error_scaled, error_unscaled = (half - scaled).abs().mean().item(), (half - unscaled).abs().mean().item()
    assert error_scaled < 0.4 * error_unscaled, (error_scaled, error_unscaled)

    checkpoint, _, _ = setup
    files = []
    for k, image in enumerate(full):
        files.append(tmp_path / f"full_{k}.png")
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(files[-1])
    paths = predict(str(checkpoint), files, focus, camera=camera, out=tmp_path / "out", max_side=80, align="none")
    summary = json.loads(Path(paths["json"]).read_text())
    assert summary["camera"] == {"focal_length": 0.05, "f_number": 2.0, "pixel_size": 24e-6} and summary["resize_factor"] == 2.0
    assert summary["camera_of_files"] == camera.to_dict() and np.load(paths["depth_npy"]).shape == (60, 80)


@pytest.fixture(scope="module")
def breathing_files(tmp_path_factory):
    """The breathing stack of tests/test_align.py (240x320, scales 1.00..1.04 with 1-2 px shifts, blurred
    differently) as PNGs, and its focus distances."""
    from tests.test_align import BLURS, FOCUS as BREATHING_FOCUS, MAGNIFICATIONS, SHIFTS, breathe, texture

    folder = tmp_path_factory.mktemp("breathing")
    base = texture()
    files = []
    for k, (m, d, b) in enumerate(zip(MAGNIFICATIONS, SHIFTS, BLURS)):
        files.append(folder / f"img{k}.png")
        Image.fromarray((breathe(base, m, d, b) * 255 + 0.5).astype(np.uint8)).save(files[-1])
    return files, list(BREATHING_FOCUS)


@pytest.fixture
def one_thread():
    """tests/test_align.py: the alignment's small tensors run 20x slower on two threads of a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_predict_aligns_a_breathing_stack_prints_and_records_it_and_crops(setup, breathing_files, tmp_path, capsys, one_thread):
    from daif.cli import main
    from tests.test_align import expected_transforms

    checkpoint, _, _ = setup
    files, focus = breathing_files
    argv = ["predict", "--model", str(checkpoint), "--images", *map(str, files), "--focus-distances", *map(str, focus)]
    assert main([*argv, "--out", str(tmp_path / "aligned")]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("align:")]
    assert printed[0].startswith("align: reference img4.png (narrowest field of view); overlap ") and len(printed) == 6
    assert printed[1].startswith("align: img0.png: scale 0.961")  # 1.00 / 1.04
    summary = json.loads((tmp_path / "aligned" / "prediction.json").read_text())
    record = summary["alignment"]
    for image, (scale, shift_x, shift_y) in zip(record["images"], expected_transforms(4)):
        assert abs(image["scale"] - scale) < 0.002 and abs(image["shift_x"] - shift_x) < 0.3 and abs(image["shift_y"] - shift_y) < 0.3
    overlap = record["overlap"]
    assert summary["crop"] == [overlap["top"], overlap["left"], overlap["height"], overlap["width"]]
    assert np.load(tmp_path / "aligned" / "depth.npy").shape == (overlap["height"], overlap["width"]) != (240, 320)

    assert main([*argv, "--align", "none", "--out", str(tmp_path / "as-given")]) == 0
    assert "align:" not in capsys.readouterr().out
    unaligned = json.loads((tmp_path / "as-given" / "prediction.json").read_text())
    assert unaligned["alignment"] == {"mode": "none"} and unaligned["crop"] == [0, 0, 240, 320]


def test_an_image_of_another_scene_is_refused_in_one_line(setup, breathing_files, tmp_path, capsys, one_thread):
    from daif.cli import main
    from tests.test_align import breathe, texture

    checkpoint, _, _ = setup
    files, focus = breathing_files
    stranger = tmp_path / "stranger.png"
    Image.fromarray((breathe(texture(9), 1.03, (0, 0), 1.5) * 255 + 0.5).astype(np.uint8)).save(stranger)
    images = [*files[:3], stranger, files[4]]
    code = main(["predict", "--model", str(checkpoint), "--images", *map(str, images), "--focus-distances", *map(str, focus),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"daif predict: error: {stranger}: alignment to img2.png refused")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_12_megapixel_stack_predicts_in_bounded_memory(tmp_path):
    """Five 4000x3000 JPEGs, the shipped model's architecture (untrained), the default resize (long side 1024)
    and alignment: the process's peak resident memory (VmHWM) stays under 3 GiB (measured 2.1 GiB)."""
    import subprocess
    import sys

    from daif.data.synthetic import make_texture
    from daif.pretrained import read_meta

    base = (make_texture(np.random.default_rng(0), (750, 1000)) * 255).astype(np.uint8)
    large = Image.fromarray(base).resize((4000, 3000), Image.Resampling.BICUBIC)
    images = []
    for k in range(5):
        images.append(tmp_path / f"{k}.jpg")
        scale = 1 + 0.005 * k  # breathing: centre crops, resized back to 4000x3000
        box = (2000 - 2000 / scale, 1500 - 1500 / scale, 2000 + 2000 / scale, 1500 + 1500 / scale)
        large.resize((4000, 3000), Image.Resampling.BILINEAR, box=box).save(images[-1], quality=90)
    del large
    net = DAIFNet.from_config(read_meta()["model"])
    checkpoint = write_checkpoint(tmp_path / "ckpt", net)
    script = ("import sys; from daif.cli import main; code = main(sys.argv[1:]); "
              "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)")
    argv = [sys.executable, "-c", script, "predict", "--model", str(checkpoint), "--images", *map(str, images),
            "--focus-distances", "0.35", "0.5", "0.8", "1.3", "2.2", "--camera", "0.0042,1.8,1.4e-6", "--out", str(tmp_path / "out")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kib = int(done.stdout.strip().splitlines()[-1])
    assert peak_kib < 3 * 1024 * 1024, peak_kib
    assert np.load(tmp_path / "out" / "depth.npy").shape[1] <= 1024 and "resize: 4000x3000 -> 1024x768 px" in done.stdout
