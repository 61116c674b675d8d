"""A build's record, `<name>_quantization_info.json` (schema in docs/outputs.md), assembled from
what the stages returned, and the warnings it carries.

Every figure is read back from an artifact: the .tflite (tensors, quantization, operators,
size), Vela's CSV files, or a real interpreter run. Every page is rendered from this record
alone (`generator.rendering`), so the JSON and the pages cannot disagree. Only the build's run
imports this module: the renderers take what they need to read a record from
`generator.records.policy`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator import __version__
from generator.analysis.compression import KernelReadBack
from generator.analysis.evaluate import HeadAccuracy
from generator.analysis.fit import Fit
from generator.analysis.placement import (
    BoardPlacements,
    Placement,
    arena_bytes,
    describe,
    memory_needed,
)
from generator.analysis.verify import (
    GATING_RUNTIME,
    SQNR_MARGIN_DB,
    RuntimeDifference,
    Verification,
)
from generator.config.schema import (
    IMAGENET_INPUT_RANGE,
    CalibrationConfig,
    Config,
    TrainConfig,
    ending_block,
    imagenet_scaled,
    output_stride,
)
from generator.data.calibration import CalibrationSet
from generator.engines.micro import (
    ARENA_NOT_MEASURED,
    TFLM_MISSING,
    micro_runtime,
    tflm_installed,
)
from generator.engines.tflite_file import TfliteModel
from generator.engines.tflm import NPU_ARENA_MARGIN_BYTES
from generator.engines.vela import VelaResult
from generator.records.files import BUILD_SCHEMA_VERSION
from generator.records.policy import LAYER_ERROR_WARNING_STEPS, SATURATION_WARNING
from generator.support.text import display_path, format_bytes

if TYPE_CHECKING:  # annotations only: importing these would import TensorFlow, which a
    # sweep's driver (which assembles no record but imports this package) does not need
    from generator.model.build import BuiltModel
    from generator.model.compress import Compression
    from generator.model.pretrained import PretrainedWeights
    from generator.model.qat import QatResult
    from generator.model.train import TrainingResult
    from generator.quantization.layer_error import LayerError


@dataclass(frozen=True)
class TrainingOutcome:
    result: TrainingResult
    data: Path
    validation: float | Path


# What `optimize`'s fine-tuning learned from, besides the labels, when no train.teacher is given.
UNCOMPRESSED_TEACHER = "the uncompressed model"


@dataclass(frozen=True)
class CompressionOutcome:
    compression: Compression
    fine_tuning: TrainingResult | None  # None: compressed without fine-tuning
    teacher: str | None  # the fine-tuning's teacher: UNCOMPRESSED_TEACHER or train.teacher
    kernels: list[KernelReadBack] | None = None  # read back from the .tflite


@dataclass(frozen=True)
class AccuracyOutcome:
    heads: dict[str, HeadAccuracy]
    data: Path
    keras_bytes: int
    tflite_bytes: int
    post_training: dict[str, HeadAccuracy] | None = None  # a QAT build's PTQ model, compared


_COUNTED_DTYPES = ("uint8", "int8", "int16", "int32", "float32")

TFLM_ARENA_BASIS = (
    "measured: the smallest arena in which TFLite Micro allocated and ran the .tflite, on a "
    "64-bit host (an upper bound for a 32-bit Cortex-M)"
)


def _version(distribution: str) -> str | None:
    """The installed version of `distribution`, or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def quantization_info(
    *,
    config: Config,
    built: BuiltModel,
    content: bytes,
    tflite: TfliteModel,
    layers: dict[str, str],
    calibration: CalibrationSet,
    vela: list[VelaResult],
    verification: Verification,
    tflm_arena_bytes: int | None,
    placements: list[BoardPlacements],
    training: TrainingOutcome | None,
    accuracy: AccuracyOutcome | None,
    qat: QatResult | None = None,
    layer_errors: tuple[LayerError, ...] | None = None,
    compression: CompressionOutcome | None = None,
) -> dict:
    """The facts of one build, as docs/outputs.md documents its schema."""
    fidelity = verification.fidelity
    micro = micro_runtime()
    dtypes = tflite.dtype_counts()
    (model_input,) = tflite.inputs
    counts = {f"{dtype}_tensors": dtypes.get(dtype, 0) for dtype in _COUNTED_DTYPES}
    # Any other dtype gets its own key, so the counts always add up to total_tensors.
    counts |= {f"{d}_tensors": n for d, n in sorted(dtypes.items()) if d not in _COUNTED_DTYPES}
    low, high = (int(v) for v in (np.iinfo(model_input.dtype).min, np.iinfo(model_input.dtype).max))
    info = {
        "schema_version": BUILD_SCHEMA_VERSION,
        "name": config.name,
        "fully_quantized": dtypes.get("float32", 0) == 0
        and all(t.dtype in ("uint8", "int8", "int16") for t in (*tflite.inputs, *tflite.outputs)),
        "quantization": {
            "mode": config.quantization.mode,
            "keep_float": list(config.quantization.keep_float),
            "int16": list(config.quantization.int16),
            "per_channel": config.quantization.per_channel,
        },
        "total_tensors": len(tflite.tensors),
        **counts,
        "operators": tflite.operator_counts(),
        "model": {
            "source": display_path(config.model.path) if config.model.path else "generator",
            "backbone": config.model.backbone,
            "alpha": config.model.alpha,
            "output_stride": output_stride(config.model) if config.model.backbone else None,
            "depth": ending_block(config.model),
            "input_shape": list(model_input.shape[1:]),
            "parameters": built.model.count_params(),
            "tflite_bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "pretrained": _pretrained_info(built.pretrained, config.calibration),
        },
        "input": {
            "name": model_input.name,
            "shape": list(model_input.shape),
            "dtype": model_input.dtype,
            "scale": model_input.scale,
            "zero_point": model_input.zero_point,
            "float_range": [
                model_input.scale * (low - model_input.zero_point),
                model_input.scale * (high - model_input.zero_point),
            ],
        },
        "heads": [_head_info(head, tflite) for head in built.heads],
        "calibration": {
            "source": display_path(calibration.source),
            "images_found": calibration.images_found,
            "images_skipped": calibration.images_skipped,
            "samples": len(calibration.calibration),
            "held_out": len(calibration.held_out),
        },
        "vela": {result.target.key: _vela_info(result, layers) for result in vela},
        "boards": {board.own.fit.board.name: _board_info(board) for board in placements},
        "fidelity": {
            "runtime": micro,
            "images": len(calibration.held_out),
            "heads": {
                name: {
                    "agreement_top1": f.agreement_top1,
                    "sqnr_db": f.sqnr_db,
                    "max_abs_error": f.max_abs_error,
                    "saturated": f.saturated,
                }
                for name, f in fidelity.items()
            },
        },
        "runtimes": {
            "reference": micro,
            "images": len(calibration.held_out),
            "sqnr_margin_db": SQNR_MARGIN_DB,
            "gating": GATING_RUNTIME,
            "compared": {
                runtime: {name: _difference_info(d) for name, d in heads.items()}
                for runtime, heads in verification.runtimes.items()
            },
        },
        "clipping": {
            "runtime": "litert_builtin",
            "images": len(calibration.held_out),
            "tensors": [
                {"layer": c.layer, "tensor": c.tensor, "operator": c.operator, "clipped": c.clipped}
                for c in verification.clipping
            ],
        },
        "layer_errors": None
        if layer_errors is None
        else {
            "measured_by": "tensorflow_quantization_debugger",
            "images": len(calibration.held_out),
            "layers": [
                {
                    "layer": e.layer,
                    "operator": e.operator,
                    "tensor": e.tensor,
                    "rmse_steps": e.rmse_steps,
                    "clipped": e.clipped,
                }
                for e in layer_errors
            ],
        },
        "tflm": {
            "installed": tflm_installed(),
            "runtime": micro,
            "note": None if tflm_installed() else TFLM_MISSING,
            "arena_bytes": tflm_arena_bytes,
            "arena_basis": TFLM_ARENA_BASIS if tflm_installed() else ARENA_NOT_MEASURED,
            "targets": {
                result.target.key: {
                    "vela_sram_kib": result.sram_kib,
                    "scratch_bytes": result.scratch_bytes,
                    "margin_bytes": NPU_ARENA_MARGIN_BYTES,
                    "arena_bytes": arena_bytes(result),
                    "arena_in": result.layout.arena,
                    "basis": "the compiled model's scratch tensor plus the documented 2 KiB "
                    "TFLite Micro margin (not measured: the NPU model cannot run on this host)",
                }
                for result in vela
            },
        },
        "training": None if training is None else _training_info(training, config.train, qat),
        "optimize": None if compression is None else _optimize_info(compression, config),
        "accuracy": None if accuracy is None else accuracy_info(accuracy),
        "warnings": _warnings(
            config,
            calibration,
            vela,
            placements,
            verification,
            trained=training is not None,
            layer_errors=layer_errors or (),
        ),
        "versions": {
            "generator": __version__,
            "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
            "keras": _version("keras"),
            "vela": _version("ethos-u-vela"),
            "ai_edge_litert": _version("ai-edge-litert"),
            "tflite_micro": _version("tflite-micro"),
        },
    }
    return info


