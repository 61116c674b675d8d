"""Sweep report: `sweep.json`, `sweep.csv`, `sweep.md` and `sweep.html` in
`<output.dir>/<name>_sweep/`.

Every figure is copied from a variant's own `<variant>_quantization_info.json`, which the build
read back from its artifacts; nothing is recomputed here. Per board target the figures are
those of the fastest placement that fits (`generator.placement`), or of the board's own
placement when none fits; a target without a board has no budget, so its `fits` is null.

Ranking: variants that fit every board first; then the best mean top-1 accuracy over the heads
(TFLite Micro, on the evaluation set) when the config evaluates, then the slowest target's
latency, then the most SRAM any target needs. Failed variants come last, in grid order. The
Pareto front is over accuracy (when measured), the slowest target's latency and the largest
SRAM need: a variant is on it when no other is at least as good on all of them and better on
one.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def variant_row(name: str, settings: dict[str, Any], info: dict | None, error: str | None) -> dict:
    """One variant as sweep.json lists it, from its build's report (None when it failed)."""
    row: dict[str, Any] = {
        "name": name,
        "settings": settings,
        "path": name,
        "status": "ok" if info is not None else "failed",
        "error": error,
        "tflite_bytes": None,
        "tflm_arena_bytes": None,
        "targets": {},
        "accuracy": None,
        "fidelity": None,
        "pareto": False,
    }
    if info is None:
        return row
    row["tflite_bytes"] = info["model"]["tflite_bytes"]
    row["tflm_arena_bytes"] = info["tflm"]["arena_bytes"]
    row["targets"] = {key: _target(key, vela, info["boards"]) for key, vela in info["vela"].items()}
    if info["accuracy"]:
        row["accuracy"] = {
            head: figures["quantized_top1"] for head, figures in info["accuracy"]["heads"].items()
        }
    row["fidelity"] = {
        head: {"agreement_top1": f["agreement_top1"], "sqnr_db": f["sqnr_db"]}
        for head, f in info["fidelity"]["heads"].items()
    }
    return row


def _target(key: str, vela: dict, boards: dict) -> dict:
    board = boards.get(key)
    if board is None:
        return {
            "placement": vela["memory_mode"],
            "sram_kib": vela["sram_needed_bytes"] / 1024,
            "flash_kib": vela["off_chip_needed_bytes"] / 1024,
            "inference_time_ms": vela["inference_time_ms"],
            "compiled_bytes": vela["vela_tflite_bytes"],
            "fits": None,
        }
    chosen_mode = board["recommended"] or board["memory_mode"]
    chosen = next(p for p in board["placements"] if p["memory_mode"] == chosen_mode)
    return {
        "placement": chosen_mode,
        "sram_kib": chosen["sram_needed_bytes"] / 1024,
        "flash_kib": chosen["flash_needed_bytes"] / 1024,
        "inference_time_ms": chosen["inference_time_ms"],
        "compiled_bytes": chosen["model_bytes"],
        "fits": board["recommended"] is not None,
    }


def sweep_info(name: str, grid: dict[str, list[Any]], rows: list[dict]) -> dict:
    """sweep.json: the rows ranked, the Pareto front marked."""
    ok = [row for row in rows if row["status"] == "ok"]
    for row in ok:
        row["pareto"] = not any(_dominates(other, row) for other in ok if other is not row)
    ranked = sorted(ok, key=_rank) + [row for row in rows if row["status"] != "ok"]
    return {"schema_version": SCHEMA_VERSION, "name": name, "grid": grid, "variants": ranked}


def fits_everywhere(row: dict) -> bool:
    """Whether the variant fits every board target (a target without a board has no budget)."""
    return all(target["fits"] is not False for target in row["targets"].values())


def mean_accuracy(row: dict) -> float | None:
    """Mean top-1 accuracy over the heads, None when the config does not evaluate."""
    accuracy = row["accuracy"]
    return sum(accuracy.values()) / len(accuracy) if accuracy else None


def slowest_ms(row: dict) -> float:
    """The slowest target's Vela latency, in ms."""
    return max((t["inference_time_ms"] for t in row["targets"].values()), default=0.0)


def largest_sram_kib(row: dict) -> float:
    """The most SRAM any target's chosen placement needs, in KiB."""
    return max((t["sram_kib"] for t in row["targets"].values()), default=0.0)


