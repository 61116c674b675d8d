"""Pretrained backbone weights (`model.pretrained`): the ImageNet weights Keras publishes for
`keras.applications`, or the backbone of a local file, loaded layer by layer into our model.

- `imagenet` resolves to Keras's own file for the backbone, alpha and input size, fetched once
  into Keras's cache (`$KERAS_HOME/models`, `~/.keras/models` by default) with
  `keras.utils.get_file`, as `keras.applications` does. Before downloading, the host is tried
  for at most `CONNECT_SECONDS`; a stalled download gives up after `STALL_SECONDS` without
  data. Offline and not cached, the build fails in one line that names the file, its address
  and where to put it.
- Keras publishes one file per square input side it trained at (`IMAGENET_WEIGHTS`); any
  other input takes the file of the nearest side (ties: the larger). A convolution's weights
  do not depend on the image size, so they carry over; the record names the file used.
- A file: a Keras `.h5` (such as a downloaded copy of those files) is read as Keras reads one
  into `keras.applications` models, its layers with weights in order; a `.keras` model (such
  as another build's) by layer name (`_assign`). The first layer the file lacks or holds in
  another shape fails the build in one line naming it.
- Only the backbone is loaded: the heads (the layers that give the model's outputs) keep their
  seeded initialisation, since they are made for this config's classes.
- Grayscale input (C = 1) from RGB weights: the first convolution's kernel is summed over its
  three input channels, which gives exactly the RGB network's response to a gray image
  (R = G = B); the record says so.
- `output_stride` changes only strides and padding, so every weight fits as it is.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np
from keras.src.backend.config import keras_home

from generator.config.schema import IMAGENET, IMAGENET_WEIGHTS, ModelConfig
from generator.errors import UserError
from generator.model.keras_file import load_keras_file
from generator.model.layers import all_layers
from generator.support.quiet import muted

CONNECT_SECONDS = 5.0
STALL_SECONDS = 20.0

_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"

# keras/src/applications/mobilenet_v3.py: the md5 of each no-top file, checked by get_file.
_V3_NO_TOP_MD5 = {
    "large_224_0.75_float": "40af19a13ebea4e2ee0c676887f69a2e",
    "large_224_1.0_float": "07fb09a5933dd0c8eaafa16978110389",
    "small_224_0.75_float": "ebdb5cc8e0b497cd13a7c275d475c819",
    "small_224_1.0_float": "d3e8ec802a04aa4fc771ee12a9a9b836",
}


# A .h5's layers with weights in order, or a .keras model's by layer name.
Stored = list[tuple[str, list[np.ndarray]]] | dict[str, list[np.ndarray]]


@dataclass(frozen=True)
class PublishedFile:
    name: str
    url: str
    md5: str | None
    side: int  # the square input side the weights were trained at


@dataclass(frozen=True)
class PretrainedWeights:
    """What the backbone was started from, for the record."""

    source: str  # "imagenet", or the file as the config gave it
    file: str  # the file read (for imagenet, its name in Keras's cache)
    url: str | None  # where Keras publishes it (imagenet only)
    trained_side: int | None  # the input side the published weights were trained at
    layers: int  # backbone layers whose weights were loaded
    derived: tuple[str, ...]  # weights changed to fit, one sentence each


def published_file(config: ModelConfig) -> PublishedFile:
    """Keras's ImageNet file (no top) for the backbone, alpha and input size, named exactly as
    keras.applications names it."""
    _, sides = IMAGENET_WEIGHTS[config.backbone]
    height, width, _ = config.input_shape
    side = height if height == width and height in sides else _nearest_side(sides, height, width)
    alpha = config.alpha
    if config.backbone == "mobilenet_v1":
        alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
        name = f"mobilenet_{alpha_text}_{side}_tf_no_top.h5"
        return PublishedFile(name, f"{_BASE_URL}mobilenet/{name}", None, side)
    if config.backbone == "mobilenet_v2":
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{side}_no_top.h5"
        return PublishedFile(name, f"{_BASE_URL}mobilenet_v2/{name}", None, side)
    model_name = f"{config.backbone.removeprefix('mobilenet_v3_')}_224_{float(alpha)}_float"
    name = f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"
    return PublishedFile(name, f"{_BASE_URL}mobilenet_v3/{name}", _V3_NO_TOP_MD5[model_name], side)


def _nearest_side(sides: tuple[int, ...], height: int, width: int) -> int:
    mean = (height + width) / 2
    return min(sides, key=lambda side: (abs(side - mean), -side))


def load_pretrained(model: keras.Model, config: ModelConfig) -> PretrainedWeights:
    """Load the backbone weights `config.pretrained` names into `model`; return what was done."""
    if config.pretrained == IMAGENET:
        published = published_file(config)
        path = fetch_published(published)
        try:
            stored = _h5_layers(path)
        except UserError as error:  # a cut-short copy: V1 and V2 files have no hash to check
            raise UserError(f"{error}; or delete {path} to download it again") from None
        source, file, url, side = IMAGENET, published.name, published.url, published.side
    else:
        path = Path(config.pretrained)
        stored = _keras_layers(path) if path.suffix == ".keras" else _h5_layers(path)
        source, file, url, side = str(path), str(path), None, None
    loaded, derived = _assign(model, stored, file, config)
    return PretrainedWeights(source, file, url, side, loaded, tuple(derived))


def fetch_published(published: PublishedFile) -> Path:
    """The published file from Keras's cache, downloaded into it first when missing."""
    home = Path(keras_home()).expanduser()
    if not os.access(home, os.W_OK):  # where keras.utils.get_file then keeps its downloads
        home = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / ".keras"
    cached = home / "models" / published.name
    if not cached.is_file() and not urllib.request.getproxies():
        _check_reachable(published, cached)  # (through a proxy, the download tries itself)
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(STALL_SECONDS)
    try:
        with muted():  # get_file prints a progress bar
            return Path(
                keras.utils.get_file(
                    published.name,
                    published.url,
                    cache_dir=str(home),
                    cache_subdir="models",
                    file_hash=published.md5,
                )
            )
    except Exception as error:  # get_file raises a bare Exception for a failed fetch
        raise UserError(
            f"model.pretrained: cannot download {published.name} ({str(error).splitlines()[0]}): "
            f"download {published.url} to {cached}, or run once with network"
        ) from None
    finally:
        socket.setdefaulttimeout(saved)


