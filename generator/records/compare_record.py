"""The comparison's record, `<name>_compare.json` (schema in docs/outputs.md), from which its
Markdown and HTML are rendered (`generator.rendering.pages`). What the pages show beyond the
record (a mode's size and host latency relative to float32, its scores, its memory on each
board) is worked out once, by `mode_figures`, which both pages call.

The recommendation is worked out here, once, from the figures in the record, and stored in it:
per Ethos-U target, the mode whose compiled model needs the least memory on the board (Vela's
SRAM plus flash or DRAM; ties go to the faster) among those that run entirely on the NPU and
stay within `ACCURACY_MARGIN_POINTS` of the float model on every head (accuracy on
the labelled images, else top-1 agreement with float32); for a host CPU, among the modes within
the same margin, the smallest .tflite of those whose LiteRT latency is within
`HOST_LATENCY_TIE` of the fastest (timing noise must not decide between equal models).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from generator import __version__
from generator.config.schema import Config, describe_optimize, ending_block, output_stride
from generator.records.files import COMPARE_SCHEMA_VERSION

if TYPE_CHECKING:  # an annotation: importing it would import TensorFlow
    from generator.model.build import BuiltModel

ACCURACY_MARGIN_POINTS = 0.5
# Host latencies within this share of the fastest are a tie (a median of timed runs moves by a
# few percent between runs): the smallest .tflite among them is recommended.
HOST_LATENCY_TIE = 0.10


def compare_info(
    *,
    config: Config,
    built: BuiltModel,
    results: list,
    folder: Path,
    reference: dict,
    images: dict,
    micro: dict,
) -> dict:
    """The record of a comparison; `reference` holds the float32 model's own figures, `images`
    where the scores come from, `micro` the runtime that stood for a Cortex-M (`runtime`) and
    why it is not TensorFlow Lite Micro (`note`, None when it is)."""
    model = config.model
    modes = [_mode_info(result, folder) for result in results]
    info = {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "name": config.name,
        "generator_version": __version__,
        "model": {
            "source": "model file" if model.path else model.backbone,
            "alpha": model.alpha,
            "input_shape": list(built.input_shape),
            "output_stride": None if model.path else output_stride(model),
            "depth": ending_block(model),
            "heads": [head.name for head in built.heads],
        },
        # what the `optimized` row was made with, in words (null: no optimize: section)
        "optimize": None if config.optimize is None else describe_optimize(config.optimize),
        "images": images,
        "reference": reference,
        "host_runtime": "litert_default",
        "micro": micro,
        "targets": [
            {
                "key": target.key,
                "accelerator": target.accelerator,
                "system_config": target.system_config,
                "memory_mode": target.memory_mode,
            }
            for target in config.vela.targets
        ],
        "modes": modes,
    }
    info["recommendations"] = recommend(info)
    return info


def _mode_info(result, folder: Path) -> dict:
    row = dataclasses.asdict(dataclasses.replace(result, vela=None))
    if result.tflite is not None:
        row["tflite"] = result.tflite.relative_to(folder).as_posix()
    if result.vela is not None:
        row["vela"] = {key: _target_info(vela) for key, vela in result.vela.items()}
    return row


def _target_info(vela) -> dict:
    """One target's figures, read from Vela's files (`vela.VelaResult`), or Vela's error."""
    if isinstance(vela, str):
        return {"error": vela}
    return {
        "npu_operators": vela.npu_operators,
        "cpu_operators": vela.cpu_operators,
        "cpu_operator_names": list(vela.cpu_operator_names),
        "sram_kib": vela.sram_kib,
        "flash_kib": vela.flash_kib,
        "dram_kib": vela.dram_kib,
        "inference_time_ms": vela.inference_time_ms,
        "encoded_weight_bytes": vela.encoded_weight_bytes,
    }


def _quality(row: dict, reference: dict) -> dict[str, float] | None:
    """Per head, points lost against float: accuracy if labelled, else agreement."""
    if row["error"]:
        return None
    if row["accuracy"] is not None:
        return {h: 100 * (reference["accuracy"][h] - v) for h, v in row["accuracy"].items()}
    return {h: 100 * (1 - v) for h, v in row["agreement"].items()}


