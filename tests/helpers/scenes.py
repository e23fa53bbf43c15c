"""Tiny synthetic scenes built here (independent of daif.data): multi-scale random texture + depth ramps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from daif.config import KERNEL_SIZE
from daif.optics import ThinLensCamera, render_focal_stack

# DefocusNet camera (method.md presets): defocus of several pixels across 0.3..1.8 m at small sizes
CAMERA = ThinLensCamera(focal_length=7.2e-3, f_number=1.2, pixel_size=5.6e-6)
FOCUS_DISTANCES = (0.3, 0.45, 0.75, 1.2, 1.8)


def textured_image(height: int, width: int, generator: torch.Generator, scales=(1, 2, 4, 8)) -> torch.Tensor:
    """(3, H, W) in [0, 1]: a sum of bilinearly upsampled noise at several scales, rescaled per channel."""
    image = torch.zeros(3, height, width, dtype=torch.float64)
    for scale in scales:
        coarse = torch.rand(1, 3, -(-height // scale) + 1, -(-width // scale) + 1, generator=generator, dtype=torch.float64)
        image += F.interpolate(coarse, scale_factor=scale, mode="bilinear", align_corners=False)[0, :, :height, :width]
    low = image.amin(dim=(1, 2), keepdim=True)
    high = image.amax(dim=(1, 2), keepdim=True)
    return (image - low) / (high - low)


def depth_ramp(height: int, width: int, near: float, far: float, horizontal: bool = True) -> torch.Tensor:
    """(1, H, W) metres, linear in inverse depth from `near` (left/top) to `far` (right/bottom)."""
    steps = width if horizontal else height
    inverse = torch.linspace(1 / near, 1 / far, steps, dtype=torch.float64)
    depth = 1.0 / inverse
    return (depth[None, None, :].expand(1, height, width) if horizontal else depth[None, :, None].expand(1, height, width)).clone()


def make_scenes(batch: int, height: int, width: int, seed: int = 0, focus_distances=FOCUS_DISTANCES, camera=CAMERA,
                kernel_size: int | None = KERNEL_SIZE):
    """Scenes with a ramp (alternating horizontal/vertical, random ends within 0.3..1.8 m), their stacks rendered
    with `kernel_size` (default: training's, daif.config.KERNEL_SIZE).

    Returns stack (B, S, 3, H, W), focus (B, S), aif (B, 3, H, W), depth (B, 1, H, W), float32.
    """
    generator = torch.Generator().manual_seed(seed)
    aifs, depths = [], []
    for index in range(batch):
        aifs.append(textured_image(height, width, generator))
        ends = 0.3 + 1.5 * torch.rand(2, generator=generator, dtype=torch.float64)
        near, far = float(ends.min()), max(float(ends.max()), float(ends.min()) + 0.5)
        depths.append(depth_ramp(height, width, near, min(far, 2.0), horizontal=index % 2 == 0))
    aif = torch.stack(aifs).float()
    depth = torch.stack(depths).float()
    focus = torch.tensor(focus_distances, dtype=torch.float32).expand(batch, -1).clone()
    with torch.no_grad():
        stack = render_focal_stack(aif, depth, focus, camera, kernel_size)
    return stack, focus, aif, depth
