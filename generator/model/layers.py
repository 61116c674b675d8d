"""Walking a Keras model's layers, nested models included: the build, training, QAT and the
converter's layer names all need the same list."""

from __future__ import annotations

import keras


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer, including those inside nested models."""
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if hasattr(layer, "layers"):
            layers.extend(all_layers(layer))
    return layers
