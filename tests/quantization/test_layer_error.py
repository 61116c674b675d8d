"""Per-layer error (TensorFlow's quantization debugger) and `quantization.keep_float`, on the
trained digits model with one layer made deliberately hard to quantize."""

import dataclasses

import numpy as np
import pytest
from conftest import digit_images, digits_model_config, digits_output_sqnr

from generator.config.schema import QuantizationConfig
from generator.engines.tflite_file import read_tflite
from generator.errors import UserError
from generator.model.build import build_model
from generator.quantization.convert import convert_to_tflite, tensor_layers
from generator.quantization.layer_error import layer_errors

HEADS = ["digit", "parity"]
PLAIN = QuantizationConfig(io_dtype="uint8", per_channel=True)


def _sabotaged(weights):
    """The digits model with `conv_pw_5` made one that int8 weights cannot hold: the channel its
    first input carries is switched off (batch normalization scale and shift 0, so it is 0 after
    the ReLU), and that input gets a weight 100 times the largest in every output channel. The
    float model computes exactly what it did; per-channel int8 weights now round every other
    weight of the layer to about 0."""
    model = build_model(digits_model_config(weights))
    norm = model.get_layer("conv_dw_5_bn")
    gamma, beta, mean, variance = norm.get_weights()
    gamma[0] = beta[0] = 0
    norm.set_weights([gamma, beta, mean, variance])
    conv = model.get_layer("conv_pw_5")
    (kernel,) = conv.get_weights()
    kernel[0, 0, 0, :] = 100 * np.abs(kernel).max()
    conv.set_weights([kernel])
    return model


def test_the_worst_layer_is_found_and_keeping_it_float_repairs_the_model(digits_model_weights):
    model = _sabotaged(digits_model_weights)
    pixels, _ = digit_images()
    calibration, held_out = pixels[1500:1550], pixels[1550:1600]
    errors = layer_errors(
        model=model,
        calibration_pixels=calibration,
        held_out_pixels=held_out,
        input_range=(0.0, 1.0),
        quantization=PLAIN,
        heads=HEADS,
    )
    worst, runner_up = errors[0], errors[1]
    assert worst.layer == "conv_pw_5" and worst.operator == "CONV_2D"
    assert worst.rmse_steps > 5 * runner_up.rmse_steps
    assert all(0 <= e.clipped <= 1 for e in errors)
    assert [e.rmse_steps for e in errors] == sorted((e.rmse_steps for e in errors), reverse=True)

    plain = convert_to_tflite(model, calibration, (0.0, 1.0), PLAIN, heads=HEADS)
    kept = dataclasses.replace(PLAIN, keep_float=("conv_pw_5",))
    mixed = convert_to_tflite(model, calibration, (0.0, 1.0), kept, heads=HEADS)
    assert (
        digits_output_sqnr(model, mixed, held_out) > digits_output_sqnr(model, plain, held_out) + 10
    )

    # The kept layer really is float in the .tflite, and nothing else is.
    tflite = read_tflite(mixed)
    layers = tensor_layers(tflite, model, HEADS)
    float_layers = {
        layers.get(tensor, tensor) for op, tensor in tflite.float_operators() if op != "DEQUANTIZE"
    }
    assert float_layers == {"conv_pw_5"}
    assert [t.dtype for t in (*tflite.inputs, *tflite.outputs)] == ["uint8"] * 3
    assert tflite.operator_counts()["QUANTIZE"] >= 1

    # The kept layer leaves the table; what remains is rounding.
    repaired = layer_errors(
        model=model,
        calibration_pixels=calibration,
        held_out_pixels=held_out,
        input_range=(0.0, 1.0),
        quantization=kept,
        heads=HEADS,
    )
    assert "conv_pw_5" not in {e.layer for e in repaired}
    assert repaired[0].rmse_steps < worst.rmse_steps / 5


def test_keep_float_by_operator_type(digits_model_weights):
    model = build_model(digits_model_config(digits_model_weights))
    pixels, _ = digit_images()
    kept = dataclasses.replace(PLAIN, keep_float=("MEAN",))
    tflite = read_tflite(convert_to_tflite(model, pixels[:30], (0.0, 1.0), kept, heads=HEADS))
    floats = {op for op, _ in tflite.float_operators()} - {"DEQUANTIZE"}
    assert floats == {"MEAN"}


@pytest.mark.parametrize(
    ("kept", "fragment"),
    [
        (("conv_pw5",), "'conv_pw5' is no layer of the model: did you mean 'conv_pw_5'?"),
        (("conv_pw_5_relu",), "has no operator of its own"),
        (("SOFTMAX",), "the model has no SOFTMAX operator"),
    ],
)
def test_keep_float_names_are_checked(digits_model_weights, kept, fragment):
    model = build_model(digits_model_config(digits_model_weights))
    pixels, _ = digit_images()
    quantization = dataclasses.replace(PLAIN, keep_float=kept)
    with pytest.raises(UserError, match=r"quantization\.keep_float") as error:
        convert_to_tflite(model, pixels[:10], (0.0, 1.0), quantization, heads=HEADS)
    assert fragment in str(error.value)
