"""NYU Depth v2 labeled set: one MATLAB v7.3 `.mat` file (HDF5), read with h5py.

MATLAB is column-major, so h5py sees every array transposed: `images` is (N, 3, W, H) uint8 and
`depths` (N, W, H) float32 metres (method.md). Frame i is images[i].transpose(2, 1, 0) -> (H, W, 3)
and depths[i].T -> (H, W).

Split: the official 795 / 654 frames (1-based indices, shipped as daif/data/nyuv2_split.json), or a
user's splits.mat holding `trainNdxs` / `testNdxs` (MATLAB v7.3 read with h5py; older MATLAB files
need scipy, which is used only if installed).
"""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from typing import Any

import h5py
import numpy as np

from daif.data.sources import DataError, Source, check_split

NUM_FRAMES = 1449


def official_split() -> dict[str, list[int]]:
    """{"train": [...], "test": [...]} 1-based frame indices of the official NYUv2 split."""
    text = resources.files("daif.data").joinpath("nyuv2_split.json").read_text()
    payload = json.loads(text)
    return {"train": payload["train_1based"], "test": payload["test_1based"]}


def read_splits_mat(path: str) -> dict[str, list[int]]:
    """1-based train/test indices from a splits.mat (`trainNdxs`, `testNdxs`)."""
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as file:
            missing = [key for key in ("trainNdxs", "testNdxs") if key not in file]
            if missing:
                raise DataError(f"{path}: splits file lacks {missing}")
            return {"train": _indices(file["trainNdxs"][()]), "test": _indices(file["testNdxs"][()])}
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(f"{path}: not an HDF5 (MATLAB v7.3) file, and reading older .mat files needs scipy") from None
    try:
        content = loadmat(path)
    except Exception as error:  # scipy raises several types for a corrupt file
        raise DataError(f"{path}: cannot read as a .mat file: {error}") from None
    missing = [key for key in ("trainNdxs", "testNdxs") if key not in content]
    if missing:
        raise DataError(f"{path}: splits file lacks {missing}")
    return {"train": _indices(content["trainNdxs"]), "test": _indices(content["testNdxs"])}


def _indices(values: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]


def _open(path: str) -> h5py.File:
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file (expected a MATLAB v7.3 .mat of the NYUv2 labeled set)")
    return h5py.File(path, "r")


def _check_layout(path: str, file: h5py.File) -> int:
    """Number of frames; raises DataError naming the field when the layout is wrong."""
    for key in ("images", "depths"):
        if key not in file or not isinstance(file[key], h5py.Dataset):
            raise DataError(f"{path}: lacks the dataset '{key}' of the NYUv2 labeled set")
    images, depths = file["images"], file["depths"]
    if images.ndim != 4 or images.shape[1] != 3:
        raise DataError(f"{path}: 'images' must be (N, 3, W, H) as MATLAB stores it, got {images.shape}")
    if depths.ndim != 3:
        raise DataError(f"{path}: 'depths' must be (N, W, H) as MATLAB stores it, got {depths.shape}")
    if images.shape[0] != depths.shape[0] or images.shape[2:] != depths.shape[1:]:
        raise DataError(f"{path}: 'images' {images.shape} and 'depths' {depths.shape} disagree")
    return images.shape[0]


@dataclasses.dataclass(frozen=True)
class NYUv2MatSource(Source):
    """NYUv2 labeled `.mat` file; `limit` keeps the first scenes of each split (smoke tests)."""

    path: str
    splits_mat: str | None = None
    limit: int | None = None
    name: str = dataclasses.field(default="nyuv2-mat", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.path.abspath(self.path))
        with _open(self.path) as file:
            num_frames = _check_layout(self.path, file)
        split = read_splits_mat(self.splits_mat) if self.splits_mat else None
        if split is None:
            if num_frames != NUM_FRAMES:
                raise DataError(
                    f"{self.path}: holds {num_frames} frames, the official split needs {NUM_FRAMES}; "
                    "pass a splits.mat (--splits-mat) for this file"
                )
            split = official_split()
        for name, indices in split.items():
            bad = [i for i in indices if not 1 <= i <= num_frames]
            if bad:
                raise DataError(f"split '{name}': 1-based indices {bad[:5]} outside 1..{num_frames} of {self.path}")
        object.__setattr__(self, "_split", split)

    def refs(self, split: str) -> list[dict[str, Any]]:
        indices = self._split[check_split(split)]
        if self.limit is not None:
            indices = indices[: self.limit]
        return [{"scene_id": f"nyuv2-{i:05d}", "split": split, "frame": i} for i in indices]

    def load(self, ref: dict[str, Any]) -> dict[str, np.ndarray]:
        index = ref["frame"] - 1  # 1-based in MATLAB
        with _open(self.path) as file:
            image = file["images"][index]  # (3, W, H)
            depth = file["depths"][index]  # (W, H)
        if image.dtype != np.uint8:
            raise DataError(f"{self.path}: 'images' must be uint8, got {image.dtype}")
        return {"aif": np.ascontiguousarray(image.transpose(2, 1, 0)), "depth": np.ascontiguousarray(depth.T)}

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "input": self.path, "splits_mat": self.splits_mat, "limit": self.limit}
