"""The HTML pages of a real demo-sized build and of a real comparison: every section from the
JSON, opened offline in a real headless Chromium (Debian's, driven by Playwright) with no console
error and no request."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from conftest import MICRO, needs_chromium, open_in_chromium
from PIL import Image

from generator.records.compare_record import mode_figures, target_titles
from generator.records.policy import MICRO_TITLES
from generator.rendering.pages import build_html, compare_html


def _info(folder) -> dict:
    return json.loads((folder / "default_quantization_info.json").read_text())


class _Text(HTMLParser):
    """The page's text (SVG text included), with runs of white space made one space."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.svgs = 0

    def handle_starttag(self, tag, attrs) -> None:
        self.svgs += tag == "svg"

    def handle_data(self, data) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.parts))


def _parse(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


def _key_figures(info: dict) -> list[str]:
    """What a reader must find: the model's hash, each head's accuracies, each board's verdict,
    and the layer with the largest own quantization error with its figure."""
    heads = info["accuracy"]["heads"].values()
    worst = info["layer_errors"]["layers"][0]
    return [
        info["model"]["sha256"],
        *(f"{head['quantized_top1']:.2%}" for head in heads),
        *(f"{head['float_top1']:.2%}" for head in heads),
        *(board["verdict"] for board in info["boards"].values()),
        *(board["recommendation"] for board in info["boards"].values()),
        f"{worst['layer']} {worst['operator']} {worst['rmse_steps']:.2f}",  # its table row
    ]


def test_every_section_is_drawn_from_the_json(demo_sized_build):
    info = _info(demo_sized_build)
    page = (demo_sized_build / "default_report.html").read_text()
    parsed = _parse(page)
    text = parsed.text
    for fact in _key_figures(info):
        assert fact in text, fact
    for heading in (
        "Model",
        "Input and heads",
        "Board fit",
        "Cycles per layer, corstone_300",
        "Cycles per layer, alif_e7_he",
        "Quantization error",
        "Clipping per layer",
        "Per-layer quantization error",
        f"Runtimes: {MICRO_TITLES[MICRO]} vs LiteRT",
        "Tensor arena",
        "Training",
        "Accuracy: float vs quantized",
        "Confusion matrices",
    ):
        assert heading in text, heading
    # fit, cycles per target, clipping, layer errors, runtimes, training, accuracy, a confusion
    # matrix per head
    assert parsed.svgs == 1 + 2 + 1 + 1 + 1 + 1 + 1 + 3
    for head in info["heads"]:
        assert f"{head['scale']:.6g}" in text and head["name"] in text
    # The per-layer charts name Keras layers (the JSON's mapping), not Vela's fused tensor names.
    for target in info["vela"].values():
        layers = {layer["layer"] for layer in target["layers"]}
        assert {"conv1", "conv_pw_13", "digit_logits", "high_logits"} <= layers
        assert all(layer in text for layer in layers)
        assert not any(layer["name"] in text for layer in target["layers"] if ";" in layer["name"])
    for tensor in info["clipping"]["tensors"]:
        assert f"{tensor['layer']} ({tensor['operator']})" in text
    # Every integer operator is a bar labelled with its Keras layer and its own error.
    for layer in info["layer_errors"]["layers"]:
        assert layer["layer"] in text and f"{layer['rmse_steps']:.2f}" in text
    history = info["training"]["history"]
    assert f"{len(history)} epochs run" in text
    assert f"{history[info['training']['best_epoch'] - 1]['val_loss']:.4f}" in text
    for head in info["accuracy"]["heads"].values():
        for row in head["confusion_matrix"]:
            assert " ".join(map(str, row)) in text  # the counts, as text in the matrix figure
    for by_head in info["runtimes"]["compared"].values():
        for figures in by_head.values():
            assert f"{figures['max_step_difference']} steps" in text
    # self-contained: nothing to fetch, no script
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    assert "<script" not in page and "<link" not in page


def test_rendering_is_repeatable_and_sections_without_data_are_left_out(demo_sized_build):
    info = _info(demo_sized_build)
    page = (demo_sized_build / "default_report.html").read_text()
    assert build_html(info) == page
    bare = _parse(
        build_html({**info, "training": None, "accuracy": None, "boards": {}, "layer_errors": None})
    )
    assert bare.svgs == 2 + 1 + 1  # cycles per target, clipping, runtimes
    for heading in (
        "Board fit",
        "Training",
        "Accuracy",
        "Confusion matrices",
        "Per-layer quantization error",
    ):
        assert heading not in bare.text
    assert info["model"]["sha256"] in bare.text


@needs_chromium
def test_report_opens_offline_in_chromium_without_errors(demo_sized_build, tmp_path):
    info = _info(demo_sized_build)
    screenshot = tmp_path / "report.png"
    text, svgs = open_in_chromium(demo_sized_build / "default_report.html", screenshot)
    for fact in _key_figures(info):
        assert fact in text, fact
    assert svgs == 11
    with Image.open(screenshot) as image:
        width, height = image.size
    assert width == 1100 and height > 3000  # every section rendered, one below the other


def _compare_key_figures(info: dict) -> list[str]:
    """What a reader of a comparison must find: each mode's .tflite size in bytes, and the
    recommendation for each target with its reason (a row of the recommendation table)."""
    return [
        *(f"{row['tflite_bytes']:,} bytes" for row in info["modes"] if not row["error"]),
        *(
            f"{choice['mode'] or 'none'} {choice['reason']}"
            for choice in info["recommendations"].values()
        ),
    ]


def test_compare_page_is_drawn_from_the_json_as_the_markdown(comparison):
    folder, info, _ = comparison
    page = (folder / "small_compare.html").read_text()
    markdown = (folder / "small_compare.md").read_text()
    assert compare_html(info) == page
    parsed = _parse(page)
    text = parsed.text
    for fact in _compare_key_figures(info):
        assert fact in text, fact
    assert parsed.svgs == 1
    # The derived figures are the Markdown's own: ratios to float32 and memory on each board.
    for mode in mode_figures(info):
        for ratio in (mode.size_vs_float, mode.latency_vs_float):
            assert f"{ratio:.2f}x" in text and f"{ratio:.2f}x" in markdown
        for kib in (mode.board_kib or {}).values():
            assert f"{kib:.1f} KiB" in text and f"| {kib:.1f} |" in markdown
        row = mode.row
        for head in info["model"]["heads"]:
            sqnr = row["sqnr_db"][head]
            assert f"{row['accuracy'][head]:.2%}" in text
            assert ("exact" if sqnr is None else f"{sqnr:.1f} dB") in text
    for title in target_titles(info).values():
        assert title in text
    for row in info["modes"]:
        if row["vela"] is None:
            assert f"not compiled: {row['vela_note']}" in text
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    assert "<script" not in page and "<link" not in page


@needs_chromium
def test_compare_page_opens_offline_in_chromium_without_errors(comparison, tmp_path):
    folder, info, _ = comparison
    screenshot = tmp_path / "compare.png"
    text, svgs = open_in_chromium(folder / "small_compare.html", screenshot)
    for fact in _compare_key_figures(info):
        assert fact in text, fact
    assert svgs == 1
    with Image.open(screenshot) as image:
        width, height = image.size
    assert width == 1100 and height > 1500
