"""What a Cortex-M computes, run on this host: TensorFlow Lite Micro where it is installed, else
LiteRT's reference kernels standing in for it, named wherever a figure comes from them.

TensorFlow Lite Micro publishes current wheels for Linux x86-64 only (docs/install.md), so on
Windows, macOS and Linux on Arm it is not installed. There LiteRT's reference kernels
(`litert_reference`, `OpResolverType.BUILTIN_REF`), the plain integer implementations that
TensorFlow Lite Micro's kernels were ported from, give the outputs instead: on the demo and on
MobileNetV2/V3 they were within one quantization step of TensorFlow Lite Micro
(docs/verification.md). The tensor arena has no stand-in: LiteRT allocates its tensors its own
way, so without TensorFlow Lite Micro the arena of the plain .tflite is not measured and every
report says so. The arena of a Vela-compiled model never came from TensorFlow Lite Micro: it is
Vela's scratch tensor plus a documented margin.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from generator.engines import tflm
from generator.engines.litert import run_tflite
from generator.errors import VerificationError
from generator.support.quiet import muted

# The runtime a board runs. Where it is missing, SUBSTITUTE stands in and TFLM_MISSING says so.
TFLM = "tflite_micro"
SUBSTITUTE = "litert_reference"
MICRO_NAMES = {TFLM: "TFLite Micro", SUBSTITUTE: "LiteRT's reference kernels (for TFLite Micro)"}

TFLM_MISSING = (
    "TensorFlow Lite Micro is not installed (it publishes wheels for Linux x86-64 only): "
    "LiteRT's reference kernels stood in for it, and the tensor arena of the .tflite was not "
    "measured"
)
ARENA_NOT_MEASURED = (
    "not measured: TensorFlow Lite Micro is not installed on the machine that built it; "
    "measure it on the board (TFLite Micro's RecordingMicroAllocator)"
)


def tflm_installed() -> bool:
    """Whether the `tflite_micro` package can be imported here."""
    return importlib.util.find_spec("tflite_micro") is not None


def micro_runtime() -> str:
    """The runtime whose outputs stand for a Cortex-M's: `tflite_micro` or its substitute."""
    return TFLM if tflm_installed() else SUBSTITUTE


def run_micro(content: bytes, inputs: np.ndarray, outputs: int) -> list[np.ndarray]:
    """Raw values of the model's `outputs` outputs by position, each (N, ...), for `inputs`, in
    `micro_runtime()`."""
    if tflm_installed():
        return tflm.run_tflm(content, inputs, outputs)
    try:
        with muted():
            return run_tflite(content, inputs, SUBSTITUTE)[:outputs]
    except (RuntimeError, ValueError) as error:
        raise VerificationError(
            f"LiteRT's reference kernels, standing in for TensorFlow Lite Micro, cannot load, "
            f"allocate or run the .tflite ({error}): a Cortex-M could not run it either"
        ) from error


def start_arena_search(content: bytes, sample: np.ndarray) -> tflm.ArenaSearch | None:
    """The smallest TensorFlow Lite Micro arena, searched beside the caller
    (`engines.tflm.ArenaSearch`), or None where TensorFlow Lite Micro is not installed: then the
    arena is not measured."""
    return tflm.ArenaSearch(content, sample) if tflm_installed() else None


def minimum_arena(content: bytes, sample: np.ndarray) -> int | None:
    """The smallest TensorFlow Lite Micro arena in which the model runs, or None where
    TensorFlow Lite Micro is not installed."""
    return tflm.minimum_arena(content, sample) if tflm_installed() else None
