"""Captured focal stacks (`daif render --source focal-stack-folder`): a stack made without our renderer, a 9x9
light field refocused by shift-and-add (daif/data/lightfield.py), stored as given and checked against
physics; scenes without depth or AIF through `daif evaluate` and training; bad folders as one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_erosion, uniform_filter

import daif.cli
from daif.baseline import depth_from_focus
from daif.data.lightfield import LightFieldScene, light_field_stack, write_captured_scene
from daif.data.store import open_store
from daif.optics import ThinLensCamera

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

FOCUS = (1.0, 1.5, 2.5, 4.0, 6.0)  # metres, NYUv2-5's
FOCAL_LENGTH, PIXEL_SIZE = 0.05, 12e-6  # F = f / p = 4167 px
BASELINE = 1.5 / (FOCAL_LENGTH / PIXEL_SIZE)  # F b = 1.5 px m: blur up to (n - 1) F b |1/s - 1/d| = 8.6 px here
SIZE = (48, 64)  # (H, W)
CARDS = {1.4: (6, 30, 4, 30), 3.5: (18, 42, 36, 60)}  # card depth [m] -> (row0, row1, col0, col1); 1.4 m is nearer


def scene(seed: int) -> LightFieldScene:
    return LightFieldScene(SIZE, (8.0, 3.5, 1.4), (None, CARDS[3.5], CARDS[1.4]), seed=seed)


def card_interior(depth: float) -> np.ndarray:
    """(H, W) bool: the card's pixels 5 px from its edges (away from the other planes' blur), minus the nearer card."""
    mask = scene(0).card_mask(CARDS[depth]) & (scene(0).depth_map() == np.float32(depth))
    return binary_erosion(mask, iterations=5)


@pytest.fixture(scope="module")
def light_field():
    return light_field_stack(scene(0), FOCUS, FOCAL_LENGTH, PIXEL_SIZE, BASELINE)


@pytest.fixture(scope="module")
def captured_store(ray_local, light_field, tmp_path_factory):
    """(input root, store path): one test scene with depth.npy and the camera in stack.json, no AIF."""
    root = tmp_path_factory.mktemp("captured")
    write_captured_scene(root / "input" / "test" / "cards", light_field)
    out = root / "store"
    argv = ["render", "--source", "focal-stack-folder", "--input", str(root / "input"), "--split", "test", "--out", str(out)]
    assert daif.cli.main(argv) == 0
    return root / "input", out


def test_the_store_holds_the_input_images_byte_for_byte(captured_store, light_field):
    root, out = captured_store
    store = open_store(str(out))
    stored = next(store.iter_scenes("test"))
    files = np.stack([np.asarray(Image.open(root / "test" / "cards" / f"{k:02d}.png")) for k in range(len(FOCUS))])
    assert stored["scene_id"] == "cards" and stored["stack"].dtype == np.uint8 and np.array_equal(stored["stack"], files)
    assert store.focus_distances.tolist() == list(np.float32(FOCUS)) and store.image_size == SIZE
    assert store.camera == ThinLensCamera(FOCAL_LENGTH, FOCAL_LENGTH / (8 * BASELINE), PIXEL_SIZE)
    assert store.captured and store.manifest["source"] == "focal-stack-folder" and store.num_bins == 5
    np.testing.assert_array_equal(stored["depth"], light_field.depth)  # 1.4, 3.5 and 8 m: inside the [0.1, 10] m clip
    assert stored["valid"].all() and not stored["aif"].any() and store.scenes_without_aif("test") == ["cards"]


def test_the_image_focused_nearest_a_card_is_the_sharpest_there(captured_store):
    """Local variance (5x5) of the grey image over a card's interior peaks at the focus distance nearest the card
    in inverse depth (the blur grows with |1/s - 1/d|): 1.5 m for the 1.4 m card, 4 m for the 3.5 m card."""
    _, out = captured_store
    grey = next(open_store(str(out)).iter_scenes("test"))["stack"].astype(np.float64).mean(axis=-1)  # (F, H, W)
    variance = uniform_filter(grey**2, (1, 5, 5)) - uniform_filter(grey, (1, 5, 5)) ** 2
    for depth in CARDS:
        energy = [float(v[card_interior(depth)].mean()) for v in variance]
        nearest = int(np.argmin([abs(1 / s - 1 / depth) for s in FOCUS]))
        assert int(np.argmax(energy)) == nearest, (depth, energy)


def test_depth_from_focus_finds_the_cards_within_the_focus_spacing(captured_store):
    _, out = captured_store
    store = open_store(str(out))
    stack = torch.from_numpy(next(store.iter_scenes("test"))["stack"]).permute(0, 3, 1, 2)[None].float() / 255
    depth = depth_from_focus(stack, torch.from_numpy(store.focus_distances), store.camera)[0][0, 0].numpy()
    for card, spacing in ((1.4, 1.5 - 1.0), (3.5, 4.0 - 2.5)):  # the gap between the focus distances around the card
        inside = card_interior(card)
        assert np.mean(np.abs(depth[inside] - card) < spacing) > 0.9, card


# ------------------------------------------------------------------ scenes without depth or AIF: evaluate and train


@pytest.fixture(scope="module")
def partial_store(ray_local, tmp_path_factory):
    """A store of 4 train scenes without depth or AIF (1 becomes val) and 2 test scenes: "full" (depth.npy and
    aif.png, the centre view) and "bare" (neither); the camera given by --camera, not in stack.json."""
    root = tmp_path_factory.mktemp("partial")
    for seed in range(4):
        stack = light_field_stack(scene(seed + 1), FOCUS, FOCAL_LENGTH, PIXEL_SIZE, BASELINE)
        write_captured_scene(root / "input" / "train" / f"t{seed}", stack, depth=False, camera=False)
    stack = light_field_stack(scene(7), FOCUS, FOCAL_LENGTH, PIXEL_SIZE, BASELINE)
    write_captured_scene(root / "input" / "test" / "full", stack, aif=True, camera=False)
    write_captured_scene(root / "input" / "test" / "bare", stack, depth=False, camera=False)
    camera = f"{FOCAL_LENGTH},{FOCAL_LENGTH / (8 * BASELINE)!r},{PIXEL_SIZE}"
    argv = ["render", "--source", "focal-stack-folder", "--input", str(root / "input"), "--camera", camera,
            "--size", "32x24", "--val-fraction", "0.25", "--out", str(root / "store")]
    assert daif.cli.main(argv) == 0
    return root


def test_scenes_without_depth_or_aif_store_no_ground_truth(partial_store):
    store = open_store(str(partial_store / "store"))
    scenes = {s["scene_id"]: s for split in store.splits for s in store.iter_scenes(split)}
    assert sorted(scenes) == ["bare", "full", "t0", "t1", "t2", "t3"] and store.image_size == (24, 32)
    assert store.scenes_without_aif("test") == ["bare"] and len(store.scenes_without_aif("train")) == 3
    assert not scenes["bare"]["valid"].any() and not scenes["bare"]["aif"].any() and scenes["full"]["valid"].all()
    original = np.asarray(Image.open(partial_store / "input" / "test" / "full" / "02.png"))
    resized = np.asarray(Image.fromarray(original).resize((32, 24), Image.Resampling.BOX))  # resize_rgb's filter
    assert np.array_equal(scenes["full"]["stack"][2], resized)


def test_evaluate_reports_no_depth_or_aif_metrics_where_there_is_no_ground_truth(partial_store, tmp_path):
    from daif.evaluate import evaluate
    from daif.metrics import depth_metrics
    from daif.model import DAIFNet

    store = open_store(str(partial_store / "store"))
    torch.manual_seed(0)
    net = DAIFNet(width=4, levels=2).eval()
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    torch.save({"model": net.state_dict(), "optimizer": {}, "step": 0, "epoch": 0}, checkpoint / "state.pt")
    meta = {"model": net.config, "camera": store.camera.to_dict(), "focus_distances": store.focus_distances.tolist(),
            "depth_range": [net.near, net.far], "epoch": 0, "step": 0}
    (checkpoint / "meta.json").write_text(json.dumps(meta))

    result = evaluate(str(checkpoint), partial_store / "store", out=tmp_path / "eval", backend="local", track=False)
    rows = {(r["scene_id"], r["method"]): r for r in _csv_rows(tmp_path / "eval" / "per_image.csv") if r["condition"] == "main"}
    for method in ("daif-net", "baseline", "search"):
        bare, full = rows[("bare", method)], rows[("full", method)]
        assert bare["count"] == "0" and math.isnan(float(bare["delta1"])) and math.isnan(float(bare["psnr"]))
        assert math.isfinite(float(bare["mg"])) and math.isfinite(float(full["psnr"])) and int(full["count"]) == 24 * 32
        assert 0 < float(bare["recon"]) < 1  # the stack's reconstruction needs no ground truth
        assert result["methods"][method]["image"]["delta1"] == pytest.approx(float(full["delta1"]))  # "bare" left out
        assert result["methods"][method]["aif"]["psnr"] == pytest.approx(float(full["psnr"]))
    full = next(s for s in store.iter_scenes("test") if s["scene_id"] == "full")
    stack = torch.from_numpy(full["stack"]).permute(0, 3, 1, 2)[None].float() / 255
    baseline = depth_from_focus(stack, torch.from_numpy(store.focus_distances), store.camera)[0]
    expected = depth_metrics(baseline, torch.from_numpy(full["depth"])[None, None], torch.from_numpy(full["valid"])[None, None])
    assert result["methods"]["baseline"]["image"]["delta1"] == pytest.approx(expected["delta1"])
    assert any("1 of 2 scenes have no ground-truth AIF" in n for n in result["notes"])
    assert any("1 of 2 scenes have no ground-truth depth" in n for n in result["notes"])
    with pytest.raises(ValueError, match="holds captured stacks; they cannot be re-rendered"):
        evaluate(str(checkpoint), partial_store / "store", out=tmp_path / "eval2", focus_sets=["1,2"], backend="local", track=False)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as file:
        return list(csv.DictReader(file))


def test_training_runs_on_captured_stacks_without_depth_or_aif(partial_store, tmp_path):
    """Self-supervised: 5 images in 5 bins, fixed mode, no depth and no AIF anywhere in train and val."""
    from daif.config import load_config
    from daif.train.driver import train

    config = load_config(preset="nyuv2-5", overrides=[
        f"data.path={partial_store / 'store'}", "model.width=4", "model.levels=2", "optim.batch_size=2", "train.epochs=1",
        "train.figures_every=1", f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.storage={tmp_path}/runs",
    ])
    result = train(config, in_process=True, log_models=False)
    metrics = result.metrics
    assert metrics["epoch"] == 0 and math.isfinite(metrics["train/total"]) and math.isfinite(metrics["val/total"])
    assert math.isnan(metrics["val/delta1"])  # no depth to compare with: no number rather than a wrong one
    assert math.isnan(metrics["val/psnr"]) and math.isnan(metrics["val/ssim"])  # the stored AIF is zeros, no truth
    assert metrics["val/mg"] > 0 and metrics["val/sf"] > 0  # the predicted AIF's sharpness needs no ground truth
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(result.run_id)
    assert "val/psnr" not in run.data.metrics and "val/mg" in run.data.metrics
    assert run.data.params["model.depth_range_used"] == "0.1,10.0"  # the nyuv2-5 preset's model.near/far


# ------------------------------------------------------------------ bad folders: one line, exit 2, before Ray


def _tiny_scene(folder: Path, focus=(1.0, 2.0, 3.0), camera: dict | None = None, size=(12, 16)) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(str(folder)))
    names = [f"{k}.png" for k in range(len(focus))]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    content = {"images": names, "focus_distances": list(focus)}
    if camera is not None:
        content["camera"] = camera
    (folder / "stack.json").write_text(json.dumps(content))


NYU5 = {"focal_length": 0.05, "f_number": 8.0, "pixel_size": 12e-6}


def _break_focus(root: Path) -> str:
    _tiny_scene(root / "test" / "b", focus=(1.0, 2.0, 3.5), camera=NYU5)
    first = root / "test" / "a" / "stack.json"
    return f"{root / 'test' / 'b' / 'stack.json'}: focus distances [1.0, 2.0, 3.5] differ from [1.0, 2.0, 3.0] of {first} (a store holds one focus list)"


def _missing_image(root: Path) -> str:
    (root / "test" / "a" / "1.png").unlink()
    return f"{root / 'test' / 'a' / '1.png'}: missing"


def _not_json(root: Path) -> str:
    (root / "test" / "a" / "stack.json").write_text("{'images': [")
    return f"{root / 'test' / 'a' / 'stack.json'}: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"


def _wrong_field(root: Path) -> str:
    (root / "test" / "a" / "stack.json").write_text(json.dumps({"images": ["0.png", "1.png", "2.png"], "focus_distances": [1, 2]}))
    return f"{root / 'test' / 'a' / 'stack.json'}: 3 images but 2 focus distances (one per image)"


def _camera_conflict(root: Path) -> str:
    return f"{root / 'test' / 'a' / 'stack.json'}: camera {NYU5} disagrees with {ThinLensCamera.preset('defocusnet').to_dict()} of --camera defocusnet"


def _no_camera(root: Path) -> str:
    (root / "test" / "a" / "stack.json").write_text(json.dumps({"images": ["0.png", "1.png", "2.png"], "focus_distances": [1, 2, 3]}))
    return (f"{root / 'test' / 'a' / 'stack.json'}: no camera: give --camera f,N,p or --camera PRESET, put 'camera' in stack.json, "
            "or use images whose EXIF holds FocalLength, FNumber, FocalLengthIn35mmFilm")


def _depth_linked_outside(root: Path) -> str:
    outside = root.parent / "elsewhere.png"
    Image.fromarray(np.full((12, 16), 20000, np.uint16)).save(outside)
    (root / "test" / "a" / "depth.png").symlink_to(outside)
    return (f"{root / 'test' / 'a' / 'depth.png'}: links to {outside}, outside the scene folder {root / 'test' / 'a'}; "
            "a scene's files must lie inside it")


def _decompression_bomb(root: Path) -> str:
    Image.new("RGB", (20_000, 20_000)).save(root / "test" / "a" / "aif.png")  # 1 MB declaring 4e8 pixels
    return f"{root / 'test' / 'a' / 'aif.png'}: declares more than 40,000,000 pixels, the most that are read (daif.data.sources.MAX_IMAGE_PIXELS)"


def _large_image(root: Path) -> str:
    Image.new("RGB", (9_000, 5_000)).save(root / "test" / "a" / "aif.png")  # under Pillow's own limit, over ours
    return f"{root / 'test' / 'a' / 'aif.png'}: declares 9000x5000 (WxH) pixels; at most 40,000,000 are read (daif.data.sources.MAX_IMAGE_PIXELS)"


def _tiny_images(root: Path) -> str:
    for k in range(3):
        Image.new("RGB", (1, 1)).save(root / "test" / "a" / f"{k}.png")
    return f"{root / 'test' / 'a' / '0.png'}: 1x1 (WxH) pixels; at least 8x8 are needed (daif.data.sources.MIN_IMAGE_SIZE)"


def _deep_json(root: Path) -> str:
    (root / "test" / "a" / "stack.json").write_text("[" * 100_000 + "]" * 100_000)
    return f"{root / 'test' / 'a' / 'stack.json'}: not valid JSON (nested too deeply)"


def _stack_json(root: Path, **fields) -> Path:
    path = root / "test" / "a" / "stack.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
    return path


def _nan_focus(root: Path) -> str:
    return f"{_stack_json(root, focus_distances=[float('nan'), 2.0, 3.0])}: 'focus_distances': nan must be finite"


def _far_focus(root: Path) -> str:
    path = _stack_json(root, focus_distances=[1e301, 1e302, 1.0])
    return f"{path}: 'focus_distances': 1e+301 m must be at most 10000 m (daif.optics.MAX_FOCUS_DISTANCE)"


def _focus_at_focal_length(root: Path) -> str:
    return f"{_stack_json(root, focus_distances=[0.05, 2.0, 3.0])}: 'focus_distances': 0.05 m must be above the focal length 0.05 m"


def _implausible_camera(root: Path) -> str:
    path = _stack_json(root, camera={"focal_length": 0.05, "f_number": 1e-300, "pixel_size": 1e-300})
    return f"{path}: 'camera': ThinLensCamera.f_number: expected a plausible value in [0.5, 1000], got 1e-300"


@pytest.mark.parametrize(
    ("breaker", "options"),
    [(_break_focus, []), (_missing_image, []), (_not_json, []), (_wrong_field, []),
     (_camera_conflict, ["--camera", "defocusnet"]), (_no_camera, []), (None, ["--num-focus", "3"]),
     (_depth_linked_outside, []), (_decompression_bomb, []), (_large_image, []), (_tiny_images, []), (_deep_json, []),
     (_nan_focus, []), (_far_focus, []), (_focus_at_focal_length, []), (_implausible_camera, [])],
    ids=["focus-differs", "missing-image", "not-json", "wrong-field", "camera-conflict", "no-camera", "num-focus",
         "depth-linked-outside", "decompression-bomb", "over-pixel-limit", "1x1-images", "json-nested-100000-deep",
         "nan-focus", "focus-1e301", "focus-at-focal-length", "implausible-camera"],
)
def test_bad_captured_folders_are_one_line_errors_before_a_store(breaker, options, tmp_path, capsys):
    root = tmp_path / "input"
    _tiny_scene(root / "test" / "a", camera=NYU5)
    expected = breaker(root) if breaker else (
        "--num-focus: source 'focal-stack-folder' takes its focus distances from each scene's stack.json; drop --num-focus")
    out = tmp_path / "store"
    code = daif.cli.main(["render", "--source", "focal-stack-folder", "--input", str(root), "--split", "test", "--out", str(out), *options])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.strip().splitlines() == [f"daif render: error: {expected}"]
    assert not out.exists()


def test_a_bad_stack_json_is_one_line_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "input"
    _tiny_scene(root / "test" / "a", camera=NYU5)
    (root / "test" / "a" / "stack.json").write_text(json.dumps({"images": ["0.png"], "focus_distance": [1.0]}))
    daif_command = str(Path(sys.executable).with_name("daif"))
    argv = [daif_command, "render", "--source", "focal-stack-folder", "--input", str(root), "--split", "test", "--out", str(tmp_path / "s")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"daif render: error: {root / 'test' / 'a' / 'stack.json'}: unknown key(s) ['focus_distance'], "
        "expected some of ['camera', 'focus_distances', 'images']"
    ]


# ------------------------------------------------------------------ focus breathing and EXIF cameras


def _breathing_scene(folder: Path, stranger: bool = False) -> list[Path]:
    """tests/test_align.py's breathing stack (240x320, scales 1.00..1.04 and 1-2 px shifts, blurred differently) as
    JPEGs whose EXIF holds a phone's lens (tests/test_exif.py), stack.json without a camera, depth.npy (2 m)."""
    from tests.test_align import BLURS, FOCUS as BREATHING_FOCUS, MAGNIFICATIONS, SHIFTS, breathe, texture
    from tests.test_exif import PHONE_TAGS

    folder.mkdir(parents=True)
    exif = Image.Exif()
    exif.get_ifd(0x8769).update(PHONE_TAGS)
    names = []
    for k, (m, d, b) in enumerate(zip(MAGNIFICATIONS, SHIFTS, BLURS)):
        image = breathe(texture(9 if stranger and k == 3 else 0), m, d, b)
        names.append(f"img{k}.jpg")
        Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(folder / names[-1], quality=95, exif=exif)
    (folder / "stack.json").write_text(json.dumps({"images": names, "focus_distances": list(BREATHING_FOCUS)}))
    np.save(folder / "depth.npy", np.full((240, 320), 2.0, np.float32))
    return [folder / name for name in names]


