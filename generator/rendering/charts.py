"""The HTML report's figures, drawn with Matplotlib and returned as inline SVG text.

Why Matplotlib as SVG, and not Plotly or Vega-Lite: the report must open offline and be small
enough to mail. Plotly's charts are interactive (hover, zoom), but each page would carry
plotly.min.js, about 4.7 MB; Altair inlines Vega, Vega-Lite and vega-embed (about 1 MB) and
needs the vl-convert package (a bundled JavaScript engine) to do it. The figures here are bar
charts of a few dozen rows, curves of at most a few hundred epochs and small matrices: every
label fits on the figure, so hovering adds little. Inline SVG needs no script at all (nothing
to load, nothing to fail in the browser's console), keeps its text as text
(`svg.fonttype: none`: layer names and figures can be searched and copied), scales sharply,
and is byte-identical from one render to the next (a fixed hash salt per figure, no date).
The exact numbers stay in the tables beside each figure.

Every function takes a part of the report's JSON dictionary and draws it as it is; the only
arithmetic is the bar length of a board's fit (needed / budget). A figure that needs a derived
value (a comparison's size relative to float32) is handed it by the caller, from the function
the Markdown uses, so the page and the Markdown cannot disagree.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from generator.records import sweep_record
from generator.records.policy import LAYER_ERROR_WARNING_STEPS, MICRO_TITLES, RUNTIME_TITLES

if TYPE_CHECKING:
    from generator.records.compare_record import ModeFigures

_STYLE = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
}

# One colour per model or runtime, the same in every figure.
FLOAT_COLOUR = "#7f7f7f"
RUNTIME_COLOURS = {
    "tflite_micro": "#1f77b4",
    "litert_reference": "#1f77b4",  # it stands in for TFLite Micro: never beside it
    "litert_builtin": "#ff7f0e",
    "litert_default": "#2ca02c",
}
_FITS, _MISFITS, _CPU = "#2ca02c", "#d62728", "#d62728"
# A layer's own error from rounding alone: a uniform error of one step has an RMS of 1/sqrt(12).
_ROUNDING_STEPS = 12**-0.5
# A comparison's colours: deployable modes and host formats, then one per head and per target.
_DEPLOYABLE, _HOST = "#1f77b4", FLOAT_COLOUR
_HEAD_COLOURS = ("#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_TARGET_COLOURS = ("#1f77b4", "#17becf", "#9467bd", "#8c564b")
# Inches: at the SVG's 72 points per inch, 9.5 inches fill the page's 950-pixel column.
_WIDTH = 9.5
_ROW = 0.2


def _svg(figure: Figure, key: str) -> str:
    """The figure as an `<svg>` element; `key` salts its element ids, so that several figures
    share one page without clashing ids and each renders the same bytes every time."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": key}):
        figure.savefig(
            buffer,
            format="svg",
            bbox_inches="tight",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buffer.getvalue()
    return text[text.index("<svg") :]


@matplotlib.rc_context(_STYLE)
def fit_chart(boards: dict) -> str:
    """Per board and placement, SRAM and flash needed as a share of the budget, labelled with
    the bytes; the recommended placement starred."""
    rows = []
    for name, board in boards.items():
        for placement in board["placements"]:
            mode = placement["memory_mode"]
            star = " ★" if mode == board["recommended"] else ""
            for resource, key in (("SRAM", "sram"), ("flash", "flash")):
                rows.append(
                    (
                        f"{name} {mode}{star} {resource}",
                        placement[f"{key}_needed_bytes"],
                        placement[f"{key}_budget_bytes"],
                    )
                )
    figure = Figure(figsize=(_WIDTH, 0.45 * len(rows) + 0.7))
    axes = figure.add_subplot()
    positions = range(len(rows))
    shares = [needed / budget for _, needed, budget in rows]
    axes.barh(positions, [1] * len(rows), color="#eeeeee", height=0.6)
    axes.barh(
        positions,
        shares,
        height=0.6,
        color=[_FITS if share <= 1 else _MISFITS for share in shares],
    )
    for position, (_, needed, budget), share in zip(positions, rows, shares, strict=True):
        axes.text(
            min(share, 1) + 0.01,
            position,
            f"{needed:,} of {budget:,} bytes ({share:.1%})",
            va="center",
        )
    axes.set_yticks(list(positions), [label for label, _, _ in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, max(1.0, *shares) * 1.02)
    axes.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    axes.set_xlabel("share of the board's budget (grey: the whole budget; ★ recommended placement)")
    return _svg(figure, "fit")


@matplotlib.rc_context(_STYLE)
def cycles_chart(target: str, layers: list[dict]) -> str:
    """Vela's cycles per Keras layer, in network order (the rows `report.folded_layers` gives)."""
    figure = Figure(figsize=(_WIDTH, _ROW * len(layers) + 0.9))
    axes = figure.add_subplot()
    positions = range(len(layers))
    axes.barh(
        positions,
        [layer["cycles"] for layer in layers],
        height=0.7,
        color=[
            RUNTIME_COLOURS["tflite_micro"] if layer["target"] == "NPU" else _CPU
            for layer in layers
        ],
    )
    for position, layer in zip(positions, layers, strict=True):
        axes.text(layer["cycles"], position, f" {layer['share']:.1%}", va="center", fontsize=8)
    axes.set_yticks(list(positions), _row_labels(layers), fontsize=8)
    axes.invert_yaxis()
    axes.margins(x=0.12, y=0.01)
    axes.set_xlabel(f"cycles on {target} (Vela's estimate; share of the summed per-layer cycles)")
    axes.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    return _svg(figure, f"cycles-{target}")


@matplotlib.rc_context(_STYLE)
def clipping_chart(tensors: list[dict]) -> str:
    """The share of values at the integer limits per intermediate tensor, most clipped first."""
    figure = Figure(figsize=(_WIDTH, _ROW * len(tensors) + 0.9))
    axes = figure.add_subplot()
    positions = range(len(tensors))
    shares = [tensor["clipped"] for tensor in tensors]
    axes.barh(positions, shares, height=0.7, color=_MISFITS)
    for position, share in zip(positions, shares, strict=True):
        axes.text(share, position, f" {share:.2%}", va="center", fontsize=8)
    labels = [f"{tensor['layer']} ({tensor['operator']})" for tensor in tensors]
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, max(0.01, *shares) * 1.15)
    axes.margins(y=0.01)
    axes.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    axes.set_xlabel("values at an integer limit that is not an activation bound")
    return _svg(figure, "clipping")


@matplotlib.rc_context(_STYLE)
def layer_error_chart(layers: list[dict]) -> str:
    """Each integer operator's own error in output quantization steps (RMS), worst first as the
    JSON lists them, with the share of its float values beyond the integer range written beside
    its bar: a long bar with clipping points at the calibration range, one without at the
    weights or the operator itself. Marked: rounding alone, and the warning threshold."""
    figure = Figure(figsize=(_WIDTH, _ROW * len(layers) + 1.0))
    axes = figure.add_subplot()
    positions = range(len(layers))
    values = [layer["rmse_steps"] for layer in layers]
    warned = max(values) > LAYER_ERROR_WARNING_STEPS
    axes.barh(
        positions,
        values,
        height=0.7,
        color=[
            _MISFITS if value > LAYER_ERROR_WARNING_STEPS else RUNTIME_COLOURS["tflite_micro"]
            for value in values
        ],
    )
    for position, layer in zip(positions, layers, strict=True):
        clipped = f", {layer['clipped']:.2%} clipped" if layer["clipped"] else ""
        axes.text(
            layer["rmse_steps"],
            position,
            f" {layer['rmse_steps']:.2f}{clipped}",
            va="center",
            fontsize=8,
        )
    axes.axvline(_ROUNDING_STEPS, color="black", linewidth=0.8, linestyle=":", zorder=0)
    if warned:
        axes.axvline(LAYER_ERROR_WARNING_STEPS, color=_MISFITS, linewidth=0.8, linestyle="--")
    axes.set_yticks(list(positions), _row_labels(layers), fontsize=8)
    axes.invert_yaxis()
    # From zero, and at least to 0.5 step: errors near rounding's should not look large.
    axes.set_xlim(0, max(0.5, max(values) * 1.3))
    axes.margins(y=0.01)
    axes.set_xlabel(
        "own RMS error in output quantization steps (dotted: rounding alone, 0.29"
        + (f"; dashed: {LAYER_ERROR_WARNING_STEPS:g}, warned about" if warned else "")
        + ")"
    )
    return _svg(figure, "layer-errors")


@matplotlib.rc_context(_STYLE)
def training_chart(training: dict) -> str:
    """Loss and per-head accuracy per epoch, training dashed and validation solid, with the
    kept epoch marked, and the epoch where a frozen backbone started training."""
    history = training["history"]
    epochs = [record["epoch"] for record in history]
    heads = list(history[0]["accuracy"])
    figure = Figure(figsize=(_WIDTH, 3.4), layout="constrained")
    loss, accuracy = figure.subplots(1, 2)
    loss.plot(epochs, [r["loss"] for r in history], "--", color=FLOAT_COLOUR, label="training")
    loss.plot(epochs, [r["val_loss"] for r in history], color="black", label="validation")
    loss.set_title("loss")
    for index, head in enumerate(heads):
        colour = f"C{index}"
        accuracy.plot(epochs, [r["accuracy"][head] for r in history], "--", color=colour)
        accuracy.plot(epochs, [r["val_accuracy"][head] for r in history], color=colour, label=head)
    accuracy.set_title("top-1 accuracy per head (dashed: training)")
    accuracy.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    frozen = training["frozen_epochs"]
    unfrozen = frozen and len(history) > frozen
    label = f"epoch (dotted: epoch {training['best_epoch']}, kept"
    if unfrozen:
        label += f"; dashed: backbone unfrozen from epoch {frozen + 1}"
    for axes in (loss, accuracy):
        axes.axvline(training["best_epoch"], color="black", linewidth=0.8, linestyle=":")
        if unfrozen:
            axes.axvline(frozen + 0.5, color=FLOAT_COLOUR, linewidth=0.8, linestyle="--")
        axes.set_xlabel(label + ")")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.legend()
    return _svg(figure, "training")


@matplotlib.rc_context(_STYLE)
def accuracy_chart(accuracy: dict) -> str:
    """Top-1 accuracy per head (a panel each): float Keras, TFLite Micro (or what stood in for
    it), and the host runtimes. Dots, not bars: the figures sit close together far from zero,
    where a bar must start."""
    heads, micro = accuracy["heads"], accuracy["quantized_runtime"]
    names = list(heads)
    rows = [
        ("float Keras", FLOAT_COLOUR, lambda head: head["float_top1"]),
        (RUNTIME_TITLES[micro], RUNTIME_COLOURS[micro], lambda head: head["quantized_top1"]),
        *(
            (
                RUNTIME_TITLES[runtime],
                RUNTIME_COLOURS[runtime],
                lambda head, runtime=runtime: head["runtimes"][runtime]["top1"],
            )
            for runtime in heads[names[0]]["runtimes"]
        ),
    ]
    values = {name: [value(heads[name]) for _, _, value in rows] for name in names}
    # One scale for every panel, from the lowest figure to the highest with room for the labels
    # on the right, ticked within 0..100% only.
    low, high = min(min(v) for v in values.values()), max(max(v) for v in values.values())
    pad = max(0.005, (high - low) * 0.1)
    ticks = [t for t in ticker.MaxNLocator(2).tick_values(low, high) if low - pad <= t <= 1]
    figure = Figure(figsize=(_WIDTH, 0.3 * len(rows) + 0.9), layout="constrained")
    panels = figure.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for axes, name in zip(panels, names, strict=True):
        for position, ((_, colour, _), value) in enumerate(zip(rows, values[name], strict=True)):
            axes.plot(value, position, "o", color=colour)
            axes.annotate(
                f"{value:.2%}",
                (value, position),
                xytext=(5, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        axes.set_title(name)
        axes.set_xlim(low - pad, high + 4 * pad)
        axes.set_xticks(ticks)
        axes.margins(y=0.2)
        axes.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        axes.grid(axis="y", color="#eeeeee")
    panels[0].set_yticks(range(len(rows)), [label for label, _, _ in rows])
    panels[0].invert_yaxis()
    return _svg(figure, "accuracy")


@matplotlib.rc_context(_STYLE)
def confusion_chart(name: str, head: dict) -> str:
    """The quantized model's confusion matrix for one head: rows true, columns predicted."""
    labels, matrix = head["labels"], head["confusion_matrix"]
    side = 0.3 * len(labels) + 1.2
    figure = Figure(figsize=(side, side), layout="constrained")
    axes = figure.add_subplot()
    largest = max(max(row) for row in matrix) or 1
    # Shaded from 0, not from the smallest count: a matrix of large counts keeps light cells.
    axes.imshow(matrix, cmap="Blues", interpolation="none", vmin=0, vmax=largest)
    for row, values in enumerate(matrix):
        for column, value in enumerate(values):
            colour = "white" if value > largest / 2 else "black"
            axes.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_yticks(range(len(labels)), labels)
    axes.tick_params(length=0)
    axes.spines[:].set_visible(False)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(name)
    return _svg(figure, f"confusion-{name}")


@matplotlib.rc_context(_STYLE)
def runtimes_chart(runtimes: dict, fidelity: dict) -> str:
    """Per head: each host runtime's largest difference from TFLite Micro (or what stood in for
    it) in quantization steps, and every runtime's SQNR against the float model (none when the
    logits are equal)."""
    compared = runtimes["compared"]
    heads = list(fidelity["heads"])
    figure = Figure(figsize=(_WIDTH, 3.2), layout="constrained")
    steps, sqnr = figure.subplots(1, 2)
    width = 0.8 / len(compared)
    for index, (runtime, by_head) in enumerate(compared.items()):
        offset = (index - (len(compared) - 1) / 2) * width
        positions = [position + offset for position in range(len(heads))]
        values = [by_head[head]["max_step_difference"] for head in heads]
        bars = steps.bar(
            positions, values, width, color=RUNTIME_COLOURS[runtime], label=RUNTIME_TITLES[runtime]
        )
        steps.bar_label(bars, fontsize=8)
    steps.set_title(f"largest difference from {MICRO_TITLES[runtimes['reference']]}")
    steps.set_ylabel("quantization steps")
    steps.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    steps.margins(y=0.15)
    series = {fidelity["runtime"]: fidelity["heads"], **compared}
    width = 0.8 / len(series)
    for index, (runtime, by_head) in enumerate(series.items()):
        offset = (index - (len(series) - 1) / 2) * width
        points = [
            (position + offset, by_head[head]["sqnr_db"])
            for position, head in enumerate(heads)
            if by_head[head]["sqnr_db"] is not None
        ]
        bars = sqnr.bar(
            [p for p, _ in points],
            [value for _, value in points],
            width,
            color=RUNTIME_COLOURS[runtime],
            label=RUNTIME_TITLES[runtime],
        )
        sqnr.bar_label(bars, fmt="%.1f", fontsize=8)
    sqnr.set_title("SQNR against the float model")
    sqnr.set_ylabel("dB (higher: closer)")
    sqnr.margins(y=0.15)
    for axes in (steps, sqnr):
        axes.set_xticks(range(len(heads)), heads)
    handles, labels = sqnr.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    return _svg(figure, "runtimes")


@matplotlib.rc_context(_STYLE)
def compare_chart(
    *, modes: list[ModeFigures], heads: list[str], targets: list[str], reference: dict, score: str
) -> str:
    """A comparison at a glance, a row per mode in every panel: the .tflite's size and the host
    latency (bars, labelled with the figure and its ratio to float32), the score per head
    (dots: they sit close together far from zero; dotted, float32's accuracy), and the memory
    each target's compiled model needs on the board (bars; none for a host format). The ratios
    and memory come from `compare_record.mode_figures`, as in the Markdown."""
    names = [mode.row["mode"] for mode in modes]
    made = [mode for mode in modes if not mode.row["error"]]
    figure = Figure(figsize=(_WIDTH, 2 * (0.32 * len(modes) + 1.1)), layout="constrained")
    (size, latency), (scores, board) = figure.subplots(2, 2, sharey=True)
    positions = range(len(modes))
    colours = [_DEPLOYABLE if mode.row["vela"] is not None else _HOST for mode in modes]
    _ratio_bars(
        size,
        [None if mode.row["error"] else mode.row["tflite_bytes"] / 1024 for mode in modes],
        [mode.size_vs_float for mode in modes],
        "{:.1f} KiB",
        colours,
    )
    size.set_title(".tflite size")
    size.set_xlabel("KiB (ratio to float32)")
    _ratio_bars(
        latency,
        [mode.row["host_latency_ms"] for mode in modes],
        [mode.latency_vs_float for mode in modes],
        "{:.3f} ms",
        colours,
    )
    latency.set_title("host latency (LiteRT default interpreter)")
    latency.set_xlabel("ms per image (ratio to float32)")
    floats = reference.get("accuracy")  # none without labels: float32 agrees with itself
    values = [mode.scores[head] for mode in made for head in heads]
    values += list(floats.values()) if floats else []
    low, high = min(values), max(values)
    pad = max(0.005, (high - low) * 0.1)
    for index, head in enumerate(heads):
        colour = _HEAD_COLOURS[index % len(_HEAD_COLOURS)]
        offset = (index - (len(heads) - 1) / 2) * 0.5 / len(heads)
        points = [
            (mode.scores[head], position + offset)
            for position, mode in zip(positions, modes, strict=True)
            if mode.scores
        ]
        scores.plot(*zip(*points, strict=True), "o", color=colour, label=head, markersize=5)
        if floats:
            scores.axvline(floats[head], color=colour, linestyle=":", linewidth=1)
    scores.set_xlim(low - pad, high + pad)
    # Ticked within 0..100% only, as the build page's accuracy chart.
    ticks = ticker.MaxNLocator(2).tick_values(low, high)
    scores.set_xticks([tick for tick in ticks if low - pad <= tick <= min(1, high + pad)])
    scores.xaxis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=1))
    scores.set_title(f"{score} per head" + (" (dotted: float32)" if floats else ""))
    scores.set_xlabel(f"top-1 {score}")
    scores.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), fontsize=8, ncols=len(heads))
    scores.grid(axis="y", color="#eeeeee")
    width = 0.6 / len(targets)
    largest = max(
        (kib for mode in made if mode.board_kib for kib in mode.board_kib.values()), default=1
    )
    for index, target in enumerate(targets):
        colour = _TARGET_COLOURS[index % len(_TARGET_COLOURS)]
        offset = (index - (len(targets) - 1) / 2) * width
        for position, mode in zip(positions, modes, strict=True):
            if mode.board_kib is None:
                continue
            if target not in mode.board_kib:  # Vela's error is in the table
                board.text(0, position + offset, " Vela failed", va="center", fontsize=8)
                continue
            kib, cpu = mode.board_kib[target], mode.row["vela"][target]["cpu_operators"]
            board.barh(position + offset, kib, height=width, color=colour)
            board.annotate(
                f"{kib:.1f}" + (f" ({cpu} on the CPU)" if cpu else ""),
                (kib, position + offset),
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    for position, mode in zip(positions, modes, strict=True):
        if mode.row["error"] or mode.row["vela"] is None:
            note = "failed" if mode.row["error"] else "host format: not compiled"
            board.text(0, position, f" {note}", va="center", color=FLOAT_COLOUR, fontsize=8)
    board.set_xlim(0, largest * 1.35)
    board.set_title("on the board: SRAM + flash + DRAM (Vela)")
    board.set_xlabel("KiB")
    board.legend(
        handles=[
            Patch(color=_TARGET_COLOURS[index % len(_TARGET_COLOURS)], label=target)
            for index, target in enumerate(targets)
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        fontsize=8,
        ncols=len(targets),
    )
    size.set_yticks(list(positions), names)
    size.invert_yaxis()
    return _svg(figure, "compare")


def _ratio_bars(axes, values: list, ratios: list, template: str, colours: list[str]) -> None:
    """A bar per mode labelled with its figure and its ratio to float32; a mode that could not
    be made (its value None) is labelled as failed."""
    for position, (value, ratio, colour) in enumerate(zip(values, ratios, colours, strict=True)):
        if value is None:
            axes.text(0, position, " failed", va="center", color=_MISFITS)
            continue
        axes.barh(position, value, height=0.6, color=colour)
        axes.annotate(
            f"{template.format(value)} ({ratio:.2f}x)",
            (value, position),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
        )
    axes.set_xlim(0, max((v for v in values if v is not None), default=1) * 1.6)


def _row_labels(layers: list[dict]) -> list[str]:
    """Each row's Keras layer, with its operator where several rows share a layer (a head's
    FullyConnected and the Quantize to its output dtype)."""
    names = [layer["layer"] for layer in layers]
    return [
        f"{layer['layer']} ({layer['operator']})"
        if names.count(layer["layer"]) > 1
        else layer["layer"]
        for layer in layers
    ]


@matplotlib.rc_context(_STYLE)
def pareto_chart(rows: list[dict], *, micro: str) -> str:
    """A sweep's variants: the slowest target's latency across, mean accuracy up when measured
    in `micro` (the runtime that stood for a Cortex-M, by its title) (else the largest SRAM need
    up), the largest SRAM need as the marker's area; filled when the variant fits every board,
    hollow when it does not; the Pareto front ringed and named. The figures are
    `sweep_record`'s, the ones it ranks by."""
    measured = any(row["accuracy"] for row in rows)
    figure = Figure(figsize=(_WIDTH, 5.2), layout="constrained")
    axes = figure.add_subplot()
    latency = [sweep_record.slowest_ms(row) for row in rows]
    sram = [sweep_record.largest_sram_kib(row) for row in rows]
    height = [sweep_record.mean_accuracy(row) for row in rows] if measured else sram
    largest = max(sram) or 1.0
    for row, x, y, kib in zip(rows, latency, height, sram, strict=True):
        fits = sweep_record.fits_everywhere(row)
        axes.scatter(
            x,
            y,
            s=40 + 400 * kib / largest,
            facecolors=_FITS if fits else "none",
            edgecolors=_FITS if fits else _MISFITS,
            alpha=0.7,
            linewidths=1.5,
        )
        if row["pareto"]:
            axes.scatter(x, y, s=60 + 400 * kib / largest, facecolors="none", edgecolors="black")
            axes.annotate(row["name"], (x, y), xytext=(6, 6), textcoords="offset points")
    axes.set_xlabel("slowest target's latency, ms (Vela estimate, fastest fitting placement)")
    if measured:
        axes.set_ylabel(f"mean top-1 accuracy over the heads ({micro})")
        axes.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    else:
        axes.set_ylabel("largest SRAM need, KiB (untrained: no accuracy)")
    axes.set_title(
        "Variants: area = SRAM; filled = fits every board, hollow red = does not; "
        "ringed and named = Pareto front"
    )
    return _svg(figure, "pareto")
