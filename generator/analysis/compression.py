"""What the compressed kernels hold in the .tflite, read back from its weight tensors.

`optimize` promises at most K values in each output channel of a clustered kernel and at least
the asked fraction of zeros in a pruned one (generator/model/compress.py). The build checks
both on the int8 (or int16x8's int8) weights the converter wrote, where batch normalization is
already folded in, and fails if either is broken: the promise is about the artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from generator.engines.tflite_file import TfliteModel, constant_arrays
from generator.errors import VerificationError

if TYPE_CHECKING:  # the record imports this module, and must not import TensorFlow
    from generator.model.compress import LayerCompression

# Where each weighted operator keeps its output channels in its weight tensor.
_CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


@dataclass(frozen=True)
class KernelReadBack:
    layer: str
    operator: str
    clusters: int  # what was asked (0: not clustered)
    sparsity: float  # the fraction of weights pruned in the float kernel
    dtype: str
    channels: int
    values_per_channel: int  # the most distinct values any output channel holds
    zeros: float  # the fraction of the weight tensor that is 0


def read_back(
    *,
    content: bytes,
    tflite: TfliteModel,
    layers: dict[str, str],
    compressed: list[LayerCompression],
) -> list[KernelReadBack]:
    """Each compressed layer's weight tensor in `content` (found through `layers`, the .tflite
    tensor name -> Keras layer map), checked against what was promised."""
    wanted = {c.layer: c for c in compressed}
    kernels = [
        (op, layer)
        for op in tflite.operators
        if op.name in _CHANNEL_AXIS
        and (layer := layers.get(tflite.tensors[op.outputs[0]].name)) in wanted
    ]
    arrays = constant_arrays(content, [op.inputs[1] for op, _ in kernels])
    found = []
    for op, layer in kernels:
        weights = arrays.get(op.inputs[1])
        if weights is None:
            continue
        promised = wanted[layer]
        channels = np.moveaxis(weights, _CHANNEL_AXIS[op.name], 0).reshape(
            weights.shape[_CHANNEL_AXIS[op.name]], -1
        )
        found.append(
            KernelReadBack(
                layer=layer,
                operator=op.name,
                clusters=promised.clusters,
                sparsity=promised.sparsity,
                dtype=str(weights.dtype),
                channels=len(channels),
                values_per_channel=max(len(np.unique(row)) for row in channels),
                zeros=float(np.mean(weights == 0)),
            )
        )
    _check(found, compressed)
    return found


def _check(found: list[KernelReadBack], compressed: list[LayerCompression]) -> None:
    missing = sorted({c.layer for c in compressed} - {k.layer for k in found})
    if missing:
        raise VerificationError(
            f"optimize: the .tflite has no weight tensor for the compressed layer {missing[0]!r}"
        )
    for kernel in found:
        if kernel.clusters and kernel.values_per_channel > kernel.clusters:
            raise VerificationError(
                f"optimize: {kernel.layer!r} holds {kernel.values_per_channel} values in an "
                f"output channel of the .tflite, more than the {kernel.clusters} clusters asked"
            )
        # Rounding can only add zeros (a small value quantized to 0), never remove one.
        if kernel.zeros < kernel.sparsity - 1e-9:
            raise VerificationError(
                f"optimize: {kernel.layer!r} is {kernel.zeros:.1%} zeros in the .tflite, less "
                f"than the {kernel.sparsity:.1%} pruned"
            )
