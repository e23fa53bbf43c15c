"""Folder sources: RGB + 16-bit depth PNG pairs, and DefocusNet-style folders.

RGB-D folder layout (one pair per scene, matched by file stem):
    {root}/{split}_rgb/<stem>.png|jpg|jpeg     colour image
    {root}/{split}_depth/<stem>.png            16-bit depth, metres = value / depth_scale
depth_scale defaults to 1e4 (units of 0.1 mm, as the paper's folders); NYU raw exports use 1e3.
A depth value of 0 marks a missing measurement (invalid).

DefocusNet-style layout (one scene per stem, DefocusNet camera preset):
    {root}/{split}/<stem>_aif.png|jpg|tif      all-in-focus image
    {root}/{split}/<stem>_depth.npy            (H, W) float depth in metres
Stack images beside them (<stem>_<k>.png ...) are not read: the store re-renders the stack from AIF
and depth with the preset's camera. EXR depth is not supported (no well-kept reader among the
project's dependencies): convert it to .npy.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from daif.data.sources import DataError, Source, check_split, open_image

RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
AIF_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 from any Pillow-readable colour or grey image (`open_image`'s size limit)."""
    with open_image(path) as image:
        return np.asarray(image.convert("RGB"))


def read_depth_png(path: str, depth_scale: float) -> np.ndarray:
    """(H, W) float32 metres from a 16-bit PNG (value / depth_scale); 8-bit PNGs are an error."""
    with open_image(path) as image:
        mode = image.mode
        values = np.asarray(image)
    if mode not in ("I;16", "I;16B", "I;16L", "I") or values.dtype == np.uint8:
        raise DataError(f"{path}: depth must be a 16-bit single-channel PNG, got mode {mode!r} (8-bit depth loses range)")
    return values.astype(np.float32) / np.float32(depth_scale)


def _stems(folder: Path, suffixes: tuple[str, ...], strip: str = "") -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes or not path.stem.endswith(strip):
            continue
        stem = path.stem[: len(path.stem) - len(strip)] if strip else path.stem
        if stem in found:
            raise DataError(f"{path}: two files share the stem {stem!r} ({found[stem].name})")
        found[stem] = path
    return found


def read_depth_npy(path: str) -> np.ndarray:
    """(H, W) float32 metres from a .npy array (singleton axes squeezed); never unpickles."""
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read as .npy: {error}") from None
    return np.squeeze(depth).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DepthFolderSource(Source):
    """A folder source with 16-bit depth PNGs: root (made absolute), depth_scale (metres = value / depth_scale,
    > 0), limit (scenes per split, None = all)."""

    root: str
    depth_scale: float = 1e4
    limit: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.path.abspath(self.root))
        if not self.depth_scale > 0:
            raise ValueError(f"depth_scale: expected a positive number, got {self.depth_scale!r}")

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "input": self.root, "depth_scale": self.depth_scale, "limit": self.limit}


@dataclasses.dataclass(frozen=True)
class RGBDFolderSource(DepthFolderSource):
    name: str = dataclasses.field(default="rgbd-folder", init=False)

    def refs(self, split: str) -> list[dict[str, Any]]:
        check_split(split)
        rgb = _stems(Path(self.root, f"{split}_rgb"), RGB_SUFFIXES)
        depth = _stems(Path(self.root, f"{split}_depth"), (".png",))
        for stem in sorted(set(rgb) ^ set(depth)):
            lone = rgb.get(stem) or depth.get(stem)
            raise DataError(f"{lone}: no matching {'depth' if stem in rgb else 'RGB'} file with stem {stem!r}")
        stems = sorted(rgb)[: self.limit] if self.limit is not None else sorted(rgb)
        return [
            {"scene_id": stem, "split": split, "rgb": str(rgb[stem]), "depth": str(depth[stem])} for stem in stems
        ]

    def load(self, ref: dict[str, Any]) -> dict[str, np.ndarray]:
        aif = read_rgb(ref["rgb"])
        depth = read_depth_png(ref["depth"], self.depth_scale)
        if depth.shape != aif.shape[:2]:
            raise DataError(f"{ref['depth']}: depth shape {depth.shape} disagrees with {ref['rgb']} {aif.shape[:2]}")
        return {"aif": aif, "depth": depth}


@dataclasses.dataclass(frozen=True)
class DefocusNetSource(Source):
    root: str
    limit: int | None = None
    name: str = dataclasses.field(default="defocusnet", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.path.abspath(self.root))

    def refs(self, split: str) -> list[dict[str, Any]]:
        folder = Path(self.root, check_split(split))
        aif = _stems(folder, AIF_SUFFIXES, strip="_aif")
        depth = _stems(folder, (".npy",), strip="_depth")
        exr = sorted(folder.glob("*_depth.exr"))
        if exr:
            raise DataError(f"{exr[0]}: EXR depth is not supported; convert it to <stem>_depth.npy")
        for stem in sorted(set(aif) ^ set(depth)):
            lone = aif.get(stem) or depth.get(stem)
            raise DataError(f"{lone}: no matching {'depth' if stem in aif else 'AIF'} file with stem {stem!r}")
        stems = sorted(aif)[: self.limit] if self.limit is not None else sorted(aif)
        return [{"scene_id": stem, "split": split, "aif": str(aif[stem]), "depth": str(depth[stem])} for stem in stems]

    def load(self, ref: dict[str, Any]) -> dict[str, np.ndarray]:
        aif = read_rgb(ref["aif"])
        depth = read_depth_npy(ref["depth"])
        if depth.shape != aif.shape[:2]:
            raise DataError(f"{ref['depth']}: depth shape {depth.shape} disagrees with {ref['aif']} {aif.shape[:2]}")
        return {"aif": aif, "depth": depth}

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "input": self.root, "limit": self.limit}
