"""The PSF convolution layer: a differentiable gather-style Gaussian defocus renderer.

method.md, "The PSF convolution layer". For every output pixel x (per channel):
    out(x) = I(x)                                         if sigma(x) <= 1
    out(x) = sum_q w(q, x) I(q) / sum_q w(q, x)           otherwise,
over sources q in the K x K window around x, inside the image, with sigma(q) > 1, and
    w(q, x) = sigma(q)^-2 exp(-2 |q - x|^2 / sigma(q)^2).

With a = sigma^-2 (0 where sigma <= 1) and e = exp(-2 a), the weight factorises per source pixel:
    w = a * e^(dy^2) * e^(dx^2),
so every exponential is computed once per source pixel and the rest is multiplication.

Two fast paths implement the same formulas (forward and a hand-derived backward), neither keeps
K^2 intermediates: a fused CPU kernel (daif.optics._cpu_kernels, numba) and a loop over window
offsets in plain torch for every other device. `render_defocus_reference` is the slow, obviously
correct version (unfold + autograd) the tests hold them to.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from daif._checks import RENDER_PSFS, check_kernel_size, check_tensor
from daif.optics.camera import ThinLensCamera
from daif.optics.disc_ladder import render_defocus_disc
from daif.optics.ladder import render_defocus_ladder
from daif.optics.thin_lens import IN_FOCUS_SIGMA, defocus_sigma


def _check_inputs(image: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> None:
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("sigma", sigma, (image.shape[0], 1, image.shape[2], image.shape[3]))
    if sigma.dtype != image.dtype or sigma.device != image.device:
        raise ValueError(
            f"sigma: expected dtype {image.dtype} on {image.device} like image, got {sigma.dtype} on {sigma.device}"
        )
    check_kernel_size("kernel_size", kernel_size)


def _inverse_square_sigma(sigma: torch.Tensor) -> torch.Tensor:
    """a = sigma^-2 where sigma > 1 (a blurring source), else 0. (N, 1, H, W)."""
    blurred = sigma > IN_FOCUS_SIGMA
    return torch.where(blurred, 1.0 / torch.where(blurred, sigma, torch.ones_like(sigma)).square(), 0.0)


def render_defocus_reference(image: torch.Tensor, sigma: torch.Tensor, kernel_size: int = 7) -> torch.Tensor:
    """Slow, obviously correct windowed renderer (unfold + autograd). Same contract as `render_defocus` with a
    window (daif.optics.ladder.render_ladder_reference is the window-free one's)."""
    if kernel_size is None:
        raise ValueError("kernel_size: the windowed reference needs a window (an odd integer >= 3)")
    _check_inputs(image, sigma, kernel_size)
    n, c, h, w = image.shape
    m = kernel_size // 2
    offsets = torch.arange(-m, m + 1, dtype=image.dtype, device=image.device)
    r2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).reshape(1, -1, 1)  # (1, K*K, 1)
    # unfold zero-pads: a padded source has a = 0, i.e. weight 0 (outside the image)
    a = F.unfold(_inverse_square_sigma(sigma), kernel_size, padding=m)  # (N, K*K, H*W)
    weights = a * torch.exp(-2.0 * r2 * a)
    sources = F.unfold(image, kernel_size, padding=m).reshape(n, c, kernel_size * kernel_size, h * w)
    numerator = (weights[:, None] * sources).sum(dim=2).reshape(n, c, h, w)
    denominator = weights.sum(dim=1).reshape(n, 1, h, w)
    blurred = sigma > IN_FOCUS_SIGMA
    safe_denominator = torch.where(blurred, denominator, torch.ones_like(denominator))
    return torch.where(blurred, numerator / safe_denominator, image)


def _square_powers(e: torch.Tensor, m: int) -> list[torch.Tensor]:
    """[e^(k^2) for k = 0..m] by multiplication: e^(k^2) = e^((k-1)^2) * e^(2k-1)."""
    powers = [torch.ones_like(e)]
    step, e2 = e, e * e
    for _ in range(m):
        powers.append(powers[-1] * step)
        step = step * e2
    return powers


