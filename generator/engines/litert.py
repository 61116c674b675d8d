"""LiteRT interpreter adapter: run a .tflite one image at a time with one of LiteRT's kernel
sets, and read intermediate tensors.

The two a host user meets (`HOST_RUNTIMES`):
- `litert_builtin`: LiteRT's built-in kernels without the default XNNPACK delegate
  (`OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`).
- `litert_default`: what `Interpreter(model_path=...)` gives a host user, with the XNNPACK
  delegate taking the operators it supports. Its int8 kernels round differently, and which
  kernels it picks depends on the CPU's instruction set.

And one that stands in for TensorFlow Lite Micro where it is not installed (`engines/micro.py`):
- `litert_reference`: LiteRT's reference kernels (`OpResolverType.BUILTIN_REF`).

Outputs come back by position (output i is head i). LiteRT's own log lines (XNNPACK announcing
itself) are muted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from generator.support.quiet import muted

KERNELS = {
    "litert_builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "litert_default": OpResolverType.AUTO,
    "litert_reference": OpResolverType.BUILTIN_REF,
}
HOST_RUNTIMES = ("litert_builtin", "litert_default")


def run_tflite(content: bytes, inputs: np.ndarray, runtime: str) -> list[np.ndarray]:
    """Raw outputs by position, each (N, ...), for `inputs` (N, H, W, C) in `runtime`."""
    interpreter = _interpreter(content, KERNELS[runtime])
    (model_input,) = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    results = [np.empty((len(inputs), *d["shape"][1:]), d["dtype"]) for d in outputs]
    for row, sample in enumerate(inputs):
        interpreter.set_tensor(model_input["index"], sample[None].astype(model_input["dtype"]))
        interpreter.invoke()
        for result, detail in zip(results, outputs, strict=True):
            result[row] = interpreter.get_tensor(detail["index"])[0]
    return results


def latency_ms(content: bytes, sample: np.ndarray, runtime: str) -> float:
    """Median wall time (ms) of one inference on `sample` (H, W, C) in `runtime`, over at least
    100 runs and 0.2 s, after 5 unmeasured runs that let the kernels set up (XNNPACK packs the
    weights on the first run)."""
    interpreter = _interpreter(content, KERNELS[runtime])
    (model_input,) = interpreter.get_input_details()
    interpreter.set_tensor(model_input["index"], sample[None].astype(model_input["dtype"]))
    for _ in range(5):
        interpreter.invoke()
    times: list[float] = []
    while len(times) < 100 or sum(times) < 0.2:
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def intermediate_tensors(
    content: bytes, inputs: np.ndarray, indices: list[int]
) -> Iterator[dict[int, np.ndarray]]:
    """For each input, the values of the tensors `indices` (built-in kernels, every tensor kept)."""
    interpreter = _interpreter(content, KERNELS["litert_builtin"], preserve_all_tensors=True)
    (model_input,) = interpreter.get_input_details()
    for sample in inputs:
        interpreter.set_tensor(model_input["index"], sample[None].astype(model_input["dtype"]))
        interpreter.invoke()
        yield {index: interpreter.get_tensor(index) for index in indices}


def _interpreter(content: bytes, kernels, preserve_all_tensors: bool = False) -> Interpreter:
    with muted():
        interpreter = Interpreter(
            model_content=content,
            experimental_op_resolver_type=kernels,
            experimental_preserve_all_tensors=preserve_all_tensors,
        )
        interpreter.allocate_tensors()
    return interpreter
