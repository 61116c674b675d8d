"""What the benchmarks that run whole builds share: a build through the CLI, read back from its
record, and the name of the machine the figures come from."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build(config: Path) -> dict:
    """`python -m generator build config` (its output.dir is `<config's folder>/out`): the
    build's `_quantization_info.json` plus `wall_seconds`; a failed build ends the benchmark
    with its last line."""
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "generator", "build", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if run.returncode:
        sys.exit(f"{config.name}: build failed: {run.stderr.strip().splitlines()[-1]}")
    name = config.stem
    info = json.loads((config.parent / "out" / name / f"{name}_quantization_info.json").read_text())
    return {**info, "wall_seconds": time.perf_counter() - start}


def machine() -> str:
    """The CPU's model name, its cores and the OS, for a benchmark's heading."""
    model = platform.machine()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"
