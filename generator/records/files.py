"""Where each record lives, and reading one back.

A build's record is `<name>_quantization_info.json` in its folder, a comparison's
`<name>_compare.json` beside it, a sweep's `sweep.json` in `<output.dir>/<name>_sweep/`. Each
carries a `schema_version`; a record of an older version goes through `_UPGRADES` (the one place
that knows older records) or is refused in one line that says how to make a new one. A record
edited by hand or cut short is refused the same way, rather than failing in a renderer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from generator.errors import UserError
from generator.support.text import display_path, first_line

# Build version 3 is version 2 as the last builds that called themselves 2 wrote it: fields
# were added under 2 (output_stride, per-layer error, int16 layers, training speed, placements)
# without a new version. A version-2 record with all of them is upgraded; one without is from
# an older generator and is refused. Build 4, compare 2 and sweep 2 name the runtime that stood
# for a Cortex-M (TensorFlow Lite Micro, or LiteRT's reference kernels where it is not
# installed); every older record came from TensorFlow Lite Micro.
BUILD_SCHEMA_VERSION = 6
COMPARE_SCHEMA_VERSION = 3
SWEEP_SCHEMA_VERSION = 3

BUILD_SUFFIX = "_quantization_info.json"
COMPARE_SUFFIX = "_compare.json"
SWEEP_RECORD = "sweep.json"


@dataclass(frozen=True)
class BuildFiles:
    """A build's record and its two pages."""

    info: Path
    markdown: Path
    html: Path


def build_files(folder: Path, name: str) -> BuildFiles:
    return BuildFiles(
        folder / f"{name}{BUILD_SUFFIX}",
        folder / f"{name}_report.md",
        folder / f"{name}_report.html",
    )


def compare_files(folder: Path, name: str) -> list[Path]:
    """A comparison's `<name>_compare.json`, `.md` and `.html` in `folder`."""
    return [folder / f"{name}_compare.{suffix}" for suffix in ("json", "md", "html")]


def sweep_files(folder: Path) -> list[Path]:
    """A sweep's `sweep.json`, `sweep.csv`, `sweep.md` and `sweep.html` in `folder`."""
    return [folder / f"sweep.{suffix}" for suffix in ("json", "csv", "md", "html")]


_KINDS = {
    "build": (BUILD_SCHEMA_VERSION, "rebuild with 'python -m generator build'"),
    "compare": (COMPARE_SCHEMA_VERSION, "compare again with 'python -m generator compare'"),
    "sweep": (SWEEP_SCHEMA_VERSION, "sweep again with 'python -m generator sweep'"),
}


def read_record(path: Path, kind: str) -> dict:
    """The record in `path` (a `kind` of `_KINDS`) at the current schema version, or a
    `UserError` that says why it cannot be read and how to make a new one."""
    version, fix = _KINDS[kind]
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
        raise UserError(
            f"report: {display_path(path)} cannot be read ({first_line(error, limit=120)}): {fix}"
        ) from None
    found = info.get("schema_version") if isinstance(info, dict) else None
    while (kind, found) in _UPGRADES:
        info = _UPGRADES[kind, found](info, path, fix)
        found = info["schema_version"]
    if found != version:
        raise UserError(
            f"report: {display_path(path)} has schema_version {found}, this generator "
            f"renders schema_version {version}: {fix}"
        )
    return info


def refuse_malformed(path: Path, kind: str, error: Exception) -> UserError:
    """The one-line refusal of a record whose renderer failed on it: edited or cut short."""
    version, fix = _KINDS[kind]
    return UserError(
        f"report: {display_path(path)} does not follow schema_version {version} "
        f"({type(error).__name__}: {str(error)[:120]}): {fix}"
    )


# What version 3 has that early version-2 records lack: (section, key), where a section of
# None is the top level and a section that is null or absent in the record needs nothing.
_ADDED_UNDER_2 = (
    (None, "layer_errors"),
    ("model", "output_stride"),
    ("quantization", "int16"),
    ("training", "images_per_second"),
)


def _upgrade_build_from_2(info: dict, path: Path, fix: str) -> dict:
    for section, key in _ADDED_UNDER_2:
        holder = info if section is None else info.get(section)
        if isinstance(holder, dict) and key not in holder:
            field = key if section is None else f"{section}.{key}"
            raise UserError(
                f"report: {display_path(path)} is a schema_version 2 record from before "
                f"{field} was recorded: {fix}"
            )
    boards = info.get("boards") or {}
    if any("placements" not in board for board in boards.values()):
        raise UserError(
            f"report: {display_path(path)} is a schema_version 2 record from before placements "
            f"were recorded: {fix}"
        )
    return {**info, "schema_version": 3}


