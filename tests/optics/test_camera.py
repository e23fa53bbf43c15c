import json

import numpy as np
import pytest

from daif.optics import CAMERA_PRESETS, ThinLensCamera, get_preset


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
