import re
from dataclasses import replace

import keras
import numpy as np
import pytest
from conftest import digits_model_config, small_config

from generator.config.parsing import parse_config
from generator.config.schema import (
    BACKBONE_BLOCKS,
    BACKBONES,
    STAGES,
    Head,
    ModelConfig,
    backbone_stride,
    output_stride,
)
from generator.errors import UserError
from generator.model.build import build, build_model


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_gives_one_logits_head_per_entry(backbone):
    heads = (Head("object", 4, None), Head("light", 2, None))
    model = build_model(
        ModelConfig(
            backbone=backbone,
            alpha=0.35,
            input_shape=(40, 32, 1),
            heads=heads,
            weights=None,
            seed=0,
        )
    )
    assert model.input_shape == (1, 40, 32, 1)
    outputs = model(np.random.default_rng(0).uniform(size=(1, 40, 32, 1)).astype("float32"))
    assert list(outputs) == ["object", "light"]
    assert outputs["object"].shape == (1, 4) and outputs["light"].shape == (1, 2)
    for head in heads:
        layer = model.get_layer(f"{head.name}_logits")
        assert layer.activation is keras.activations.linear  # logits: no softmax in the model


def test_same_seed_same_weights():
    config = digits_model_config()
    first, second = build_model(config), build_model(config)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_weights_file_is_loaded_and_checked(tmp_path):
    source = build_model(digits_model_config())
    path = tmp_path / "model.weights.h5"
    source.save_weights(path)
    loaded = build_model(replace(digits_model_config(path), seed=99))  # seed must not matter
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)
    other_backbone = replace(digits_model_config(path), backbone="mobilenet_v2")
    other_head = replace(digits_model_config(path), heads=(Head("digit", 10, None),))
    for mismatch in (other_backbone, other_head):
        with pytest.raises(UserError, match=r"model.weights: .* does not fit this architecture"):
            build_model(mismatch)


def _own_model(path, output_kind="list"):
    """A small functional model of a different architecture, with two 3-class outputs."""
    image = keras.Input((36, 28, 3), name="pixels")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="stem")(image)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    colour = keras.layers.Dense(3, name="colour")(x)
    shape = keras.layers.Dense(3, name="shape")(x)
    outputs = [colour, shape] if output_kind == "list" else {"tint": colour, "form": shape}
    keras.Model(image, outputs).save(path)
    return path


def test_a_model_file_brings_its_input_shape_and_output_names(tmp_path):
    path = _own_model(tmp_path / "own.keras")
    built = build(
        ModelConfig(
            backbone=None, alpha=None, input_shape=None, heads=(), weights=None, seed=0, path=path
        )
    )
    assert built.input_shape == (36, 28, 3)
    assert [(h.name, h.num_classes) for h in built.heads] == [("colour", 3), ("shape", 3)]
    assert list(built.model.output) == ["colour", "shape"]
    named = (Head("hue", None, ("r", "g", "b")), Head("outline", 3, None))
    renamed = build(
        ModelConfig(
            backbone=None,
            alpha=None,
            input_shape=None,
            heads=named,
            weights=None,
            seed=0,
            path=path,
        )
    )
    assert [h.name for h in renamed.heads] == ["hue", "outline"]
    assert renamed.heads[0].labels == ("r", "g", "b")
    dict_built = build(
        ModelConfig(
            backbone=None,
            alpha=None,
            input_shape=None,
            heads=(),
            weights=None,
            seed=0,
            path=_own_model(tmp_path / "d.keras", "dict"),
        )
    )
    assert sorted(h.name for h in dict_built.heads) == ["form", "tint"]


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        ((Head("only", None, None),), "the model has 2 outputs"),
        ((Head("a", 4, None), Head("b", None, None)), "has 4 classes in the config"),
    ],
)
def test_model_file_heads_must_fit_its_outputs(tmp_path, heads, message):
    path = _own_model(tmp_path / "own.keras")
    with pytest.raises(UserError, match=message):
        build(
            ModelConfig(
                backbone=None,
                alpha=None,
                input_shape=None,
                heads=heads,
                weights=None,
                seed=0,
                path=path,
            )
        )


def _strided(model) -> list[str]:
    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
        and tuple(layer.strides) != (1, 1)
    ]


