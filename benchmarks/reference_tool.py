"""A whole build against the reference tool's convert-only script, paired runs in one process.

    python benchmarks/reference_tool.py --reference PATH [--runs N]

PATH is a checkout of saeid-h/multitask-mobilenet-v3-tflite (not shipped here). Each pair runs,
in fresh processes and alternating which goes first:

- ours: `python -m generator build configs/profile_96x96.yaml --set
  model.backbone=mobilenet_v3_small`: build, calibrate on 200 photos, convert, per-layer error,
  Vela for two boards and their placements, verify in TFLite Micro and LiteRT, arena, C arrays,
  JSON, Markdown and HTML;
- theirs: `src/create_quantized_mobilenet_v3.py --alpha 0.25 --input-shape 96x96x3 --heads 4,2,3
  --calibration-samples 200`: build and convert (calibrated on random data), and its report.

It prints the medians, their ratio, the median of each of our stages (parsed from the build's
own progress lines) and the .tflite's sha256 per run (the same bytes every run), and names the
machine and the versions.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = [
    "-m",
    "generator",
    "build",
    str(REPO / "configs" / "profile_96x96.yaml"),
    "--set",
    "model.backbone=mobilenet_v3_small",
]
THEIRS = [
    "--alpha",
    "0.25",
    "--input-shape",
    "96x96x3",
    "--heads",
    "4,2,3",
    "--calibration-samples",
    "200",
]
STAGE = re.compile(r"^\[(?P<name>[^\]]+)\] .*? (?P<seconds>[\d.]+) s$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the reference checkout")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    script = args.reference / "src" / "create_quantized_mobilenet_v3.py"
    if not script.is_file():
        sys.exit(f"--reference: {script} not found: give a checkout of the reference tool")
    ours, theirs, stages, digests = [], [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            our_command = [sys.executable, *OURS, "--output-dir", f"{folder}/ours"]
            their_command = [sys.executable, str(script), *THEIRS, "--output-dir", f"{folder}/t"]
            order = [("ours", our_command), ("theirs", their_command)]
            for name, command in order if run % 2 == 0 else order[::-1]:
                seconds, stderr = _timed(command)
                if name == "ours":
                    ours.append(seconds)
                    stages.append(_stages(stderr))
                    tflite = Path(folder) / "ours" / "profile_96x96" / "profile_96x96.tflite"
                    digests.append(hashlib.sha256(tflite.read_bytes()).hexdigest()[:16])
                else:
                    theirs.append(seconds)
    _print(args.runs, ours, theirs, stages, digests)


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stderr


def _stages(stderr: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        match = STAGE.match(line)
        if match:
            found[match["name"]] = float(match["seconds"])
    return found


def _machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = Path("/proc/cpuinfo").read_text()
    avx512 = "with AVX-512" if " avx512f" in flags else "without AVX-512"
    return f"{model} ({os.cpu_count()} cores, {avx512}), {platform.system()} {platform.machine()}"


def _print(runs: int, ours: list, theirs: list, stages: list, digests: list) -> None:
    versions = ", ".join(
        f"{package} {importlib.metadata.version(package)}"
        for package in ("tensorflow-cpu", "ethos-u-vela", "ai-edge-litert")
    )
    print(f"{datetime.date.today()}, {_machine()}, Python {platform.python_version()}, {versions}")
    print(f"{runs} paired runs, fresh processes, alternating order\n")
    print("| command | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for name, values in (("generator build (everything)", ours), ("reference: convert", theirs)):
        print(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"\nratio of medians: {ratio:.2f}x\n")
    print("| our stage | median s |")
    print("|---|---:|")
    for name in stages[0]:
        print(f"| {name} | {statistics.median(s.get(name, 0.0) for s in stages):.2f} |")
    print(f"\n.tflite sha256 per run: {', '.join(digests)}")


if __name__ == "__main__":
    main()
