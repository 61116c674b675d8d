"""The build pipeline: build -> [train] -> calibrate -> [qat] -> convert -> [layers: per-layer
error] -> verify -> compile (Vela; for boards every placement: weights in flash, SRAM or DRAM,
and its fit) -> arena -> firmware (C arrays) -> [evaluate] -> report. Vela's compiles and the
arena search start as soon as the .tflite exists and run beside layers and verify.

Everything is written into a hidden staging folder inside `output.dir` and moved to
`<output.dir>/<name>/` only when every stage has succeeded, so a failed or interrupted build
leaves nothing half-written (and an earlier good build stays in place until then).

Importing this module imports TensorFlow (through the build stage); `validate` never does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from generator import __version__
from generator.analysis.compression import read_back
from generator.analysis.evaluate import evaluate_accuracy
from generator.analysis.placement import (
    BoardPlacements,
    arena_bytes,
    compile_placements,
    judge_placements,
)
from generator.analysis.verify import verify
from generator.config.schema import Config, Head, describe_optimize, ending_block, output_stride
from generator.data.calibration import load_calibration_set
from generator.data.labelled import (
    PROGRESS_EVERY,
    LabelledImages,
    decode_labelled,
    list_labelled,
    read_labelled,
)
from generator.data.pixels import pixels_to_model_input
from generator.engines.micro import ARENA_NOT_MEASURED, start_arena_search
from generator.engines.tflite_file import read_tflite
from generator.engines.tflm import NPU_ARENA_MARGIN_BYTES
from generator.engines.vela import VelaResult, compile_for_target
from generator.errors import UserError, VerificationError
from generator.export.c_arrays import CompiledFor, write_c_array
from generator.model.build import BuiltModel, build, load_teacher, model_copies, training_copy
from generator.model.compress import compress
from generator.model.qat import QatResult, check_ranges, fine_tune
from generator.model.train import train_model, validation_rows
from generator.quantization.convert import convert_to_tflite, tensor_layers
from generator.quantization.layer_error import layer_errors
from generator.records.build_record import (
    UNCOMPRESSED_TEACHER,
    AccuracyOutcome,
    CompressionOutcome,
    TrainingOutcome,
    accuracy_info,
    quantization_info,
)
from generator.records.files import build_files
from generator.runs.publish import publish_build, staged
from generator.runs.report import write_build_report
from generator.support.quiet import muted
from generator.support.text import display_path, first_line


class Stage(Protocol):
    """Called as `with stage(name, detail):` around each stage; the CLI prints and times it.
    `note(line)` reports progress inside a long stage (an epoch of training)."""

    def __call__(self, name: str, detail: str) -> AbstractContextManager[None]: ...

    def note(self, line: str) -> None: ...


def run_build(config: Config, stage: Stage) -> tuple[dict, list[Path]]:
    """Run every stage; return the quantization info and the paths written, in order."""
    final = config.output.dir / config.name
    with staged(config.output.dir, config.name) as staging:
        info, written = _build_into(staging, config, stage)
        publish_build(staging, final)
    return info, [final / path.relative_to(staging) for path in written]


def _build_into(folder: Path, config: Config, stage: Stage) -> tuple[dict, list[Path]]:
    name = config.name
    input_range = config.calibration.input_range
    with stage("build", _describe_model(config)):
        built = build(config.model)

    training = sets = None
    if config.train is not None:
        training, sets = train_stage(config, built, stage)

    compression = None
    if config.optimize is not None:
        compression = optimize_stage(config=config, built=built, sets=sets, stage=stage)

    with stage("save", f"{name}.keras"):
        keras_path = folder / f"{name}.keras"
        with muted():
            built.model.save(keras_path)

    with stage("calibrate", f"images from {display_path(config.calibration.data)}"):
        calibration = load_calibration_set(config.calibration, built.input_shape, config.model.seed)

    qat = None
    if config.train is not None and config.train.qat is not None:
        qat = fine_tune_stage(
            config=config,
            built=built,
            sets=sets,
            calibration_pixels=calibration.calibration,
            stage=stage,
            compression=compression,
        )

    heads = [head.name for head in built.heads]
    with stage("convert", f"quantizing on {len(calibration.calibration)} images"):
        content = post_training = convert_to_tflite(
            built.model, calibration.calibration, input_range, config.quantization, heads=heads
        )
        if qat is not None:
            content = convert_to_tflite(
                qat.model, calibration.calibration, input_range, config.quantization, heads=heads
            )
            qat = dataclasses.replace(
                qat, activations_checked=check_ranges(read_tflite(content), qat.model)
            )
        tflite_path = folder / f"{name}.tflite"
        tflite_path.write_bytes(content)
        tflite = read_tflite(content)
        # A QAT model's layers carry the float model's names, plus its quantizers.
        layers = tensor_layers(tflite, built.model if qat is None else qat.model, heads)
        if compression is not None:
            compression = dataclasses.replace(
                compression,
                kernels=read_back(
                    content=content,
                    tflite=tflite,
                    layers=layers,
                    compressed=compression.compression.layers,
                ),
            )

    # The stages after the conversion that depend on nothing but the .tflite run beside the
    # in-process ones: the arena search in a child process, Vela's compiles as subprocesses,
    # two at a time (docs/design/concurrent-stages.md).
    model_input = pixels_to_model_input(calibration.held_out[:1], tflite.inputs[0], input_range)
    arena_search = None
    vela_pool = ThreadPoolExecutor(max_workers=VELA_AT_ONCE)
    try:
        arena_search = start_arena_search(content, model_input[0])
        compiling = _start_compiles(vela_pool, config, tflite_path, folder)
        errors = None
        # The debugger cannot build int16 layers (records.policy.LAYER_ERRORS_WITH_INT16).
        if config.quantization.mode == "full_integer" and not config.quantization.int16:
            held_out = len(calibration.held_out)
            with stage("layers", f"per-layer quantization error on {held_out} images"):
                errors = layer_errors(
                    model=built.model,
                    calibration_pixels=calibration.calibration,
                    held_out_pixels=calibration.held_out,
                    input_range=input_range,
                    quantization=config.quantization,
                    heads=heads,
                )

        images = len(calibration.held_out)
        with stage("verify", f"float vs TFLite Micro, LiteRT vs TFLite Micro, on {images} images"):
            verification = verify(
                model=built.model,
                content=content,
                tflite=tflite,
                heads=built.heads,
                pixels=calibration.held_out,
                input_range=input_range,
                layers=layers,
            )

        targets = ", ".join(t.key for t in config.vela.targets)
        with stage("compile", f"Vela for {targets}, each board's placements too (begun above)"):
            vela_results, placements = _finish_compiles(config, built, compiling)

        arena = None
        if arena_search is not None:
            with stage("arena", "smallest TFLite Micro tensor arena (searched beside the above)"):
                arena = arena_search.result()
    except BaseException:
        if arena_search is not None:
            arena_search.cancel()
        raise
    finally:
        vela_pool.shutdown(wait=True, cancel_futures=True)

    alternatives = [p.result for board in placements for p in board.placements[1:]]
    with stage("firmware", "C arrays with metadata headers"):
        c_files = _write_c_arrays(
            folder, config, built, content, arena, [*vela_results, *alternatives]
        )

    accuracy = None
    if config.evaluation is not None:
        compared = None if qat is None else post_training
        accuracy = _evaluate(config, built, content, tflite, keras_path, stage, compared)

    with stage("report", "quantization info and report"):
        info = quantization_info(
            config=config,
            built=built,
            content=content,
            tflite=tflite,
            layers=layers,
            calibration=calibration,
            vela=vela_results,
            verification=verification,
            tflm_arena_bytes=arena,
            placements=placements,
            training=training,
            qat=qat,
            accuracy=accuracy,
            layer_errors=errors,
            compression=compression,
        )
        report = build_files(folder, name)
        write_build_report(info, report)

    vela_files = [
        path
        for r in (*vela_results, *alternatives)
        for path in (r.ini_path, r.tflite_path, r.summary_path, r.per_layer_path)
        if path is not None
    ]
    return info, [
        keras_path,
        tflite_path,
        *vela_files,
        *c_files,
        report.info,
        report.markdown,
        report.html,
    ]


# Vela runs at once: each is a process of its own, so more would only share two cores with the
# stages running in the build's own process.
VELA_AT_ONCE = 2


def _start_compiles(
    pool: ThreadPoolExecutor, config: Config, tflite_path: Path, folder: Path
) -> list[tuple[Future[VelaResult], Future[list[VelaResult]] | None]]:
    """Start Vela for every target, and for every board target its other placements."""
    started = []
    for target in config.vela.targets:
        output_dir = folder / "vela" / target.key
        own = pool.submit(
            compile_for_target,
            tflite_path=tflite_path,
            target=target,
            optimise=config.vela.optimise,
            output_dir=output_dir,
        )
        others = None
        if target.board is not None:
            others = pool.submit(
                compile_placements, tflite_path, target, config.vela.optimise, output_dir
            )
        started.append((own, others))
    return started


def _finish_compiles(
    config: Config,
    built: BuiltModel,
    started: list[tuple[Future[VelaResult], Future[list[VelaResult]] | None]],
) -> tuple[list[VelaResult], list[BoardPlacements]]:
    """Every target's result, and each board's placements with their fit. An operator left to
    the CPU stops the build (unless `vela.allow_cpu_fallback`), as does, with
    `output.require_fit`, a board on which no placement fits."""
    vela_results = [own.result() for own, _ in started]
    for result in vela_results:
        if result.cpu_operators and not config.vela.allow_cpu_fallback:
            why = (
                " (quantization.keep_float keeps layers float, and the NPU runs only "
                "integer operators)"
                if config.quantization.keep_float
                else ""
            )
            raise UserError(
                f"vela: {result.cpu_operators} operator(s) would run on the CPU for "
                f"{result.target.key}{why}: {', '.join(result.cpu_operator_names)}: set "
                "vela.allow_cpu_fallback: true to accept that, or change the model"
            )
    placements = [
        judge_placements([own.result(), *others.result()], config.model.alpha, built.input_shape)
        for own, others in started
        if others is not None
    ]
    misfits = [board.own.fit for board in placements if board.recommended is None]
    if misfits and config.output.require_fit:
        raise VerificationError(
            "; ".join(f"{fit.board.name}: {fit.verdict()}" for fit in misfits)
            + " (output.require_fit is true)"
        )
    return vela_results, placements


def _write_c_arrays(
    folder: Path,
    config: Config,
    built: BuiltModel,
    content: bytes,
    arena: int | None,
    results: list[VelaResult],
) -> list[Path]:
    """`<name>_model.h/.c` for the .tflite, and in `vela/<target>/` for each Vela target. The
    .tflite's arena is None where TensorFlow Lite Micro could not measure it."""
    section = config.output.c_array_section
    arrays = [
        write_c_array(
            folder=folder,
            name=config.name,
            content=content,
            heads=built.heads,
            arena_bytes=arena,
            arena_basis="measured in TFLite Micro on a 64-bit host, an upper bound for a 32-bit "
            "Cortex-M"
            if arena is not None
            else ARENA_NOT_MEASURED,
            compiled_for=None,
            section=section,
            generator_version=__version__,
        )
    ]
    vela_version = importlib.metadata.version("ethos-u-vela")
    for result in results:
        target = result.target
        arrays.append(
            write_c_array(
                folder=result.tflite_path.parent,
                name=config.name,
                content=result.tflite_path.read_bytes(),
                heads=built.heads,
                arena_bytes=arena_bytes(result),
                arena_basis=f"Vela's scratch tensor ({result.scratch_bytes:,} bytes) plus the "
                f"documented {NPU_ARENA_MARGIN_BYTES} bytes for TFLite Micro, in "
                f"{result.layout.arena}",
                compiled_for=CompiledFor(
                    accelerator=target.accelerator,
                    system_config=result.system_config,
                    memory_mode=result.memory_mode,
                    board=target.board.name if target.board else None,
                    vela_version=vela_version,
                    weights_in=result.layout.weights,
                    arena_in=result.layout.arena,
                    fast_memory_bytes=result.fast_scratch_bytes,
                ),
                section=section,
                generator_version=__version__,
            )
        )
    return [path for array in arrays for path in (array.header, array.source)]