def _features(model) -> str:
    """The layer whose output the heads' pooling averages."""
    pooling = model.get_layer("object_logits").input._keras_history.operation
    return pooling.input._keras_history.operation.name


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_block_table_names_each_backbones_strided_blocks(backbone):
    """BACKBONE_BLOCKS (which model.depth and output_stride read without TensorFlow) against
    the keras.applications models: the stem and each strided block's depthwise convolution
    are the stride-2 layers (the block read from the layer's name as build reads it), and
    every block name is a prefix of layers in the model."""
    model = build_model(
        ModelConfig(
            backbone=backbone,
            alpha=0.35,
            input_shape=(64, 64, 3),
            heads=(Head("object", 2, None),),
            weights=None,
            seed=0,
            output_stride=32,
        )
    )
    blocks = BACKBONE_BLOCKS[backbone]
    strided = _strided(model)
    assert len(strided) == STAGES
    for layer, block in zip(strided[1:], blocks.strided, strict=True):
        match = re.match(blocks.layers, layer)
        assert match and int(match[1] or 0) == block, (layer, block)
    names = [layer.name for layer in model.layers]
    for name in blocks.names.values():
        assert any(n.startswith(name + "_") for n in names), name


@pytest.mark.parametrize(
    ("backbone", "depth", "last_layer", "stride"),
    [
        ("mobilenet_v1", 4, "conv_pw_11_relu", 16),
        ("mobilenet_v1", "conv_pw_8", "conv_pw_8_relu", 16),
        ("mobilenet_v1", 1, "conv_pw_1_relu", 2),
        ("mobilenet_v2", 3, "block_5_add", 8),
        ("mobilenet_v2", "block_16", "block_16_project_BN", 32),
        ("mobilenet_v2", "expanded_conv", "expanded_conv_project_BN", 2),
        ("mobilenet_v3_small", 1, "conv_bn", 2),
        ("mobilenet_v3_small", 4, "expanded_conv_7_add", 16),
        ("mobilenet_v3_large", "expanded_conv_12", "expanded_conv_12_project_bn", 32),
        ("mobilenet_v4_conv_small", 3, "block_3_relu", 8),
        ("mobilenet_v4_conv_medium", "block_10", "block_10_add", 16),
    ],
)
def test_depth_ends_the_backbone_where_it_says(tmp_path, backbone, depth, last_layer, stride):
    """The pooling follows the named block's output (its Add, where it has one); every layer
    keeps its Keras name and its weights are the whole backbone's; no layer of a later block
    is left; the kept stages set the stride."""
    raw = small_config(
        tmp_path,
        model={
            "backbone": backbone,
            "alpha": 0.35,
            "input_shape": [64, 48, 3],
            "depth": depth,
            "output_stride": stride,
        },
    )
    config = parse_config(raw, tmp_path, tmp_path / "c.yaml").model
    assert backbone_stride(config) == stride
    model = build_model(config)
    features = _features(model)
    # V3's activations after a convolution are named by Keras itself: step over one
    if last_layer == "conv_bn":
        assert model.get_layer(features).input._keras_history.operation.name == "conv_bn"
    else:
        assert features == last_layer
    whole = build_model(replace(config, last_block=None, output_stride=32))
    whole_names = {layer.name for layer in whole.layers}
    kept = [layer for layer in model.layers if layer.weights and "_logits" not in layer.name]
    assert kept and all(layer.name in whole_names for layer in kept)
    assert len(_strided(model)) == round(np.log2(stride))
    for layer in kept:
        for mine, theirs in zip(layer.weights, whole.get_layer(layer.name).weights, strict=True):
            assert np.array_equal(mine.numpy(), theirs.numpy())  # same seed, same arrays
    assert model.count_params() < whole.count_params()


def test_depth_and_output_stride_auto_keep_a_3_pixel_feature_map(tmp_path):
    """At 32×32 the whole V1 backbone is relaxed to stride 8; ended after stage 3 (stride 8)
    it needs no relaxing, and after stage 4 it is relaxed from 16 to 8."""
    for depth, kept, strided in ((3, 8, 3), (4, 16, 3)):
        raw = small_config(tmp_path, model={"input_shape": [32, 32, 1], "depth": depth})
        config = parse_config(raw, tmp_path, tmp_path / "c.yaml").model
        assert (backbone_stride(config), output_stride(config)) == (kept, 8)
        assert len(_strided(build_model(config))) == strided
