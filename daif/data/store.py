"""The focal-stack store: a directory holding `manifest.json` and HDF5 shards `shard-00000.h5`, ...

Shard datasets (N scenes, F focus distances, chunked one image per chunk; uncompressed by default,
or lzf / gzip-<level>, which every HDF5 reader decodes):
    aif (N, H, W, 3) uint8, depth (N, H, W) float32 metres, valid (N, H, W) bool,
    stack (N, F, H, W, 3) uint8, focus_distances (F,) float32 metres, scene_id (N,) strings,
    has_aif (N,) bool (False: the scene has no ground-truth AIF and `aif` is all zeros; captured stacks
    only; a shard written without the dataset has an AIF for every scene),
    alignment (N,) JSON strings (captured stacks only: how each scene was aligned for focus breathing,
    `daif.data.captured`; read with `Store.alignments`).
A scene without ground-truth depth has `valid` all False (and depth 0).
Shard attributes: format_version, camera (JSON) and camera_focal_length / camera_f_number /
camera_pixel_size [m], kernel_size (0: no window), source, split, config_hash.

manifest.json: format_version, status ("rendering" until every shard is written, then "complete"),
camera, focus_distances, num_bins and bins ([start, stop) index ranges), image_size [H, W],
kernel_size (the renderer's window K, or null: no window, the ladder renderer), max_sigma (the data's largest defocus sigma [px] from the camera, the focus distances and the
scenes' depth range, daif.optics.max_defocus_sigma; null for captured stacks; absent in older stores),
psf (the PSF of rendered stacks, daif.optics.psf.PSF_MODELS: "gaussian", the renderer of kernel_size; "disc"; or
"layered", discs with occlusion; absent means gaussian), source, stacks ("rendered" by our renderer, or
"captured": photographs stored as given; absent means rendered), compression, config (what produced it) and config_hash, splits
({split: [shard names]}) and shards ({name: {split, scenes, bytes, sha256}}).

Every file is written under a temporary name and renamed into place, so a file with a final name is
complete. Opening a store checks, before any pixel is read (StoreError naming manifest.json or the shard):
  - manifest.json: UTF-8 JSON of at most MAX_MANIFEST_BYTES, an object whose fields have the types and ranges
    above (`check_manifest`): a plausible camera and focus distances (`daif.optics`, ascending), 1 <= num_bins <= F
    with bins covering the F images, image_size of at least MIN_IMAGE_SIZE and at most MAX_IMAGE_PIXELS, an odd
    kernel_size >= 3 (the one window rule) no wider than the image can use or null, max_sigma positive or null,
    and shard names that are plain file names (SHARD_NAME), each listed in one split;
  - each shard: a regular file inside the store folder (links resolved) of the manifest's size in bytes, that
    HDF5 opens, with every dataset above in its shape and dtype and attributes that agree with the manifest.
Readers also check each shard's SHA-256 against the manifest when they first open it (`verify`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import h5py
import numpy as np

from daif.data.sources import MAX_IMAGE_PIXELS, MIN_IMAGE_SIZE
from daif.files import atomic_path, temporary_sibling
from daif.optics import ThinLensCamera, check_focus_distance
from daif.optics.psf import PSF_MODELS

FORMAT_VERSION = 1
# Uncompressed: on real 320x240 100-image stacks lzf keeps 80 % of the bytes for 10x the CPU of writing
# them plain (about as much again as rendering), gzip-1 keeps 69 % for 16x; docs/experiments.md, "Throughput".
DEFAULT_COMPRESSION = "none"
MANIFEST = "manifest.json"
COLUMNS = ("scene_id", "aif", "depth", "valid", "stack", "has_aif")
MAX_MANIFEST_BYTES = 64 << 20  # a 100,000-shard store's manifest takes about 20 MB
SHARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.h5")  # a plain file name: no folder, no leading dot
STACKS = ("rendered", "captured")


class StoreError(ValueError):
    """A store or shard that is incomplete, corrupt or inconsistent; the message names it."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def json_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON form of `payload`."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_json_atomic(path: str, payload: Any) -> None:
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        json.dump(payload, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())


