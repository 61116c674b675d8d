"""What a pretrained backbone is worth, measured with the tool itself on data the repo ships.

    python benchmarks/transfer.py [--labels 300] [--seeds 0 1 2] [--epochs 20]

ImageNet weights cannot be fetched here (no network), so the backbone is pretrained with the
tool on one labelled task and transferred to a different, small one:

- task A (pretraining): the digits 0 to 4 of `representative_data/digits/train.csv`, about
  720 images, one head `digit` with 5 classes;
- task B (the transfer): the digits 5 to 9, only the first `--labels` of them to train on
  (15 % of those held out for validation), evaluated on all 5 to 9 of `test.csv` (178 images).
  No image of task B was seen in task A, and its classes are new.

Task B is built three ways, every other setting equal (MobileNetV1 α 0.25 at the demo's
32×32×1, output stride 8, the demo's training settings, `--epochs` with early stopping):

- scratch: random (seeded) weights;
- pretrained: `model.pretrained: <task A's .keras>`, all layers training from the start;
- fine-tuned: the same, `train.freeze_backbone_epochs: 3` then the backbone at 0.1 × the rate.

Each is a real `python -m generator build` (calibration, Vela, TensorFlow Lite Micro); figures
are read from each build's `_quantization_info.json`: float and quantized `digit` accuracy on
the test images, the epochs run and the epoch kept. Prints the medians over `--seeds` and the
machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from common import REPO, build, machine

DIGITS = REPO / "representative_data" / "digits"


def _subset(source: Path, target: Path, digits: range, limit: int | None = None) -> None:
    """The rows of `source` whose digit is in `digits` (the first `limit`), with absolute
    image paths and the digit column alone."""
    with source.open() as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["digit"]) in digits]
    lines = ["path,digit"] + [f"{DIGITS / row['path']},{row['digit']}" for row in rows[:limit]]
    target.write_text("\n".join(lines) + "\n")


def _config(
    name: str, folder: Path, data: Path, digits: range, seed: int, epochs: int, **extra
) -> Path:
    model = {
        "backbone": "mobilenet_v1",
        "alpha": 0.25,
        "input_shape": [32, 32, 1],
        "heads": [{"name": "digit", "labels": [str(d) for d in digits]}],
        "seed": seed,
        **extra.pop("model", {}),
    }
    config = {
        "name": name,
        "model": model,
        "train": {
            "data": str(data),
            "validation": 0.15,
            "epochs": epochs,
            "batch_size": 32,
            "learning_rate": 0.01,
            "warmup_epochs": 2,
            "early_stopping": 8,
            "augment": {"flip": False, "shift": 0.1, "brightness": 0.1},
            **extra.pop("train", {}),
        },
        "calibration": {
            "data": str(DIGITS / "images" / "train"),
            "samples": 100,
            "holdout": 30,
            "input_range": [0.0, 1.0],
        },
        "vela": {"targets": [{"board": "corstone_300"}]},
        "evaluation": {"data": str(folder / "test_b.csv")},
        "output": {"dir": str(folder / "out")},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def median_of(rows: dict[str, list[dict]], key: str) -> float:
    return statistics.median(r[key] for results in rows.values() for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"scratch": [], "pretrained": [], "fine-tuned": []}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        task_a, task_b = range(0, 5), range(5, 10)
        _subset(DIGITS / "train.csv", folder / "train_a.csv", task_a)
        _subset(DIGITS / "train.csv", folder / "train_b.csv", task_b, args.labels)
        _subset(DIGITS / "test.csv", folder / "test_b.csv", task_b)
        _subset(DIGITS / "test.csv", folder / "test_a.csv", task_a)
        for seed in args.seeds:
            pretrain = _config(
                f"task_a_{seed}", folder, folder / "train_a.csv", task_a, seed, args.epochs
            )
            # Task A is evaluated on its own test digits.
            text = pretrain.read_text().replace("test_b.csv", "test_a.csv")
            pretrain.write_text(text)
            build(pretrain)
            backbone = folder / "out" / f"task_a_{seed}" / f"task_a_{seed}.keras"
            variants = {
                "scratch": {},
                "pretrained": {"model": {"pretrained": str(backbone)}},
                "fine-tuned": {
                    "model": {"pretrained": str(backbone)},
                    "train": {"freeze_backbone_epochs": 3, "backbone_learning_rate": 0.1},
                },
            }
            for variant, extra in variants.items():
                name = f"task_b_{variant.replace('-', '_')}_{seed}"
                info = build(
                    _config(
                        name, folder, folder / "train_b.csv", task_b, seed, args.epochs, **extra
                    )
                )
                head = info["accuracy"]["heads"]["digit"]
                rows[variant].append(
                    {
                        "float": head["float_top1"],
                        "quantized": head["quantized_top1"],
                        "epochs_run": info["training"]["epochs_run"],
                        "best_epoch": info["training"]["best_epoch"],
                        "train_images": info["training"]["train_images"],
                        "test_images": head["images"],
                    }
                )
                print(f"seed {seed} {variant}: {rows[variant][-1]}", file=sys.stderr)
    print(
        f"# transfer: task B (digits 5-9, {args.labels} labels) after task A (digits 0-4), "
        f"medians over seeds {args.seeds}"
    )
    print(
        f"# {datetime.date.today()}, {machine()}, Python {platform.python_version()}; "
        f"{median_of(rows, 'train_images')} training and {median_of(rows, 'test_images')} test "
        "images in task B"
    )
    print("| start | float digit | quantized digit | epochs run | epoch kept |")
    print("|---|---:|---:|---:|---:|")
    for variant, results in rows.items():
        median = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print(
            f"| {variant} | {median['float']:.1%} | {median['quantized']:.1%} | "
            f"{median['epochs_run']:g} | {median['best_epoch']:g} |"
        )


if __name__ == "__main__":
    main()
