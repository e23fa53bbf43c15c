"""Differentiable optics: thin-lens defocus, the Gaussian PSF renderer (method.md), the window-free Gaussian and disc
ladder renderers, and the data renderers of daif.optics.psf."""

from daif.optics.camera import (
    CAMERA_PRESETS,
    CAMERA_RANGES,
    MAX_FOCUS_DISTANCE,
    CameraPreset,
    ThinLensCamera,
    check_focus_distance,
    get_preset,
)
from daif.optics.ladder import LADDER_RATIO, ladder_sigmas, render_defocus_ladder, render_ladder_reference
from daif.optics.disc_ladder import DISC_RUNG_STEP, render_defocus_disc
from daif._checks import RENDER_PSFS
from daif.optics.render import (
    render_defocus,
    render_defocus_reference,
    render_focal_stack,
    render_focal_stack_uint8,
    render_uniform_defocus,
    sigma_for_variance,
    to_uint8,
    window_support,
    window_variance,
)
from daif.optics.thin_lens import circle_of_confusion, defocus_sigma, max_defocus_sigma
from daif.optics.psf import LAYER_PSFS, PSF_MODELS, depth_layers, render_disc, render_layers, render_stack

__all__ = [
    "CAMERA_PRESETS",
    "DISC_RUNG_STEP",
    "RENDER_PSFS",
    "CAMERA_RANGES",
    "LADDER_RATIO",
    "MAX_FOCUS_DISTANCE",
    "CameraPreset",
    "ThinLensCamera",
    "check_focus_distance",
    "circle_of_confusion",
    "defocus_sigma",
    "get_preset",
    "max_defocus_sigma",
    "ladder_sigmas",
    "render_defocus",
    "render_defocus_disc",
    "render_defocus_ladder",
    "render_defocus_reference",
    "render_focal_stack",
    "render_focal_stack_uint8",
    "render_ladder_reference",
    "render_uniform_defocus",
    "sigma_for_variance",
    "to_uint8",
    "window_support",
    "window_variance",
    "LAYER_PSFS",
    "PSF_MODELS",
    "depth_layers",
    "render_disc",
    "render_layers",
    "render_stack",
]
