"""Verify stage: what the quantized model computes on a Cortex-M, against the float model, and
how the host runtimes differ from it.

TensorFlow Lite Micro is what a Cortex-M runs, so the figures that describe the board come from
it: float Keras vs TFLite Micro per head (top-1 agreement, SQNR of the dequantized logits in dB,
the largest absolute error, and the share of images on which a logit sits at the integer limit).
Both models see the same uint8 pixels: the .tflite gets them as they are (minus 128 for int8
I/O), the Keras model gets `lo + p * (hi - lo) / 255`.

The host runtimes a user meets, LiteRT's built-in kernels and its default interpreter (with
XNNPACK), run the same file; how far each is from TFLite Micro (the largest difference in
quantization steps, top-1 agreement) and from the float model (SQNR) is reported per head as
information. Different kernels round differently, and a network can amplify a one-step rounding
difference in an early layer into tens of steps at its outputs (docs/verification.md), so
neither a step difference nor a top-1 difference is a defect by itself: two
runtimes are two roundings of one model when each is about as close to the float model as the
other. The build fails only for a real defect: TFLite Micro cannot run the model, or its top-1
differs from LiteRT's built-in kernels while its logits are further from the float model than
theirs by more than `SQNR_MARGIN_DB` (more than twice their error power). XNNPACK's results
depend on the CPU's instruction set, so it never decides a build.

Intermediate activations are checked for clipping in LiteRT's built-in kernels (TFLite Micro
does not keep intermediate tensors): the share of values at the integer limits, leaving out the
limits that are an activation's own bound (0 after ReLU, 6 after ReLU6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.analysis.logits import dequantize, float_logits, sqnr_db
from generator.config.schema import Head
from generator.data.pixels import integer_limits, pixels_to_model_input
from generator.engines.litert import HOST_RUNTIMES, intermediate_tensors, run_tflite
from generator.engines.micro import MICRO_NAMES, micro_runtime, run_micro
from generator.engines.tflite_file import TensorInfo, TfliteModel
from generator.errors import VerificationError

# How much lower TFLite Micro's SQNR against the float model may be than that of LiteRT's
# built-in kernels before a top-1 difference between the two counts as a defect: 3 dB is twice
# the error power. On four backbones at two input sizes TFLite Micro was at most 0.6 dB below
# LiteRT's built-in kernels (docs/verification.md), even where the two disagreed on
# top-1 for 40% of the images; a model TFLite Micro computes wrongly is far beyond it.
SQNR_MARGIN_DB = 3.0

# The runtime whose disagreement with TFLite Micro can fail a build: the same kernels on every
# CPU, unlike XNNPACK.
GATING_RUNTIME = "litert_builtin"


# A head is treated as constant (its weights are almost certainly untrained) when its quantized
# output is the same integer vector for every held-out image, or its float logits move less
# than this fraction of their size across the images.
CONSTANT_OUTPUT_SPREAD = 1e-3

# Operators whose output keeps its input's quantization and values: they inherit its bounds.
_PASS_THROUGH = {"PAD", "RESHAPE", "SQUEEZE", "MAX_POOL_2D", "CONCATENATION"}
# Operators whose output is an average of their input's values.
_AVERAGING = {"MEAN", "AVERAGE_POOL_2D"}
# Operators whose output range is fixed by the function itself: their limits are never clipping.
_BOUNDED = {"LOGISTIC", "TANH", "SOFTMAX"}


@dataclass(frozen=True)
class HeadFidelity:
    agreement_top1: float
    sqnr_db: float | None  # None when the quantized logits equal the float ones exactly
    max_abs_error: float
    images: int
    constant_output: bool
    saturated: float  # share of images with a logit at the integer limit


@dataclass(frozen=True)
class RuntimeDifference:
    """One runtime on one head: against TFLite Micro, and against the float model."""

    max_step_difference: int  # largest |runtime - TFLite Micro| of the integer outputs
    agreement_top1: float  # with TFLite Micro
    sqnr_db: float | None  # of its dequantized logits against the float ones; None: exact


@dataclass(frozen=True)
class TensorClipping:
    layer: str  # the Keras layer a user recognises
    tensor: str  # the tensor's name in the .tflite
    operator: str
    clipped: float  # share of values at an integer limit that is not an activation bound


@dataclass(frozen=True)
class Verification:
    fidelity: dict[str, HeadFidelity]  # float Keras vs TFLite Micro
    runtimes: dict[str, dict[str, RuntimeDifference]]  # host runtime -> head -> vs TFLite Micro
    clipping: tuple[TensorClipping, ...]  # intermediate tensors, most clipped first


def integer_outputs(
    *,
    content: bytes,
    tflite: TfliteModel,
    pixels: np.ndarray,
    heads: tuple[Head, ...],
    input_range: tuple[float, float],
) -> dict[str, dict[str, np.ndarray]]:
    """Raw integer outputs per runtime (TFLite Micro, or what stands in for it, first) and head.
    Output i is head i."""
    (model_input,) = tflite.inputs
    inputs = pixels_to_model_input(pixels, model_input, input_range)
    by_position = {micro_runtime(): run_micro(content, inputs, len(tflite.outputs))}
    by_position |= {runtime: run_tflite(content, inputs, runtime) for runtime in HOST_RUNTIMES}
    return {
        runtime: {head.name: values[i] for i, head in enumerate(heads)}
        for runtime, values in by_position.items()
    }


def compare_runtimes(
    outputs: dict[str, dict[str, np.ndarray]],
    expected: dict[str, np.ndarray],
    tflite: TfliteModel,
) -> dict[str, dict[str, RuntimeDifference]]:
    """Every host runtime against TFLite Micro and against the float logits `expected`."""
    reference = outputs[micro_runtime()]
    differences = {}
    for runtime, raw in outputs.items():
        if runtime in HOST_RUNTIMES:
            logits = dequantize(raw, tflite)
            differences[runtime] = {
                name: difference(reference[name], raw[name], expected[name], logits[name])
                for name in raw
            }
    return differences


def difference(
    reference: np.ndarray, raw: np.ndarray, expected: np.ndarray, logits: np.ndarray
) -> RuntimeDifference:
    """A runtime's raw outputs `raw` (N, classes) of one head against TFLite Micro's
    `reference`, and its dequantized `logits` against the float `expected`."""
    steps = np.abs(reference.astype(np.int32) - raw.astype(np.int32))
    return RuntimeDifference(
        max_step_difference=int(steps.max()),
        agreement_top1=float(np.mean(reference.argmax(axis=1) == raw.argmax(axis=1))),
        sqnr_db=sqnr_db(expected, logits),
    )


def check_runtimes(
    differences: dict[str, dict[str, RuntimeDifference]],
    reference_sqnr: dict[str, float | None],
    where: str,
) -> None:
    """Fail when TFLite Micro picks other classes than LiteRT's built-in kernels and is clearly
    further from the float model (`reference_sqnr`: TFLite Micro's SQNR per head)."""
    micro = MICRO_NAMES[micro_runtime()]
    defects = []
    for name, gated in differences[GATING_RUNTIME].items():
        ours, theirs = _or_inf(reference_sqnr[name]), _or_inf(gated.sqnr_db)
        if gated.agreement_top1 < 1 and theirs - ours > SQNR_MARGIN_DB:
            defects.append(
                f"head {name}: {1 - gated.agreement_top1:.0%} of {where} images get another "
                f"class, SQNR {ours:.1f} dB in {micro} vs {theirs:.1f} dB in LiteRT"
            )
    if defects:
        raise VerificationError(
            f"{micro} computes the model differently from LiteRT's built-in kernels, beyond "
            f"rounding ({'; '.join(defects)}): a Cortex-M would not compute what was measured here"
        )


def _or_inf(value: float | None) -> float:
    return np.inf if value is None else value


def is_constant(expected: np.ndarray, actual: np.ndarray) -> bool:
    """Whether a head's outputs barely depend on the image (see CONSTANT_OUTPUT_SPREAD)."""
    quantized_constant = bool(np.all(actual == actual[0]))
    spread = float(np.ptp(expected, axis=0).max())
    return quantized_constant or spread <= CONSTANT_OUTPUT_SPREAD * float(np.abs(expected).max())


def verify(
    *,
    model,
    content: bytes,
    tflite: TfliteModel,
    heads: tuple[Head, ...],
    pixels: np.ndarray,
    input_range: tuple[float, float],
    layers: dict[str, str],
) -> Verification:
    """Float vs TFLite Micro per head, the host runtimes against TFLite Micro, and clipping.

    `layers` names the Keras layer of each tensor (`convert.tensor_layers`).
    """
    expected = float_logits(model, pixels, input_range)
    outputs = integer_outputs(
        content=content, tflite=tflite, pixels=pixels, heads=heads, input_range=input_range
    )
    micro = outputs[micro_runtime()]
    actual = dequantize(micro, tflite)
    fidelity = {
        head.name: _compare(
            expected[head.name], actual[head.name], _saturated(micro[head.name], output)
        )
        for head, output in zip(heads, tflite.outputs, strict=True)
    }
    runtimes = compare_runtimes(outputs, expected, tflite)
    check_runtimes(runtimes, {name: f.sqnr_db for name, f in fidelity.items()}, "held-out")
    (model_input,) = tflite.inputs
    inputs = pixels_to_model_input(pixels, model_input, input_range)
    clipping = _clipping(content, tflite, inputs, layers)
    return Verification(fidelity, runtimes, clipping)


def _saturated(raw: np.ndarray, output: TensorInfo) -> float:
    low, high = integer_limits(output.dtype)
    return float(np.mean(np.any((raw == low) | (raw == high), axis=1)))


def _compare(expected: np.ndarray, actual: np.ndarray, saturated: float) -> HeadFidelity:
    return HeadFidelity(
        agreement_top1=float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1))),
        sqnr_db=sqnr_db(expected, actual),
        max_abs_error=float(np.abs(actual - expected).max()),
        images=len(expected),
        constant_output=is_constant(expected, actual),
        saturated=saturated,
    )