def run_evaluate(config: Config, stage: Stage) -> tuple[dict, list[Path]]:
    """Re-run only the accuracy evaluation on an existing build; update its JSON and report."""
    if config.evaluation is None:
        raise UserError("evaluation: the config names no labelled set to evaluate on")
    folder = config.output.dir / config.name
    keras_path = folder / f"{config.name}.keras"
    tflite_path = folder / f"{config.name}.tflite"
    report = build_files(folder, config.name)
    missing = [p for p in (keras_path, tflite_path, report.info) if not p.is_file()]
    if missing:
        raise UserError(
            f"evaluate: {display_path(missing[0])} not found: run "
            f"'python -m generator build {display_path(config.source)}' first"
        )
    with stage("load", display_path(folder)):
        import keras

        try:
            with muted():
                model = keras.saving.load_model(keras_path, compile=False)
            info = json.loads(report.info.read_text())
        except (ValueError, OSError) as error:  # json.JSONDecodeError is a ValueError
            raise UserError(
                f"evaluate: the build in {display_path(folder)} cannot be read "
                f"({first_line(error, limit=120)}): run 'python -m generator build "
                f"{display_path(config.source)}' again"
            ) from None
        heads = tuple(
            Head(h["name"], h["num_classes"], tuple(h["labels"]) if h["labels"] else None)
            for h in info["heads"]
        )
        shape = tuple(info["model"]["input_shape"])
        content = tflite_path.read_bytes()
    built = BuiltModel(model, heads, shape)
    accuracy = _evaluate(config, built, content, read_tflite(content), keras_path, stage)
    with stage("report", "quantization info and report"):
        info["accuracy"] = accuracy_info(accuracy)
        write_build_report(info, report)
    return info, [report.info, report.markdown, report.html]


