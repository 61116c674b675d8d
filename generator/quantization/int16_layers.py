"""16-bit activations for chosen layers of a full-integer model: the ai-edge-quantizer adapter.

TensorFlow's converter makes int16 activations only for a whole model; Google's ai-edge-quantizer
takes a recipe per operator, so `quantization.int16` goes through it: every operator int8
(8-bit weights, per channel unless `per_channel: false`, asymmetric 8-bit activations, as the
converter makes them), the named ones with symmetric 16-bit activations and 8-bit weights (the
int16x8 scheme Ethos-U and TFLite Micro run), `keep_float` ones not quantized. Where an int16
operator meets an int8 one the quantizer inserts a QUANTIZE that converts between them, so a
tensor is held in 16 bits only between two int16 operators: one layer alone gains its own
arithmetic, a run of layers also the tensors inside the run.

Its defaults are set aside in two places, so that a mixed model means the same as our other
builds: calibration keeps each tensor's minimum and maximum over all images (the quantizer's
default is a moving average of per-image ranges, which would lose the pinned raw-pixel input
range, see convert.py), and a range narrower than 1e-6 is widened as the converter widens it.
The quantizer makes the input and outputs int8 (converting from and to int16 where a named
layer touches them); `tflite_file.with_uint8_io` then gives a uint8 model the converter's uint8
I/O. The graph's operators, tensor names and signature are the float .tflite's, which carries
the head order already.

ai-edge-quantizer pins ai-edge-litert to one release, so it is an optional extra
(`pip install -e '.[int16]'`); only a config that sets `quantization.int16` imports it.
"""

from __future__ import annotations

import re

import numpy as np

from generator.errors import UserError
from generator.support.quiet import muted
from generator.support.text import first_line

_NEAR_ZERO = 1e-6


def quantize_layers(
    float_content: bytes,
    samples: dict[str, list[dict[str, np.ndarray]]],
    *,
    int16: tuple[list[str], list[str]],
    keep_float: tuple[list[str], list[str]],
    per_channel: bool,
) -> bytes:
    """`float_content` quantized on `samples` (per signature key, each sample's inputs by
    name), with int8 I/O.

    `int16` and `keep_float` are (output tensor names, operator types) of the operators given
    16-bit activations and left float; every other operator is int8.
    """
    # Installed: the config is refused without it (config._parse_quantization).
    from ai_edge_quantizer import calibrator, qtyping, quantizer
    from ai_edge_quantizer.utils import qsv_utils

    granularity = qtyping.QuantGranularity.CHANNELWISE
    if not per_channel:
        granularity = qtyping.QuantGranularity.TENSORWISE
    engine = quantizer.Quantizer(float_content)
    engine.add_static_config(".*", "*", 8, 8, granularity)
    nodes, operators = int16
    for regex, operator in _selections(nodes, operators):
        try:
            engine.add_static_config(regex, operator, 16, 8, granularity)
        except ValueError:
            raise UserError(
                f"quantization.int16: ai-edge-quantizer has no 16-bit activations for "
                f"{operator}: remove it from quantization.int16"
            ) from None
    nodes, operators = keep_float
    for regex, operator in _selections(nodes, operators):
        engine.update_quantization_recipe(regex, operator, algorithm_key="no_quantize")
    with muted():
        calibration = calibrator.Calibrator(
            float_content, num_threads=1, qsv_update_func=qsv_utils.min_max_update
        )
        calibration.calibrate(samples, _recipe_manager(engine.get_quantization_recipe()))
        ranges = {name: _widened(qsv) for name, qsv in calibration.get_model_qsvs().items()}
        try:
            result = engine.quantize(ranges, enable_progress_report=False)
        except ValueError as error:
            raise UserError(
                f"quantization.int16: ai-edge-quantizer cannot quantize that selection "
                f"({first_line(error)}): choose other layers, or use quantization.mode: int16x8"
            ) from None
    return bytes(result.quantized_model)


def _widened(qsv: dict) -> dict:
    """A range no narrower than 1e-6, widened around 0 as TensorFlow's converter does
    (`ExpandVerySmallRange`, kNearZeroTolerance): a dead layer's all-zero output would otherwise
    get a scale so small that TFLite Micro refuses the model (a fused ReLU6's 6 overflows int32
    in steps)."""
    if not {"min", "max"} <= qsv.keys() or np.all(qsv["max"] - qsv["min"] > _NEAR_ZERO):
        return qsv
    narrow = qsv["max"] - qsv["min"] <= _NEAR_ZERO
    return qsv | {
        "min": np.where(narrow, np.minimum(qsv["min"], -_NEAR_ZERO / 2), qsv["min"]),
        "max": np.where(narrow, np.maximum(qsv["max"], _NEAR_ZERO / 2), qsv["max"]),
    }


def _selections(nodes: list[str], operators: list[str]) -> list[tuple[str, str]]:
    """(scope regex, operator type) pairs: an operator's scope is its output tensors' names,
    each followed by ';'."""
    return [(f"^{re.escape(node)};$", "*") for node in nodes] + [
        (".*", operator) for operator in operators
    ]


def _recipe_manager(recipe: list[dict]):
    """The calibrator takes a recipe manager, not the Quantizer's recipe."""
    from ai_edge_quantizer import recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    return manager
