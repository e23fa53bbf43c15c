"""Differentiable optics: thin-lens defocus and the Gaussian PSF renderer (method.md)."""

from daif.optics.camera import (
    CAMERA_PRESETS,
    CAMERA_RANGES,
    MAX_FOCUS_DISTANCE,
    CameraPreset,
    ThinLensCamera,
    check_focus_distance,
    get_preset,
)
from daif.optics.render import (
    render_defocus,
    render_defocus_reference,
    render_focal_stack,
    render_focal_stack_uint8,
    render_uniform_defocus,
    sigma_for_variance,
    to_uint8,
    window_variance,
)
from daif.optics.thin_lens import circle_of_confusion, defocus_sigma

__all__ = [
    "CAMERA_PRESETS",
    "CAMERA_RANGES",
    "MAX_FOCUS_DISTANCE",
    "CameraPreset",
    "ThinLensCamera",
    "check_focus_distance",
    "circle_of_confusion",
    "defocus_sigma",
    "get_preset",
    "render_defocus",
    "render_defocus_reference",
    "render_focal_stack",
    "render_focal_stack_uint8",
    "render_uniform_defocus",
    "sigma_for_variance",
    "to_uint8",
    "window_variance",
]
