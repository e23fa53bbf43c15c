"""Sources: NYUv2 .mat layout and split, RGB-D and DefocusNet folders, resizing and the depth policy."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from tests.helpers.data_files import write_nyuv2_mat, write_splits_mat
from PIL import Image

from daif.data.folders import DefocusNetSource, RGBDFolderSource
from daif.data.nyuv2 import NUM_FRAMES, NYUv2MatSource, official_split
from daif.data.sources import DataError, prepare_scene, resize_nearest, resize_rgb, train_val_split


def test_nyuv2_mat_transposes_to_height_width(nyuv2_mat):
    mat, splits, images, depths = nyuv2_mat
    assert h5py.File(mat, "r").userblock_size == 512
    source = NYUv2MatSource(str(mat), splits_mat=str(splits))
    ref = source.refs("test")[1]
    assert ref == {"scene_id": "nyuv2-00007", "split": "test", "frame": 7}
    scene = source.load(ref)
    assert scene["aif"].shape == (18, 26, 3)
    np.testing.assert_array_equal(scene["aif"], images[6])
    np.testing.assert_array_equal(scene["depth"], depths[6])


def test_nyuv2_split_from_splits_mat(nyuv2_mat):
    mat, splits, _, _ = nyuv2_mat
    source = NYUv2MatSource(str(mat), splits_mat=str(splits))
    assert [r["frame"] for r in source.refs("train")] == [1, 2, 3, 4, 5]
    assert [r["frame"] for r in source.refs("test")] == [6, 7, 8]
    assert len(NYUv2MatSource(str(mat), splits_mat=str(splits), limit=2).refs("train")) == 2


def test_official_split_is_795_654_and_covers_all_frames():
    split = official_split()
    assert (len(split["train"]), len(split["test"])) == (795, 654)
    assert sorted(split["train"] + split["test"]) == list(range(1, NUM_FRAMES + 1))


def test_nyuv2_official_split_used_for_a_full_file(tmp_path):
    images = np.zeros((NUM_FRAMES, 2, 3, 3), dtype=np.uint8)
    write_nyuv2_mat(tmp_path / "full.mat", images, np.ones((NUM_FRAMES, 2, 3), dtype=np.float32))
    source = NYUv2MatSource(str(tmp_path / "full.mat"))
    assert [r["frame"] for r in source.refs("test")] == official_split()["test"]


def test_nyuv2_bad_inputs(tmp_path, nyuv2_mat):
    mat, _, images, depths = nyuv2_mat
    (tmp_path / "text.mat").write_text("not hdf5")
    with pytest.raises(DataError, match="text.mat: not an HDF5 file"):
        NYUv2MatSource(str(tmp_path / "text.mat"))
    with h5py.File(tmp_path / "nodepth.mat", "w") as file:
        file["images"] = images.transpose(0, 3, 2, 1)
    with pytest.raises(DataError, match="nodepth.mat: lacks the dataset 'depths'"):
        NYUv2MatSource(str(tmp_path / "nodepth.mat"))
    write_nyuv2_mat(tmp_path / "mismatch.mat", images, depths[:, :, :-1])
    with pytest.raises(DataError, match="mismatch.mat: 'images' .* and 'depths' .* disagree"):
        NYUv2MatSource(str(tmp_path / "mismatch.mat"))
    with pytest.raises(DataError, match="holds 8 frames, the official split needs 1449"):
        NYUv2MatSource(str(mat))
    write_splits_mat(tmp_path / "bad_splits.mat", [1, 9], [2])
    with pytest.raises(DataError, match=r"split 'train': 1-based indices \[9\] outside 1..8"):
        NYUv2MatSource(str(mat), splits_mat=str(tmp_path / "bad_splits.mat"))


def test_resize_rgb_is_an_area_filter_and_depth_keeps_values():
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[:2, :2] = [100, 200, 0]
    image[0, 0] = [0, 0, 0]
    small = resize_rgb(image, (2, 3))
    np.testing.assert_array_equal(small[0, 0], [75, 150, 0])  # mean of the 2x2 block
    depth = np.random.default_rng(0).uniform(1, 5, (48, 64)).astype(np.float32)
    resized = resize_nearest(depth, (24, 32))
    assert resized.shape == (24, 32)
    assert np.isin(resized, depth).all()  # no blended depth appears
    np.testing.assert_array_equal(resized, depth[1::2, 1::2])


def test_prepare_scene_depth_policy():
    depth = np.full((4, 4), 3.0, dtype=np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = np.nan, np.inf, 0.0, -1.0
    depth[1, 0], depth[1, 1] = 0.01, 50.0
    scene = prepare_scene({"aif": np.zeros((4, 4, 3), np.uint8), "depth": depth}, "s1", (4, 4), (0.1, 10.0))
    np.testing.assert_array_equal(scene["valid"][0], [False] * 4)
    assert scene["valid"][1:].all()
    assert (scene["depth"][1, 0], scene["depth"][1, 1]) == (np.float32(0.1), np.float32(10.0))
    assert np.isfinite(scene["depth"]).all() and (scene["depth"] > 0).all()
    with pytest.raises(DataError, match="scene s2: depth has no valid pixel"):
        prepare_scene({"aif": np.zeros((2, 2, 3), np.uint8), "depth": np.full((2, 2), np.nan)}, "s2", (2, 2), (0.1, 10.0))
    with pytest.raises(DataError, match="scene s3: depth shape"):
        prepare_scene({"aif": np.zeros((2, 3, 3), np.uint8), "depth": np.ones((3, 2))}, "s3", (2, 2), (0.1, 10.0))


def test_rgbd_folder_pairs_and_scale(rgbd_folder):
    source = RGBDFolderSource(str(rgbd_folder))
    refs = source.refs("train")
    assert [r["scene_id"] for r in refs] == ["0000", "0001", "0002"]
    scene = source.load(refs[0])
    raw = np.asarray(Image.open(rgbd_folder / "train_depth" / "0000.png")).astype(np.float32)
    np.testing.assert_allclose(scene["depth"], raw / 1e4)
    np.testing.assert_allclose(RGBDFolderSource(str(rgbd_folder), depth_scale=1e3).load(refs[0])["depth"], raw / 1e3)
    np.testing.assert_array_equal(scene["aif"], np.asarray(Image.open(rgbd_folder / "train_rgb" / "0000.png")))


def test_rgbd_folder_bad_inputs(rgbd_folder):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(rgbd_folder / "test_rgb" / "lonely.jpg")
    with pytest.raises(DataError, match=r"lonely.jpg: no matching depth file with stem 'lonely'"):
        RGBDFolderSource(str(rgbd_folder)).refs("test")
    (rgbd_folder / "test_rgb" / "lonely.jpg").unlink()
    Image.fromarray(np.full((20, 30), 40, np.uint8)).save(rgbd_folder / "test_depth" / "0001.png")
    ref = RGBDFolderSource(str(rgbd_folder)).refs("test")[1]
    with pytest.raises(DataError, match=r"0001.png: depth must be a 16-bit single-channel PNG, got mode 'L'"):
        RGBDFolderSource(str(rgbd_folder)).load(ref)
    with pytest.raises(DataError, match="missing/train_rgb: no such folder"):
        RGBDFolderSource(str(rgbd_folder / "missing")).refs("train")


def test_defocusnet_folder(defocusnet_folder):
    source = DefocusNetSource(str(defocusnet_folder))
    refs = source.refs("train")
    assert [r["scene_id"] for r in refs] == ["000000", "000001"]
    scene = source.load(refs[1])
    np.testing.assert_array_equal(scene["depth"], np.load(defocusnet_folder / "train" / "000001_depth.npy"))
    (defocusnet_folder / "test" / "000009_depth.exr").write_bytes(b"v/1\x01")
    with pytest.raises(DataError, match="000009_depth.exr: EXR depth is not supported"):
        source.refs("test")


def test_train_val_split_takes_ten_percent_of_train_seeded():
    ids = [f"s{i}" for i in range(50)]
    train, val = train_val_split(ids, 0.1, seed=3)
    assert len(val) == 5 and sorted(train + val) == sorted(ids) and not set(train) & set(val)
    assert train_val_split(ids, 0.1, seed=3) == (train, val)
    assert train_val_split(ids, 0.1, seed=4)[1] != val
    assert train_val_split(ids, 0.0) == (ids, [])


def test_invalid_depth_is_filled_from_the_nearest_valid_pixel_and_stays_invalid():
    """Holes in a two-plane depth map take their own plane's depth (the median fill gave both one depth), and
    `valid` keeps them out of the metrics."""
    from daif.data.sources import prepare_scene
    from daif.metrics import depth_metrics

    depth = np.full((8, 12), 1.0, np.float32)
    depth[:, 8:] = 5.0  # near plane 1 m (cols 0-7), far plane 5 m (cols 8-11)
    depth[2:6, 2:5] = np.nan  # a hole inside the near plane
    depth[2:6, 10] = 0.0  # one inside the far plane
    scene = prepare_scene({"aif": np.zeros((8, 12, 3), np.uint8), "depth": depth}, "holes", (8, 12), (0.1, 10.0))
    np.testing.assert_array_equal(scene["depth"][2:6, 2:5], 1.0)
    np.testing.assert_array_equal(scene["depth"][2:6, 10], 5.0)
    assert not scene["valid"][2:6, 2:5].any() and not scene["valid"][2:6, 10].any() and scene["valid"].sum() == 96 - 12 - 4
    truth = scene["depth"][None, None].copy()
    wrong = truth.copy()
    wrong[..., 2:6, 2:5] = 9.0  # any prediction inside the holes
    wrong[..., 2:6, 10] = 0.5
    metrics = depth_metrics(wrong, truth, scene["valid"][None, None])
    assert metrics["abs_rel"] == 0.0 and metrics["delta1"] == 1.0
