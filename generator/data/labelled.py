"""Labelled image sets for training and evaluation, in either of two layouts.

- A folder per head and class: `<root>/<head>/<class>/*.png`. Each image labels one head.
- A CSV manifest `path,<head1>,<head2>,...` (paths relative to the CSV file). A blank cell
  means "no label for this head": multi-task data often comes from several data sets, each
  labelling some heads.

Labels are class indices, -1 where a head has no label. A head's class order is its
`labels:` in the config when given (the data's class names must be the same set); otherwise
the data's class names sorted (numerically when all are whole numbers), and their number must
equal `num_classes`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator.data.images import IMAGE_SUFFIXES, ImageError, load_image
from generator.errors import UserError

if TYPE_CHECKING:
    from generator.config.schema import Head

MISSING = -1

# Decoding reports its progress every this many images.
PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class LabelledImages:
    """uint8 pixels (N, H, W, C), labels (N, heads) with -1 where missing, class names per head."""

    pixels: np.ndarray
    labels: np.ndarray
    classes: dict[str, tuple[str, ...]]

    def subset(self, rows: np.ndarray) -> LabelledImages:
        return LabelledImages(self.pixels[rows], self.labels[rows], self.classes)


@dataclass(frozen=True)
class LabelledList:
    """A labelled set before decoding: image paths, labels (N, heads), class names per head."""

    paths: list[Path]
    labels: np.ndarray
    classes: dict[str, tuple[str, ...]]
    field: str  # the config key that names the set, for errors


def read_labelled(
    source: Path,
    heads: tuple[Head, ...],
    shape: tuple[int, int, int],
    field: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> LabelledImages:
    """Load a labelled set from a folder or a .csv file; `field` names it in errors."""
    return decode_labelled(list_labelled(source, heads, field), shape, on_progress=on_progress)


def decode_labelled(
    listed: LabelledList,
    shape: tuple[int, int, int],
    rows: np.ndarray | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> LabelledImages:
    """The images `rows` of `listed` (all by default), decoded straight into one uint8 array:
    the only copy of their pixels a build keeps (training converts one batch at a time).
    `on_progress(done, total)` is called every `PROGRESS_EVERY` images and at the end."""
    rows = np.arange(len(listed.paths)) if rows is None else rows
    pixels = np.empty((len(rows), *shape), dtype=np.uint8)
    for done, row in enumerate(rows, start=1):
        pixels[done - 1] = _load(listed.paths[row], shape, listed.field)
        if on_progress is not None and (done % PROGRESS_EVERY == 0 or done == len(rows)):
            on_progress(done, len(rows))
    return LabelledImages(pixels, listed.labels[rows], listed.classes)


def list_labelled(source: Path, heads: tuple[Head, ...], field: str) -> LabelledList:
    """The paths, labels and classes of a labelled set, checked, without decoding an image."""
    if source.is_dir():
        paths, names = _read_folders(source, heads, field)
    elif source.suffix.lower() == ".csv" and source.is_file():
        paths, names = _read_manifest(source, heads, field)
    else:
        raise UserError(
            f"{field}: {source} is neither a folder nor a .csv file: give a folder "
            "<head>/<class>/ or a CSV path,<head>,..."
        )
    if not paths:
        raise UserError(
            f"{field}: no labelled images in {source}: list images in the CSV, or put them in "
            "<head>/<class>/ folders"
        )
    classes = {head.name: _class_order(head, names[head.name], field) for head in heads}
    labels = np.full((len(paths), len(heads)), MISSING, dtype=np.int64)
    for column, head in enumerate(heads):
        index = {name: i for i, name in enumerate(classes[head.name])}
        for row, name in enumerate(names[head.name]):
            if name:
                labels[row, column] = index[name]
    return LabelledList(paths, labels, classes, field)


def _read_manifest(
    source: Path, heads: tuple[Head, ...], field: str
) -> tuple[list[Path], dict[str, list[str]]]:
    """Rows of a CSV manifest. UTF-8, with or without the byte-order mark spreadsheets add."""
    needed = f"path,{','.join(h.name for h in heads)}"
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError as error:
        raise UserError(
            f"{field}: {source} is not UTF-8 text (byte {error.start}): save it as a UTF-8 CSV"
        ) from None
    except csv.Error as error:
        raise UserError(f"{field}: {source} is not a readable CSV ({error}): fix it") from None
    if not columns:
        raise UserError(f"{field}: {source} is empty: its first line must be {needed}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise UserError(f"{field}: {source} repeats the column {repeated[0]!r}: keep one")
    missing = [h.name for h in heads if h.name not in columns]
    if "path" not in columns or missing:
        raise UserError(
            f"{field}: {source} needs the columns {needed}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )
    paths = []
    for line, row in enumerate(rows, start=2):
        # A row shorter than the header gives None for the cells it lacks.
        cell = (row["path"] or "").strip()
        if not cell:
            raise UserError(
                f"{field}: {source} row {line} has no path: give the image's path relative to "
                "the CSV, or remove the row"
            )
        paths.append(source.parent / cell)
    names = {h.name: [(row[h.name] or "").strip() for row in rows] for h in heads}
    return paths, names


def _read_folders(
    source: Path, heads: tuple[Head, ...], field: str
) -> tuple[list[Path], dict[str, list[str]]]:
    folders = sorted(p.name for p in source.iterdir() if p.is_dir())
    unknown = [name for name in folders if name not in {h.name for h in heads}]
    if unknown:
        raise UserError(
            f"{field}: {source} has folders {', '.join(unknown)} that name no head; "
            f"expected <head>/<class>/ for heads {', '.join(h.name for h in heads)}"
        )
    paths: list[Path] = []
    names: dict[str, list[str]] = {h.name: [] for h in heads}
    for head in heads:
        head_folder = source / head.name
        if not head_folder.is_dir():
            continue
        for class_folder in sorted(p for p in head_folder.iterdir() if p.is_dir()):
            files = sorted(p for p in class_folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            for path in files:
                paths.append(path)
                for other in heads:
                    names[other.name].append(class_folder.name if other is head else "")
    return paths, names


def _class_order(head: Head, names: list[str], field: str) -> tuple[str, ...]:
    found = sorted({n for n in names if n})
    if not found:
        raise UserError(f"{field}: head '{head.name}' has no labelled images")
    if head.labels is not None:
        if set(found) != set(head.labels):
            raise UserError(
                f"{field}: head '{head.name}' has classes {found} in the data but labels "
                f"{list(head.labels)} in the config: make them the same names"
            )
        return head.labels
    if all(n.lstrip("-").isdigit() for n in found):
        found.sort(key=int)
    if len(found) != head.num_classes:
        raise UserError(
            f"{field}: head '{head.name}' has {len(found)} classes in the data ({found}) but "
            f"num_classes {head.num_classes} in the config: fix num_classes or give labels"
        )
    return tuple(found)


def _load(path: Path, shape: tuple[int, int, int], field: str) -> np.ndarray:
    try:
        return load_image(path, *shape)
    except ImageError as error:
        raise UserError(f"{field}: image {path} {error}: fix or remove it") from None
