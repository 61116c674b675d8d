"""`compare`: one float model in every quantization mode, each measured from its own artifact.

The shared work is done once: building (and training) the float model, loading the calibration
and evaluation images, quantization-aware fine-tuning when `qat` is compared, and the float32
reference the others are measured against. Then, per mode: convert, write the .tflite, read its
tensor types back, time it in LiteRT, compile it with Vela for every target (deployable modes
only), find its TFLite Micro arena (where TFLite Micro runs it), and score it on the images.

- Deployable modes (`full_integer`, `int16x8`, `qat`, `mixed`, `optimized`) are compiled with
  Vela, which is
  allowed to put operators on the CPU here: the NPU/CPU split is a result, not a failure.
- Host modes (`dynamic_range`, `float16`, `float32`) keep float operators that no Ethos-U runs:
  Vela is not run for them and the row says why, rather than reporting a "compiled" model with
  every operator on the CPU.
- `qat` fine-tunes the trained float model (`train.qat`, or 3 epochs at 1e-4 when the config
  does not set it) and needs `train:`; `mixed` is `full_integer` with the config's
  `quantization.keep_float` layers kept float and its `quantization.int16` layers at 16-bit
  activations.

Each mode's outputs come from TFLite Micro where it runs the mode (what a Cortex-M computes;
LiteRT's reference kernels where it is not installed, `engines/micro.py`), else from LiteRT's
built-in kernels; the row names the runtime. Agreement and SQNR are against
the float32 model in LiteRT's built-in kernels, on the evaluation set when the config has one
(then top-1 accuracy too), else on the held-out calibration images. A mode that cannot be made
(a layer the converter refuses in that mode) gets its reason in its row and the others go on.

Results land in `<output.dir>/<name>/compare/<mode>/` and `<name>_compare.json` / `.md` /
`.html` beside the build's files; they are staged in a hidden folder and moved into place only
when complete.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.analysis.logits import dequantize, sqnr_db
from generator.config.schema import HOST_MODES, Config, QatConfig, VelaTarget
from generator.data.calibration import load_calibration_set
from generator.data.labelled import read_labelled
from generator.data.pixels import pixels_to_model_input
from generator.engines.litert import latency_ms, run_tflite
from generator.engines.micro import (
    MICRO_NAMES,
    TFLM_MISSING,
    micro_runtime,
    minimum_arena,
    run_micro,
    tflm_installed,
)
from generator.engines.tflite_file import read_tflite
from generator.engines.vela import VelaResult, compile_for_target
from generator.errors import UserError, VerificationError
from generator.model.build import BuiltModel, build, model_copies
from generator.quantization.convert import convert_to_tflite
from generator.records.compare_record import compare_info
from generator.runs.pipeline import fine_tune_stage, optimize_stage, train_stage
from generator.runs.publish import COMPARISON_FOLDER, publish_comparison, staged
from generator.runs.report import write_compare_report
from generator.support.files import is_write_failure
from generator.support.text import display_path, first_line

HOST_RUNTIME = "litert_default"  # what `Interpreter(model_path=...)` gives a host user
REFERENCE_RUNTIME = "litert_builtin"
DEFAULT_QAT = QatConfig(epochs=3, learning_rate=1e-4)


@dataclass(frozen=True)
class ModeResult:
    mode: str
    error: str | None = None  # why the mode could not be made; every figure is then None
    tflite: Path | None = None
    tflite_bytes: int | None = None
    dtypes: dict[str, int] | None = None
    host_latency_ms: float | None = None
    vela: dict[str, VelaResult | str] | None = None  # target -> Vela's result, or its error
    vela_note: str | None = None
    tflm_arena_bytes: int | None = None
    tflm_note: str | None = None
    runtime: str | None = None  # the runtime of accuracy, agreement and SQNR
    accuracy: dict[str, float] | None = None
    agreement: dict[str, float] | None = None
    sqnr_db: dict[str, float | None] | None = None


def run_compare(config: Config, modes: tuple[str, ...], stage) -> tuple[dict, list[Path]]:
    """Build the float model once, measure every mode; return the JSON record and the paths."""
    final = config.output.dir / config.name
    with staged(config.output.dir, config.name) as staging:
        info, written = _compare_into(staging, config, modes, stage)
        publish_comparison(staging, final, written)
    return info, [final / path.relative_to(staging) for path in written]


def _compare_into(folder: Path, config: Config, modes: tuple[str, ...], stage):
    name = config.name
    input_range = config.calibration.input_range
    with stage("build", "the float model, shared by every mode"):
        built = build(config.model)
    sets = None
    if config.train is not None:
        _, sets = train_stage(config, built, stage)
    with stage("calibrate", f"images from {display_path(config.calibration.data)}"):
        calibration = load_calibration_set(config.calibration, built.input_shape, config.model.seed)
    qat_model = None
    if "qat" in modes:
        qat_config = config
        if config.train.qat is None:
            qat_config = dataclasses.replace(
                config, train=dataclasses.replace(config.train, qat=DEFAULT_QAT)
            )
        qat_model = fine_tune_stage(
            config=qat_config,
            built=built,
            sets=sets,
            calibration_pixels=calibration.calibration,
            stage=stage,
        ).model
    optimized = None
    if "optimized" in modes:
        optimized = BuiltModel(model_copies(config.model, built)[1], built.heads, built.input_shape)
        optimize_stage(config=config, built=optimized, sets=sets, stage=stage)
    images, labels, source = calibration.held_out, None, "held-out calibration images"
    if config.evaluation is not None:
        with stage("data", f"evaluation images from {display_path(config.evaluation.data)}"):
            data = read_labelled(
                config.evaluation.data, built.heads, built.input_shape, "evaluation.data"
            )
        images, labels, source = data.pixels, data.labels, display_path(config.evaluation.data)
    heads = [head.name for head in built.heads]

    def convert(mode: str) -> bytes:
        quantization = config.quantization
        if mode != "mixed":
            quantization = dataclasses.replace(
                quantization,
                mode="full_integer" if mode in ("qat", "optimized") else mode,
                keep_float=(),
                int16=(),
            )
        made = {"qat": qat_model, "optimized": optimized and optimized.model}
        model = made.get(mode, built.model)
        return convert_to_tflite(
            model, calibration.calibration, input_range, quantization, heads=heads
        )

    with stage("reference", f"float32 model on {len(images)} {source}"):
        reference = convert("float32")
        expected = _logits(reference, images, input_range, REFERENCE_RUNTIME)
        sample = pixels_to_model_input(images[:1], read_tflite(reference).inputs[0], input_range)
        reference_figures = {
            "mode": "float32",
            "runtime": REFERENCE_RUNTIME,
            "tflite_bytes": len(reference),
            "host_latency_ms": latency_ms(reference, sample[0], HOST_RUNTIME),
            "accuracy": None if labels is None else _accuracy(expected, labels, heads),
        }
    results = []
    for mode in modes:
        mode_folder = folder / COMPARISON_FOLDER / mode
        with stage(f"mode {mode}", _mode_detail(mode, config)):
            try:
                result = _measure(
                    mode=mode,
                    convert=convert,
                    folder=mode_folder,
                    name=name,
                    config=config,
                    built=built,
                    images=images,
                    labels=labels,
                    expected=expected,
                    made=(reference, reference_figures["host_latency_ms"])
                    if mode == "float32"
                    else None,
                )
            except Exception as error:  # any engine's failure is the row's, not the run's
                result = _failed(mode, mode_folder, error)
        if result.error:
            stage.note(f"{mode} failed: {result.error}")
        results.append(result)
    with stage("report", f"{name}_compare.json, .md and .html"):
        described = {"source": source, "count": len(images), "labelled": labels is not None}
        info = compare_info(
            config=config,
            built=built,
            results=results,
            folder=folder,
            reference=reference_figures,
            images=described,
            micro={"runtime": micro_runtime(), "note": None if tflm_installed() else TFLM_MISSING},
        )
        report = write_compare_report(info, folder, name)
    written = [r.tflite for r in results if r.tflite] + report
    return info, written


def _mode_detail(mode: str, config: Config) -> str:
    targets = ", ".join(t.key for t in config.vela.targets)
    if mode in HOST_MODES:
        return "convert, LiteRT timing and accuracy (a host format: no Vela)"
    arena = "TFLite Micro arena, " if tflm_installed() else ""
    return f"convert, Vela for {targets}, {arena}accuracy"


def _failed(mode: str, folder: Path, error: Exception) -> ModeResult:
    """Whatever fails while a mode is made or measured (the converter, Vela, TFLite Micro,
    LiteRT) is that mode's one-line error, and its files are removed: the other modes go on,
    and the comparison reports what failed where. The output folder's own failure (a full or
    read-only disk) is not the mode's: it stops the run (`runs.publish.staged`)."""
    if isinstance(error, OSError) and is_write_failure(error, folder.resolve()):
        raise error
    shutil.rmtree(folder, ignore_errors=True)
    if isinstance(error, UserError):
        return ModeResult(mode, error=str(error))
    return ModeResult(mode, error=f"{type(error).__name__}: {first_line(error, limit=300)}")


