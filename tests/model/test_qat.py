"""Quantization-aware training: the fake quantization, the ranges in the .tflite, and a QAT
build end to end with its figures recomputed independently."""

import json

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import REPO, micro_by_hand, small_config, write_config
from test_cli import run_cli

from generator.config.loading import load_config
from generator.config.schema import Head, ModelConfig, QuantizationConfig
from generator.data.calibration import load_calibration_set
from generator.data.labelled import read_labelled
from generator.engines.tflite_file import read_tflite
from generator.model.build import build_model
from generator.model.qat import (
    ActivationQuantizer,
    activation_quantizers,
    calibrate,
    fake_quant_kernel,
    quantize_aware,
)
from generator.quantization.convert import convert_to_tflite

DIGITS = REPO / "representative_data" / "digits"
HEADS = (Head("digit", 10, None), Head("parity", 2, None))


def test_kernels_land_on_a_per_channel_int8_grid():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 5)).astype("float32")
    quantized = np.asarray(fake_quant_kernel(kernel))
    scale = np.abs(kernel).max(axis=(0, 1, 2)) / 127
    steps = quantized / scale
    assert np.allclose(steps, np.round(steps), atol=1e-4)
    assert np.abs(np.round(steps)).max() == 127
    depthwise = rng.normal(size=(3, 3, 6, 1)).astype("float32")  # 6 channels, multiplier 1
    steps = (
        np.asarray(fake_quant_kernel(depthwise, depthwise=True))
        / (np.abs(depthwise).max(axis=(0, 1, 3)) / 127)[None, None, :, None]
    )
    assert np.allclose(steps, np.round(steps), atol=1e-4)


@pytest.mark.parametrize("backbone", ["mobilenet_v1", "mobilenet_v2"])
def test_converted_activations_carry_the_qat_ranges(backbone):
    """Read back with LiteRT (not the code under test): every int8 activation's scale and zero
    point is the nudged range of a quantizer, and the input keeps the raw-pixel mapping."""
    model = build_model(
        ModelConfig(
            backbone=backbone,
            alpha=0.25,
            input_shape=(32, 32, 1),
            heads=HEADS,
            weights=None,
            seed=0,
        )
    )
    qat_model = quantize_aware(model, (0.0, 1.0))
    pixels = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 1), dtype=np.uint8)
    calibrate(qat_model, [pixels.astype("float32") / 255])
    for quantizer in activation_quantizers(qat_model)[1:]:  # widen: far from calibration
        quantizer.range_max.assign(quantizer.range_max * 1.5)
    content = convert_to_tflite(
        qat_model,
        pixels,
        (0.0, 1.0),
        QuantizationConfig(io_dtype="uint8", per_channel=True),
        heads=["digit", "parity"],
    )
    ranges = []
    for q in activation_quantizers(qat_model):
        low, high = float(q.range_min.numpy()), float(q.range_max.numpy())
        scale = (high - low) / 255
        ranges.append((scale, int(np.floor(-low / scale + 0.5)) - 128))
    interpreter = Interpreter(model_content=content)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    produced = {i for op in interpreter._get_ops_details() for i in op["outputs"]}
    activations = [details[i] for i in produced if details[i]["dtype"] == np.int8]
    assert len(activations) > 20
    for tensor in activations:
        scale, zero = tensor["quantization"]
        assert any(np.isclose(scale, s, rtol=1e-6) and zero == z for s, z in ranges), tensor
    assert {t.dtype for t in read_tflite(content).tensors} <= {"uint8", "int8", "int32"}


def test_qat_shares_the_float_layers_and_quantizes_where_the_converter_keeps_tensors():
    model = build_model(
        ModelConfig(
            backbone="mobilenet_v1",
            alpha=0.25,
            input_shape=(32, 32, 1),
            heads=HEADS,
            weights=None,
            seed=0,
        ),
        None,
    )
    qat_model = quantize_aware(model, (0.0, 1.0))
    assert {id(w) for w in model.weights} <= {id(w) for w in qat_model.weights}
    quantizers = [layer for layer in qat_model.layers if isinstance(layer, ActivationQuantizer)]
    # input, 27 conv/depthwise ReLU6 outputs, the pooled features, two heads
    assert len(quantizers) == 1 + 27 + 1 + 2
    assert float(quantizers[0].range_max.numpy()) == 1.0


