"""Command line: `python -m generator build|validate|evaluate|compare|sweep CONFIG.yaml`,
`report FOLDER`, `export-digits DIR`.

Parses arguments, runs the stages, prints progress to stderr and the written paths at the end.
Each command imports what it needs when it runs, so `report` loads no config machinery and no
engine, and no command imports TensorFlow before its config is validated.
A user's mistake (`UserError`) becomes one line on stderr and exit code 2, with no traceback
unless `--debug`; `--debug` also lets TensorFlow's and Vela's own logging through.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from generator import __version__
from generator.errors import UserError, VerificationError
from generator.records.policy import MICRO_TITLES
from generator.support.files import cannot_write
from generator.support.quiet import muted, quiet_tensorflow
from generator.support.text import display_path

if TYPE_CHECKING:
    from generator.config.schema import Config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_tensorflow(enabled=not args.debug)
    # A terminated build cleans up like an interrupted one (SIGKILL cannot be caught: the next
    # build of the same name removes what such a build left).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.command.run(args)
    except UserError as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 2
    except VerificationError as error:
        if args.debug:
            traceback.print_exc()
        print(f"verification failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        # A write outside a staged run (a re-rendered report, a sweep's table) that a full or
        # read-only disk refused; a staged run says so itself (runs.publish.staged). A file
        # that may not be opened could be read or written: not a disk's problem to name here.
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        folder = Path(str(error.filename)).parent if error.filename else Path.cwd()
        if args.debug:
            traceback.print_exc()
        print(f"error: {cannot_write(error, folder)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@dataclass(frozen=True)
class _Command:
    """One command: its name, its help, what it takes and what runs it."""

    name: str
    help: str
    arguments: tuple[Callable[[argparse.ArgumentParser], None], ...]
    run: Callable[[argparse.Namespace], int]


def _config_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("config", help="YAML config file")
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value by its dotted path, e.g. model.alpha=0.5",
    )
    command.add_argument(
        "--output-dir", type=Path, help="the build's output.dir, overriding the config"
    )


def _modes_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--modes",
        metavar="MODE,...",
        help="modes to compare, from full_integer, int16x8, dynamic_range, float16, "
        "float32, qat (needs train:), mixed (needs quantization.keep_float or "
        "quantization.int16); default: every mode the config can make",
    )


def _sweep_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=VALUE,VALUE",
        help="a config value to vary, e.g. model.alpha=0.25,0.5 or "
        "model.input_shape=[64,64,3],[96,96,3]; one --grid per key",
    )
    command.add_argument(
        "--jobs",
        type=int,
        help="variants built at once (default: one per CPU, at most one per variant)",
    )
    command.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool; ray: Ray tasks (pip install -e '.[ray]')",
    )
    command.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join this Ray cluster (e.g. ray://head:10001 or head:6379); "
        "default: start a local Ray instance",
    )


def _report_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "folder",
        type=Path,
        help="a build's output folder, <output.dir>/<name>, or a sweep's, "
        "<output.dir>/<name>_sweep",
    )


def _export_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("folder", type=Path, help="where to write images/ and the CSV files")
    command.add_argument("--folders", action="store_true", help="also the <head>/<class>/ layout")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="Multi-head MobileNet -> integer TFLite -> Vela for Arm Ethos-U.",
    )
    parser.add_argument("--version", action="version", version=f"generator {__version__}")
    commands = parser.add_subparsers(dest="name", required=True)
    for command in _COMMANDS:
        subparser = commands.add_parser(command.name, help=command.help)
        for add_arguments in command.arguments:
            add_arguments(subparser)
        subparser.add_argument("--debug", action="store_true", help="tracebacks and engine logs")
        subparser.set_defaults(command=command)
    return parser


def _config(args: argparse.Namespace) -> Config:
    from generator.config.loading import load_config

    return load_config(Path(args.config), args.set, args.output_dir)


def _validate(args: argparse.Namespace) -> int:
    """Check what a build would need: the config and usable images, without TensorFlow."""
    from generator.config.schema import describe_optimize, ending_block
    from generator.data.images import find_images, select_images

    config = _config(args)
    # A model file's input shape is only known once TensorFlow reads it: check decoding only.
    shape = config.model.input_shape or (32, 32, 3)
    found = len(find_images(config.calibration.data))
    selection = select_images(config.calibration.data, 2, shape, config.model.seed)
    if len(selection.pixels) < 2:
        raise UserError(
            f"calibration.data: {config.calibration.data} has fewer than 2 readable images "
            f"({found} image files): add PNG or JPEG images"
        )
    heads = ", ".join(f"{h.name} ({h.num_classes or 'from the file'})" for h in config.model.heads)
    model = (
        f"model file {display_path(config.model.path)}"
        if config.model.path
        else f"{config.model.backbone} alpha {config.model.alpha}, "
        f"input {'x'.join(map(str, shape))}"
        + (f", ended after {block}" if (block := ending_block(config.model)) else "")
    )
    targets = ", ".join(
        (f"{t.board.name}: " if t.board else "")
        + f"{t.accelerator} ({t.system_config}, {t.memory_mode})"
        for t in config.vela.targets
    )
    print(
        f"{config.source}: valid\n"
        f"  model: {model}, heads {heads or 'named from the file'}\n"
        f"  calibration: {found} image files in {config.calibration.data}\n"
        + "".join(f"  {line}\n" for line in _check_labelled_sets(config))
        + f"  optimize: {describe_optimize(config.optimize) if config.optimize else 'off'}\n"
        + f"  targets: {targets}\n"
        f"  output: {config.output.dir / config.name}"
    )
    return 0


def _check_labelled_sets(config: Config) -> list[str]:
    """Read the training, validation and evaluation sets as a build would, and describe them.

    A model file's heads are only known once TensorFlow reads it, so those wait for the build.
    """
    from generator.data.labelled import read_labelled

    if config.model.path is not None:
        return []
    sets = []
    if config.train is not None:
        sets.append(("train.data", config.train.data))
        if isinstance(config.train.validation, Path):
            sets.append(("train.validation", config.train.validation))
    if config.evaluation is not None:
        sets.append(("evaluation.data", config.evaluation.data))
    lines = []
    for field, source in sets:
        data = read_labelled(source, config.model.heads, config.model.input_shape, field)
        labelled = ", ".join(
            f"{head.name} {int((data.labels[:, i] >= 0).sum())}"
            for i, head in enumerate(config.model.heads)
        )
        lines.append(f"{field}: {len(data.pixels)} images in {display_path(source)} ({labelled})")
    return lines


def _build(args: argparse.Namespace) -> int:
    from generator.config.schema import HOST_MODES

    config = _config(args)
    mode = config.quantization.mode
    if mode in HOST_MODES:
        raise UserError(
            f"quantization.mode: {mode} is a host format with float operators, which no Ethos-U "
            "runs, and build makes what the board runs: use full_integer or int16x8, or measure "
            f"{mode} with 'python -m generator compare {display_path(config.source)}'"
        )
    return _run_pipeline(config, "building", "run_build")


def _compare(args: argparse.Namespace) -> int:
    from generator.config.modes import compare_modes

    config = _config(args)
    chosen = compare_modes(args.modes, config)
    print(
        f"generator {__version__}: comparing {', '.join(chosen)} for {config.name} from "
        f"{config.source}",
        file=sys.stderr,
    )
    stage = _StagePrinter()
    with stage("import", "TensorFlow"), muted():
        import generator.runs.compare
    info, written = generator.runs.compare.run_compare(config, chosen, stage)
    print(f"done in {stage.total:.1f} s", file=sys.stderr)
    for key, choice in info["recommendations"].items():
        print(f"  {key}: {choice['mode'] or 'no mode'}: {choice['reason']}", file=sys.stderr)
    print("wrote:")
    for path in written:
        print(f"  {display_path(path)}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from generator.records.sweep_record import sweep_info, variant_row
    from generator.runs.report import write_sweep_report
    from generator.runs.sweep import exit_now, parse_grid, plan_variants, run_local, run_sweep

    if args.ray_address and args.backend != "ray":
        raise UserError("--ray-address: only with --backend ray")
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give at least 1")
    grid = parse_grid(args.grid)
    base, variants = plan_variants(Path(args.config), args.set, grid, args.output_dir)
    jobs = args.jobs or max(1, min(os.cpu_count() or 1, len(variants)))
    where = (
        f"Ray at {args.ray_address}"
        if args.ray_address
        else f"{'a local Ray instance' if args.backend == 'ray' else 'a process pool'} of {jobs}"
    )
    print(
        f"generator {__version__}: sweeping {len(variants)} variants of {base.name} from "
        f"{base.source} on {where}",
        file=sys.stderr,
    )
    if args.backend == "ray":
        from generator.runs.ray_backend import run_on_ray

        def backend(configs: list[Config]):
            return run_on_ray(configs, args.ray_address, jobs, args.debug)
    else:

        def backend(configs: list[Config]):
            return run_local(configs, jobs, args.debug)

    progress = _SweepProgress(len(variants))
    try:
        results = run_sweep(variants, backend, progress)
    except KeyboardInterrupt:
        print(
            "interrupted: the variants built so far are kept; run the same command again to "
            "build the rest",
            file=sys.stderr,
        )
        exit_now(130)
    rows = [
        variant_row(
            v.name,
            v.settings,
            results[v.name][1],
            results[v.name][0].error if results[v.name][0] else None,
        )
        for v in variants
    ]
    info = sweep_info(base.name, grid, rows)
    sweep_dir = variants[0].config.output.dir
    written = write_sweep_report(info, sweep_dir)
    ok = [row for row in info["variants"] if row["status"] == "ok"]
    print(
        f"done in {progress.elapsed():.1f} s: {len(ok)} of {len(rows)} variants built"
        + (f"; first: {ok[0]['name']}" if ok else ""),
        file=sys.stderr,
    )
    print("wrote:")
    for path in [*(sweep_dir / row["path"] for row in ok), *written]:
        print(f"  {display_path(path)}")
    return 0 if ok else 1


class _SweepProgress:
    """One line per variant as it finishes: done/total, its headline figures, elapsed time and
    an estimate of the time left (the mean time per variant built so far)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = self.built = 0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def __call__(self, variant, outcome, info) -> None:
        from generator.records.sweep_record import variant_row

        self.done += 1
        if outcome is None:
            headline = "already built, not rebuilt"
        else:
            self.built += 1
            if outcome.error is not None:
                headline = f"failed: {outcome.error}"
            else:
                row = variant_row(variant.name, variant.settings, info, None)
                targets = "; ".join(
                    f"{key} {t['inference_time_ms']:.3f} ms, SRAM {t['sram_kib']:.0f} KiB"
                    + {True: ", fits", False: ", does not fit", None: ""}[t["fits"]]
                    for key, t in row["targets"].items()
                )
                accuracy = ", ".join(f"{h} {a:.1%}" for h, a in (row["accuracy"] or {}).items())
                headline = f"{row['tflite_bytes'] / 1024:.0f} KiB .tflite; {targets}" + (
                    f"; accuracy {accuracy}" if accuracy else ""
                )
        elapsed = self.elapsed()
        left = self.total - self.done
        estimate = ""
        if self.built and left:
            estimate = f", about {elapsed / self.built * left:.0f} s left"
        print(
            f"[{self.done}/{self.total}] {variant.name}: {headline} ({elapsed:.0f} s{estimate})",
            file=sys.stderr,
            flush=True,
        )


