"""The thin-lens camera of a photograph from its EXIF tags (Pillow), for `daif predict` and captured stacks.

Tags, read from the Exif sub-IFD (0x8769, where cameras write them) or else IFD0:
    FocalLength (0x920A)            mm  -> focal length f
    FNumber (0x829D)                    -> f-number N
    FocalLengthIn35mmFilm (0xA405)  mm  -> pixel pitch p, through the sensor's size:
        crop factor        k = FocalLengthIn35mmFilm / FocalLength
        sensor diagonal    D = 43.27 mm / k      (the 36 x 24 mm frame's diagonal: a 35 mm equivalent gives the
                                                  same angle of view across the diagonal, whatever the aspect)
        pixel pitch        p = D / sqrt(W^2 + H^2), W x H the image's pixels as stored
For a 3:2 image this is the width rule p = (36 mm / k) / W; for a 4:3 phone image it gives 4 % less.
It assumes that the image spans the sensor's full diagonal and that pixels are square: an image cropped
after capture (or a digital zoom the camera did not fold into its 35 mm equivalent) gets a wrong pitch, so
give `--camera f,N,p` for those. The pitch is that of the file; a resize by a factor r makes it r p.
"""

from __future__ import annotations

import math
import os
from typing import Any

from daif.optics import ThinLensCamera

EXIF_IFD = 0x8769
TAGS = {"FocalLength": 0x920A, "FNumber": 0x829D, "FocalLengthIn35mmFilm": 0xA405}
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm


def read_camera_tags(path: str | os.PathLike) -> dict[str, float]:
    """{tag name: value} of the TAGS an image's header holds, each a finite positive number (others left out);
    plus "width" and "height" in pixels. Raises `daif.data.sources.DataError` naming the file if it is no image."""
    from daif.data.sources import open_image

    with open_image(path) as image:
        exif = image.getexif()
        width, height = image.size
        sub = exif.get_ifd(EXIF_IFD) if exif else {}
    values: dict[str, float] = {"width": float(width), "height": float(height)}
    for name, tag in TAGS.items():
        raw = sub.get(tag, exif.get(tag) if exif else None)
        value = _number(raw)
        if value is not None:
            values[name] = value
    return values


def _number(raw: Any) -> float | None:
    """A rational, integer or (numerator, denominator) pair as a finite positive float; None otherwise."""
    if isinstance(raw, tuple) and len(raw) == 2:
        raw = raw[0] / raw[1] if raw[1] else None
    try:
        value = float(raw)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def has_camera_tags(tags: dict[str, float]) -> bool:
    return any(name in tags for name in TAGS)


def camera_from_tags(tags: dict[str, float]) -> ThinLensCamera:
    """The camera of `read_camera_tags`' values (module docstring). ValueError naming the tags missing, or the
    implausible value."""
    missing = [name for name in TAGS if name not in tags]
    if missing:
        present = [name for name in TAGS if name in tags]
        raise ValueError(f"EXIF has {', '.join(present) or 'none of the camera tags'} but no {', '.join(missing)} "
                         f"(f, N and the pixel pitch need {', '.join(TAGS)})")
    crop = tags["FocalLengthIn35mmFilm"] / tags["FocalLength"]
    sensor_diagonal = FULL_FRAME_DIAGONAL_MM / crop
    pitch_mm = sensor_diagonal / math.hypot(tags["width"], tags["height"])
    return ThinLensCamera(tags["FocalLength"] * 1e-3, tags["FNumber"], pitch_mm * 1e-3)


def describe(tags: dict[str, float]) -> str:
    """The tags a camera came from, in one phrase."""
    return (f"FocalLength {tags['FocalLength']:g} mm, FNumber {tags['FNumber']:g}, FocalLengthIn35mmFilm "
            f"{tags['FocalLengthIn35mmFilm']:g} mm at {int(tags['width'])}x{int(tags['height'])} px")
