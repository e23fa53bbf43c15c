"""Alignment for focus breathing (daif.align): stacks made with scipy (not our warp) by scaling a texture about
the centre by known factors, shifting it and blurring each image differently; the estimate against the
transforms derived by hand, the aligned images against the reference, and refusals of what cannot be aligned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform, gaussian_filter

from daif.align import (
    AlignmentError,
    ImageAlignment,
    align_stack,
    estimate_alignment,
    overlap_mask,
    warp_image,
    warp_stack,
)
from daif.data.synthetic import make_texture

SIZE = (240, 320)  # (H, W)
MAGNIFICATIONS = (1.00, 1.01, 1.02, 1.03, 1.04)  # image k shows the texture m_k times as large
SHIFTS = ((0.0, 0.0), (1.3, -0.7), (-1.1, 1.6), (0.4, 1.2), (-1.5, -0.9))  # (dx, dy) px, in texture pixels
BLURS = (3.0, 1.5, 0.3, 1.5, 3.0)  # Gaussian sigma [px]: far and near images most defocused
FOCUS = (2.2, 1.5, 1.0, 0.6, 0.35)  # metres: magnification grows as the focus nears, as a phone's does
NAMES = [f"img{k}.jpg" for k in range(5)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The estimate's tensors are small (<= 1024 px): on a busy 2-core machine two threads make it 20x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def texture(seed: int = 0) -> np.ndarray:
    return make_texture(np.random.default_rng(seed), SIZE)


def breathe(image: np.ndarray, magnification: float, shift: tuple[float, float], blur: float) -> np.ndarray:
    """(H, W, 3): out(x) = image(c + (x - c) / m - d), blurred by `blur` and quantised to 8 bits (scipy, cubic)."""
    centre = np.array([(SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2])
    offset = centre - centre / magnification - np.array([shift[1], shift[0]])
    out = np.stack([affine_transform(image[..., c], np.eye(2) / magnification, offset=offset, order=3, mode="reflect")
                    for c in range(3)], axis=-1)
    if blur:
        out = gaussian_filter(out, (blur, blur, 0))
    return np.round(np.clip(out, 0, 1) * 255) / 255


def as_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # (S, 3, H, W)


def expected_transforms(reference: int) -> list[tuple[float, float, float]]:
    """(scale, shift_x, shift_y) of each image to the reference, by hand: a texture point P appears at
    x_k = c + m_k (P - c + d_k), so x_k = c + (m_k / m_r)(x_r - c) + m_k (d_k - d_r)."""
    m_r, (dx_r, dy_r) = MAGNIFICATIONS[reference], SHIFTS[reference]
    return [(m / m_r, m * (dx - dx_r), m * (dy - dy_r)) for m, (dx, dy) in zip(MAGNIFICATIONS, SHIFTS)]


@pytest.fixture(scope="module")
def breathing():
    """(blurred stack, sharp stack, alignment estimated from the blurred one)."""
    base = texture()
    blurred = as_tensor([breathe(base, m, d, b) for m, d, b in zip(MAGNIFICATIONS, SHIFTS, BLURS)])
    sharp = as_tensor([breathe(base, m, d, 0.0) for m, d in zip(MAGNIFICATIONS, SHIFTS)])
    return blurred, sharp, estimate_alignment(blurred, FOCUS, NAMES)


def test_the_scales_and_shifts_are_those_the_stack_was_made_with(breathing):
    _, _, alignment = breathing
    assert alignment.reference == 4  # the narrowest field of view: the largest magnification
    for k, (expected, found) in enumerate(zip(expected_transforms(4), alignment.images)):
        assert abs(found.scale - expected[0]) < 0.002, (k, found, expected)
        assert abs(found.shift_x - expected[1]) < 0.3 and abs(found.shift_y - expected[2]) < 0.3, (k, found, expected)
        assert found.correlation_after >= found.correlation_before - 1e-3


def test_the_aligned_images_agree_with_the_reference(breathing):
    """The sharp images warped with the estimate match the sharp reference inside the overlap: a mean absolute
    difference under 0.02 (before alignment 0.05 to 0.14), within 0.002 of what the true transforms leave
    (resampling a texture with 2 px detail twice, by scipy and by torch, leaves about 0.014)."""
    _, sharp, alignment = breathing
    truth = dataclasses.replace(alignment, images=tuple(ImageAlignment(*t, 0.0, 0.0) for t in expected_transforms(4)))
    aligned, ideal = warp_stack(sharp, alignment), warp_stack(sharp, truth)
    inner = overlap_mask(alignment) & torch.from_numpy(np.pad(np.ones((SIZE[0] - 16, SIZE[1] - 16), bool), 8))  # scipy's border aside
    reference = sharp[alignment.reference]
    for k in range(5):
        before, after, best = ((images[k] - reference).abs()[:, inner].mean().item() for images in (sharp, aligned, ideal))
        assert after < 0.02 and after <= best + 0.002, (k, before, after, best)
        if k != alignment.reference:
            assert before > 3 * after, (k, before, after)


def test_the_overlap_is_the_box_every_image_covers(breathing):
    _, _, alignment = breathing
    height, width = SIZE
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    left = max(centre_x - (centre_x + t_x) / s for s, t_x, _ in expected_transforms(4))
    right = min(centre_x + (centre_x - t_x) / s for s, t_x, _ in expected_transforms(4))
    top = max(centre_y - (centre_y + t_y) / s for s, _, t_y in expected_transforms(4))
    bottom = min(centre_y + (centre_y - t_y) / s for s, _, t_y in expected_transforms(4))
    found_top, found_left, found_height, found_width = alignment.overlap
    assert abs(found_left - left) <= 1.5 and abs(found_top - top) <= 1.5
    assert abs(found_left + found_width - 1 - right) <= 1.5 and abs(found_top + found_height - 1 - bottom) <= 1.5
    assert 0 < found_width < width and found_height < height


def test_the_warp_is_scipys_affine_transform():
    """warp_image (torch grid_sample, bilinear) against scipy's order-1 affine transform of the same map."""
    image = torch.from_numpy(texture(3)).permute(2, 0, 1).double()
    scale, shift_x, shift_y = 0.97, 1.7, -2.4
    warped = warp_image(image, scale, shift_x, shift_y, mode="bilinear").numpy()
    centre = np.array([(SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2])
    offset = centre - scale * centre + np.array([shift_y, shift_x])  # input = scale * output + offset, (row, col)
    expected = np.stack([affine_transform(image[c].numpy(), np.eye(2) * scale, offset=offset, order=1) for c in range(3)])
    np.testing.assert_allclose(warped[:, 10:-10, 10:-10], expected[:, 10:-10, 10:-10], atol=1e-9)


def test_a_stack_without_breathing_passes_through_unchanged():
    base = texture(1)
    stack = as_tensor([breathe(base, 1.0, (0.0, 0.0), blur) for blur in (2.0, 0.5, 2.0)])
    aligned, alignment = align_stack(stack, (0.5, 1.0, 2.0), NAMES[:3])
    assert all(abs(a.scale - 1) < 2e-4 and abs(a.shift_x) < 0.03 and abs(a.shift_y) < 0.03 for a in alignment.images)
    assert torch.equal(aligned, stack) and alignment.overlap == (0, 0, *SIZE)


@pytest.mark.parametrize("odd", [0, 1, 3])
def test_an_unrelated_image_is_refused_naming_it(odd):
    """One image of another texture among four: named whether it is the anchor (index 1, the middle in focus
    order) or not; the message is one line."""
    base, other = texture(0), texture(7)
    images = [breathe(other if k == odd else base, 1 + 0.01 * k, (0, 0), 1.0 if k % 2 else 0.5) for k in range(4)]
    names = [f"/data/{k}.jpg" for k in range(4)]
    with pytest.raises(AlignmentError) as refused:
        estimate_alignment(as_tensor(images), (2.0, 1.0, 0.7, 0.5), names)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"/data/{odd}.jpg: alignment") and "--align none" in message