def _compression(name: str) -> dict[str, Any]:
    if name == "lzf":
        return {"compression": "lzf"}
    if name.startswith("gzip"):  # "gzip" or "gzip-<level>"
        level = int(name.split("-")[1]) if "-" in name else 4
        return {"compression": "gzip", "compression_opts": level}
    if name == "none":
        return {}
    raise ValueError(f"compression: expected lzf, gzip, gzip-<0..9> or none, got {name!r}")


class ShardWriter:
    """Write one shard scene by scene under a temporary name; `close()` renames it into place.

    Used as a context manager: an exception removes the temporary file, so no partial shard remains.
    """

    def __init__(
        self,
        path: str,
        num_scenes: int,
        image_size: tuple[int, int],
        focus_distances: Sequence[float],
        attrs: dict[str, Any],
        compression: str = DEFAULT_COMPRESSION,
    ) -> None:
        self.path, self.num_scenes, self.count = path, num_scenes, 0
        self.temporary = temporary_sibling(path)
        height, width = image_size
        num_focus = len(focus_distances)
        options = _compression(compression)
        self.file = h5py.File(self.temporary, "w")
        create = self.file.create_dataset
        create("aif", (num_scenes, height, width, 3), np.uint8, chunks=(1, height, width, 3), **options)
        create("depth", (num_scenes, height, width), np.float32, chunks=(1, height, width), **options)
        create("valid", (num_scenes, height, width), bool, chunks=(1, height, width), **options)
        create("stack", (num_scenes, num_focus, height, width, 3), np.uint8, chunks=(1, 1, height, width, 3), **options)
        create("scene_id", (num_scenes,), h5py.string_dtype())
        create("has_aif", (num_scenes,), bool)
        create("focus_distances", data=np.asarray(focus_distances, dtype=np.float32))
        for key, value in attrs.items():
            self.file.attrs[key] = value

    def add(self, scene: dict[str, Any], stack: np.ndarray) -> None:
        """scene: scene_id, aif (H, W, 3) uint8, depth (H, W), valid (H, W), optional has_aif (default True) and
        alignment (JSON text); stack (F, H, W, 3) uint8."""
        if self.count >= self.num_scenes:
            raise StoreError(f"{self.path}: more scenes than the {self.num_scenes} planned")
        index = self.count
        self.file["aif"][index] = scene["aif"]
        self.file["depth"][index] = scene["depth"]
        self.file["valid"][index] = scene["valid"]
        self.file["stack"][index] = stack
        self.file["scene_id"][index] = scene["scene_id"]
        self.file["has_aif"][index] = bool(scene.get("has_aif", True))
        if "alignment" in scene:
            if "alignment" not in self.file:
                self.file.create_dataset("alignment", (self.num_scenes,), h5py.string_dtype())
            self.file["alignment"][index] = scene["alignment"]
        self.count += 1

    def close(self) -> dict[str, Any]:
        """Finish the shard: rename into place and return {name, scenes, bytes, sha256}."""
        if self.count != self.num_scenes:
            raise StoreError(f"{self.path}: {self.count} scenes written of the {self.num_scenes} planned")
        self.file.close()
        with open(self.temporary, "rb+") as file:
            os.fsync(file.fileno())
        digest = file_sha256(self.temporary)
        os.replace(self.temporary, self.path)
        return {
            "name": os.path.basename(self.path),
            "scenes": self.count,
            "bytes": os.path.getsize(self.path),
            "sha256": digest,
        }

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            if os.path.exists(self.temporary):
                os.remove(self.temporary)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.abort()


