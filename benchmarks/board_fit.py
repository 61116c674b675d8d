"""Size, memory and latency of the default model and a grid of widths and input sizes, on every
board preset, and print them as tables.

    python benchmarks/board_fit.py [--alphas 0.25 0.5 1.0] [--sizes 32 96 128]

Each row is one real build (`generator build` with `--set` overrides, random weights, 50
calibration images, no training) into a temporary folder; the figures are read back from its
`<name>_quantization_info.json`: the .tflite size, TFLite Micro's measured arena, and per board
Vela's compiled model size (the flash the array takes), the arena to reserve (Vela's SRAM + the
2 KiB TFLite Micro margin) and Vela's latency estimate. Sizes and Vela's estimates are
deterministic, so one build per row is the median of any number of them. The weights are
random: trained weights compress differently in Vela, which moves the compiled size and SRAM by
a few hundred bytes (the trained demo: see README.md), not the picture.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator.cli import main as generator_main  # noqa: E402
from generator.config.boards import preset_boards  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96, 128])
    args = parser.parse_args()
    boards = list(preset_boards())
    targets = "[" + ", ".join(f"{{board: {b}}}" for b in boards) + "]"
    common = [f"vela.targets={targets}", "calibration.samples=50", "calibration.holdout=10"]
    rows = [
        (
            "default (32×32×1 α0.25)",
            "configs/default.yaml",
            [*common, "train=null", "evaluation=null"],
        )
    ]
    for alpha in args.alphas:
        for size in args.sizes:
            rows.append(
                (
                    f"{size}×{size}×3 α{alpha:g}",
                    "configs/profile_96x96.yaml",
                    [*common, f"model.alpha={alpha}", f"model.input_shape=[{size}, {size}, 3]"],
                )
            )
    results = []
    for label, config, overrides in rows:
        print(f"building {label} ...", file=sys.stderr)
        results.append((label, _build(config, overrides)))
    _print_tables(results, boards)


def _build(config: str, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as output:
        argv = ["build", str(REPO / config), "--output-dir", output]
        for override in overrides:
            argv += ["--set", override]
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            code = generator_main(argv)
        if code != 0:
            sys.exit(f"build failed ({code}):\n{quiet.getvalue()}")
        (info_path,) = Path(output).glob("*/*_quantization_info.json")
        return json.loads(info_path.read_text())


def _print_tables(results: list[tuple[str, dict]], boards: list[str]) -> None:
    print("| model | parameters | .tflite bytes | TFLite Micro arena (no NPU) |")
    print("|---|---|---|---|")
    for label, info in results:
        print(
            f"| {label} | {info['model']['parameters']:,} | {info['model']['tflite_bytes']:,} | "
            f"{info['tflm']['arena_bytes']:,} |"
        )
    for board in boards:
        first = results[0][1]["boards"][board]
        print(
            f"\n{board}: {first['title']}; budgets SRAM {first['sram_budget_bytes']:,} B, "
            f"flash {first['flash_budget_bytes']:,} B\n"
        )
        print("| model | flash (compiled model) | SRAM (arena to reserve) | latency ms | fit |")
        print("|---|---|---|---|---|")
        for label, info in results:
            fit, vela = info["boards"][board], info["vela"][board]
            print(
                f"| {label} | {fit['flash_needed_bytes']:,} | {fit['sram_needed_bytes']:,} | "
                f"{vela['inference_time_ms']:.2f} | {'yes' if fit['fits'] else 'NO'} |"
            )


if __name__ == "__main__":
    main()