def _measure(
    *,
    mode: str,
    convert: Callable[[str], bytes],
    folder: Path,
    name: str,
    config: Config,
    built: BuiltModel,
    images: np.ndarray,
    labels: np.ndarray | None,
    expected: dict[str, np.ndarray],
    made: tuple[bytes, float] | None,
) -> ModeResult:
    """One mode's figures; `made` is its .tflite and host latency when already measured (the
    float32 reference)."""
    content, latency = made or (convert(mode), None)
    folder.mkdir(parents=True)
    tflite_path = folder / f"{name}_{mode}.tflite"
    tflite_path.write_bytes(content)
    tflite = read_tflite(content)
    input_range = config.calibration.input_range
    sample = pixels_to_model_input(images[:1], tflite.inputs[0], input_range)[0]
    vela, vela_note = None, None
    if mode in HOST_MODES:
        vela_note = (
            f"{mode} is a host format: its float operators cannot run on an Ethos-U NPU, so "
            "Vela was not run"
        )
    else:
        vela = {
            target.key: _vela_figures(tflite_path, target, config, folder / "vela" / target.key)
            for target in config.vela.targets
        }
    runtime, arena = micro_runtime(), None
    tflm_note = None if tflm_installed() else "not measured: TensorFlow Lite Micro is not installed"
    try:
        logits = _logits(content, images, input_range, runtime)
        arena = minimum_arena(content, sample)
    except VerificationError as error:
        tflm_note = f"{MICRO_NAMES[runtime]} cannot run this model ({error.__cause__})"
        runtime = REFERENCE_RUNTIME
        logits = _logits(content, images, input_range, runtime)
    heads = [head.name for head in built.heads]
    return ModeResult(
        mode,
        tflite=tflite_path,
        tflite_bytes=len(content),
        dtypes=dict(sorted(tflite.dtype_counts().items())),
        host_latency_ms=latency or latency_ms(content, sample, HOST_RUNTIME),
        vela=vela,
        vela_note=vela_note,
        tflm_arena_bytes=arena,
        tflm_note=tflm_note,
        runtime=runtime,
        accuracy=None if labels is None else _accuracy(logits, labels, heads),
        agreement={
            head: float(np.mean(logits[head].argmax(1) == expected[head].argmax(1)))
            for head in heads
        },
        sqnr_db={head: sqnr_db(expected[head], logits[head]) for head in heads},
    )


