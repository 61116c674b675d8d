"""The report as one self-contained HTML page: `<name>_report.html`.

Rendered from the same dictionary as the JSON and the Markdown, by a Jinja2 template
(`templates/build.html`) with the figures of `charts` inlined as SVG. The page has no script
and refers to nothing outside itself (no CDN, no font, no image file), so it opens offline and
can be mailed as one file. A page of another kind is a template of its own beside `build.html`
and a function like `render_html` that gives it its figures: `render_compare_html` renders a
comparison of quantization modes (`compare.html`), `render_sweep_html` a sweep (`sweep.html`).
"""

from __future__ import annotations

import jinja2
from markupsafe import Markup

from generator import charts, compare_report
from generator.report import (
    LAYER_ERROR_WARNING_STEPS,
    LAYER_ERRORS_LISTED,
    LAYER_ERRORS_WITH_INT16,
    RUNTIME_TITLES,
    folded_layers,
    quantized_format,
)

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("generator", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENVIRONMENT.filters |= {
    "bytes": lambda value: f"{value:,} bytes",
    "percent": lambda value, digits=1: f"{value:.{digits}%}",
    "sqnr": lambda value: "exact" if value is None else f"{value:.1f} dB",
}
_ENVIRONMENT.globals |= {
    "runtime_titles": RUNTIME_TITLES,
    "layer_errors_listed": LAYER_ERRORS_LISTED,
    "layer_error_warning_steps": LAYER_ERROR_WARNING_STEPS,
    "layer_errors_with_int16": LAYER_ERRORS_WITH_INT16,
    "quantized_format": quantized_format,
}


def render_html(info: dict) -> str:
    """The build's page, from the report's dictionary (schema_version 2)."""
    layer_errors = info.get("layer_errors")  # absent from a JSON written before it was measured
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
        "accuracy": charts.accuracy_chart(info["accuracy"]["heads"]) if info["accuracy"] else None,
        "confusion": {
            name: charts.confusion_chart(name, head)
            for name, head in info["accuracy"]["heads"].items()
        }
        if info["accuracy"]
        else {},
    }
    return _ENVIRONMENT.get_template("build.html").render(
        info=info,
        figures=_markup(figures),
    )


def render_compare_html(info: dict) -> str:
    """The comparison's page, from the comparison's dictionary (`<name>_compare.json`,
    schema_version 1). The ratios to float32, the scores shown per mode and each board's memory
    come from `compare_report.mode_figures`, the function the Markdown uses, so both pages show
    the same numbers; the recommendation is the record's own."""
    modes = compare_report.mode_figures(info)
    score = compare_report.score_name(info)
    chart = None
    if any(not mode.row["error"] for mode in modes):
        chart = charts.compare_chart(
            modes,
            info["model"]["heads"],
            [target["key"] for target in info["targets"]],
            info["reference"],
            score,
        )
    return _ENVIRONMENT.get_template("compare.html").render(
        info=info,
        modes=modes,
        score=score,
        titles=compare_report.target_titles(info),
        figure=_markup(chart),
    )


def render_sweep_html(info: dict) -> str:
    """The sweep's page, from `sweep.json`'s dictionary (schema_version 1): the ranked table
    and the Pareto plot, whose axes are `sweep_report`'s ranking figures."""
    ok = [row for row in info["variants"] if row["status"] == "ok"]
    return _ENVIRONMENT.get_template("sweep.html").render(
        info=info,
        ok=ok,
        failed=[row for row in info["variants"] if row["status"] != "ok"],
        targets=list(dict.fromkeys(key for row in ok for key in row["targets"])),
        heads=list(dict.fromkeys(h for row in ok for h in (row["accuracy"] or row["fidelity"]))),
        measured=any(row["accuracy"] for row in ok),
        figure=_markup(charts.pareto_chart(ok) if ok else None),
    )


def _markup(figures):
    """Mark the SVG text as safe HTML, through nested dictionaries."""
    if isinstance(figures, dict):
        return {key: _markup(value) for key, value in figures.items()}
    return None if figures is None else Markup(figures)