def shard_attrs(camera: ThinLensCamera, kernel_size: int | None, source: str, split: str, config_hash: str) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "camera": json.dumps(camera.to_dict(), sort_keys=True),
        "camera_focal_length": camera.focal_length,
        "camera_f_number": camera.f_number,
        "camera_pixel_size": camera.pixel_size,
        "kernel_size": kernel_size or 0,  # HDF5 attributes hold no null
        "source": source,
        "split": split,
        "config_hash": config_hash,
    }


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The JSON object of `directory`'s manifest.json (None without one); StoreError naming the file when it is
    not a file, larger than MAX_MANIFEST_BYTES, not UTF-8 JSON or not an object. Its fields: `check_manifest`."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path):
        raise StoreError(f"{path}: not a file")
    size = os.path.getsize(path)
    if size > MAX_MANIFEST_BYTES:
        raise StoreError(f"{path}: {size:,} bytes; a manifest holds at most {MAX_MANIFEST_BYTES:,}")
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
    except UnicodeDecodeError as error:
        raise StoreError(f"{path}: not UTF-8 text ({error})") from None
    except json.JSONDecodeError as error:
        raise StoreError(f"{path}: not valid JSON: {error}") from None
    except RecursionError:
        raise StoreError(f"{path}: not valid JSON: nested too deeply") from None
    except OSError as error:
        raise StoreError(f"{path}: cannot read: {error}") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{path}: expected a JSON object, got a {type(manifest).__name__}")
    return manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    """repr(value), cut to 80 characters (a hand-edited field can be long)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field(path: str, manifest: dict[str, Any], key: str, expected: str, ok: Callable[[Any], bool]) -> Any:
    """manifest[key] when `ok` accepts it, else StoreError naming the file, the key and what was `expected`."""
    if key not in manifest:
        raise StoreError(f"{path}: missing '{key}' ({expected})")
    value = manifest[key]
    if not ok(value):
        raise StoreError(f"{path}: '{key}': expected {expected}, got {_short(value)}")
    return value


def _covers(bins: Any, num_bins: int, num_images: int) -> bool:
    """Whether `bins` is `num_bins` consecutive, non-empty [start, stop) ranges covering 0..num_images."""
    if not isinstance(bins, list) or len(bins) != num_bins:
        return False
    stop = 0
    for pair in bins:
        if not (isinstance(pair, list) and len(pair) == 2 and all(map(_is_int, pair)) and pair[0] == stop < pair[1]):
            return False
        stop = pair[1]
    return stop == num_images


def check_manifest(path: str, manifest: dict[str, Any]) -> None:
    """Check the fields of a complete store's manifest (module docstring); StoreError naming `path` and the field."""
    count = _check_focal_stack(path, manifest)
    height, width = _field(
        path, manifest, "image_size", f"[height, width] of at least {MIN_IMAGE_SIZE} and at most {MAX_IMAGE_PIXELS:,} pixels",
        lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x >= MIN_IMAGE_SIZE for x in v)
        and v[0] * v[1] <= MAX_IMAGE_PIXELS)
    widest = 2 * max(height, width) - 1  # a wider window's outer taps never fall on the image
    _field(path, manifest, "kernel_size", f"an odd integer in [3, {widest}] or null (daif._checks.check_kernel_size)",
           lambda v: v is None or (_is_int(v) and v % 2 == 1 and 3 <= v <= widest))
    if manifest.get("max_sigma") is not None:
        _field(path, manifest, "max_sigma", "a positive number of pixels or null",
               lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0)
    num_bins = _field(path, manifest, "num_bins", f"an integer in [1, {count}] (at most one bin per focus distance)",
                      lambda v: _is_int(v) and 1 <= v <= count)
    _field(path, manifest, "bins", f"{num_bins} consecutive [start, stop) ranges covering 0..{count}",
           lambda v: _covers(v, num_bins, count))
    if manifest.get("psf", "gaussian") not in PSF_MODELS:
        raise StoreError(f"{path}: 'psf': expected one of {list(PSF_MODELS)}, got {_short(manifest['psf'])}")
    if manifest.get("stacks", "rendered") not in STACKS:
        raise StoreError(f"{path}: 'stacks': expected one of {list(STACKS)}, got {_short(manifest['stacks'])}")
    _check_shard_lists(path, manifest)


