"""Thin-lens defocus: circle of confusion and the renderer's sigma (method.md, "Thin-lens defocus")."""

from __future__ import annotations

import torch

from daif.optics.camera import ThinLensCamera

IN_FOCUS_SIGMA = 1.0  # px; the renderer passes a pixel of sigma at or below it through unchanged (method.md)


def _as_focus_tensor(focus_distance: torch.Tensor | float | list[float] | tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    if isinstance(focus_distance, torch.Tensor):
        return focus_distance.to(device=like.device, dtype=like.dtype)
    return torch.as_tensor(focus_distance, device=like.device, dtype=like.dtype)


def circle_of_confusion(
    depth: torch.Tensor,
    focus_distance: torch.Tensor | float | list[float] | tuple[float, ...],
    camera: ThinLensCamera,
) -> torch.Tensor:
    """Circle-of-confusion diameter [m]: c = A f |d - s_f| / (d (s_f - f)).

    depth: (B, 1, H, W) or (B, S, H, W) metres, > 0.
    focus_distance: a float, (S,) or (B, S) metres, > focal length.
    Returns (B, S, H, W) (S = 1 for a float focus distance and a (B, 1, H, W) depth).
    """
    if not isinstance(depth, torch.Tensor) or depth.dim() != 4 or not depth.is_floating_point():
        shape = tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise ValueError(f"depth: expected a floating tensor of shape (B, 1, H, W) or (B, S, H, W), got {shape}")
    focus = _as_focus_tensor(focus_distance, depth)
    if focus.dim() > 2:
        raise ValueError(f"focus_distance: expected a float, (S,) or (B, S), got shape {tuple(focus.shape)}")
    if not bool(torch.all(focus > camera.focal_length)):
        raise ValueError(
            f"focus_distance: every focus distance must exceed the focal length {camera.focal_length} m, "
            f"got min {float(focus.min())} m"
        )
    if not bool(torch.all(depth > 0)):
        raise ValueError(f"depth: expected positive metres, got min {float(depth.min())}")
    if focus.dim() == 0:
        focus = focus.reshape(1, 1)
    elif focus.dim() == 1:
        focus = focus.reshape(1, -1)
    focus = focus[:, :, None, None]  # (B|1, S, 1, 1)
    f = camera.focal_length
    return camera.aperture * f * (depth - focus).abs() / (depth * (focus - f))


def defocus_sigma(
    depth: torch.Tensor,
    focus_distance: torch.Tensor | float | list[float] | tuple[float, ...],
    camera: ThinLensCamera,
) -> torch.Tensor:
    """Renderer defocus sigma = c / (2 p) [pixels], broadcast to (B, S, H, W); see circle_of_confusion."""
    return circle_of_confusion(depth, focus_distance, camera) / (2.0 * camera.pixel_size)


def max_defocus_sigma(camera: ThinLensCamera, focus_distances, depth_range: tuple[float, float]) -> float:
    """The largest renderer sigma [px] of any depth in depth_range (metres, near < far) under any of the focus
    distances (metres): sigma(d) grows as d leaves the focus distance on either side, so the largest is at
    `near` or `far`. Pixels of the camera's pixel_size: an image resized without a matching pixel_size keeps
    this figure, in its own pixels."""
    near, far = (float(v) for v in depth_range)
    if not 0 < near < far:
        raise ValueError(f"depth_range: expected 0 < near < far metres, got {depth_range!r}")
    focus = torch.as_tensor(focus_distances, dtype=torch.float64).reshape(-1)
    depth = torch.tensor([near, far], dtype=torch.float64).reshape(1, 1, 1, 2)  # (B, 1, H, W)
    return float(defocus_sigma(depth, focus, camera).max())
