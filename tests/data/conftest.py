"""Fixtures of the data tests: a local Ray, and source fixtures built here (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.helpers.data_files import DENSE, nyuv2_frames, write_depth_png, write_nyuv2_mat, write_splits_mat


@pytest.fixture
def nyuv2_mat(tmp_path):
    """(mat path, splits.mat path, images (N, H, W, 3), depths (N, H, W)) with 8 frames, train 1..5, test 6..8."""
    images, depths = nyuv2_frames(8)
    mat, splits = tmp_path / "nyu.mat", tmp_path / "splits.mat"
    write_nyuv2_mat(mat, images, depths)
    write_splits_mat(splits, [1, 2, 3, 4, 5], [6, 7, 8])
    return mat, splits, images, depths


@pytest.fixture(scope="session")
def dense_store(ray_local, tmp_path_factory):
    """A small dense store rendered once per session (data_fixtures.DENSE, 2 scenes per shard): (path, summary)."""
    from daif.data.pipeline import RenderConfig, render_store

    out = tmp_path_factory.mktemp("stores") / "dense"
    summary = render_store(RenderConfig(out=str(out), **DENSE))
    return out, summary


@pytest.fixture
def rgbd_folder(tmp_path):
    """{root}/{split}_rgb + {split}_depth with 3 train and 2 test pairs (16-bit PNG depth, scale 1e4)."""
    root = tmp_path / "rgbd"
    rng = np.random.default_rng(1)
    for split, count in (("train", 3), ("test", 2)):
        (root / f"{split}_rgb").mkdir(parents=True)
        (root / f"{split}_depth").mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / f"{split}_rgb" / f"{i:04d}.png")
            write_depth_png(root / f"{split}_depth" / f"{i:04d}.png", rng.uniform(0.5, 5.0, (20, 30)))
    return root


@pytest.fixture
def defocusnet_folder(tmp_path):
    """{root}/{split}/<stem>_aif.png + <stem>_depth.npy, 2 train and 1 test scenes."""
    root = tmp_path / "defocusnet"
    rng = np.random.default_rng(2)
    for split, count in (("train", 2), ("test", 1)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / split / f"{i:06d}_aif.png")
            np.save(root / split / f"{i:06d}_depth.npy", rng.uniform(0.1, 3.0, (16, 16)).astype(np.float32))
    return root
