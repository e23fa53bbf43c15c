"""Prediction: depth and an all-in-focus image from your own focal stack.

    paths = predict("runs:/<run_id>/model", ["f1.png", "f2.png"], [1.0, 2.5], out="pred")
    daif predict --model ckpt/ --images stack_dir/ --out pred      # stack_dir/focus_distances.txt

Inputs: S images of one size (any order; PNG, JPEG, TIFF, ... 8- or 16-bit, grey or colour) and
their S focus distances in metres, or a folder of images (sorted by name) with `focus_distances.txt`
(one number per line, blank lines and # comments ignored). Each focus distance must exceed the
camera's focal length: the camera is `camera` (a preset name or "f,N,p"), else the one the model was
trained with.

Outputs in `out`, each written under a temporary name and renamed into place: depth.png (16-bit,
millimetres), depth.npy (float32 metres, (H, W)), depth_color.png (colour-mapped, near is bright),
aif.png (8-bit RGB) and prediction.json (inputs, camera, depth range).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daif.errors import UsageError
from daif.files import atomic_path, write_text_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FOCUS_FILE = "focus_distances.txt"
MAX_DEPTH_MM = 65535  # the 16-bit PNG's ceiling, 65.535 m
MIN_IMAGES = 2  # depth from defocus compares images focused at different distances
MIN_SIZE = 8  # pixels per side, as `daif render --size`: below it no blur difference can be measured
MAX_PIXELS = 40_000_000  # pixels per image, read from the header before decoding (a 12-bit 7000x5000 raw fits)


class PredictionInputError(UsageError):
    """A bad input to `predict`; the message names the file or argument."""


def _image_files(images: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], Path | None]:
    """(image paths, the folder when one was given)."""
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    paths = [Path(p) for p in images]
    if not paths:
        raise PredictionInputError("images: no images given")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PredictionInputError(f"images: folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return _enough(files, f"folder {folder}"), folder
    for path in paths:
        if path.is_dir():
            raise PredictionInputError(f"images: {path} is a folder; give one folder alone, or image files")
    return _enough(paths, "--images"), None


def _enough(files: list[Path], where: str) -> list[Path]:
    if len(files) < MIN_IMAGES:
        raise PredictionInputError(
            f"images: {where} gives {len(files)} image; a focal stack needs at least {MIN_IMAGES} images focused at "
            "different distances (depth comes from how their blur differs)"
        )
    return files


def read_focus_file(path: str | os.PathLike) -> list[float]:
    """Focus distances [m] from a text file, one number per line."""
    path = Path(path)
    if not path.exists():
        raise PredictionInputError(f"focus_distances: {path} not found; give --focus-distances or write that file (one number per line, metres)")
    values = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            values.append(float(text))
        except ValueError:
            raise PredictionInputError(f"focus_distances: {path} line {number}: {line.strip()!r} is not a number") from None
    return values


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from an 8- or 16-bit grey, RGB or RGBA image."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise PredictionInputError(f"images: {path} does not exist")
    try:
        with Image.open(path) as image:  # reads the header only
            if image.width * image.height > MAX_PIXELS:
                raise PredictionInputError(f"images: {path} declares {image.width}x{image.height} (WxH) pixels; at most "
                                           f"{MAX_PIXELS:,} are read (daif.predict.MAX_PIXELS)")
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32) / 65535.0
            elif image.mode == "F":
                array = np.asarray(image, dtype=np.float32)
            else:
                array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except PredictionInputError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise PredictionInputError(f"images: cannot read {path} as an image ({error})") from None
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise PredictionInputError(f"images: {path} holds {bad} non-finite pixel value(s) (NaN or inf); expected finite intensities")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.clip(array, 0.0, 1.0)


def load_stack(images: Sequence[Path]) -> np.ndarray:
    """(S, H, W, 3) float32 in [0, 1]; every image must have the first one's size."""
    arrays = [read_image(path) for path in images]
    height, width = arrays[0].shape[:2]
    if min(height, width) < MIN_SIZE:
        raise PredictionInputError(
            f"images: {images[0]} is {width}x{height} (WxH); at least {MIN_SIZE}x{MIN_SIZE} pixels are needed to see defocus blur"
        )
    for path, array in zip(images, arrays):
        if array.shape[:2] != (height, width):
            raise PredictionInputError(
                f"images: {path} is {array.shape[1]}x{array.shape[0]} (WxH) but {images[0]} is {width}x{height}; "
                "all images of a focal stack must have the same size"
            )
    return np.stack(arrays)


def check_focus_distances(focus_distances: Sequence[float], images: Sequence[Path], camera) -> np.ndarray:
    if len(focus_distances) != len(images):
        raise PredictionInputError(
            f"focus_distances: {len(focus_distances)} focus distances for {len(images)} images; give one per image, in the same order"
        )
    values = np.asarray([float(v) for v in focus_distances], dtype=np.float64)
    focal_length = camera.focal_length if camera is not None else 0.0
    for path, value in zip(images, values):
        if not math.isfinite(value) or value <= focal_length:
            what = f"the camera's focal length {focal_length} m" if camera is not None else "0 m"
            raise PredictionInputError(
                f"focus_distances: {value:g} m (for {path.name}) is at or below {what}; focus distances are metres beyond the lens"
            )
    seen: dict[float, Path] = {}
    for path, value in zip(images, values):
        if value in seen:
            raise PredictionInputError(
                f"focus_distances: {value:g} m is given for both {seen[value].name} and {path.name}; each image of a "
                "stack needs its own focus distance (two images focused alike add no depth cue)"
            )
        seen[value] = path
    return values


