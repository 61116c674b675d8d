"""Convert stage: TensorFlow Lite converter adapter, float Keras model -> .tflite in the
`quantization.mode` asked for.

`full_integer` (the build's default): int8 inside, `io_dtype` at the input and every output,
integer-only operators. `int16x8`: 16-bit activations, 8-bit weights, int16 I/O (all the
converter allows for it); activations too small for their fused ReLU6 bound are widened as the
converter widens 8-bit ranges (`tflite_file.with_int16_bounds`). `dynamic_range`, `float16`,
`float32`: host formats with float I/O, made for `compare`. Layers in `quantization.keep_float`
stay float through TensorFlow's quantization debugger (`quantization_debugger`), and the result
is checked: each kept layer float, nothing else.

The converter quietly keeps float operators it cannot quantize (SIN, CUMSUM, ...) even when
asked for integer-only builtins, and raises for operators TFLite lacks altogether; either way
the build fails with the Keras layers named, read from the tensor names (which carry the
layer's name scope) or from the traced graph.

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

import dataclasses
import re
from collections.abc import Callable, Iterator

import keras
import numpy as np
from tensorflow.lite.python.convert_phase import ConverterError

from generator.config.schema import QuantizationConfig
from generator.data.pixels import pixels_to_float
from generator.engines.tflite_file import OPERATOR_NAMES as _OPERATOR_NAMES
from generator.engines.tflite_file import (
    TfliteModel,
    read_tflite,
    with_int16_bounds,
    with_outputs,
    with_uint8_io,
)
from generator.errors import UserError
from generator.model.build import INPUT_NAME
from generator.model.layers import all_layers
from generator.quantization.int16_layers import quantize_layers
from generator.support.quiet import muted
from generator.support.text import nearest

_OPS_SETS = {
    "full_integer": "TFLITE_BUILTINS_INT8",
    "int16x8": "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
}

SIGNATURE_KEY = "serving_default"

# Modes calibrated on the representative images, whose operators are all integer.
INTEGER_MODES = ("full_integer", "int16x8")
_MODE_WORDS = {"full_integer": "int8", "int16x8": "int16x8"}


def convert_to_tflite(
    model,
    calibration_pixels: np.ndarray,
    input_range: tuple[float, float],
    quantization: QuantizationConfig,
    *,
    heads: list[str],
) -> bytes:
    """Quantize `model` (batch size 1, dict outputs) on `calibration_pixels` (uint8, N×H×W×C)
    as `quantization.mode` says; output i is `heads[i]`, named after it."""
    if quantization.int16:
        return _with_int16_layers(model, calibration_pixels, input_range, quantization, heads)
    converter, concrete, layer_names = make_converter(
        model=model,
        calibration_pixels=calibration_pixels,
        input_range=input_range,
        quantization=quantization,
        heads=heads,
    )
    mode = quantization.mode
    kept: tuple[list[str], list[str]] = ([], [])
    with muted():
        try:
            if quantization.keep_float:
                debugger, kept = quantization_debugger(
                    converter=converter,
                    model=model,
                    heads=heads,
                    kept=quantization.keep_float,
                    debug_dataset=None,
                )
                content = _with_io_type(
                    debugger.get_nondebug_quantized_model(), io_dtype(quantization)
                )
            else:
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
                f"{'integer ' if mode in INTEGER_MODES else ''}operators: replace those layers"
            ) from None
        except RuntimeError as error:
            # The calibrator refuses operators it has no 16-bit kernel for (HARD_SWISH).
            unsupported = sorted(
                set(re.findall(r"16x8-bit not yet supported for op: '(\w+)'", str(error)))
            )
            if not unsupported:
                raise
            raise UserError(
                f"model: the TensorFlow Lite converter cannot quantize {', '.join(unsupported)} "
                "to 16-bit activations: use quantization.mode full_integer, or replace the layers "
                "that become those operators"
            ) from None
    if mode in INTEGER_MODES:
        _refuse_float_operators(content, layer_names, mode, kept)
    if mode == "int16x8":
        content = with_int16_bounds(content)
    content = with_outputs(
        content=content,
        order=_head_positions(content, heads),
        names=heads,
        input_name=INPUT_NAME,
        signature_key=SIGNATURE_KEY,
    )
    _check_io(content, heads, input_range, io_dtype(quantization))
    return content


def _with_int16_layers(
    model,
    calibration_pixels: np.ndarray,
    input_range: tuple[float, float],
    quantization: QuantizationConfig,
    heads: list[str],
) -> bytes:
    """The full-integer model with the `quantization.int16` layers at 16-bit activations, made
    by ai-edge-quantizer from this converter's float model (generator/int16_layers.py)."""
    plain = dataclasses.replace(quantization, mode="float32", keep_float=(), int16=())
    float_content = convert_to_tflite(model, calibration_pixels, input_range, plain, heads=heads)
    float_model = read_tflite(float_content)
    int16 = _denied(quantization.int16, float_model, model, heads, "quantization.int16")
    kept = _denied(quantization.keep_float, float_model, model, heads, "quantization.keep_float")
    samples = {
        SIGNATURE_KEY: [
            {INPUT_NAME: sample}
            for (sample,) in float_samples(calibration_pixels, input_range, pin_range=True)
        ]
    }
    content = quantize_layers(
        float_content, samples, int16=int16, keep_float=kept, per_channel=quantization.per_channel
    )
    if io_dtype(quantization) == "uint8":
        content = with_uint8_io(content)
    tflite = read_tflite(content)
    _refuse_float_operators(
        content, {layer.name for layer in all_layers(model)}, "full_integer", kept
    )
    _check_int16(tflite, int16, tensor_layers(float_model, model, heads))
    # The quantizer keeps the float model's signature, which names each output after its head.
    order = [tflite.output_position(head) for head in heads]
    content = with_outputs(
        content=content,
        order=order,
        names=heads,
        input_name=INPUT_NAME,
        signature_key=SIGNATURE_KEY,
    )
    _check_io(content, heads, input_range, io_dtype(quantization))
    return content


