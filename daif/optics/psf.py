"""Three point-spread functions (PSFs) for rendering a focal stack from an all-in-focus image and its depth.

Units. The defocus of a pixel is b = c / (2 p) [px], c the thin-lens circle-of-confusion diameter [m]
(daif.optics.thin_lens) and p the pixel pitch [m]. b is method.md's sigma, and it is also the radius R of the
blur disc in pixels (the disc's diameter is c / p px). The Gaussian weight exp(-2 r^2 / b^2) of method.md has
standard deviation b / 2 per axis, as has a uniform disc of radius b (variance R^2 / 4 per axis): the Gaussian
is the disc's second-moment match. Depth d and focus distance s are positive metres.

"gaussian": method.md's PSF layer (`render_focal_stack`): a gather over a K x K window with the source's
Gaussian, normalised per output pixel; pixels with b <= 1 pass through; sources outside the frame left out.

"disc": a round aperture, without occlusion. Each source pixel q scatters its light over the disc of its radius:
    out(x) = sum_q I(q) D_{R_q}(x - q),      D_R(o) = a_R(o) / sum_o' a_R(o'),      a_R(o) = clamp(R + 1/2 - |o|, 0, 1),
o an integer pixel offset. a_R(o) is the fraction of the pixel at o that the disc covers, as a ramp one pixel
wide across the rim: exact for a straight rim parallel to a pixel side; sum_o a_R(o) = pi (R^2 + 1/12) up to
lattice error. D_R sums to 1, so every source keeps its light, and where blur changes a pixel receives more or
less light than it sends (no occlusion: a defocused source's light falls on its neighbours whatever their
depth). R <= 1/2 gives D_R = delta: such a pixel stays where it is. Quantisation: R_q is rounded to the nearest
multiple of `radius_step` (default 0.25 px, ties to even), so a disc's radius is off by at most radius_step / 2
(and with the default step R < 0.625 px passes through); the sources of one rounded radius form a layer, convolved (FFT) with one disc.

"layered": partial occlusion, as a lens makes it. The scene's depth range [d_min, d_max] is cut into L layers of
equal width in inverse depth (b is linear in |1/d - 1/s|: c = A f s / (s - f) |1/d - 1/s|), k = 0 the nearest:
    k(x) = min(L - 1, floor((1/d_min - 1/d(x)) / delta)),       delta = (1/d_min - 1/d_max) / L.
Layer k has alpha a_k(x) = [k(x) = k] and one defocus b_k, that of its depth d_k = 1 / (mean of 1/d over its
pixels): exact for a layer holding one plane, and |1/d - 1/d_k| < delta inside the layer, so a pixel's b is off by
at most A f s / (s - f) delta / (2 p). With P_k the layer PSF (the disc D_{b_k}, or the normalised K x K Gaussian
exp(-2 r^2 / b_k^2), a pass-through where b_k <= 1; with no window K = 2 ceil(2.5 b_k) + 1, as in the ladder
renderer), composite front to back ("over"):
    A_k = P_k * a_k,     C_k = P_k * (a_k I),     T_k = prod_{l<k} (1 - A_l),
    out = sum_k T_k C_k / (1 - T_L).
1 - T_L = sum_k T_k A_k is the composite alpha (> 0 in the frame). It is below 1 where a blurred layer edge has
turned transparent and nothing behind it is known (what a nearer layer hides in the AIF, or nothing at all);
dividing by it fills that unknown with the colours seen there, in their proportions. A continuous surface cut
by a layer boundary is composited there as an occlusion edge. With a single depth, "layered" is the plain
model of its PSF: exactly "disc"; windowed "gaussian" wherever the border conventions agree (>= K // 2 px
inside).

Borders ("disc" and "layered"): the scene beyond the frame is its mirror image (image, depth and layers
reflect-padded by the widest kernel), so light from just outside enters the frame and a constant image of one
depth stays constant up to the border. Meant for rendering data: no gradient is promised (the rounding and the
layer assignment have none). Pure torch: any device, float32 and float64.
"""

from __future__ import annotations

import math

import torch

from daif._checks import check_kernel_size, check_tensor
from daif.optics.camera import ThinLensCamera
from daif.optics.disc_ladder import disc_spectra, fast_length, periodic_offsets
from daif.optics.render import render_focal_stack
from daif.optics.thin_lens import IN_FOCUS_SIGMA, defocus_sigma

