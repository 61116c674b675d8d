"""Read a .tflite flatbuffer back (tensors, operators, inputs, outputs, signature names), put
its outputs in a given order under given names, give an int8-I/O model uint8 I/O, and widen
16-bit activations too small for their fused bounds.

Reports are built from what this reads out of the artifact, never from the config. It uses the
flatbuffer schema module that `ai-edge-litert` ships, so it needs no interpreter and can read
Vela's output too (whose `ethos-u` custom operator no interpreter here can run).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
_OPERATOR_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
OPERATOR_NAMES = frozenset(_OPERATOR_NAMES.values())  # every builtin operator type, e.g. MEAN
_ACTIVATION_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items() if k.isupper()}


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True)
class OperatorInfo:
    name: str  # builtin operator name (CONV_2D), or the custom code (ethos-u)
    inputs: tuple[int, ...]  # tensor indices (-1: an optional input left out)
    outputs: tuple[int, ...]
    activation: str  # the fused activation (NONE, RELU, RELU6, ...); NONE where there is none


@dataclass(frozen=True)
class TfliteModel:
    """The facts of one .tflite file (its main subgraph)."""

    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorInfo, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    signature_outputs: dict[str, int]  # signature output name -> tensor index

    def dtype_counts(self) -> Counter[str]:
        return Counter(t.dtype for t in self.tensors)

    def operator_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(op.name for op in self.operators).items()))

    def float_operators(self) -> list[tuple[str, str]]:
        """(operator, output tensor name) for every operator that produces float32."""
        return [
            (op.name, self.tensors[index].name)
            for op in self.operators
            for index in op.outputs
            if self.tensors[index].dtype == "float32"
        ]

    def output_position(self, signature_name: str) -> int:
        """Position in the model's output list of the tensor the signature calls this name."""
        tensor_index = self.signature_outputs[signature_name]
        return [t.index for t in self.outputs].index(tensor_index)


def read_tflite(content: bytes) -> TfliteModel:
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    subgraph = model.subgraphs[0]
    tensors = tuple(_tensor_info(i, t) for i, t in enumerate(subgraph.tensors))
    operators = tuple(
        OperatorInfo(
            name=_operator_name(model.operatorCodes[op.opcodeIndex]),
            inputs=tuple(int(i) for i in op.inputs),
            outputs=tuple(int(i) for i in op.outputs),
            activation=_ACTIVATION_NAMES[
                getattr(op.builtinOptions, "fusedActivationFunction", 0) or 0
            ],
        )
        for op in subgraph.operators
    )
    signature_outputs = {}
    if model.signatureDefs:
        signature_outputs = {
            _text(m.name): int(m.tensorIndex) for m in model.signatureDefs[0].outputs
        }
    return TfliteModel(
        tensors=tensors,
        operators=operators,
        inputs=tuple(tensors[i] for i in subgraph.inputs),
        outputs=tuple(tensors[i] for i in subgraph.outputs),
        signature_outputs=signature_outputs,
    )


def constant_arrays(content: bytes, indices: list[int]) -> dict[int, np.ndarray]:
    """The stored values of constant tensors (weights), by tensor index, in their dtype and
    shape; a tensor without data (an activation) is left out."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    tensors = model.subgraphs[0].tensors
    arrays = {}
    for index in indices:
        tensor = tensors[index]
        data = model.buffers[tensor.buffer].data
        if data is None or not len(data):
            continue
        dtype = np.dtype(_TYPE_NAMES[tensor.type])
        arrays[index] = np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=dtype).reshape(
            tuple(int(d) for d in tensor.shape)
        )
    return arrays


def with_outputs(
    *, content: bytes, order: list[int], names: list[str], input_name: str, signature_key: str
) -> bytes:
    """`content` with output i being its output `order[i]`, named `names[i]`, and one signature
    (`signature_key`) mapping `input_name` and `names` to those tensors.

    Most firmware and host code reads outputs by position, and the converter orders them as it
    likes; this fixes the order and makes every output say what it is, in the tensor name and in
    the signature that LiteRT's signature runner uses. The flatbuffer is packed again with each
    weight buffer 16-byte aligned (the converter aligns to 4; TFLite Micro reads weights in
    place, and Vela aligns to 16 too). Packing is deterministic.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    subgraph = model.subgraphs[0]
    outputs = [int(subgraph.outputs[position]) for position in order]
    subgraph.outputs = outputs
    for tensor_index, name in zip(outputs, names, strict=True):
        subgraph.tensors[tensor_index].name = name
    (input_index,) = subgraph.inputs
    subgraph.tensors[input_index].name = input_name
    model.signatureDefs = [
        schema.SignatureDefT(
            inputs=[schema.TensorMapT(input_name, int(input_index))],
            outputs=[schema.TensorMapT(n, i) for n, i in zip(names, outputs, strict=True)],
            signatureKey=signature_key,
            subgraphIndex=0,
        )
    ]
    return _pack(model, len(content))


