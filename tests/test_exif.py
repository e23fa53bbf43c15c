"""The camera from EXIF (daif.exif) and how `daif predict` chooses its camera: --camera, else the images' EXIF,
else (no camera tags at all) the model's; partial tags are an error naming the tags missing. EXIF is written
with Pillow and the camera expected is computed here by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin
from tests.test_predict import write_checkpoint

from daif.exif import camera_from_tags, read_camera_tags
from daif.model import DAIFNet
from daif.optics import ThinLensCamera

SIZE = (60, 80)  # (H, W): under daif.align.MIN_ALIGN_SIDE, so predict does not align these
FOCUS = [0.35, 0.8, 2.2]

# A phone: f = 4.2 mm, f/1.8, 26 mm equivalent. Crop factor 26 / 4.2 = 6.19, sensor diagonal 43.267 / 6.19 = 6.99 mm,
# over hypot(80, 60) = 100 px: 69.9 um per pixel of these small files.
PHONE = ThinLensCamera(4.2e-3, 1.8, math.hypot(36, 24) / (26 / 4.2) / 100 * 1e-3)


def write_jpeg(path: Path, seed: int, tags: dict[int, object]) -> Path:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)  # the Exif sub-IFD, where cameras write the lens tags
    sub.update(tags)
    pixels = np.random.default_rng(seed).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    return path


PHONE_TAGS = {0x920A: TiffImagePlugin.IFDRational(42, 10), 0x829D: TiffImagePlugin.IFDRational(18, 10), 0xA405: 26}


@pytest.fixture
def checkpoint(tmp_path):
    return write_checkpoint(tmp_path / "ckpt", DAIFNet(width=4, levels=2).eval())  # camera nyuv2-5: 50 mm, f/8, 12 um


def test_the_tags_written_are_read_back_as_the_camera_computed_by_hand(tmp_path):
    tags = read_camera_tags(write_jpeg(tmp_path / "a.jpg", 0, PHONE_TAGS))
    assert tags == {"width": 80.0, "height": 60.0, "FocalLength": 4.2, "FNumber": 1.8, "FocalLengthIn35mmFilm": 26.0}
    camera = camera_from_tags(tags)
    assert camera.focal_length == pytest.approx(PHONE.focal_length, rel=1e-12) and camera.f_number == pytest.approx(1.8, rel=1e-12)
    assert camera.pixel_size == pytest.approx(PHONE.pixel_size, rel=1e-12)
    # a 3:2 image of a full-frame camera (crop factor 1): the width rule, 36 mm over the width
    assert camera_from_tags({"width": 6000, "height": 4000, "FocalLength": 50, "FNumber": 8, "FocalLengthIn35mmFilm": 50}
                            ).pixel_size == pytest.approx(36e-3 / 6000, rel=1e-12)


def test_missing_tags_are_named():
    with pytest.raises(ValueError, match=r"^EXIF has FocalLength, FNumber but no FocalLengthIn35mmFilm \(f, N and the pixel pitch need"):
        camera_from_tags({"width": 80, "height": 60, "FocalLength": 4.2, "FNumber": 1.8})


def test_predict_takes_the_camera_from_exif_and_scales_its_pitch_with_the_resize(tmp_path, checkpoint, capsys):
    from daif.cli import main

    images = [str(write_jpeg(tmp_path / f"{k}.jpg", k, PHONE_TAGS)) for k in range(3)]
    argv = ["predict", "--model", str(checkpoint), "--images", *images, "--focus-distances", *map(str, FOCUS), "--max-size", "40"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert summary["camera_of_files"] == pytest.approx(PHONE.to_dict(), rel=1e-12)
    assert summary["camera"]["pixel_size"] == pytest.approx(2 * PHONE.pixel_size, rel=1e-12)  # 80x60 -> 40x30
    assert summary["resized_to"] == [30, 40] and np.load(tmp_path / "out" / "depth.npy").shape == (30, 40)
    assert "camera: f=4.2 mm, N=1.8, p=69.89 um per pixel of the files; from EXIF of 0.jpg: FocalLength 4.2 mm" in printed
    assert "resize: 80x60 -> 40x30 px (long side at most 40; factor 2; pixel pitch 69.89 -> 139.8 um)" in printed

    assert main([*argv, "--camera", "0.006,2.4,2e-6", "--out", str(tmp_path / "given")]) == 0  # --camera wins
    given = json.loads((tmp_path / "given" / "prediction.json").read_text())
    assert given["camera_of_files"] == {"focal_length": 0.006, "f_number": 2.4, "pixel_size": 2e-6}
    assert given["camera"]["pixel_size"] == pytest.approx(4e-6) and given["camera_source"] == "--camera"


def test_partial_exif_is_one_line_naming_the_file_and_tags(tmp_path, checkpoint, capsys):
    from daif.cli import main

    partial = {0x920A: TiffImagePlugin.IFDRational(42, 10), 0x829D: TiffImagePlugin.IFDRational(18, 10)}
    images = [str(write_jpeg(tmp_path / f"{k}.jpg", k, partial)) for k in range(3)]
    code = main(["predict", "--model", str(checkpoint), "--images", *images, "--focus-distances", *map(str, FOCUS),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert err == (f"daif predict: error: camera: {images[0]}: EXIF has FocalLength, FNumber but no FocalLengthIn35mmFilm "
                   "(f, N and the pixel pitch need FocalLength, FNumber, FocalLengthIn35mmFilm); give --camera f,N,p (metres) instead\n")


def test_images_without_camera_tags_take_the_models_camera_and_say_so(tmp_path, checkpoint, capsys):
    from daif.cli import main

    images = [str(write_jpeg(tmp_path / f"{k}.jpg", k, {})) for k in range(3)]
    assert main(["predict", "--model", str(checkpoint), "--images", *images, "--focus-distances", *map(str, FOCUS),
                 "--out", str(tmp_path / "out")]) == 0
    assert ("camera: f=50 mm, N=8, p=12 um per pixel of the files; from the model's (no EXIF camera tags (FocalLength, FNumber, "
            "FocalLengthIn35mmFilm) in 0.jpg or the other images; assumed to describe the images as given)") in capsys.readouterr().out


def test_images_that_disagree_are_refused(tmp_path, checkpoint):
    from daif.predict import PredictionInputError, predict

    other = {**PHONE_TAGS, 0xA405: 28}
    images = [write_jpeg(tmp_path / "0.jpg", 0, PHONE_TAGS), write_jpeg(tmp_path / "1.jpg", 1, other)]
    with pytest.raises(PredictionInputError, match=r"^camera: .*1\.jpg: EXIF camera .* differs from .* of 0\.jpg"):
        predict(str(checkpoint), images, FOCUS[:2], out=tmp_path / "out")
    images[1] = write_jpeg(tmp_path / "1.jpg", 1, {})
    with pytest.raises(PredictionInputError, match=r"^camera: .*1\.jpg has no EXIF camera tags but 0\.jpg has"):
        predict(str(checkpoint), images, FOCUS[:2], out=tmp_path / "out")