_FROM_TFLM = {"runtime": "tflite_micro", "note": None}


def _upgrade_build_from_3(info: dict, path: Path, fix: str) -> dict:
    tflm = info.get("tflm")
    if isinstance(tflm, dict):
        tflm = {"installed": True, **_FROM_TFLM, **tflm}
    return {**info, "tflm": tflm, "schema_version": 4}


def _upgrade_build_from_4(info: dict, path: Path, fix: str) -> dict:
    """Builds before pretrained backbones and frozen epochs: random or `model.weights` starts,
    every epoch training the whole network at one rate in float32."""
    model, training = info.get("model"), info.get("training")
    if isinstance(model, dict):
        model = {"pretrained": None, **model}
    if isinstance(training, dict):
        training = {
            "frozen_epochs": 0,
            "backbone_learning_rate": 1.0,
            "mixed_precision": False,
            **training,
        }
    return {**info, "model": model, "training": training, "schema_version": 5}


def _upgrade_build_from_5(info: dict, path: Path, fix: str) -> dict:
    """Builds before model.depth, optimize, train.teacher and Vela's weight bytes: whole
    backbones, kernels as trained, no teacher, the encoder's figures not read."""
    model, training = info.get("model"), info.get("training")
    if isinstance(model, dict):
        model = {"depth": None, **model}
    if isinstance(training, dict):
        training = {"teacher": None, "distillation_weight": None, "temperature": None, **training}
    vela = info.get("vela")
    if isinstance(vela, dict):
        vela = {
            key: {"original_weight_bytes": None, "encoded_weight_bytes": None, **target}
            if isinstance(target, dict)
            else target
            for key, target in vela.items()
        }
    boards = info.get("boards")
    if isinstance(boards, dict):
        boards = {
            key: {
                **board,
                "placements": [
                    {"encoded_weight_bytes": None, **placement}
                    if isinstance(placement, dict)
                    else placement
                    for placement in board.get("placements") or []
                ],
            }
            if isinstance(board, dict)
            else board
            for key, board in boards.items()
        }
    return {
        "optimize": None,
        **info,
        "model": model,
        "training": training,
        "vela": vela,
        "boards": boards,
        "schema_version": 6,
    }


def _upgrade_compare_from_1(info: dict, path: Path, fix: str) -> dict:
    return {**info, "micro": dict(_FROM_TFLM), "schema_version": 2}


def _upgrade_compare_from_2(info: dict, path: Path, fix: str) -> dict:
    """Comparisons before model.depth, the optimized row and Vela's encoded weight bytes."""
    modes = info.get("modes")
    if isinstance(modes, list):
        modes = [
            {
                **row,
                "vela": {
                    key: {"encoded_weight_bytes": None, **figures}
                    if "error" not in figures
                    else figures
                    for key, figures in row["vela"].items()
                },
            }
            if isinstance(row, dict) and isinstance(row.get("vela"), dict)
            else row
            for row in modes
        ]
    model = info.get("model")
    if isinstance(model, dict):
        model = {"depth": None, **model}
    return {**info, "model": model, "optimize": None, "modes": modes, "schema_version": 3}


def _upgrade_sweep_from_1(info: dict, path: Path, fix: str) -> dict:
    variants = info.get("variants")
    if isinstance(variants, list):
        variants = [
            {"micro_runtime": "tflite_micro" if row.get("status") == "ok" else None, **row}
            if isinstance(row, dict)
            else row
            for row in variants
        ]
    return {**info, "variants": variants, "schema_version": 2}


def _upgrade_sweep_from_2(info: dict, path: Path, fix: str) -> dict:
    """Sweeps before Vela's weight bytes and every placement's latency were listed."""
    variants = info.get("variants")
    if isinstance(variants, list):
        variants = [
            {
                **row,
                "targets": {
                    key: {"encoded_weight_bytes": None, "placements_ms": {}, **target}
                    for key, target in (row.get("targets") or {}).items()
                },
            }
            if isinstance(row, dict)
            else row
            for row in variants
        ]
    return {**info, "variants": variants, "schema_version": 3}


# (kind, version) -> the function that makes the next version of such a record.
_UPGRADES = {
    ("build", 2): _upgrade_build_from_2,
    ("build", 3): _upgrade_build_from_3,
    ("build", 4): _upgrade_build_from_4,
    ("build", 5): _upgrade_build_from_5,
    ("compare", 1): _upgrade_compare_from_1,
    ("compare", 2): _upgrade_compare_from_2,
    ("sweep", 1): _upgrade_sweep_from_1,
    ("sweep", 2): _upgrade_sweep_from_2,
}