def _check_int16(
    tflite: TfliteModel, int16: tuple[list[str], list[str]], layers: dict[str, str]
) -> None:
    """Check that the operators named have int16 outputs and every other computing operator
    int8 ones (the QUANTIZE between them convert); ai-edge-quantizer leaves an operator it has
    no 16-bit kernel for at 8 bits without a word."""
    nodes, operators = int16
    wide, narrow = [], []
    for op in tflite.operators:
        if op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        name = tflite.tensors[op.outputs[0]].name
        dtype = tflite.tensors[op.outputs[0]].dtype
        chosen = name in nodes or op.name in operators
        if chosen and dtype != "int16":
            narrow.append(f"layer '{layers.get(name, name)}' ({op.name})")
        elif not chosen and dtype == "int16":
            wide.append(name)
    if narrow:
        raise UserError(
            f"quantization.int16: ai-edge-quantizer has no 16-bit activations for "
            f"{', '.join(dict.fromkeys(narrow))}: remove it from quantization.int16"
        )
    if wide:
        raise RuntimeError(f"ai-edge-quantizer made {wide} int16 though they were not named")


def make_converter(
    *,
    model,
    calibration_pixels: np.ndarray,
    input_range: tuple[float, float],
    quantization: QuantizationConfig,
    heads: list[str],
):
    """The TensorFlow Lite converter set up for `quantization.mode`, the traced function, and
    the model's layer names."""
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
    concrete = function.get_concrete_function()
    mode = quantization.mode
    with muted():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], variables)
        converter.experimental_lower_to_saved_model = False
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode in INTEGER_MODES:
            converter.representative_dataset = lambda: float_samples(
                calibration_pixels, input_range, pin_range=True
            )
            converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, _OPS_SETS[mode])]
            converter.inference_input_type = tf.as_dtype(io_dtype(quantization))
            converter.inference_output_type = converter.inference_input_type
            converter._experimental_disable_per_channel = not quantization.per_channel
    return converter, concrete, {layer.name for layer in all_layers(model)}


def float_samples(
    pixels: np.ndarray, input_range: tuple[float, float], pin_range: bool = False
) -> Iterator[list[np.ndarray]]:
    """The images as the converter's representative dataset yields them; with `pin_range`,
    the first holds `lo` and `hi` once each (see the module docstring)."""
    for index, image in enumerate(pixels):
        sample = pixels_to_float(image[None], input_range)
        if pin_range and index == 0:
            sample.reshape(-1)[0], sample.reshape(-1)[-1] = input_range
        yield [sample]


def quantization_debugger(
    *,
    converter,
    model,
    heads: list[str],
    kept: tuple[str, ...],
    debug_dataset: Callable[[], Iterator[list[np.ndarray]]] | None = None,
    metrics: dict[str, Callable] | None = None,
):
    """TensorFlow's quantization debugger over a full-integer `converter`, with the Keras
    layers or operator types `kept` left float (its deny-lists); also the denied tensor names
    and operator types.

    Selective quantization goes through the debugger because it is the converter's own
    mechanism: the same calibration as a plain conversion, the same tensor names, and no new
    dependency (Google's ai-edge-quantizer also takes per-operator recipes, but calibrates
    differently and would pin ai-edge-litert to one release). Its models have float I/O;
    `_with_io_type` gives them ours. `debug_dataset` (default: the calibration samples) is what
    `run()` measures, with `metrics` (name -> f(float, quantized, scale, zero point)) per layer.
    """
    import tensorflow as tf

    converter.inference_input_type = converter.inference_output_type = tf.float32
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=debug_dataset or converter.representative_dataset
    )
    calibrated = read_tflite(debugger.calibrated_model)
    nodes, operators = _denied(kept, calibrated, model, heads, "quantization.keep_float")
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics=metrics,
        denylisted_nodes=nodes or None,
        denylisted_ops=operators or None,
    )
    return debugger, (nodes, operators)


