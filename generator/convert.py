"""Convert stage: TensorFlow Lite converter adapter, float Keras model -> fully integer .tflite.

int8 inside, `io_dtype` at the input and every output, integer-only operators. The converter
quietly keeps float operators it cannot quantize (SIN, CUMSUM, ...) even when asked for
integer-only builtins, and raises for operators TFLite lacks altogether; either way the build
fails with the Keras layers named, read from the tensor names (which carry the layer's name
scope) or from the traced graph.

The input's quantization must mean exactly "raw pixels in": scale `(hi - lo) / 255` and the
zero point that maps pixel 0 to `lo`. The converter takes the input's range from the
calibration data, so images that never reach pure black or white would shrink it. We therefore
set one element of the first calibration image to `lo` and one to `hi` (two values out of
`samples * H * W * C`), which pins the observed range to `input_range` exactly; the result is
checked after conversion.

Output i of the .tflite is the i-th head, named after it. The converter is given a function
returning the heads as a tuple in config order, and converts it without the SavedModel detour
(`experimental_lower_to_saved_model = False`, about half the convert time): its outputs are then
the function's output nodes `Identity`, `Identity_1`, ... Those names, not positions, say which
head each output is; `tflite_file.with_outputs` then puts them in head order, names each tensor
after its head and writes a `serving_default` signature with the same names. The result is
checked by reading it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import keras
import numpy as np
from tensorflow.lite.python.convert_phase import ConverterError

from generator.build import INPUT_NAME, all_layers
from generator.calibrate import pixels_to_float
from generator.config import QuantizationConfig
from generator.errors import UserError
from generator.quiet import muted
from generator.tflite_file import TfliteModel, read_tflite, with_outputs

SIGNATURE_KEY = "serving_default"


def convert_to_tflite(
    model,
    calibration_pixels: np.ndarray,
    input_range: tuple[float, float],
    quantization: QuantizationConfig,
    *,
    heads: list[str],
) -> bytes:
    """Quantize `model` (batch size 1, dict outputs) on `calibration_pixels` (uint8, N×H×W×C);
    output i is `heads[i]`, named after it."""
    import tensorflow as tf

    shape = (1, *calibration_pixels.shape[1:])

    def heads_in_order(image):
        outputs = model(image, training=False)
        return tuple(outputs[name] for name in heads)

    function = tf.function(
        heads_in_order, input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]
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

    concrete = function.get_concrete_function()
    layer_names = {layer.name for layer in all_layers(model)}
    with muted():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], variables)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
        converter._experimental_disable_per_channel = not quantization.per_channel
        converter.experimental_lower_to_saved_model = False
        try:
            content = converter.convert()
        except ConverterError as error:
            op_types = set(re.findall(r"'tf\.(\w+)' op", str(error)))
            culprits = [
                (op.type, _layer_of(op.name, layer_names))
                for op in concrete.graph.get_operations()
                if op.type in op_types
            ]
            if not culprits:
                raise
            raise UserError(
                f"model: {_describe(culprits)} cannot be converted to TensorFlow Lite "
                "integer operators: replace those layers"
            ) from None
    # The DEQUANTIZE operators the converter inserts only feed the float ones: name those.
    float_operators = [
        (op, tensor) for op, tensor in read_tflite(content).float_operators() if op != "DEQUANTIZE"
    ]
    if float_operators:
        culprits = [(op, _layer_of(tensor, layer_names)) for op, tensor in float_operators]
        raise UserError(
            f"model: {_describe(culprits)} stay float after int8 conversion; the NPU and "
            "integer-only firmware need integer operators: replace those layers"
        )
    content = with_outputs(
        content, _head_positions(content, heads), heads, INPUT_NAME, SIGNATURE_KEY
    )
    _check_io(content, heads, input_range, quantization.io_dtype)
    return content


def _head_positions(content: bytes, heads: list[str]) -> list[int]:
    """For each head k, the position of the converter's output `Identity[_k]`.

    Heads that compute exactly the same values (the same weights) come out as one tensor, which
    cannot carry two names: that is refused.
    """
    outputs = read_tflite(content).outputs
    indices = [t.index for t in outputs]
    names = [t.name for t in outputs]
    shared = [
        heads[k]
        for k, (index, name) in enumerate(zip(indices, names, strict=True))
        if indices.count(index) > 1 or names.count(name) > 1
    ]
    if shared:
        raise UserError(
            f"model.heads: heads {', '.join(shared)} compute identical outputs, which the "
            "converter merges into one tensor: give each head its own weights"
        )
    expected = ["Identity", *(f"Identity_{k}" for k in range(1, len(heads)))]
    if sorted(names) != sorted(expected):
        raise RuntimeError(f"converter named the outputs {names}, expected {expected}")
    return [names.index(name) for name in expected]


def tensor_layers(tflite: TfliteModel, model, heads: list[str]) -> dict[str, str]:
    """The Keras layer a user recognises for each operator output of the .tflite, by tensor name.

    The converter names a tensor after the Keras ops fused into it
    (`mobilenet_v1_1/conv_pw_13_relu_1/Relu6;mobilenet_v1_1/conv_pw_13_1/convolution`): the
    layer named is the one with weights among them (`conv_pw_13`), else the first. Tensors the
    converter names itself (`Identity_11`, the head's Dense) take the layer of the head output
    they lead to. Vela keeps these tensor names, so its per-layer rows map the same way.
    """
    layers = all_layers(model)
    names = {layer.name for layer in layers}
    weighted = {
        layer.name
        for layer in layers
        if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    }
    found = {}
    for op in tflite.operators:
        for index in op.outputs:
            name = tflite.tensors[index].name
            parts = [_layer_of(part, names) for part in name.split(";")]
            known = [part for part in parts if part in names]
            with_weights = [part for part in known if part in weighted]
            if with_weights or known:
                found[name] = (with_weights or known)[0]
    producers = {index: op for op in tflite.operators for index in op.outputs}
    for head, output in zip(heads, tflite.outputs, strict=True):
        layer = model.output[head]._keras_history.operation.name
        index = output.index
        while index in producers and tflite.tensors[index].name not in found:
            found[tflite.tensors[index].name] = layer
            index = producers[index].inputs[0]
    return found


def _layer_of(tensor_name: str, layer_names: set[str]) -> str:
    """The innermost Keras layer named in a tensor's scope, e.g. 'odd' in 'model/odd_1/Sin'."""
    found = tensor_name
    for part in tensor_name.split("/"):
        if part in layer_names or re.sub(r"_\d+$", "", part) in layer_names:
            found = part if part in layer_names else re.sub(r"_\d+$", "", part)
    return found


def _describe(culprits: list[tuple[str, str]]) -> str:
    """'layer 'odd' (SIN), layer 'other' (CUMSUM)', each layer once."""
    by_layer: dict[str, set[str]] = {}
    for op, layer in culprits:
        by_layer.setdefault(layer, set()).add(op)
    return ", ".join(
        f"layer '{layer}' ({', '.join(sorted(ops))})" for layer, ops in by_layer.items()
    )


def input_quantization(input_range: tuple[float, float], io_dtype: str) -> tuple[float, int]:
    """The (scale, zero point) under which the input's integers are raw pixel values."""
    lo, hi = input_range
    scale = (hi - lo) / 255
    zero_point = round(-lo / scale) + (-128 if io_dtype == "int8" else 0)
    return scale, zero_point


def _check_io(
    content: bytes, heads: list[str], input_range: tuple[float, float], io_dtype: str
) -> None:
    tflite = read_tflite(content)
    if [t.name for t in tflite.outputs] != heads or tflite.signature_outputs != {
        name: t.index for name, t in zip(heads, tflite.outputs, strict=True)
    }:
        raise RuntimeError(f"outputs {[t.name for t in tflite.outputs]} are not the heads {heads}")
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