def _evaluate(args: argparse.Namespace) -> int:
    return _run_pipeline(_config(args), "evaluating", "run_evaluate")


def _run_pipeline(config: Config, verb: str, function: str) -> int:
    """Import TensorFlow (as a timed stage of its own), then run a pipeline entry."""
    print(f"generator {__version__}: {verb} {config.name} from {config.source}", file=sys.stderr)
    stage = _StagePrinter()
    # TensorFlow's native libraries log through absl before anything can configure it (on CPUs
    # with AVX-512, "oneDNN custom operations are on" twice): mute the import itself.
    with stage("import", "TensorFlow"), muted():
        import generator.runs.pipeline
    info, written = getattr(generator.runs.pipeline, function)(config, stage)
    print(f"done in {stage.total:.1f} s", file=sys.stderr)
    _print_summary(info, written)
    return 0


def _report(args: argparse.Namespace) -> int:
    from generator.runs.report import rerender  # Jinja2 and Matplotlib, not TensorFlow

    written = rerender(args.folder)
    print("wrote:")
    for path in written:
        print(f"  {display_path(path)}")
    return 0


def _export_digits(args: argparse.Namespace) -> int:
    folder, folders = args.folder, args.folders
    from generator.data.digits import export_digits

    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"export-digits: {existing} is a file: give a folder (created if missing)")
    manifests = export_digits(folder, folders=folders)
    print("wrote:")
    for path in [folder / "images", *manifests] + ([folder / "folders"] if folders else []):
        print(f"  {display_path(path)}")
    return 0


