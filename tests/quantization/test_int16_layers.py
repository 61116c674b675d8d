"""`quantization.int16`: single layers at 16-bit activations through ai-edge-quantizer, read back
from the .tflite, run in TFLite Micro and LiteRT, compiled with Vela."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import (
    MICRO,
    REPO,
    digit_images,
    digits_model_config,
    digits_output_sqnr,
    small_config,
    write_config,
)

from generator.analysis.logits import dequantize, float_logits, sqnr_db
from generator.analysis.verify import integer_outputs
from generator.cli import main
from generator.config.schema import Head, ModelConfig, QuantizationConfig, VelaTarget
from generator.engines.litert import run_tflite
from generator.engines.tflite_file import read_tflite
from generator.engines.vela import compile_for_target
from generator.errors import UserError
from generator.model.build import build_model
from generator.quantization.convert import convert_to_tflite, tensor_layers

HEADS = ["digit", "parity"]
PLAIN = QuantizationConfig(io_dtype="uint8", per_channel=True)
RUN = ("conv_pw_5", "conv_dw_6")  # conv_pw_5's output stays 16-bit into conv_dw_6


def _layer_dtypes(content: bytes, model) -> dict[str, str]:
    """The output dtype of each computing operator, by Keras layer."""
    tflite = read_tflite(content)
    layers = tensor_layers(tflite, model, HEADS)
    return {
        layers[tflite.tensors[op.outputs[0]].name]: tflite.tensors[op.outputs[0]].dtype
        for op in tflite.operators
        if op.name not in ("QUANTIZE", "DEQUANTIZE")
    }


@pytest.fixture(scope="module")
def digits(digits_model_weights):
    model = build_model(digits_model_config(digits_model_weights))
    pixels, _ = digit_images()
    return model, pixels[1500:1550], pixels[1550:1600]


@pytest.mark.parametrize("io_dtype", ["uint8", "int8"])
def test_named_layers_are_int16_and_the_rest_int8(digits, tmp_path, io_dtype):
    model, calibration, held_out = digits
    quantization = QuantizationConfig(io_dtype=io_dtype, per_channel=True, int16=RUN)
    content = convert_to_tflite(model, calibration, (0.0, 1.0), quantization, heads=HEADS)
    assert convert_to_tflite(model, calibration, (0.0, 1.0), quantization, heads=HEADS) == content

    dtypes = _layer_dtypes(content, model)
    assert {layer for layer, dtype in dtypes.items() if dtype == "int16"} == set(RUN)
    assert {dtype for layer, dtype in dtypes.items() if layer not in RUN} == {"int8"}
    tflite = read_tflite(content)
    # QUANTIZE: into and out of the run, plus uint8 I/O (one in, one per head out).
    quantizes = 2 + (1 + len(HEADS) if io_dtype == "uint8" else 0)
    assert tflite.operator_counts()["QUANTIZE"] == quantizes
    assert [t.name for t in tflite.outputs] == HEADS == list(tflite.signature_outputs)
    assert [t.dtype for t in (*tflite.inputs, *tflite.outputs)] == [io_dtype] * 3
    pixel_zero = 0 if io_dtype == "uint8" else -128
    assert (tflite.inputs[0].scale, tflite.inputs[0].zero_point) == (
        pytest.approx(1 / 255),
        pixel_zero,
    )

    # TFLite Micro and LiteRT's built-in kernels (the same reference arithmetic) agree, and
    # they track the float model. XNNPACK rounds its own way, by CPU: not compared here.
    heads = digits_model_config().heads
    raw = integer_outputs(
        content=content, tflite=tflite, pixels=held_out, heads=heads, input_range=(0.0, 1.0)
    )
    for head in HEADS:
        np.testing.assert_array_equal(raw["litert_builtin"][head], raw[MICRO][head])
    logits = dequantize(raw[MICRO], tflite)
    expected = float_logits(model, held_out, (0.0, 1.0))
    for head in HEADS:
        agreement = np.mean(logits[head].argmax(1) == expected[head].argmax(1))
        assert agreement >= 0.9 and sqnr_db(expected[head], logits[head]) > 15

    # The NPU runs the int16 layers and the conversions between 8 and 16 bits.
    path = tmp_path / "mixed.tflite"
    path.write_bytes(content)
    for accelerator, system in [
        ("ethos-u55-128", "Ethos_U55_High_End_Embedded"),
        ("ethos-u85-256", "Ethos_U85_SYS_DRAM_Mid"),
    ]:
        target = VelaTarget(accelerator, system, "Shared_Sram")
        result = compile_for_target(
            tflite_path=path,
            target=target,
            optimise="Performance",
            output_dir=tmp_path / accelerator,
        )
        assert result.cpu_operators == 0 and result.npu_operators > 0


def test_uint8_io_is_the_int8_model_shifted_by_128(digits):
    """The uint8 I/O generator adds computes exactly what the quantizer's int8 I/O does (in
    LiteRT's reference kernels, which every CPU runs alike)."""
    model, calibration, held_out = digits
    outputs = {}
    for io_dtype, shift in (("uint8", 0), ("int8", 128)):
        quantization = QuantizationConfig(io_dtype=io_dtype, per_channel=True, int16=RUN)
        content = convert_to_tflite(model, calibration, (0.0, 1.0), quantization, heads=HEADS)
        pixels = (held_out[:10].astype(np.int16) - shift).astype(io_dtype)
        outputs[io_dtype] = [
            values.astype(int) + shift for values in run_tflite(content, pixels, "litert_builtin")
        ]
    for uint8, int8 in zip(outputs["uint8"], outputs["int8"], strict=True):
        np.testing.assert_array_equal(uint8, int8)