def _pretrained_info(
    pretrained: PretrainedWeights | None, calibration: CalibrationConfig
) -> dict | None:
    """Where the backbone's starting weights came from, as the build read them."""
    if pretrained is None:
        return None
    return {
        "source": pretrained.source if pretrained.url else display_path(Path(pretrained.source)),
        "file": pretrained.file if pretrained.url else display_path(Path(pretrained.file)),
        "url": pretrained.url,
        "trained_side": pretrained.trained_side,
        "layers_loaded": pretrained.layers,
        "derived": list(pretrained.derived),
        "input_range_from_pretrained": calibration.input_range_from_pretrained,
    }


def _training_info(training: TrainingOutcome, train: TrainConfig, qat: QatResult | None) -> dict:
    validation = training.validation
    return {
        "data": display_path(training.data),
        "validation": display_path(validation) if isinstance(validation, Path) else validation,
        "frozen_epochs": training.result.frozen_epochs,
        "backbone_learning_rate": train.backbone_learning_rate,
        "mixed_precision": train.mixed_precision,
        "teacher": None if train.teacher is None else display_path(train.teacher),
        "distillation_weight": None if train.teacher is None else train.distillation_weight,
        "temperature": None if train.teacher is None else train.temperature,
        **_run_info(training.result),
        "qat": None
        if qat is None
        else {
            "activations_checked": qat.activations_checked,
            **_run_info(qat.training),
        },
    }


