"""Read a .tflite flatbuffer back (tensors, operators, inputs, outputs, signature names), put
its outputs in a given order under given names, and give an int8-I/O model uint8 I/O.

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
