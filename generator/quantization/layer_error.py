"""Per-layer error of the full-integer model, measured by TensorFlow's quantization debugger on
the held-out images: where quantization hurts, so a user knows what to keep float.

For each quantized operator the debugger runs the float operator on the same (dequantized)
inputs as the integer one, so a layer's figures are its own error, not the error every layer
before it passed on:

- `rmse_steps`: root-mean-square difference between the float and the dequantized integer
  output, in quantization steps of the output (rounding alone gives about 0.29);
- `clipped`: the share of the float operator's output values outside the range the integer
  output can hold (calibration saw a smaller range than these images need).

Layers are named with the Keras layer a user recognises (`convert.tensor_layers`); layers in
`quantization.keep_float` are float and have no figures. The debugger calibrates on the same
images the conversion does, so its integer operators are the build's (for a QAT build, those of
post-training quantization of the float model).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from generator.config.schema import QuantizationConfig
from generator.engines.tflite_file import read_tflite
from generator.quantization.convert import (
    float_samples,
    make_converter,
    quantization_debugger,
    tensor_layers,
)
from generator.support.quiet import muted


@dataclass(frozen=True)
class LayerError:
    layer: str  # the Keras layer
    operator: str  # the TFLite operator
    tensor: str  # its output tensor's name in the .tflite
    rmse_steps: float
    clipped: float
    scale: float  # the output's quantization step


def _clipped_share(float_values, quantized, scale, zero_point) -> float:
    """The share of float outputs beyond the int8 output's range (half a step of slack)."""
    low = (-128 - zero_point - 0.5) * scale
    high = (127 - zero_point + 0.5) * scale
    values = np.asarray(float_values)
    return float(np.mean((values < low) | (values > high)))


def layer_errors(
    *,
    model,
    calibration_pixels: np.ndarray,
    held_out_pixels: np.ndarray,
    input_range: tuple[float, float],
    quantization: QuantizationConfig,
    heads: list[str],
) -> tuple[LayerError, ...]:
    """Every quantized operator's own error on `held_out_pixels`, worst first."""
    converter, _, _ = make_converter(
        model=model,
        calibration_pixels=calibration_pixels,
        input_range=input_range,
        quantization=quantization,
        heads=heads,
    )
    with muted():
        debugger, _ = quantization_debugger(
            converter=converter,
            model=model,
            heads=heads,
            kept=quantization.keep_float,
            debug_dataset=lambda: float_samples(held_out_pixels, input_range),
            metrics={"clipped": _clipped_share},
        )
        debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    layers = tensor_layers(read_tflite(debugger.calibrated_model), model, heads)
    found = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"])
        mean_squared = float(row["mean_squared_error"])
        if not scale or math.isnan(mean_squared):
            continue
        found.append(
            LayerError(
                layer=layers.get(row["tensor_name"], row["tensor_name"]),
                operator=row["op_name"],
                tensor=row["tensor_name"],
                rmse_steps=math.sqrt(mean_squared) / scale,
                clipped=float(row["clipped"]),
                scale=scale,
            )
        )
    return tuple(sorted(found, key=lambda e: -e.rmse_steps))