def _check_reachable(published: PublishedFile, cached: Path) -> None:
    """Fail within CONNECT_SECONDS when the host cannot be reached (no network, a resolver that
    does not answer): the name lookup alone has no timeout, so it runs in a thread that is
    given up on."""
    host = urllib.parse.urlsplit(published.url).hostname
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=CONNECT_SECONDS).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(CONNECT_SECONDS)
    if not outcome or outcome[0] is not None:
        reason = f"no answer from {host} in {CONNECT_SECONDS:g} s" if not outcome else outcome[0]
        raise UserError(
            f"model.pretrained: {published.name} is not in Keras's cache and cannot be "
            f"downloaded ({reason}): download {published.url} to {cached}, or run once "
            "with network"
        )


def _h5_layers(path: Path) -> list[tuple[str, list[np.ndarray]]]:
    """(layer name, arrays) of each layer with weights of a Keras .h5, in order (the format
    keras.applications publishes, and what model.save('x.h5') writes)."""
    try:
        with h5py.File(path, "r") as handle:
            root = handle.get("model_weights", handle)
            if "layer_names" not in root.attrs:
                raise UserError(
                    f"model.pretrained: {path.name} holds no layer names (not Keras's .h5 "
                    "format): give Keras's published file or a .keras model"
                )
            stored = []
            for name in _texts(root.attrs["layer_names"]):
                group = root[name]
                arrays = [np.asarray(group[w]) for w in _texts(group.attrs["weight_names"])]
                if arrays:
                    stored.append((name, arrays))
            return stored
    except OSError as error:
        raise UserError(
            f"model.pretrained: cannot read {path.name} as HDF5 ({str(error).splitlines()[0]}): "
            "give Keras's published .h5 file or a .keras model"
        ) from None


