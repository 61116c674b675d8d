"""Command line: `python -m generator build|validate CONFIG.yaml`.

Parses arguments, runs the stages, prints progress to stderr and the written paths at the end.
A user's mistake (`UserError`) becomes one line on stderr and exit code 2, with no traceback
unless `--debug`; `--debug` also lets TensorFlow's and Vela's own logging through.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from generator import __version__
from generator.config import Config, display_path, load_config
from generator.errors import UserError
from generator.images import find_images, select_images
from generator.quiet import quiet_tensorflow

# What `build` prints progress for: importing TensorFlow, then generator.pipeline's stages.
STAGES = ("import", "build", "calibrate", "convert", "compile", "verify", "report")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_tensorflow(enabled=not args.debug)
    try:
        config = load_config(Path(args.config), args.set, getattr(args, "output_dir", None))
        return args.run(config)
    except UserError as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="Multi-head MobileNet -> integer TFLite -> Vela for Arm Ethos-U.",
    )
    parser.add_argument("--version", action="version", version=f"generator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, run, help_text in (
        ("build", _build, "build, quantize, compile and report"),
        ("validate", _validate, "check the config and its images without building"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("config", help="YAML config file")
        command.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one config value by its dotted path, e.g. model.alpha=0.5",
        )
        command.add_argument("--debug", action="store_true", help="tracebacks and engine logs")
        command.set_defaults(run=run)
        if name == "build":
            command.add_argument("--output-dir", type=Path, help="write here instead of output.dir")
    return parser


def _validate(config: Config) -> int:
    """Check what a build would need: the config (already parsed) and usable images."""
    shape = config.model.input_shape
    found = len(find_images(config.calibration.data))
    selection = select_images(config.calibration.data, 2, shape, config.model.seed)
    if len(selection.pixels) < 2:
        raise UserError(
            f"calibration.data: {config.calibration.data} has fewer than 2 readable images "
            f"({found} image files): add PNG or JPEG images"
        )
    heads = ", ".join(f"{h.name} ({h.num_classes})" for h in config.model.heads)
    targets = ", ".join(
        f"{t.accelerator} ({t.system_config}, {t.memory_mode})" for t in config.vela.targets
    )
    print(
        f"{config.source}: valid\n"
        f"  model: {config.model.backbone} alpha {config.model.alpha}, "
        f"input {'x'.join(map(str, shape))}, heads {heads}\n"
        f"  calibration: {found} image files in {config.calibration.data}\n"
        f"  targets: {targets}\n"
        f"  output: {config.output_dir / config.name}"
    )
    return 0


def _build(config: Config) -> int:
    print(f"generator {__version__}: building {config.name} from {config.source}", file=sys.stderr)
    stage = _StagePrinter()
    with stage("import", "TensorFlow"):
        from generator.pipeline import run_build
    info, written = run_build(config, stage)
    print(f"done in {stage.total:.1f} s", file=sys.stderr)
    for accelerator, vela in info["vela"].items():
        print(
            f"  {accelerator}: SRAM {vela['sram_kib']:.1f} KiB, flash {vela['flash_kib']:.1f} "
            f"KiB, {vela['inference_time_ms']:.2f} ms/inference (Vela estimate), "
            f"{vela['npu_operators']}/{vela['npu_operators'] + vela['cpu_operators']} "
            "operators on the NPU",
            file=sys.stderr,
        )
    for warning in info["warnings"]:
        print(f"  warning: {warning}", file=sys.stderr)
    print("wrote:")
    for path in written:
        print(f"  {display_path(path)}")
    return 0


class _StagePrinter:
    """Prints `[i/n] stage: detail ... 1.2 s` lines to stderr and keeps the total time."""

    def __init__(self) -> None:
        self.total = 0.0
        self.index = 0

    @contextlib.contextmanager
    def __call__(self, name: str, detail: str) -> Iterator[None]:
        self.index += 1
        print(
            f"[{self.index}/{len(STAGES)}] {name}: {detail} ...",
            end="",
            file=sys.stderr,
            flush=True,
        )
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            print(" failed", file=sys.stderr)
            raise
        elapsed = time.perf_counter() - start
        self.total += elapsed
        print(f" {elapsed:.1f} s", file=sys.stderr, flush=True)
