"""Every page a person reads, rendered from a record by a Jinja2 template in `templates/`: a
build's `<name>_report.md` and `.html` (`build.md`, `build.html`), a comparison's
(`compare.md`, `compare.html`) and a sweep's (`sweep.md`, `sweep.html`).

One mechanism for both kinds of page: the Markdown and the HTML of a record get the same
values (the record itself and the views `generator.records` derives from it), so they cannot
disagree. The HTML environment escapes what it inserts; the Markdown one does not (Markdown is
not HTML, and a layer named `a<b` must read as such in a table). The HTML pages have no script
and refer to nothing outside themselves (no CDN, no font, no image file), so they open offline
and can be mailed as one file; their figures are `charts`' inline SVG.

Matplotlib is imported only when an HTML page is rendered (`charts` is imported inside the
HTML functions): a Markdown page, or a process that never renders one, does not pay for it.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
from markupsafe import Markup

from generator.records import compare_record, sweep_record
from generator.records.policy import (
    CLIPPING_LISTED,
    LAYER_ERROR_WARNING_STEPS,
    LAYER_ERRORS_LISTED,
    LAYER_ERRORS_WITH_INT16,
    MICRO_TITLES,
    RUNTIME_TITLES,
    SATURATION_WARNING,
    folded_layers,
    quantized_format,
)


def _environment(*, html: bool) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("generator.rendering", "templates"),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters |= {
        "fmt": format,
        "json": json.dumps,
        "bytes": lambda value: f"{value:,} bytes",
        "percent": lambda value, digits=1: f"{value:.{digits}%}",
        "sqnr": lambda value: "exact" if value is None else f"{value:.1f} dB",
    }
    environment.globals |= {
        "runtime_titles": RUNTIME_TITLES,
        "micro_titles": MICRO_TITLES,
        "clipping_listed": CLIPPING_LISTED,
        "layer_errors_listed": LAYER_ERRORS_LISTED,
        "layer_error_warning_steps": LAYER_ERROR_WARNING_STEPS,
        "layer_errors_with_int16": LAYER_ERRORS_WITH_INT16,
        "saturation_warning": SATURATION_WARNING,
        "quantized_format": quantized_format,
        "folded_layers": folded_layers,
        "pretrained_text": pretrained_text,
        "fine_tuning_text": fine_tuning_text,
        "optimize_text": optimize_text,
        "backbone_text": backbone_text,
    }
    return environment


def pretrained_text(model: dict) -> str:
    """Where the backbone's starting weights came from, in sentences, from the record."""
    pretrained = model.get("pretrained")
    if pretrained is None:
        return ""
    if pretrained["url"]:
        side = pretrained["trained_side"]
        text = (
            f"The backbone started from the ImageNet weights Keras publishes: {pretrained['file']}"
            f" (trained at {side}×{side}, from {pretrained['url']})"
        )
    else:
        text = f"The backbone started from the weights in {pretrained['file']}"
    text += f", {pretrained['layers_loaded']} layers; the heads started random (seeded)."
    for derived in pretrained["derived"]:
        text += f" {derived[0].upper()}{derived[1:]}."
    if pretrained["input_range_from_pretrained"]:
        text += (
            " The pixel mapping follows those weights' scaling (calibration.input_range was "
            "not set); the .tflite still takes raw pixels."
        )
    return text


def fine_tuning_text(training: dict) -> str:
    """The frozen epochs, the backbone's rate and the teacher, in sentences, from the record."""
    text = ""
    frozen = training["frozen_epochs"]
    if frozen:
        text = (
            f"Epochs 1 to {frozen} trained the heads alone, the backbone frozen (batch "
            "normalization in inference mode)"
        )
        if training["epochs_run"] > frozen:
            text += f"; from epoch {frozen + 1} the whole network trained"
        text += "."
    rate = training["backbone_learning_rate"]
    if rate != 1.0:
        text += f" The backbone's learning rate was {rate:g} × the heads'."
    if training["mixed_precision"]:
        text += " Computed in mixed precision (float16, with float32 weights and logits)."
    if training["teacher"]:
        text += (
            f" Each head learned from {training['teacher']}'s logits as well as the labels "
            f"(teacher weight {training['distillation_weight']:g}, temperature "
            f"{training['temperature']:g}); validation scored the labels alone."
        )
    return text.strip()


def backbone_text(model: dict) -> str:
    """Our backbone in a few words: `mobilenet_v1 (alpha 0.25, output stride 8)`, and where
    `model.depth` ended it."""
    text = f"{model['backbone']} (alpha {model['alpha']}, output stride {model['output_stride']}"
    if model["depth"] is not None:
        text += f", ended after {model['depth']}"
    return text + ")"


