"""Report stage: `<name>_quantization_info.json` (schema in the README) and `<name>_report.md`.

Every figure is read back from an artifact: the .tflite (tensors, quantization, operators,
size), Vela's CSV files, or a real interpreter run. The Markdown report is rendered from the
same dictionary as the JSON, so the two cannot disagree.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator import __version__
from generator.boards import Fit, format_bytes
from generator.calibrate import CalibrationSet
from generator.config import Config, display_path, output_stride
from generator.evaluate import HeadAccuracy
from generator.placement import (
    BoardPlacements,
    Placement,
    arena_bytes,
    describe,
    memory_needed,
)
from generator.tflite_file import TfliteModel
from generator.tflm import NPU_ARENA_MARGIN_BYTES
from generator.vela import VelaResult
from generator.verify import (
    GATING_RUNTIME,
    REFERENCE,
    SATURATION_WARNING,
    SQNR_MARGIN_DB,
    RuntimeDifference,
    Verification,
)

if TYPE_CHECKING:  # annotations only: importing these would import TensorFlow, which the
    # report's renderers (the `report` command, a sweep's driver) do not need
    from generator.build import BuiltModel
    from generator.layer_error import LayerError
    from generator.qat import QatResult
    from generator.train import TrainingResult


@dataclass(frozen=True)
class TrainingOutcome:
    result: TrainingResult
    data: Path
    validation: float | Path


@dataclass(frozen=True)
class AccuracyOutcome:
    heads: dict[str, HeadAccuracy]
    data: Path
    keras_bytes: int
    tflite_bytes: int
    post_training: dict[str, HeadAccuracy] | None = None  # a QAT build's PTQ model, compared


SCHEMA_VERSION = 2

# How each runtime is described wherever a figure names it.
RUNTIME_TITLES = {
    REFERENCE: "TFLite Micro (what a Cortex-M runs)",
    "litert_builtin": "LiteRT built-in kernels",
    "litert_default": "LiteRT default interpreter (XNNPACK)",
}

# Intermediate tensors listed in the Markdown report, most clipped first.
CLIPPING_LISTED = 5
# Layers listed in the Markdown report, largest own quantization error first.
LAYER_ERRORS_LISTED = 5
# A layer whose own error is this many steps RMS (rounding alone gives 1/sqrt(12) = 0.29) is
# warned about: something beyond rounding (weights int8 cannot hold, clipping) dominates it.
LAYER_ERROR_WARNING_STEPS = 2.0
LAYER_ERRORS_WITH_INT16 = (
    "Not measured for this build: TensorFlow's quantization debugger builds its own int8 model "
    "and cannot give layers 16-bit activations, so its figures would describe another model. "
    "Build without `quantization.int16` to see the int8 per-layer error."
)


def quantized_format(quantization: dict) -> str:
    """What the integer .tflite holds, for table rows: int8, int16x8, or int8 with int16
    layers (the report's `quantization` section)."""
    if quantization["mode"] == "int16x8":
        return "int16x8"
    return "int8 + int16 layers" if quantization.get("int16") else "int8"


_COUNTED_DTYPES = ("uint8", "int8", "int16", "int32", "float32")


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
    tflm_arena_bytes: int,
    placements: list[BoardPlacements],
    training: TrainingOutcome | None,
    accuracy: AccuracyOutcome | None,
    qat: QatResult | None = None,
    layer_errors: tuple[LayerError, ...] | None = None,
) -> dict:
    """The facts of one build, as the JSON schema documented in the README lays them out."""
    fidelity = verification.fidelity
    dtypes = tflite.dtype_counts()
    (model_input,) = tflite.inputs
    counts = {f"{dtype}_tensors": dtypes.get(dtype, 0) for dtype in _COUNTED_DTYPES}
    # Any other dtype gets its own key, so the counts always add up to total_tensors.
    counts |= {f"{d}_tensors": n for d, n in sorted(dtypes.items()) if d not in _COUNTED_DTYPES}
    low, high = (int(v) for v in (np.iinfo(model_input.dtype).min, np.iinfo(model_input.dtype).max))
    info = {
        "schema_version": SCHEMA_VERSION,
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
            "input_shape": list(model_input.shape[1:]),
            "parameters": built.model.count_params(),
            "tflite_bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
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
            "runtime": REFERENCE,
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
            "reference": REFERENCE,
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
            "arena_bytes": tflm_arena_bytes,
            "arena_basis": "measured: the smallest arena in which TFLite Micro allocated and ran "
            "the .tflite, on a 64-bit host (an upper bound for a 32-bit Cortex-M)",
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
        "training": None if training is None else _training_info(training, qat),
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
            "tensorflow": importlib.metadata.version("tensorflow-cpu"),
            "keras": importlib.metadata.version("keras"),
            "vela": importlib.metadata.version("ethos-u-vela"),
            "ai_edge_litert": importlib.metadata.version("ai-edge-litert"),
        },
    }
    return info


