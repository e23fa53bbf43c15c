"""Captured focal stacks: folders of photographs taken at known focus distances, stored without re-rendering.

Layout (`daif render --source focal-stack-folder --input ROOT`), one folder per scene:
    {root}/{split}/<scene>/stack.json     {"images": ["00.png", ...], "focus_distances": [metres, one per image],
                                           optionally "camera": {"focal_length": m, "f_number": N, "pixel_size": m}}
    {root}/{split}/<scene>/<the images>   8-bit RGB (or grey) PNG / JPG, all of one size, named in stack.json
    {root}/{split}/<scene>/depth.png      optional: 16-bit depth, metres = value / depth_scale (0 = no measurement)
    {root}/{split}/<scene>/depth.npy      optional instead: (H, W) float depth in metres (NaN, inf, <= 0 = none)
    {root}/{split}/<scene>/aif.png        optional: an all-in-focus image (PNG or JPG: aif.png / aif.jpg)
split is "train" or "test" (as `check_split`); the scene id is the folder's name. Image names are relative
to the scene folder, and every file of a scene (links resolved) must lie inside it. Depth and AIF must have the
images' size; images hold at least MIN_IMAGE_SIZE and at most MAX_IMAGE_PIXELS pixels (`daif.data.sources`, read
from the headers). stack.json is UTF-8 JSON of at most MAX_STACK_JSON_BYTES; focus distances are finite metres
above the focal length and at most `daif.optics.MAX_FOCUS_DISTANCE`.

A store has one focus list and one camera (`daif.data.store`), so every scene must list the same focus
distances (compared as float32 after sorting) and carry the same camera; a scene that differs is an error
naming its stack.json and what was expected. The camera is --camera's (a lens f,N,p or a preset)
or stack.json's; when both are given they must agree. Without either, it is read from the EXIF of each
scene's first image (`daif.exif`: FocalLength, FNumber, FocalLengthIn35mmFilm), whose pixel pitch is that
of the file and is scaled to the stored size (x native width / stored width); a partial set of tags is an
error naming the image and the tags missing. Images are stored in ascending focus distance
(the order the store's bins assume), each exactly as read, or resized to --size with `resize_rgb`'s box
filter; without --size every scene must have the same native size.

Focus breathing (--align scale, the default; `daif.align`): after the resize, each scene's images are aligned
to the one of narrowest field of view by a scale about the centre and a shift each, estimated from the
images. The store keeps the frame: pixels outside the overlap every image covers hold the nearest edge pixel
of an image that does not reach them, and are marked invalid (`valid` False, so no depth metric counts them).
Each scene's transforms, reference and overlap go to the shard's per-scene `alignment` (JSON, read with
`Store.alignments`). An image whose transform moves no pixel by more than `daif.align.IDENTITY_PX` is stored
as read; scenes under `daif.align.MIN_ALIGN_SIDE` px a side are stored unaligned (recorded as "skipped").
A failed alignment is an error naming the image (`daif.align`); --align none stores the images as read.
Depth and AIF files are taken to be in the reference image's frame and are not warped.

What the store holds for a scene without depth or AIF (read by `daif evaluate`): no depth file -> depth 0
and `valid` all False (no depth metric counts it); no AIF -> an all-zero `aif` and the shard's per-scene
`has_aif` False (no AIF PSNR / SSIM for it). Training needs neither (it is self-supervised).
Everything but the pixels is checked on the driver before Ray starts (`refs`, `common_stack`); bad input
raises `DataError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from daif import align, exif
from daif.data.folders import DepthFolderSource, read_depth_npy, read_depth_png
from daif.data.sources import DataError, check_image_size, check_split, open_image, prepare_scene, resize_rgb
from daif.optics import ThinLensCamera, check_focus_distance

STACK_FILE = "stack.json"
STACK_KEYS = {"images", "focus_distances", "camera"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
AIF_NAMES = ("aif.png", "aif.jpg", "aif.jpeg")
IMAGE_MODES = ("RGB", "L")  # 8-bit colour or grey; anything else (16-bit, palette, alpha) is refused
MAX_STACK_JSON_BYTES = 1 << 20  # a 1000-image stack's names and focus distances take about 40 kB


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, checking it is an 8-bit RGB or grey image of at least
    MIN_IMAGE_SIZE pixels a side."""
    with open_image(path) as image:
        mode, (width, height) = image.mode, image.size
    if mode not in IMAGE_MODES:
        raise DataError(f"{path}: expected an 8-bit RGB or grey image, got mode {mode!r}")
    check_image_size(path, height, width)
    return height, width


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 pixels of an 8-bit RGB or grey image file, unchanged (grey is copied to 3 channels)."""
    with open_image(path) as image:
        if image.mode not in IMAGE_MODES:
            raise DataError(f"{path}: expected an 8-bit RGB or grey image, got mode {image.mode!r}")
        return np.asarray(image.convert("RGB"))


def _focus_list(path: Path, values: Any) -> list[float]:
    """stack.json's focus distances, each checked by `check_focus_distance` (the focal length is checked later,
    once the camera is known: `daif.data.pipeline.plan_captured`)."""
    if not isinstance(values, list) or not values:
        raise DataError(f"{path}: 'focus_distances' must be a non-empty list of numbers, got {values!r}")
    try:
        return [check_focus_distance(value) for value in values]
    except ValueError as error:
        raise DataError(f"{path}: 'focus_distances': {error}") from None


def read_stack_json(path: Path) -> dict[str, Any]:
    """The checked content of one stack.json: {"images": [names], "focus_distances": [m], "camera": camera or None}."""
    try:
        if path.stat().st_size > MAX_STACK_JSON_BYTES:
            raise DataError(f"{path}: {path.stat().st_size:,} bytes; a {STACK_FILE} holds at most {MAX_STACK_JSON_BYTES:,}")
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing (every scene folder holds a {STACK_FILE})") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error}") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a JSON object with 'images' and 'focus_distances', got {type(content).__name__}")
    unknown = sorted(set(content) - STACK_KEYS)
    if unknown:
        raise DataError(f"{path}: unknown key(s) {unknown}, expected some of {sorted(STACK_KEYS)}")
    for key in ("images", "focus_distances"):
        if key not in content:
            raise DataError(f"{path}: missing key {key!r}")
    images = content["images"]
    if not isinstance(images, list) or not images or not all(isinstance(name, str) and name for name in images):
        raise DataError(f"{path}: 'images' must be a non-empty list of file names, got {images!r}")
    focus = _focus_list(path, content["focus_distances"])
    if len(focus) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(focus)} focus distances (one per image)")
    if len(set(np.float32(focus).tolist())) != len(focus):
        raise DataError(f"{path}: 'focus_distances' must be distinct, got {focus}")
    camera = None
    if "camera" in content:
        if not isinstance(content["camera"], dict):
            raise DataError(f"{path}: 'camera' must be an object {{focal_length, f_number, pixel_size}}, got {content['camera']!r}")
        try:
            camera = ThinLensCamera.from_dict(content["camera"])
        except (TypeError, ValueError) as error:
            raise DataError(f"{path}: 'camera': {error}") from None
    return {"images": images, "focus_distances": focus, "camera": camera}


def _optional_file(folder: Path, names: tuple[str, ...], what: str) -> Path | None:
    found = [folder / name for name in names if (folder / name).is_file()]
    if len(found) > 1:
        raise DataError(f"{folder}: both {found[0].name} and {found[1].name}; keep one {what}")
    if found:
        _check_inside(folder, found[0])
    return found[0] if found else None


def _check_inside(folder: Path, path: Path) -> None:
    """`path`, its links resolved, must lie inside the scene `folder` (DataError naming it otherwise)."""
    resolved = path.resolve()
    if folder.resolve() not in resolved.parents:
        raise DataError(f"{path}: links to {resolved}, outside the scene folder {folder}; a scene's files must lie inside it")


def scene_ref(folder: Path, split: str) -> dict[str, Any]:
    """The reference of one scene folder, with every header checked (module docstring)."""
    stack_path = folder / STACK_FILE
    _check_inside(folder, stack_path)
    meta = read_stack_json(stack_path)
    order = np.argsort(np.asarray(meta["focus_distances"], dtype=np.float64), kind="stable")
    images = []
    for name in meta["images"]:
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents:
            raise DataError(f"{stack_path}: image {name!r} lies outside the scene folder")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{stack_path}: image {name!r}: expected a PNG or JPG ({', '.join(IMAGE_SUFFIXES)})")
        images.append(path)
    sizes = {path: _image_size(path) for path in images}
    size = sizes[images[0]]
    for path, other in sizes.items():
        if other != size:
            raise DataError(f"{path}: size {other[1]}x{other[0]} differs from {images[0].name}'s {size[1]}x{size[0]}")
    depth = _optional_file(folder, ("depth.png", "depth.npy"), "depth file")
    if depth is not None:
        shape = _npy_shape(depth) if depth.suffix == ".npy" else _png_shape(depth)
        if shape != size:
            raise DataError(f"{depth}: shape {shape} disagrees with the images' {size}")
    aif = _optional_file(folder, AIF_NAMES, "AIF image")
    if aif is not None and (aif_size := _image_size(aif)) != size:
        raise DataError(f"{aif}: size {aif_size} disagrees with the images' {size}")
    return {
        "scene_id": folder.name,
        "split": split,
        "stack_json": str(stack_path),
        "images": [str(images[i]) for i in order],
        "focus_distances": [meta["focus_distances"][i] for i in order],
        "camera": meta["camera"].to_dict() if meta["camera"] else None,
        "size": list(size),
        "depth": str(depth) if depth else None,
        "aif": str(aif) if aif else None,
        "exif": exif.read_camera_tags(images[0]) if meta["camera"] is None else None,  # for `common_stack`
    }


def _npy_shape(path: Path) -> tuple[int, ...]:
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read as .npy: {error}") from None
    if values.dtype.kind not in "fiu":
        raise DataError(f"{path}: expected float depth in metres, got dtype {values.dtype}")
    return tuple(np.squeeze(values).shape)


def _png_shape(path: Path) -> tuple[int, int]:
    with open_image(path) as image:
        return image.size[1], image.size[0]


def _close(a: ThinLensCamera, b: ThinLensCamera, rel_tol: float = 1e-9) -> bool:
    return all(math.isclose(x, y, rel_tol=rel_tol) for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b)))


def common_stack(
    refs: list[dict[str, Any]], given_camera: ThinLensCamera | None, given_by: str, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, ThinLensCamera, tuple[int, int]]:
    """(focus distances (F,) float32 ascending, camera, native size (H, W)) shared by every scene of `refs`.

    given_camera: the camera of --camera (`given_by` names it), or None; stack.json cameras
    must agree with it and with each other. Without either, the EXIF camera of every scene's first image,
    its pitch scaled to the stored `size` (H, W; None: each scene's native size), and these must agree.
    The native size is the first scene's (the caller decides whether other sizes are an error). Raises
    DataError naming the stack.json or image that differs.
    """
    first = refs[0]
    focus = np.asarray(first["focus_distances"], dtype=np.float32)
    camera, camera_from = given_camera, given_by
    for ref in refs:
        other = np.asarray(ref["focus_distances"], dtype=np.float32)
        if other.shape != focus.shape or not np.array_equal(other, focus):
            raise DataError(
                f"{ref['stack_json']}: focus distances {other.tolist()} differ from {focus.tolist()} of "
                f"{first['stack_json']} (a store holds one focus list)"
            )
        if ref["camera"] is None:
            continue
        scene_camera = ThinLensCamera.from_dict(ref["camera"])
        if camera is None:
            camera, camera_from = scene_camera, ref["stack_json"]
        elif not _close(scene_camera, camera):
            raise DataError(f"{ref['stack_json']}: camera {scene_camera.to_dict()} disagrees with {camera.to_dict()} of {camera_from}")
    if camera is None:
        camera = _exif_camera(refs, size)
    if camera is None:
        raise DataError(f"{first['stack_json']}: no camera: give --camera f,N,p or --camera PRESET, put 'camera' in stack.json, "
                        f"or use images whose EXIF holds {', '.join(exif.TAGS)}")
    return focus, camera, (int(first["size"][0]), int(first["size"][1]))


def _exif_camera(refs: list[dict[str, Any]], size: tuple[int, int] | None) -> ThinLensCamera | None:
    """The camera of the scenes' first images' EXIF at the stored size (module docstring); None when no scene
    has any camera tag; DataError naming the image whose tags are partial, or whose camera differs."""
    tags = [ref.get("exif") or {} for ref in refs]
    if not any(exif.has_camera_tags(t) for t in tags):
        return None
    camera, camera_from = None, ""
    for ref, scene_tags in zip(refs, tags):
        try:
            native = exif.camera_from_tags(scene_tags)
        except ValueError as error:
            raise DataError(f"{ref['images'][0]}: {error}; give --camera f,N,p or put 'camera' in stack.json") from None
        stored_width = size[1] if size is not None else ref["size"][1]
        scene_camera = dataclasses.replace(native, pixel_size=native.pixel_size * ref["size"][1] / stored_width)
        if camera is None:
            camera, camera_from = scene_camera, ref["images"][0]
        elif not _close(scene_camera, camera, rel_tol=1e-6):  # pitches of images resized from other sizes round apart
            raise DataError(f"{ref['images'][0]}: EXIF camera {scene_camera.to_dict()} (at the stored size) disagrees with "
                            f"{camera.to_dict()} of {camera_from}")
    return camera


@dataclasses.dataclass(frozen=True)
class FocalStackFolderSource(DepthFolderSource):
    """Captured focal stacks in scene folders (module docstring); `load` returns the stack itself."""

    align: str = "scale"  # daif.align.ALIGN_MODES
    name: str = dataclasses.field(default="focal-stack-folder", init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.align not in align.ALIGN_MODES:
            raise ValueError(f"--align: expected one of {', '.join(align.ALIGN_MODES)}, got {self.align!r}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "align": self.align}

    def refs(self, split: str) -> list[dict[str, Any]]:
        folder = Path(self.root, check_split(split))
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder (expected {{input}}/{split}/<scene>/{STACK_FILE})")
        scenes = sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
        if self.limit is not None:
            scenes = scenes[: self.limit]
        return [scene_ref(path, split) for path in scenes]

    def load(self, ref: dict[str, Any]) -> dict[str, np.ndarray]:
        """{"stack" (F, h, w, 3) uint8 in ascending focus distance, "aif" (h, w, 3) uint8 or None,
        "depth" (h, w) float32 metres or None} at the native size, with "images" (their paths),
        "focus_distances" and "align" (this source's mode) for `prepare_captured`."""
        stack = np.stack([read_image(path) for path in ref["images"]])
        aif = read_image(ref["aif"]) if ref["aif"] else None
        depth = None
        if ref["depth"] and ref["depth"].endswith(".npy"):
            depth = read_depth_npy(ref["depth"])
        elif ref["depth"]:
            depth = read_depth_png(ref["depth"], self.depth_scale)
        for path, values in zip(ref["images"], stack):
            if values.shape[:2] != tuple(ref["size"]):  # the file changed since it was listed
                raise DataError(f"{path}: size {values.shape[:2]} differs from the {tuple(ref['size'])} listed")
        return {"stack": stack, "aif": aif, "depth": depth, "images": list(ref["images"]),
                "focus_distances": list(ref["focus_distances"]), "align": self.align}


def prepare_captured(
    loaded: dict[str, Any], scene_id: str, size: tuple[int, int], depth_range: tuple[float, float]
) -> tuple[dict[str, Any], np.ndarray]:
    """A loaded captured scene at the working size `size` (H, W): (scene, stack).

    scene: {"scene_id", "aif" (H, W, 3) uint8 (zeros without an AIF), "depth" (H, W) float32 metres
    (the depth policy of `prepare_scene`; zeros without depth), "valid" (H, W) bool (False without depth,
    and outside the alignment's overlap), "has_aif" bool, "alignment" (JSON text, module docstring)};
    stack: (F, H, W, 3) uint8, each image `resize_rgb`'d (unchanged at its native size), then aligned
    when loaded["align"] is "scale" (`align_captured`).
    """
    stack = np.stack([resize_rgb(image, size) for image in loaded["stack"]])
    stack, alignment, overlap = align_captured(stack, loaded.get("focus_distances"), loaded.get("images"), loaded.get("align", "none"))
    has_aif = loaded["aif"] is not None
    aif = loaded["aif"] if has_aif else np.zeros((*loaded["stack"].shape[1:3], 3), np.uint8)
    if loaded["depth"] is not None:
        scene = prepare_scene({"aif": aif, "depth": loaded["depth"]}, scene_id, size, depth_range)
        scene["valid"] = scene["valid"] & overlap
    else:
        scene = {"scene_id": scene_id, "aif": resize_rgb(aif, size), "depth": np.zeros(size, np.float32), "valid": np.zeros(size, bool)}
    return {**scene, "has_aif": has_aif, "alignment": json.dumps(alignment)}, stack


def align_captured(stack: np.ndarray, focus_distances, images, mode: str) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    """(stack (F, H, W, 3) uint8 aligned for focus breathing, the alignment record, (H, W) bool overlap) of one
    scene's resized stack (module docstring); DataError naming the image whose alignment failed."""
    import torch

    _, height, width, _ = stack.shape
    everywhere = np.ones((height, width), bool)
    if mode == "none":
        return stack, {"mode": "none"}, everywhere
    if min(height, width) < align.MIN_ALIGN_SIDE:
        return stack, {"mode": "skipped", "reason": f"under {align.MIN_ALIGN_SIDE} px a side"}, everywhere
    tensor = torch.from_numpy(stack).permute(0, 3, 1, 2).float() / 255.0  # (F, 3, H, W)
    try:
        aligned, alignment = align.align_stack(tensor, focus_distances, images)
    except align.AlignmentError as error:
        raise DataError(str(error)) from None
    pixels = aligned.mul(255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    record = alignment.to_dict([Path(path).name for path in images])
    return np.ascontiguousarray(pixels), record, align.overlap_mask(alignment).numpy()
