"""Analytic depth from focus: no learning, the yardstick for trained models.

1. Focus measure per stack image: the modified Laplacian of the luma,
   ML = |2 g - g(x-1) - g(x+1)| + |2 g - g(y-1) - g(y+1)|, summed over a window x window box.
2. Per pixel, the stack index k of the largest focus measure.
3. Sub-image refinement in inverse depth u = 1 / s: the defocus of a thin lens is proportional to
   |1/s - 1/d| (method.md: c = A f s / (s - f) |1/s - 1/d|), so focus peaks where u = 1/d. A Gaussian is
   fitted through the measures at k - 1, k, k + 1 (a parabola through their logarithms, for unevenly
   spaced u), its peak is clamped to [u_{k-1}, u_{k+1}], and depth = 1 / u. At the ends of the stack
   (and for S = 1) the depth is the focus distance of the sharpest image.
4. AIF: every pixel from its sharpest image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from daif._checks import check_focus_distances, check_odd_size, check_tensor
from daif.filters import to_grey
from daif.optics import ThinLensCamera

_EPS = 1e-12


def modified_laplacian(images: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Windowed modified-Laplacian focus measure. images: (N, 3, H, W) -> (N, 1, H, W), >= 0."""
    grey = F.pad(to_grey(images), (1, 1, 1, 1), mode="replicate")
    centre = grey[..., 1:-1, 1:-1]
    measure = (2 * centre - grey[..., 1:-1, :-2] - grey[..., 1:-1, 2:]).abs()
    measure = measure + (2 * centre - grey[..., :-2, 1:-1] - grey[..., 2:, 1:-1]).abs()
    m = window // 2
    return F.avg_pool2d(F.pad(measure, (m, m, m, m), mode="replicate"), window, stride=1)


def _gaussian_peak(u: torch.Tensor, measure: torch.Tensor) -> torch.Tensor:
    """Peak position of the parabola through (u_i, log measure_i), i = 0, 1, 2 along dim 1; falls back
    to u_1 where the fit is not a maximum. u, measure: (B, 3, H, W) -> (B, 1, H, W)."""
    y = torch.log(measure + _EPS)
    u0, u1, u2 = u.unbind(1)
    y0, y1, y2 = y.unbind(1)
    # Newton form: y = y0 + a (u - u0) + b (u - u0)(u - u1)
    slope01 = (y1 - y0) / (u1 - u0)
    slope12 = (y2 - y1) / (u2 - u1)
    curvature = (slope12 - slope01) / (u2 - u0)
    peak = 0.5 * (u0 + u1) - slope01 / (2 * torch.where(curvature < 0, curvature, -1.0))
    peak = torch.where(curvature < 0, peak, u1)
    low, high = torch.minimum(u0, u2), torch.maximum(u0, u2)
    return torch.clamp(peak, low, high)[:, None]


def depth_from_focus(
    stack: torch.Tensor,
    focus_distances: torch.Tensor,
    camera: ThinLensCamera,
    window: int = 9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth and AIF from a focal stack by maximising a focus measure.

    stack: (B, S, 3, H, W) in [0, 1]; focus_distances: (B, S) or (S,) metres, any order, each > focal length.
    window: odd box size of the focus measure [px].
    Returns depth (B, 1, H, W) metres within the stack's focus range and aif (B, 3, H, W).
    """
    check_tensor("stack", stack, ("B", "S", 3, "H", "W"))
    batch, stack_size, _, height, width = stack.shape
    check_odd_size("window", window)
    focus = check_focus_distances("focus_distances", focus_distances, batch, stack_size, stack)
    if not bool(torch.all(focus > camera.focal_length)):
        raise ValueError(f"focus_distances: every focus distance must exceed the focal length {camera.focal_length} m")

    with torch.no_grad():
        order = focus.argsort(dim=1)  # neighbours in the stack must be neighbours in focus distance
        focus = focus.gather(1, order)
        stack = stack.gather(1, order[:, :, None, None, None].expand_as(stack))
        images = stack.reshape(batch * stack_size, 3, height, width)  # (B*S, 3, H, W)
        measure = modified_laplacian(images, window).reshape(batch, stack_size, height, width)
        sharpest = measure.argmax(dim=1, keepdim=True)  # (B, 1, H, W)
        aif = stack.gather(1, sharpest[:, :, None].expand(-1, -1, 3, -1, -1)).squeeze(1)

        inverse_focus = (1.0 / focus)[:, :, None, None].expand(-1, -1, height, width)  # (B, S, H, W)
        depth = 1.0 / inverse_focus.gather(1, sharpest)
        if stack_size >= 3:
            centre = sharpest.clamp(1, stack_size - 2)
            neighbours = torch.cat([centre - 1, centre, centre + 1], dim=1)  # (B, 3, H, W)
            refined = 1.0 / _gaussian_peak(inverse_focus.gather(1, neighbours), measure.gather(1, neighbours))
            inside = (sharpest > 0) & (sharpest < stack_size - 1)
            depth = torch.where(inside, refined, depth)
    return depth, aif