def _describe_model(config: Config) -> str:
    model = config.model
    if model.path is not None:
        return f"model file {display_path(model.path)}"
    height, width, channels = model.input_shape
    heads = ", ".join(h.name for h in model.heads)
    described = (
        f"{model.backbone} alpha {model.alpha}, {height}x{width}x{channels}, output stride "
        f"{output_stride(model)}, heads {heads}"
    )
    if model.pretrained is not None:
        source = model.pretrained if isinstance(model.pretrained, str) else model.pretrained.name
        described += f", backbone from {source}"
    if (block := ending_block(model)) is not None:
        described += f", ended after {block}"
    return described


def train_stage(
    config: Config, built: BuiltModel, stage: Stage
) -> tuple[TrainingOutcome, tuple[LabelledImages, LabelledImages]]:
    """Train the float model; return the outcome and the (training, validation) sets."""
    train = config.train

    def decoded(done: int, total: int) -> None:
        if total >= 2 * PROGRESS_EVERY:
            stage.note(f"decoded {done:,} of {total:,} images")

    shape = built.input_shape
    with stage("data", f"labelled images from {display_path(train.data)}"):
        listed = list_labelled(train.data, built.heads, "train.data")
        if isinstance(train.validation, Path):
            training = decode_labelled(listed, shape, on_progress=decoded)
            validation = read_labelled(
                train.validation, built.heads, shape, "train.validation", decoded
            )
        else:
            rows = validation_rows(len(listed.paths), train.validation, train.seed)
            training, validation = (decode_labelled(listed, shape, part, decoded) for part in rows)
    unknown = sorted(set(train.loss_weights) - {h.name for h in built.heads})
    if unknown:
        raise UserError(f"train.loss_weights.{unknown[0]}: the model has no head of that name")
    detail = (
        f"{len(training.pixels)} images, {len(validation.pixels)} for validation, "
        f"up to {train.epochs} epochs"
    )
    with stage("train", detail):
        # Our MobileNet trains with a free batch size, then its weights go to the batch-1 model.
        trainable = training_copy(config.model, built, mixed_precision=train.mixed_precision)
        teacher = None
        if train.teacher is not None:
            teacher = load_teacher(train.teacher, built.heads, built.input_shape)
        result = train_model(
            teacher=teacher,
            model=trainable,
            heads=built.heads,
            training=training,
            validation=validation,
            config=train,
            input_range=config.calibration.input_range,
            on_epoch=lambda record: stage.note(_epoch_line(record, train.epochs)),
        )
        if trainable is not built.model:
            built.model.set_weights(trainable.get_weights())
    stage.note(f"{result.images_per_second:,.0f} images/s")
    return TrainingOutcome(result, train.data, train.validation), (training, validation)