def optimize_text(optimize: dict) -> str:
    """What `optimize` did to the weights and how they were fine-tuned, from the record."""
    asked = [
        f"{rule['clusters']} values per kernel for layers matching `{rule['layers']}`"
        if rule["clusters"]
        else f"no clustering for `{rule['layers']}`"
        for rule in optimize["clusters"]
    ]
    if optimize["sparsity"]:
        layers = ", ".join(f"`{p}`" for p in optimize["sparsity_layers"])
        asked.append(f"{optimize['sparsity']:.0%} of each kernel's weights set to 0 ({layers})")
    text = f"Kernels compressed for the NPU's weight encoder: {'; '.join(asked)}."
    run = optimize["fine_tuning"]
    if run is None:
        return text + " Not fine-tuned afterwards (optimize.epochs is 0)."
    text += (
        f" Then fine-tuned for {run['epochs_run']} epochs at a peak learning rate of "
        f"{run['learning_rate']:g}, every kernel held to its clusters and zeros after each "
        f"step; the model of epoch {run['best_epoch']} (lowest validation loss) is kept."
    )
    if run["teacher"]:
        text += (
            f" It learned from {run['teacher']}'s logits as well as the labels (teacher weight "
            f"{run['distillation_weight']:g}, temperature {run['temperature']:g})."
        )
    return text


_MARKDOWN = _environment(html=False)
_HTML = _environment(html=True)


def build_markdown(info: dict) -> str:
    """The build's report for a person reading text, from its record."""
    return _MARKDOWN.get_template("build.md").render(info=info)


def build_html(info: dict) -> str:
    """The build's page, from its record, with its figures."""
    from generator.rendering import charts

    layer_errors = info["layer_errors"]
    accuracy = info["accuracy"]
    figures = {
        "fit": charts.fit_chart(info["boards"]) if info["boards"] else None,
        "cycles": {
            key: charts.cycles_chart(key, folded_layers(vela["layers"]))
            for key, vela in info["vela"].items()
        },
        "clipping": charts.clipping_chart(info["clipping"]["tensors"])
        if info["clipping"]["tensors"]
        else None,
        "layer_errors": charts.layer_error_chart(layer_errors["layers"])
        if layer_errors and layer_errors["layers"]
        else None,
        "runtimes": charts.runtimes_chart(info["runtimes"], info["fidelity"]),
        "training": charts.training_chart(info["training"]) if info["training"] else None,
        "accuracy": charts.accuracy_chart(accuracy) if accuracy else None,
        "confusion": {
            name: charts.confusion_chart(name, head) for name, head in accuracy["heads"].items()
        }
        if accuracy
        else {},
    }
    return _HTML.get_template("build.html").render(info=info, figures=_markup(figures))


def _compare_values(info: dict) -> dict[str, Any]:
    """What both comparison pages show beyond the record: each mode's ratios to float32, its
    scores and its memory on each board (`compare_record.mode_figures`)."""
    return {
        "info": info,
        "modes": compare_record.mode_figures(info),
        "score": compare_record.score_name(info),
        "titles": compare_record.target_titles(info),
    }


def compare_markdown(info: dict) -> str:
    """The comparison for a person reading text: the recommendation first, then the tables."""
    return _MARKDOWN.get_template("compare.md").render(**_compare_values(info))


def compare_html(info: dict) -> str:
    """The comparison's page, with a chart of size, host latency, accuracy and board memory."""
    from generator.rendering import charts

    values = _compare_values(info)
    chart = None
    if any(not mode.row["error"] for mode in values["modes"]):
        chart = charts.compare_chart(
            modes=values["modes"],
            heads=info["model"]["heads"],
            targets=[target["key"] for target in info["targets"]],
            reference=info["reference"],
            score=values["score"],
        )
    return _HTML.get_template("compare.html").render(**values, figure=_markup(chart))


def _sweep_values(info: dict) -> dict[str, Any]:
    ok = [row for row in info["variants"] if row["status"] == "ok"]
    return {
        "info": info,
        "ok": ok,
        "failed": [row for row in info["variants"] if row["status"] != "ok"],
        "targets": sweep_record.target_keys(info),
        "micro": " and ".join(MICRO_TITLES[r] for r in sweep_record.micro_runtimes(info)),
        "substituted": "litert_reference" in sweep_record.micro_runtimes(info),
        "heads": sweep_record.head_names(info),
        "measured": any(row["accuracy"] for row in ok),
    }


def sweep_markdown(info: dict) -> str:
    """The sweep's ranked table for a person reading text."""
    return _MARKDOWN.get_template("sweep.md").render(**_sweep_values(info))


def sweep_html(info: dict) -> str:
    """The sweep's page: the ranked table and the Pareto plot, whose axes are
    `sweep_record`'s ranking figures."""
    from generator.rendering import charts

    values = _sweep_values(info)
    figure = charts.pareto_chart(values["ok"], micro=values["micro"]) if values["ok"] else None
    return _HTML.get_template("sweep.html").render(**values, figure=_markup(figure))


def _markup(figures):
    """Mark the SVG text as safe HTML, through nested dictionaries."""
    if isinstance(figures, dict):
        return {key: _markup(value) for key, value in figures.items()}
    return None if figures is None else Markup(figures)