@pytest.fixture(scope="module")
def breathing_root(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("breathing") / "input"
    return root, _breathing_scene(root / "test" / "phone")


def _render(root: Path, out: Path, *options: str) -> int:
    return daif.cli.main(["render", "--source", "focal-stack-folder", "--input", str(root), "--split", "test", "--out", str(out), *options])


def test_a_breathing_stack_is_aligned_recorded_and_invalid_outside_the_overlap(breathing_root, tmp_path):
    """Default --align scale: the store records each image's scale and shift (against the transforms derived by hand
    in tests/test_align.py), keeps the frame, marks the pixels outside the overlap invalid, and stores aligned images
    that agree with the reference; the camera comes from the EXIF (nothing else gives one)."""
    from tests.test_align import BLURS, MAGNIFICATIONS, SHIFTS, breathe, expected_transforms, texture
    from tests.test_exif import PHONE

    root, files = breathing_root
    assert _render(root, tmp_path / "store") == 0
    store = open_store(str(tmp_path / "store"))
    record = store.alignments("test")["phone"]
    assert record["mode"] == "scale" and record["reference"] == "img4.jpg"  # ascending focus: img4 (0.35 m) first
    by_name = {image["image"]: image for image in record["images"]}
    for k, (scale, shift_x, shift_y) in enumerate(expected_transforms(4)):
        found = by_name[f"img{k}.jpg"]
        assert abs(found["scale"] - scale) < 0.002 and abs(found["shift_x"] - shift_x) < 0.3 and abs(found["shift_y"] - shift_y) < 0.3
    at_320 = {**PHONE.to_dict(), "pixel_size": PHONE.pixel_size * 100 / 400}  # PHONE's pitch is over an 80x60 diagonal (100 px)
    assert store.camera.to_dict() == pytest.approx(at_320, rel=1e-12) and store.image_size == (240, 320)
    scene = next(store.iter_scenes("test"))
    box = record["overlap"]
    inside = np.zeros((240, 320), bool)
    inside[box["top"] : box["top"] + box["height"], box["left"] : box["left"] + box["width"]] = True
    assert np.array_equal(scene["valid"], inside) and 0 < box["width"] < 320
    reference = np.asarray(Image.open(files[4]))
    assert np.array_equal(scene["stack"][0], reference)  # the reference is stored as read
    for k, stored in zip((3, 2, 1, 0), scene["stack"][1:]):  # ascending focus: img3 (0.6 m), img2, img1, img0 (2.2 m)
        # image k without breathing: its own blur, the reference's scale and shift (scipy, not daif.align)
        expected = breathe(texture(0), MAGNIFICATIONS[4], SHIFTS[4], BLURS[k]) * 255
        before = np.abs(np.asarray(Image.open(files[k]), dtype=np.float64) - expected)[inside].mean()
        after = np.abs(stored.astype(np.float64) - expected)[inside].mean()
        assert after < 0.25 * before and after < 8, (k, before, after)  # 8-bit levels: resampling the sharpest (img2) leaves 7


def test_align_none_stores_the_images_as_read_and_the_exif_pitch_follows_the_size(breathing_root, tmp_path):
    from tests.test_exif import PHONE

    root, files = breathing_root
    assert _render(root, tmp_path / "store", "--align", "none", "--size", "160x120") == 0
    store = open_store(str(tmp_path / "store"))
    at_160 = PHONE.pixel_size * 100 / 200  # PHONE's pitch is over an 80x60 diagonal (100 px); 320x240 files stored at 160x120
    assert store.camera.pixel_size == pytest.approx(at_160, rel=1e-12) and store.image_size == (120, 160)
    assert store.alignments("test") == {"phone": {"mode": "none"}}
    scene = next(store.iter_scenes("test"))
    resized = np.asarray(Image.open(files[4]).resize((160, 120), Image.Resampling.BOX))  # resize_rgb's filter
    assert np.array_equal(scene["stack"][0], resized) and scene["valid"].all()


def test_an_image_of_another_scene_is_one_line_naming_it(ray_local, tmp_path, capsys):
    root = tmp_path / "input"
    files = _breathing_scene(root / "test" / "phone", stranger=True)
    assert _render(root, tmp_path / "store") == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"daif render: error: {files[3].resolve()}: alignment to img2.jpg refused")
