"""Time `compare` with every mode, split into the work done once and the work per mode, over
several fresh processes, and print a table of medians.

    python benchmarks/compare_modes.py [CONFIG] [--runs N] [--modes a,b,...]

Each run is a new Python process that runs `compare` on CONFIG (default: configs/default.yaml,
every mode it can make) into a temporary folder, timing each stage as the CLI prints it. Shared
work is what every mode reuses: TensorFlow's import, building and training the float model, the
calibration and evaluation images, quantization-aware fine-tuning (used only by `qat`, but
once) and the float32 reference. The last line compares the total with what separate builds of
each mode would repeat: the shared stages once per mode.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = ("import", "build", "data", "train", "calibrate", "qat", "reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.config), args.output_dir, args.modes)
        return
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as output:
            command = [sys.executable, __file__, args.config, "--child", "--output-dir", output]
            child = subprocess.run(
                command + (["--modes", args.modes] if args.modes else []),
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                sys.exit(f"benchmark run failed:\n{child.stderr}")
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    _print_table(args.config, runs)


def _child(config_path: Path, output_dir: Path, modes: str | None) -> None:
    from generator.config.loading import load_config
    from generator.config.modes import compare_modes
    from generator.support.quiet import muted, quiet_tensorflow

    quiet_tensorflow(enabled=True)
    config = load_config(config_path, [], output_dir)
    chosen = compare_modes(modes, config)
    times: dict[str, float] = {}

    class Stage:
        @contextlib.contextmanager
        def __call__(self, name: str, detail: str):
            start = time.perf_counter()
            yield
            times[name] = times.get(name, 0.0) + time.perf_counter() - start

        def note(self, line: str) -> None:
            pass

    stage = Stage()
    with stage("import", "TensorFlow"), muted():
        from generator.runs.compare import run_compare
    run_compare(config, chosen, stage)
    print(json.dumps({"modes": list(chosen), "times": times}))


def _print_table(config: str, runs: list[dict]) -> None:
    modes = runs[0]["modes"]
    names = list(runs[0]["times"])
    median = {name: statistics.median(run["times"][name] for run in runs) for name in names}
    print(f"compare {config}, {len(runs)} run(s), medians in seconds\n")
    print("| stage | kind | seconds |")
    print("|---|---|---:|")
    for name in names:
        kind = "per mode" if name.startswith("mode ") else "report"
        kind = "shared" if name in SHARED else kind
        print(f"| {name} | {kind} | {median[name]:.1f} |")
    shared = sum(median[n] for n in names if n in SHARED)
    per_mode = sum(median[n] for n in names if n.startswith("mode "))
    total = sum(median.values())
    print(f"| **total** | | **{total:.1f}** |")
    print(
        f"\nShared work done once: {shared:.1f} s ({shared / total:.0%} of the total); "
        f"the {len(modes)} modes themselves: {per_mode:.1f} s. Separate runs per mode would "
        f"repeat the shared work: about {shared * len(modes) + per_mode:.0f} s."
    )


if __name__ == "__main__":
    main()
