"""Prediction: depth and an all-in-focus image from your own focal stack.

    paths = predict("runs:/<run_id>/model", ["f1.png", "f2.png"], [1.0, 2.5], out="pred")
    daif predict --model ckpt/ --images stack_dir/ --out pred      # stack_dir/focus_distances.txt

Inputs: S images of one size (any order; PNG, JPEG, TIFF, ... 8- or 16-bit, grey or colour) and
their S focus distances in metres, or a folder of images (sorted by name) with `focus_distances.txt`
(one number per line, blank lines and # comments ignored). Each focus distance must exceed the
camera's focal length.

The camera describes the image files. It is `camera` (a preset name or "f,N,p") when given; else the
images' EXIF (`daif.exif`: FocalLength, FNumber and FocalLengthIn35mmFilm for the pixel pitch; every image
must agree, and a partial set is an error naming the tags missing); else, for images without any of those
tags, the camera the model was trained with. Which one, and from what, is printed.

Full-resolution photographs in bounded memory: each image is resized on reading (box filter) so that its
long side is at most `max_side` px (MAX_SIDE by default; None keeps the size), and only one full-size image
is decoded at a time. Resizing by r = W / W' makes the effective pixel pitch r p (and every blur radius 1 / r
as many pixels), so the camera the model sees is (f, N, r p). MAX_SIDE = 1024 keeps five 4000x3000 JPEGs with
the shipped model's architecture on the CPU at a peak resident memory (VmHWM) of 2.0 GiB, alignment included
(0.87 GiB at 512); the slow test in tests/test_predict.py holds it under 3 GiB.

Focus breathing (`align="scale"`, the default; `daif.align`): the images are aligned to the one of narrowest
field of view by a scale about the centre and a shift each, estimated from the images; the transforms are
printed and recorded, and every output is cropped to the overlap that all images cover (`crop` in
prediction.json, pixels of the resized images). An alignment that fails is refused (one line naming the
file); images under `daif.align.MIN_ALIGN_SIDE` px a side are not aligned (printed). `align="none"` uses the
images as they are.

Refinement (`refine_steps` > 0, `daif.refine`): the model's self-supervised objective is first minimised on this
stack alone through the resolved camera (a copy of the weights; at most that many Adam steps, a plateau rule stops
earlier), and the stack is predicted with the refined weights; the steps taken and the objective's first and last
values are printed and recorded. The shipped `pretrained` model refuses a camera other than its own unless refined.

Outputs in `out` (OUTPUT_FILES): depth.png (16-bit, millimetres), depth.npy (float32 metres, (H, W)),
depth_color.png (colour-mapped, near is bright), aif.png (8-bit RGB) and prediction.json (inputs,
camera and where it came from, resize, alignment, crop, depth range). `out` is checked before the model
is loaded; the files are written under temporary names and renamed into place together, so a failure
leaves none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daif.errors import UsageError
from daif.files import atomic_paths, check_output_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
FOCUS_FILE = "focus_distances.txt"
MAX_DEPTH_MM = 65535  # the 16-bit PNG's ceiling, 65.535 m
MIN_IMAGES = 2  # depth from defocus compares images focused at different distances
MAX_SIDE = 1024  # px, the long side images are resized to at most (module docstring: memory)


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


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image from its header (`daif.data.sources.open_image`, at most MAX_IMAGE_PIXELS)."""
    from daif.data.sources import DataError, open_image

    if not path.is_file():
        raise PredictionInputError(f"images: {path} does not exist")
    try:
        with open_image(path) as image:
            return image.size[1], image.size[0]
    except DataError as error:
        raise PredictionInputError(f"images: {error}") from None


def working_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(H', W'): (height, width) shrunk so that the long side is at most max_side (aspect kept, rounded)."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    ratio = max_side / max(height, width)
    return max(1, round(height * ratio)), max(1, round(width * ratio))


