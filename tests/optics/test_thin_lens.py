import pytest
import torch

from daif.optics import ThinLensCamera, circle_of_confusion, defocus_sigma

CAMERA = ThinLensCamera.preset("nyuv2-5")


def test_coc_matches_hand_computed_value():
    # f = 50 mm, N = 8: A = 6.25 mm; s_f = 1 m, d = 2 m: c = A f |d - s_f| / (d (s_f - f)) = 6.25e-3 * 0.05 * 1 / (2 * 0.95)
    depth = torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64)
    expected = 6.25e-3 * 0.05 * 1.0 / (2.0 * 0.95)
    assert circle_of_confusion(depth, 1.0, CAMERA).item() == pytest.approx(expected, rel=1e-12)
    assert defocus_sigma(depth, 1.0, CAMERA).item() == pytest.approx(expected / (2 * 12e-6), rel=1e-12)


def test_coc_from_sensor_distance_form():
    # c = A v |1/f - 1/v - 1/d| with v = s_f f / (s_f - f): the other form in method.md
    f, aperture = CAMERA.focal_length, CAMERA.aperture
    depth = torch.linspace(0.2, 9.5, 50, dtype=torch.float64).reshape(1, 1, 5, 10)
    for focus in (1.0, 2.5, 6.0):
        v = focus * f / (focus - f)
        expected = aperture * v * (1 / f - 1 / v - 1 / depth).abs()
        torch.testing.assert_close(circle_of_confusion(depth, focus, CAMERA), expected, rtol=1e-10, atol=1e-15)


def test_zero_at_focus_and_growing_on_both_sides():
    focus = 2.5
    depth = torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 9.0], dtype=torch.float64).reshape(1, 1, 1, 7)
    sigma = defocus_sigma(depth, focus, CAMERA)[0, 0, 0]
    assert sigma[3].item() == 0.0
    assert bool(torch.all(sigma[:3].diff() < 0)) and bool(torch.all(sigma[3:].diff() > 0))


def test_broadcast_shapes():
    depth = torch.rand(2, 1, 4, 6) + 0.5
    assert defocus_sigma(depth, 1.0, CAMERA).shape == (2, 1, 4, 6)
    assert defocus_sigma(depth, [1.0, 2.0, 3.0], CAMERA).shape == (2, 3, 4, 6)
    per_sample = torch.tensor([[1.0, 2.0, 3.0], [1.5, 2.5, 3.5]])
    sigma = defocus_sigma(depth, per_sample, CAMERA)
    assert sigma.shape == (2, 3, 4, 6)
    torch.testing.assert_close(sigma[1, 2], defocus_sigma(depth[1:2], 3.5, CAMERA)[0, 0])
    stacked_depth = torch.rand(2, 3, 4, 6) + 0.5
    assert defocus_sigma(stacked_depth, per_sample, CAMERA).shape == (2, 3, 4, 6)


def test_differentiable_wrt_depth():
    depth = (torch.rand(1, 1, 3, 3, dtype=torch.float64) * 3 + 3.0).requires_grad_()
    assert torch.autograd.gradcheck(lambda d: defocus_sigma(d, [1.0, 2.0], CAMERA), (depth,))


def test_bad_arguments():
    depth = torch.ones(1, 1, 2, 2)
    with pytest.raises(ValueError, match="focus_distance"):
        defocus_sigma(depth, 0.05, CAMERA)  # at the focal length
    with pytest.raises(ValueError, match="focus_distance"):
        defocus_sigma(depth, [1.0, 0.01], CAMERA)
    with pytest.raises(ValueError, match="depth"):
        defocus_sigma(torch.zeros(1, 1, 2, 2), 1.0, CAMERA)
    with pytest.raises(ValueError, match="depth"):
        defocus_sigma(torch.ones(2, 2), 1.0, CAMERA)
