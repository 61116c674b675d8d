"""Find and load real images with Pillow, the way a camera frame reaches the model.

Each image is rotated as its EXIF orientation says, converted to RGB or L (greyscale) as the
model's input needs, and resized as a whole to W×H with bilinear filtering (no crop, so the
aspect ratio may change). Firmware that prepares camera frames the same way sees what the
calibration saw. No TensorFlow here: `validate` uses this module too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


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
    """One image as uint8 (H, W, C). Raises OSError or ValueError if Pillow cannot read it."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        image = image.convert("RGB" if channels == 3 else "L")
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
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
        except (OSError, ValueError, Image.DecompressionBombError):
            skipped += 1
            continue
        chosen.append(path)
    pixels = np.stack(arrays) if arrays else np.zeros((0, *shape), dtype=np.uint8)
    return ImageSelection(pixels, tuple(chosen), len(paths), skipped)