def _objectives(row: dict) -> tuple[float, float, float]:
    """(negated mean accuracy or 0, slowest latency, largest SRAM): smaller is better."""
    return (-(mean_accuracy(row) or 0.0), slowest_ms(row), largest_sram_kib(row))


def _rank(row: dict) -> tuple:
    return (not fits_everywhere(row), *_objectives(row))


def _dominates(a: dict, b: dict) -> bool:
    ours, theirs = _objectives(a), _objectives(b)
    return all(x <= y for x, y in zip(ours, theirs, strict=True)) and ours != theirs


def write_sweep_report(info: dict, folder: Path) -> list[Path]:
    """Write sweep.json, sweep.csv, sweep.md and sweep.html into `folder`, each whole or not at
    all. (The page's renderer is imported here: its charts use this module's figures.)"""
    from generator.html_report import render_sweep_html

    texts = {
        folder / "sweep.json": json.dumps(info, indent=2) + "\n",
        folder / "sweep.csv": render_csv(info),
        folder / "sweep.md": render_markdown(info),
        folder / "sweep.html": render_sweep_html(info),
    }
    for path, text in texts.items():
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text)
        os.replace(partial, path)
    return list(texts)


def _targets(info: dict) -> list[str]:
    return list(dict.fromkeys(t for row in info["variants"] for t in row["targets"]))


def _heads(info: dict) -> list[str]:
    rows = info["variants"]
    named = (row["accuracy"] or row["fidelity"] or {} for row in rows)
    return list(dict.fromkeys(head for heads in named for head in heads))


def render_csv(info: dict) -> str:
    """One row per variant, in ranked order; empty cells where a figure does not apply."""
    targets, heads = _targets(info), _heads(info)
    fields = ["placement", "sram_kib", "flash_kib", "inference_time_ms", "compiled_bytes", "fits"]
    header = [
        "name",
        "status",
        *info["grid"],
        "tflite_bytes",
        "tflm_arena_bytes",
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
                *(row["targets"].get(t, {}).get(f) for t in targets for f in fields),
                *(accuracy.get(h) for h in heads),
                row["pareto"],
                row["error"] or "",
            ]
        )
    return buffer.getvalue()


def render_markdown(info: dict) -> str:
    targets, heads = _targets(info), _heads(info)
    variants = info["variants"]
    ok = [row for row in variants if row["status"] == "ok"]
    measured = any(row["accuracy"] for row in ok)
    lines = [
        f"# {info['name']}: design-space sweep",
        "",
        "Grid: "
        + "; ".join(
            f"`{key}` = {', '.join(json.dumps(v) for v in values)}"
            for key, values in info["grid"].items()
        )
        + f". {len(variants)} variants, {len(ok)} built, {len(variants) - len(ok)} failed.",
        "",
        "Ranked: variants that fit every board first, then "
        + ("by mean top-1 accuracy (TFLite Micro), " if measured else "")
        + "by the slowest target's latency, then by SRAM. ★: on the Pareto front of "
        + ("accuracy, " if measured else "")
        + "latency and SRAM. Per board: the fastest placement that fits (Vela estimates; "
        "SRAM and flash as that placement needs them, weights included where they live).",
        "",
    ]
    quality = "accuracy" if measured else "agreement with float (untrained)"
    header = ["", "variant", ".tflite KiB", *targets, *(f"{h} {quality}" for h in heads)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ok:
        cells = [
            "★" if row["pareto"] else "",
            f"`{row['name']}`",
            f"{row['tflite_bytes'] / 1024:.1f}",
        ]
        for key in targets:
            t = row["targets"].get(key)
            cells.append("-" if t is None else _target_cell(t))
        for head in heads:
            if measured:
                cells.append(f"{row['accuracy'][head]:.2%}")
            else:
                cells.append(f"{row['fidelity'][head]['agreement_top1']:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    failed = [row for row in variants if row["status"] != "ok"]
    if failed:
        lines += ["", "## Failed", ""]
        lines += [f"- `{row['name']}`: {row['error']}" for row in failed]
    lines += ["", "Each variant's own report: `<variant>/<variant>_report.md`.", ""]
    return "\n".join(lines)


def _target_cell(target: dict) -> str:
    verdict = {True: "fits", False: "does not fit", None: "no budget"}[target["fits"]]
    return (
        f"{target['inference_time_ms']:.3f} ms, SRAM {target['sram_kib']:.1f} KiB, "
        f"flash {target['flash_kib']:.1f} KiB, {target['placement']}: {verdict}"
    )
