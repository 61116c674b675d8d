"""Verify stage: compare the float Keras model with the quantized .tflite on held-out images,
and the .tflite in LiteRT with the same file in TensorFlow Lite Micro.

Both models see the same uint8 pixels: the .tflite gets them as they are (minus 128 for int8
I/O), the Keras model gets `lo + p * (hi - lo) / 255`. Per head we measure top-1 agreement, the
SQNR of the dequantized logits against the float ones (10·log10 of signal power over error
power, in dB) and the largest absolute difference.

TensorFlow Lite Micro is what a Cortex-M runs. Its integer outputs may differ from LiteRT's by
one quantization step (rounding in optimized kernels); a larger difference fails the build,
because then nothing measured here would describe the board.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.calibrate import pixels_to_float
from generator.config import Head
from generator.errors import VerificationError
from generator.litert import run_tflite
from generator.tflite_file import TfliteModel
from generator.tflm import run_tflm

# Largest difference between TFLite Micro's and LiteRT's integer outputs that still passes.
MAX_REFERENCE_STEPS = 1

# A head is treated as constant (its weights are almost certainly untrained) when its quantized
# output is the same integer vector for every held-out image, or its float logits move less
# than this fraction of their size across the images.
CONSTANT_OUTPUT_SPREAD = 1e-3


@dataclass(frozen=True)
class HeadFidelity:
    agreement_top1: float
    sqnr_db: float | None  # None when the quantized logits equal the float ones exactly
    max_abs_error: float
    images: int
    constant_output: bool


def pixels_to_model_input(pixels: np.ndarray, io_dtype: str) -> np.ndarray:
    """What the .tflite input takes for uint8 pixels: the pixels, or pixels - 128 for int8."""
    if io_dtype == "int8":
        return (pixels.astype(np.int16) - 128).astype(np.int8)
    return pixels


def float_logits(
    model, pixels: np.ndarray, input_range: tuple[float, float]
) -> dict[str, np.ndarray]:
    """The Keras model's logits per head for uint8 `pixels` (N, H, W, C).

    The deployed model is built with batch size 1, but its layers take any batch, so images go
    through in chunks of 32: three times faster than `model.predict`, with the same numbers.
    """
    chunks = [
        model(pixels_to_float(pixels[start : start + 32], input_range), training=False)
        for start in range(0, len(pixels), 32)
    ]
    return {
        name: np.concatenate([np.asarray(chunk[name]) for chunk in chunks]).astype(np.float64)
        for name in chunks[0]
    }


def quantized_outputs(
    content: bytes, tflite: TfliteModel, pixels: np.ndarray, heads: tuple[Head, ...]
) -> dict[str, np.ndarray]:
    """The .tflite's raw integer outputs per head (LiteRT), found through the signature names."""
    (model_input,) = tflite.inputs
    raw = run_tflite(content, pixels_to_model_input(pixels, model_input.dtype))
    return {
        head.name: raw[tflite.outputs[tflite.output_position(head.name)].index] for head in heads
    }


def dequantize(raw: dict[str, np.ndarray], tflite: TfliteModel) -> dict[str, np.ndarray]:
    logits = {}
    for name, values in raw.items():
        output = tflite.outputs[tflite.output_position(name)]
        logits[name] = (values.astype(np.float64) - output.zero_point) * output.scale
    return logits


def quantized_logits(
    content: bytes, tflite: TfliteModel, pixels: np.ndarray, heads: tuple[Head, ...]
) -> dict[str, np.ndarray]:
    """The .tflite's dequantized logits per head."""
    return dequantize(quantized_outputs(content, tflite, pixels, heads), tflite)


def reference_steps(
    content: bytes, tflite: TfliteModel, pixels: np.ndarray, litert: dict[str, np.ndarray]
) -> dict[str, int]:
    """Largest |TFLite Micro - LiteRT| per head, in quantization steps; fails past the limit."""
    (model_input,) = tflite.inputs
    micro = run_tflm(content, pixels_to_model_input(pixels, model_input.dtype), len(tflite.outputs))
    steps = {
        name: int(
            np.abs(
                micro[tflite.output_position(name)].astype(np.int32) - raw.astype(np.int32)
            ).max()
        )
        for name, raw in litert.items()
    }
    worse = {name: step for name, step in steps.items() if step > MAX_REFERENCE_STEPS}
    if worse:
        raise VerificationError(
            "TFLite Micro and LiteRT disagree by "
            + ", ".join(f"{step} steps on head {name}" for name, step in worse.items())
            + f" (at most {MAX_REFERENCE_STEPS} allowed): the model would not run on a "
            "Cortex-M as measured here"
        )
    return steps


def is_constant(expected: np.ndarray, actual: np.ndarray) -> bool:
    """Whether a head's outputs barely depend on the image (see CONSTANT_OUTPUT_SPREAD)."""
    quantized_constant = bool(np.all(actual == actual[0]))
    spread = float(np.ptp(expected, axis=0).max())
    return quantized_constant or spread <= CONSTANT_OUTPUT_SPREAD * float(np.abs(expected).max())


@dataclass(frozen=True)
class Verification:
    fidelity: dict[str, HeadFidelity]
    reference_steps: dict[str, int]  # TFLite Micro vs LiteRT, largest difference per head


def verify(
    model,
    content: bytes,
    tflite: TfliteModel,
    heads: tuple[Head, ...],
    pixels: np.ndarray,
    input_range: tuple[float, float],
) -> Verification:
    """Float vs quantized per head, and TFLite Micro vs LiteRT on the same images."""
    expected = float_logits(model, pixels, input_range)
    raw = quantized_outputs(content, tflite, pixels, heads)
    actual = dequantize(raw, tflite)
    fidelity = {head.name: _compare(expected[head.name], actual[head.name]) for head in heads}
    return Verification(fidelity, reference_steps(content, tflite, pixels, raw))


def _compare(expected: np.ndarray, actual: np.ndarray) -> HeadFidelity:
    error = actual - expected
    noise = float(np.sum(error**2))
    signal = float(np.sum(expected**2))
    sqnr = None if noise == 0 else 10 * np.log10(max(signal, np.finfo(float).tiny) / noise)
    return HeadFidelity(
        agreement_top1=float(np.mean(expected.argmax(axis=1) == actual.argmax(axis=1))),
        sqnr_db=None if sqnr is None else float(sqnr),
        max_abs_error=float(np.abs(error).max()),
        images=len(expected),
        constant_output=is_constant(expected, actual),
    )