def _clipping(
    content: bytes, tflite: TfliteModel, inputs: np.ndarray, layers: dict[str, str]
) -> tuple[TensorClipping, ...]:
    """The share of clipped values of every intermediate integer tensor that varies, most clipped
    first."""
    limits = _clip_limits(tflite)
    at_limit = dict.fromkeys(limits, 0)
    seen = dict.fromkeys(limits, 0)
    varies = dict.fromkeys(limits, False)
    first: dict[int, int] = {}
    for values in intermediate_tensors(content, inputs, list(limits)):
        for index, value in values.items():
            clipped = [value == limit for limit in limits[index] if limit is not None]
            at_limit[index] += int(np.count_nonzero(np.logical_or.reduce(clipped)))
            seen[index] += value.size
            first.setdefault(index, int(value.flat[0]))
            varies[index] = varies[index] or bool(np.any(value != first[index]))
    producers = {index: op.name for op in tflite.operators for index in op.outputs}
    found = [
        TensorClipping(
            layer=layers.get(tflite.tensors[index].name, tflite.tensors[index].name),
            tensor=tflite.tensors[index].name,
            operator=producers[index],
            clipped=at_limit[index] / seen[index],
        )
        # A tensor that never changes (untrained weights) sits where calibration put its range:
        # that is no clipping.
        for index in limits
        if varies[index]
    ]
    return tuple(sorted(found, key=lambda c: -c.clipped))


