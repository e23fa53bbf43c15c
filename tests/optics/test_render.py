import pytest
import torch

from daif.optics import (
    ThinLensCamera,
    defocus_sigma,
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
from daif.optics import render as render_module

SHAPES = [(2, 3, 9, 13), (1, 1, 1, 1), (3, 2, 4, 2), (1, 3, 1, 17), (2, 3, 20, 17)]


def _inputs(shape, dtype, seed=0, low=0.0, high=12.0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(*shape, generator=generator, dtype=dtype)
    sigma = low + (high - low) * torch.rand(shape[0], 1, *shape[2:], generator=generator, dtype=dtype)
    return image, sigma


@pytest.mark.parametrize("kernel_size", [3, 7, 11])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_fast_path_equals_reference(shape, kernel_size, dtype, tolerance):
    image, sigma = _inputs(shape, dtype)
    expected = render_defocus_reference(image, sigma, kernel_size)
    assert (render_defocus(image, sigma, kernel_size) - expected).abs().max().item() <= tolerance
    torch_path, _ = render_module._torch_forward(image, sigma, kernel_size // 2)  # the CUDA / fallback path
    assert (torch_path - expected).abs().max().item() <= tolerance


def _sigma_away_from_switch(shape, seed):
    image, sigma = _inputs(shape, torch.float64, seed, low=1.3, high=6.0)
    sigma[:, :, ::3, ::2] = 0.4  # in-focus pixels, well below the switch
    return image.requires_grad_(), sigma.requires_grad_()


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_gradcheck_image_and_sigma(kernel_size):
    image, sigma = _sigma_away_from_switch((1, 2, 5, 6), seed=1)
    assert torch.autograd.gradcheck(lambda i, s: render_defocus(i, s, kernel_size), (image, sigma))


def test_backward_equals_reference_autograd_on_both_paths():
    image, sigma = _sigma_away_from_switch((2, 3, 11, 9), seed=2)
    grad_out = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    expected = torch.autograd.grad((render_defocus_reference(image, sigma, 7) * grad_out).sum(), (image, sigma))
    fast = torch.autograd.grad((render_defocus(image, sigma, 7) * grad_out).sum(), (image, sigma))
    out, denominator = render_module._torch_forward(image.detach(), sigma.detach(), 3)
    torch_path = render_module._torch_backward(image.detach(), sigma.detach(), out, denominator, grad_out, 3)
    for got in (fast, torch_path):
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-10)
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 2])
def test_fast_path_with_one_and_two_threads(threads):
    """A one-thread budget (a Ray worker with <= 1 CPU) runs the serial kernels; both equal the reference."""
    image, sigma = _sigma_away_from_switch((2, 3, 12, 10), seed=3)
    grad_out = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    expected = render_defocus_reference(image, sigma, 7)
    expected_grads = torch.autograd.grad((expected * grad_out).sum(), (image, sigma))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = render_defocus(image, sigma, 7)
        got_grads = torch.autograd.grad((got * grad_out).sum(), (image, sigma))
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    for grad, want in zip(got_grads, expected_grads):
        torch.testing.assert_close(grad, want, rtol=0, atol=1e-10)


def test_all_in_focus_returns_input_bit_for_bit():
    image, _ = _inputs((2, 3, 16, 12), torch.float32)
    sigma = torch.rand(2, 1, 16, 12)  # all <= 1
    assert torch.equal(render_defocus(image, sigma, 7), image)
    assert torch.equal(render_defocus(image, torch.ones(2, 1, 16, 12), 7), image)


def test_constant_image_stays_constant():
    _, sigma = _inputs((2, 3, 15, 15), torch.float64)
    image = torch.full((2, 3, 15, 15), 0.37, dtype=torch.float64)
    torch.testing.assert_close(render_defocus(image, sigma, 11), image, rtol=0, atol=1e-12)


