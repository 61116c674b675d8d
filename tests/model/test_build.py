from dataclasses import replace

import keras
import numpy as np
import pytest
from conftest import digits_model_config

from generator.config.schema import BACKBONES, Head, ModelConfig
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