def _window_offsets(m: int):
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            yield dy, dx


def _torch_forward(image: torch.Tensor, sigma: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rendered image (N, C, H, W) and weight sum (N, 1, H, W), as a loop over window offsets."""
    h, w = image.shape[-2:]
    a = _inverse_square_sigma(sigma)
    powers = [F.pad(p, (m, m, m, m)) for p in _square_powers(torch.exp(-2.0 * a), m)]
    a_image = F.pad(torch.cat([a, a * image], dim=1), (m, m, m, m))  # (N, 1+C, H+2m, W+2m); 0 outside
    total = torch.zeros_like(a_image[..., :h, :w])
    for dy, dx in _window_offsets(m):
        rows, cols = slice(m + dy, m + dy + h), slice(m + dx, m + dx + w)
        total += (powers[abs(dy)][..., rows, cols] * powers[abs(dx)][..., rows, cols]) * a_image[..., rows, cols]
    numerator, denominator = total[:, 1:], total[:, :1]
    blurred = sigma > IN_FOCUS_SIGMA
    return torch.where(blurred, numerator / torch.where(blurred, denominator, 1.0), image), denominator


def _torch_backward(
    image: torch.Tensor, sigma: torch.Tensor, out: torch.Tensor, denominator: torch.Tensor, grad_out: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. image and sigma, gathered per source pixel q over the outputs x = q - off.

    With G = grad_out / den at blurred outputs (0 elsewhere), g_dot = sum_c G out and E = e_q^(dy^2 + dx^2):
    grad_image[q] = a_q sum_off E G[x] (+ grad_out[q] where q is in focus),
    dL/da_q = sum_off E (1 - 2 r^2 a_q)(sum_c I[q] G[x] - g_dot[x]), and da/dsigma = -2 sigma^-3.
    """
    h, w = image.shape[-2:]
    blurred = sigma > IN_FOCUS_SIGMA
    a = _inverse_square_sigma(sigma)
    g_norm = torch.where(blurred, grad_out / torch.where(blurred, denominator, 1.0), 0.0)
    g_dot = (g_norm * out).sum(1, keepdim=True)
    powers = _square_powers(torch.exp(-2.0 * a), m)
    padded = F.pad(torch.cat([g_dot, g_norm], dim=1), (m, m, m, m))  # (N, 1+C, H+2m, W+2m)
    sum_e = torch.zeros_like(padded[..., :h, :w])  # sum_off E [g_dot, G]
    sum_r2e = torch.zeros_like(sum_e)  # sum_off r^2 E [g_dot, G]
    for dy, dx in _window_offsets(m):
        e = powers[abs(dy)] * powers[abs(dx)]
        shifted = padded[..., m - dy : m - dy + h, m - dx : m - dx + w]
        sum_e += e * shifted
        if dy or dx:
            sum_r2e += (dy * dy + dx * dx) * e * shifted
    grad_image = a * sum_e[:, 1:] + torch.where(blurred, 0.0, grad_out)
    grad_a = (image * sum_e[:, 1:]).sum(1, keepdim=True) - sum_e[:, :1]
    grad_a = grad_a - 2.0 * a * ((image * sum_r2e[:, 1:]).sum(1, keepdim=True) - sum_r2e[:, :1])
    grad_sigma = torch.where(blurred, grad_a * (-2.0) * a * a.sqrt(), 0.0)
    return grad_image, grad_sigma


def _backend(tensor: torch.Tensor) -> tuple[Callable, Callable]:
    """(forward, backward) for the tensor's device: the fused numba kernels on CPU, else the torch loop."""
    if tensor.device.type == "cpu":
        from daif.optics import _cpu_kernels

        return _cpu_kernels.forward, _cpu_kernels.backward
    return _torch_forward, _torch_backward


class _RenderDefocus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
        forward, _ = _backend(image)
        out, denominator = forward(image, sigma, kernel_size // 2)
        ctx.save_for_backward(image, sigma, out, denominator)
        ctx.half_window = kernel_size // 2
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        image, sigma, out, denominator = ctx.saved_tensors
        _, backward = _backend(image)
        grad_image, grad_sigma = backward(image, sigma, out, denominator, grad_out, ctx.half_window)
        return grad_image, grad_sigma, None


def render_defocus(image: torch.Tensor, sigma: torch.Tensor, kernel_size: int | None = 7, psf: str = "gaussian") -> torch.Tensor:
    """Blur `image` by the per-pixel defocus `sigma` (the PSF convolution layer of method.md).

    image: (N, C, H, W) float32/float64; sigma: (N, 1, H, W) pixels, same dtype and device.
    kernel_size: odd window size K >= 3 (7 in the paper), or None: no window, the ladder renderer
    (daif.optics.ladder), whose blur has no ceiling. psf: "gaussian" (method.md's), or "disc": a round aperture
    of radius sigma (daif.optics.disc_ladder; no window only); "layered" needs depth (`render_focal_stack`).
    Returns (N, C, H, W).
    Differentiable w.r.t. image and sigma; memory O(N C H W) in forward and backward (the ladders: one image
    per rung).
    """
    _check_inputs(image, sigma, kernel_size)
    if psf not in RENDER_PSFS:
        raise ValueError(f"psf: expected one of {RENDER_PSFS}, got {psf!r}")
    if psf == "layered":
        raise ValueError("psf: the layered renderer composites depth layers; render_focal_stack takes depth, render_defocus does not")
    if psf == "disc":
        if kernel_size is not None:
            raise ValueError(f"kernel_size: the disc renderer has no window (null), got {kernel_size}")
        return render_defocus_disc(image, sigma)
    if kernel_size is None:
        return render_defocus_ladder(image, sigma)
    return _RenderDefocus.apply(image, sigma, kernel_size)


def render_focal_stack(
    aif: torch.Tensor,
    depth: torch.Tensor,
    focus_distances: torch.Tensor | list[float] | tuple[float, ...],
    camera: ThinLensCamera,
    kernel_size: int | None = 7,
    psf: str = "gaussian",
) -> torch.Tensor:
    """Render a focal stack from an all-in-focus image and its depth (`render_defocus`'s kernel_size and psf; psf
    "layered": daif.optics.soft_layers, round-aperture layers with partial occlusion, no window).

    aif: (B, 3, H, W); depth: (B, 1, H, W) metres; focus_distances: (B, S) or (S,) metres.
    Returns the stack (B, S, 3, H, W).
    """
    check_tensor("aif", aif, ("B", "C", "H", "W"))
    check_tensor("depth", depth, (aif.shape[0], 1, aif.shape[2], aif.shape[3]))
    if psf == "layered":
        if kernel_size is not None:
            raise ValueError(f"kernel_size: the layered renderer has no window (null), got {kernel_size}")
        from daif.optics.soft_layers import render_soft_layers  # daif.optics.psf imports this module

        return render_soft_layers(aif, depth.to(aif.dtype), focus_distances, camera)
    sigma = defocus_sigma(depth, focus_distances, camera).to(aif.dtype)  # (B, S, H, W)
    b, s, h, w = sigma.shape
    images = aif[:, None].expand(b, s, *aif.shape[1:]).reshape(b * s, aif.shape[1], h, w)  # (B*S, C, H, W)
    stack = render_defocus(images, sigma.reshape(b * s, 1, h, w), kernel_size, psf)
    return stack.reshape(b, s, aif.shape[1], h, w)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(S, C, H, W) float in [0, 1] -> (S, H, W, C) uint8: clamped, x 255, rounded half to even."""
    return images.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1)


def render_focal_stack_uint8(
    aif: torch.Tensor,
    depth: torch.Tensor,
    focus_distances: torch.Tensor | list[float] | tuple[float, ...],
    camera: ThinLensCamera,
    kernel_size: int | None = 7,
    chunk: int = 25,
) -> torch.Tensor:
    """The focal stack of one scene as 8-bit images, the form a store holds. No gradient.

    aif: (3, H, W) in [0, 1]; depth: (1, H, W) metres; focus_distances: (S,) metres.
    Returns (S, H, W, 3) uint8 on aif's device: `to_uint8(render_focal_stack(...)[0])`. On CPU with numba,
    one fused kernel renders and rounds every image from the one AIF (no per-image copy of it, no float
    stack); its sums may be ordered differently from `render_defocus`'s, so a pixel can differ by one level
    where the float value sits at a rounding boundary. Elsewhere, and without a window, `chunk` focus
    distances at a time.
    """
    check_tensor("aif", aif, (3, "H", "W"))
    check_tensor("depth", depth, (1, aif.shape[1], aif.shape[2]))
    check_kernel_size("kernel_size", kernel_size)
    focus = torch.as_tensor(focus_distances, dtype=aif.dtype, device=aif.device).reshape(-1)
    with torch.no_grad():
        if aif.device.type == "cpu" and kernel_size is not None:
            from daif.optics import _cpu_kernels

            sigma = defocus_sigma(depth[None].to(aif.dtype), focus, camera)[0]  # (S, H, W)
            return _cpu_kernels.stack_uint8(aif, sigma, kernel_size // 2)
        return _chunked_stack_uint8(aif, depth, focus, camera, kernel_size, chunk)


def _chunked_stack_uint8(aif, depth, focus, camera, kernel_size: int, chunk: int) -> torch.Tensor:
    """`render_focal_stack_uint8` off the CPU: `render_focal_stack` `chunk` focus distances at a time."""
    images = [
        to_uint8(render_focal_stack(aif[None], depth[None].to(aif.dtype), focus[start : start + chunk], camera, kernel_size)[0])
        for start in range(0, len(focus), chunk)
    ]
    return torch.cat(images)


def window_variance(sigma: torch.Tensor, kernel_size: int = 7) -> torch.Tensor:
    """Variance per axis [px^2] of the kernel `render_uniform_defocus` applies for each defocus `sigma` [px].

    v(sigma) = sum_r r^2 exp(-2 r^2 / sigma^2) / sum_r exp(-2 r^2 / sigma^2) over r = -K//2 .. K//2, and 0
    where sigma <= 1 (passed through). Away from the image border, blurring by sigma_a then sigma_b adds the
    variances. Without the window v = sigma^2 / 4; the window caps it at the box's (K^2 - 1) / 12, which
    it nears once sigma exceeds about K / 2. kernel_size None (no window): v = sigma^2 / 4. Any shape; same dtype
    and device.
    """
    kernel_size = check_kernel_size("kernel_size", kernel_size)
    blurred = sigma > IN_FOCUS_SIGMA
    if kernel_size is None:
        return torch.where(blurred, sigma.square() / 4, 0.0)
    m = kernel_size // 2
    offsets = torch.arange(-m, m + 1, dtype=sigma.dtype, device=sigma.device) ** 2
    taps = torch.exp(-2.0 * offsets / sigma.clamp_min(IN_FOCUS_SIGMA)[..., None] ** 2)
    variance = (taps * offsets).sum(-1) / taps.sum(-1)
    return torch.where(blurred, variance, 0.0)


WINDOW_SUPPORT_SHARE = 0.9  # share of the unclipped variance sigma^2 / 4 that counts as rendered


def window_support(kernel_size: int | None) -> float:
    """The largest sigma [px] the K x K window renders unclipped: where its kernel's variance per axis
    `window_variance` still holds WINDOW_SUPPORT_SHARE of the unclipped Gaussian's sigma^2 / 4 (the share falls
    as sigma grows). About 0.41 K: K = 7 gives 2.90 px. A blur larger than this is one the window caps.
    None (no window): infinite."""
    kernel_size = check_kernel_size("kernel_size", kernel_size)
    if kernel_size is None:
        return math.inf
    low, high = torch.tensor(IN_FOCUS_SIGMA, dtype=torch.float64), torch.tensor(float(kernel_size), dtype=torch.float64)
    for _ in range(50):
        middle = 0.5 * (low + high)
        if window_variance(middle, kernel_size) >= WINDOW_SUPPORT_SHARE * middle**2 / 4:
            low = middle
        else:
            high = middle
    return float(low)


def sigma_for_variance(variance: torch.Tensor, kernel_size: int | None = 7, steps: int = 40) -> torch.Tensor:
    """The defocus sigma [px] whose window kernel has `variance` per axis: the inverse of `window_variance`.

    Bisection in log sigma over (1, 64 K] (v is increasing there). A variance below half of v just above
    sigma = 1 gives 0 (pass through), one between that and v(1) gives sigma just above 1, one at or above
    v(64 K) (the box's, to within float precision) gives 64 K. Without a window (None): 2 sqrt(v), with the
    same pass-through rule. Any shape; same dtype and device.
    """
    kernel_size = check_kernel_size("kernel_size", kernel_size)
    if kernel_size is None:
        smallest = IN_FOCUS_SIGMA**2 / 4
        unclipped = (2.0 * variance.clamp_min(0).sqrt()).clamp_min(IN_FOCUS_SIGMA * (1 + 1e-4))
        return torch.where(variance < 0.5 * smallest, 0.0, unclipped)
    low = torch.full_like(variance, math.log(IN_FOCUS_SIGMA * (1 + 1e-4)))
    high = torch.full_like(variance, math.log(64.0 * kernel_size))
    for _ in range(steps):
        middle = 0.5 * (low + high)
        below = window_variance(middle.exp(), kernel_size) < variance
        low, high = torch.where(below, middle, low), torch.where(below, high, middle)
    smallest = window_variance(low.new_tensor(IN_FOCUS_SIGMA * (1 + 1e-4)), kernel_size)
    return torch.where(variance < 0.5 * smallest, 0.0, high.exp())


def render_uniform_defocus(image: torch.Tensor, sigma: torch.Tensor, kernel_size: int | None = 7) -> torch.Tensor:
    """`render_defocus` for a defocus that is constant over each image, as two 1-D convolutions.

    image: (N, C, H, W); sigma: (N,) pixels, one value per image. Equal to `render_defocus(image, s)` with
    s the constant map of each image's sigma: with a single sigma the weight sigma^-2 exp(-2|q - x|^2 / sigma^2)
    is separable and its factor sigma^-2 cancels in the normalisation, so the output is the image filtered
    by the 1-D taps exp(-2 r^2 / sigma^2) along both axes, divided by the same filtering of ones (sources
    outside the image are left out); an image with sigma <= 1 passes through. O(N C H W K) work.
    Without a window (None) the taps reach 2.5 sigma (where they are 3.7e-6 of the peak), as the ladder
    renderer's do: its output for a uniform sigma that is one of its rungs.
    Differentiable w.r.t. the image (the searches that use it need no gradient to sigma).
    """
    kernel_size = check_kernel_size("kernel_size", kernel_size)
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("sigma", sigma, (image.shape[0],))
    n, c, h, w = image.shape
    m = kernel_size // 2 if kernel_size is not None else max(1, math.ceil(2.5 * float(sigma.max()))) if sigma.numel() else 1
    offsets = torch.arange(-m, m + 1, dtype=image.dtype, device=image.device)
    blurred = sigma.to(image.dtype) > IN_FOCUS_SIGMA
    inverse_square = torch.where(blurred, sigma.to(image.dtype).clamp_min(IN_FOCUS_SIGMA) ** -2, 0.0)
    taps = torch.exp(-2.0 * inverse_square[:, None] * offsets**2)  # (N, K); all ones where passed through
    taps = taps.repeat_interleave(c, dim=0)  # (N*C, K): one kernel per channel group

    def filter_2d(planes: torch.Tensor) -> torch.Tensor:  # (1, N*C, H, W), zero padding = sources outside left out
        planes = F.conv2d(planes, taps[:, None, None, :], padding=(0, m), groups=n * c)
        return F.conv2d(planes, taps[:, None, :, None], padding=(m, 0), groups=n * c)

    numerator = filter_2d(image.reshape(1, n * c, h, w))
    denominator = filter_2d(torch.ones(1, n * c, h, w, dtype=image.dtype, device=image.device))
    out = (numerator / denominator).reshape(n, c, h, w)
    return torch.where(blurred[:, None, None, None], out, image)