def test_scales_out_of_focus_order_are_refused():
    """Breathing changes the scale monotonically with the focus distance: a stack whose images are listed with
    shuffled focus distances is inconsistent. From near to far focus: b (scale 1.02 / 1.04), c (1), a (1 / 1.04):
    c, larger than both neighbours, is named."""
    base = texture(2)
    images = [breathe(base, m, (0, 0), 0.5) for m in (1.00, 1.02, 1.04)]
    with pytest.raises(AlignmentError, match=r"^c\.jpg: alignment refused: its estimated scale 1\.0000 breaks the focus order"):
        estimate_alignment(as_tensor(images), (2.0, 0.5, 1.0), ["a.jpg", "b.jpg", "c.jpg"])


def test_a_scale_beyond_breathing_is_refused():
    """c is 1.25 times as large as b (the anchor) and a: refused, whatever the search finds."""
    base = texture(4)
    images = [breathe(base, m, (0, 0), 0.5) for m in (1.0, 1.01, 1.25)]
    with pytest.raises(AlignmentError, match=r"^c\.jpg: alignment to b\.jpg refused: estimated scale 1\.2\d+ is outside \[0\.9, 1\.1\]"):
        estimate_alignment(as_tensor(images), (2.0, 1.0, 0.5), ["a.jpg", "b.jpg", "c.jpg"])


def test_bad_arguments_name_them():
    with pytest.raises(ValueError, match="too small to align"):
        estimate_alignment(torch.rand(2, 3, 40, 300), (1.0, 2.0), ["a", "b"])
    with pytest.raises(ValueError, match=r"^stack: expected shape \(S, 3, H, W\)"):
        estimate_alignment(torch.rand(2, 1, 100, 100), (1.0, 2.0), ["a", "b"])