def test_output_stays_within_input_range():
    image, sigma = _inputs((3, 3, 24, 19), torch.float32, seed=3)
    out = render_defocus(image, sigma, 7)
    assert out.min().item() >= image.min().item() - 1e-6 and out.max().item() <= image.max().item() + 1e-6


def test_blur_lowers_contrast_of_a_checkerboard():
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    image = ((x + y) % 2).to(torch.float32).expand(1, 1, 32, 32)
    blurred = render_defocus(image, torch.full((1, 1, 32, 32), 3.0), 7)
    assert blurred[..., 8:24, 8:24].std().item() < 0.1 * image.std().item()


@pytest.mark.parametrize("kernel_size", [2, 1, 8, 7.0])
def test_bad_kernel_size(kernel_size):
    image, sigma = _inputs((1, 3, 5, 5), torch.float32)
    with pytest.raises(ValueError, match="kernel_size"):
        render_defocus(image, sigma, kernel_size)


def test_bad_shapes_and_dtypes_name_the_argument():
    image, sigma = _inputs((1, 3, 5, 5), torch.float32)
    with pytest.raises(ValueError, match="sigma"):
        render_defocus(image, sigma[:, :, :4], 7)
    with pytest.raises(ValueError, match="image"):
        render_defocus(image[0], sigma, 7)
    with pytest.raises(ValueError, match="sigma"):
        render_defocus(image, sigma.double(), 7)
    with pytest.raises(TypeError, match="image"):
        render_defocus(image.to(torch.uint8), sigma, 7)


def test_focal_stack_renders_each_focus_distance():
    camera = ThinLensCamera.preset("nyuv2-5")
    aif, _ = _inputs((2, 3, 12, 10), torch.float32, seed=4)
    depth = torch.linspace(0.8, 7.0, 120).reshape(1, 1, 12, 10).repeat(2, 1, 1, 1)
    focus = [1.0, 2.5, 6.0]
    stack = render_focal_stack(aif, depth, focus, camera)
    assert stack.shape == (2, 3, 3, 12, 10)
    sigma = defocus_sigma(depth, focus, camera)
    for k in range(3):
        torch.testing.assert_close(stack[:, k], render_defocus_reference(aif, sigma[:, k : k + 1], 7))
    per_sample = torch.tensor([[1.0, 2.5, 6.0], [1.5, 4.0, 6.0]])
    expected = render_defocus_reference(aif[1:], defocus_sigma(depth[1:], 4.0, camera), 7)[0]
    torch.testing.assert_close(render_focal_stack(aif, depth, per_sample, camera)[1, 1], expected)


def test_near_and_far_focus_sharpen_different_regions():
    camera = ThinLensCamera.preset("nyuv2-dense")
    generator = torch.Generator().manual_seed(5)
    aif = torch.rand(1, 3, 20, 40, generator=generator)
    depth = torch.ones(1, 1, 20, 40)
    depth[..., 20:] = 8.0  # left half near (1 m), right half far (8 m)
    stack = render_focal_stack(aif, depth, [1.0, 8.0], camera)
    error = (stack - aif[:, None]).abs()
    assert error[0, 0, :, :, :18].max() == 0.0 and error[0, 0, :, :, 22:].mean() > 0.05  # near focus
    assert error[0, 1, :, :, 22:].max() == 0.0 and error[0, 1, :, :, :18].mean() > 0.05  # far focus


@pytest.mark.parametrize("kernel_size", [3, 7, 11])
def test_uniform_defocus_equals_the_renderer_with_a_constant_map(kernel_size):
    # one defocus per image, across the pass-through switch and beyond the window
    image = torch.rand(5, 3, 9, 13, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sigma = torch.tensor([0.3, 1.0, 1.0001, 2.5, 40.0], dtype=torch.float64)
    expected = render_defocus_reference(image, sigma[:, None, None, None].expand(5, 1, 9, 13).contiguous(), kernel_size)
    assert torch.allclose(render_uniform_defocus(image, sigma, kernel_size), expected, atol=1e-12, rtol=0)
    assert torch.equal(render_uniform_defocus(image, sigma, kernel_size)[:2], image[:2])  # in focus: bit for bit


def test_uniform_defocus_names_bad_arguments():
    image = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="sigma"):
        render_uniform_defocus(image, torch.ones(3))
    with pytest.raises(ValueError, match="kernel_size"):
        render_uniform_defocus(image, torch.ones(2), 4)


