import numpy as np
from conftest import PHOTOS
from PIL import Image

from generator.images import find_images, load_image, select_images


def test_exif_orientation_is_honoured(tmp_path):
    # Stored 40 wide x 20 high, left half black, right half white; EXIF 6 = rotate 90° CW.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    pixels = load_image(tmp_path / "rotated.jpg", 40, 20, 3)  # displayed: 20 wide, 40 high
    assert pixels.shape == (40, 20, 3)
    assert pixels[:15].mean() < 30  # top is the old left half: black
    assert pixels[25:].mean() > 225  # bottom is the old right half: white


def test_modes_convert_to_what_the_model_needs(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(tmp_path / "rgba.png")
    Image.new("P", (8, 8), 3).save(tmp_path / "palette.png")
    Image.new("L", (8, 8), 200).save(tmp_path / "grey.png")
    for name in ("rgba.png", "palette.png", "grey.png"):
        assert load_image(tmp_path / name, 4, 6, 3).shape == (4, 6, 3)
        assert load_image(tmp_path / name, 4, 6, 1).shape == (4, 6, 1)
    assert load_image(tmp_path / "grey.png", 4, 4, 3)[0, 0].tolist() == [200, 200, 200]
    red = load_image(tmp_path / "rgba.png", 4, 4, 1)[0, 0, 0]
    assert red == round(0.299 * 255)  # ITU-R 601 luma of pure red


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    for index in range(3):
        Image.new("RGB", (10, 10), (index * 50, 0, 0)).save(tmp_path / f"good{index}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    selection = select_images(tmp_path, 10, (8, 8, 3), seed=0)
    assert selection.images_found == 4
    assert selection.images_skipped == 1
    assert selection.pixels.shape == (3, 8, 8, 3)


def test_selection_is_deterministic_and_recursive():
    first = select_images(PHOTOS, 20, (16, 16, 3), seed=3)
    again = select_images(PHOTOS, 20, (16, 16, 3), seed=3)
    other = select_images(PHOTOS, 20, (16, 16, 3), seed=4)
    assert first.paths == again.paths
    assert np.array_equal(first.pixels, again.pixels)
    assert first.paths != other.paths
    assert len(find_images(PHOTOS.parent)) == 260 + 1797  # photos/ and digits/, recursively