def _wide_range(weights):
    """The digits model with `conv_pw_5`'s output made hard for 8 bits: its first channel is
    always 6 (batch normalization scale 0, shift 6; `conv_dw_6` ignores it) and every other
    channel is 100 times smaller (`conv_dw_6` multiplies it back), so the int8 step the range
    [0, 6] needs is larger than most values. 16-bit activations hold them."""
    model = build_model(digits_model_config(weights))
    norm = model.get_layer("conv_pw_5_bn")
    gamma, beta, mean, variance = norm.get_weights()
    gamma[1:] /= 100
    beta[1:] /= 100
    gamma[0], beta[0] = 0, 6
    norm.set_weights([gamma, beta, mean, variance])
    depthwise = model.get_layer("conv_dw_6")
    (kernel,) = depthwise.get_weights()
    kernel[:, :, 1:, :] *= 100
    kernel[:, :, 0, :] = 0
    depthwise.set_weights([kernel])
    return model


def test_a_run_of_int16_layers_repairs_a_wide_activation_range(digits_model_weights):
    model = _wide_range(digits_model_weights)
    pixels, _ = digit_images()
    calibration, held_out = pixels[1500:1550], pixels[1550:1600]

    def sqnr(quantization):
        content = convert_to_tflite(model, calibration, (0.0, 1.0), quantization, heads=HEADS)
        return digits_output_sqnr(model, content, held_out)

    plain = sqnr(PLAIN)
    run = sqnr(dataclasses.replace(PLAIN, int16=RUN))
    alone = sqnr(dataclasses.replace(PLAIN, int16=("conv_pw_5",)))
    assert run > plain + 10
    # Alone, the layer's output goes back to int8 before conv_dw_6: the same loss as before.
    assert alone < run - 10


def test_int16_layers_with_kept_float_layers_and_by_operator_type(digits):
    model, calibration, _ = digits
    quantization = QuantizationConfig(
        io_dtype="uint8", per_channel=True, keep_float=("conv_pw_13",), int16=("MEAN", "conv1")
    )
    content = convert_to_tflite(model, calibration, (0.0, 1.0), quantization, heads=HEADS)
    dtypes = _layer_dtypes(content, model)
    mean = [
        layer
        for layer, dtype in dtypes.items()
        if "global_average_pooling" in layer or layer == "conv1"
    ]
    assert len(mean) == 2 and all(dtypes[layer] == "int16" for layer in mean)
    assert dtypes["conv_pw_13"] == "float32"
    assert {dtype for layer, dtype in dtypes.items() if layer not in (*mean, "conv_pw_13")} == {
        "int8"
    }