def optimize_stage(
    *,
    config: Config,
    built: BuiltModel,
    sets: tuple[LabelledImages, LabelledImages] | None,
    stage: Stage,
) -> CompressionOutcome:
    """Prune and cluster `built.model`'s kernels, then (with `optimize.epochs`) fine-tune them
    under that constraint, learning from the uncompressed model's logits (or `train.teacher`'s)
    as well as the labels. `built.model` ends compressed: it is what is saved and quantized."""
    optimize = config.optimize
    teacher = teacher_source = None
    with stage("compress", describe_optimize(optimize)):
        if optimize.epochs and optimize.distill:
            if config.train.teacher is not None:
                teacher = load_teacher(config.train.teacher, built.heads, built.input_shape)
                teacher_source = display_path(config.train.teacher)
            else:
                teacher, _ = model_copies(config.model, built)
                teacher_source = UNCOMPRESSED_TEACHER
        compression = compress(built.model, optimize)
    result = None
    if optimize.epochs:
        train = config.train
        tuning = dataclasses.replace(
            train,
            epochs=optimize.epochs,
            learning_rate=optimize.learning_rate,
            schedule="cosine",
            warmup_epochs=0,
            freeze_backbone_epochs=0,
            backbone_learning_rate=1.0,
            mixed_precision=False,
            qat=None,
        )
        detail = f"{optimize.epochs} epochs, the compression held" + (
            f", learning from {teacher_source}" if teacher is not None else ""
        )
        with stage("fine-tune", detail):
            trainable = training_copy(config.model, built, mixed_precision=False)
            training, validation = sets
            with compression.held(trainable):
                result = train_model(
                    model=trainable,
                    heads=built.heads,
                    training=training,
                    validation=validation,
                    config=tuning,
                    input_range=config.calibration.input_range,
                    on_epoch=lambda record: stage.note(_epoch_line(record, optimize.epochs)),
                    teacher=teacher,
                )
            if trainable is not built.model:
                built.model.set_weights(trainable.get_weights())
    return CompressionOutcome(compression=compression, fine_tuning=result, teacher=teacher_source)