def _texts(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _keras_layers(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> arrays of a .keras model (e.g. another build's `<name>.keras`)."""
    model = load_keras_file(path, "model.pretrained")
    return {layer.name: [np.asarray(w) for w in layer.weights] for layer in all_layers(model)}


def backbone_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers with weights that are not heads. A head is the last layer with weights before
    a model output (a model file may end its heads in a Reshape or an Activation)."""
    heads = set()
    for tensor in keras.tree.flatten(model.output):
        layer = tensor._keras_history.operation
        while not layer.weights and len(keras.tree.flatten(layer.input)) == 1:
            layer = keras.tree.flatten(layer.input)[0]._keras_history.operation
        heads.add(id(layer))
    return [
        layer
        for layer in all_layers(model)
        if layer.weights and not isinstance(layer, keras.Model) and id(layer) not in heads
    ]


def _assign(
    model: keras.Model, stored: Stored, file: str, config: ModelConfig
) -> tuple[int, list[str]]:
    """Set every backbone layer from `stored`, checking all of them before changing any.

    A .h5 is read as Keras reads one into `keras.applications` models: its layers with weights
    in order, one for each of the model's (Keras 2 named MobileNetV3's layers otherwise than
    Keras 3 does: `Conv/BatchNorm` for `conv_bn`). A .keras model's layers are found by name,
    since another build's model may hold other heads.
    """
    layers = backbone_layers(model)
    values, derived = [], []
    for index, layer in enumerate(layers):
        if isinstance(stored, list):
            if index == len(stored):
                _mismatch(
                    file,
                    config,
                    f"its layer {layer.name!r} has no counterpart: the file holds "
                    f"{len(stored)} layers with weights, the backbone {len(layers)}",
                )
            name, arrays = stored[index]
        else:
            name, arrays = layer.name, stored.get(layer.name)
            if arrays is None:
                _mismatch(file, config, f"its layer {layer.name!r} is not in the file")
        theirs = "the file's" if name == layer.name else f"the file's {name!r}"
        if len(arrays) != len(layer.weights):
            _mismatch(
                file,
                config,
                f"layer {layer.name!r} has {len(layer.weights)} weights, {theirs} {len(arrays)}",
            )
        fitted = []
        for weight, array in zip(layer.weights, arrays, strict=True):
            want = tuple(weight.shape)
            if array.shape != want and index == 0 and _gray_from_rgb(array.shape, want):
                array = array.sum(axis=2, keepdims=True)
                derived.append(
                    f"{layer.name}: kernel summed over its 3 RGB input channels for the "
                    "grayscale input (the same response as the RGB weights to a gray image)"
                )
            if array.shape != want:
                _mismatch(
                    file,
                    config,
                    f"layer {layer.name!r} {weight.name} is {_shape(want)}, {theirs} "
                    f"{_shape(array.shape)}",
                )
            fitted.append(array.astype(weight.dtype))
        values.append(fitted)
    for layer, fitted in zip(layers, values, strict=True):
        layer.set_weights(fitted)
    return len(layers), derived


def _gray_from_rgb(stored: tuple, wanted: tuple) -> bool:
    """A convolution kernel (h, w, 3, filters) stored for a (h, w, 1, filters) one."""
    return (
        len(stored) == 4
        and len(wanted) == 4
        and stored[2] == 3
        and wanted[2] == 1
        and stored[:2] + stored[3:] == wanted[:2] + wanted[3:]
    )


def _shape(shape: tuple) -> str:
    return "×".join(map(str, shape))


def _mismatch(file: str, config: ModelConfig, difference: str) -> None:
    name = os.path.basename(file)
    raise UserError(
        f"model.pretrained: {name} does not fit {config.backbone} alpha {config.alpha} "
        f"({difference}): give weights saved from the same backbone and alpha"
    )
