"""Build stage: a MobileNet backbone (keras.applications' V1 to V3, or MobileNetV4 built in
generator/model/mobilenet_v4.py) with one logits head per config entry, or a trained Keras
model of any architecture loaded from `model.path`.

The backbone comes without its top and with global average pooling (`model.depth` may end it
early: `_ending_after`); every head is a Dense layer on the shared pooled features, named
`<head>_logits`. No softmax in the model: the host applies it. Weights are random (seeded) unless
`model.weights` names a Keras `.weights.h5` saved from this exact architecture, or
`model.pretrained` starts the backbone from ImageNet or a file (generator/model/pretrained.py).

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
| mobilenet_v4_conv_small | 0.25 | 103,761 | 193,376 | 2,734,713 | 64.1 | 128.5 | 0.44 | 93/93 |
| mobilenet_v4_conv_medium | 0.25 | 530,457 | 750,848 | 11,628,729 | 66.3 | 594.2 | 1.58 | 140/140 |

(The MobileNetV4 rows measured 2026-12-02 with Vela 5.2; generator/model/mobilenet_v4.py.)
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras

from generator.config.resources import Network, check_memory
from generator.config.schema import (
    BACKBONE_BLOCKS,
    HEAD_NAME_PATTERN,
    Head,
    ModelConfig,
    backbone_stride,
    output_stride,
)
from generator.errors import UserError
from generator.model.keras_file import first_sentence, load_keras_file
from generator.model.layers import all_layers
from generator.model.mobilenet_v4 import mobilenet_v4
from generator.model.pretrained import PretrainedWeights, load_pretrained

_BACKBONES = {
    "mobilenet_v1": (keras.applications.MobileNet, {}),
    "mobilenet_v2": (keras.applications.MobileNetV2, {}),
    "mobilenet_v3_small": (keras.applications.MobileNetV3Small, {"include_preprocessing": False}),
    "mobilenet_v3_large": (keras.applications.MobileNetV3Large, {"include_preprocessing": False}),
    "mobilenet_v4_conv_small": (functools.partial(mobilenet_v4, "conv_small"), {}),
    "mobilenet_v4_conv_medium": (functools.partial(mobilenet_v4, "conv_medium"), {}),
}

INPUT_NAME = "image"


@dataclass(frozen=True)
class BuiltModel:
    """The float model with dict outputs keyed by head name, and what it was resolved to."""

    model: keras.Model
    heads: tuple[Head, ...]
    input_shape: tuple[int, int, int]
    pretrained: PretrainedWeights | None = None


def build(config: ModelConfig) -> BuiltModel:
    """Our MobileNet for `config` with its pretrained backbone, or the model file `config.path`
    names."""
    if config.path is not None:
        return load_model_file(config)
    model = build_model(config)
    pretrained = None if config.pretrained is None else load_pretrained(model, config)
    return BuiltModel(model, config.heads, config.input_shape, pretrained)


def build_model(
    config: ModelConfig, batch_size: int | None = 1, *, float32_heads: bool = False
) -> keras.Model:
    """The float model with random (seeded) or `config.weights` weights. Outputs are a dict
    keyed by head name, in config order.

    `batch_size=1` (the default) is what is deployed: Vela needs static shapes. Training may
    build with `None` and copy the weights across; under a mixed-precision policy it asks for
    `float32_heads`, so the logits and the loss stay in float32.
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
    if config.last_block is not None:
        backbone = _ending_after(backbone, config.backbone, config.last_block, image)
    kept, stride = backbone_stride(config), output_stride(config)
    if stride < kept:
        backbone = _with_output_stride(backbone, round(math.log2(kept // stride)), image)
    features = backbone.output
    outputs = {
        head.name: keras.layers.Dense(
            head.num_classes,
            name=f"{head.name}_logits",
            dtype="float32" if float32_heads else None,
        )(features)
        for head in config.heads
    }
    model = keras.Model(image, outputs, name=config.backbone)
    if config.weights is not None:
        _load_weights(model, config.weights)
    return model


def _ending_after(backbone: keras.Model, name: str, last_block: int, image) -> keras.Model:
    """The backbone up to the output of block `last_block` (-1: the stem), then its own global
    average pooling layer: every layer keeps its Keras name, and the layers kept hold the same
    arrays as in a whole backbone (a pretrained file loads into them as well).

    A layer's block is read from its name (BACKBONE_BLOCKS); a layer Keras named itself
    (MobileNetV3's activations: `re_lu_3`, `activation_2`) belongs to the block of the layer
    before it, and a convolution after the blocks (V2's `Conv_1`, V3's `conv_1`) begins the
    top. The cut is the input of the first layer, in the model's topological order, of a later
    block: every layer of a block feeds the block's output, so all of them come before it.
    """
    pattern = re.compile(BACKBONE_BLOCKS[name].layers)
    *layers, pooling = backbone.layers
    block = -1  # the stem
    for layer in layers:
        if match := pattern.match(layer.name):
            block = int(match[1] or 0)
        elif block >= 0 and isinstance(layer, keras.layers.Conv2D):
            block = math.inf  # the top
        if block > last_block:
            pooled = keras.layers.GlobalAveragePooling2D(name=pooling.name)(layer.input)
            return keras.Model([image], pooled, name=backbone.name)
    return backbone


def _with_output_stride(backbone: keras.Model, relax: int, image) -> keras.Model:
    """The backbone with its last `relax` stride-2 stages made stride 1 (as DeepLab's
    `output_stride` does, without dilation), keeping every layer's name.

    A stride-2 depthwise convolution in these backbones is a `valid` convolution after an
    asymmetric ZeroPadding2D; at stride 1 that padding becomes symmetric (kernel // 2 on each
    side), so the layer keeps its input size as a `same` convolution would.
    """
    strided = [
        layer
        for layer in backbone.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
        and tuple(layer.strides) != (1, 1)
    ]
    relaxed = strided[len(strided) - relax :]
    changes: dict[str, dict] = {}
    for layer in relaxed:
        changes[layer.name] = {"strides": (1, 1)}
        source = layer.input._keras_history.operation
        if isinstance(source, keras.layers.ZeroPadding2D):
            half = [k // 2 for k in layer.kernel_size]
            changes[source.name] = {"padding": ((half[0], half[0]), (half[1], half[1]))}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), **changes.get(layer.name, {})})

    return keras.models.clone_model(backbone, input_tensors=[image], clone_function=clone)


def training_copy(config: ModelConfig, built: BuiltModel, *, mixed_precision: bool) -> keras.Model:
    """The model to train: a model file's own, or ours rebuilt with a free batch size (under
    Keras's mixed_float16 policy when asked, heads in float32) with `built`'s weights."""
    if config.path is not None:
        return built.model
    if not mixed_precision:
        trainable = build_model(config, None)
    else:
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            trainable = build_model(config, None, float32_heads=True)
        finally:
            keras.mixed_precision.set_global_policy(policy)
    trainable.set_weights(built.model.get_weights())
    return trainable


def model_copies(config: ModelConfig, built: BuiltModel) -> tuple[keras.Model, keras.Model]:
    """Two copies of `built.model` with its weights: one that trains at any batch size and one
    with the deployed (batch-1) input. A model file's input batch is what the file says."""
    if config.path is None:
        copies = build_model(config, None), build_model(config)
    else:
        copies = keras.models.clone_model(built.model), keras.models.clone_model(built.model)
    for copy in copies:
        copy.set_weights(built.model.get_weights())
    return copies


def load_model_file(config: ModelConfig) -> BuiltModel:
    """A trained `.keras` model: input shape read from it, heads are its outputs.

    Heads are named from the model's output names (a dict output's keys), unless
    `model.heads` names them, in output order. Each output must be (batch, classes) logits.
    The model is wrapped so its outputs are a dict keyed by head name, like ours. Once the
    input shape is known, the build's memory needs are checked as the config's are.
    """
    model = load_keras_file(config.path, "model.path")
    if len(model.inputs) != 1:
        raise UserError(f"model.path: the model has {len(model.inputs)} inputs; it needs one image")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape or shape[2] not in (1, 3):
        raise UserError(
            f"model.path: input shape {shape} must be a fixed (H, W, C) image with C 1 or 3"
        )
    if config.workload is not None:
        what = f"model.path: {config.path.name} (input {'×'.join(map(str, shape))})"
        check_memory(_network(model), shape, config.workload, what, model_file=True)
    if isinstance(model.output, dict):
        names, outputs = list(model.output), list(model.output.values())
    else:
        names, outputs = list(model.output_names), list(model.outputs)
    heads = _resolve_heads(config.heads, names, outputs)
    named = keras.Model(
        model.inputs, dict(zip((h.name for h in heads), outputs, strict=True)), name=model.name
    )
    return BuiltModel(named, heads, shape)


def load_teacher(path: Path, heads: tuple[Head, ...], input_shape: tuple) -> keras.Model:
    """`train.teacher`: a float .keras model that takes the same images and gives logits for
    every head, wrapped to dict outputs keyed by head name. Its outputs are matched by name
    when they are a dict holding every head (another build's .keras), else in order."""
    model = load_keras_file(path, "train.teacher")
    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else None
    if shape != tuple(input_shape):
        raise UserError(
            f"train.teacher: {path.name} takes input {shape}, the model "
            f"{tuple(input_shape)}: give a teacher trained on the same images"
        )
    if isinstance(model.output, dict) and all(h.name in model.output for h in heads):
        outputs = [model.output[h.name] for h in heads]
    elif isinstance(model.output, dict):
        outputs = list(model.output.values())  # the file's order (model.outputs sorts keys)
    else:
        outputs = list(model.outputs)
        if len(outputs) != len(heads):
            raise UserError(
                f"train.teacher: {path.name} has {len(outputs)} outputs, the model "
                f"{len(heads)} heads: give a teacher with one output per head, in order"
            )
    for head, output in zip(heads, outputs, strict=True):
        if tuple(output.shape[1:]) != (head.num_classes,):
            raise UserError(
                f"train.teacher: {path.name}'s output for {head.name!r} has shape "
                f"{tuple(output.shape)}, the head {head.num_classes} classes: give a teacher "
                "with the same heads"
            )
    return keras.Model(
        model.inputs, {h.name: o for h, o in zip(heads, outputs, strict=True)}, name="teacher"
    )


def _network(model: keras.Model) -> Network:
    """What a loaded model's layers output for one image (nested models count once more, an
    upper bound), and its parameters; layers whose output Keras cannot tell are left out."""
    values = 0
    for layer in all_layers(model):
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            continue
        values += sum(math.prod(d or 1 for d in output.shape[1:]) for output in outputs)
    return Network(activations=values, parameters=model.count_params())


def _resolve_heads(configured: tuple[Head, ...], names: list[str], outputs: list) -> tuple:
    if configured and len(configured) != len(outputs):
        raise UserError(
            f"model.heads: the model has {len(outputs)} outputs ({', '.join(names)}) but "
            f"{len(configured)} heads are named: name one head per output, in order"
        )
    heads = []
    for index, output in enumerate(outputs):
        if len(output.shape) != 2 or output.shape[-1] is None or output.shape[-1] < 2:
            raise UserError(
                f"model.path: output {names[index]!r} has shape {tuple(output.shape)}: each "
                "head must give (batch, classes) logits with at least 2 classes"
            )
        classes = int(output.shape[-1])
        head = configured[index] if configured else Head(names[index], None, None)
        if not HEAD_NAME_PATTERN.match(head.name):
            raise UserError(
                f"model.heads: output name {head.name!r} is not a usable head name: "
                "name the outputs in model.heads"
            )
        if head.num_classes not in (None, classes):
            raise UserError(
                f"model.heads[{index}]: {head.name!r} has {head.num_classes} classes in the "
                f"config but the model's output {names[index]!r} has {classes}"
            )
        heads.append(Head(head.name, classes, head.labels))
    return tuple(heads)


def _load_weights(model: keras.Model, path) -> None:
    """Load all of `path` into `model`, or fail.

    Keras only warns when parts of a weights file do not match ("layers will retain their
    freshly-initialized weights") and silently ignores arrays the model has no place for. A
    half-random model, or one built from another model's file, must not ship: any warning, or
    a file holding a different number of arrays than the model has weights, fails.
    """
    if not h5py.is_hdf5(path):
        raise UserError(
            f"model.weights: {path} is not an HDF5 file (corrupt, or saved in another format): "
            "save the weights with model.save_weights('name.weights.h5')"
        )
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
            f"({first_sentence(problem)}): save it from a model built with this exact config"
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