def io_dtype(quantization: QuantizationConfig) -> str:
    """The input's and outputs' type: `quantization.io_dtype` for a full-integer model; int16x8
    models take and give int16 (the converter allows nothing narrower); host formats float32."""
    return {"full_integer": quantization.io_dtype, "int16x8": "int16"}.get(
        quantization.mode, "float32"
    )


def _denied(
    kept: tuple[str, ...], calibrated: TfliteModel, model, heads: list[str], field: str
) -> tuple[list[str], list[str]]:
    """The debugger's deny-lists for `kept`: tensor names of the Keras layers named, and the
    operator types named (upper case, e.g. MEAN)."""
    operators = [name for name in kept if name in _OPERATOR_NAMES]
    present = {op.name for op in calibrated.operators}
    for name in operators:
        if name not in present:
            raise UserError(
                f"{field}: the model has no {name} operator: its operators are "
                f"{', '.join(sorted(present))}"
            )
    tensors = tensor_layers(calibrated, model, heads)
    owners = set(tensors.values())
    nodes = []
    for name in kept:
        if name in operators:
            continue
        if name not in owners:
            hint = nearest(name, sorted(owners))
            known = {layer.name for layer in all_layers(model)}
            problem = (
                "has no operator of its own in the converted model (an activation or batch "
                "normalization is fused into the layer before it)"
                if name in known
                else "is no layer of the model"
            )
            raise UserError(
                f"{field}: {name!r} {problem}: "
                + (f"did you mean {hint!r}?" if hint else "name a layer with weights")
            )
        nodes += [tensor for tensor, layer in tensors.items() if layer == name]
    return nodes, operators


def _with_io_type(content: bytes, dtype: str) -> bytes:
    """A float-I/O quantized model with `dtype` input and outputs: the converter's own helper,
    which folds the edge QUANTIZE/DEQUANTIZE into the input and output tensors."""
    import tensorflow as tf
    from tensorflow.lite.python import util

    return util.modify_model_io_type(content, tf.as_dtype(dtype), tf.as_dtype(dtype))


def _refuse_float_operators(
    content: bytes, layer_names: set[str], mode: str, kept: tuple[list[str], list[str]]
) -> None:
    """Refuse float operators other than the kept ones (`kept`: tensor names and operator
    types), and check that each kept one did stay float."""
    nodes, operators = kept
    tflite = read_tflite(content)
    # The DEQUANTIZE operators the converter inserts only feed the float ones: name those.
    float_operators = [
        (op, tensor)
        for op, tensor in tflite.float_operators()
        if op != "DEQUANTIZE" and op not in operators and tensor not in nodes
    ]
    made_float = {tensor for _, tensor in tflite.float_operators()}
    lost = [tensor for tensor in nodes if tensor not in made_float]
    if lost:
        raise RuntimeError(f"the converter quantized {lost} though they were denied")
    if float_operators:
        culprits = [(op, _layer_of(tensor, layer_names)) for op, tensor in float_operators]
        raise UserError(
            f"model: {_describe(culprits)} stay float after {_MODE_WORDS[mode]} conversion; the "
            "NPU and integer-only firmware need integer operators: replace those layers"
        )


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
    content: bytes, heads: list[str], input_range: tuple[float, float], dtype: str
) -> None:
    tflite = read_tflite(content)
    if [t.name for t in tflite.outputs] != heads or tflite.signature_outputs != {
        name: t.index for name, t in zip(heads, tflite.outputs, strict=True)
    }:
        raise RuntimeError(f"outputs {[t.name for t in tflite.outputs]} are not the heads {heads}")
    (model_input,) = tflite.inputs
    if model_input.dtype != dtype:
        raise RuntimeError(f"converter gave a {model_input.dtype} input, expected {dtype}")
    if dtype in ("uint8", "int8"):
        scale, zero_point = input_quantization(input_range, dtype)
        if model_input.zero_point != zero_point or not np.isclose(
            model_input.scale, scale, rtol=1e-6
        ):
            raise RuntimeError(
                f"converter gave input scale {model_input.scale} zero point "
                f"{model_input.zero_point}; expected {scale} {zero_point}"
            )
    wrong = [t.name for t in tflite.outputs if t.dtype != dtype]
    if wrong:
        raise RuntimeError(f"converter left outputs {wrong} not {dtype}")