def _camera(camera, meta: dict[str, Any]):
    from daif.optics import ThinLensCamera

    if camera is None:
        return ThinLensCamera.from_dict(meta["camera"]) if meta.get("camera") else None
    if isinstance(camera, ThinLensCamera):
        return camera
    if isinstance(camera, dict):
        return ThinLensCamera.from_dict(camera)
    try:
        return ThinLensCamera.parse(str(camera))
    except (TypeError, ValueError) as error:
        raise PredictionInputError(f"camera: {error}") from None


# ------------------------------------------------------------------ writing


def _save_png(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")
    return path


def _save_npy(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        np.save(file, array)
    return path


def depth_to_png16(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) metres -> uint16 millimetres (rounded, clipped to 0..65535)."""
    return np.clip(np.round(depth_m * 1000.0), 0, MAX_DEPTH_MM).astype(np.uint16)


def colour_depth(depth_m: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 with daif.viz's depth colour map (near is bright)."""
    from matplotlib import colormaps

    from daif.viz import DEPTH_CMAP

    unit = np.clip((depth_m - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    return (colormaps[DEPTH_CMAP](unit)[..., :3] * 255.0 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------ the function


def predict(
    model_source: str | os.PathLike,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    focus_distances: Sequence[float] | None = None,
    camera=None,
    out: str | os.PathLike = "prediction",
    tracking_uri: str = "",
    device: str = "cpu",
) -> dict[str, str]:
    """Predict depth and AIF for one focal stack; write the files of the module docstring.

    model_source: MLflow model URI or checkpoint directory. images: image files, or one folder
    (images sorted by name, focus distances from its focus_distances.txt unless given).
    focus_distances: metres, one per image. camera: preset name, "f,N,p", dict or ThinLensCamera;
    default the model's. Returns {"depth_png", "depth_npy", "depth_color", "aif", "json"}: paths.
    Raises PredictionInputError naming the file or argument for bad inputs.
    """
    import torch

    from daif.images import to_uint8_hwc
    from daif.model_io import load_model

    files, folder = _image_files(images)
    if focus_distances is None:
        if folder is None:
            raise PredictionInputError("focus_distances: required (one per image), unless images is a folder with focus_distances.txt")
        focus_distances = read_focus_file(folder / FOCUS_FILE)
    model, meta = load_model(model_source, tracking_uri)
    lens = _camera(camera, meta)
    focus = check_focus_distances(list(focus_distances), files, lens)
    stack = load_stack(files)  # (S, H, W, 3)

    model = model.to(device)
    stack_tensor = torch.from_numpy(np.ascontiguousarray(stack.transpose(0, 3, 1, 2)))[None].to(device)  # (1, S, 3, H, W)
    focus_tensor = torch.from_numpy(focus.astype(np.float32))[None].to(device)
    with torch.no_grad():
        aif, depth = model(stack_tensor, focus_tensor, camera=lens)  # the camera matters to a "search" depth head
    depth_m = depth[0, 0].float().cpu().numpy().astype(np.float32)
    aif_rgb = to_uint8_hwc(aif[0].float())

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    near, far = meta.get("depth_range") or (getattr(model, "near", None), getattr(model, "far", None))
    if near is None or far is None:
        near, far = float(depth_m.min()), float(depth_m.max())
    paths = {
        "depth_png": _save_png(depth_to_png16(depth_m), out / "depth.png"),
        "depth_npy": _save_npy(depth_m, out / "depth.npy"),
        "depth_color": _save_png(colour_depth(depth_m, float(depth_m.min()), float(depth_m.max())), out / "depth_color.png"),
        "aif": _save_png(aif_rgb, out / "aif.png"),
    }
    summary = {
        "model": str(model_source),
        "images": [str(p.resolve()) for p in files],
        "focus_distances": focus.tolist(),
        "camera": lens.to_dict() if lens is not None else None,
        "model_depth_range": [float(near), float(far)],
        "depth_min": float(depth_m.min()),
        "depth_max": float(depth_m.max()),
        "depth_png_units": "millimetres (uint16)",
    }
    paths["json"] = write_text_atomic(out / "prediction.json", json.dumps(summary, indent=1) + "\n")
    return {k: str(v) for k, v in paths.items()}


# ------------------------------------------------------------------ `daif predict`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="URI_OR_PATH", help="MLflow model URI (runs:/<run_id>/model) or checkpoint directory")
    parser.add_argument("--images", nargs="+", required=True, help="the stack's images, or one folder holding them and focus_distances.txt")
    parser.add_argument("--focus-distances", nargs="+", type=float, default=None, metavar="M", help="metres, one per image, in the same order")
    parser.add_argument("--camera", default=None, help="preset name or 'f,N,p' in metres (default: the model's camera)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--tracking-uri", default="", help="MLflow store for runs:/ URIs (default MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--gpu", action="store_true")


def run(args: argparse.Namespace) -> int:
    paths = predict(args.model, args.images, args.focus_distances, args.camera, args.out, args.tracking_uri, "cuda" if args.gpu else "cpu")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
