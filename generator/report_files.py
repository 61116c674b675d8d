"""The report's files beside a build: `<name>_quantization_info.json`, `<name>_report.md` and
`<name>_report.html`, and a comparison's `<name>_compare.json`, `.md` and `.html`. A build (or a
comparison) writes its three; `python -m generator report FOLDER` renders the Markdown and HTML
of both again from their JSON alone (and in a sweep's folder its CSV, Markdown and HTML from
`sweep.json`), so an older run can be read with a newer generator (and its newer pages) without
running it again.

Every file is written under a temporary name in the same folder and renamed into place once all
are written, so a reader never sees half a file and a failed re-render leaves the previous
files as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generator import compare_report, sweep_report
from generator.config import display_path
from generator.errors import UserError
from generator.html_report import render_compare_html, render_html, render_sweep_html
from generator.report import SCHEMA_VERSION, render_markdown

_JSON_SUFFIX = "_quantization_info.json"
_COMPARE_SUFFIX = "_compare.json"


@dataclass(frozen=True)
class ReportPaths:
    info: Path
    markdown: Path
    html: Path


def report_paths(folder: Path, name: str) -> ReportPaths:
    return ReportPaths(
        folder / f"{name}{_JSON_SUFFIX}",
        folder / f"{name}_report.md",
        folder / f"{name}_report.html",
    )


def write_report(info: dict, paths: ReportPaths) -> None:
    """Write the JSON, the Markdown and the HTML, each rendered before anything is written."""
    _write_atomically(
        {
            paths.info: json.dumps(info, indent=2) + "\n",
            paths.markdown: render_markdown(info),
            paths.html: render_html(info),
        }
    )


def compare_paths(folder: Path, name: str) -> list[Path]:
    """A comparison's `<name>_compare.json`, `.md` and `.html` in `folder`."""
    return [folder / f"{name}_compare.{suffix}" for suffix in ("json", "md", "html")]


def write_compare_report(info: dict, folder: Path, name: str) -> list[Path]:
    """Write a comparison's JSON, Markdown and HTML into `folder`, each rendered before anything
    is written; return their paths."""
    paths = compare_paths(folder, name)
    texts = [
        json.dumps(info, indent=2) + "\n",
        compare_report.render_compare_markdown(info),
        render_compare_html(info),
    ]
    _write_atomically(dict(zip(paths, texts, strict=True)))
    return paths


def rerender(folder: Path) -> list[Path]:
    """Render the Markdown and HTML of the build in `folder`, and of the comparison beside it,
    from their JSON (or a sweep's CSV, Markdown and HTML from its `sweep.json`); return their
    paths. Everything is rendered before anything is written."""
    sweep = folder / "sweep.json"
    if sweep.is_file():
        texts = _render(
            sweep,
            sweep_report.SCHEMA_VERSION,
            "sweep again with 'python -m generator sweep'",
            {
                folder / "sweep.csv": sweep_report.render_csv,
                folder / "sweep.md": sweep_report.render_markdown,
                folder / "sweep.html": render_sweep_html,
            },
        )
        _write_or_refuse(texts, folder)
        return list(texts)
    build, comparison = _names(folder)
    texts = {}
    if build is not None:
        paths = report_paths(folder, build)
        texts |= _render(
            paths.info,
            SCHEMA_VERSION,
            "rebuild with 'python -m generator build'",
            {paths.markdown: render_markdown, paths.html: render_html},
        )
    if comparison is not None:
        source, markdown, html = compare_paths(folder, comparison)
        texts |= _render(
            source,
            compare_report.SCHEMA_VERSION,
            "compare again with 'python -m generator compare'",
            {markdown: compare_report.render_compare_markdown, html: render_compare_html},
        )
    _write_or_refuse(texts, folder)
    return list(texts)


def _write_or_refuse(texts: dict[Path, str], folder: Path) -> None:
    try:
        _write_atomically(texts)
    except OSError as error:
        raise UserError(
            f"report: cannot write in {display_path(folder)} ({error.strerror}): "
            "make the folder writable"
        ) from None


def _render(
    source: Path, schema_version: int, fix: str, renderers: dict[Path, Callable[[dict], str]]
) -> dict[Path, str]:
    """Each path's text, rendered from the record in `source`; a record that cannot be read, is
    of another schema, or was edited by hand or cut short is refused in one line that says
    why and how to fix it (`fix`), rather than with a traceback."""
    try:
        info = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
        raise UserError(
            f"report: {display_path(source)} cannot be read "
            f"({str(error).splitlines()[0][:120]}): {fix}"
        ) from None
    version = info.get("schema_version") if isinstance(info, dict) else None
    if version != schema_version:
        raise UserError(
            f"report: {display_path(source)} has schema_version {version}, this generator "
            f"renders schema_version {schema_version}: {fix}"
        )
    try:
        return {path: render(info) for path, render in renderers.items()}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise UserError(
            f"report: {display_path(source)} does not follow schema_version "
            f"{schema_version} ({type(error).__name__}: {str(error)[:120]}): {fix}"
        ) from None


def _names(folder: Path) -> tuple[str | None, str | None]:
    """The name of the build whose JSON is in `folder` and the name of the comparison beside it:
    the build's own, or, in a folder a comparison alone wrote, that comparison's."""
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "not found"
        raise UserError(
            f"report: {display_path(folder)} {state}: give a build's output folder, "
            "<output.dir>/<name>"
        )
    builds = sorted(path.name for path in folder.glob(f"*{_JSON_SUFFIX}"))
    comparisons = sorted(path.name for path in folder.glob(f"*{_COMPARE_SUFFIX}"))
    if len(builds) > 1:
        raise UserError(
            f"report: {display_path(folder)} holds several builds' JSON ({', '.join(builds)}): "
            "give a build's output folder, <output.dir>/<name>"
        )
    if builds:
        name = builds[0].removesuffix(_JSON_SUFFIX)
        return name, name if f"{name}{_COMPARE_SUFFIX}" in comparisons else None
    if len(comparisons) == 1:
        return None, comparisons[0].removesuffix(_COMPARE_SUFFIX)
    raise UserError(
        f"report: {display_path(folder)} holds "
        + (
            f"several comparisons' JSON ({', '.join(comparisons)})"
            if comparisons
            else f"no *{_JSON_SUFFIX} or *{_COMPARE_SUFFIX}"
        )
        + ": give a build's output folder, <output.dir>/<name>"
    )


def _write_atomically(texts: dict[Path, str]) -> None:
    """Write every text under a temporary name first, then rename them all into place: a
    failure while writing leaves the previous files as they were."""
    partials = {path: path.with_name(f".{path.name}.partial") for path in texts}
    try:
        for path, partial in partials.items():
            partial.write_text(texts[path], encoding="utf-8")
        for path, partial in partials.items():
            partial.replace(path)
    finally:
        for partial in partials.values():
            if partial.is_file():  # not what stood in the way of one
                partial.unlink()