def _optimize_info(outcome: CompressionOutcome, config: Config) -> dict:
    optimize = config.optimize
    run = outcome.fine_tuning
    compressed = {layer.layer: layer for layer in outcome.compression.layers}
    return {
        "clusters": [{"layers": pattern, "clusters": k} for pattern, k in optimize.clusters],
        "sparsity": optimize.sparsity,
        "sparsity_layers": list(optimize.sparsity_layers),
        "fine_tuning": None
        if run is None
        else {
            "learning_rate": optimize.learning_rate,
            "teacher": outcome.teacher,
            "distillation_weight": config.train.distillation_weight if outcome.teacher else None,
            "temperature": config.train.temperature if outcome.teacher else None,
            **_run_info(run),
        },
        "layers": [
            {
                "layer": kernel.layer,
                "operator": kernel.operator,
                "clusters": kernel.clusters,
                "sparsity": kernel.sparsity,
                "weights": compressed[kernel.layer].weights,
                "dtype": kernel.dtype,
                "channels": kernel.channels,
                "values_per_channel": kernel.values_per_channel,
                "zeros": kernel.zeros,
            }
            for kernel in outcome.kernels or []
        ],
    }


def _run_info(result: TrainingResult) -> dict:
    """One training run: its figures and its epochs."""
    return {
        "train_images": result.train_images,
        "validation_images": result.validation_images,
        "epochs_run": len(result.epochs),
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
        "images_per_second": result.images_per_second,
        "history": [
            {
                "epoch": r.epoch,
                "loss": r.loss,
                "val_loss": r.val_loss,
                "accuracy": r.accuracy,
                "val_accuracy": r.val_accuracy,
            }
            for r in result.epochs
        ],
    }


def accuracy_info(accuracy: AccuracyOutcome) -> dict:
    return {
        "data": display_path(accuracy.data),
        "quantized_runtime": micro_runtime(),
        "quantization": "post_training" if accuracy.post_training is None else "qat",
        "keras_bytes": accuracy.keras_bytes,
        "tflite_bytes": accuracy.tflite_bytes,
        "heads": {
            name: {
                "images": a.images,
                "float_top1": a.float_top1,
                "quantized_top1": a.quantized_top1,
                "drop_points": a.drop_points,
                "agreement_top1": a.agreement_top1,
                **(
                    {}
                    if accuracy.post_training is None
                    else {"post_training_top1": accuracy.post_training[name].quantized_top1}
                ),
                "labels": list(a.classes),
                "confusion_matrix": a.confusion,
                "runtimes": {
                    runtime: {"top1": r.top1, **_difference_info(r.difference)}
                    for runtime, r in a.runtimes.items()
                },
            }
            for name, a in accuracy.heads.items()
        },
    }


def _difference_info(difference: RuntimeDifference) -> dict:
    return {
        "max_step_difference": difference.max_step_difference,
        "agreement_top1": difference.agreement_top1,
        "sqnr_db": difference.sqnr_db,
    }


