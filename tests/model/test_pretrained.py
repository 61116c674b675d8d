"""model.pretrained: weights files the tests make from the same architectures (no network)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from conftest import REPO, small_config, write_config, write_digits

from generator.config.schema import IMAGENET_INPUT_RANGE, Head, ModelConfig
from generator.errors import UserError
from generator.model.build import build, build_model
from generator.model.pretrained import backbone_layers, published_file

HEADS = (Head("object", 3, None), Head("light", 2, None))


def _model_config(path, **changes) -> ModelConfig:
    settings = dict(
        backbone="mobilenet_v1",
        alpha=0.25,
        input_shape=(48, 40, 3),
        heads=HEADS,
        weights=None,
        seed=0,
        pretrained=path,
    )
    return ModelConfig(**(settings | changes))


def _published_like(path: Path, backbone=keras.applications.MobileNet, seed=1, **kwargs) -> Path:
    """A backbone saved as Keras publishes its ImageNet weights (a layer-named .h5), with
    weights unlike any initialisation: seeded noise, positive variances."""
    model = backbone(
        input_shape=(224, 224, 3), include_top=False, weights=None, pooling="avg", **kwargs
    )
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        noise = rng.normal(0, 0.1, weight.shape).astype("float32")
        weight.assign(np.abs(noise) + 0.5 if "variance" in weight.path else noise)
    model.save(path)
    return path


def _file_arrays(path: Path) -> dict[str, list[np.ndarray]]:
    """The file's arrays per layer, read with h5py alone."""
    with h5py.File(path, "r") as handle:
        root = handle["model_weights"]
        return {
            name: [np.asarray(root[name][w]) for w in root[name].attrs["weight_names"]]
            for name in root.attrs["layer_names"]
        }


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory) -> Path:
    return _published_like(tmp_path_factory.mktemp("pretrained") / "v1.h5", alpha=0.25)


@pytest.mark.parametrize("output_stride", [None, 8])
def test_loaded_weights_equal_the_file_layer_by_layer(v1_file, output_stride):
    """At another input size (48×40, the file was saved at 224×224) and output stride."""
    built = build(_model_config(v1_file, output_stride=output_stride))
    stored = _file_arrays(v1_file)
    layers = backbone_layers(built.model)
    assert len(layers) == built.pretrained.layers == 54  # 27 convolutions, 27 batch norms
    for layer in layers:
        for weight, array in zip(layer.weights, stored[layer.name], strict=True):
            assert np.array_equal(np.asarray(weight), array), layer.name
    # The heads keep their seeded initialisation, as without pretrained weights.
    scratch = build_model(_model_config(None, output_stride=output_stride))
    for head in HEADS:
        name = f"{head.name}_logits"
        assert np.array_equal(built.model.get_layer(name).kernel, scratch.get_layer(name).kernel)
    assert built.pretrained.derived == ()


def test_grayscale_first_convolution_is_the_rgb_kernels_summed(v1_file):
    gray = build(_model_config(v1_file, input_shape=(48, 40, 1))).model
    rgb = build(_model_config(v1_file)).model
    kernel = _file_arrays(v1_file)["conv1"][0]
    assert np.array_equal(
        np.asarray(gray.get_layer("conv1").kernel), kernel.sum(axis=2)[:, :, None]
    )
    # So a gray image gives the RGB network's response to the same image in three channels.
    image = np.random.default_rng(0).uniform(-1, 1, (2, 48, 40, 1)).astype("float32")
    gray_features = keras.Model(gray.input, gray.get_layer("conv_pw_13_relu").output)(image)
    rgb_features = keras.Model(rgb.input, rgb.get_layer("conv_pw_13_relu").output)(
        np.repeat(image, 3, -1)
    )
    np.testing.assert_allclose(gray_features, rgb_features, rtol=1e-4, atol=1e-5)


def test_a_keras_model_of_another_build_gives_its_backbone(tmp_path):
    other = build_model(_model_config(None, heads=(Head("digit", 10, None),), seed=7))
    path = tmp_path / "other.keras"
    other.save(path)
    built = build(_model_config(path, input_shape=(32, 32, 3)))
    for layer in backbone_layers(built.model):
        for mine, theirs in zip(layer.weights, other.get_layer(layer.name).weights, strict=True):
            assert np.array_equal(np.asarray(mine), np.asarray(theirs)), layer.name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"alpha": 0.5},
            "model.pretrained: v1.h5 does not fit mobilenet_v1 alpha 0.5 (layer 'conv1' kernel "
            "is 3×3×3×16, the file's 3×3×3×8): give weights saved from the same backbone and "
            "alpha",
        ),
        (
            {"backbone": "mobilenet_v2", "alpha": 0.35},
            "model.pretrained: v1.h5 does not fit mobilenet_v2 alpha 0.35 (layer 'Conv1' kernel "
            "is 3×3×3×16, the file's 'conv1' 3×3×3×8): give weights saved from the same "
            "backbone and alpha",
        ),
    ],
)
def test_a_file_of_another_architecture_names_the_first_layer_that_differs(
    v1_file, changes, message
):
    with pytest.raises(UserError) as caught:
        build(_model_config(v1_file, **changes))
    assert str(caught.value) == message


