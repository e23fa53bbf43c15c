"""Opening a store checks manifest.json against its schema and every shard's file and structure, before any pixel
is read: a hand-edited or damaged store fails in one line naming manifest.json and the field, or the shard."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import daif.cli
from daif.data import store
from daif.data.store import StoreError, open_store
from daif.optics import ThinLensCamera

CAMERA = ThinLensCamera.preset("nyuv2-5")
FOCUS = [1.0, 1.5, 2.5, 4.0, 6.0]
SIZE = (8, 12)  # (H, W)


def _scene(seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    aif = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    scene = {"scene_id": f"scene-{seed}", "aif": aif, "depth": np.full(SIZE, 2.0, np.float32), "valid": np.ones(SIZE, bool)}
    return scene, np.repeat(aif[None], len(FOCUS), axis=0)


def _write_store(root: Path) -> Path:
    """A complete store as `daif render` lays it out: a train and a val shard of 2 scenes each."""
    root.mkdir()
    shards = {}
    for index, split in enumerate(("train", "val")):
        name = store.shard_name(index)
        attrs = store.shard_attrs(CAMERA, 7, "synthetic", split, "hash")
        with store.ShardWriter(str(root / name), 2, SIZE, FOCUS, attrs) as writer:
            for seed in (2 * index, 2 * index + 1):
                writer.add(*_scene(seed))
            info = writer.close()
        shards[name] = {"split": split, "scenes": 2, "bytes": info["bytes"], "sha256": info["sha256"], "seconds": 0.1}
    manifest = {
        "format_version": store.FORMAT_VERSION, "status": "complete", "camera": CAMERA.to_dict(), "focus_distances": FOCUS,
        "num_bins": 5, "bins": [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], "image_size": list(SIZE), "kernel_size": 7,
        "source": "synthetic", "stacks": "rendered", "compression": "none", "config": {}, "config_hash": "hash",
        "splits": {"train": ["shard-00000.h5"], "val": ["shard-00001.h5"]}, "shards": shards,
    }
    store.write_json_atomic(str(root / store.MANIFEST), manifest)
    return root


@pytest.fixture
def store_path(tmp_path) -> Path:
    return _write_store(tmp_path / "store")


def _manifest(root: Path) -> dict:
    return json.loads((root / store.MANIFEST).read_text())


def _save(root: Path, manifest: dict) -> None:
    (root / store.MANIFEST).write_text(json.dumps(manifest))


def test_a_well_formed_store_opens_and_reads_its_scenes(store_path):
    opened = open_store(str(store_path))
    assert opened.splits == ["train", "val"] and opened.image_size == SIZE and opened.camera == CAMERA
    scenes = list(opened.iter_scenes("val"))
    assert [s["scene_id"] for s in scenes] == ["scene-2", "scene-3"]
    np.testing.assert_array_equal(scenes[1]["aif"], _scene(3)[0]["aif"])


def test_has_aif_is_read_per_scene_and_a_shard_without_the_column_had_a_true_aif(tmp_path):
    attrs = store.shard_attrs(CAMERA, 7, "synthetic", "train", "hash")
    with store.ShardWriter(str(tmp_path / "new.h5"), 2, SIZE, FOCUS, attrs) as writer:
        scene, stack = _scene(0)
        writer.add({**scene, "has_aif": False}, stack)
        writer.add(*_scene(1))
        writer.close()
    with h5py.File(tmp_path / "new.h5", "r") as file:
        assert [store.read_scene(file, i, ("has_aif",))["has_aif"] for i in (0, 1)] == [False, True]
    shutil.copy(tmp_path / "new.h5", tmp_path / "old.h5")
    with h5py.File(tmp_path / "old.h5", "a") as file:  # as shards were written before the column
        del file["has_aif"]
    with h5py.File(tmp_path / "old.h5", "r") as file:
        assert store.read_scene(file, 0, ("has_aif",)) == {"has_aif": True}


def _edit(key, value):
    return lambda manifest: {**manifest, key: value}


def _drop(key):
    return lambda manifest: {k: v for k, v in manifest.items() if k != key}


def _rename_shard(new_name):
    def edit(manifest):
        shards = {new_name if k == "shard-00000.h5" else k: v for k, v in manifest["shards"].items()}
        return {**manifest, "shards": shards, "splits": {**manifest["splits"], "train": [new_name]}}
    return edit


MANIFEST_CASES = {
    "list": (lambda m: [1, 2], "expected a JSON object, got a list"),
    "no-camera": (_drop("camera"), "missing 'camera' (an object {focal_length, f_number, pixel_size})"),
    "num-bins-text": (_edit("num_bins", "abc"),
                      "'num_bins': expected an integer in [1, 5] (at most one bin per focus distance), got 'abc'"),
    "num-bins-over-F": (_edit("num_bins", 6), "'num_bins': expected an integer in [1, 5] (at most one bin per focus distance), got 6"),
    "version-text": (_edit("format_version", "1"), "'format_version': '1', expected 1"),
    "implausible-camera": (_edit("camera", {"focal_length": 0.05, "f_number": 1e-300, "pixel_size": 12e-6}),
                           "'camera': ThinLensCamera.f_number: expected a plausible value in [0.5, 1000], got 1e-300"),
    "camera-list": (_edit("camera", [0.05, 8, 1e-5]), "'camera': expected an object {focal_length, f_number, pixel_size}, got [0.05, 8, 1e-05]"),
    "focus-nan": (_edit("focus_distances", [float("nan"), 1.5, 2.5, 4.0, 6.0]), "'focus_distances': nan must be finite"),
    "focus-huge": (_edit("focus_distances", [1.0, 1.5, 2.5, 4.0, 1e301]),
                   "'focus_distances': 1e+301 m must be at most 10000 m (daif.optics.MAX_FOCUS_DISTANCE)"),
    "focus-at-f": (_edit("focus_distances", [0.05, 1.5, 2.5, 4.0, 6.0]), "'focus_distances': 0.05 m must be above the focal length 0.05 m"),
    "focus-unsorted": (_edit("focus_distances", [1.5, 1.0, 2.5, 4.0, 6.0]),
                       "'focus_distances': expected ascending metres, got [1.5, 1.0, 2.5, 4.0, 6.0]"),
    "bins-gap": (_edit("bins", [[0, 1], [2, 3], [3, 4], [4, 5], [5, 5]]),
                 "'bins': expected 5 consecutive [start, stop) ranges covering 0..5, got [[0, 1], [2, 3], [3, 4], [4, 5], [5, 5]]"),
    "image-1x1": (_edit("image_size", [1, 1]),
                  "'image_size': expected [height, width] of at least 8 and at most 40,000,000 pixels, got [1, 1]"),
    "kernel-even": (_edit("kernel_size", 8), "'kernel_size': expected an odd integer in [3, 23] or null (daif._checks.check_kernel_size), got 8"),
    "max-sigma-negative": (_edit("max_sigma", -3.0), "'max_sigma': expected a positive number of pixels or null, got -3.0"),
    "max-sigma-text": (_edit("max_sigma", "big"), "'max_sigma': expected a positive number of pixels or null, got 'big'"),
    "psf": (_edit("psf", "square"), "'psf': expected one of ['gaussian', 'disc', 'layered'], got 'square'"),
    "stacks": (_edit("stacks", "painted"), "'stacks': expected one of ['rendered', 'captured'], got 'painted'"),
    "shard-dotdot": (_rename_shard("../outside/shard-00000.h5"),
                     "'shards': '../outside/shard-00000.h5' is not a plain shard file name inside the store (expected e.g. shard-00000.h5)"),
    "shard-absolute": (_rename_shard("/tmp/shard-00000.h5"),
                       "'shards': '/tmp/shard-00000.h5' is not a plain shard file name inside the store (expected e.g. shard-00000.h5)"),
    "shard-entry": (lambda m: {**m, "shards": {**m["shards"], "shard-00001.h5": {**m["shards"]["shard-00001.h5"], "scenes": "2"}}},
                    "'shards': shard-00001.h5: expected {split: str, scenes: int >= 1, bytes: int >= 0, sha256: 64 hex digits}, got "),
    "split-unknown-shard": (lambda m: {**m, "splits": {**m["splits"], "test": ["shard-00009.h5"]}},
                            "'splits': shard 'shard-00009.h5' of split 'test' is not in 'shards'"),
    "shard-in-no-split": (lambda m: {**m, "splits": {"train": ["shard-00000.h5"]}}, "'shards': ['shard-00001.h5'] in no split"),
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_a_hand_edited_manifest_is_one_line_naming_the_file_and_field(store_path, case):
    edit, expected = MANIFEST_CASES[case]
    _save(store_path, edit(_manifest(store_path)))
    with pytest.raises(StoreError) as raised:
        open_store(str(store_path))
    message = str(raised.value)
    assert message.startswith(f"{store_path / 'manifest.json'}: {expected}") and "\n" not in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [(json.dumps({"source": "é"}).encode().replace(b"\\u00e9", "é".encode("latin-1")), "not UTF-8 text ('utf-8' codec can't decode byte 0xe9"),
     (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
     (b"{'status': ", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")],
    ids=["not-utf8", "nested-100000-deep", "not-json"],
)
def test_an_unreadable_manifest_is_one_line_naming_the_file(store_path, content, expected):
    (store_path / store.MANIFEST).write_bytes(content)
    with pytest.raises(StoreError) as raised:
        open_store(str(store_path))
    assert str(raised.value).startswith(f"{store_path / 'manifest.json'}: {expected}")


def test_a_manifest_over_the_size_bound_is_refused_before_it_is_parsed(store_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_MANIFEST_BYTES", 100)
    size = (store_path / store.MANIFEST).stat().st_size
    with pytest.raises(StoreError, match=rf"manifest.json: {size:,} bytes; a manifest holds at most 100$"):
        open_store(str(store_path))


def test_a_shard_linked_from_outside_the_store_is_not_read(store_path, tmp_path):
    outside = tmp_path / "elsewhere.h5"
    shutil.move(store_path / "shard-00000.h5", outside)
    (store_path / "shard-00000.h5").symlink_to(outside)
    with pytest.raises(StoreError) as raised:
        open_store(str(store_path))
    assert str(raised.value) == (f"{store_path / 'shard-00000.h5'}: links to {outside}, outside the store folder; "
                                 "a store's shards lie inside it")


def test_a_shard_replaced_by_a_directory_is_one_line(store_path):
    (store_path / "shard-00001.h5").unlink()
    (store_path / "shard-00001.h5").mkdir()
    with pytest.raises(StoreError) as raised:
        open_store(str(store_path))
    assert str(raised.value) == f"{store_path / 'shard-00001.h5'}: not a file (a shard is an HDF5 file)"


def _cut(path: Path) -> int:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return len(data)


def test_a_cut_shard_is_refused_when_the_store_opens(store_path):
    size = _cut(store_path / "shard-00001.h5")
    with pytest.raises(StoreError) as raised:
        open_store(str(store_path), verify=False)
    assert str(raised.value) == (f"{store_path / 'shard-00001.h5'}: {size // 2:,} bytes, the manifest lists {size:,}: "
                                 "the shard was cut or replaced; render the store again")


def test_a_cut_shard_whose_manifest_entry_was_remade_is_not_readable_hdf5(store_path):
    path = store_path / "shard-00001.h5"
    _cut(path)
    manifest = _manifest(store_path)
    manifest["shards"]["shard-00001.h5"].update(bytes=path.stat().st_size, sha256=store.file_sha256(str(path)))
    _save(store_path, manifest)
    with pytest.raises(StoreError, match=r"shard-00001.h5: not a readable HDF5 shard \(.*truncated file.*\)$") as raised:
        open_store(str(store_path))
    assert "\n" not in str(raised.value)


def _rewrite_shard(root: Path, name: str, change) -> None:
    """Apply `change(h5py.File)` to a shard and record its new size and hash in the manifest."""
    path = root / name
    with h5py.File(path, "r+") as file:
        change(file)
    manifest = _manifest(root)
    manifest["shards"][name].update(bytes=path.stat().st_size, sha256=store.file_sha256(str(path)))
    _save(root, manifest)


@pytest.mark.parametrize(
    ("change", "expected"),
    [(lambda file: file.__delitem__("stack"), "no dataset 'stack'; not a shard of this store"),
     (lambda file: (file.__delitem__("depth"), file.create_dataset("depth", data=np.zeros((2, 8, 11), np.float32))),
      "dataset 'depth' is float32 (2, 8, 11), expected float32 (2, 8, 12) (manifest.json)"),
     (lambda file: file.attrs.__delitem__("camera"), "no attribute 'camera'; not a shard of this store")],
    ids=["missing-dataset", "wrong-shape", "missing-attribute"],
)
def test_a_shard_without_the_datasets_the_manifest_promises_is_one_line(store_path, change, expected):
    _rewrite_shard(store_path, "shard-00000.h5", change)
    with pytest.raises(StoreError) as raised:
        open_store(str(store_path))
    assert str(raised.value).startswith(f"{store_path / 'shard-00000.h5'}: {expected}")


def test_train_on_a_cut_shard_is_one_line_before_ray(store_path, tmp_path, capsys, monkeypatch):
    import ray

    starts: list = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: starts.append(a))
    size = _cut(store_path / "shard-00000.h5")
    argv = ["train", "--data", str(store_path), "--preset", "quickstart", "--set", "train.epochs=1",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage", str(tmp_path / "runs")]
    assert daif.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines() == [
        f"daif train: error: data.path: {store_path / 'shard-00000.h5'}: {size // 2:,} bytes, the manifest lists {size:,}: "
        "the shard was cut or replaced; render the store again"
    ]
    assert starts == [] and not os.path.exists(tmp_path / "runs")
