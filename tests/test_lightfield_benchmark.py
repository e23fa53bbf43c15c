"""The light fields of benchmarks/lightfield.py (daif/data/lightfield.py's surface scenes): their blur is the
aperture's shape, their occlusion is the light field's own, and the benchmark runs end to end at its smoke size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daif.data.lightfield import (
    SCENE_DEPTH_RANGE,
    SCENE_FAMILIES,
    Surface,
    SurfaceScene,
    aperture_views,
    surface_light_field_stack,
)

ROOT = Path(__file__).resolve().parents[1]
# F = 1000 px, b = 2 mm: F b = 2 px m, so a plane at 1 m shifts 2 px per view and one at 2 m 1 px
FOCAL_LENGTH, PIXEL_SIZE, BASELINE = 0.05, 0.05 / 1000, 0.002
SIZE, PAD, VIEWS = (12, 16), 4, 5


def uniform_surface(depth: float, colour: np.ndarray | float, coverage: np.ndarray | None = None) -> Surface:
    canvas = (SIZE[0] + 2 * PAD, SIZE[1] + 2 * PAD)
    texture = np.broadcast_to(np.asarray(colour, dtype=np.float64), (*canvas, 3)).copy()
    return Surface((1.0 / depth, 0.0, 0.0), texture, np.ones(canvas) if coverage is None else coverage, np.zeros(canvas, bool))


@pytest.mark.parametrize("aperture", ["square", "disc"])
def test_refocused_plane_is_the_aperture_shaped_box_blur_of_its_texture(aperture):
    texture = np.random.default_rng(0).random((SIZE[0] + 2 * PAD, SIZE[1] + 2 * PAD, 3))
    scene = SurfaceScene("plane", SIZE, PAD, (uniform_surface(1.0, texture),))
    # focused at 1 m: sharp; at 2 m: the plane spreads over (i, j) * F b (1/1 - 1/2) = (i, j) px, one per view
    stack = surface_light_field_stack(scene, (1.0, 2.0), FOCAL_LENGTH, PIXEL_SIZE, BASELINE, VIEWS, aperture)
    inside = texture[PAD:-PAD, PAD:-PAD]
    offsets = aperture_views(VIEWS, aperture)
    box = np.mean([texture[PAD + j : PAD + j + SIZE[0], PAD + i : PAD + i + SIZE[1]] for j, i in offsets], axis=0)
    assert len(offsets) == (25 if aperture == "square" else 13)
    assert np.abs(stack.images[0].astype(float) - inside * 255).max() <= 0.51
    assert np.abs(stack.images[1].astype(float) - box * 255).max() <= 0.51
    assert np.array_equal(stack.aif, stack.images[0]) and np.all(stack.depth == 1.0)


def test_a_blurred_occluder_covers_the_sharp_background_behind_its_edge():
    edge = 8  # the card covers image columns < 8 at 1 m, over a black background at 2 m
    card = np.zeros((SIZE[0] + 2 * PAD, SIZE[1] + 2 * PAD))
    card[:, : PAD + edge] = 1.0
    surfaces = (uniform_surface(2.0, 0.0), uniform_surface(1.0, 1.0, card))
    stacks = [
        surface_light_field_stack(SurfaceScene("edge", SIZE, PAD, order), (1.0, 2.0), FOCAL_LENGTH, PIXEL_SIZE, BASELINE, VIEWS)
        for order in (surfaces, surfaces[::-1])
    ]
    assert np.array_equal(stacks[0].images, stacks[1].images)  # occlusion is decided per ray, not by the list's order
    focused_on_card, focused_on_background = stacks[0].images[:, 5, edge - 3 : edge + 3, 0]
    # at 2 m view i sees the card at column x + i: 5 - k of the 5 columns reach it from x = edge - 3 + k
    assert focused_on_background.tolist() == [255, 204, 153, 102, 51, 0]
    assert focused_on_card.tolist() == [255, 255, 255, 0, 0, 0]
    assert stacks[0].depth[5, edge : edge + 2].tolist() == [2.0, 2.0]  # background pixels that show the card


@pytest.mark.parametrize("family", sorted(SCENE_FAMILIES))
def test_scene_families_are_drawn_from_their_seed_inside_the_depth_range(family):
    first, again, other = (SCENE_FAMILIES[family](seed, (60, 80), 8) for seed in (3, 3, 4))
    depth = first.depth_map()
    assert SCENE_DEPTH_RANGE[0] <= depth.min() and depth.max() <= SCENE_DEPTH_RANGE[1]
    assert np.array_equal(depth, again.depth_map()) and np.array_equal(first.surfaces[0].texture, again.surfaces[0].texture)
    assert not np.array_equal(first.surfaces[0].texture, other.surfaces[0].texture)
    near_edge = np.abs(np.diff(np.log(depth), axis=1)) > np.log(1.1)  # occluding edges
    assert near_edge.any()
    if family == "receding":  # continuous depth, partly barely textured
        assert len(np.unique(depth)) > 50 and 0 < first.weak_map().mean() < 1


def test_benchmark_smoke_run_writes_every_row(tmp_path):
    out, picture = tmp_path / "suite.json", tmp_path / "depth.png"
    subprocess.run([sys.executable, "benchmarks/lightfield.py", "--smoke-test", "--controls", "--out", str(out), "--figure", str(picture)], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}, timeout=300)
    record = json.loads(out.read_text())
    assert not set(record["dev_seeds"]) & set(record["reported_seeds"]) and record["seed_list"] == record["dev_seeds"][:1]
    assert 9.5 < record["max_defocus_sigma"] < 10.5
    keys = {(row["scene"], row["aperture"], row["method"]) for row in record["rows"]}
    assert len(record["rows"]) == len(keys) == 3 * 3 * (1 + 3)  # scenes x methods x (square + disc with its two controls)
    assert {row["stack"] for row in record["rows"] if row["aperture"] == "square"} == {"light field"}
    assert all(0 <= row["delta1"] <= 1 and row["largest_sigma"] <= row["max_defocus_sigma"] + 1e-6 for row in record["rows"])
    assert {(m["method"], m["aperture"]) for m in record["means"]} == {(m, a) for _, a, m in keys}
    from PIL import Image

    width, height = Image.open(picture).size  # one row per scene family, 2 + 3 method panels of 4:3 maps per row
    assert 1.2 < width / height < 2.5


def test_export_writes_captured_stacks_of_the_light_field_camera(tmp_path):
    from daif.data.captured import FocalStackFolderSource, common_stack

    root = tmp_path / "stacks"
    command = [sys.executable, "benchmarks/lightfield.py", "--smoke-test", "--export", str(root)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=300)
    refs = FocalStackFolderSource(str(root)).refs("train")
    focus, camera, size = common_stack(refs, None, "")
    assert len(refs) == len(SCENE_FAMILIES) * 2 and size == (40, 56)  # the smoke size, square and disc
    assert focus.tolist() == [1.0, 1.5, 2.5, 4.0, 6.0] and camera.f_number == pytest.approx(4.8)
    depth = np.load(Path(refs[0]["stack_json"]).parent / "depth.npy")
    assert SCENE_DEPTH_RANGE[0] <= depth.min() and depth.max() <= SCENE_DEPTH_RANGE[1]
    for seeds in (["--seeds", "7,100"], []):  # given, or the default (the reported seeds)
        reported = subprocess.run([*command[:2], "--export", str(tmp_path / "other"), *seeds], cwd=ROOT,
                                  capture_output=True, text=True, timeout=300)
        assert reported.returncode == 2 and "reported seeds" in reported.stderr and not (tmp_path / "other").exists()
