"""What pruning, clustering and distillation save on the NPU, on a 96×96×3 task built from
photographs scikit-image bundles, measured with the tool itself.

    python benchmarks/compression.py [--variants plain clusters_16 clusters_8 ...] [--epochs 20]

The task: which of eight photographs (astronaut, camera, chelsea, coffee, rocket, retina,
hubble_deep_field, coins; the grey ones as three equal channels) a 96×96 crop comes from. Each
crop is seeded: a position anywhere, a side of 20 % to 45 % of the photo's short side, flipped
half the time; 180 crops per photo train (15 % of them held out for validation) and 40 others
per photo are the test set, 1,760 images in all.

Every variant is a real `python -m generator build` of MobileNetV1 α 0.25 at 96×96×3 (trained
`--epochs` with early stopping, calibrated, compiled for the Corstone-300 and the Alif E7's
high-efficiency core, evaluated on the test crops in TensorFlow Lite Micro), differing only in
`optimize:`. Figures are read from each build's `_quantization_info.json`: Vela's encoded weight
bytes (`total_npu_encoded_weights`) and latency for the Corstone-300 with weights in flash
(Shared_Sram) and in SRAM (Sram_Only), and the quantized accuracy. Deterministic for the seed:
one build per variant, on the machine named in the output.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import skimage
import yaml
from common import build, machine
from PIL import Image

PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "coins.png",
)
SIDE = 96
TRAIN_CROPS, TEST_CROPS = 180, 40

VARIANTS = {
    "plain": None,
    "clusters_16": {"clusters": {"*_logits": 0, "*": 16}},
    "clusters_8": {"clusters": {"*_logits": 0, "*": 8}},
    "clusters_8_sparsity_50": {"clusters": {"*_logits": 0, "*": 8}, "sparsity": 0.5},
    "clusters_8_no_teacher": {"clusters": {"*_logits": 0, "*": 8}, "distill": False},
}


def _crops(folder: Path, split: str, count: int, seed: int) -> Path:
    """`count` seeded crops of each photo as PNGs under `folder/split/`, and their CSV."""
    rng = np.random.default_rng(seed)
    (folder / split).mkdir(parents=True)
    lines = ["path,photo"]
    for photo in PHOTOS:
        image = np.asarray(Image.open(Path(skimage.data.__file__).parent / photo).convert("RGB"))
        height, width = image.shape[:2]
        for index in range(count):
            side = int(min(height, width) * rng.uniform(0.2, 0.45))
            top, left = rng.integers(0, height - side), rng.integers(0, width - side)
            crop = Image.fromarray(image[top : top + side, left : left + side])
            crop = crop.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            name = f"{split}/{photo.split('.')[0]}_{index:03d}.png"
            crop.save(folder / name)
            lines.append(f"{name},{photo.split('.')[0]}")
    (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder / f"{split}.csv"


def _config(name: str, folder: Path, epochs: int, optimize: dict | None) -> Path:
    config = {
        "name": name,
        "model": {
            "backbone": "mobilenet_v1",
            "alpha": 0.25,
            "input_shape": [SIDE, SIDE, 3],
            "heads": [{"name": "photo", "labels": [p.split(".")[0] for p in PHOTOS]}],
            "seed": 0,
        },
        "train": {
            "data": str(folder / "train.csv"),
            "validation": 0.15,
            "epochs": epochs,
            "batch_size": 32,
            "learning_rate": 0.01,
            "warmup_epochs": 2,
            "early_stopping": 8,
            "augment": {"flip": True, "shift": 0.1, "brightness": 0.1},
        },
        "calibration": {"data": str(folder / "train"), "samples": 200, "holdout": 50},
        "vela": {"targets": [{"board": "corstone_300"}, {"board": "alif_e7_he"}]},
        "evaluation": {"data": str(folder / "test.csv")},
        "output": {"dir": str(folder / "out")},
    }
    if optimize is not None:
        config["optimize"] = optimize
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _row(name: str, info: dict, plain: dict | None) -> str:
    placements = {p["memory_mode"]: p for p in info["boards"]["corstone_300"]["placements"]}
    flash, sram = placements["Shared_Sram"], placements["Sram_Only"]
    accuracy = info["accuracy"]["heads"]["photo"]
    encoded = flash["encoded_weight_bytes"]
    share = "" if plain is None else f" ({encoded / _encoded(plain):.0%})"
    drop = ""
    if plain is not None:
        before = plain["accuracy"]["heads"]["photo"]["quantized_top1"]
        drop = f" ({(accuracy['quantized_top1'] - before) * 100:+.2f})"
    return (
        f"| {name} | {encoded:,}{share} | {flash['inference_time_ms']:.3f} | "
        f"{sram['inference_time_ms']:.3f} | {accuracy['float_top1']:.2%} | "
        f"{accuracy['quantized_top1']:.2%}{drop} | {info['wall_seconds']:.0f} |"
    )


def _encoded(info: dict) -> int:
    placements = info["boards"]["corstone_300"]["placements"]
    return next(p for p in placements if p["memory_mode"] == "Shared_Sram")["encoded_weight_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        _crops(folder, "train", TRAIN_CROPS, seed=0)
        _crops(folder, "test", TEST_CROPS, seed=1)
        results = {}
        for name in args.variants:
            results[name] = build(_config(name, folder, args.epochs, VARIANTS[name]))
            print(f"built {name} in {results[name]['wall_seconds']:.0f} s", file=sys.stderr)
    plain = results.get("plain")
    print(
        f"# {datetime.date.today()}, {machine()}, Python {platform.python_version()}; "
        f"{len(PHOTOS)} photos, {SIDE}×{SIDE}×3, MobileNetV1 α 0.25, up to {args.epochs} "
        "epochs; Corstone-300 (U55-128) figures are Vela's, accuracy TensorFlow Lite Micro's "
        f"on {len(PHOTOS) * TEST_CROPS} test crops"
    )
    print(
        "| variant | encoded weights B (share of plain) | flash ms | SRAM ms | float | "
        "quantized (points vs plain) | build s |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, info in results.items():
        print(_row(name, info, None if name == "plain" else plain))


if __name__ == "__main__":
    main()
