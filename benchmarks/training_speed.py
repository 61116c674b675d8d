"""The train stage's images/s against a plain Keras `fit` of the same model, side by side.

    python benchmarks/training_speed.py [--shapes 32x32x1 96x96x3] [--images 3600]
                                        [--epochs 2] [--runs 3] [--augment]

For each input shape, both train the same float model (`build_model`: MobileNetV1 α 0.25 with
two heads, batch size 32, 10% held out for validation, the same seed) on the same synthetic
uint8 images with random labels, for the same epochs:

- ours: `generator.model.train.train_model`, as a build runs it (masked losses and metrics,
  batches made from the uint8 pixels, seeded order, op determinism, the best epoch kept);
- plain: `model.compile` with Keras's own sparse cross-entropy and accuracy, then
  `model.fit(x, y, validation_data=...)` on float32 arrays made up front.

Augmentation is off in both unless `--augment` (then ours augments and plain does not: that
row measures what augmentation costs). Every run is a fresh process, the two alternating which
goes first; images/s counts training images per second of wall time of the whole `fit`,
validation and the first epoch's tracing included. Prints the medians, their ratio, and the
machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _measure(which: str, shape: tuple[int, int, int], images: int, epochs: int, augment: bool):
    """One side's images/s, in this (fresh) process."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    import numpy as np

    from generator.config.schema import AugmentConfig, Head, ModelConfig, TrainConfig
    from generator.data.labelled import LabelledImages
    from generator.model.build import build_model
    from generator.model.train import split_validation, train_model

    heads = (Head("object", 4, None), Head("light", 2, None))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
    labels = np.stack([rng.integers(0, h.num_classes, images) for h in heads], axis=1)
    classes = {h.name: tuple(map(str, range(h.num_classes))) for h in heads}
    training, validation = split_validation(LabelledImages(pixels, labels, classes), 0.1, 0)
    model = build_model(
        ModelConfig(
            backbone="mobilenet_v1",
            alpha=0.25,
            input_shape=shape,
            heads=heads,
            weights=None,
            seed=0,
        ),
        None,
    )
    train = TrainConfig(
        data=Path("synthetic"),
        validation=0.1,
        epochs=epochs,
        batch_size=32,
        learning_rate=1e-3,
        seed=0,
        schedule="constant",
        early_stopping=0,
        loss_weights={},
        augment=AugmentConfig(flip=True, shift=0.1, brightness=0.1) if augment else None,
    )
    start = time.perf_counter()
    if which == "ours":
        train_model(
            model=model,
            heads=heads,
            training=training,
            validation=validation,
            config=train,
            input_range=(0.0, 1.0),
            on_epoch=lambda record: None,
        )
    else:

        def arrays(part):
            x = part.pixels.astype(np.float32) / np.float32(255)
            return x, {h.name: part.labels[:, i] for i, h in enumerate(heads)}

        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss={h.name: loss for h in heads},
            metrics={h.name: ["accuracy"] for h in heads},
        )
        x, y = arrays(training)
        model.fit(x, y, batch_size=32, epochs=epochs, validation_data=arrays(validation), verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"images_per_second": len(training.pixels) * epochs / seconds}))


def _run(which: str, shape: list[int], images: int, epochs: int, augment: bool) -> float:
    """`_measure` in a fresh process."""
    command = [sys.executable, __file__, "--worker", which, "x".join(map(str, shape))]
    command += ["--images", str(images), "--epochs", str(epochs)]
    run = subprocess.run(
        command + (["--augment"] if augment else []), capture_output=True, text=True, cwd=REPO
    )
    if run.returncode != 0:
        sys.exit(f"{which} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.splitlines()[-1])["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["32x32x1", "96x96x3"])
    parser.add_argument("--images", type=int, default=3600)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # WHICH SHAPE: one side
    args = parser.parse_args()
    if args.worker:
        which, shape = args.worker
        _measure(
            which, tuple(int(v) for v in shape.split("x")), args.images, args.epochs, args.augment
        )
        return
    rows = []
    for text in args.shapes:
        shape = [int(v) for v in text.split("x")]
        found: dict[str, list[float]] = {"ours": [], "plain": []}
        for run in range(args.runs):
            order = ("ours", "plain") if run % 2 == 0 else ("plain", "ours")
            for which in order:
                found[which].append(_run(which, shape, args.images, args.epochs, args.augment))
                print(
                    f"  {text} run {run + 1} {which}: {found[which][-1]:.0f} images/s", flush=True
                )
        ours, plain = (statistics.median(found[w]) for w in ("ours", "plain"))
        rows.append((text, ours, plain, ours / plain))
    print()
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; {args.images} images "
        f"(10% validation), {args.epochs} epochs, batch 32, medians of {args.runs} runs"
        + (", ours augmented (flip, shift, brightness), plain not" if args.augment else "")
    )
    print()
    print("| input | train stage images/s | plain Keras fit images/s | ratio |")
    print("|---|---:|---:|---:|")
    for text, ours, plain, ratio in rows:
        print(f"| {text} | {ours:.0f} | {plain:.0f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
