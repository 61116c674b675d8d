"""`python -m generator report FOLDER`: the Markdown and HTML again from a build's JSON alone; a
bad folder or JSON is one line and exit code 2, with nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import needs_tflm

from generator.cli import main

FILES = ("default_quantization_info.json", "default_report.md", "default_report.html")


def _copy(build, folder):
    """The report's three files of `build`, alone in `folder`."""
    folder.mkdir()
    for name in FILES:
        shutil.copy(build / name, folder / name)
    return folder


def _snapshot(folder) -> dict:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_report_renders_the_same_files_again(demo_sized_build, tmp_path, capsys):
    folder = _copy(demo_sized_build, tmp_path / "copy")
    for name in FILES[1:]:
        (folder / name).unlink()
    assert main(["report", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "wrote:"
    assert [line.strip().rsplit("/", 1)[-1] for line in lines[1:]] == list(FILES[1:])
    for name in FILES:
        assert (folder / name).read_bytes() == (demo_sized_build / name).read_bytes(), name
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no .partial left


def test_report_renders_a_comparison_alone_again(comparison, tmp_path, capsys):
    """A folder `compare` wrote without a build: its Markdown and HTML from its JSON."""
    source, _, _ = comparison
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(source / "small_compare.json", folder)
    assert main(["report", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.strip().rsplit("/", 1)[-1] for line in lines[1:]] == [
        "small_compare.md",
        "small_compare.html",
    ]
    for name in ("small_compare.md", "small_compare.html"):
        assert (folder / name).read_bytes() == (source / name).read_bytes(), name


def _older(info: dict) -> dict:
    return {**info, "schema_version": 1}


def _cut(info: dict) -> dict:
    return {key: value for key, value in info.items() if key != "vela"}


def _retyped(info: dict) -> dict:
    return {**info, "boards": ["corstone_300"]}


def _before_output_stride(info: dict) -> dict:
    model = {key: value for key, value in info["model"].items() if key != "output_stride"}
    return {**info, "schema_version": 2, "model": model}


def _without_weight_bytes(info: dict, drop: bool) -> dict:
    """The record with Vela's weight bytes left out (`drop`) or set to None, as upgrading a
    record from before schema_version 6 gives them."""
    gone = ("original_weight_bytes", "encoded_weight_bytes")

    def strip(entry: dict) -> dict:
        kept = {k: v for k, v in entry.items() if k not in gone}
        return kept if drop else {**kept, **{k: None for k in gone if k in entry}}

    boards = {
        key: {**board, "placements": [strip(p) for p in board["placements"]]}
        for key, board in info["boards"].items()
    }
    return {**info, "vela": {k: strip(v) for k, v in info["vela"].items()}, "boards": boards}


def _as_version_5(info: dict) -> dict:
    """The record as builds before schema_version 6 wrote it: no model.depth, no optimize, no
    weight bytes from Vela."""
    info = _without_weight_bytes(info, drop=True)
    model = {k: v for k, v in info["model"].items() if k != "depth"}
    rest = {k: v for k, v in info.items() if k != "optimize"}
    return {**rest, "schema_version": 5, "model": model}


def _as_version_4(info: dict) -> dict:
    """The record as builds before schema_version 5 wrote it: no pretrained start, no frozen
    epochs."""
    info = _as_version_5(info)
    model = {k: v for k, v in info["model"].items() if k != "pretrained"}
    training = info["training"] and {
        k: v
        for k, v in info["training"].items()
        if k not in ("frozen_epochs", "backbone_learning_rate", "mixed_precision")
    }
    return {**info, "schema_version": 4, "model": model, "training": training}


def _as_version_3(info: dict) -> dict:
    """The record as builds before schema_version 4 wrote it: TFLite Micro was not named."""
    info = _as_version_4(info)
    tflm = {k: v for k, v in info["tflm"].items() if k not in ("installed", "runtime", "note")}
    versions = {k: v for k, v in info["versions"].items() if k != "tflite_micro"}
    return {**info, "schema_version": 3, "tflm": tflm, "versions": versions}


@needs_tflm  # older records all came from TFLite Micro: the pages match only a build that did
@pytest.mark.parametrize("version", [2, 3, 4, 5])
def test_a_complete_older_record_is_upgraded(demo_sized_build, tmp_path, version):
    """Records of versions 2 (with every field of version 3), 3, 4 and 5 render as version 6
    does without Vela's weight bytes (which older builds did not read)."""
    current = json.loads((demo_sized_build / FILES[0]).read_text())
    expected = _copy(demo_sized_build, tmp_path / "expected")
    (expected / FILES[0]).write_text(json.dumps(_without_weight_bytes(current, drop=False)))
    assert main(["report", str(expected)]) == 0
    folder = _copy(demo_sized_build, tmp_path / "copy")
    record = folder / FILES[0]
    older = {4: _as_version_4, 5: _as_version_5}.get(version, _as_version_3)(current)
    older = {**older, "schema_version": version}
    record.write_text(json.dumps(older))
    for page in FILES[1:]:
        (folder / page).unlink()
    assert main(["report", str(folder)]) == 0
    for page in FILES[1:]:
        assert (folder / page).read_bytes() == (expected / page).read_bytes(), page
    assert json.loads(record.read_text()) == older  # the record itself is as it was


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_older, "has schema_version 1, this generator renders schema_version 6"),
        (lambda info: [info], "has schema_version None"),
        (_cut, "does not follow schema_version 6 (UndefinedError: 'dict object' has no attribute"),
        (_retyped, "does not follow schema_version 6 (UndefinedError"),
        (_before_output_stride, "schema_version 2 record from before model.output_stride was"),
    ],
)
def test_a_json_of_another_schema_is_refused(demo_sized_build, tmp_path, capsys, change, message):
    folder = _copy(demo_sized_build, tmp_path / "copy")
    info = json.loads((folder / FILES[0]).read_text())
    (folder / FILES[0]).write_text(json.dumps(change(info)))
    before = _snapshot(folder)
    assert main(["report", str(folder)]) == 2
    _one_error_line(capsys, message)
    assert _snapshot(folder) == before


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: folder.rmdir(), "copy not found: give a build's output folder"),
        (lambda folder: folder.rmdir() or folder.write_text("x"), "copy is not a folder"),
        (lambda folder: None, "holds no *_quantization_info.json or *_compare.json"),
        (
            lambda folder: (folder / "a_compare.json").write_text('{"schema_version": 4}'),
            "a_compare.json has schema_version 4, this generator renders schema_version 3: "
            "compare again with 'python -m generator compare'",
        ),
        (
            lambda folder: (folder / "a_compare.json").write_text('{"schema_version": 1}'),
            "a_compare.json does not follow schema_version 3 (KeyError: 'reference')",
        ),
        (
            lambda folder: (folder / FILES[0]).write_bytes(b"\xff{not json"),
            "default_quantization_info.json cannot be read",
        ),
        (
            lambda folder: (folder / FILES[0]).write_text('{"schema_version": 2'),
            "default_quantization_info.json cannot be read (Expecting",
        ),
        (
            lambda folder: [
                (folder / f"{n}_quantization_info.json").write_text("{}") for n in "ab"
            ],
            "holds several builds' JSON (a_quantization_info.json, b_quantization_info.json)",
        ),
    ],
)
def test_a_bad_folder_or_json_is_one_line(tmp_path, capsys, make, message):
    folder = tmp_path / "copy"
    folder.mkdir()
    make(folder)
    before = _snapshot(folder) if folder.is_dir() else None
    assert main(["report", str(folder)]) == 2
    _one_error_line(capsys, message)
    assert (_snapshot(folder) if folder.is_dir() else None) == before


def test_a_folder_that_cannot_be_written_keeps_its_files(demo_sized_build, tmp_path, capsys):
    folder = _copy(demo_sized_build, tmp_path / "copy")
    (folder / FILES[0]).write_text(
        (demo_sized_build / FILES[0]).read_text().replace('"name": "default"', '"name": "new"')
    )
    before = _snapshot(folder)
    # A folder in the way of the HTML's temporary name: the Markdown is written, the HTML is not.
    (folder / ".default_report.html.partial").mkdir()
    assert main(["report", str(folder)]) == 2
    _one_error_line(capsys, "report: cannot write in")
    (folder / ".default_report.html.partial").rmdir()
    assert _snapshot(folder) == before  # the new Markdown was not renamed into place either


def _one_error_line(capsys, fragment: str) -> None:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: report: "), lines
    assert fragment in lines[0], lines[0]
