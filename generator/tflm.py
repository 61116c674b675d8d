"""TensorFlow Lite Micro adapter: the reference interpreter a Cortex-M runs, here on the host.

It cannot run a Vela-compiled model (its Ethos-U kernel is a stub off-target), but it runs the
integer .tflite: that is what a Cortex-M without an NPU computes. Allocation failures come back
as RuntimeError after TFLite Micro has printed its reasons from native code; those prints are
muted.

The smallest arena is found by bisection over 16-byte steps, each candidate allocating the
model and running one inference. On this 64-bit host TFLite Micro's own structures hold 8-byte
pointers, so the figure is an upper bound for a 32-bit Cortex-M.
"""

from __future__ import annotations

import numpy as np
from tflite_micro import runtime

from generator.quiet import muted

ARENA_STEP = 16

# What a firmware adds to Vela's SRAM figure for TFLite Micro's own structures when running a
# Vela-compiled model: Arm's ML Embedded Evaluation Kit reserves at least 2 KiB. Documented, not
# measured: the NPU model cannot run on this host.
NPU_ARENA_MARGIN_BYTES = 2048


def npu_arena_bytes(vela_sram_kib: float) -> int:
    """The tensor arena a firmware must reserve to run a Vela-compiled model."""
    return _round_up(int(np.ceil(vela_sram_kib * 1024))) + NPU_ARENA_MARGIN_BYTES


def run_tflm(content: bytes, inputs: np.ndarray, outputs: int) -> list[np.ndarray]:
    """Raw values of the model's `outputs` outputs, by position, each (N, classes)."""
    with muted():
        interpreter = runtime.Interpreter.from_bytes(content)
    details = [interpreter.get_output_details(i) for i in range(outputs)]
    results = [np.empty((len(inputs), *d["shape"][1:]), d["dtype"]) for d in details]
    for row, sample in enumerate(inputs):
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        for position, result in enumerate(results):
            result[row] = interpreter.get_output(position)[0]
    return results


def minimum_arena(content: bytes, sample: np.ndarray) -> int:
    """The smallest tensor arena (bytes) in which TFLite Micro allocates and runs the model."""
    low, high = 0, _round_up(10 * len(content))  # the runtime's own default is 10× the model
    if not _runs(content, sample, high):
        raise RuntimeError(f"TFLite Micro cannot run the model even in {high} bytes")
    while high - low > ARENA_STEP:
        middle = _round_up((low + high) // 2)
        if middle >= high:
            break
        if _runs(content, sample, middle):
            high = middle
        else:
            low = middle
    return high


def _runs(content: bytes, sample: np.ndarray, arena_size: int) -> bool:
    with muted():
        try:
            interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena_size)
            interpreter.set_input(sample[None], 0)
            interpreter.invoke()
        except RuntimeError:
            return False
    return True


def _round_up(size: int) -> int:
    return -(-size // ARENA_STEP) * ARENA_STEP
