"""Builders of test inputs in their exact on-disk layouts (used by tests/data/conftest.py and the tests)."""

from __future__ import annotations

import h5py
import numpy as np
from PIL import Image

# the small dense store of the pipeline tests: 6 synthetic scenes, 10 focus distances in [1, 9] m
SIZE = (24, 32)
DENSE = dict(source="synthetic", scenes=6, preset="nyuv2-dense", size=SIZE, num_focus=10, focus_range=(1.0, 9.0), shard_size=2)


def write_nyuv2_mat(path, images_hwc: np.ndarray, depths_hw: np.ndarray, userblock: bool = True) -> None:
    """Write frames in the exact MATLAB v7.3 layout: images (N, 3, W, H) uint8, depths (N, W, H) float32."""
    with h5py.File(path, "w", userblock_size=512 if userblock else 0) as file:
        images = file.create_dataset("images", data=images_hwc.transpose(0, 3, 2, 1))
        images.attrs["MATLAB_class"] = np.bytes_("uint8")
        depths = file.create_dataset("depths", data=depths_hw.transpose(0, 2, 1).astype(np.float32))
        depths.attrs["MATLAB_class"] = np.bytes_("single")
    if userblock:
        with open(path, "r+b") as file:  # MATLAB writes its text header into the userblock
            file.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: daif tests".ljust(116, b" "))


def write_splits_mat(path, train_1based, test_1based) -> None:
    with h5py.File(path, "w", userblock_size=512) as file:
        for key, values in (("trainNdxs", train_1based), ("testNdxs", test_1based)):
            dataset = file.create_dataset(key, data=np.asarray(values, dtype=np.float64)[None, :])
            dataset.attrs["MATLAB_class"] = np.bytes_("double")


def nyuv2_frames(count: int, height: int = 18, width: int = 26, seed: int = 0):
    """Non-square, asymmetric RGB-D frames (a gradient along H, another along W) and their depths."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    images = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    images[..., 0] = (rows * 9) % 256  # red varies along H only
    images[..., 1] = (cols * 7) % 256  # green varies along W only
    depths = (1.0 + 0.2 * rows + 0.05 * cols)[None] * (1.0 + 0.1 * np.arange(count))[:, None, None]
    return images, depths.astype(np.float32)


def write_depth_png(path, depth_m: np.ndarray, scale: float = 1e4) -> None:
    Image.fromarray(np.round(depth_m * scale).astype(np.uint16)).save(path)