PSF_MODELS = ("gaussian", "disc", "layered")
LAYER_PSFS = ("disc", "gaussian")
RADIUS_STEP = 0.25  # px; the disc radius grid (module docstring)
NUM_LAYERS = 16  # depth layers of "layered", uniform in inverse depth
_GAUSSIAN_TAIL = 2.5  # no window: the Gaussian ends at |o_y|, |o_x| <= ceil(2.5 b), exp(-12.5) of its peak, as the ladder's
_CHUNK = 8  # disc layers transformed at once: bounds the memory of the FFTs


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def _check_positive(name: str, value: object, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive {'integer' if integer else 'number'}, got {value!r}")
    return value


def quantise_radius(radius: torch.Tensor, radius_step: float = RADIUS_STEP) -> torch.Tensor:
    """The disc radius [px] rounded to the nearest multiple of `radius_step` (ties to even). Same shape."""
    return torch.round(radius / radius_step) * radius_step


def _passes_through(blur: torch.Tensor, psf: str) -> torch.Tensor:
    """Where the PSF of defocus `blur` [px] is a delta: disc radius <= 1/2, Gaussian sigma <= 1."""
    return blur <= (0.5 if psf == "disc" else IN_FOCUS_SIGMA)


def _half_width(blur: torch.Tensor, psf: str, kernel_size: int | None) -> int:
    """The widest kernel's reach [px] over the blurring entries of `blur`: ceil(R + 1/2), K // 2 or ceil(2.5 b)."""
    blurring = blur[~_passes_through(blur, psf)]
    if blurring.numel() == 0:
        return 0
    if psf == "disc":
        return math.ceil(float(blurring.max()) + 0.5)
    return kernel_size // 2 if kernel_size is not None else math.ceil(_GAUSSIAN_TAIL * float(blurring.max()))


def _reflect_pad(values: torch.Tensor, pad: int) -> torch.Tensor:
    """Mirror `values` (..., H, W) by `pad` px on each side (no edge repeat; any pad, by repeated reflection)."""

    def indices(size: int) -> torch.Tensor:
        index = torch.arange(-pad, size + pad, device=values.device)
        if size == 1:
            return torch.zeros_like(index)
        period = 2 * (size - 1)
        index = index.remainder(period)
        return torch.where(index >= size, period - index, index)

    return values.index_select(-2, indices(values.shape[-2])).index_select(-1, indices(values.shape[-1]))


def _kernel_spectra(blur: torch.Tensor, psf: str, shape: tuple[int, int], kernel_size: int | None) -> torch.Tensor:
    """rfft2 of the normalised PSFs of defocus `blur` (J,) [px], centred at (0, 0) of a periodic grid. (J, h, w // 2 + 1).

    disc: clamp(R + 1/2 - |o|, 0, 1); gaussian: exp(-2 |o|^2 / b^2) for |o_y|, |o_x| <= K // 2 (no window:
    ceil(2.5 b)). Both / their sum.
    """
    if psf == "disc":
        return disc_spectra(blur, shape)
    offset_y = periodic_offsets(shape[0], blur.dtype, blur.device)[:, None]
    offset_x = periodic_offsets(shape[1], blur.dtype, blur.device)[None, :]
    blur = blur[:, None, None]
    half = kernel_size // 2 if kernel_size is not None else torch.ceil(_GAUSSIAN_TAIL * blur)
    window = (offset_y.abs() <= half) & (offset_x.abs() <= half)
    weights = torch.where(window, torch.exp(-2.0 * (offset_y**2 + offset_x**2) / blur.square()), 0.0)
    return torch.fft.rfft2(weights / weights.sum(dim=(-2, -1), keepdim=True))  # (J, h, w // 2 + 1)


def render_disc(image: torch.Tensor, radius: torch.Tensor, radius_step: float = RADIUS_STEP) -> torch.Tensor:
    """Scatter every source pixel over its antialiased disc (the "disc" model, module docstring).

    image: (N, C, H, W) float; radius: (N, 1, H, W) disc radius R = c / (2 p) [px] (= method.md's sigma), same
    dtype and device; radius_step: the radius grid [px]. Returns (N, C, H, W): each source's light kept,
    the scene mirrored beyond the frame. Radii rounding to <= 1/2 px pass through unchanged.
    """
    check_tensor("image", image, ("N", "C", "H", "W"))
    check_tensor("radius", radius, (image.shape[0], 1, image.shape[2], image.shape[3]))
    _check_positive("radius_step", radius_step)
    radius = quantise_radius(radius.to(image.dtype), radius_step)[:, 0]  # (N, H, W)
    out = image * _passes_through(radius, "disc")[:, None]  # in-focus sources stay where they are
    pad = _half_width(radius, "disc", None)
    if pad == 0:
        return out
    height, width = image.shape[-2:]
    # a period of >= H + 2 pad: light wrapping around the grid lands in the padding, never in the frame
    shape = (fast_length(height + 2 * pad), fast_length(width + 2 * pad))
    padded, padded_radius = _reflect_pad(image, pad), _reflect_pad(radius, pad)  # (N, C, ., .), (N, ., .)
    radii = torch.unique(radius[~_passes_through(radius, "disc")])  # every blurring radius of the batch
    spectrum = torch.zeros(*image.shape[:2], shape[0], shape[1] // 2 + 1, dtype=image.dtype.to_complex(), device=image.device)
    for start in range(0, len(radii), _CHUNK):  # each disc transformed once; memory bounded by the chunk
        chunk = radii[start : start + _CHUNK]
        kernels = _kernel_spectra(chunk, "disc", shape, None)  # (J, ., .)
        for one_spectrum, one_image, one_radius in zip(spectrum, padded, padded_radius):
            masks = one_radius == chunk[:, None, None]  # (J, ., .): the layers of this radius
            used = masks.flatten(1).any(1)
            if bool(used.any()):
                layers = one_image * masks[used][:, None]  # (J', C, ., .)
                one_spectrum += (torch.fft.rfft2(layers, s=shape) * kernels[used][:, None]).sum(0)
    return out + torch.fft.irfft2(spectrum, s=shape)[..., pad : pad + height, pad : pad + width]


def depth_layers(depth: torch.Tensor, num_layers: int = NUM_LAYERS) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a depth map into layers of equal width in inverse depth, nearest first (module docstring).

    depth: (1, H, W) metres, > 0. Returns the layer of each pixel (1, H, W) int64 in [0, L), and each layer's
    depth d_k (L,) metres, depth's dtype: 1 / mean of 1/d over its pixels (the bin's centre for an empty layer).
    """
    check_tensor("depth", depth, (1, "H", "W"))
    _check_positive("num_layers", num_layers, integer=True)
    if not bool(torch.all(depth > 0)):
        raise ValueError(f"depth: expected positive metres, got min {float(depth.min())}")
    inverse = 1.0 / depth.double()
    nearest, farthest = float(inverse.max()), float(inverse.min())
    width = (nearest - farthest) / num_layers
    if width > 0:
        layer = torch.floor((nearest - inverse) / width).long().clamp(0, num_layers - 1)
    else:
        layer = torch.zeros_like(inverse, dtype=torch.long)
    counts = torch.bincount(layer.reshape(-1), minlength=num_layers)
    sums = torch.zeros(num_layers, dtype=torch.float64, device=depth.device).index_add_(0, layer.reshape(-1), inverse.reshape(-1))
    centres = nearest - width * (torch.arange(num_layers, dtype=torch.float64, device=depth.device) + 0.5)
    mean_inverse = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return layer, (1.0 / mean_inverse).to(depth.dtype)


def render_layers(
    image: torch.Tensor,
    layer: torch.Tensor,
    blur: torch.Tensor,
    layer_psf: str = "disc",
    radius_step: float = RADIUS_STEP,
    kernel_size: int | None = 7,
) -> torch.Tensor:
    """Blur each layer by its PSF and composite them front to back (the "layered" model, module docstring).

    image: (C, H, W) float; layer: (1, H, W) int64, each pixel's layer in [0, L), 0 the nearest; blur: (S, L)
    defocus b [px] of every layer at each of S focus settings, image's dtype and device. layer_psf: "disc"
    (radius b, rounded to `radius_step`) or "gaussian" (K = `kernel_size` window; None: none, the Gaussian ends
    at ceil(2.5 b) px per axis, as the ladder renderer's). Returns (S, C, H, W).
    """
    check_tensor("image", image, ("C", "H", "W"))
    check_tensor("blur", blur, ("S", "L"))
    if not isinstance(layer, torch.Tensor) or layer.dtype != torch.int64 or layer.shape != (1, *image.shape[1:]):
        shape = tuple(layer.shape) if isinstance(layer, torch.Tensor) else type(layer).__name__
        raise ValueError(f"layer: expected an int64 tensor of shape (1, {image.shape[1]}, {image.shape[2]}), got {shape}")
    num_layers = blur.shape[1]
    if layer.numel() and not (0 <= int(layer.min()) and int(layer.max()) < num_layers):
        raise ValueError(f"layer: expected indices in [0, {num_layers}) (blur has {num_layers} layers), got [{int(layer.min())}, {int(layer.max())}]")
    _check_choice("layer_psf", layer_psf, LAYER_PSFS)
    _check_positive("radius_step", radius_step)
    check_kernel_size("kernel_size", kernel_size)
    blur = blur.to(image.dtype)
    if layer_psf == "disc":
        blur = quantise_radius(blur, radius_step)
    present = torch.unique(layer)  # the layers holding pixels, nearest first; an empty one adds nothing
    blur = blur[:, present]  # (S, K)
    height, width = image.shape[-2:]
    pad = _half_width(blur, layer_psf, kernel_size)
    alphas = (_reflect_pad(layer, pad) == present[:, None, None, None]).to(image.dtype)  # (K, 1, H+2pad, W+2pad)
    planes = torch.cat([_reflect_pad(image, pad) * alphas, alphas], dim=1)  # (K, C+1, ., .): premultiplied colour, alpha
    shape = (fast_length(height + 2 * pad), fast_length(width + 2 * pad))  # a period >= H + 2 pad, as in render_disc
    spectra = torch.fft.rfft2(planes, s=shape) if pad else None
    frame = (..., slice(pad, pad + height), slice(pad, pad + width))
    stack = []
    for blur_s, still_s in zip(blur, _passes_through(blur, layer_psf).tolist()):
        blurred = planes[frame].clone()  # (K, C+1, H, W); in-focus layers as they are
        moving = [k for k, still in enumerate(still_s) if not still]
        if moving:
            kernels = _kernel_spectra(blur_s[moving], layer_psf, shape, kernel_size)[:, None]  # (J, 1, ., .)
            blurred[moving] = torch.fft.irfft2(spectra[moving] * kernels, s=shape)[frame]
        stack.append(_composite(blurred))
    return torch.stack(stack)


def _composite(planes: torch.Tensor) -> torch.Tensor:
    """Composite "over", front to back, normalised by the composite alpha: sum_k T_k C_k / (1 - T_K).

    planes: (K, C+1, H, W), premultiplied colour and alpha of each layer, nearest first. Returns (C, H, W).
    """
    colour, alpha = planes[:, :-1], planes[:, -1:].clamp(0.0, 1.0)  # clamp: FFT round-off
    colour_sum = torch.zeros_like(colour[0])
    transmittance = torch.ones_like(alpha[0])  # T_k: the light that reaches layer k through the nearer ones
    for colour_k, alpha_k in zip(colour, alpha):
        colour_sum = colour_sum + transmittance * colour_k
        transmittance = transmittance * (1.0 - alpha_k)
    coverage = (1.0 - transmittance).clamp_min(torch.finfo(planes.dtype).tiny)  # the composite alpha, > 0 in the frame
    return colour_sum / coverage


def render_stack(
    aif: torch.Tensor,
    depth: torch.Tensor,
    focus_distances: torch.Tensor | list[float] | tuple[float, ...],
    camera: ThinLensCamera,
    psf: str = "gaussian",
    *,
    kernel_size: int | None = 7,
    radius_step: float = RADIUS_STEP,
    num_layers: int = NUM_LAYERS,
    layer_psf: str = "disc",
) -> torch.Tensor:
    """Render the focal stack of one scene with one of the PSF models `PSF_MODELS` (module docstring).

    aif: (3, H, W) in [0, 1], float32/float64; depth: (1, H, W) metres, > 0; focus_distances: (S,) metres,
    > the focal length; camera: the thin lens. psf: "gaussian" (reads kernel_size: K, or None for no window),
    "disc" (radius_step) or "layered" (num_layers, layer_psf "disc" or "gaussian", and that PSF's option).
    Options a model does not read are ignored. Returns (S, 3, H, W) of aif's dtype, on its device. ValueError naming a bad argument.
    """
    _check_choice("psf", psf, PSF_MODELS)
    check_tensor("aif", aif, (3, "H", "W"))
    check_tensor("depth", depth, (1, aif.shape[1], aif.shape[2]))
    check_kernel_size("kernel_size", kernel_size)
    _check_positive("radius_step", radius_step)
    _check_positive("num_layers", num_layers, integer=True)
    _check_choice("layer_psf", layer_psf, LAYER_PSFS)
    depth = depth.to(aif)
    focus = torch.as_tensor(focus_distances, dtype=aif.dtype, device=aif.device)
    check_tensor("focus_distances", focus, ("S",))
    if psf == "gaussian":
        return render_focal_stack(aif[None], depth[None], focus, camera, kernel_size)[0]
    if psf == "disc":
        radius = defocus_sigma(depth[None], focus, camera)[0, :, None]  # (S, 1, H, W)
        return render_disc(aif.expand(len(focus), -1, -1, -1), radius, radius_step)
    layer, layer_depth = depth_layers(depth, num_layers)
    blur = defocus_sigma(layer_depth.reshape(1, 1, 1, -1), focus, camera)[0, :, 0]  # (S, L)
    return render_layers(aif, layer, blur, layer_psf, radius_step, kernel_size)
