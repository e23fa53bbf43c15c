"""A differentiable occlusion-aware renderer: soft depth layers of round-aperture blur, composited front to back.

The "layered" model of daif.optics.psf (module docstring there) with an assignment of pixels to layers that has a
gradient in depth, so the recon term can train depth through partial occlusion (`loss.psf: layered`).

Layers. Per scene, L layer centres equally spaced in inverse depth u = 1/d between the scene's nearest and farthest
predicted depth (no gradient through the centres), k = 0 the nearest:
    u_k = u_max - k delta,     delta = (u_max - u_min) / (L - 1).
Each pixel belongs to the two centres around its u with the linear (tent) weights
    a_k(x) = max(0, 1 - |u(x) - u_k| / delta),     sum_k a_k(x) = 1,
so a_k is piecewise linear in u: the gradient in depth. One centre (u_max = u_min, or L = 1): a_0 = 1.
Layer k at focus distance s blurs by the disc of radius b_k(s) = defocus_sigma(1 / u_k, s) px (daif.optics.psf's
"disc", antialiased, not rounded), P_k. Composite "over", front to back, normalised by the composite alpha:
    A_k = P_k * a_k,   C_k = P_k * (a_k I),   T_0 = 1,   T_{k+1} = T_k (1 - A_k),   out = sum_k T_k C_k / (1 - T_L).
A pixel between two centres is split between two adjacent layers, the nearer in front: in focus the composite is
exactly I; blurred, its two discs mix in the weights a / (1 - a + a^2) and (1 - a)^2 / (1 - a + a^2) instead of
a and 1 - a, a disc radius off by at most b_k - b_{k+1} (the layer spacing: more layers, less error).
Borders: the scene mirrored beyond the frame, as daif.optics.psf. Pure torch (FFTs): any device, float32/64;
memory per scene O(S L (C + 1) H' W'), H' x W' the frame padded by the widest disc (benchmarks/render_layered.py).
"""

from __future__ import annotations

import torch

from daif._checks import check_tensor
from daif.optics.camera import ThinLensCamera
from daif.optics.disc_ladder import fast_length
from daif.optics.psf import _composite, _kernel_spectra, _reflect_pad
from daif.optics.thin_lens import defocus_sigma

SOFT_LAYERS = 16  # layers per scene of the "layered" recon renderer


def layer_weights(depth: torch.Tensor, num_layers: int = SOFT_LAYERS) -> tuple[torch.Tensor, torch.Tensor]:
    """The tent weights a_k (B, L, H, W) of each pixel's inverse depth and the layer centres' depths (B, L) metres
    (module docstring). depth: (B, 1, H, W) metres, > 0; the centres carry no gradient, the weights do."""
    check_tensor("depth", depth, ("B", 1, "H", "W"))
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers: expected an integer >= 1, got {num_layers!r}")
    inverse = 1.0 / depth  # (B, 1, H, W)
    flat = inverse.detach().flatten(1)
    nearest, farthest = flat.max(dim=1).values, flat.min(dim=1).values  # (B,)
    steps = torch.arange(num_layers, dtype=depth.dtype, device=depth.device)
    delta = (nearest - farthest) / max(num_layers - 1, 1)  # (B,)
    centres = nearest[:, None] - delta[:, None] * steps  # (B, L), nearest first
    if num_layers == 1:
        return torch.ones_like(inverse), 1.0 / centres
    spacing = delta.clamp_min(torch.finfo(depth.dtype).tiny)[:, None, None, None]
    weights = (1.0 - (inverse - centres[:, :, None, None]).abs() / spacing).clamp_min(0.0)  # (B, L, H, W)
    flat_scene = (delta == 0)[:, None, None, None]  # one depth: every pixel in layer 0
    weights = torch.where(flat_scene, (steps == 0).to(depth.dtype)[None, :, None, None].expand_as(weights), weights)
    return weights, 1.0 / centres


def render_soft_layers(
    aif: torch.Tensor, depth: torch.Tensor, focus_distances: torch.Tensor | list[float] | tuple[float, ...],
    camera: ThinLensCamera, num_layers: int = SOFT_LAYERS,
) -> torch.Tensor:
    """The focal stack (B, S, C, H, W) of aif (B, C, H, W) in [0, 1] with depth (B, 1, H, W) metres at
    focus_distances (B, S) or (S,) metres: soft layers, disc PSFs, partial occlusion (module docstring).
    Differentiable in aif and depth."""
    check_tensor("aif", aif, ("B", "C", "H", "W"))
    check_tensor("depth", depth, (aif.shape[0], 1, aif.shape[2], aif.shape[3]))
    batch, channels, height, width = aif.shape
    weights, layer_depth = layer_weights(depth.to(aif.dtype), num_layers)  # (B, L, H, W), (B, L)
    blur = defocus_sigma(layer_depth[:, None, None, :], focus_distances, camera)[:, :, 0].to(aif.dtype)  # (B, S, L)
    pad = int(torch.ceil(blur.max() + 0.5)) if blur.numel() else 0
    shape = (fast_length(height + 2 * pad), fast_length(width + 2 * pad))  # a period >= H + 2 pad: no wrap into the frame
    frame = (..., slice(pad, pad + height), slice(pad, pad + width))
    stacks = []
    for image, alphas, blur_b in zip(aif, weights, blur):
        planes = torch.cat([image[None] * alphas[:, None], alphas[:, None]], dim=1)  # (L, C+1, H, W): premultiplied, alpha
        spectra = torch.fft.rfft2(_reflect_pad(planes, pad), s=shape)  # (L, C+1, ., .)
        kernels = _kernel_spectra(blur_b.reshape(-1), "disc", shape, None).reshape(*blur_b.shape, 1, *spectra.shape[-2:])  # (S, L, 1, ., .)
        blurred = torch.fft.irfft2(spectra[None] * kernels, s=shape)[frame]  # (S, L, C+1, H, W)
        stacks.append(torch.stack([_composite(planes_s) for planes_s in blurred]))
    return torch.stack(stacks).reshape(batch, -1, channels, height, width)