def _impulse_response(sigmas, kernel_size, size=None):
    """The 2-D kernels the reference renderer applies: each sigma in turn over a centred unit impulse."""
    size = size or 4 * kernel_size + 1
    image = torch.zeros(1, 1, size, size, dtype=torch.float64)
    image[..., size // 2, size // 2] = 1.0
    for sigma in sigmas:
        image = render_defocus_reference(image, torch.full((1, 1, size, size), float(sigma), dtype=torch.float64), kernel_size)
    return image[0, 0]


@pytest.mark.parametrize("kernel_size", [3, 7, 11])
def test_window_variance_is_the_variance_of_the_rendered_impulse(kernel_size):
    sigma = torch.tensor([0.5, 1.0, 1.2, 2.0, 3.5, 6.0, 40.0], dtype=torch.float64)
    offsets = torch.arange(4 * kernel_size + 1, dtype=torch.float64) - 2 * kernel_size
    for value, variance in zip(sigma, window_variance(sigma, kernel_size)):
        row = _impulse_response([value], kernel_size).sum(dim=0)  # marginal along x
        assert float(variance) == pytest.approx(float((row * offsets**2).sum()), abs=1e-12)
    # without the window it is sigma^2 / 4 (the taps are a Gaussian of standard deviation sigma / 2) ...
    assert float(window_variance(torch.tensor(3.0, dtype=torch.float64), 41)) == pytest.approx(9 / 4, rel=1e-9)
    # ... and the window caps it at the box's
    box = (kernel_size**2 - 1) / 12
    assert float(window_variance(torch.tensor(1e4, dtype=torch.float64), kernel_size)) == pytest.approx(box, rel=1e-6)


def test_sigma_for_variance_inverts_window_variance():
    sigma = torch.tensor([1.01, 1.5, 2.0, 3.0, 4.5, 8.0], dtype=torch.float64)
    variance = window_variance(sigma, 7)
    assert torch.allclose(sigma_for_variance(variance, 7), sigma, rtol=1e-6)
    assert torch.equal(sigma_for_variance(torch.tensor([0.0, 0.01], dtype=torch.float64), 7), torch.zeros(2, dtype=torch.float64))
    assert float(sigma_for_variance(torch.tensor(4.0, dtype=torch.float64), 7)) == pytest.approx(64 * 7)  # the box: unreachable


def _uint8_reference(aif, depth, focus, camera, kernel_size):
    """The obviously correct 8-bit stack: the unfold reference per focus distance, then to_uint8."""
    sigma = defocus_sigma(depth[None], focus, camera)[0]  # (S, H, W)
    images = aif[None].expand(len(focus), *aif.shape).contiguous()
    return to_uint8(render_defocus_reference(images, sigma[:, None].contiguous(), kernel_size))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel_size", [3, 7, 11])
@pytest.mark.parametrize("height, width", [(17, 23), (2, 9), (1, 1), (12, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_uint8_stack_equals_the_rounded_reference(threads, kernel_size, height, width, dtype):
    camera = ThinLensCamera.preset("nyuv2-dense")
    generator = torch.Generator().manual_seed(kernel_size + height)
    aif = torch.rand(3, height, width, generator=generator, dtype=dtype) * 1.2 - 0.1  # beyond [0, 1]: clamped
    depth = 0.5 + 9.0 * torch.rand(1, height, width, generator=generator, dtype=dtype)
    focus = torch.linspace(1.0, 9.0, 7, dtype=dtype)
    expected = _uint8_reference(aif, depth, focus, camera, kernel_size)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = render_focal_stack_uint8(aif, depth, focus, camera, kernel_size)
    finally:
        torch.set_num_threads(previous)
    assert got.shape == (7, height, width, 3) and got.dtype == torch.uint8
    difference = (got.int() - expected.int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() <= 1e-3  # one level, at rounding ties only
    if dtype == torch.float64:
        assert torch.equal(got, expected)


def test_uint8_stack_of_the_chunked_path_off_the_cpu():
    from daif.optics.render import _chunked_stack_uint8

    camera = ThinLensCamera.preset("nyuv2-dense")
    generator = torch.Generator().manual_seed(7)
    aif = torch.rand(3, 10, 14, generator=generator, dtype=torch.float64)
    depth = 0.5 + 9.0 * torch.rand(1, 10, 14, generator=generator, dtype=torch.float64)
    focus = torch.linspace(1.0, 9.0, 5, dtype=torch.float64)
    got = _chunked_stack_uint8(aif, depth, focus, camera, 7, chunk=2)
    assert torch.equal(got, _uint8_reference(aif, depth, focus, camera, 7))


def test_uint8_stack_names_bad_arguments():
    camera = ThinLensCamera.preset("nyuv2-dense")
    with pytest.raises(ValueError, match="aif"):
        render_focal_stack_uint8(torch.rand(1, 3, 4, 4), torch.ones(1, 4, 4), [2.0], camera)
    with pytest.raises(ValueError, match="depth"):
        render_focal_stack_uint8(torch.rand(3, 4, 4), torch.ones(1, 4, 5), [2.0], camera)
    with pytest.raises(ValueError, match="kernel_size"):
        render_focal_stack_uint8(torch.rand(3, 4, 4), torch.ones(1, 4, 4), [2.0], camera, 4)


RENDER_AND_REPORT = """
import sys, torch, numba
torch.set_num_threads(int(sys.argv[1]))
from daif.optics import render_defocus
render_defocus(torch.rand(1, 3, 16, 16), 4 * torch.rand(1, 1, 16, 16))
try:
    numba.threading_layer()
    print("pool started")
except ValueError:
    print("no pool")
"""


@pytest.mark.slow
def test_a_one_thread_render_never_starts_numbas_thread_pool(tmp_path):
    """A worker that reserved one CPU renders with the serial kernels. numba's OpenMP pool must not start:
    it spin-waits between kernels and resets the OpenMP thread count torch's own kernels use. Checked with
    the threaded kernels compiled first into the same disk cache (the cache must keep the variants apart)."""
    import os
    import subprocess
    import sys

    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def run(threads: int) -> str:
        result = subprocess.run([sys.executable, "-c", RENDER_AND_REPORT, str(threads)], env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip().splitlines()[-1]

    assert run(2) == "pool started"  # two threads: the threaded kernels (and their cache entries)
    assert run(1) == "no pool"


@pytest.mark.parametrize("kernel_size", [3, 7, 15])
def test_window_support_is_where_the_window_keeps_nine_tenths_of_the_blurs_variance(kernel_size):
    # the variance of a point's response through render_defocus itself, against sigma^2 / 4 unclipped
    point = torch.zeros(1, 1, 4 * kernel_size + 1, 4 * kernel_size + 1, dtype=torch.float64)
    centre = 2 * kernel_size
    point[..., centre, centre] = 1.0

    def share(sigma: float) -> float:
        profile = render_defocus(point, torch.full_like(point, sigma), kernel_size)[0, 0].sum(0)
        offsets = torch.arange(profile.numel(), dtype=torch.float64) - centre
        return float((profile * offsets**2).sum() / profile.sum()) / (sigma**2 / 4)

    support = window_support(kernel_size)
    assert share(support) == pytest.approx(0.9, abs=1e-6)
    assert share(support * 0.9) > 0.9 > share(support * 1.1)
    assert 0.38 * kernel_size < support < 0.44 * kernel_size