def _print_summary(info: dict, written: list[Path]) -> None:
    for key, vela in info["vela"].items():
        # What the placement needs in SRAM, and in the other memory (DRAM when it uses it).
        other = "DRAM" if "DRAM" in (vela["weights_in"], vela["arena_in"]) else "flash"
        fit = info["boards"].get(key)
        print(
            f"  {key}: SRAM {vela['sram_needed_bytes'] / 1024:.1f} KiB, {other} "
            f"{vela['off_chip_needed_bytes'] / 1024:.1f} KiB ({vela['memory_mode']}: weights in "
            f"{vela['weights_in']}, arena in {vela['arena_in']}), "
            f"{vela['inference_time_ms']:.2f} ms/inference (Vela estimate), "
            f"{vela['npu_operators']}/{vela['npu_operators'] + vela['cpu_operators']} "
            "operators on the NPU" + (f"; {fit['verdict']}" if fit else ""),
            file=sys.stderr,
        )
        if fit and len(fit["placements"]) > 1:
            print(f"    recommended placement: {fit['recommendation']}", file=sys.stderr)
    if info.get("accuracy"):
        micro = MICRO_TITLES[info["accuracy"]["quantized_runtime"]]
        for name, head in info["accuracy"]["heads"].items():
            print(
                f"  {name}: accuracy float {head['float_top1']:.2%}, quantized ({micro}) "
                f"{head['quantized_top1']:.2%} ({head['drop_points']:+.2f} points drop)"
                + (
                    f", post-training quantized instead {head['post_training_top1']:.2%}"
                    if "post_training_top1" in head
                    else ""
                )
                + f" on {head['images']} images",
                file=sys.stderr,
            )
    for warning in info["warnings"]:
        print(f"  warning: {warning}", file=sys.stderr)
    print("wrote:")
    for path in written:
        print(f"  {display_path(path)}")


