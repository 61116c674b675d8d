"""Regenerate representative_data/photos/ from the photographs scikit-image bundles.

Run from the repository root: `python representative_data/make_photos.py`. Each photo gives 20
crops (seeded: position, size 35-100% of the short side, aspect 3:4 to 4:3), scaled so the long
side is 128 px and saved as JPEG quality 90. Greyscale photos stay greyscale.
"""

from pathlib import Path

import numpy as np
import skimage
from PIL import Image

PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "moon.png",
)
CROPS_PER_PHOTO = 20
LONG_SIDE = 128


def main() -> None:
    source = Path(skimage.__file__).parent / "data"
    target = Path(__file__).parent / "photos"
    target.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for photo in PHOTOS:
        with Image.open(source / photo) as image:
            image.load()
        width, height = image.size
        for index in range(CROPS_PER_PHOTO):
            side = rng.uniform(0.35, 1.0) * min(width, height)
            aspect = rng.uniform(0.75, 4 / 3)
            crop_w, crop_h = min(width, side * aspect), min(height, side / aspect)
            left = rng.uniform(0, width - crop_w)
            top = rng.uniform(0, height - crop_h)
            crop = image.crop((round(left), round(top), round(left + crop_w), round(top + crop_h)))
            scale = LONG_SIDE / max(crop.size)
            crop = crop.resize(
                (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                Image.Resampling.LANCZOS,
            )
            stem = photo.rsplit(".", 1)[0]
            crop.save(target / f"{stem}_{index:02d}.jpg", quality=90)


if __name__ == "__main__":
    main()
