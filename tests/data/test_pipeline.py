"""The Ray Data rendering pipeline, the store it writes, resume, and reading it back as a Dataset."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tests.helpers.data_files import DENSE, SIZE, write_depth_png

import daif.cli
from daif.data.dataset import read_split
from daif.data.pipeline import RenderConfig, plan_render, render_store
from daif.data.sources import prepare_scene
from daif.data.store import StoreError, open_store
from daif.errors import UsageError
from daif.optics import get_preset, render_focal_stack

pytestmark = pytest.mark.ray

def test_summary_and_manifest(dense_store):
    out, summary = dense_store
    assert summary["scenes"] == 6 and summary["images"] == 60 and summary["rendered_shards"] == 4
    assert summary["splits"] == {"train": 4, "val": 1, "test": 1}
    assert summary["bytes"] == sum(p.stat().st_size for p in out.glob("shard-*.h5"))
    store = open_store(str(out))
    preset = get_preset("nyuv2-dense")
    assert store.camera == preset.camera
    np.testing.assert_allclose(store.focus_distances, np.linspace(1, 9, 10), rtol=1e-6)
    assert store.image_size == SIZE and store.num_bins == 5 and store.splits == ["train", "val", "test"]
    assert [b.tolist() for b in store.bins] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert store.manifest["status"] == "complete" and len(store.manifest_hash) == 64
    assert (store.num_scenes("train"), store.num_scenes("val"), store.num_scenes("test")) == (4, 1, 1)
    with h5py.File(out / "shard-00000.h5", "r") as shard:
        assert shard.attrs["camera_focal_length"] == preset.camera.focal_length
        assert shard.attrs["camera_f_number"] == preset.camera.f_number
        assert shard.attrs["camera_pixel_size"] == preset.camera.pixel_size
        assert (shard.attrs["kernel_size"], shard.attrs["source"], shard.attrs["split"]) == (0, "synthetic", "train")  # no window (the default); HDF5 holds no null
        assert shard["stack"].shape == (2, 10, 24, 32, 3) and shard["stack"].chunks == (1, 1, 24, 32, 3)
        assert shard["stack"].compression is None  # the default, store.DEFAULT_COMPRESSION = "none"
        np.testing.assert_array_equal(shard["focus_distances"][()], store.focus_distances)


def test_rendered_stacks_equal_the_renderer_applied_directly(dense_store):
    out, _ = dense_store
    store = open_store(str(out))
    plan = plan_render(RenderConfig(out=str(out), **DENSE))
    refs = {ref["scene_id"]: ref for shard in plan.shards for ref in shard["refs"]}
    scenes = list(store.iter_scenes("test")) + list(store.iter_scenes("train"))[:1]
    for scene in scenes:
        ref = refs[scene["scene_id"]]
        expected = prepare_scene(plan.source.load(ref), ref["scene_id"], SIZE, (0.1, 10.0))
        np.testing.assert_array_equal(scene["aif"], expected["aif"])
        np.testing.assert_array_equal(scene["depth"], expected["depth"])
        aif = torch.from_numpy(expected["aif"]).permute(2, 0, 1)[None].float() / 255.0
        depth = torch.from_numpy(expected["depth"])[None, None]
        stack = render_focal_stack(aif, depth, torch.from_numpy(store.focus_distances), store.camera, store.kernel_size)[0]
        stack = (stack.clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
        assert np.abs(scene["stack"].astype(np.float64) - stack).max() <= 1.0
        assert np.abs(scene["stack"].astype(np.float64) - scene["aif"][None]).mean() > 1.0  # defocus is visible


def test_read_split_as_a_ray_dataset(dense_store):
    out, _ = dense_store
    rows = read_split(str(out), "train").take_all()
    assert [r["scene_id"] for r in rows] == [s["scene_id"] for s in open_store(str(out)).iter_scenes("train", ["scene_id"])]
    assert rows[0]["stack"].shape == (10, 24, 32, 3) and rows[0]["stack"].dtype == np.uint8
    assert rows[0]["depth"].dtype == np.float32 and rows[0]["valid"].dtype == bool
    batch = next(iter(read_split(str(out), "val", columns=("scene_id", "depth")).iter_batches(batch_size=4)))
    assert set(batch) == {"scene_id", "depth"} and batch["depth"].shape == (1, 24, 32)


def test_resume_rerenders_only_the_partial_shard(dense_store, tmp_path):
    source, _ = dense_store
    out = tmp_path / "resumed"
    shutil.copytree(source, out)
    (out / "shard-00001.h5").write_bytes((out / "shard-00001.h5").read_bytes()[:5000])  # killed mid-write
    (out / ".shard-00002.h5.tmp-deadbeef").write_bytes(b"partial")
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.h5")}
    summary = render_store(RenderConfig(out=str(out), **DENSE))
    assert (summary["rendered_shards"], summary["skipped_shards"], summary["rendered_scenes"]) == (1, 3, 2)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.h5")}
    assert {n for n in after if after[n] != before[n]} == {"shard-00001.h5"}
    assert not list(out.glob(".shard-*"))
    scenes = list(open_store(str(out)).iter_scenes("train"))
    assert len(scenes) == 4


def test_store_with_a_different_configuration_is_refused(dense_store, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(dense_store[0], out)
    with pytest.raises(StoreError, match=r"holds a store with a different configuration \(differs in \['focus_distances'\]\)"):
        render_store(RenderConfig(out=str(out), **{**DENSE, "num_focus": 12}))


def test_reading_a_tampered_store_fails(dense_store, tmp_path):
    out = tmp_path / "tampered"
    shutil.copytree(dense_store[0], out)
    with h5py.File(out / "shard-00002.h5", "r+") as shard:
        shard["depth"][0, 0, 0] = 5.0
    with pytest.raises(StoreError, match="shard-00002.h5: SHA-256 .* does not match the manifest"):
        list(open_store(str(out)).iter_scenes("val"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["camera"]["f_number"] = 2.0
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="shard-00000.h5: shard camera .* disagrees with the manifest"):
        list(open_store(str(out)).iter_scenes("train"))
    manifest["status"] = "rendering"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="store is incomplete"):
        open_store(str(out))


def test_focus_distance_at_the_focal_length_is_refused(tmp_path):
    with pytest.raises(UsageError, match="^focus distances: 0.05 m must be above the focal length 0.05 m$"):
        plan_render(RenderConfig(out=str(tmp_path), preset="nyuv2-5", num_focus=3, focus_range=(0.05, 2.0)))


def _render_error(argv: list[str], capsys, monkeypatch) -> str:
    """The one stderr line of a `daif render` that must fail before Ray starts (asserting exit 2, no traceback)."""
    import ray

    starts: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: starts.append(a))
    code = daif.cli.main(["render", *argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and starts == [], err
    return err.strip()


def test_render_out_that_is_a_file_is_one_line_before_ray(tmp_path, capsys, monkeypatch):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    assert _render_error(["--size", "16x16", "--out", str(existing)], capsys, monkeypatch) == (
        f"daif render: error: --out: {existing} is a file; expected a folder (existing or new)")
    assert _render_error(["--size", "16x16", "--out", str(existing / "store")], capsys, monkeypatch) == (
        f"daif render: error: --out: {existing / 'store'} lies under {existing}, which is a file; expected a folder (existing or new)")
    assert existing.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [(["--camera", "0.05,1e-300,1e-300"], "--camera: ThinLensCamera.f_number: expected a plausible value in [0.5, 1000], got 1e-300"),
     (["--camera", "1e-300,8,12e-6"], "--camera: ThinLensCamera.focal_length: expected a plausible value in [0.0001, 10] m, got 1e-300"),
     (["--focus-range", "1", "1e301"], "--focus-range: 1e+301 m is beyond the farthest plausible distance, 10000 m (daif.optics.MAX_FOCUS_DISTANCE)"),
     (["--focus-range", "nan", "2"], "--focus-range: expected 0 < LOW <= HIGH metres, got nan 2"),
     (["--camera", "2,8,12e-6"], "focus distances: 1 m must be above the focal length 2 m")],
    ids=["f-number-1e-300", "focal-length-1e-300", "focus-1e301", "focus-nan", "focus-inside-the-lens"],
)
def test_implausible_render_options_are_one_line_before_ray(options, expected, tmp_path, capsys, monkeypatch):
    out = tmp_path / "store"
    assert _render_error(["--out", str(out), "--size", "16x16", *options], capsys, monkeypatch) == f"daif render: error: {expected}"
    assert not out.exists()


def test_images_under_the_minimum_size_are_refused_from_the_command_and_from_python(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:  # argparse's error: usage and one error line, exit 2
        daif.cli.main(["render", "--out", str(tmp_path / "store"), "--size", "7x300"])
    assert exited.value.code == 2 and capsys.readouterr().err.strip().endswith("expected at least 8x8, got '7x300'")
    with pytest.raises(UsageError, match=r"^--size: expected at least 8x8 and at most 40,000,000 pixels, got 1x1 \(WxH\)$"):
        render_store(RenderConfig(out=str(tmp_path / "store"), size=(1, 1)))
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("argv", "orig_argv", "expected"),
    [(["/venv/bin/daif", "render", "--out", "my store"], None, "daif render --out 'my store'"),
     (["jobs/render.py", "--smoke-test"], ["python", "jobs/render.py", "--smoke-test"], "python jobs/render.py --smoke-test")],
    ids=["daif-command", "job-script"],
)
def test_the_manifest_records_the_command_line_as_typed(argv, orig_argv, expected, monkeypatch):
    import argparse
    import sys

    from daif.data.cli import add_arguments, config_from_args

    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "orig_argv", orig_argv or ["/venv/bin/python", *argv])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--out", "my store"])).command == expected


def test_cli_renders_nyuv2_mat_split_all(ray_local, nyuv2_mat, tmp_path):
    mat, splits, images, _ = nyuv2_mat
    out = tmp_path / "nyu"
    argv = ["render", "--source", "nyuv2-mat", "--input", str(mat), "--splits-mat", str(splits), "--split", "all"]
    argv += ["--camera", "nyuv2-5", "--size", "13x9", "--out", str(out), "--shard-size", "4", "--val-fraction", "0.2"]
    assert daif.cli.main(argv) == 0
    store = open_store(str(out))
    ids = {split: [s["scene_id"] for s in store.iter_scenes(split, ["scene_id"])] for split in store.splits}
    assert sorted(ids["train"] + ids["val"]) == [f"nyuv2-{i:05d}" for i in range(1, 6)] and len(ids["val"]) == 1
    assert ids["test"] == ["nyuv2-00006", "nyuv2-00007", "nyuv2-00008"]
    test_scene = next(store.iter_scenes("test"))
    assert test_scene["aif"].shape == (9, 13, 3) and test_scene["stack"].shape == (5, 9, 13, 3)
    assert store.manifest["config"]["input"] == str(mat)


def test_bad_scene_leaves_no_partial_shard(ray_local, nyuv2_mat, tmp_path):
    mat, splits, images, depths = nyuv2_mat
    from tests.helpers.data_files import write_nyuv2_mat

    depths = depths.copy()
    depths[6] = np.nan  # frame 7 (test) has no valid depth
    write_nyuv2_mat(tmp_path / "nan.mat", images, depths)
    out = tmp_path / "nan-store"
    config = RenderConfig(out=str(out), source="nyuv2-mat", input=str(tmp_path / "nan.mat"), splits_mat=str(splits))
    with pytest.raises(Exception, match="scene nyuv2-00007: depth has no valid pixel"):
        render_store(config, split="test", size=(9, 13), shard_size=8)
    assert not list(out.glob("shard-*")) and not list(out.glob(".shard-*"))


def test_eight_bit_depth_png_fails_naming_the_file(ray_local, rgbd_folder, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 30), 40, np.uint8)).save(rgbd_folder / "test_depth" / "0001.png")
    out = tmp_path / "rgbd-store"
    argv = ["render", "--source", "rgbd-folder", "--input", str(rgbd_folder), "--split", "test", "--size", "16x12", "--out", str(out)]
    assert daif.cli.main(argv) == 2
    assert not list(out.glob("shard-*")) and not list(out.glob(".shard-*"))
    write_depth_png(rgbd_folder / "test_depth" / "0001.png", np.full((20, 30), 2.0))
    assert daif.cli.main(argv) == 0
    assert open_store(str(out)).num_scenes("test") == 2


def test_render_job_smoke_test(ray_local, tmp_path):
    spec = importlib.util.spec_from_file_location("render_job", Path(__file__).parents[2] / "jobs" / "render.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    assert job.main(["--smoke-test", "--out", str(tmp_path / "smoke")]) == 0
    store = open_store(str(tmp_path / "smoke"))
    assert sum(store.num_scenes(s) for s in store.splits) == 6 and len(store.focus_distances) == 5


def test_defocusnet_folder_uses_its_preset(ray_local, defocusnet_folder, tmp_path):
    out = tmp_path / "dfn"
    summary = render_store(RenderConfig(out=str(out), source="defocusnet", input=str(defocusnet_folder), preset="defocusnet", size=(16, 16)))
    store = open_store(str(out))
    assert summary["splits"] == {"train": 1, "val": 1, "test": 1}
    assert store.camera == get_preset("defocusnet").camera
    np.testing.assert_allclose(store.focus_distances, [0.3, 0.45, 0.75, 1.2, 1.8], rtol=1e-6)


def test_a_store_without_a_window_holds_the_ladder_renderers_stacks_and_the_datas_blur(ray_local, tmp_path):
    out = tmp_path / "ladder"
    render_store(RenderConfig(out=str(out), source="synthetic", preset="nyuv2-5", size=(24, 32), scenes=3, shard_size=3,
                              seed=5, kernel_size=None, depth_range=(0.75, 7.5)))
    store = open_store(str(out))
    # nyuv2-5: f 50 mm, N 8, p 12 um, focus 1..6 m; the blur of depths 0.75..7.5 m peaks at d = 0.75 under s = 6 m
    assert store.kernel_size is None and store.max_sigma == pytest.approx(0.05 / 8 * 0.05 * 5.25 / (0.75 * 5.95) / 24e-6)
    with h5py.File(out / "shard-00000.h5", "r") as shard:
        assert shard.attrs["kernel_size"] == 0  # HDF5 holds no null
    scene = next(iter(store.iter_scenes("train")))
    aif = torch.from_numpy(scene["aif"]).permute(2, 0, 1)[None].double() / 255.0
    depth = torch.from_numpy(scene["depth"])[None, None].double()
    stack = render_focal_stack(aif, depth, torch.from_numpy(store.focus_distances).double(), store.camera, None)[0]
    stack = (stack.clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(scene["stack"].astype(np.float64) - stack).max() <= 1.0


@pytest.mark.parametrize("psf", ["disc", "layered"])
def test_a_store_of_another_psf_holds_that_psfs_stacks(ray_local, tmp_path, psf):
    from daif.optics.psf import render_stack

    out = tmp_path / psf
    render_store(RenderConfig(out=str(out), source="synthetic", preset="nyuv2-5", size=(24, 32), scenes=3, shard_size=3,
                              seed=6, psf=psf, depth_range=(0.75, 7.5)))
    store = open_store(str(out))
    assert store.psf == psf and store.manifest["content"]["psf"] == psf
    scene = next(iter(store.iter_scenes("train")))
    aif = torch.from_numpy(scene["aif"]).permute(2, 0, 1).double() / 255.0
    depth = torch.from_numpy(scene["depth"])[None].double()
    stack = render_stack(aif, depth, torch.from_numpy(store.focus_distances).double(), store.camera, psf)
    stack = (stack.clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(scene["stack"].astype(np.float64) - stack).max() <= 1.0
