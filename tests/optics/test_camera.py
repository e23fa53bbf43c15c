import json

import numpy as np
import pytest

from daif.optics import CAMERA_PRESETS, MAX_FOCUS_DISTANCE, ThinLensCamera, check_focus_distance, get_preset


def test_presets_hold_method_values():
    assert ThinLensCamera.preset("nyuv2-5") == ThinLensCamera(0.05, 8.0, 12e-6)
    assert ThinLensCamera.preset("nyuv2-dense") == ThinLensCamera(0.017, 1.2, 12e-6)
    assert ThinLensCamera.preset("defocusnet") == ThinLensCamera(7.2e-3, 1.2, 5.6e-6)
    assert get_preset("nyuv2-5").focus_distances == (1.0, 1.5, 2.5, 4.0, 6.0)
    assert get_preset("defocusnet").focus_distances == (0.3, 0.45, 0.75, 1.2, 1.8)
    dense = np.array(get_preset("nyuv2-dense").focus_distances)
    assert dense.shape == (100,) and dense[0] == 1.0 and dense[-1] == 9.0
    np.testing.assert_allclose(np.diff(dense), 8.0 / 99)
    assert get_preset("defocusnet").depth_range == (0.1, 3.0)
    assert set(CAMERA_PRESETS) == {"nyuv2-5", "nyuv2-dense", "defocusnet"}


def test_aperture_is_f_over_n():
    assert ThinLensCamera(0.05, 8.0, 12e-6).aperture == pytest.approx(0.05 / 8.0)


def test_json_round_trip():
    camera = ThinLensCamera.preset("defocusnet")
    assert ThinLensCamera.from_dict(json.loads(json.dumps(camera.to_dict()))) == camera


def test_parse_preset_and_triplet():
    assert ThinLensCamera.parse("nyuv2-5") == ThinLensCamera.preset("nyuv2-5")
    assert ThinLensCamera.parse("0.05,8,12e-6") == ThinLensCamera(0.05, 8.0, 12e-6)
    with pytest.raises(ValueError, match="camera"):
        ThinLensCamera.parse("0.05,8")


@pytest.mark.parametrize(
    "args, field",
    [((0.0, 8.0, 1e-5), "focal_length"), ((0.05, -1.0, 1e-5), "f_number"), ((0.05, 8.0, float("inf")), "pixel_size")],
)
def test_bad_camera_values_name_the_field(args, field):
    with pytest.raises(ValueError, match=field):
        ThinLensCamera(*args)


def test_bad_types_and_keys():
    with pytest.raises(TypeError, match="focal_length"):
        ThinLensCamera("0.05", 8.0, 1e-5)
    with pytest.raises(ValueError, match="unknown"):
        ThinLensCamera.from_dict({"focal_length": 0.05, "f_number": 8.0, "pixel_size": 1e-5, "zoom": 2})
    with pytest.raises(ValueError, match="preset"):
        ThinLensCamera.preset("nyuv3")


@pytest.mark.parametrize(
    ("args", "message"),
    [((0.05, 1e-300, 12e-6), "ThinLensCamera.f_number: expected a plausible value in [0.5, 1000], got 1e-300"),
     ((0.05, 8.0, 1e-300), "ThinLensCamera.pixel_size: expected a plausible value in [1e-07, 0.001] m, got 1e-300"),
     ((1e-300, 8.0, 12e-6), "ThinLensCamera.focal_length: expected a plausible value in [0.0001, 10] m, got 1e-300"),
     ((50.0, 8.0, 12e-6), "ThinLensCamera.focal_length: expected a plausible value in [0.0001, 10] m, got 50.0"),
     ((0.05, 0.4, 12e-6), "ThinLensCamera.f_number: expected a plausible value in [0.5, 1000], got 0.4")],
    ids=["N-1e-300", "p-1e-300", "f-1e-300", "f-50m", "N-below-0.5"],
)
def test_implausible_cameras_are_refused_naming_the_field_and_range(args, message):
    with pytest.raises(ValueError) as raised:
        ThinLensCamera(*args)
    assert str(raised.value) == message


def test_the_plausible_ranges_hold_every_preset_and_their_ends():
    for preset in CAMERA_PRESETS.values():
        assert ThinLensCamera.from_dict(preset.camera.to_dict()) == preset.camera
    assert ThinLensCamera(1e-4, 0.5, 1e-7).aperture == pytest.approx(2e-4)
    assert ThinLensCamera(10.0, 1000.0, 1e-3).aperture == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("value", "focal_length", "message"),
    [(float("nan"), 0.05, "nan must be finite"), (float("inf"), 0.05, "inf must be finite"),
     (1e301, 0.05, "1e+301 m must be at most 10000 m (daif.optics.MAX_FOCUS_DISTANCE)"),
     (0.05, 0.05, "0.05 m must be above the focal length 0.05 m"), (0.0, 0.0, "0 m must be positive"),
     ("1", 0.0, "expected a number of metres, got '1'")],
)
def test_a_focus_distance_must_be_finite_beyond_the_lens_and_at_most_the_bound(value, focal_length, message):
    with pytest.raises(ValueError) as raised:
        check_focus_distance(value, focal_length)
    assert str(raised.value) == message


def test_a_focus_distance_in_range_is_returned_as_a_float():
    assert check_focus_distance(np.float32(2.5), 0.05) == 2.5 and check_focus_distance(MAX_FOCUS_DISTANCE) == 1e4
