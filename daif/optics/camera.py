"""Thin-lens camera description and the paper's presets (method.md, "Camera presets")."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class ThinLensCamera:
    """A thin-lens camera. All lengths in metres.

    focal_length: f [m]; f_number: N (aperture diameter A = f / N); pixel_size: sensor pixel pitch p [m].
    """

    focal_length: float
    f_number: float
    pixel_size: float

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"ThinLensCamera.{field.name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"ThinLensCamera.{field.name}: expected a positive finite number, got {value!r}")
            object.__setattr__(self, field.name, float(value))

    @property
    def aperture(self) -> float:
        """Aperture diameter A = f / N [m]."""
        return self.focal_length / self.f_number

    @classmethod
    def preset(cls, name: str) -> "ThinLensCamera":
        """The camera of one of the paper's settings: "nyuv2-5", "nyuv2-dense" or "defocusnet"."""
        return get_preset(name).camera

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ThinLensCamera":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        missing = names - set(values)
        if unknown or missing:
            raise ValueError(
                f"camera: expected keys {sorted(names)}, got unknown {sorted(unknown)} and missing {sorted(missing)}"
            )
        return cls(**{name: values[name] for name in names})

    @classmethod
    def parse(cls, text: str) -> "ThinLensCamera":
        """A preset name, or "f,N,p" in metres (e.g. "0.05,8,12e-6")."""
        if text in CAMERA_PRESETS:
            return cls.preset(text)
        parts = text.split(",")
        if len(parts) != 3:
            raise ValueError(f"camera: expected a preset name {sorted(CAMERA_PRESETS)} or 'f,N,p' in metres, got {text!r}")
        try:
            return cls(*(float(p) for p in parts))
        except ValueError as error:
            raise ValueError(f"camera: could not parse {text!r} as 'f,N,p': {error}") from None


@dataclasses.dataclass(frozen=True)
class CameraPreset:
    """One of the paper's rendering settings: camera, focus distances [m], depth range [m], image size."""

    name: str
    camera: ThinLensCamera
    focus_distances: tuple[float, ...]
    depth_range: tuple[float, float]
    image_size: tuple[int, int]  # (height, width)


CAMERA_PRESETS: dict[str, CameraPreset] = {
    preset.name: preset
    for preset in (
        CameraPreset(
            "nyuv2-5",
            ThinLensCamera(focal_length=50e-3, f_number=8.0, pixel_size=12e-6),
            (1.0, 1.5, 2.5, 4.0, 6.0),
            (0.1, 10.0),
            (240, 320),
        ),
        CameraPreset(
            "nyuv2-dense",
            ThinLensCamera(focal_length=17e-3, f_number=1.2, pixel_size=12e-6),
            tuple(float(x) for x in np.linspace(1.0, 9.0, 100)),
            (0.1, 10.0),
            (240, 320),
        ),
        CameraPreset(
            "defocusnet",
            ThinLensCamera(focal_length=7.2e-3, f_number=1.2, pixel_size=5.6e-6),
            (0.3, 0.45, 0.75, 1.2, 1.8),
            (0.1, 3.0),
            (256, 256),
        ),
    )
}


def get_preset(name: str) -> CameraPreset:
    try:
        return CAMERA_PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: expected one of {sorted(CAMERA_PRESETS)}, got {name!r}") from None