def _head_info(head, tflite: TfliteModel) -> dict:
    position = tflite.output_position(head.name)
    output = tflite.outputs[position]
    return {
        "name": head.name,
        "num_classes": output.shape[-1],
        "labels": list(head.labels) if head.labels else None,
        "output_index": position,
        "shape": list(output.shape),
        "dtype": output.dtype,
        "scale": output.scale,
        "zero_point": output.zero_point,
    }


def _vela_info(result: VelaResult, layers: dict[str, str]) -> dict:
    sram, other = memory_needed(result)
    return {
        "accelerator": result.target.accelerator,
        "board": result.target.board.name if result.target.board else None,
        "system_config": result.system_config,
        "memory_mode": result.memory_mode,
        "core_clock_mhz": result.core_clock_mhz,
        "npu_operators": result.npu_operators,
        "cpu_operators": result.cpu_operators,
        "cpu_operator_names": list(result.cpu_operator_names),
        "sram_kib": result.sram_kib,
        "flash_kib": result.flash_kib,
        "dram_kib": result.dram_kib,
        "weights_in": result.layout.weights,
        "arena_in": result.layout.arena,
        "sram_needed_bytes": sram,
        "off_chip_needed_bytes": other,
        "inference_time_ms": result.inference_time_ms,
        "inferences_per_second": result.inferences_per_second,
        "macs": result.macs,
        "cycles": result.cycles,
        "original_weight_bytes": result.original_weight_bytes,
        "encoded_weight_bytes": result.encoded_weight_bytes,
        "vela_tflite_bytes": result.vela_tflite_bytes,
        "compiled_operators": result.compiled_operators,
        "layers": _layers_info(result, layers),
    }


def _keras_layer(name: str, layers: dict[str, str]) -> str:
    """The Keras layer of a Vela row: its tensor's, or for a tensor Vela made while rewriting
    (`<tensor>_intermediate`, ...) the one of the longest tensor name it starts with."""
    if name in layers:
        return layers[name]
    prefixes = [known for known in layers if name.startswith(known)]
    return layers[max(prefixes, key=len)] if prefixes else name


def _board_info(board: BoardPlacements) -> dict:
    """The board's own placement (the model in `vela/<board>/`) at the top level, as before
    placements existed; then every placement and the recommended one."""
    fit = board.own.fit
    recommended = board.recommended
    return {
        "title": fit.board.title,
        "accelerator": fit.board.accelerator,
        "memory_mode": fit.memory_mode,
        **_fit_info(fit),
        "source": fit.board.source,
        "placements": [_placement_info(p, board.own) for p in board.placements],
        "recommended": None if recommended is None else recommended.memory_mode,
        "recommendation": recommendation(board),
    }


def _fit_info(fit: Fit) -> dict:
    return {
        "sram_budget_bytes": fit.sram_budget,
        "sram_needed_bytes": fit.sram_needed,
        "flash_budget_bytes": fit.flash_budget,
        "flash_needed_bytes": fit.flash_needed,
        "fits": fit.fits,
        "limiting": fit.limiting,
        "verdict": fit.verdict(),
    }


def _placement_info(placement: Placement, own: Placement) -> dict:
    result = placement.result
    build_folder = own.result.tflite_path.parents[2]  # <build>/vela/<board>/
    return {
        "memory_mode": placement.memory_mode,
        "description": describe(result),
        "weights_in": result.layout.weights,
        "arena_in": result.layout.arena,
        "folder": result.tflite_path.parent.relative_to(build_folder).as_posix(),
        "inference_time_ms": result.inference_time_ms,
        "cycles": result.cycles,
        "cpu_operators": result.cpu_operators,
        "model_bytes": result.vela_tflite_bytes,
        "encoded_weight_bytes": result.encoded_weight_bytes,
        "arena_bytes": arena_bytes(result),
        "fast_memory_bytes": result.fast_scratch_bytes,
        **_fit_info(placement.fit),
    }


def recommendation(board: BoardPlacements) -> str:
    """One sentence: which placement to flash and what it costs against the board's own."""
    own, best = board.own, board.recommended
    if best is None:
        return f"no placement fits: {own.fit.verdict()}"
    if best is own:
        others = [p for p in board.placements if p is not own and not p.fit.fits]
        return (
            f"{own.memory_mode} ({describe(own.result)}), {own.result.inference_time_ms:.3f} ms: "
            "the fastest placement that fits"
            + "".join(f"; {p.memory_mode} does not fit ({p.fit.verdict()})" for p in others)
        )
    extra = best.fit.sram_needed - own.fit.sram_needed
    cost = f"{format_bytes(abs(extra))} {'more' if extra > 0 else 'less'} SRAM"
    return (
        f"{best.memory_mode} ({describe(best.result)}): {best.result.inference_time_ms:.3f} ms "
        f"instead of {own.result.inference_time_ms:.3f} ms with {own.memory_mode}, for {cost} "
        f"({format_bytes(best.fit.sram_needed)} of {format_bytes(best.fit.sram_budget)}); files "
        f"in {_placement_info(best, own)['folder']}/"
    )