def _clip_limits(tflite: TfliteModel) -> dict[int, tuple[int | None, int | None]]:
    """For each intermediate integer tensor, the integer limits at which a value is clipped (None
    where that limit is the bound of the activation that produced it)."""
    model_outputs = {t.index for t in tflite.outputs}
    model_inputs = {t.index for t in tflite.inputs}
    bounds: dict[int, tuple[bool, bool]] = {}  # tensor -> (low is a bound, high is a bound)
    limits = {}
    for op in tflite.operators:
        for index in op.outputs:
            tensor = tflite.tensors[index]
            if tensor.dtype not in ("int8", "uint8", "int16") or tensor.scale is None:
                continue
            low, high = integer_limits(tensor.dtype)
            source = tflite.tensors[op.inputs[0]] if op.inputs else None
            if op.name in _BOUNDED:
                bound = (True, True)
            elif op.name in _PASS_THROUGH and source is not None and source.index in bounds:
                same = (source.scale, source.zero_point) == (tensor.scale, tensor.zero_point)
                bound = bounds[source.index] if same else (False, False)
            elif op.name in _AVERAGING and source is not None and source.index in bounds:
                # An average stays within its input's bounds: a limit at the same real value as
                # an input bound is that bound (dead ReLU channels average to exactly 0).
                bound = tuple(
                    bounds[source.index][end]
                    and abs(_real(tensor, limit) - _real(source, source_limit)) <= tensor.scale / 2
                    for end, (limit, source_limit) in enumerate(
                        zip(
                            integer_limits(tensor.dtype),
                            integer_limits(source.dtype),
                            strict=True,
                        )
                    )
                )
            elif (
                op.name == "MUL"
                and op.activation == "NONE"
                and any(bounds.get(i) == (True, True) for i in op.inputs)
            ):
                # A bounded activation scaled by a constant: hard sigmoid is ReLU6(x + 3) / 6.
                bound = (True, True)
            else:
                activation = op.name if op.name in ("RELU", "RELU6") else op.activation
                real_low = tensor.scale * (low - tensor.zero_point)
                real_high = tensor.scale * (high - tensor.zero_point)
                step = tensor.scale / 2
                bound = (
                    activation in ("RELU", "RELU6") and abs(real_low) <= step,
                    activation == "RELU6" and abs(real_high - 6) <= step,
                )
            bounds[index] = bound
            feeds_from_input = bool(op.inputs) and op.inputs[0] in model_inputs
            if index in model_outputs or feeds_from_input:
                continue  # heads are measured as such; the input's limits are pixels 0 and 255
            if not all(bound):
                limits[index] = (None if bound[0] else low, None if bound[1] else high)
    return limits


def _real(tensor: TensorInfo, value: int) -> float:
    return tensor.scale * (value - tensor.zero_point)