class _StagePrinter:
    """Prints `[stage] detail ... 1.2 s` lines to stderr and keeps the total time.

    Notes inside a stage (training epochs) go on lines of their own, indented.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.open_line = False

    @contextlib.contextmanager
    def __call__(self, name: str, detail: str) -> Iterator[None]:
        print(f"[{name}] {detail} ...", end="", file=sys.stderr, flush=True)
        self.open_line = True
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self._end_line(" failed")
            raise
        elapsed = time.perf_counter() - start
        self.total += elapsed
        self._end_line(f" {elapsed:.1f} s")

    def note(self, line: str) -> None:
        if self.open_line:
            print(file=sys.stderr)
            self.open_line = False
        print(f"    {line}", file=sys.stderr, flush=True)

    def _end_line(self, text: str) -> None:
        print(text if self.open_line else f"    done{text}", file=sys.stderr, flush=True)
        self.open_line = False


# Every command: name, help, arguments, handler. `main` runs the handler the parser chose.
_COMMANDS = (
    _Command(
        "build",
        "build, train, quantize, compile and report",
        (_config_arguments,),
        _build,
    ),
    _Command(
        "validate",
        "check the config and its images without building",
        (_config_arguments,),
        _validate,
    ),
    _Command(
        "evaluate",
        "re-run only the accuracy evaluation on an existing build",
        (_config_arguments,),
        _evaluate,
    ),
    _Command(
        "compare",
        "build every quantization mode from one float model and compare",
        (_config_arguments, _modes_argument),
        _compare,
    ),
    _Command(
        "sweep",
        "build every combination of a grid of config values and rank them",
        (_config_arguments, _sweep_arguments),
        _sweep,
    ),
    _Command(
        "report",
        "render an existing build's (comparison's, sweep's) Markdown and HTML again from its JSON",
        (_report_arguments,),
        _report,
    ),
    _Command(
        "export-digits",
        "write scikit-learn's digits as a labelled set with three heads",
        (_export_arguments,),
        _export_digits,
    ),
)