def _layers_info(result: VelaResult, layers: dict[str, str]) -> list[dict]:
    """Vela's per-layer rows; `share` is of the summed per-layer cycles. `layer` is the Keras
    layer a user recognises, `name` Vela's (the fused tensor name)."""
    total = sum(layer.cycles for layer in result.layers) or 1
    return [
        {
            "operator": layer.operator,
            "target": layer.target,
            "cycles": layer.cycles,
            "share": layer.cycles / total,
            "macs": layer.macs,
            "layer": _keras_layer(layer.name, layers),
            "name": layer.name,
        }
        for layer in result.layers
    ]


def _warnings(
    config: Config,
    calibration: CalibrationSet,
    vela: list[VelaResult],
    placements: list[BoardPlacements],
    verification: Verification,
    trained: bool,
    layer_errors: tuple[LayerError, ...],
) -> list[str]:
    fidelity = verification.fidelity
    warnings = [] if tflm_installed() else [f"{TFLM_MISSING}."]
    worst = [e for e in layer_errors if e.rmse_steps > LAYER_ERROR_WARNING_STEPS]
    if worst:
        names = list(dict.fromkeys(e.layer for e in worst))
        warnings.append(
            f"Layer {worst[0].layer}'s own quantization error is {worst[0].rmse_steps:.1f} steps "
            f"RMS (rounding alone gives 0.29): keeping it float may help "
            f"(quantization.keep_float: [{', '.join(names[:3])}]); see the per-layer error table."
        )
    constant = [name for name, f in fidelity.items() if f.constant_output]
    if constant:
        images = next(iter(fidelity.values())).images
        warnings.append(
            f"The outputs of head(s) {', '.join(constant)} are constant over the {images} "
            "held-out images: the weights look untrained, so the agreement and SQNR figures "
            "mean nothing. Size, memory and latency figures still hold."
        )
    saturated = {
        name: f.saturated for name, f in fidelity.items() if f.saturated > SATURATION_WARNING
    }
    if saturated:
        warnings.append(
            "Logits sit at the integer limit on "
            + ", ".join(
                f"{share:.1%} of images for head {name}" for name, share in saturated.items()
            )
            + ": calibration did not cover those heads' range, so their largest logits are "
            "clipped. Calibrate on images like the ones the model will see."
        )
    if config.model.path is None and config.model.weights is None and not trained:
        warnings.append(
            "The heads are random (the backbone is pretrained, but train: is not set): use this "
            "build for sizing and latency only."
            if config.model.pretrained is not None
            else "The weights are random (model.weights is not set): use this build for sizing "
            "and latency only."
        )
    scaling = config.calibration.input_range
    if imagenet_scaled(config.model) and scaling != IMAGENET_INPUT_RANGE:
        warnings.append(
            f"The pretrained weights were trained on pixels scaled to [-1, 1], and "
            f"calibration.input_range maps them to [{scaling[0]:g}, {scaling[1]:g}]: remove "
            "calibration.input_range to follow the weights' scaling."
        )
    wanted = config.calibration.samples + config.calibration.holdout
    used = len(calibration.calibration) + len(calibration.held_out)
    if used < wanted:
        warnings.append(
            f"Only {used} usable images (asked for {config.calibration.samples} to calibrate "
            f"and {config.calibration.holdout} to verify): calibrated on "
            f"{len(calibration.calibration)}, verified on {len(calibration.held_out)}."
        )
    if calibration.images_skipped:
        warnings.append(
            f"{calibration.images_skipped} unreadable image file(s) in "
            f"{display_path(calibration.source)} were skipped."
        )
    for result in vela:
        if result.cpu_operators:
            warnings.append(
                f"{result.cpu_operators} operator(s) run on the CPU for {result.target.key} "
                f"({', '.join(result.cpu_operator_names)}): Vela's latency estimate leaves "
                "their time out."
            )
    for board in placements:
        fit = board.own.fit
        if board.recommended is None:
            warnings.append(f"Does not fit {fit.board.name}: {fit.verdict()}.")
        elif not fit.fits:
            warnings.append(
                f"The {fit.memory_mode} model in vela/{fit.board.name}/ does not fit "
                f"{fit.board.name} ({fit.verdict()}); {recommendation(board)}"
            )
    return warnings