def _check_focal_stack(path: str, manifest: dict[str, Any]) -> int:
    """Check the camera and the focus distances (plausible, ascending); returns their number F."""
    camera = _field(path, manifest, "camera", "an object {focal_length, f_number, pixel_size}", lambda v: isinstance(v, dict))
    try:
        camera = ThinLensCamera.from_dict(camera)
    except (TypeError, ValueError) as error:
        raise StoreError(f"{path}: 'camera': {error}") from None
    focus = _field(path, manifest, "focus_distances", "a non-empty list of metres", lambda v: isinstance(v, list) and v)
    try:
        focus = [check_focus_distance(value, camera.focal_length) for value in focus]
    except ValueError as error:
        raise StoreError(f"{path}: 'focus_distances': {error}") from None
    if focus != sorted(focus):
        raise StoreError(f"{path}: 'focus_distances': expected ascending metres, got {_short(focus)}")
    return len(focus)


def _check_shard_lists(path: str, manifest: dict[str, Any]) -> None:
    """Check 'shards' (plain file names, well-formed entries) and 'splits' (each shard listed once, under its split)."""
    shards = _field(path, manifest, "shards", "an object {shard name: {split, scenes, bytes, sha256}}",
                    lambda v: isinstance(v, dict) and v)
    for name, entry in shards.items():
        _check_shard_entry(path, name, entry)
    splits = _field(path, manifest, "splits", "an object {split: [shard names]}", lambda v: isinstance(v, dict) and v)
    listed: set[str] = set()
    for split, names in splits.items():
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise StoreError(f"{path}: 'splits': split {_short(split)}: expected a list of shard names, got {_short(names)}")
        for name in names:
            if name not in shards:
                raise StoreError(f"{path}: 'splits': shard {_short(name)} of split {_short(split)} is not in 'shards'")
            if name in listed or shards[name]["split"] != split:
                raise StoreError(f"{path}: 'splits': shard {name!r} is listed under {_short(split)}; "
                                 f"'shards' gives it to {shards[name]['split']!r}")
            listed.add(name)
    if unlisted := sorted(set(shards) - listed):
        raise StoreError(f"{path}: 'shards': {_short(unlisted)} in no split")


