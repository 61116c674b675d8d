"""Evaluate stage: top-1 accuracy of the float Keras model and of the quantized .tflite on a
labelled set, per head, with the confusion matrix of the quantized model.

The quantized figures are TensorFlow Lite Micro's: what a Cortex-M computes (LiteRT's reference
kernels stand in where it is not installed, `engines/micro.py`). Vela's compiled
model runs the same integer operators on the NPU; it cannot run here (its command stream needs
the NPU). The host runtimes (LiteRT's built-in kernels and its default interpreter with XNNPACK)
run the same file, and their accuracy and difference from TFLite Micro are reported beside it:
a host user's figures can differ by a few images. Each head is scored on the images that have a
label for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.analysis.logits import dequantize, float_logits, sqnr_db
from generator.analysis.verify import (
    RuntimeDifference,
    check_runtimes,
    compare_runtimes,
    difference,
    integer_outputs,
)
from generator.config.schema import Head
from generator.data.labelled import LabelledImages
from generator.engines.micro import micro_runtime
from generator.engines.tflite_file import TfliteModel


@dataclass(frozen=True)
class RuntimeAccuracy:
    """A host runtime on one head's labelled images."""

    top1: float
    difference: RuntimeDifference  # against TFLite Micro


@dataclass(frozen=True)
class HeadAccuracy:
    images: int
    float_top1: float
    quantized_top1: float  # TFLite Micro
    drop_points: float  # float minus quantized accuracy, in percentage points
    agreement_top1: float  # float vs TFLite Micro
    classes: tuple[str, ...]
    confusion: list[list[int]]  # TFLite Micro: rows are true classes, columns predicted
    runtimes: dict[str, RuntimeAccuracy]  # host runtime -> its figures


def evaluate_accuracy(
    *,
    model,
    content: bytes,
    tflite: TfliteModel,
    heads: tuple[Head, ...],
    data: LabelledImages,
    input_range: tuple[float, float],
) -> dict[str, HeadAccuracy]:
    expected = float_logits(model, data.pixels, input_range)
    outputs = integer_outputs(
        content=content, tflite=tflite, pixels=data.pixels, heads=heads, input_range=input_range
    )
    logits = {runtime: dequantize(raw, tflite) for runtime, raw in outputs.items()}
    reference = micro_runtime()
    check_runtimes(
        compare_runtimes(outputs, expected, tflite),
        {head.name: sqnr_db(expected[head.name], logits[reference][head.name]) for head in heads},
        "evaluation",
    )
    results = {}
    for column, head in enumerate(heads):
        labelled = data.labels[:, column] >= 0
        truth = data.labels[labelled, column]
        float_pred = expected[head.name][labelled].argmax(axis=1)
        # Raw integers rank the classes as their dequantized values do (the scale is positive).
        on_head = {runtime: values[head.name][labelled] for runtime, values in outputs.items()}
        quant_pred = on_head[reference].argmax(axis=1)
        classes = data.classes[head.name]
        confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
        np.add.at(confusion, (truth, quant_pred), 1)
        float_top1 = float(np.mean(float_pred == truth))
        quantized_top1 = float(np.mean(quant_pred == truth))
        results[head.name] = HeadAccuracy(
            images=int(labelled.sum()),
            float_top1=float_top1,
            quantized_top1=quantized_top1,
            drop_points=100 * (float_top1 - quantized_top1),
            agreement_top1=float(np.mean(float_pred == quant_pred)),
            classes=classes,
            confusion=confusion.tolist(),
            runtimes={
                runtime: RuntimeAccuracy(
                    top1=float(np.mean(values.argmax(axis=1) == truth)),
                    difference=difference(
                        on_head[reference],
                        values,
                        expected[head.name][labelled],
                        logits[runtime][head.name][labelled],
                    ),
                )
                for runtime, values in on_head.items()
                if runtime != reference
            },
        )
    return results
