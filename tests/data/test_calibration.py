import numpy as np
import pytest
from conftest import PHOTOS
from PIL import Image

from generator.config.schema import CalibrationConfig
from generator.data.calibration import load_calibration_set
from generator.data.pixels import pixels_to_float
from generator.errors import UserError


def test_calibration_and_held_out_images_do_not_overlap():
    config = CalibrationConfig(data=PHOTOS, samples=30, holdout=10, input_range=(0.0, 1.0))
    images = load_calibration_set(config, (24, 24, 3), seed=0)
    assert images.calibration.shape == (30, 24, 24, 3)
    assert images.held_out.shape == (10, 24, 24, 3)
    flat_calibration = {image.tobytes() for image in images.calibration}
    assert not any(image.tobytes() in flat_calibration for image in images.held_out)
    assert images.images_found == 260


def test_few_images_are_split_in_proportion(tmp_path):
    for index in range(10):
        Image.new("RGB", (8, 8), (index * 20, 0, 0)).save(tmp_path / f"{index}.png")
    config = CalibrationConfig(data=tmp_path, samples=200, holdout=50, input_range=(0.0, 1.0))
    images = load_calibration_set(config, (8, 8, 3), seed=0)
    assert (len(images.calibration), len(images.held_out)) == (8, 2)


def test_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"broken")
    config = CalibrationConfig(data=tmp_path, samples=10, holdout=5, input_range=(0.0, 1.0))
    with pytest.raises(UserError, match=r"0 usable image\(s\) \(1 image files, 1 unreadable\)"):
        load_calibration_set(config, (8, 8, 3), seed=0)


def test_pixels_map_linearly_onto_the_input_range():
    pixels = np.array([0, 128, 255], np.uint8)
    assert pixels_to_float(pixels, (0.0, 1.0)).tolist() == pytest.approx([0, 128 / 255, 1])
    assert pixels_to_float(pixels, (-1.0, 0.9921875)).tolist() == pytest.approx([-1, 0, 0.9921875])
