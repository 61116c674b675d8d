"""Time a sweep against the same builds run one by one as separate commands, and print a table
of medians.

    python benchmarks/sweep_speed.py [CONFIG] [--runs N] [--jobs N] [--grid KEY=V,V ...]

Default: configs/profile_96x96.yaml over docs/sweeps.md's 12-variant grid (alpha 0.25, 0.5, 0.75;
64x64x3 and 96x96x3; MobileNet V1 and V2), `--jobs` 2. Each run times, in fresh processes
writing into temporary folders:

- separate: `python -m generator build CONFIG --set KEY=V ...` once per variant, one after
  the other (what a user does without `sweep`: every build imports TensorFlow and reads the
  images again);
- sweep: `python -m generator sweep CONFIG --grid ... --jobs N` on the local process pool.

Both build the same variants; the sweep's figures are checked against the separate builds'
(the same config gives the same model), so the two do the same work.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GRID = [
    "model.alpha=0.25,0.5,0.75",
    "model.input_shape=[64,64,3],[96,96,3]",
    "model.backbone=mobilenet_v1,mobilenet_v2",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "profile_96x96.yaml"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--grid", action="append")
    args = parser.parse_args()
    grid = args.grid or GRID
    sys.path.insert(0, str(REPO))
    from generator.runs.sweep import parse_grid

    values = parse_grid(grid)
    combinations = itertools.product(*values.values())
    settings = [dict(zip(values, combo, strict=True)) for combo in combinations]
    separate, swept = [], []
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}: {len(settings)} separate builds ...", file=sys.stderr)
        seconds, figures = _separate(args.config, settings)
        separate.append(seconds)
        print(f"run {run + 1}/{args.runs}: one sweep, --jobs {args.jobs} ...", file=sys.stderr)
        seconds, swept_figures = _sweep(args.config, grid, args.jobs)
        swept.append(seconds)
        if sorted(figures) != sorted(swept_figures):
            raise SystemExit("the sweep's .tflite sizes differ from the separate builds'")
    build, sweep = statistics.median(separate), statistics.median(swept)
    print(f"{len(settings)} variants of {Path(args.config).name}, median of {args.runs} run(s)")
    print()
    print("| how | wall time s | per variant s |")
    print("|---|---|---|")
    print(f"| separate builds, one after the other | {build:.1f} | {build / len(settings):.1f} |")
    print(f"| sweep, --jobs {args.jobs} | {sweep:.1f} | {sweep / len(settings):.1f} |")
    print()
    print(f"sweep / separate builds: {sweep / build:.2f}")


def _separate(config: str, settings: list[dict]) -> tuple[float, list[int]]:
    sizes = []
    start = time.perf_counter()
    for setting in settings:
        with tempfile.TemporaryDirectory() as output:
            command = [sys.executable, "-m", "generator", "build", config, "--output-dir", output]
            for key, value in setting.items():
                command += ["--set", f"{key}={json.dumps(value)}"]
            subprocess.run(command, check=True, capture_output=True, cwd=REPO)
            (info,) = Path(output).glob("*/*_quantization_info.json")
            sizes.append(json.loads(info.read_text())["model"]["tflite_bytes"])
    return time.perf_counter() - start, sizes


def _sweep(config: str, grid: list[str], jobs: int) -> tuple[float, list[int]]:
    with tempfile.TemporaryDirectory() as output:
        command = [sys.executable, "-m", "generator", "sweep", config, "--output-dir", output]
        command += [arg for item in grid for arg in ("--grid", item)] + ["--jobs", str(jobs)]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=REPO)
        seconds = time.perf_counter() - start
        (info,) = Path(output).glob("*_sweep/sweep.json")
        rows = json.loads(info.read_text())["variants"]
    return seconds, [row["tflite_bytes"] for row in rows]


if __name__ == "__main__":
    main()
