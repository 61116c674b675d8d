"""Peak memory of a build with training, against the number of training images.

    python benchmarks/training_memory.py [--counts 2000 8000 32000] [--before REF]

For each count, synthetic 96×96×3 PNG images (coloured shapes on gradients, seeded) with two
heads of labels are written to a temporary folder, then a whole build runs in a fresh process:
MobileNetV1 α 0.25, one epoch, 10% validation, calibrated on the repo's photos, compiled for
ethos-u55-128, no evaluation. Its peak resident memory is the kernel's `ru_maxrss` of the build
process and everything it started. The slope between the smallest and largest count, per
image, is set against the image's own uint8 bytes (96·96·3 = 27,648).

`--before REF` runs the same builds with the generator of a git revision (checked out into a
temporary worktree) in the same run, for a before-and-after table. Prints the machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SHAPE = (96, 96, 3)

_MEASURE = """
import resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if run.returncode:
    sys.exit(run.stderr[-3000:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _images(folder: Path, count: int) -> Path:
    """`count` synthetic images and a CSV manifest of two heads; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = np.arange(SHAPE[0])[:, None, None]
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "shape", "tone"])
        for index in range(count):
            shape, tone = int(rng.integers(3)), int(rng.integers(2))
            base = rng.integers(0, 256, 3) * (rows / SHAPE[0]) + rng.integers(0, 64, 3)
            image = np.broadcast_to(base, SHAPE).copy()
            top, left = rng.integers(0, SHAPE[0] // 2, 2)
            size = 20 + 10 * shape
            image[top : top + size, left : left + size] = 255 * tone
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"{index}.png")
            writer.writerow([f"{index}.png", shape, tone])
    return folder / "labels.csv"


def _config(folder: Path, manifest: Path) -> Path:
    config = {
        "name": "memory",
        "model": {
            "backbone": "mobilenet_v1",
            "alpha": 0.25,
            "input_shape": list(SHAPE),
            "heads": [
                {"name": "shape", "labels": ["0", "1", "2"]},
                {"name": "tone", "labels": ["0", "1"]},
            ],
        },
        "train": {"data": str(manifest), "validation": 0.1, "epochs": 1, "augment": False},
        "calibration": {"data": str(REPO / "representative_data" / "photos"), "samples": 50},
        "vela": {"targets": [{"accelerator": "ethos-u55-128"}]},
        "output": {"dir": str(folder / "out")},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"  # JSON is YAML
    path.write_text(json.dumps(config))
    return path


def _peak(config: Path, source: Path | None) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    build = [sys.executable, "-m", "generator", "build", str(config)]
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, *build], capture_output=True, text=True, env=env
    )
    if run.returncode:
        sys.exit(f"build failed:\n{run.stderr[-3000:]}")
    return int(run.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--before", help="a git revision to measure beside the working tree")
    args = parser.parse_args()
    image_bytes = int(np.prod(SHAPE))
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        sources: dict[str, Path | None] = {"now": None}
        if args.before:
            tree = work / "before"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.before],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            sources = {f"before ({args.before})": tree, "now": None}
        try:
            peaks: dict[str, list[int]] = {label: [] for label in sources}
            for count in args.counts:
                manifest = _images(work / f"images-{count}", count)
                for label, source in sources.items():
                    config = _config(work / f"{label}-{count}".replace(" ", "_"), manifest)
                    peaks[label].append(_peak(config, source))
                    print(f"  {count} images, {label}: {peaks[label][-1] / 2**30:.2f} GiB")
        finally:
            if args.before:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(work / "before")],
                    cwd=REPO,
                    check=False,
                )
    print()
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; builds of MobileNetV1 "
        f"alpha 0.25 at 96x96x3, one epoch, peak resident memory of the build's processes"
    )
    print()
    print(f"| generator | {' | '.join(f'{c:,} images' for c in args.counts)} | slope per image |")
    print(f"|---|{'---:|' * len(args.counts)}---:|")
    for label, values in peaks.items():
        slope = (values[-1] - values[0]) / (args.counts[-1] - args.counts[0])
        cells = " | ".join(f"{v / 2**30:.2f} GiB" for v in values)
        print(
            f"| {label} | {cells} | {slope / 1024:.1f} KiB "
            f"({slope / image_bytes:.2f}× the image's {image_bytes:,} bytes) |"
        )


if __name__ == "__main__":
    main()