def _accuracy(
    logits: dict[str, np.ndarray], labels: np.ndarray, heads: list[str]
) -> dict[str, float]:
    """Top-1 per head on the images labelled for it (label -1: none)."""
    found = {}
    for column, head in enumerate(heads):
        labelled = labels[:, column] >= 0
        predicted = logits[head][labelled].argmax(axis=1)
        found[head] = float(np.mean(predicted == labels[labelled, column]))
    return found


def _vela_figures(
    tflite_path: Path, target: VelaTarget, config: Config, output_dir: Path
) -> VelaResult | str:
    """Vela's result for `target`, or its one-line error: the other targets and modes go on."""
    try:
        return compile_for_target(
            tflite_path=tflite_path,
            target=target,
            optimise=config.vela.optimise,
            output_dir=output_dir,
        )
    except UserError as error:
        return str(error)


def _logits(
    content: bytes, images: np.ndarray, input_range: tuple[float, float], runtime: str
) -> dict[str, np.ndarray]:
    """Dequantized outputs per head (output i is head i) in `runtime`."""
    tflite = read_tflite(content)
    inputs = pixels_to_model_input(images, tflite.inputs[0], input_range)
    if runtime == micro_runtime():
        raw = run_micro(content, inputs, len(tflite.outputs))
    else:
        raw = run_tflite(content, inputs, runtime)
    named = {t.name: values for t, values in zip(tflite.outputs, raw, strict=True)}
    return dequantize(named, tflite)
