"""Sweep report: `sweep.json`, `sweep.csv`, `sweep.md` and `sweep.html` in
`<output.dir>/<name>_sweep/`.

Every figure is copied from a variant's own `<variant>_quantization_info.json`, which the build
read back from its artifacts; nothing is recomputed here. Per board target the figures are
those of the fastest placement that fits (`generator.analysis.placement`), or of the board's own
placement when none fits; a target without a board has no budget, so its `fits` is null.

Ranking: variants that fit every board first; then the best mean top-1 accuracy over the heads
(TFLite Micro, or the runtime that stood in for it, on the evaluation set) when the config
evaluates, then the slowest target's
latency, then the most SRAM any target needs. Failed variants come last, in grid order. The
Pareto front is over accuracy (when measured), the slowest target's latency and the largest
SRAM need: a variant is on it when no other is at least as good on all of them and better on
one.
"""

from __future__ import annotations

from typing import Any

from generator.records.files import SWEEP_SCHEMA_VERSION


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
        "micro_runtime": None,
        "targets": {},
        "accuracy": None,
        "fidelity": None,
        "pareto": False,
    }
    if info is None:
        return row
    row["tflite_bytes"] = info["model"]["tflite_bytes"]
    row["tflm_arena_bytes"] = info["tflm"]["arena_bytes"]
    row["micro_runtime"] = info["tflm"]["runtime"]
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
            "placements_ms": {vela["memory_mode"]: vela["inference_time_ms"]},
            "compiled_bytes": vela["vela_tflite_bytes"],
            "encoded_weight_bytes": vela["encoded_weight_bytes"],
            "fits": None,
        }
    chosen_mode = board["recommended"] or board["memory_mode"]
    chosen = next(p for p in board["placements"] if p["memory_mode"] == chosen_mode)
    return {
        "placement": chosen_mode,
        "sram_kib": chosen["sram_needed_bytes"] / 1024,
        "flash_kib": chosen["flash_needed_bytes"] / 1024,
        "inference_time_ms": chosen["inference_time_ms"],
        "placements_ms": {p["memory_mode"]: p["inference_time_ms"] for p in board["placements"]},
        "compiled_bytes": chosen["model_bytes"],
        "encoded_weight_bytes": chosen["encoded_weight_bytes"],
        "fits": board["recommended"] is not None,
    }


def sweep_info(name: str, grid: dict[str, list[Any]], rows: list[dict]) -> dict:
    """sweep.json: the rows ranked, the Pareto front marked."""
    ok = [row for row in rows if row["status"] == "ok"]
    for row in ok:
        row["pareto"] = not any(_dominates(other, row) for other in ok if other is not row)
    ranked = sorted(ok, key=_rank) + [row for row in rows if row["status"] != "ok"]
    return {"schema_version": SWEEP_SCHEMA_VERSION, "name": name, "grid": grid, "variants": ranked}


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


def micro_runtimes(info: dict) -> list[str]:
    """The runtimes that stood for a Cortex-M in the built variants (one, unless the sweep was
    resumed on another machine)."""
    built = (row["micro_runtime"] for row in info["variants"] if row["status"] == "ok")
    return list(dict.fromkeys(built))


def target_keys(info: dict) -> list[str]:
    return list(dict.fromkeys(t for row in info["variants"] for t in row["targets"]))


def head_names(info: dict) -> list[str]:
    rows = info["variants"]
    named = (row["accuracy"] or row["fidelity"] or {} for row in rows)
    return list(dict.fromkeys(head for heads in named for head in heads))
