"""Prediction: depth and an all-in-focus image from your own focal stack.

    paths = predict("runs:/<run_id>/model", ["f1.png", "f2.png"], [1.0, 2.5], out="pred")
    daif predict --model ckpt/ --images stack_dir/ --out pred      # stack_dir/focus_distances.txt

Inputs: S images of one size (any order; PNG, JPEG, TIFF, ... 8- or 16-bit, grey or colour) and
their S focus distances in metres, or a folder of images (sorted by name) with `focus_distances.txt`
(one number per line, blank lines and # comments ignored). Each focus distance must exceed the
camera's focal length: the camera is `camera` (a preset name or "f,N,p"), else the one the model was
trained with.

Outputs in `out` (OUTPUT_FILES): depth.png (16-bit, millimetres), depth.npy (float32 metres, (H, W)),
depth_color.png (colour-mapped, near is bright), aif.png (8-bit RGB) and prediction.json (inputs,
camera, depth range). `out` is checked before the model is loaded; the files are written under
temporary names and renamed into place together, so a failure leaves none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daif.errors import UsageError
from daif.files import atomic_paths, check_output_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FOCUS_FILE = "focus_distances.txt"
MAX_DEPTH_MM = 65535  # the 16-bit PNG's ceiling, 65.535 m
MIN_IMAGES = 2  # depth from defocus compares images focused at different distances


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
    """(H, W, 3) float32 in [0, 1] from an 8- or 16-bit grey, RGB or RGBA image (or a float one, taken as is).
    The size is read from the header first (`daif.data.sources.open_image`, at most MAX_IMAGE_PIXELS)."""
    from daif.data.sources import DataError, open_image

    if not path.is_file():
        raise PredictionInputError(f"images: {path} does not exist")
    try:
        with open_image(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float32) / 65535.0
            elif image.mode == "F":
                array = np.asarray(image, dtype=np.float32)
            else:
                array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except DataError as error:
        raise PredictionInputError(f"images: {error}") from None
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise PredictionInputError(f"images: {path} holds {bad} non-finite pixel value(s) (NaN or inf); expected finite intensities")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.clip(array, 0.0, 1.0)


def load_stack(images: Sequence[Path]) -> np.ndarray:
    """(S, H, W, 3) float32 in [0, 1]; every image must have the first one's size, at least MIN_IMAGE_SIZE a side."""
    from daif.data.sources import DataError, check_image_size

    arrays = [read_image(path) for path in images]
    height, width = arrays[0].shape[:2]
    try:
        check_image_size(images[0], height, width)
    except DataError as error:
        raise PredictionInputError(f"images: {error}") from None
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
    from daif.optics import check_focus_distance

    focal_length = camera.focal_length if camera is not None else 0.0
    for path, value in zip(images, focus_distances):
        try:
            check_focus_distance(float(value), focal_length)
        except ValueError as error:
            raise PredictionInputError(f"focus_distances: {error} (for {path.name}); focus distances are metres beyond the lens") from None
    values = np.asarray([float(v) for v in focus_distances], dtype=np.float64)
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


OUTPUT_FILES = {"depth_png": "depth.png", "depth_npy": "depth.npy", "depth_color": "depth_color.png", "aif": "aif.png",
                "json": "prediction.json"}


def _write_outputs(out: Path, contents: dict[str, np.ndarray | str]) -> dict[str, Path]:
    """Write OUTPUT_FILES into `out` from {key: array or text}, all or nothing; `out` is made if missing."""
    from PIL import Image

    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / OUTPUT_FILES[key] for key in contents}
    try:
        with atomic_paths(list(paths.values())) as temporaries:
            for (key, content), temporary in zip(contents.items(), temporaries):
                if isinstance(content, str):
                    temporary.write_text(content)
                elif temporary.suffix == ".npy":
                    with open(temporary, "wb") as file:
                        np.save(file, content)
                else:
                    Image.fromarray(content).save(temporary, format="PNG")
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return paths


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

    from daif import pretrained
    from daif.images import to_uint8_hwc
    from daif.model_io import load_model

    out = check_output_folder(out, list(OUTPUT_FILES.values()))
    files, folder = _image_files(images)
    if focus_distances is None:
        if folder is None:
            raise PredictionInputError("focus_distances: required (one per image), unless images is a folder with focus_distances.txt")
        focus_distances = read_focus_file(folder / FOCUS_FILE)
    model, meta = load_model(model_source, tracking_uri)
    lens = _camera(camera, meta)
    if pretrained.is_pretrained(model_source):  # its depth is that of one camera's defocus
        pretrained.check_camera(meta, lens, str(model_source))
    focus = check_focus_distances(list(focus_distances), files, lens)
    stack = load_stack(files)  # (S, H, W, 3)

    model = model.to(device)
    stack_tensor = torch.from_numpy(np.ascontiguousarray(stack.transpose(0, 3, 1, 2)))[None].to(device)  # (1, S, 3, H, W)
    focus_tensor = torch.from_numpy(focus.astype(np.float32))[None].to(device)
    with torch.no_grad():
        aif, depth = model(stack_tensor, focus_tensor, camera=lens)  # the camera matters to a "search" depth head
    if not (torch.isfinite(depth).all() and torch.isfinite(aif).all()):  # NaN would reach the files and prediction.json
        raise PredictionInputError(f"model: {model_source} returned non-finite depth or AIF for finite images; its weights "
                                   "may hold NaN or inf")
    depth_m = depth[0, 0].float().cpu().numpy().astype(np.float32)
    aif_rgb = to_uint8_hwc(aif[0].float())

    near, far = meta.get("depth_range") or (getattr(model, "near", None), getattr(model, "far", None))
    if near is None or far is None:
        near, far = float(depth_m.min()), float(depth_m.max())
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
    paths = _write_outputs(out, {
        "depth_png": depth_to_png16(depth_m),
        "depth_npy": depth_m,
        "depth_color": colour_depth(depth_m, float(depth_m.min()), float(depth_m.max())),
        "aif": aif_rgb,
        "json": json.dumps(summary, indent=1) + "\n",
    })
    return {k: str(v) for k, v in paths.items()}


# ------------------------------------------------------------------ `daif predict`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.cli import ValuesAction

    parser.add_argument("--model", required=True, metavar="URI_OR_PATH",
                        help="'pretrained' (the model shipped with daif), an MLflow model URI (runs:/<run_id>/model, "
                             "models:/NAME/latest) or a checkpoint directory")
    parser.add_argument("--images", action=ValuesAction, commas=False, required=True, metavar="IMAGE",
                        help="the stack's images, or one folder holding them and focus_distances.txt")
    parser.add_argument("--focus-distances", action=ValuesAction, type=float, commas=False, default=None, metavar="M",
                        help="metres, one per image, in the same order (default: the folder's focus_distances.txt)")
    parser.add_argument("--camera", default=None, help="camera preset or lens 'f,N,p' in metres (default: the model's camera)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tracking-uri", default="", help="MLflow store for runs:/ URIs (default MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--gpu", action="store_true", help="predict on a GPU")


def run(args: argparse.Namespace) -> int:
    from daif import pretrained

    if pretrained.is_pretrained(args.model):  # what the shipped model assumes, before it is used
        print(pretrained.describe(pretrained.read_meta(args.model)))
    paths = predict(args.model, args.images, args.focus_distances, args.camera, args.out, args.tracking_uri, "cuda" if args.gpu else "cpu")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