def recommend(info: dict) -> dict[str, dict]:
    """Per target key (and `host`): the recommended `mode` (or None) and the `reason`."""
    reference = info["reference"]
    within = {}
    for row in info["modes"]:
        lost = _quality(row, reference)
        if lost is not None and max(lost.values()) <= ACCURACY_MARGIN_POINTS:
            within[row["mode"]] = row
    measure = "accuracy" if reference.get("accuracy") else "top-1 agreement with float32"
    found = {}
    for target in info["targets"]:
        key = target["key"]
        compiled = {mode: row["vela"][key] for mode, row in within.items() if row["vela"]}
        on_npu = {
            mode: figures
            for mode, figures in compiled.items()
            if "error" not in figures and not figures["cpu_operators"]
        }
        if not on_npu:
            found[key] = {
                "mode": None,
                "reason": f"no mode runs entirely on the NPU within {ACCURACY_MARGIN_POINTS} "
                f"points of float {measure} on every head",
            }
            continue
        mode = min(on_npu, key=lambda m: (_board_kib(on_npu[m]), on_npu[m]["inference_time_ms"]))
        figures = on_npu[mode]
        found[key] = {
            "mode": mode,
            "reason": f"the least memory on the board ({_board_kib(figures):.1f} KiB of SRAM, "
            f"flash and DRAM; {figures['inference_time_ms']:.2f} ms per inference) with every "
            f"operator on the NPU and {measure} within {ACCURACY_MARGIN_POINTS} points of float on "
            "every head",
        }
    if within:
        fastest = min(row["host_latency_ms"] for row in within.values())
        tied = [
            m
            for m, row in within.items()
            if row["host_latency_ms"] <= fastest * (1 + HOST_LATENCY_TIE)
        ]
        mode = min(tied, key=lambda m: (within[m]["tflite_bytes"], within[m]["host_latency_ms"]))
        found["host"] = {
            "mode": mode,
            "reason": f"the smallest .tflite ({within[mode]['tflite_bytes']:,} bytes) among the "
            f"fastest in LiteRT's default interpreter ({within[mode]['host_latency_ms']:.2f} ms, "
            f"within {HOST_LATENCY_TIE:.0%} of the fastest) with {measure} within "
            f"{ACCURACY_MARGIN_POINTS} points of float on every head",
        }
    else:
        found["host"] = {
            "mode": None,
            "reason": f"no mode is within {ACCURACY_MARGIN_POINTS} points of float on every head",
        }
    return found


def _board_kib(figures: dict) -> float:
    """The memory the compiled model takes on the board: its SRAM (tensor arena) and its flash,
    or DRAM where the system keeps the weights there."""
    return figures["sram_kib"] + figures["flash_kib"] + figures["dram_kib"]


@dataclass(frozen=True)
class ModeFigures:
    """One mode's row of the record with the figures the pages derive from it; every field but
    `row` is None for a mode that could not be made."""

    row: dict  # the mode's entry in the record's `modes`
    size_vs_float: float | None  # .tflite bytes / float32's
    latency_vs_float: float | None  # host latency / float32's
    scores: dict[str, float] | None  # per head: accuracy when labelled, else agreement
    board_kib: dict[str, float] | None  # per compiled target: SRAM + flash + DRAM (`_board_kib`)


def mode_figures(info: dict) -> list[ModeFigures]:
    """Every mode of the record, in its order, with what the Markdown and HTML show of it."""
    reference = info["reference"]
    found = []
    for row in info["modes"]:
        if row["error"]:
            found.append(ModeFigures(row, None, None, None, None))
            continue
        found.append(
            ModeFigures(
                row,
                size_vs_float=row["tflite_bytes"] / reference["tflite_bytes"],
                latency_vs_float=row["host_latency_ms"] / reference["host_latency_ms"],
                scores=row["accuracy"] or row["agreement"],
                board_kib=None
                if row["vela"] is None
                else {
                    key: _board_kib(figures)
                    for key, figures in row["vela"].items()
                    if "error" not in figures
                },
            )
        )
    return found


def score_name(info: dict) -> str:
    """What the per-head scores are: accuracy on labelled images, else agreement with float32."""
    return "accuracy" if info["reference"].get("accuracy") else "agreement"


def target_titles(info: dict) -> dict[str, str]:
    """How each recommendation's key is named on the pages: a board with its accelerator, an
    accelerator by itself."""
    titles = {
        t["key"]: t["key"] if t["key"] == t["accelerator"] else f"{t['key']} ({t['accelerator']})"
        for t in info["targets"]
    }
    return titles | {"host": "host CPU"}