def read_image(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from an 8- or 16-bit grey, RGB or RGBA image (or a float one, taken as is),
    resized to size (H, W) with a box filter when given. The size is read from the header first
    (`daif.data.sources.open_image`, at most MAX_IMAGE_PIXELS)."""
    from PIL import Image

    from daif.data.sources import DataError, open_image

    if not path.is_file():
        raise PredictionInputError(f"images: {path} does not exist")
    box = Image.Resampling.BOX
    try:
        with open_image(path) as image:
            image.load()
            resize = size is not None and (image.size[1], image.size[0]) != tuple(size)
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                scale = 1.0 if image.mode == "F" else 1 / 65535.0
                values = Image.fromarray(np.asarray(image, dtype=np.float32) * np.float32(scale), mode="F")
                array = np.asarray(values.resize((size[1], size[0]), box) if resize else values, dtype=np.float32)
            else:
                rgb = image.convert("RGB")
                array = np.asarray(rgb.resize((size[1], size[0]), box) if resize else rgb, dtype=np.float32) / 255.0
    except DataError as error:
        raise PredictionInputError(f"images: {error}") from None
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise PredictionInputError(f"images: {path} holds {bad} non-finite pixel value(s) (NaN or inf); expected finite intensities")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.clip(array, 0.0, 1.0)


def check_sizes(images: Sequence[Path]) -> tuple[int, int]:
    """(H, W) shared by every image (read from the headers), at least MIN_IMAGE_SIZE a side."""
    from daif.data.sources import DataError, check_image_size

    sizes = [image_size(path) for path in images]
    height, width = sizes[0]
    for path, size in zip(images, sizes):
        if size != (height, width):
            raise PredictionInputError(
                f"images: {path} is {size[1]}x{size[0]} (WxH) but {images[0]} is {width}x{height}; "
                "all images of a focal stack must have the same size"
            )
    try:
        check_image_size(images[0], height, width)
    except DataError as error:
        raise PredictionInputError(f"images: {error}") from None
    return height, width


def load_stack(images: Sequence[Path], size: tuple[int, int] | None = None) -> np.ndarray:
    """(S, H, W, 3) float32 in [0, 1], each image resized to size (H, W) on reading when given; every image
    must have the first one's size, at least MIN_IMAGE_SIZE a side."""
    native = check_sizes(images)
    size = tuple(size) if size is not None else native
    stack = np.empty((len(images), *size, 3), np.float32)
    for k, path in enumerate(images):  # one full-size image decoded at a time
        array = read_image(path, size)
        if array.shape[:2] != size:  # the file changed since its header was read
            raise PredictionInputError(f"images: {path} is {array.shape[1]}x{array.shape[0]} (WxH), not {native[1]}x{native[0]} as its header said")
        stack[k] = array
    return stack


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


def _given_camera(camera):
    from daif.optics import ThinLensCamera

    if isinstance(camera, ThinLensCamera):
        return camera
    if isinstance(camera, dict):
        return ThinLensCamera.from_dict(camera)
    try:
        return ThinLensCamera.parse(str(camera))
    except (TypeError, ValueError) as error:
        raise PredictionInputError(f"camera: {error}") from None


def exif_camera(images: Sequence[Path]):
    """(camera, the phrase it came from) from the images' EXIF (`daif.exif`), or (None, why) when no image holds
    any camera tag. Raises PredictionInputError naming the file whose tags are partial or disagree."""
    from daif import exif
    from daif.data.sources import DataError

    found = []
    for path in images:
        try:
            tags = exif.read_camera_tags(path)
        except DataError as error:
            raise PredictionInputError(f"images: {error}") from None
        if exif.has_camera_tags(tags):
            try:
                found.append((path, exif.camera_from_tags(tags), tags))
            except ValueError as error:
                raise PredictionInputError(f"camera: {path}: {error}; give --camera f,N,p (metres) instead") from None
    if not found:
        return None, f"no EXIF camera tags ({', '.join(exif.TAGS)}) in {images[0].name} or the other images"
    first_path, first, tags = found[0]
    if len(found) < len(images):
        lacking = next(path for path in images if path not in [f[0] for f in found])
        raise PredictionInputError(f"camera: {lacking} has no EXIF camera tags but {first_path.name} has; give --camera f,N,p "
                                   "(metres) or images from one camera")
    for path, other, _ in found[1:]:
        if other != first:
            raise PredictionInputError(f"camera: {path}: EXIF camera {other.to_dict()} differs from {first.to_dict()} of "
                                       f"{first_path.name}; give --camera f,N,p (metres)")
    return first, f"EXIF of {first_path.name}: {exif.describe(tags)}"


def resolve_camera(camera, images: Sequence[Path], meta: dict[str, Any]):
    """(camera of the image files or None, the phrase saying where it came from): `camera` when given, else the
    images' EXIF, else (images without camera tags) the model's (module docstring)."""
    from daif.optics import ThinLensCamera

    if camera is not None:
        return _given_camera(camera), "--camera"
    found, source = exif_camera(images)
    if found is not None:
        return found, source
    if meta.get("camera"):
        return ThinLensCamera.from_dict(meta["camera"]), f"the model's ({source}; assumed to describe the images as given)"
    return None, f"none ({source}, and the model records none)"


def _camera_line(lens, source: str) -> str:
    if lens is None:
        return f"camera: {source}"
    return (f"camera: f={lens.focal_length * 1e3:g} mm, N={lens.f_number:g}, p={lens.pixel_size * 1e6:.4g} um per pixel "
            f"of the files; from {source}")


def scaled_camera(lens, factor: float):
    """The camera of images resized by 1 / factor: pixel pitch x factor (module docstring)."""
    import dataclasses

    if lens is None or factor == 1.0:
        return lens
    try:
        return dataclasses.replace(lens, pixel_size=lens.pixel_size * factor)
    except ValueError as error:
        raise PredictionInputError(f"--max-size: resizing by {factor:.3g} makes the camera implausible: {error}") from None


def align_and_crop(stack: np.ndarray, focus: np.ndarray, files: Sequence[Path], mode: str,
                   echo: Callable[[str], None]) -> tuple[np.ndarray, dict[str, Any], list[int]]:
    """(stack (S, h, w, 3) aligned and cropped to the overlap, the alignment record, crop [top, left, h, w])."""
    import torch

    from daif import align
    from daif.data.sources import MIN_IMAGE_SIZE

    _, height, width, _ = stack.shape
    full = [0, 0, height, width]
    if mode not in align.ALIGN_MODES:
        raise PredictionInputError(f"--align: expected one of {', '.join(align.ALIGN_MODES)}, got {mode!r}")
    if mode == "none":
        return stack, {"mode": "none"}, full
    if min(height, width) < align.MIN_ALIGN_SIDE:
        echo(f"align: skipped: {width}x{height} images are under {align.MIN_ALIGN_SIDE} px a side, too small to measure a scale")
        return stack, {"mode": "skipped", "reason": f"under {align.MIN_ALIGN_SIDE} px a side"}, full
    tensor = torch.from_numpy(stack).permute(0, 3, 1, 2)  # (S, 3, H, W)
    aligned, alignment = align.align_stack(tensor, focus.tolist(), [str(p) for p in files])
    for line in alignment.describe([p.name for p in files]):
        echo(line)
    top, left, crop_h, crop_w = alignment.overlap
    if min(crop_h, crop_w) < MIN_IMAGE_SIZE:
        raise PredictionInputError(f"--align: the images overlap in {crop_w}x{crop_h} px only; give --align none")
    cropped = aligned.permute(0, 2, 3, 1)[:, top : top + crop_h, left : left + crop_w]
    return np.ascontiguousarray(cropped.numpy()), alignment.to_dict([str(p.resolve()) for p in files]), [top, left, crop_h, crop_w]


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
    align: str = "scale",
    max_side: int | None = MAX_SIDE,
    refine_steps: int = 0,
    echo: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Predict depth and AIF for one focal stack; write the files of the module docstring.

    model_source: MLflow model URI or checkpoint directory. images: image files, or one folder
    (images sorted by name, focus distances from its focus_distances.txt unless given).
    focus_distances: metres, one per image. camera: preset name, "f,N,p", dict or ThinLensCamera of the
    image files; default their EXIF, else the model's. align: "scale" or "none" (`daif.align`). max_side:
    the long side [px] images are resized to at most (None: as they are). refine_steps: with > 0, the model is
    refined on this stack first (`daif.refine`, at most that many steps; its objective's first and last values are
    echoed and recorded). echo: called with each line of what was assumed (camera, resize, alignment, refinement);
    `daif predict` prints them.
    Returns {"depth_png", "depth_npy", "depth_color", "aif", "json"}: paths.
    Raises PredictionInputError naming the file or argument for bad inputs.
    """
    from daif.model_io import load_model

    echo = echo or (lambda line: None)
    out = check_output_folder(out, list(OUTPUT_FILES.values()))
    files, folder = _image_files(images)
    if focus_distances is None:
        if folder is None:
            raise PredictionInputError("focus_distances: required (one per image), unless images is a folder with focus_distances.txt")
        focus_distances = read_focus_file(folder / FOCUS_FILE)
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 8):
        raise PredictionInputError(f"--max-size: expected a number of pixels >= 8, got {max_side!r}")
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise PredictionInputError(f"--refine-steps: expected a number of steps >= 0, got {refine_steps!r}")
    native = check_sizes(files)
    size = working_size(*native, max_side)
    factor = native[1] / size[1]
    model, meta = load_model(model_source, tracking_uri)
    files_lens, camera_source = resolve_camera(camera, files, meta)
    echo(_camera_line(files_lens, camera_source))
    lens = scaled_camera(files_lens, factor)
    if factor != 1.0:
        pitch = f"; pixel pitch {files_lens.pixel_size * 1e6:.4g} -> {lens.pixel_size * 1e6:.4g} um" if lens is not None else ""
        echo(f"resize: {native[1]}x{native[0]} -> {size[1]}x{size[0]} px (long side at most {max_side}; factor {factor:.4g}{pitch})")
    _check_camera_use(model_source, meta, lens, camera_source, factor, refine_steps)
    focus = check_focus_distances(list(focus_distances), files, lens)
    stack = load_stack(files, size)  # (S, H, W, 3)
    stack, alignment, crop = align_and_crop(stack, focus, files, align, echo)

    depth_m, aif_rgb, refinement = _run_model(model, stack, focus, lens, device, model_source, refine_steps, echo)

    near, far = meta.get("depth_range") or (getattr(model, "near", None), getattr(model, "far", None))
    if near is None or far is None:
        near, far = float(depth_m.min()), float(depth_m.max())
    summary = {
        "model": str(model_source),
        "images": [str(p.resolve()) for p in files],
        "focus_distances": focus.tolist(),
        "camera": lens.to_dict() if lens is not None else None,
        "camera_of_files": files_lens.to_dict() if files_lens is not None else None,
        "camera_source": camera_source,
        "image_size": list(native),
        "resized_to": list(size),
        "resize_factor": factor,
        "alignment": alignment,
        "crop": crop,
        "refinement": refinement,
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


def _check_camera_use(model_source, meta: dict[str, Any], lens, camera_source: str, factor: float, refine_steps: int) -> None:
    """Refining needs a camera; the shipped model, unrefined, takes only the camera it learned (its depth is that camera's
    defocus; refined, the objective re-renders the stack through yours). PredictionInputError naming the way out."""
    from daif import pretrained

    if refine_steps and lens is None:
        raise PredictionInputError("--refine-steps: refining re-renders the stack through its camera; give --camera "
                                   "(the images have no EXIF and the model records none)")
    if pretrained.is_pretrained(model_source) and not refine_steps:
        try:
            pretrained.check_camera(meta, lens, str(model_source))
        except UsageError as error:
            resized = f", resized by {factor:.4g}" if factor != 1.0 else ""
            raise PredictionInputError(f"{error} (your camera: from {camera_source}{resized})") from None


def _run_model(model, stack: np.ndarray, focus: np.ndarray, lens, device: str, model_source, refine_steps: int = 0,
               echo: Callable[[str], None] = print) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """The network on one stack (S, H, W, 3) float in [0, 1] at focus distances (S,) metres, refined on it first
    with `refine_steps`: depth (H, W) float32 metres, the AIF (H, W, 3) uint8 and the refinement's record (None
    without). PredictionInputError if the model returns a non-finite value."""
    import torch

    from daif.images import to_uint8_hwc

    model = model.to(device)
    stack_tensor = torch.from_numpy(np.ascontiguousarray(stack.transpose(0, 3, 1, 2)))[None].to(device)  # (1, S, 3, H, W)
    focus_tensor = torch.from_numpy(focus.astype(np.float32))[None].to(device)
    refinement = None
    if refine_steps:
        aif, depth, refinement = _refined(model, stack_tensor, focus_tensor, lens, refine_steps, echo)
    else:
        with torch.no_grad():
            aif, depth = model(stack_tensor, focus_tensor, camera=lens)  # the camera matters to a "search" depth head
    if not (torch.isfinite(depth).all() and torch.isfinite(aif).all()):  # NaN would reach the files and prediction.json
        raise PredictionInputError(f"model: {model_source} returned non-finite depth or AIF for finite images; its weights "
                                   "may hold NaN or inf")
    return depth[0, 0].float().cpu().numpy().astype(np.float32), to_uint8_hwc(aif[0].float()), refinement


def _refined(model, stack, focus, lens, steps: int, echo: Callable[[str], None]):
    """(aif, depth, record) of `model` refined on the stack (`daif.refine`), with a progress bar."""
    import dataclasses

    from tqdm.auto import tqdm

    from daif.refine import RefineConfig, refine

    config = RefineConfig(steps=steps)
    with tqdm(total=steps, desc="refining on the stack", unit="step", leave=False) as bar:
        aif, depth, history = refine(model, stack, focus, lens, config,
                                     progress=lambda step, value: (bar.update(1), bar.set_postfix(objective=f"{value:.4g}")))
    echo(f"refined on the stack: {len(history)} of at most {steps} steps, objective {history[0]:.4g} -> {history[-1]:.4g}")
    record = {"steps_taken": len(history), "objective_first": history[0], "objective_last": history[-1],
              **dataclasses.asdict(config)}  # asdict recurses: the loss is a dict too
    return aif, depth, record


# ------------------------------------------------------------------ `daif predict`


def _max_size(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or none, got {text!r}") from None
    if value < 8:
        raise argparse.ArgumentTypeError(f"expected at least 8 px, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daif.align import ALIGN_MODES
    from daif.cli import ValuesAction

    parser.add_argument("--model", required=True, metavar="URI_OR_PATH",
                        help="'pretrained' (the model shipped with daif), an MLflow model URI (runs:/<run_id>/model, "
                             "models:/NAME/latest) or a checkpoint directory")
    parser.add_argument("--images", action=ValuesAction, commas=False, required=True, metavar="IMAGE",
                        help="the stack's images, or one folder holding them and focus_distances.txt")
    parser.add_argument("--focus-distances", action=ValuesAction, type=float, commas=False, default=None, metavar="M",
                        help="metres, one per image, in the same order (default: the folder's focus_distances.txt)")
    parser.add_argument("--camera", default=None,
                        help="camera preset or lens 'f,N,p' in metres of the image files (default: the images' EXIF, else the "
                             "model's camera)")
    parser.add_argument("--align", choices=ALIGN_MODES, default="scale",
                        help="scale: align the images for focus breathing (a scale and a shift each, printed; outputs cropped "
                             "to the overlap); none: use them as they are")
    parser.add_argument("--max-size", type=_max_size, default=MAX_SIDE, metavar="PX",
                        help="resize images so that their long side is at most PX (the pixel pitch scales with it), or none")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tracking-uri", default="", help="MLflow store for runs:/ URIs (default MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--refine-steps", type=int, default=0, metavar="N",
                        help="refine the model on this stack first: its self-supervised objective, at most N steps "
                             "(about 0.7 s a step at 160x120 on 2 CPUs; docs/usage.md; default 0: not)")
    parser.add_argument("--gpu", action="store_true", help="predict on a GPU")


def run(args: argparse.Namespace) -> int:
    from daif import pretrained

    if pretrained.is_pretrained(args.model):  # what the shipped model assumes, before it is used
        print(pretrained.describe(pretrained.read_meta(args.model)))
    paths = predict(args.model, args.images, args.focus_distances, args.camera, args.out, args.tracking_uri, "cuda" if args.gpu else "cpu",
                    align=args.align, max_side=args.max_size, refine_steps=args.refine_steps, echo=print)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
