"""LiteRT interpreter adapter: run a .tflite on a batch of inputs, one image at a time.

LiteRT's built-in kernels run without the default XNNPACK delegate: integer models then go
through the same TFLite kernels on every machine, closer to what TFLite Micro computes.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def run_tflite(content: bytes, inputs: np.ndarray) -> dict[int, np.ndarray]:
    """Raw outputs for each input in `inputs` (N, H, W, C), keyed by output tensor index.

    The model has batch size 1, so images go through one by one. Values are the integers the
    model produces; dequantizing is the caller's business.
    """
    interpreter = Interpreter(
        model_content=content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    (model_input,) = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    results = {d["index"]: np.empty((len(inputs), *d["shape"][1:]), d["dtype"]) for d in outputs}
    for row, sample in enumerate(inputs):
        interpreter.set_tensor(model_input["index"], sample[None].astype(model_input["dtype"]))
        interpreter.invoke()
        for detail in outputs:
            results[detail["index"]][row] = interpreter.get_tensor(detail["index"])[0]
    return results
