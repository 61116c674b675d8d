"""Export scikit-learn's bundled UCI handwritten digits as a labelled image set with three heads.

1,797 greyscale 8×8 images (values 0..16, saved as 0..255 PNGs), split deterministically into
train (80%) and test (20%). Heads: `digit` (0-9), `parity` (even, odd), `high` (low: digit < 5,
high: digit >= 5). Written as:

- `images/<split>/<index>.png` with `<split>.csv` manifests (`path,digit,parity,high`);
- with `folders=True` also the folder layout `folders/<split>/<head>/<class>/<index>.png`.

Needs scikit-learn (`pip install -e '.[demo]'`); everything else in generator runs without it.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from generator.errors import UserError

HEADS = ("digit", "parity", "high")
TEST_FRACTION = 0.2


def digit_labels(digit: int) -> dict[str, str]:
    return {
        "digit": str(digit),
        "parity": "odd" if digit % 2 else "even",
        "high": "high" if digit >= 5 else "low",
    }


def export_digits(folder: Path, folders: bool = False, seed: int = 0) -> list[Path]:
    """Write the digits below `folder`; return the CSV manifests written."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("export-digits needs scikit-learn: pip install -e '.[demo]'") from None
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    test_count = round(len(order) * TEST_FRACTION)
    splits = {"test": np.sort(order[:test_count]), "train": np.sort(order[test_count:])}
    manifests = []
    for split, rows in splits.items():
        image_folder = folder / "images" / split
        image_folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / f"{split}.csv"
        with manifest.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", *HEADS])
            for row in rows:
                path = image_folder / f"{row:04d}.png"
                pixels = np.round(digits.images[row] * 255 / 16).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(path)
                labels = digit_labels(int(digits.target[row]))
                writer.writerow([path.relative_to(folder).as_posix(), *labels.values()])
                if folders:
                    for head, name in labels.items():
                        target = folder / "folders" / split / head / name / path.name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(path, target)
        manifests.append(manifest)
    return manifests
