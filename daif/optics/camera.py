"""Thin-lens camera description and the paper's presets (method.md, "Camera presets").

Plausible values, each a range: a camera is checked wherever one is made (`ThinLensCamera`), a focus distance
where data brings one in (`check_focus_distance`: `daif render` options, stack.json, a store's manifest):
    focal_length f   [1e-4, 10] m     0.1 mm (below any phone's lens) to 10 m (twice the longest camera lens made)
    f_number N       [0.5, 1000]      N = 1 / (2 NA) >= 0.5 for any lens in air (NA <= 1); a pinhole is about f/500
    pixel_size p     [1e-7, 1e-3] m   0.1 um (below the wavelength of light) to 1 mm
    focus distance s (f, 1e4] m       the thin lens images nothing at s <= f; 10 km is far beyond any scene
                                      whose defocus a focal stack resolves (and well inside float32)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

CAMERA_RANGES: dict[str, tuple[float, float]] = {  # field -> (lowest, highest), module docstring
    "focal_length": (1e-4, 10.0),
    "f_number": (0.5, 1000.0),
    "pixel_size": (1e-7, 1e-3),
}
MAX_FOCUS_DISTANCE = 1e4  # metres, module docstring


@dataclasses.dataclass(frozen=True)
class ThinLensCamera:
    """A thin-lens camera. All lengths in metres.

    focal_length: f [m]; f_number: N (aperture diameter A = f / N); pixel_size: sensor pixel pitch p [m].
    Each must lie in its CAMERA_RANGES range (module docstring): TypeError or ValueError naming the field.
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
            low, high = CAMERA_RANGES[field.name]
            if not low <= value <= high:
                unit = "" if field.name == "f_number" else " m"
                raise ValueError(f"ThinLensCamera.{field.name}: expected a plausible value in [{low:g}, {high:g}]{unit}, got {value!r}")
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
        if not isinstance(values, dict):
            raise ValueError(f"camera: expected an object with keys {sorted(names)}, got {values!r}")
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
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"camera: could not parse {text!r} as 'f,N,p' in metres (e.g. 0.05,8,12e-6)") from None
        return cls(*values)  # ValueError naming the implausible field


def check_focus_distance(value: Any, focal_length: float = 0.0) -> float:
    """One focus distance s [m] as a float: finite, above `focal_length` [m] (0: positive) and at most
    MAX_FOCUS_DISTANCE (module docstring). Raises ValueError saying which ("nan must be finite"); the caller
    prefixes the file or flag."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"expected a number of metres, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} must be finite")
    if value <= focal_length:
        limit = f"above the focal length {focal_length:g} m" if focal_length > 0 else "positive"
        raise ValueError(f"{value:g} m must be {limit}")
    if value > MAX_FOCUS_DISTANCE:
        raise ValueError(f"{value:g} m must be at most {MAX_FOCUS_DISTANCE:g} m (daif.optics.MAX_FOCUS_DISTANCE)")
    return value


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