def with_uint8_io(content: bytes) -> bytes:
    """`content`, whose input and outputs are int8, with uint8 ones: a QUANTIZE from uint8
    before the input and one to uint8 after each output, as the TensorFlow Lite converter makes
    uint8 I/O (Vela runs them on the NPU). Scales stay, zero points move up by 128, and the
    signature names the new tensors."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    subgraph = model.subgraphs[0]
    quantize = _operator_code(model, schema.BuiltinOperator.QUANTIZE)
    renamed = {}

    def uint8_twin(index: int, suffix: str) -> int:
        tensor = copy.deepcopy(subgraph.tensors[index])
        if tensor.type != schema.TensorType.INT8:
            raise RuntimeError(f"I/O tensor {_text(tensor.name)!r} is not int8")
        tensor.type = schema.TensorType.UINT8
        tensor.name = _text(tensor.name) + suffix
        tensor.quantization.zeroPoint = [int(tensor.quantization.zeroPoint[0]) + 128]
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        subgraph.tensors.append(tensor)
        renamed[index] = len(subgraph.tensors) - 1
        return renamed[index]

    def quantize_op(source: int, target: int) -> schema.OperatorT:
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = quantize, [source], [target]
        return op

    inputs = [int(index) for index in subgraph.inputs]
    outputs = [int(index) for index in subgraph.outputs]
    subgraph.operators = [
        *(quantize_op(uint8_twin(index, "_uint8"), index) for index in inputs),
        *subgraph.operators,
        *(quantize_op(index, uint8_twin(index, "_uint8")) for index in outputs),
    ]
    subgraph.inputs = [renamed[index] for index in inputs]
    subgraph.outputs = [renamed[index] for index in outputs]
    for signature in model.signatureDefs or []:
        for mapping in (*signature.inputs, *signature.outputs):
            mapping.tensorIndex = renamed.get(mapping.tensorIndex, mapping.tensorIndex)
    return _pack(model, len(content))


# The bounds of fused activations that TFLite's kernels quantize into int32 with the output's
# scale when they prepare an operator (`CalculateActivationRangeQuantized`).
_FUSED_BOUNDS = {
    schema.ActivationFunctionType.RELU6: 6.0,
    schema.ActivationFunctionType.RELU_N1_TO_1: 1.0,
}
# Operators whose int16 output keeps its input's scale: a widened input widens them too.
_SAME_SCALE = {
    schema.BuiltinOperator.RESHAPE,
    schema.BuiltinOperator.SQUEEZE,
    schema.BuiltinOperator.PAD,
    schema.BuiltinOperator.MAX_POOL_2D,
}
# Operators whose bias is quantized with the input's scale times the filter's.
_BIASED = {
    schema.BuiltinOperator.CONV_2D,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D,
    schema.BuiltinOperator.FULLY_CONNECTED,
}


def with_int16_bounds(content: bytes) -> bytes:
    """`content` (16-bit activations) with every int16 activation whose scale is too small for
    its fused bound widened until the bound fits, and the biases and same-scale outputs that
    depend on it requantized to match; `content` itself when none is.

    A layer whose outputs stay within a few millionths (a dead ReLU, the shrinking activations
    of an untrained network) gets a scale of 1e-10 or less from the 16-bit calibration, and
    then 6 / scale, a ReLU6's upper bound in steps, overflows int32: TFLite Micro and LiteRT
    refuse to prepare the operator. The 8-bit path never gets there, because the converter
    widens ranges narrower than 1e-6 (`ExpandVerySmallRange`); this is the same widening for
    16 bits. Values that small round to 0 at the widened scale, as they would in 8 bits.
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    subgraph = model.subgraphs[0]
    tensors, operators = subgraph.tensors, subgraph.operators
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    widened: dict[int, tuple[float, float]] = {}  # tensor -> (old scale, new scale)

    def int16_scale(index: int) -> float | None:
        tensor = tensors[index]
        quantization = tensor.quantization
        if tensor.type != schema.TensorType.INT16 or quantization is None:
            return None
        return None if quantization.scale is None else float(quantization.scale[0])

    for op in operators:
        activation = getattr(op.builtinOptions, "fusedActivationFunction", 0) or 0
        if codes[op.opcodeIndex] == schema.BuiltinOperator.RELU6:
            activation = schema.ActivationFunctionType.RELU6
        bound = _FUSED_BOUNDS.get(activation)
        output = int(op.outputs[0])
        scale = int16_scale(output)
        if bound is not None and scale is not None:
            smallest = bound * 2.0**-28  # the bound is 2**28 steps: an eighth of int32's range
            if scale < smallest:
                widened[output] = (scale, smallest)
    if not widened:
        return content
    for op in operators:  # in graph order: a chain of same-scale operators follows its input
        source, output = int(op.inputs[0]), int(op.outputs[0])
        same = codes[op.opcodeIndex] in _SAME_SCALE and source in widened
        if same and int16_scale(output) == widened[source][0]:
            widened[output] = widened[source]
    for index, (_, scale) in widened.items():
        tensors[index].quantization.scale = [scale]
    for op in operators:
        source = int(op.inputs[0])
        if codes[op.opcodeIndex] not in _BIASED or source not in widened or len(op.inputs) < 3:
            continue
        if int(op.inputs[2]) < 0:
            continue
        old, new = widened[source]
        bias = tensors[int(op.inputs[2])]
        dtype = np.int64 if bias.type == schema.TensorType.INT64 else np.int32
        values = np.frombuffer(bytes(bytearray(model.buffers[bias.buffer].data)), dtype=dtype)
        rescaled = np.round(values.astype(np.float64) * (old / new)).astype(dtype)
        buffer = schema.BufferT()  # its own buffer: the converter shares equal ones
        buffer.data = np.frombuffer(rescaled.tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        bias.buffer = len(model.buffers) - 1
        weights = tensors[int(op.inputs[1])].quantization.scale  # bias scale: input × filter
        bias.quantization.scale = [new * float(s) for s in weights]
    return _pack(model, len(content))


def _operator_code(model: schema.ModelT, builtin: int) -> int:
    """The index of `builtin`'s operator code in `model`, added (version 1) if missing."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _pack(model: schema.ModelT, size_hint: int) -> bytes:
    """The model packed with each weight buffer 16-byte aligned (see `with_outputs`)."""
    for buffer in model.buffers:
        buffer.__class__ = _AlignedBufferT
    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _AlignedBufferT(schema.BufferT):
    """A buffer whose data vector starts on a 16-byte boundary of the file."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data = None
        if self.data is not None:
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), 16)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _tensor_info(index: int, tensor: schema.TensorT) -> TensorInfo:
    scale = zero_point = None
    quantization = tensor.quantization
    if quantization is not None and quantization.scale is not None and len(quantization.scale):
        # Per-tensor activations have one scale; per-channel weights report their first.
        scale = float(quantization.scale[0])
        zero_point = int(quantization.zeroPoint[0])
    shape = () if tensor.shape is None else tuple(int(d) for d in tensor.shape)
    return TensorInfo(index, _text(tensor.name), shape, _TYPE_NAMES[tensor.type], scale, zero_point)


def _operator_name(code: schema.OperatorCodeT) -> str:
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return _text(code.customCode)
    return _OPERATOR_NAMES[builtin]


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
