from dataclasses import replace

import keras
import numpy as np
import pytest
from conftest import digits_model_config

from generator.build import build_model
from generator.config import BACKBONES, Head, ModelConfig
from generator.errors import UserError


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_gives_one_logits_head_per_entry(backbone):
    heads = (Head("object", 4, None), Head("light", 2, None))
    model = build_model(ModelConfig(backbone, 0.35, (40, 32, 1), heads, None, 0))
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
