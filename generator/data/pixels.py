"""Pixels to model inputs: what the float network and each kind of .tflite input take for the
same uint8 pixels, so that every stage feeds every model the same image.

The float network sees `lo + p * (hi - lo) / 255` (`calibration.input_range`); an 8-bit
.tflite input takes raw pixels (minus 128 for int8, `quantization.convert` guarantees that
meaning), an int16 input the float values quantized with its own scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from generator.engines.tflite_file import TensorInfo


def pixels_to_float(pixels: np.ndarray, input_range: tuple[float, float]) -> np.ndarray:
    """What the float network sees for uint8 pixels: `lo + p * (hi - lo) / 255`, as float32."""
    lo, hi = input_range
    return (lo + pixels.astype(np.float32) * np.float32((hi - lo) / 255)).astype(np.float32)


def pixels_to_model_input(
    pixels: np.ndarray, model_input: TensorInfo, input_range: tuple[float, float]
) -> np.ndarray:
    """What the .tflite input takes for uint8 pixels.

    An 8-bit input takes raw pixels (minus 128 for int8, `convert` guarantees that meaning); an
    int16 input (int16x8 mode) the float input quantized with its own scale, as firmware would;
    a float input the float values the Keras model sees.
    """
    if model_input.dtype == "uint8":
        return pixels
    if model_input.dtype == "int8":
        return (pixels.astype(np.int16) - 128).astype(np.int8)
    values = pixels_to_float(pixels, input_range)
    if model_input.dtype == "float32":
        return values
    quantized = np.round(values / model_input.scale) + model_input.zero_point
    low, high = integer_limits(model_input.dtype)
    return np.clip(quantized, low, high).astype(model_input.dtype)


def integer_limits(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)