def _check_shard_entry(path: str, name: Any, entry: Any) -> None:
    if not SHARD_NAME.fullmatch(name):
        raise StoreError(f"{path}: 'shards': {_short(name)} is not a plain shard file name inside the store (expected e.g. shard-00000.h5)")
    if not (isinstance(entry, dict) and isinstance(entry.get("split"), str) and _is_int(entry.get("scenes")) and entry["scenes"] >= 1
            and _is_int(entry.get("bytes")) and entry["bytes"] >= 0
            and isinstance(entry.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
        raise StoreError(f"{path}: 'shards': {name}: expected {{split: str, scenes: int >= 1, bytes: int >= 0, sha256: 64 hex digits}}, "
                         f"got {_short(entry)}")


class Store:
    """A rendered focal-stack store (module docstring). Open with `open_store(path)`."""

    def __init__(self, path: str, verify: bool = True) -> None:
        check_local_path(path)
        self.path = os.path.abspath(path)
        manifest = read_manifest(self.path)
        if manifest is None:
            raise StoreError(f"{self.path}: no {MANIFEST}; not a focal-stack store")
        manifest_path = os.path.join(self.path, MANIFEST)
        version = manifest.get("format_version")
        if not _is_int(version) or version != FORMAT_VERSION:
            raise StoreError(f"{manifest_path}: 'format_version': {_short(version)}, expected {FORMAT_VERSION}")
        if manifest.get("status") != "complete":
            raise StoreError(f"{self.path}: store is incomplete (status {_short(manifest.get('status'))}); rerun the render command")
        check_manifest(manifest_path, manifest)
        self.manifest = manifest
        self.manifest_hash = json_hash(manifest)
        self.verify = verify
        self.camera = ThinLensCamera.from_dict(manifest["camera"])
        self.focus_distances = np.asarray(manifest["focus_distances"], dtype=np.float32)
        self.num_bins = int(manifest["num_bins"])
        self.bins = [np.arange(start, stop) for start, stop in manifest["bins"]]
        self.image_size = tuple(manifest["image_size"])
        self.kernel_size = manifest["kernel_size"]  # the renderer's window K; None: no window (the ladder renderer)
        self.max_sigma = manifest.get("max_sigma")  # px; None: not recorded (captured stacks, older stores)
        self.psf = manifest.get("psf", "gaussian")  # the rendered stacks' PSF (daif.optics.psf.PSF_MODELS)
        order = {"train": 0, "val": 1, "test": 2}
        self.splits = sorted(manifest["splits"], key=lambda split: (order.get(split, 3), split))
        self._verified: set[str] = set()
        for name in manifest["shards"]:  # every shard's file and structure, cheaply (no hash, no pixels)
            self.open_shard(name, verify=False).close()

    @property
    def captured(self) -> bool:
        """Whether the stacks are photographs stored as given (not rendered from AIF and depth)."""
        return self.manifest.get("stacks") == "captured"

    def scenes_without_aif(self, split: str) -> list[str]:
        """The scene ids of `split` that have no ground-truth AIF (their `aif` is all zeros)."""
        missing = []
        for name in self.shard_names(split):
            with self.open_shard(name) as file:
                if "has_aif" in file:
                    ids = file["scene_id"].asstr()[()]
                    missing += [str(i) for i, has in zip(ids, file["has_aif"][()]) if not has]
        return missing

    def alignments(self, split: str) -> dict[str, dict[str, Any]]:
        """{scene id: its alignment record} of `split` (module docstring); empty for stores without them."""
        records: dict[str, dict[str, Any]] = {}
        for name in self.shard_names(split):
            with self.open_shard(name) as file:
                if "alignment" in file:
                    ids = file["scene_id"].asstr()[()]
                    records.update({str(i): json.loads(text) for i, text in zip(ids, file["alignment"].asstr()[()])})
        return records

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.num_scenes(s)}" for s in self.splits)
        return f"Store({self.path!r}, {counts}, F={len(self.focus_distances)}, size={self.image_size})"

    def _check_split(self, split: str) -> str:
        if split not in self.manifest["splits"]:
            raise ValueError(f"split: {self.path} holds {self.splits}, not {split!r}")
        return split

    def shard_names(self, split: str) -> list[str]:
        return list(self.manifest["splits"][self._check_split(split)])

    def num_scenes(self, split: str) -> int:
        return sum(self.manifest["shards"][name]["scenes"] for name in self.shard_names(split))

    def open_shard(self, name: str, verify: bool | None = None) -> h5py.File:
        """Open one shard read-only after checking its file, its hash (once per Store, when `verify`, by default
        the Store's), its datasets and its attributes (module docstring)."""
        path = os.path.join(self.path, name)
        entry = self.manifest["shards"].get(name)
        if entry is None:
            raise StoreError(f"{path}: not listed in the manifest")
        self._check_shard_file(path, entry)
        if (self.verify if verify is None else verify) and name not in self._verified:
            digest = file_sha256(path)
            if digest != entry["sha256"]:
                raise StoreError(f"{path}: SHA-256 {digest[:12]}... does not match the manifest's {entry['sha256'][:12]}...")
            self._verified.add(name)
        try:
            file = h5py.File(path, "r")
        except OSError as error:  # truncated or not HDF5 (a store read with verify=False, or a hash made after the damage)
            raise StoreError(f"{path}: not a readable HDF5 shard ({' '.join(str(error).split())})") from None
        try:
            self._check_shard(path, file, entry["scenes"])
        except Exception:
            file.close()
            raise
        return file

    def _check_shard_file(self, path: str, entry: dict[str, Any]) -> None:
        """A regular file inside the store folder, of the size the manifest lists (a cut shard fails here)."""
        if not os.path.lexists(path):
            raise StoreError(f"{path}: shard missing")
        real, folder = os.path.realpath(path), os.path.realpath(self.path)
        if os.path.commonpath([real, folder]) != folder:
            raise StoreError(f"{path}: links to {real}, outside the store folder; a store's shards lie inside it")
        if not os.path.isfile(path):
            raise StoreError(f"{path}: not a file (a shard is an HDF5 file)")
        size = os.path.getsize(path)
        if size != entry["bytes"]:
            raise StoreError(f"{path}: {size:,} bytes, the manifest lists {entry['bytes']:,}: the shard was cut or replaced; "
                             "render the store again")

    def _check_shard(self, path: str, file: h5py.File, num_scenes: int) -> None:
        height, width = self.image_size
        count = len(self.focus_distances)
        expected = {
            "scene_id": ((num_scenes,), None), "aif": ((num_scenes, height, width, 3), np.uint8),
            "depth": ((num_scenes, height, width), np.float32), "valid": ((num_scenes, height, width), np.bool_),
            "stack": ((num_scenes, count, height, width, 3), np.uint8), "focus_distances": ((count,), None),
        }
        if "has_aif" in file:
            expected["has_aif"] = ((num_scenes,), np.bool_)
        if "alignment" in file:
            expected["alignment"] = ((num_scenes,), None)
        for key, (shape, dtype) in expected.items():
            dataset = file.get(key)
            if not isinstance(dataset, h5py.Dataset):
                raise StoreError(f"{path}: no dataset '{key}'; not a shard of this store")
            if dataset.shape != shape or (dtype is not None and dataset.dtype != dtype):
                wanted = f"{np.dtype(dtype)} {shape}" if dtype is not None else f"shape {shape}"
                raise StoreError(f"{path}: dataset '{key}' is {dataset.dtype} {dataset.shape}, expected {wanted} (manifest.json)")
        for key in ("camera", "kernel_size"):
            if key not in file.attrs:
                raise StoreError(f"{path}: no attribute '{key}'; not a shard of this store")
        try:
            camera = ThinLensCamera.from_dict(json.loads(file.attrs["camera"]))
            kernel_size = int(file.attrs["kernel_size"]) or None
        except (TypeError, ValueError) as error:
            raise StoreError(f"{path}: attribute 'camera' or 'kernel_size' unreadable ({error})") from None
        if camera != self.camera:
            raise StoreError(f"{path}: shard camera {camera} disagrees with the manifest's {self.camera}")
        focus = file["focus_distances"][()]
        if focus.shape != self.focus_distances.shape or not np.array_equal(focus, self.focus_distances):
            raise StoreError(f"{path}: shard focus distances disagree with the manifest's")
        if kernel_size != self.kernel_size:
            raise StoreError(f"{path}: shard kernel_size {kernel_size} disagrees with the manifest's {self.kernel_size}")

    def iter_scenes(self, split: str, columns: Sequence[str] = COLUMNS) -> Iterator[dict[str, Any]]:
        """Yield one dict per scene: scene_id, aif (H, W, 3) uint8, depth (H, W) float32 metres,
        valid (H, W) bool, stack (F, H, W, 3) uint8, has_aif bool (restricted to `columns`)."""
        for name in self.shard_names(split):
            with self.open_shard(name) as file:
                for index in range(file["scene_id"].shape[0]):
                    yield read_scene(file, index, columns)


def read_scene(file: h5py.File, index: int, columns: Sequence[str] = COLUMNS) -> dict[str, Any]:
    scene: dict[str, Any] = {}
    for column in columns:
        if column == "scene_id":
            scene["scene_id"] = file["scene_id"].asstr()[index]
        elif column in ("aif", "depth", "valid", "stack"):
            scene[column] = file[column][index]
        elif column == "has_aif":  # shards written before the column held a true AIF for every scene
            scene["has_aif"] = bool(file["has_aif"][index]) if "has_aif" in file else True
        else:
            raise ValueError(f"columns: unknown column {column!r}, expected some of {list(COLUMNS)}")
    return scene


def check_local_path(path: str) -> None:
    """Stores are HDF5 files on a file system: a URI is refused with what to do instead."""
    if "://" in str(path):
        raise StoreError(f"{path}: a store lives on a file system path (on a cluster, a volume every node mounts); "
                         "URIs such as s3:// are not read or written: mount the bucket or copy the store")


def open_store(path: str, verify: bool = True) -> Store:
    """Open a complete store for reading; `verify` checks each shard's SHA-256 on first use."""
    return Store(path, verify=verify)
