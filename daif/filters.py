"""Image filters shared by the losses, the metrics and the analytic baseline.

Images are float tensors (N, C, H, W); kernels are built in the images' dtype and device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma
_SSIM_C1 = 0.01**2  # (K1 L)^2 with data range L = 1
_SSIM_C2 = 0.03**2


def gaussian_taps(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,); the 2-D Gaussian window is its outer product with itself."""
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * sigma**2))
    return g / g.sum()


def laplacian_of_gaussian_kernel(size: int = 7, sigma: float = 1.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """LoG (size, size): -(1 / (pi s^4)) (1 - r^2 / (2 s^2)) exp(-r^2 / (2 s^2)), shifted to sum to 0.

    Zero sum makes a constant image's response exactly 0 despite the truncated window.
    """
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    log = -(1.0 / (math.pi * sigma**4)) * (1 - r2 / (2 * sigma**2)) * torch.exp(-r2 / (2 * sigma**2))
    return log - log.mean()


def filter_channels(images: torch.Tensor, kernel: torch.Tensor, padding: str) -> torch.Tensor:
    """Filter every channel of (N, C, H, W) with `kernel`: (k, k), or (k,) for the separable kernel that
    is its outer product with itself (two 1-D passes, 2k instead of k^2 multiplies per pixel).
    padding "replicate" keeps (H, W); "valid" returns (H - k + 1, W - k + 1)."""
    channels = images.shape[1]
    if padding == "replicate":
        m = kernel.shape[-1] // 2
        images = F.pad(images, (m, m, m, m), mode="replicate")
    kernel = kernel.to(images)
    if kernel.dim() == 1:
        images = F.conv2d(images, kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
        return F.conv2d(images, kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(images, kernel[None, None].expand(channels, 1, *kernel.shape), groups=channels)


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) luma."""
    weights = torch.tensor(GREY_WEIGHTS, dtype=images.dtype, device=images.device)
    return (images * weights[None, :, None, None]).sum(dim=1, keepdim=True)


def ssim_map(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5, padding: str = "replicate") -> torch.Tensor:
    """Per-pixel SSIM of images in [0, 1] with a Gaussian window (Wang et al. 2004).

    x, y: (N, C, H, W). padding "replicate" returns (N, C, H, W); "valid" returns the
    (N, C, H - window_size + 1, W - window_size + 1) positions where the window fits.
    """
    kernel = gaussian_taps(window_size, sigma, dtype=x.dtype, device=x.device)  # separable
    mu_x, mu_y = filter_channels(x, kernel, padding), filter_channels(y, kernel, padding)
    var_x = filter_channels(x * x, kernel, padding) - mu_x**2
    var_y = filter_channels(y * y, kernel, padding) - mu_y**2
    cov = filter_channels(x * y, kernel, padding) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return numerator / denominator


def luma_laplacian(images: torch.Tensor) -> torch.Tensor:
    """h = 4 g(y, x) - g(y - 1, x) - g(y + 1, x) - g(y, x - 1) - g(y, x + 1), g the luma (`to_grey`), replicate
    padding. images: (N, 3, H, W) -> (N, 1, H, W)."""
    grey = F.pad(to_grey(images), (1, 1, 1, 1), mode="replicate")
    centre = grey[..., 1:-1, 1:-1]
    return 4 * centre - grey[..., :-2, 1:-1] - grey[..., 2:, 1:-1] - grey[..., 1:-1, :-2] - grey[..., 1:-1, 2:]


def stack_high_pass(stack: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High-pass images of a stack and their local energy:

        h_k = luma_laplacian(S_k),   n(p) = mean over the window x window box around p of max_k |h_k|

    (replicate padding). stack: (B, S, 3, H, W) -> h (B, S, H, W), n (B, 1, H, W); n carries no gradient."""
    batch, count, _, height, width = stack.shape
    high = luma_laplacian(stack.reshape(-1, 3, height, width)).reshape(batch, count, height, width)
    with torch.no_grad():
        half = window // 2
        energy = F.pad(high.abs().amax(dim=1, keepdim=True), (half, half, half, half), mode="replicate")
        energy = F.avg_pool2d(energy, window, stride=1)
    return high, energy
