"""Find and load real images with Pillow, the way a camera frame reaches the model.

Each image is rotated as its EXIF orientation says, converted to RGB or L (greyscale) as the
model's input needs, and resized as a whole to W×H with bilinear filtering (no crop, so the
aspect ratio may change). Firmware that prepares camera frames the same way sees what the
calibration saw. No TensorFlow here: `validate` uses this module too.

Every reader of images (calibration, labelled sets) goes through `load_image`, which turns
whatever Pillow raises for a file into one `ImageError` naming the reason, so calibration (which
skips such files) and labelled sets (which refuse them) agree on what is unreadable. What loads:

- any mode Pillow converts: palette (with or without transparency), RGBA and LA (the alpha
  channel is dropped, as Pillow's conversion does), 1-bit, CMYK JPEGs;
- 16-bit greyscale (PNG, TIFF; and 32-bit mode I with values in 0..65535), scaled to 8 bits
  (`v * 255 / 65535`): Pillow's own conversion would clip every value above 255 to white;
  16-bit RGB PNGs Pillow already reads as 8-bit;
- animated GIF, PNG or WebP: the first frame;
- images up to Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS` × 2, about 179
  million pixels), without Pillow's warning above half of it.

What does not: files Pillow cannot identify or decode (zero bytes, corrupt, truncated), larger
images, floating-point images and 32-bit integer ones with values outside 0..65535 (their
range is unknown: convert them to 8-bit first).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from generator.support.text import first_line

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


class ImageError(Exception):
    """An image file that cannot be used. The message completes "image <path> ...", e.g.
    "is not an image Pillow can read (...)"."""


@dataclass(frozen=True)
class ImageSelection:
    """Images chosen from a folder, as uint8 pixels of shape (N, H, W, C)."""

    pixels: np.ndarray
    paths: tuple[Path, ...]
    images_found: int
    images_skipped: int


def find_images(folder: Path) -> list[Path]:
    """Image files below `folder` (recursively), sorted so the order is the same everywhere."""
    return sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def load_image(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """One image as uint8 (H, W, C). Raises `ImageError` when the file cannot be used."""
    try:
        # Pillow warns about images above half its bomb limit and about odd metadata; both
        # still load, and a warning would add lines to the CLI's one-line output.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as opened:
                image = _to_eight_bits(ImageOps.exif_transpose(opened))
                image = image.convert("RGB" if channels == 3 else "L")
                image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError("does not exist") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(
            "is not an image Pillow can read (empty, corrupt or another format)"
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"is too large to decode safely ({error.args[0].split(',')[0]})") from None
    except (OSError, ValueError) as error:
        raise ImageError(f"cannot be decoded ({first_line(error)})") from None
    return pixels.reshape(height, width, channels)


def select_images(
    folder: Path, count: int, shape: tuple[int, int, int], seed: int
) -> ImageSelection:
    """Up to `count` readable images from `folder`, in a seeded random order.

    Files are shuffled deterministically (sorted names, then a seeded permutation) and read in
    that order until `count` load; unreadable ones are skipped and counted. `images_skipped`
    therefore counts the unreadable files among those read, not in the whole folder.
    """
    paths = find_images(folder)
    order = np.random.default_rng(seed).permutation(len(paths))
    height, width, channels = shape
    chosen: list[Path] = []
    arrays: list[np.ndarray] = []
    skipped = 0
    for index in order:
        if len(chosen) == count:
            break
        path = paths[index]
        try:
            arrays.append(load_image(path, height, width, channels))
        except ImageError:
            skipped += 1
            continue
        chosen.append(path)
    pixels = np.stack(arrays) if arrays else np.zeros((0, *shape), dtype=np.uint8)
    return ImageSelection(pixels, tuple(chosen), len(paths), skipped)


def _to_eight_bits(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled to 8 bits; other integer modes as they are (Pillow converts them).

    Pillow converts 16- and 32-bit greyscale to L by clipping at 255, which turns a normal
    16-bit photo white. Mode I (32-bit) is how some Pillow versions open 16-bit PNGs, so its
    values are read as 16-bit too. Floating-point pixels have no known range: refused.
    """
    if image.mode == "F":
        raise ImageError("has floating-point pixels: convert it to 8-bit")
    if image.mode not in _SIXTEEN_BIT_MODES:
        return image
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ImageError("has 32-bit integer pixels outside 0..65535: convert it to 8-bit")
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
