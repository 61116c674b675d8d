"""Time each stage of a build, over several fresh processes, and print a table of medians.

    python benchmarks/build_stages.py [CONFIG] [--runs N]

Every run is a new Python process (TensorFlow's import is part of what a user waits for), which
builds CONFIG (default: configs/default.yaml) into a temporary folder. Peak memory is the
largest resident set of the build process. Vela's own peak is measured by compiling each run's
.tflite again for the first target from a small process: measured inside the build process,
Linux would charge the forked Vela with the parent's resident set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.config), args.output_dir)
        return
    runs = [_run_child(args.config) for _ in range(args.runs)]
    _print_table(args.config, runs)


def _run_child(config: str) -> dict:
    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, config, "--child", "--output-dir", output],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        if child.returncode != 0:
            sys.exit(f"benchmark run failed:\n{child.stderr}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result["wall"] = wall
        result["vela_peak_mib"] = _vela_peak_mib(config, Path(result["tflite"]))
    return result


_VELA_PROBE = """
import resource, sys, tempfile
from pathlib import Path
from generator.config.loading import load_config
from generator.engines.vela import compile_for_target
config = load_config(Path(sys.argv[1]))
target = config.vela.targets[0]
with tempfile.TemporaryDirectory() as folder:
    compile_for_target(Path(sys.argv[2]), target, config.vela.optimise, Path(folder))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def _vela_peak_mib(config: str, tflite: Path) -> float:
    probe = subprocess.run(
        [sys.executable, "-c", _VELA_PROBE, config, str(tflite)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return float(probe.stdout.strip())


def _child(config_path: Path, output: Path) -> None:
    timings: dict[str, float] = {}

    class Stage:
        @contextlib.contextmanager
        def __call__(self, name: str, detail: str):
            start = time.perf_counter()
            yield
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

        def note(self, line: str) -> None:
            pass

    stage = Stage()

    sys.path.insert(0, str(REPO))
    from generator.config.loading import load_config
    from generator.support.quiet import quiet_tensorflow

    quiet_tensorflow()
    with stage("import", "TensorFlow"):
        from generator.runs.pipeline import run_build

    config = load_config(config_path, output_dir=output)
    info, _ = run_build(config, stage)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    tflite = output / config.name / f"{config.name}.tflite"
    training = info["training"] or {}
    speeds = {"training": training.get("images_per_second")}
    if training.get("qat"):
        speeds["qat"] = training["qat"]["images_per_second"]
    print(json.dumps({"stages": timings, "peak_mib": peak, "tflite": str(tflite), **speeds}))


def _print_table(config: str, runs: list[dict]) -> None:
    def row(label: str, values: list[float], unit: str) -> str:
        return (
            f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | "
            f"{max(values):.2f} | {unit} |"
        )

    print(f"{len(runs)} fresh-process builds of {config}\n")
    print("| stage | median | min | max | unit |")
    print("|---|---|---|---|---|")
    for name in runs[0]["stages"]:  # the order the pipeline ran them in
        print(row(name, [r["stages"][name] for r in runs], "s"))
    print(row("stages total", [sum(r["stages"].values()) for r in runs], "s"))
    print(row("process wall (with interpreter start)", [r["wall"] for r in runs], "s"))
    print(row("peak RSS, build process", [r["peak_mib"] for r in runs], "MiB"))
    print(row("peak RSS, Vela subprocess", [r["vela_peak_mib"] for r in runs], "MiB"))
    for kind in ("training", "qat"):  # the speed the build's JSON records
        if runs[0].get(kind):
            print(row(f"{kind} speed", [r[kind] for r in runs], "images/s"))


if __name__ == "__main__":
    main()