@pytest.fixture(scope="module")
def qat_build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qat")
    heads = [
        {"name": "digit", "labels": [str(d) for d in range(10)]},
        {"name": "parity", "labels": ["even", "odd"]},
    ]
    config = small_config(
        folder,
        name="qat",
        model={"input_shape": [32, 32, 1], "heads": heads},
        calibration={"data": str(DIGITS / "images" / "train"), "samples": 40, "holdout": 10},
        train={
            "data": str(DIGITS / "train.csv"),
            "validation": 0.2,
            "epochs": 3,
            "augment": False,
            "qat": {"epochs": 1, "learning_rate": 0.0005},
        },
        evaluation={"data": str(DIGITS / "test.csv")},
    )
    config["name"] = "qat"
    path = write_config(folder, config)
    run = run_cli("build", str(path))
    assert run.returncode == 0, run.stderr
    return load_config(path), folder / "out" / "qat", run


def test_a_qat_build_is_fully_integer_with_uint8_io_and_reports_both_methods(qat_build):
    _, out, run = qat_build
    assert "[qat] quantization-aware training, 1 epochs" in run.stderr
    tflite = read_tflite((out / "qat.tflite").read_bytes())
    assert [t.dtype for t in (*tflite.inputs, *tflite.outputs)] == ["uint8"] * 3
    assert tflite.dtype_counts().get("float32", 0) == 0
    info = json.loads((out / "qat_quantization_info.json").read_text())
    assert info["accuracy"]["quantization"] == "qat"
    qat = info["training"]["qat"]
    assert qat["epochs_run"] == 1 and qat["activations_checked"] > 20
    assert qat["images_per_second"] > 0 and info["training"]["images_per_second"] > 0
    report = (out / "qat_report.md").read_text()
    assert "quantization-aware trained" in report and "post-training quantized instead" in report


def test_qat_accuracy_figures_equal_an_independent_recomputation(qat_build):
    """Float from the .keras in Keras, QAT from the .tflite in TFLite Micro, PTQ from converting
    the .keras again: each head's top-1 must be the JSON's."""
    config, out, _ = qat_build
    info = json.loads((out / "qat_quantization_info.json").read_text())
    data = read_labelled(config.evaluation.data, HEADS, (32, 32, 1), "evaluation.data")
    model = keras.saving.load_model(out / "qat.keras", compile=False)
    float_logits = model.predict(data.pixels.astype("float32") / 255, verbose=0)

    def tflm_top1(content: bytes) -> dict[str, np.ndarray]:
        order = read_tflite(content).outputs
        raw = micro_by_hand(content, data.pixels)
        return {
            tensor.name: values.argmax(axis=1) for tensor, values in zip(order, raw, strict=True)
        }

    qat = tflm_top1((out / "qat.tflite").read_bytes())
    calibration = config.calibration
    pixels = load_calibration_set(calibration, (32, 32, 1), config.model.seed).calibration
    post_training = tflm_top1(
        convert_to_tflite(
            model, pixels, calibration.input_range, config.quantization, heads=["digit", "parity"]
        )
    )
    for column, head in enumerate(HEADS):
        truth = data.labels[:, column]
        figures = info["accuracy"]["heads"][head.name]
        assert figures["float_top1"] == np.mean(float_logits[head.name].argmax(1) == truth)
        assert figures["quantized_top1"] == np.mean(qat[head.name] == truth)
        assert figures["post_training_top1"] == np.mean(post_training[head.name] == truth)


@pytest.mark.parametrize(
    "qat, message",
    [
        ("[3]", "train.qat: expected a mapping"),
        ("{epochs: 0}", "train.qat: epochs must be >= 1"),
        ("{epochs: 2, rate: 0.1}", "train.qat.rate: unknown key"),
        ("{learning_rate: -1}", "learning_rate > 0"),
    ],
)
def test_bad_qat_settings_are_refused(tmp_path, qat, message):
    config = small_config(
        tmp_path, train={"data": str(DIGITS / "train.csv")}, model={"input_shape": [32, 32, 1]}
    )
    path = write_config(tmp_path, config)
    run = run_cli("validate", str(path), "--set", f"train.qat={qat}")
    assert run.returncode == 2 and message in run.stderr, run.stderr