def fine_tune_stage(
    *,
    config: Config,
    built: BuiltModel,
    sets: tuple[LabelledImages, LabelledImages],
    calibration_pixels,
    stage: Stage,
    compression: CompressionOutcome | None = None,
) -> QatResult:
    """Quantization-aware fine-tuning of a copy of the trained float model; `built.model` keeps
    the float weights (the .keras file, the float accuracy and post-training quantization). A
    compressed model stays compressed through it (its constraint is held)."""
    train = config.train
    detail = f"quantization-aware training, {train.qat.epochs} epochs"
    with stage("qat", detail):
        trainable, deployed = model_copies(config.model, built)
        training, validation = sets
        held = (
            compression.compression.held(trainable)
            if compression is not None
            else contextlib.nullcontext()
        )
        with held:
            result = fine_tune(
                trainable=trainable,
                deployed=deployed,
                heads=built.heads,
                training=training,
                validation=validation,
                config=train,
                calibration_pixels=calibration_pixels,
                input_range=config.calibration.input_range,
                on_epoch=lambda record: stage.note(_epoch_line(record, train.qat.epochs)),
            )
        stage.note(f"{result.training.images_per_second:,.0f} images/s")
    return result


def _epoch_line(record, epochs: int) -> str:
    heads = ", ".join(
        f"{name} {record.accuracy[name]:.1%}/{record.val_accuracy[name]:.1%}"
        for name in record.accuracy
    )
    return (
        f"epoch {record.epoch}/{epochs}: loss {record.loss:.3f}, val_loss {record.val_loss:.3f}; "
        f"accuracy train/val: {heads}"
    )


def _evaluate(
    config, built, content, tflite, keras_path, stage: Stage, post_training: bytes | None = None
) -> AccuracyOutcome:
    """Accuracy of the float model and of `content`; with `post_training` (a QAT build's
    post-training-quantized model) that model's accuracy too, from the same runtime."""
    source = config.evaluation.data
    input_range = config.calibration.input_range
    with stage("evaluate", f"float vs quantized accuracy on {display_path(source)}"):
        data = read_labelled(source, built.heads, built.input_shape, "evaluation.data")
        heads = evaluate_accuracy(
            model=built.model,
            content=content,
            tflite=tflite,
            heads=built.heads,
            data=data,
            input_range=input_range,
        )
        compared = None
        if post_training is not None:
            compared = evaluate_accuracy(
                model=built.model,
                content=post_training,
                tflite=read_tflite(post_training),
                heads=built.heads,
                data=data,
                input_range=input_range,
            )
    return AccuracyOutcome(heads, source, keras_path.stat().st_size, len(content), compared)
