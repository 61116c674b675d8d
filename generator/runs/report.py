"""The report's files: a build's record and pages (`<name>_quantization_info.json`,
`<name>_report.md`, `<name>_report.html`), a comparison's (`<name>_compare.json`, `.md`,
`.html`) and a sweep's (`sweep.json`, `.csv`, `.md`, `.html`). Each run writes its own;
`python -m generator report FOLDER` renders the pages again from the records alone
(`rerender`), so an older run can be read with a newer generator and its newer pages without
running it again. This module imports no engine: re-rendering loads neither TensorFlow nor a
runtime.

Every file is written under a temporary name in the same folder and renamed into place once all
are written, so a reader never sees half a file and a failed re-render leaves the previous
files as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jinja2

from generator.errors import UserError
from generator.records.files import (
    BUILD_SUFFIX,
    COMPARE_SUFFIX,
    SWEEP_RECORD,
    BuildFiles,
    build_files,
    compare_files,
    read_record,
    refuse_malformed,
    sweep_files,
)
from generator.rendering import pages
from generator.rendering.sweep_csv import sweep_csv
from generator.support.files import cannot_write, is_write_failure, write_atomically
from generator.support.text import display_path


def _json(info: dict) -> str:
    return json.dumps(info, indent=2) + "\n"


def write_build_report(info: dict, files: BuildFiles) -> None:
    """Write the record, the Markdown and the HTML, each rendered before anything is written."""
    write_atomically(
        {
            files.info: _json(info),
            files.markdown: pages.build_markdown(info),
            files.html: pages.build_html(info),
        }
    )


def write_compare_report(info: dict, folder: Path, name: str) -> list[Path]:
    """Write a comparison's record, Markdown and HTML into `folder`; return their paths."""
    paths = compare_files(folder, name)
    texts = [_json(info), pages.compare_markdown(info), pages.compare_html(info)]
    write_atomically(dict(zip(paths, texts, strict=True)))
    return paths


def write_sweep_report(info: dict, folder: Path) -> list[Path]:
    """Write a sweep's record, CSV, Markdown and HTML into `folder`; return their paths."""
    paths = sweep_files(folder)
    texts = [_json(info), sweep_csv(info), pages.sweep_markdown(info), pages.sweep_html(info)]
    write_atomically(dict(zip(paths, texts, strict=True)))
    return paths


def rerender(folder: Path) -> list[Path]:
    """Render the pages of the build in `folder`, and of the comparison beside it, from their
    records (or a sweep's CSV, Markdown and HTML from its `sweep.json`); return their paths.
    Everything is rendered before anything is written."""
    if (folder / SWEEP_RECORD).is_file():
        _, csv, markdown, html = sweep_files(folder)
        renderers = {csv: sweep_csv, markdown: pages.sweep_markdown, html: pages.sweep_html}
        texts = _render(folder / SWEEP_RECORD, "sweep", renderers)
        _write_or_refuse(texts, folder)
        return list(texts)
    build, comparison = _names(folder)
    texts = {}
    if build is not None:
        files = build_files(folder, build)
        renderers = {files.markdown: pages.build_markdown, files.html: pages.build_html}
        texts |= _render(files.info, "build", renderers)
    if comparison is not None:
        record, markdown, html = compare_files(folder, comparison)
        renderers = {markdown: pages.compare_markdown, html: pages.compare_html}
        texts |= _render(record, "compare", renderers)
    _write_or_refuse(texts, folder)
    return list(texts)


def _render(
    record: Path, kind: str, renderers: dict[Path, Callable[[dict], str]]
) -> dict[Path, str]:
    """Each path's text, rendered from the record in `record`; a record a renderer fails on
    (edited by hand, cut short) is refused in one line rather than with a traceback."""
    info = read_record(record, kind)
    try:
        return {path: render(info) for path, render in renderers.items()}
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        jinja2.UndefinedError,
    ) as error:
        raise refuse_malformed(record, kind, error) from None


def _write_or_refuse(texts: dict[Path, str], folder: Path) -> None:
    try:
        write_atomically(texts)
    except OSError as error:
        reason = (
            cannot_write(error, folder)
            if is_write_failure(error, folder.resolve())
            else f"cannot write in {display_path(folder)} ({error.strerror}): make the folder "
            "writable"
        )
        raise UserError(f"report: {reason}") from None


def _names(folder: Path) -> tuple[str | None, str | None]:
    """The name of the build whose JSON is in `folder` and the name of the comparison beside it:
    the build's own, or, in a folder a comparison alone wrote, that comparison's."""
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "not found"
        raise UserError(
            f"report: {display_path(folder)} {state}: give a build's output folder, "
            "<output.dir>/<name>"
        )
    builds = sorted(path.name for path in folder.glob(f"*{BUILD_SUFFIX}"))
    comparisons = sorted(path.name for path in folder.glob(f"*{COMPARE_SUFFIX}"))
    if len(builds) > 1:
        raise UserError(
            f"report: {display_path(folder)} holds several builds' JSON ({', '.join(builds)}): "
            "give a build's output folder, <output.dir>/<name>"
        )
    if builds:
        name = builds[0].removesuffix(BUILD_SUFFIX)
        return name, name if f"{name}{COMPARE_SUFFIX}" in comparisons else None
    if len(comparisons) == 1:
        return None, comparisons[0].removesuffix(COMPARE_SUFFIX)
    raise UserError(
        f"report: {display_path(folder)} holds "
        + (
            f"several comparisons' JSON ({', '.join(comparisons)})"
            if comparisons
            else f"no *{BUILD_SUFFIX} or *{COMPARE_SUFFIX}"
        )
        + ": give a build's output folder, <output.dir>/<name>"
    )
