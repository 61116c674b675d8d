"""Convert stage: TensorFlow Lite converter adapter, float Keras model -> fully integer .tflite.

int8 inside, `io_dtype` at the input and every output, integer-only operators (the converter
fails rather than leave a float operator).

The input's quantization must mean exactly "raw pixels in": scale `(hi - lo) / 255` and the
zero point that maps pixel 0 to `lo`. The converter takes the input's range from the
calibration data, so images that never reach pure black or white would shrink it. We therefore
set one element of the first calibration image to `lo` and one to `hi` (two values out of
`samples * H * W * C`), which pins the observed range to `input_range` exactly; the result is
checked after conversion.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from generator.build import INPUT_NAME
from generator.calibrate import pixels_to_float
from generator.config import QuantizationConfig
from generator.quiet import muted
from generator.tflite_file import read_tflite


def convert_to_tflite(
    model,
    calibration_pixels: np.ndarray,
    input_range: tuple[float, float],
    quantization: QuantizationConfig,
) -> bytes:
    """Quantize `model` (batch size 1) on `calibration_pixels` (uint8, N×H×W×C)."""
    import tensorflow as tf

    shape = (1, *calibration_pixels.shape[1:])
    function = tf.function(
        lambda image: model(image, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)],
    )
    variables = tf.Module()
    variables.tracked = [v.value for v in model.variables]
    io_type = {"uint8": tf.uint8, "int8": tf.int8}[quantization.io_dtype]

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for index, pixels in enumerate(calibration_pixels):
            sample = pixels_to_float(pixels[None], input_range)
            if index == 0:
                sample.reshape(-1)[0], sample.reshape(-1)[-1] = input_range
            yield [sample]

    with muted():
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [function.get_concrete_function()], variables
        )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        converter._experimental_disable_per_channel = not quantization.per_channel
        content = converter.convert()
    _check_io(content, input_range, quantization.io_dtype)
    return content


def input_quantization(input_range: tuple[float, float], io_dtype: str) -> tuple[float, int]:
    """The (scale, zero point) under which the input's integers are raw pixel values."""
    lo, hi = input_range
    scale = (hi - lo) / 255
    zero_point = round(-lo / scale) + (-128 if io_dtype == "int8" else 0)
    return scale, zero_point


def _check_io(content: bytes, input_range: tuple[float, float], io_dtype: str) -> None:
    tflite = read_tflite(content)
    (model_input,) = tflite.inputs
    scale, zero_point = input_quantization(input_range, io_dtype)
    if (
        model_input.dtype != io_dtype
        or model_input.zero_point != zero_point
        or not np.isclose(model_input.scale, scale, rtol=1e-6)
    ):
        raise RuntimeError(
            f"converter gave input {model_input.dtype} scale {model_input.scale} zero point "
            f"{model_input.zero_point}; expected {io_dtype} {scale} {zero_point}"
        )
    wrong = [t.name for t in tflite.outputs if t.dtype != io_dtype]
    if wrong:
        raise RuntimeError(f"converter left outputs {wrong} not {io_dtype}")