def test_a_h5_is_read_in_layer_order_as_keras_reads_published_files(tmp_path):
    """Keras 2 saved MobileNetV3's ImageNet weights under other layer names (`Conv/BatchNorm`
    where Keras 3 builds `conv_bn`): a .h5's layers pair with the backbone's in order."""
    path = _published_like(tmp_path / "v3.h5", keras.applications.MobileNetV3Small, alpha=0.75)
    with h5py.File(path, "r+") as handle:
        root = handle["model_weights"]
        names = [
            str(name, "utf8") if isinstance(name, bytes) else name
            for name in root.attrs["layer_names"]
        ]
        for index, name in enumerate(names):
            root.move(name, f"keras2_{index}")
        root.attrs["layer_names"] = [f"keras2_{i}".encode() for i in range(len(names))]
    config = _model_config(path, backbone="mobilenet_v3_small", alpha=0.75, input_shape=(64, 64, 1))
    built = build(config)
    stored = [arrays for arrays in _file_arrays(path).values() if arrays]
    layers = backbone_layers(built.model)
    assert len(layers) == len(stored) == built.pretrained.layers
    assert built.pretrained.derived[0].startswith("conv: kernel summed over its 3 RGB")
    for layer, arrays in list(zip(layers, stored, strict=True))[1:]:
        for weight, array in zip(layer.weights, arrays, strict=True):
            assert np.array_equal(np.asarray(weight), array), layer.name


def test_a_model_file_ending_in_a_layer_without_weights_keeps_its_heads():
    image = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="body")(image))
    logits = keras.layers.Dense(3, name="head")(features)
    model = keras.Model(image, keras.layers.Activation("linear", name="out")(logits))
    assert [layer.name for layer in backbone_layers(model)] == ["body"]


def test_a_file_without_layer_names_is_refused(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as handle:
        handle["kernel"] = np.zeros(3)
    with pytest.raises(UserError, match=r"^model.pretrained: plain.h5 holds no layer names"):
        build(_model_config(path))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cut.h5", "model.pretrained: cannot read cut.h5 as HDF5 ("),
        ("cut.keras", "model.pretrained: {path} is not a Keras archive (not a zip file"),
    ],
)
def test_a_corrupt_file_is_named(tmp_path, name, message):
    path = tmp_path / name
    path.write_bytes(b"not a weights file")
    with pytest.raises(UserError) as caught:
        build(_model_config(path))
    assert str(caught.value).startswith(message.format(path=path))


@pytest.mark.parametrize(
    ("backbone", "alpha", "shape", "name"),
    [
        ("mobilenet_v1", 0.25, (96, 96, 3), "mobilenet_2_5_128_tf_no_top.h5"),
        ("mobilenet_v1", 1.0, (160, 160, 1), "mobilenet_1_0_160_tf_no_top.h5"),
        ("mobilenet_v1", 0.5, (200, 100, 3), "mobilenet_5_0_160_tf_no_top.h5"),
        (
            "mobilenet_v2",
            0.35,
            (96, 96, 3),
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5",
        ),
        (
            "mobilenet_v2",
            1.4,
            (300, 300, 3),
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.4_224_no_top.h5",
        ),
        (
            "mobilenet_v3_small",
            0.75,
            (96, 96, 3),
            "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5",
        ),
        (
            "mobilenet_v3_large",
            1.0,
            (32, 32, 1),
            "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        ),
    ],
)
def test_imagenet_names_the_file_keras_applications_would_fetch(backbone, alpha, shape, name):
    published = published_file(
        _model_config("imagenet", backbone=backbone, alpha=alpha, input_shape=shape)
    )
    assert published.name == name
    assert published.url.startswith("https://storage.googleapis.com/tensorflow/keras-applications/")
    assert published.url.endswith("/" + name)


def _imagenet_build_config(tmp_path: Path, **train) -> Path:
    data = tmp_path / "digits"
    write_digits(data, range(0, 120))
    heads = [{"name": "digit", "num_classes": 10}, {"name": "parity", "labels": ["even", "odd"]}]
    config = small_config(
        tmp_path,
        model={"input_shape": [32, 32, 1], "heads": heads, "pretrained": "imagenet"},
        calibration={"data": str(data), "samples": 16, "holdout": 8},
        train={
            "data": str(data / "labels.csv"),
            "epochs": 3,
            "batch_size": 16,
            "early_stopping": 0,
            **train,
        },
    )
    return write_config(tmp_path, config)


def _run_build(config: Path, keras_home: Path, *prefix: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "generator", "build", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "KERAS_HOME": str(keras_home)},
    )


