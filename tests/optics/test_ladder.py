import math

import pytest
import torch

from daif.optics import LADDER_RATIO, get_preset, ladder_sigmas, render_defocus, render_defocus_ladder, render_ladder_reference
from daif.optics.ladder import _render_dense, axis_operator, rung_coordinate, rung_spacing


def _image(shape, dtype=torch.float64, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _on_rungs(shape, max_sigma, dtype=torch.float64, seed=1):
    rungs = torch.tensor(ladder_sigmas(max_sigma), dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    sigma = rungs[torch.randint(0, len(rungs), (shape[0], 1, *shape[2:]), generator=generator)]
    sigma[:, :, ::5, ::3] = 0.6  # in focus: passed through
    return sigma


def _point_spread(response: torch.Tensor, centre: int) -> float:
    """Variance [px^2] along the last axis of a point source's response."""
    profile = response[0, 0].sum(0)
    offsets = torch.arange(profile.numel(), dtype=profile.dtype) - centre
    return float((profile * offsets**2).sum() / profile.sum())


def test_rungs_are_geometric_from_one_to_the_support():
    rungs = ladder_sigmas(16.0)
    assert rungs[0] == 1.0 and rungs[-1] == pytest.approx(16.0) and len(rungs) == 9
    assert all(b / a == pytest.approx(LADDER_RATIO) for a, b in zip(rungs, rungs[1:]))
    assert ladder_sigmas(0.5) == [1.0, LADDER_RATIO]


@pytest.mark.parametrize("shape", [(2, 3, 13, 21), (1, 1, 40, 9), (1, 2, 1, 33)])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_on_rungs_it_is_the_direct_per_pixel_gaussian_sum(shape, dtype, tolerance):
    image, sigma = _image(shape, dtype), _on_rungs(shape, 16.0, dtype)
    expected = render_ladder_reference(image.double(), sigma.double())
    assert (render_defocus_ladder(image, sigma, 16.0).double() - expected).abs().max().item() <= tolerance


def test_rungs_beyond_the_benchmark_support_through_the_coarse_grid():
    # sigma up to 32 px: rungs 22.6 and 32 use coarse grids of spacing 6 and 8, wider than the image's short side
    image, sigma = _image((1, 2, 30, 47)), _on_rungs((1, 2, 30, 47), 32.0)
    assert [rung_spacing(s) for s in ladder_sigmas(32.0)] == [1, 1, 1, 1, 1, 1, 2, 3, 4, 6, 8]
    assert (render_defocus_ladder(image, sigma) - render_ladder_reference(image, sigma)).abs().max() < 1e-6


def test_a_coarse_rung_is_the_gaussian_up_to_its_alias_bound():
    # M = A^T A through the coarse grid against the sampled Gaussian, row-normalised, away from the borders
    rung = 16.0
    matrix = axis_operator(400, rung).matrix
    offsets = torch.arange(400, dtype=torch.float64)[:, None] - torch.arange(400, dtype=torch.float64)[None, :]
    gaussian = torch.exp(-2.0 * offsets**2 / rung**2)
    inner = slice(100, 300)  # rows whose Gaussian mass lies inside the axis
    measured = torch.from_numpy(matrix)[inner] / torch.from_numpy(matrix)[inner].sum(1, keepdim=True)
    expected = gaussian[inner] / gaussian[inner].sum(1, keepdim=True)
    bound = 2 * math.exp(-2 * math.pi**2 * (rung / (4 * rung_spacing(rung))) ** 2)  # Poisson summation's first alias term
    assert bound < 1e-7 and (measured - expected).abs().max() <= 2 * bound * expected.max()


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_the_cpu_kernels_equal_the_dense_matrix_form_with_gradients(dtype, tolerance):
    # the fused CPU kernels (rows, skipped rungs, coarse rows) against M_y I M_x^T as dense products, autograd
    image = _image((2, 3, 37, 52), dtype).requires_grad_()
    ramp = torch.linspace(0.5, 13.0, 52, dtype=dtype).expand(2, 1, 37, 52).clone()  # each row spans a few rungs
    ramp[1] = 0.5 + 12.5 * _image((1, 1, 37, 52), dtype, seed=5)  # every rung in every row
    sigma = ramp.requires_grad_()
    weights = _image((2, 3, 37, 52), dtype, seed=6)
    fast = render_defocus_ladder(image, sigma)
    rungs = ladder_sigmas(float(sigma.detach().max()))
    dense = torch.where(sigma > 1, _render_dense(image, rung_coordinate(sigma), rungs), image)
    fast_grads = torch.autograd.grad((fast * weights).sum(), (image, sigma))
    dense_grads = torch.autograd.grad((dense * weights).sum(), (image, sigma))
    assert (fast - dense).abs().max() <= tolerance
    assert all((a - b).abs().max() <= tolerance * 10 * b.abs().max() for a, b in zip(fast_grads, dense_grads))


def test_between_rungs_the_blend_has_the_gaussians_variance():
    # a point far from the border under one sigma: the response is the blend of two rung kernels; its
    # variance is the hat weights' mix of the rungs' variances, which the weights set to sigma^2 / 4
    point = torch.zeros(1, 1, 161, 161, dtype=torch.float64)
    point[..., 80, 80] = 1.0
    for sigma in (2.4, 3.3, 7.0, 13.0):
        response = render_defocus_ladder(point, torch.full_like(point, sigma), 16.0)
        assert _point_spread(response, 80) == pytest.approx(sigma**2 / 4, rel=2e-3)


def test_no_window_ceiling_where_the_windowed_layer_saturates():
    point = torch.zeros(1, 1, 161, 161, dtype=torch.float64)
    point[..., 80, 80] = 1.0
    flat = torch.full_like(point, 16.0)
    assert _point_spread(render_defocus_ladder(point, flat, 16.0), 80) == pytest.approx(64.0, rel=1e-3)
    assert _point_spread(render_defocus(point, flat, 7), 80) < (7**2 - 1) / 12  # the box's variance caps K = 7


def test_without_a_support_the_rungs_reach_the_largest_blur():
    image, sigma = _image((1, 3, 20, 20)), _on_rungs((1, 3, 20, 20), 11.4)
    assert torch.equal(render_defocus_ladder(image, sigma), render_defocus_ladder(image, sigma, float(sigma.max())))
    assert (render_defocus_ladder(image, sigma) - render_ladder_reference(image, sigma)).abs().max() < 1e-6


def test_physical_properties():
    image = _image((2, 3, 30, 25))
    sigma = 0.5 + 15.0 * _image((2, 1, 30, 25), seed=3)
    out = render_defocus_ladder(image, sigma, 16.0)
    assert out.min() >= image.min() - 1e-12 and out.max() <= image.max() + 1e-12  # a weighted mean of the input
    constant = torch.full_like(image, 0.37)
    assert (render_defocus_ladder(constant, sigma, 16.0) - 0.37).abs().max() < 1e-12  # borders included
    in_focus = torch.full_like(sigma, 0.99)
    assert torch.equal(render_defocus_ladder(image, in_focus, 16.0), image)


def test_gradcheck_image_and_sigma_between_rungs():
    image = _image((1, 2, 7, 8)).requires_grad_()
    sigma = (1.1 + 6.0 * _image((1, 1, 7, 8), seed=4)).requires_grad_()
    rungs = torch.tensor(ladder_sigmas(8.0), dtype=torch.float64)
    assert (sigma[..., None] - rungs).abs().min() > 1e-4  # gradcheck steps 1e-6: finite differences stay off the kinks
    assert torch.autograd.gradcheck(lambda i, s: render_defocus_ladder(i, s, 8.0), (image, sigma))


def test_a_blur_beyond_the_support_is_refused():
    image = _image((1, 3, 8, 8))
    with pytest.raises(ValueError, match="exceeds the renderer's support max_sigma = 4"):
        render_defocus_ladder(image, torch.full((1, 1, 8, 8), 4.5, dtype=torch.float64), 4.0)
    with pytest.raises(ValueError, match="finite"):
        render_defocus_ladder(image, torch.full((1, 1, 8, 8), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="max_sigma"):
        render_defocus_ladder(image, torch.ones(1, 1, 8, 8, dtype=torch.float64), 0.0)
    with pytest.raises(ValueError, match="sigma"):
        render_defocus_ladder(image, torch.ones(1, 1, 8, 7, dtype=torch.float64), 4.0)


def test_no_window_is_kernel_size_none_across_the_renderer_helpers():
    from daif.optics import render_focal_stack, render_uniform_defocus, sigma_for_variance, window_support, window_variance

    image = _image((2, 3, 18, 22))
    sigma = _on_rungs((2, 3, 18, 22), 8.0)
    assert torch.equal(render_defocus(image, sigma, None), render_defocus_ladder(image, sigma))
    # a uniform sigma on a rung: the separable search renderer equals the direct per-pixel sum
    rung = torch.tensor([2.0 * 2**0.5, 8.0], dtype=torch.float64)
    uniform = render_uniform_defocus(image, rung, None)
    expected = render_ladder_reference(image, rung[:, None, None, None].expand(2, 1, 18, 22))
    assert (uniform - expected).abs().max() < 1e-6
    values = torch.tensor([0.5, 1.5, 4.0, 16.0], dtype=torch.float64)
    assert torch.allclose(window_variance(values, None), torch.tensor([0.0, 0.5625, 4.0, 64.0], dtype=torch.float64))
    assert torch.allclose(sigma_for_variance(window_variance(values[1:], None), None), values[1:])
    assert window_support(None) == math.inf
    near = torch.full((1, 1, 18, 22), 0.75, dtype=torch.float64)  # sigma 15.3 px at focus 6 m: beyond any 7x7 window
    stack = render_focal_stack(image[:1], near, [6.0], get_preset("nyuv2-5").camera, None)
    expected = render_ladder_reference(image[:1], torch.full_like(near, 15.318627450980394))
    assert (stack[:, 0] - render_defocus_ladder(image[:1], torch.full_like(near, 15.318627450980394))).abs().max() < 1e-12
    assert (stack[:, 0] - expected).abs().max() < 0.05  # between rungs: the blend


def test_one_thread_and_two_threads_give_the_same_bits():
    # the serial kernels (a Ray worker with one CPU) and the threaded ones compute each row the same way
    image, sigma = _image((2, 3, 29, 41), torch.float32), 0.5 + 15.5 * _image((2, 1, 29, 41), torch.float32, seed=7)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = render_defocus_ladder(image, sigma)
        torch.set_num_threads(2)
        threaded = render_defocus_ladder(image, sigma)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(serial, threaded) and (threaded - render_ladder_reference(image.double(), sigma.double())).abs().max() < 0.05