def _training_info(training: TrainingOutcome, qat: QatResult | None) -> dict:
    validation = training.validation
    return {
        "data": display_path(training.data),
        "validation": display_path(validation) if isinstance(validation, Path) else validation,
        **_run_info(training.result),
        "qat": None
        if qat is None
        else {
            "activations_checked": qat.activations_checked,
            **_run_info(qat.training),
        },
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
        "quantized_runtime": REFERENCE,
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
    warnings = []
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
            "The weights are random (model.weights is not set): use this build for sizing "
            "and latency only."
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


def render_markdown(info: dict) -> str:
    """The report for a person, from the same dictionary as the JSON."""
    model, model_input = info["model"], info["input"]
    lines = [
        f"# {info['name']}: quantization and Ethos-U report",
        "",
        f"Generated by generator {info['versions']['generator']} with TensorFlow "
        f"{info['versions']['tensorflow']} and Vela {info['versions']['vela']}.",
        "",
    ]
    if info["warnings"]:
        lines += ["## Warnings", "", *[f"- {w}" for w in info["warnings"]], ""]
    lines += [
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| model | {model['backbone']} (alpha {model['alpha']}{_stride(model)}) |"
        if model["backbone"]
        else f"| model | from `{model['source']}` |",
        f"| input | {' × '.join(map(str, model['input_shape']))} |",
        f"| parameters | {model['parameters']:,} |",
        f"| .tflite size | {model['tflite_bytes']:,} bytes |",
        f"| sha256 | `{model['sha256']}` |",
        f"| fully integer | {'yes' if info['fully_quantized'] else 'NO'} |",
        f"| tensors | {info['total_tensors']} ("
        + ", ".join(
            f"{key.removesuffix('_tensors')}: {value}"
            for key, value in info.items()
            if key.endswith("_tensors") and key != "total_tensors" and value
        )
        + ") |",
        f"| operators | {', '.join(f'{k} ×{v}' for k, v in info['operators'].items())} |",
        "",
        "## Input",
        "",
        f"`{model_input['name']}`, shape {model_input['shape']}, {model_input['dtype']}, "
        f"scale {model_input['scale']:.9g}, zero point {model_input['zero_point']}: "
        f"integer values map onto floats {_range(model_input['float_range'])}. "
        + (
            "Feed raw pixel values (0..255)."
            if model_input["dtype"] == "uint8"
            else "Feed pixel values minus 128."
        ),
        "",
        "## Heads",
        "",
        "Outputs carry logits; apply softmax on the host if you need probabilities. "
        "Dequantize with `(q - zero_point) * scale`.",
        "",
        "| head | output index | classes | labels | dtype | scale | zero point |",
        "|---|---|---|---|---|---|---|",
    ]
    for head in info["heads"]:
        labels = ", ".join(head["labels"]) if head["labels"] else "-"
        lines.append(
            f"| {head['name']} | {head['output_index']} | {head['num_classes']} | {labels} | "
            f"{head['dtype']} | {head['scale']:.6g} | {head['zero_point']} |"
        )
    lines += [
        "",
        "## Ethos-U (Vela estimates)",
        "",
        "| target | accelerator | system config | memory mode | NPU ops | CPU ops | SRAM KiB | "
        "flash KiB | DRAM KiB | latency ms | inferences/s | MACs | cycles | compiled bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, v in info["vela"].items():
        lines.append(
            f"| {key} | {v['accelerator']} | {v['system_config']} ({v['core_clock_mhz']:g} MHz) | "
            f"{v['memory_mode']} | {v['npu_operators']} | {v['cpu_operators']} | "
            f"{v['sram_kib']:.2f} | {v['flash_kib']:.2f} | {v['dram_kib']:.2f} | "
            f"{v['inference_time_ms']:.3f} | {v['inferences_per_second']:.1f} | "
            f"{v['macs']:,} | {v['cycles']:,} | {v['vela_tflite_bytes']:,} |"
        )
    lines += [
        "",
        "SRAM, flash and DRAM are Vela's figures (it counts SRAM-resident weights as flash); "
        "what each placement needs on a board, weights included, is in the Board fit section, "
        "and the arena a firmware must reserve in the Tensor arena section.",
    ]
    if info["boards"]:
        lines += _board_lines(info["boards"])
    for key, v in info["vela"].items():
        lines += _layer_lines(key, v["layers"])
    fidelity = info["fidelity"]
    lines += [
        "",
        f"## Fidelity: float Keras vs quantized .tflite in {RUNTIME_TITLES[fidelity['runtime']]}",
        "",
        f"On {fidelity['images']} held-out images from "
        f"`{info['calibration']['source']}` (calibrated on {info['calibration']['samples']} "
        f"others; {info['calibration']['images_found']} image files found, "
        f"{info['calibration']['images_skipped']} unreadable skipped). Saturated: the share of "
        "images on which a logit sits at the integer limit (warned above "
        f"{SATURATION_WARNING:.0%}).",
        "",
        "| head | top-1 agreement | SQNR | max abs error | saturated |",
        "|---|---|---|---|---|",
    ]
    for name, f in fidelity["heads"].items():
        lines.append(
            f"| {name} | {f['agreement_top1']:.1%} | {_sqnr(f['sqnr_db'])} | "
            f"{f['max_abs_error']:.4g} | "
            f"{f['saturated']:.1%} |"
        )
    lines += _runtime_lines(info["runtimes"])
    lines += _layer_error_lines(info.get("layer_errors"), info["quantization"])
    lines += _clipping_lines(info["clipping"])
    lines += _tflm_lines(info["tflm"])
    if info.get("training"):
        lines += _training_lines(info["training"])
        if info["training"].get("qat"):
            lines += _qat_lines(info["training"]["qat"])
    if info.get("accuracy"):
        lines += _accuracy_lines(info["accuracy"], info["quantization"])
    return "\n".join(lines) + "\n"


def _runtime_lines(runtimes: dict) -> list[str]:
    compared = runtimes["compared"]
    heads = list(next(iter(compared.values())))
    lines = [
        "",
        "## How the host runtimes differ from TFLite Micro",
        "",
        f"The same .tflite on the same {runtimes['images']} images. Per head: the largest "
        "difference from TFLite Micro's integer outputs in quantization steps, top-1 agreement "
        "with TFLite Micro, and SQNR against the float model. Kernels round differently, and "
        "a network can amplify a one-step difference into many, so these are information. The "
        f"build fails only when {RUNTIME_TITLES[runtimes['gating']]} pick other classes than "
        "TFLite Micro while TFLite Micro's SQNR is more than "
        f"{runtimes['sqnr_margin_db']:g} dB lower than theirs.",
        "",
        "| runtime | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for runtime, by_head in compared.items():
        lines.append(
            f"| {RUNTIME_TITLES[runtime]} | "
            + " | ".join(
                f"{by_head[h]['max_step_difference']} steps, {by_head[h]['agreement_top1']:.1%}, "
                + _sqnr(by_head[h]["sqnr_db"])
                for h in heads
            )
            + " |"
        )
    return lines


def _layer_error_lines(errors: dict | None, quantization: dict) -> list[str]:
    if errors is None:
        if not quantization.get("int16"):
            return []
        return ["", "## Per-layer quantization error", "", LAYER_ERRORS_WITH_INT16]
    lines = [
        "",
        "## Per-layer quantization error",
        "",
        f"Each integer operator's own error over {errors['images']} held-out images, measured "
        "by TensorFlow's quantization debugger: the float operator run on the same inputs "
        "against the integer one, as RMS in output quantization steps (rounding alone gives "
        "0.29), and the share of float values beyond the integer range. A layer far above the "
        "rest is the one to name in `quantization.keep_float`. Worst layers (the JSON has all "
        f"{len(errors['layers'])}):",
        "",
        "| layer | operator | RMS error (steps) | clipped |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {e['layer']} | {e['operator']} | {e['rmse_steps']:.2f} | {e['clipped']:.2%} |"
        for e in errors["layers"][:LAYER_ERRORS_LISTED]
    ]
    return lines


def _clipping_lines(clipping: dict) -> list[str]:
    tensors = [t for t in clipping["tensors"] if t["clipped"] > 0][:CLIPPING_LISTED]
    lines = [
        "",
        "## Clipping of intermediate activations",
        "",
        f"The share of values at the integer limits over {clipping['images']} held-out images "
        f"({RUNTIME_TITLES[clipping['runtime']]}: TFLite Micro keeps no intermediate tensors), "
        "leaving out an activation's own bounds (0 after ReLU, 6 after ReLU6). "
        + ("Most clipped:" if tensors else "No layer clips."),
    ]
    if tensors:
        lines += ["", "| layer | operator | clipped |", "|---|---|---|"]
        lines += [f"| {t['layer']} | {t['operator']} | {t['clipped']:.2%} |" for t in tensors]
    return lines


def _tflm_lines(tflm: dict) -> list[str]:
    lines = [
        "",
        "## Tensor arena",
        "",
        "| model | tensor arena to reserve | basis |",
        "|---|---|---|",
        f"| .tflite on a Cortex-M without NPU | {tflm['arena_bytes']:,} bytes | "
        f"{tflm['arena_basis']} |",
    ]
    for key, target in tflm["targets"].items():
        lines.append(
            f"| Vela model for {key} | {target['arena_bytes']:,} bytes | {target['basis']} |"
        )
    return lines


def _board_lines(boards: dict) -> list[str]:
    lines = [
        "",
        "## Board fit",
        "",
        "SRAM: the tensor arena to reserve (Tensor arena section). Flash: the compiled "
        "model array. Budgets are the regions the vendor's reference firmware uses for them.",
        "",
        "| board | verdict | SRAM needed / budget | flash needed / budget |",
        "|---|---|---|---|",
    ]
    for name, b in boards.items():
        lines.append(
            f"| {name} | {b['verdict']} | "
            f"{b['sram_needed_bytes']:,} / {b['sram_budget_bytes']:,} B | "
            f"{b['flash_needed_bytes']:,} / {b['flash_budget_bytes']:,} B |"
        )
    lines.append("")
    lines += [f"- {name}: {b['title']}. Source: {b['source']}." for name, b in boards.items()]
    lines += [
        "",
        "### Placements: where the weights live",
        "",
        "Each board compiled once per memory mode it allows (Vela estimates). SRAM holds the "
        "tensor arena, plus the model array when the weights are in SRAM and the NPU's cache "
        "with Dedicated_Sram; flash (or DRAM) holds the model array, always, since SRAM is "
        "loaded from it at boot.",
        "",
        "| board | memory mode | placement | latency ms | SRAM needed / budget | "
        "flash needed / budget | verdict | files |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, b in boards.items():
        for p in b["placements"]:
            mark = " (recommended)" if p["memory_mode"] == b["recommended"] else ""
            lines.append(
                f"| {name} | {p['memory_mode']}{mark} | {p['description']} | "
                f"{p['inference_time_ms']:.3f} | {p['sram_needed_bytes']:,} / "
                f"{p['sram_budget_bytes']:,} B | {p['flash_needed_bytes']:,} / "
                f"{p['flash_budget_bytes']:,} B | {p['verdict']} | `{p['folder']}/` |"
            )
    lines.append("")
    lines += [f"- {name}: {b['recommendation']}." for name, b in boards.items()]
    return lines


def folded_layers(layers: list[dict]) -> list[dict]:
    """Vela's per-layer rows by Keras layer. Vela lists a fused activation as a row of its own
    with 0 cycles under the same name: consecutive rows of one name are folded into one."""
    folded: list[dict] = []
    for layer in layers:
        if folded and folded[-1]["name"] == layer["name"]:
            for key in ("cycles", "share", "macs"):
                folded[-1][key] += layer[key]
        else:
            folded.append(dict(layer))
    return folded


def _layer_lines(target: str, layers: list[dict]) -> list[str]:
    """Vela's per-layer estimate by Keras layer."""
    folded = folded_layers(layers)
    top = sorted(folded, key=lambda layer: layer["cycles"], reverse=True)[:3]
    lines = [
        "",
        f"### Per layer, {target}",
        "",
        "Most cycles: "
        + "; ".join(f"{layer['layer']} ({layer['share']:.1%})" for layer in top)
        + ". Vela's full operator names are in the JSON.",
        "",
        "| # | layer | operator | target | cycles | share | MACs |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, layer in enumerate(folded, start=1):
        lines.append(
            f"| {index} | {layer['layer']} | {layer['operator']} | {layer['target']} | "
            f"{layer['cycles']:,} | {layer['share']:.1%} | {layer['macs']:,} |"
        )
    return lines


def _training_lines(training: dict) -> list[str]:
    heads = list(training["history"][0]["accuracy"])
    best = training["history"][training["best_epoch"] - 1]
    lines = [
        "",
        "## Training",
        "",
        f"On {training['train_images']} images from `{training['data']}`, validated on "
        f"{training['validation_images']} "
        + (
            f"held out of them ({training['validation']:.0%})."
            if isinstance(training["validation"], float)
            else f"from `{training['validation']}`."
        )
        + f" {training['epochs_run']} epochs run; the model of epoch {training['best_epoch']} "
        f"(lowest validation loss, {best['val_loss']:.4f}) is kept. " + _speed(training),
        "",
        "| epoch | loss | val loss | " + " | ".join(f"{h} val acc" for h in heads) + " |",
        "|---|---|---|" + "---|" * len(heads),
    ]
    for r in training["history"]:
        mark = " (kept)" if r["epoch"] == training["best_epoch"] else ""
        lines.append(
            f"| {r['epoch']}{mark} | {r['loss']:.4f} | {r['val_loss']:.4f} | "
            + " | ".join(f"{r['val_accuracy'][h]:.1%}" for h in heads)
            + " |"
        )
    return lines


def _speed(run: dict) -> str:
    """Builds before the training speed was recorded have no such figures."""
    if "images_per_second" not in run:
        return ""
    return (
        f"Training took {run['seconds']:.1f} s: {run['images_per_second']:,.0f} images/s "
        "(augmented training images, validation included in the time)."
    )


def _qat_lines(qat: dict) -> list[str]:
    last = qat["history"][-1]
    return [
        "",
        "### Quantization-aware training",
        "",
        f"The trained float model was fine-tuned with simulated int8 quantization for "
        f"{qat['epochs_run']} epochs (batch normalization frozen); the model of epoch "
        f"{qat['best_epoch']} (lowest validation loss) is kept and converted. Every one of its "
        f"{qat['activations_checked']} int8 activations was read back from the .tflite and "
        "carries a range learned in QAT. Last epoch: loss "
        f"{last['loss']:.4f}, val loss {last['val_loss']:.4f}. " + _speed(qat),
    ]


def _accuracy_lines(accuracy: dict, quantization: dict) -> list[str]:
    heads = accuracy["heads"]
    names = list(heads)
    qat = ", quantization-aware trained" if accuracy.get("quantization") == "qat" else ""
    lines = [
        "",
        "## Accuracy: float vs quantized",
        "",
        f"Top-1 accuracy on the labelled set `{accuracy['data']}` "
        + ", ".join(f"({n}: {h['images']} images)" for n, h in heads.items())
        + f". The quantized figures are the integer .tflite in "
        f"{RUNTIME_TITLES[accuracy['quantized_runtime']]}; Vela's compiled model runs the same "
        "integer operators on the NPU. The host runtimes' figures on the same file follow.",
        "",
        "| format | size | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
        f"| float32 Keras (.keras) | {accuracy['keras_bytes']:,} bytes | "
        + " | ".join(f"{heads[n]['float_top1']:.2%}" for n in names)
        + " |",
        f"| {quantized_format(quantization)} TFLite (.tflite{qat}), TFLite Micro | "
        f"{accuracy['tflite_bytes']:,} bytes | "
        + " | ".join(f"{heads[n]['quantized_top1']:.2%}" for n in names)
        + " |",
        *(
            [
                "| int8 post-training quantized instead, TFLite Micro | | "
                + " | ".join(f"{heads[n]['post_training_top1']:.2%}" for n in names)
                + " |"
            ]
            if qat
            else []
        ),
        "| drop (points) | | "
        + " | ".join(f"{heads[n]['drop_points']:+.2f}" for n in names)
        + " |",
        "| float/quantized top-1 agreement | | "
        + " | ".join(f"{heads[n]['agreement_top1']:.2%}" for n in names)
        + " |",
    ]
    for runtime in heads[names[0]]["runtimes"]:
        lines.append(
            f"| same .tflite, {RUNTIME_TITLES[runtime]} | | "
            + " | ".join(
                f"{heads[n]['runtimes'][runtime]['top1']:.2%} "
                f"({heads[n]['runtimes'][runtime]['agreement_top1']:.2%} agree with TFLite Micro)"
                for n in names
            )
            + " |"
        )
    for name, head in heads.items():
        labels = head["labels"]
        lines += [
            "",
            f"Confusion matrix of the quantized model in TFLite Micro, head `{name}` (rows: true, "
            "columns: "
            "predicted):",
            "",
            "| | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for label, row in zip(labels, head["confusion_matrix"], strict=True):
            lines.append(f"| **{label}** | " + " | ".join(str(v) for v in row) + " |")
    return lines


def _stride(model: dict) -> str:
    """Builds before output_stride existed used the keras.applications stride, 32."""
    return f", output stride {model.get('output_stride', 32)}"


def _sqnr(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f} dB"


def _range(values: list[float]) -> str:
    return f"[{values[0]:.6g}, {values[1]:.6g}]"
