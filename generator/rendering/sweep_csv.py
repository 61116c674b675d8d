"""A sweep as `sweep.csv`: one row per variant, in ranked order, for a spreadsheet."""

from __future__ import annotations

import csv
import io
import json

from generator.records.sweep_record import head_names, target_keys


def sweep_csv(info: dict) -> str:
    """One row per variant, in ranked order; empty cells where a figure does not apply."""
    targets, heads = target_keys(info), head_names(info)
    fields = [
        "placement",
        "sram_kib",
        "flash_kib",
        "inference_time_ms",
        "compiled_bytes",
        "encoded_weight_bytes",
        "fits",
    ]
    header = [
        "name",
        "status",
        *info["grid"],
        "tflite_bytes",
        "tflm_arena_bytes",
        "micro_runtime",
        *(f"{t}.{f}" for t in targets for f in fields),
        *(f"accuracy.{h}" for h in heads),
        "pareto",
        "error",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in info["variants"]:
        accuracy = row["accuracy"] or {}
        writer.writerow(
            [
                row["name"],
                row["status"],
                *(json.dumps(row["settings"][key]) for key in info["grid"]),
                row["tflite_bytes"],
                row["tflm_arena_bytes"],
                row["micro_runtime"],
                *(row["targets"].get(t, {}).get(f) for t in targets for f in fields),
                *(accuracy.get(h) for h in heads),
                row["pareto"],
                row["error"] or "",
            ]
        )
    return buffer.getvalue()
