import struct
import warnings
import zlib

import numpy as np
import pytest
from conftest import PHOTOS
from PIL import Image

from generator.data.images import ImageError, find_images, load_image, select_images


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


def test_unreadable_files_are_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for index in range(3):
        Image.new("RGB", (10, 10), (index * 50, 0, 0)).save(tmp_path / f"good{index}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    Image.new("L", (50, 50)).save(tmp_path / "bomb.png")  # 2,500 pixels: over twice the limit
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    selection = select_images(tmp_path, 10, (8, 8, 3), seed=0)
    assert selection.images_found == 5
    assert selection.images_skipped == 2
    assert selection.pixels.shape == (3, 8, 8, 3)


def test_selection_is_deterministic_and_recursive():
    first = select_images(PHOTOS, 20, (16, 16, 3), seed=3)
    again = select_images(PHOTOS, 20, (16, 16, 3), seed=3)
    other = select_images(PHOTOS, 20, (16, 16, 3), seed=4)
    assert first.paths == again.paths
    assert np.array_equal(first.pixels, again.pixels)
    assert first.paths != other.paths
    assert len(find_images(PHOTOS.parent)) == 260 + 1797  # photos/ and digits/, recursively


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    """Pillow's own conversion clips 16-bit values at 255: a 16-bit photo would turn white."""
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    assert load_image(tmp_path / "g16.png", 1, 4, 1)[0, :, 0].tolist() == [0, 1, 128, 255]
    assert load_image(tmp_path / "g16.png", 1, 4, 3)[0, 2].tolist() == [128, 128, 128]


def _png(path, width: int, height: int, depth: int, colour: int, rows: bytes) -> None:
    """A PNG written by hand, for what Pillow cannot write (16-bit RGB) or should not (a
    header claiming more pixels than the data holds)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_sixteen_bit_rgb_png_reads_as_eight_bit(tmp_path):
    row = b"\0" + np.array([65535, 32896, 257], ">u2").tobytes()  # one pixel
    _png(tmp_path / "rgb16.png", 1, 1, 16, 2, row)
    assert load_image(tmp_path / "rgb16.png", 1, 1, 3)[0, 0].tolist() == [255, 128, 1]


def test_cmyk_jpeg_palette_transparency_and_animation_load(tmp_path):
    rgb = np.asarray(Image.open(PHOTOS / "astronaut_00.jpg").convert("RGB").resize((32, 32)))
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png", transparency=0)
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    reference = load_image(tmp_path / "rgb.png", 16, 16, 3).astype(int)
    cmyk = load_image(tmp_path / "cmyk.jpg", 16, 16, 3).astype(int)
    assert np.abs(cmyk - reference).mean() < 3  # the same picture, not inverted
    palette = load_image(tmp_path / "palette.png", 16, 16, 3).astype(int)
    assert np.abs(palette - reference).mean() < 10  # palette quantization only
    assert load_image(tmp_path / "anim.gif", 4, 4, 3)[0, 0].tolist() == [255, 0, 0]  # frame 1


def test_large_images_below_the_bomb_limit_load_without_a_warning(tmp_path, monkeypatch):
    """Pillow warns between its limit and twice it; the image loads, and the warning would add
    a line to the CLI's one-line output."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("L", (40, 40), 7).save(tmp_path / "big.png")  # 1,600 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "big.png", 4, 4, 1).max() == 7


def _truncated_jpeg(path):
    data = (PHOTOS / "astronaut_00.jpg").read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing.png", lambda p: None, "does not exist"),
        ("folder.png", lambda p: p.mkdir(), "is a folder"),
        ("empty.png", lambda p: p.write_bytes(b""), "is not an image Pillow can read"),
        ("corrupt.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nxx"), "is not an image"),
        ("cut.jpg", _truncated_jpeg, "cannot be decoded"),
        ("bomb.png", lambda p: _png(p, 20000, 20000, 8, 0, b"\0"), "is too large to decode"),
        ("loop.png", lambda p: p.symlink_to(p), "cannot be decoded (Too many levels"),
        (
            "float.tif",
            lambda p: Image.fromarray(np.ones((4, 4), np.float32)).save(p),
            "has floating-point pixels",
        ),
        (
            "int32.tif",
            lambda p: Image.fromarray(np.full((4, 4), 70000, np.int32)).save(p),
            "has 32-bit integer pixels outside 0..65535",
        ),
    ],
)
def test_unusable_files_raise_one_error_type_with_the_reason(tmp_path, name, make, reason):
    make(tmp_path / name)
    with pytest.raises(ImageError) as caught:
        load_image(tmp_path / name, 4, 4, 3)
    assert str(caught.value).startswith(reason)
    assert str(tmp_path) not in str(caught.value)  # callers name the file