@pytest.mark.parametrize(
    ("backbone", "int16", "fragment"),
    [
        ("mobilenet_v1", ("conv_pw5",), "'conv_pw5' is no layer of the model: did you mean"),
        ("mobilenet_v1", ("SOFTMAX",), "quantization.int16: the model has no SOFTMAX operator"),
        ("mobilenet_v3_small", ("HARD_SWISH",), "no 16-bit activations for HARD_SWISH"),
    ],
)
def test_layers_int16_cannot_take_are_refused(backbone, int16, fragment):
    heads = (Head("digit", 10, None), Head("parity", 2, None))
    model = build_model(
        ModelConfig(
            backbone=backbone,
            alpha=0.25,
            input_shape=(32, 32, 1),
            heads=heads,
            weights=None,
            seed=0,
        )
    )
    pixels, _ = digit_images()
    quantization = QuantizationConfig(io_dtype="uint8", per_channel=True, int16=int16)
    with pytest.raises(UserError, match=r"quantization\.int16") as error:
        convert_to_tflite(model, pixels[:10], (0.0, 1.0), quantization, heads=HEADS)
    assert fragment in str(error.value)


def test_a_build_with_int16_layers_reports_them(tmp_path, capsys):
    """End to end on the repo's photos: Vela, TFLite Micro's verification and arena, the C
    arrays and the report, whose figures are read back from the .tflite."""
    config = small_config(tmp_path, quantization={"int16": ["conv_pw_1", "conv_dw_2"]})
    assert main(["build", str(write_config(tmp_path, config))]) == 0
    out = capsys.readouterr()
    assert "ai_edge" not in out.out + out.err and "Calibration" not in out.out + out.err
    folder = tmp_path / "out" / "small"
    info = json.loads((folder / "small_quantization_info.json").read_text())
    tflite = read_tflite((folder / "small.tflite").read_bytes())
    int16 = [t for t in tflite.tensors if t.dtype == "int16"]
    assert info["quantization"]["int16"] == ["conv_pw_1", "conv_dw_2"]
    assert info["int16_tensors"] == len(int16) >= 3 and info["fully_quantized"]
    assert info["layer_errors"] is None
    vela = info["vela"]["ethos-u55-128"]
    assert vela["cpu_operators"] == 0 and vela["npu_operators"] > 0
    markdown = (folder / "small_report.md").read_text()
    assert "Build without `quantization.int16` to see the int8 per-layer error." in markdown
    assert (folder / "small_model.h").exists()


def test_compare_measures_the_mixed_model_with_int16_layers(tmp_path):
    config = small_config(tmp_path, quantization={"int16": ["conv_pw_1", "conv_dw_2"]})
    path = write_config(tmp_path, config)
    assert main(["compare", str(path), "--modes", "full_integer,mixed"]) == 0
    folder = tmp_path / "out" / "small"
    info = json.loads((folder / "small_compare.json").read_text())
    rows = {row["mode"]: row for row in info["modes"]}
    mixed = read_tflite((folder / rows["mixed"]["tflite"]).read_bytes())
    int16 = sum(t.dtype == "int16" for t in mixed.tensors)
    assert rows["mixed"]["dtypes"]["int16"] == int16 >= 3
    assert "int16" not in rows["full_integer"]["dtypes"]
    assert rows["mixed"]["vela"]["ethos-u55-128"]["cpu_operators"] == 0
    assert rows["mixed"]["tflm_arena_bytes"] > 0


def test_int16_layers_with_quantization_aware_training_are_refused(tmp_path, capsys):
    digits = REPO / "representative_data" / "digits"
    config = small_config(
        tmp_path,
        model={"input_shape": [32, 32, 1]},
        train={"data": str(digits / "train.csv"), "qat": {"epochs": 1}},
        quantization={"int16": ["conv_pw_5"]},
    )
    assert main(["validate", str(write_config(tmp_path, config))]) == 2
    err = capsys.readouterr().err.strip()
    assert "quantization.int16: quantization-aware training learns 8-bit ranges" in err
    assert len(err.splitlines()) == 1
