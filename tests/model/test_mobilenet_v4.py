"""MobileNetV4 Conv-Small and Conv-Medium (generator/model/mobilenet_v4.py) against the Model
Garden's published figures, and compiled for every Ethos-U family with nothing on the CPU."""

import keras
import numpy as np
import pytest

from generator.config.schema import (
    DEFAULT_SYSTEM,
    Head,
    ModelConfig,
    QuantizationConfig,
    VelaTarget,
)
from generator.engines.vela import compile_for_target
from generator.model.build import build_model
from generator.model.mobilenet_v4 import mobilenet_v4
from generator.quantization.convert import convert_to_tflite

TOP = 1280  # the Model Garden's last 1×1 convolution, after the pooling: not in our backbone


@pytest.mark.parametrize(
    ("table", "alpha", "parameters"),
    # official/vision/modeling/backbones/mobilenet_test.py: the backbone with its 1280 top,
    # batch normalization's moving statistics included
    [
        ("conv_small", 1.0, 2_518_112),
        ("conv_small", 0.75, 1_670_408),
        ("conv_medium", 1.0, 8_502_416),
        ("conv_medium", 0.75, 5_096_424),
    ],
)
def test_parameters_match_the_model_gardens_count(table, alpha, parameters):
    model = mobilenet_v4(table, input_tensor=keras.Input((224, 224, 3)), alpha=alpha)
    last = model.get_layer("conv_1").filters
    top = last * TOP + 4 * TOP  # a 1×1 convolution without bias, and its batch normalization
    assert model.count_params() + top == parameters


@pytest.mark.parametrize(
    ("table", "channels"),
    # the Model Garden's endpoints at alpha 1 (mobilenet_test.py): strides 4, 8, 16, 32
    [("conv_small", (32, 64, 96, 128)), ("conv_medium", (48, 80, 160, 256))],
)
def test_each_stage_ends_at_the_model_gardens_stride_and_width(table, channels):
    model = mobilenet_v4(table, input_tensor=keras.Input((224, 224, 3)), alpha=1.0)
    block_outputs = {}  # each block's last layer, in order: its output
    for layer in model.layers:
        if layer.name.startswith("block_"):
            block_outputs[layer.name.split("_")[1]] = layer.output.shape
    last_of_each_side = {shape[1]: shape[-1] for shape in block_outputs.values()}
    assert [last_of_each_side[224 // stride] for stride in (4, 8, 16, 32)] == list(channels)


@pytest.mark.parametrize("backbone", ["mobilenet_v4_conv_small", "mobilenet_v4_conv_medium"])
def test_every_ethos_u_family_runs_all_of_it(backbone, tmp_path):
    """Quantized to int8 and compiled by Vela for the U55, U65 and U85: every operator on the
    NPU (Vela's per-layer file says so)."""
    config = ModelConfig(
        backbone=backbone,
        alpha=0.25,
        input_shape=(48, 40, 3),
        heads=(Head("object", 3, None), Head("light", 2, None)),
        weights=None,
        seed=0,
    )
    model = build_model(config)
    pixels = np.random.default_rng(0).integers(0, 256, (8, 48, 40, 3), dtype=np.uint8)
    quantization = QuantizationConfig(io_dtype="uint8", per_channel=True)
    content = convert_to_tflite(model, pixels, (0.0, 1.0), quantization, heads=["object", "light"])
    path = tmp_path / "v4.tflite"
    path.write_bytes(content)
    for accelerator in ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256"):
        system, memory = DEFAULT_SYSTEM[accelerator.rsplit("-", 1)[0]]
        result = compile_for_target(
            tflite_path=path,
            target=VelaTarget(accelerator, system, memory),
            optimise="Performance",
            output_dir=tmp_path / accelerator,
        )
        assert result.cpu_operators == 0 and result.npu_operators > 40, accelerator
        assert result.compiled_operators == {"ethos-u": 1}