def test_imagenet_from_keras_cache_fine_tunes_frozen_then_unfrozen(tmp_path):
    """`imagenet` takes the file from Keras's cache without the network (a file this test
    made, under the name Keras publishes); two epochs train the heads alone, then the whole
    network at a tenth of the rate. The record names the file and marks the frozen epochs,
    and the input follows the weights' [-1, 1] scaling. (That frozen epochs keep the backbone
    as loaded is tests/model/test_train.py's.)"""
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    _published_like(tmp_path / "v1.h5", alpha=0.25)
    shutil.copy(tmp_path / "v1.h5", cache / "mobilenet_2_5_128_tf_no_top.h5")
    config = _imagenet_build_config(tmp_path, freeze_backbone_epochs=2, backbone_learning_rate=0.1)
    run = _run_build(config, tmp_path / "keras_home")
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "out" / "small"
    info = json.loads((folder / "small_quantization_info.json").read_text())
    pretrained = info["model"]["pretrained"]
    assert pretrained["source"] == "imagenet"
    assert pretrained["file"] == "mobilenet_2_5_128_tf_no_top.h5"
    assert pretrained["trained_side"] == 128
    assert pretrained["layers_loaded"] == 54
    assert pretrained["derived"][0].startswith("conv1: kernel summed over its 3 RGB input")
    assert pretrained["input_range_from_pretrained"] is True
    assert not any("pretrained" in warning for warning in info["warnings"])
    low, high = info["input"]["float_range"]
    assert (low, high) == pytest.approx(IMAGENET_INPUT_RANGE, abs=1e-6)
    training = info["training"]
    assert training["frozen_epochs"] == 2 and training["epochs_run"] == 3
    assert training["backbone_learning_rate"] == 0.1
    report = (folder / "small_report.md").read_text()
    assert "The backbone started from the ImageNet weights Keras publishes: " in report
    assert "Epochs 1 to 2 trained the heads alone" in report
    assert "backbone unfrozen from epoch 3" in (folder / "small_report.html").read_text()
    # The kept epoch's backbone: as loaded from a frozen epoch, trained from epoch 3.
    saved = keras.saving.load_model(folder / "small.keras", compile=False)
    stored = _file_arrays(tmp_path / "v1.h5")["conv_pw_13"][0]
    unchanged = np.array_equal(np.asarray(saved.get_layer("conv_pw_13").kernel), stored)
    assert unchanged == (training["best_epoch"] <= 2)


def test_an_untrained_imagenet_build_with_another_pixel_range_warns(tmp_path):
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    _published_like(cache / "mobilenet_2_5_128_tf_no_top.h5", alpha=0.25)
    heads = [{"name": "digit", "num_classes": 10}]
    config = small_config(
        tmp_path,
        model={"input_shape": [32, 32, 3], "heads": heads, "pretrained": "imagenet"},
        calibration={"input_range": [0.0, 1.0]},
    )
    run = _run_build(write_config(tmp_path, config), tmp_path / "keras_home")
    assert run.returncode == 0, run.stderr
    info = json.loads((tmp_path / "out" / "small" / "small_quantization_info.json").read_text())
    assert info["model"]["pretrained"]["input_range_from_pretrained"] is False
    assert info["model"]["pretrained"]["derived"] == []
    assert (
        "The heads are random (the backbone is pretrained, but train: is not set): use this "
        "build for sizing and latency only." in info["warnings"]
    )
    assert (
        "The pretrained weights were trained on pixels scaled to [-1, 1], and "
        "calibration.input_range maps them to [0, 1]: remove calibration.input_range to follow "
        "the weights' scaling." in info["warnings"]
    )


def test_imagenet_without_network_fails_in_one_line_within_seconds(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to take the network away")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n needs a privilege this run lacks: {probe.stderr.decode().strip()}")
    config = _imagenet_build_config(tmp_path)
    start = time.perf_counter()
    run = _run_build(config, tmp_path / "empty_keras_home", "unshare", "-n")
    seconds = time.perf_counter() - start
    assert run.returncode == 2
    # Progress lines, then the error in one line.
    lines = [line for line in run.stderr.strip().splitlines() if line.startswith("error")]
    assert len(lines) == 1 and run.stderr.strip().endswith(lines[0]), run.stderr
    cached = tmp_path / "empty_keras_home" / "models" / "mobilenet_2_5_128_tf_no_top.h5"
    assert lines[0].startswith(
        "error: model.pretrained: mobilenet_2_5_128_tf_no_top.h5 is not in Keras's cache and "
        "cannot be downloaded ("
    )
    assert lines[0].endswith(
        "): download https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
        f"mobilenet_2_5_128_tf_no_top.h5 to {cached}, or run once with network"
    )
    assert seconds < 60  # TensorFlow's import included; the network wait is at most 5 s
    assert not (tmp_path / "out" / "small").exists()
    assert not (tmp_path / "empty_keras_home" / "models").exists()
