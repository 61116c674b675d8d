"""Build stage: a keras.applications MobileNet backbone with one logits head per config entry.

The backbone comes from `keras.applications` with `include_top=False` and global average
pooling; every head is a Dense layer on the shared pooled features, named `<head>_logits`.
No softmax in the model: the host applies it. Weights are random (seeded) unless
`model.weights` names a Keras `.weights.h5` saved from this exact architecture. There is no
pretrained download: the tool runs offline.

MobileNetV3's preprocessing layer (which expects pixels in 0..255) is left out, so every
backbone sees `calibration.input_range`, as the report states.

Measured cost at 96×96×3 with the three heads of configs/default.yaml, random weights,
compiled for ethos-u55-128 (Ethos_U55_High_End_Embedded, Shared_Sram); MACs, memory and
latency are Vela's estimates:

| backbone | alpha | parameters | .tflite bytes | MACs | SRAM KiB | flash KiB | ms | NPU ops |
|---|---|---|---|---|---|---|---|---|
| mobilenet_v1 | 0.25 | 220,857 | 295,376 | 7,521,408 | 72.8 | 238.1 | 0.80 | 60/60 |
| mobilenet_v2 | 0.25 | 260,297 | 407,664 | 6,648,486 | 146.0 | 338.4 | 1.36 | 106/106 |
| mobilenet_v3_small | 0.25 | 101,753 | 207,960 | 2,637,609 | 64.1 | 119.8 | 0.61 | 145/145 |
| mobilenet_v3_large | 0.25 | 256,513 | 392,000 | 6,503,139 | 109.3 | 270.0 | 1.27 | 157/157 |
"""

from __future__ import annotations

import warnings

import h5py
import keras

from generator.config import ModelConfig
from generator.errors import UserError

_BACKBONES = {
    "mobilenet_v1": (keras.applications.MobileNet, {}),
    "mobilenet_v2": (keras.applications.MobileNetV2, {}),
    "mobilenet_v3_small": (keras.applications.MobileNetV3Small, {"include_preprocessing": False}),
    "mobilenet_v3_large": (keras.applications.MobileNetV3Large, {"include_preprocessing": False}),
}

INPUT_NAME = "image"


def build_model(config: ModelConfig, batch_size: int | None = 1) -> keras.Model:
    """The float model. Outputs are a dict keyed by head name, in config order.

    `batch_size=1` (the default) is what is deployed: Vela needs static shapes. Training may
    build with `None` and copy the weights across.
    """
    keras.utils.set_random_seed(config.seed)
    constructor, extra = _BACKBONES[config.backbone]
    image = keras.Input(shape=config.input_shape, batch_size=batch_size, name=INPUT_NAME)
    backbone = constructor(
        input_tensor=image,
        alpha=config.alpha,
        include_top=False,
        weights=None,
        pooling="avg",
        **extra,
    )
    features = backbone.output
    outputs = {
        head.name: keras.layers.Dense(head.num_classes, name=f"{head.name}_logits")(features)
        for head in config.heads
    }
    model = keras.Model(image, outputs, name=config.backbone)
    if config.weights is not None:
        _load_weights(model, config.weights)
    return model


def _load_weights(model: keras.Model, path) -> None:
    """Load all of `path` into `model`, or fail.

    Keras only warns when parts of a weights file do not match ("layers will retain their
    freshly-initialized weights") and silently ignores arrays the model has no place for. A
    half-random model, or one built from another model's file, must not ship: any warning, or
    a file holding a different number of arrays than the model has weights, fails.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            problem = str(caught[0].message) if caught else None
        except (ValueError, OSError) as error:
            problem = str(error)
    if problem is None and (stored := _count_arrays(path)) != len(model.weights):
        problem = f"the file holds {stored} arrays, the model has {len(model.weights)}"
    if problem is not None:
        raise UserError(
            f"model.weights: {path} does not fit this architecture "
            f"({_first_line(problem)}): save it from a model built with this exact config"
        )


def _count_arrays(path) -> int:
    """Arrays stored for the model's layers (a trained model's file also holds its optimizer)."""
    arrays = []
    with h5py.File(path, "r") as handle:
        if "layers" in handle:
            handle["layers"].visititems(
                lambda _, item: arrays.append(isinstance(item, h5py.Dataset))
            )
    return sum(arrays)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "no details"
