"""Evaluate stage: top-1 accuracy of the float Keras model and the quantized .tflite on a
labelled set, per head, with the confusion matrix of the quantized model.

The quantized figures come from the integer .tflite run in LiteRT. Vela's compiled model runs
the same integer operators on the NPU; it cannot run here (its command stream needs the NPU).
Each head is scored on the images that have a label for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.config import Head
from generator.labelled import LabelledImages
from generator.tflite_file import TfliteModel
from generator.verify import float_logits, quantized_logits


@dataclass(frozen=True)
class HeadAccuracy:
    images: int
    float_top1: float
    quantized_top1: float
    drop_points: float  # float minus quantized accuracy, in percentage points
    agreement_top1: float
    classes: tuple[str, ...]
    confusion: list[list[int]]  # quantized model: rows are true classes, columns predicted


def evaluate_accuracy(
    model,
    content: bytes,
    tflite: TfliteModel,
    heads: tuple[Head, ...],
    data: LabelledImages,
    input_range: tuple[float, float],
) -> dict[str, HeadAccuracy]:
    expected = float_logits(model, data.pixels, input_range)
    actual = quantized_logits(content, tflite, data.pixels, heads)
    results = {}
    for column, head in enumerate(heads):
        labelled = data.labels[:, column] >= 0
        truth = data.labels[labelled, column]
        float_pred = expected[head.name][labelled].argmax(axis=1)
        quant_pred = actual[head.name][labelled].argmax(axis=1)
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
        )
    return results
