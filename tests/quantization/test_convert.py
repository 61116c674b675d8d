import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from conftest import digit_images, digits_model_config, micro_by_hand

from generator.config.schema import (
    BACKBONES,
    DEFAULT_SYSTEM,
    Head,
    ModelConfig,
    QuantizationConfig,
    VelaTarget,
)
from generator.engines.tflite_file import read_tflite
from generator.engines.vela import compile_for_target
from generator.errors import UserError
from generator.model.build import build_model
from generator.quantization.convert import convert_to_tflite


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_converts_fully_integer(small_tflite, backbone):
    tflite = read_tflite(small_tflite(backbone))
    assert tflite.dtype_counts()["float32"] == 0
    assert [t.dtype for t in tflite.inputs] == ["uint8"]
    assert [t.dtype for t in tflite.outputs] == ["uint8", "uint8"]
    internal = {t.dtype for t in tflite.tensors} - {"uint8"}
    assert internal <= {"int8", "int32"}  # int8 activations and weights, int32 biases
    assert set(tflite.signature_outputs) == {"object", "light"}


def _narrow_images(count: int) -> np.ndarray:
    """Real digits squeezed into pixel values 60..180: no image reaches black or white."""
    pixels, _ = digit_images()
    return (60 + pixels[:count].astype(np.float32) * 120 / 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("input_range", "io_dtype", "scale", "zero_point"),
    [
        ((0.0, 1.0), "uint8", 1 / 255, 0),
        ((-1.0, 0.9921875), "uint8", 1 / 128, 128),
        ((0.0, 1.0), "int8", 1 / 255, -128),
        ((0.0, 255.0), "uint8", 1.0, 0),
    ],
)
def test_input_means_raw_pixels_whatever_the_calibration_range(
    input_range, io_dtype, scale, zero_point
):
    model = build_model(digits_model_config())
    content = convert_to_tflite(
        model,
        _narrow_images(8),
        input_range,
        QuantizationConfig(io_dtype=io_dtype, per_channel=True),
        heads=["digit", "parity"],
    )
    (model_input,) = read_tflite(content).inputs
    assert model_input.dtype == io_dtype
    assert model_input.zero_point == zero_point
    assert model_input.scale == pytest.approx(scale, rel=1e-6)


def test_uint8_pixels_give_the_keras_result(digits_model_weights):
    """A trained model: raw digit pixels into the .tflite agree with the float model."""
    pixels, _ = digit_images()
    model = build_model(digits_model_config(digits_model_weights))
    content = convert_to_tflite(
        model,
        pixels[:100],
        (0.0, 1.0),
        QuantizationConfig(io_dtype="uint8", per_channel=True),
        heads=["digit", "parity"],
    )
    held_out = pixels[1500:1600]
    expected = model.predict(held_out.astype(np.float32) / 255, batch_size=1, verbose=0)
    runner = Interpreter(model_content=content).get_signature_runner()
    details = runner.get_output_details()
    agreement = {"digit": 0, "parity": 0}
    errors = []
    for row, image in enumerate(held_out):
        outputs = runner(image=image[None])
        for head in agreement:
            scale, zero_point = details[head]["quantization"]
            logits = (outputs[head][0].astype(np.float64) - zero_point) * scale
            agreement[head] += int(logits.argmax() == expected[head][row].argmax())
            errors.append(np.abs(logits - expected[head][row]).max() / np.ptp(expected[head]))
    assert agreement["digit"] >= 95 and agreement["parity"] >= 95
    assert max(errors) < 0.1  # within 10% of the logits' range on every image


# Names in reverse alphabetical order, and more than ten heads would show a sort by name too.
ORDERED_HEADS = ("zeta", "eta", "delta", "beta")


def test_output_i_is_head_i_and_carries_its_name(tmp_path):
    """Heads with equal class counts: only their names and behaviour tell them apart. Head i
    always says class i; position i must do so in LiteRT, TFLite Micro and after Vela."""
    heads = tuple(Head(name, 4, None) for name in ORDERED_HEADS)
    model = build_model(
        ModelConfig(
            backbone="mobilenet_v1",
            alpha=0.25,
            input_shape=(32, 32, 1),
            heads=heads,
            weights=None,
            seed=0,
        )
    )
    for winner, name in enumerate(ORDERED_HEADS):
        layer = model.get_layer(f"{name}_logits")
        kernel, bias = layer.get_weights()
        bias[:] = -4.0
        bias[winner] = 4.0
        layer.set_weights([np.zeros_like(kernel), bias])
    pixels, _ = digit_images()
    content = convert_to_tflite(
        model,
        pixels[:8],
        (0.0, 1.0),
        QuantizationConfig(io_dtype="uint8", per_channel=True),
        heads=list(ORDERED_HEADS),
    )
    tflite = read_tflite(content)
    assert [t.name for t in tflite.outputs] == list(ORDERED_HEADS)
    assert list(tflite.signature_outputs) == list(ORDERED_HEADS)
    assert [tflite.output_position(name) for name in ORDERED_HEADS] == [0, 1, 2, 3]
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[:1])
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    assert [int(interpreter.get_tensor(d["index"])[0].argmax()) for d in outputs] == [0, 1, 2, 3]
    assert [d["name"] for d in outputs] == list(ORDERED_HEADS)
    micro = micro_by_hand(content, pixels[:1])
    assert [int(values[0].argmax()) for values in micro] == [0, 1, 2, 3]
    source = tmp_path / "ordered.tflite"
    source.write_bytes(content)
    result = compile_for_target(
        tflite_path=source,
        target=VelaTarget("ethos-u55-128", *DEFAULT_SYSTEM["ethos-u55"]),
        optimise="Performance",
        output_dir=tmp_path,
    )
    compiled = read_tflite(result.tflite_path.read_bytes())
    assert [t.name for t in compiled.outputs] == list(ORDERED_HEADS)
    assert [compiled.output_position(name) for name in ORDERED_HEADS] == [0, 1, 2, 3]


def test_weight_buffers_are_16_byte_aligned(small_tflite):
    """TFLite Micro reads weights in place: the rewritten file keeps every buffer aligned."""
    content = small_tflite("mobilenet_v2")
    model = schema.Model.GetRootAs(content, 0)
    starts = [
        model.Buffers(i).DataAsNumpy().ctypes.data
        for i in range(model.BuffersLength())
        if model.Buffers(i).DataLength()
    ]
    base = np.frombuffer(content, np.uint8).ctypes.data
    assert starts and all((start - base) % 16 == 0 for start in starts)


def test_heads_with_identical_weights_are_refused():
    heads = (Head("left", 3, None), Head("right", 3, None))
    model = build_model(
        ModelConfig(
            backbone="mobilenet_v1",
            alpha=0.25,
            input_shape=(32, 32, 1),
            heads=heads,
            weights=None,
            seed=0,
        )
    )
    model.get_layer("right_logits").set_weights(model.get_layer("left_logits").get_weights())
    pixels, _ = digit_images()
    with pytest.raises(UserError, match="heads left, right compute identical outputs"):
        convert_to_tflite(
            model,
            pixels[:4],
            (0.0, 1.0),
            QuantizationConfig(io_dtype="uint8", per_channel=True),
            heads=["left", "right"],
        )


def _untrained() -> tuple[keras.Model, np.ndarray]:
    """A random-weight MobileNetV1 α0.25 32×32×3 with two heads, and 8 random images."""
    heads = (Head("object", 3, None), Head("light", 2, None))
    config = ModelConfig(
        backbone="mobilenet_v1",
        alpha=0.25,
        input_shape=(32, 32, 3),
        heads=heads,
        weights=None,
        seed=0,
    )
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    return build_model(config), pixels


def test_conversion_is_byte_deterministic(small_tflite):
    model, pixels = _untrained()
    quantization = QuantizationConfig(io_dtype="uint8", per_channel=True)
    first = convert_to_tflite(model, pixels, (0.0, 1.0), quantization, heads=["object", "light"])
    again = convert_to_tflite(model, pixels, (0.0, 1.0), quantization, heads=["object", "light"])
    assert again == first


def test_per_channel_switch():
    model = build_model(digits_model_config())
    pixels, _ = digit_images()

    def conv_weight_scales(per_channel: bool) -> set[int]:
        content = convert_to_tflite(
            model,
            pixels[:8],
            (0.0, 1.0),
            QuantizationConfig(io_dtype="uint8", per_channel=per_channel),
            heads=["digit", "parity"],
        )
        interpreter = Interpreter(model_content=content)
        return {
            len(t["quantization_parameters"]["scales"])
            for t in interpreter.get_tensor_details()
            if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] > 1
        }

    assert max(conv_weight_scales(True)) > 1
    assert conv_weight_scales(False) == {1}


class _FloatOnly(keras.layers.Layer):
    """A layer whose operator has no int8 kernel (SIN) or no TFLite kernel at all (ERFINV)."""

    def __init__(self, op, **kwargs):
        super().__init__(**kwargs)
        self.op = op

    def call(self, x):
        return self.op(x)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (tf.math.sin, r"model: layer 'wave' \(SIN\) stay float after int8 conversion"),
        (lambda x: tf.math.erfinv(x * 0.1), r"model: layer 'wave' \(Erfinv\) cannot be converted"),
    ],
)
def test_layers_without_integer_operators_are_named(op, message):
    image = keras.Input((32, 32, 1), batch_size=1, name="image")
    features = _FloatOnly(op, name="wave")(keras.layers.Conv2D(4, 3, name="conv")(image))
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    model = keras.Model(image, {"a": keras.layers.Dense(2, name="a_logits")(pooled)})
    pixels, _ = digit_images()
    with pytest.raises(UserError, match=message):
        convert_to_tflite(
            model,
            pixels[:4],
            (0.0, 1.0),
            QuantizationConfig(io_dtype="uint8", per_channel=True),
            heads=["a"],
        )


def test_16_bit_activations_too_small_for_a_relu6_are_widened():
    """An untrained MobileNet's activations shrink layer by layer (to 1e-18 here); at 16 bits
    the calibration gives them scales too small for 6 to fit int32 in steps, which TFLite
    Micro refuses. Widened, every bound fits and TFLite Micro runs the model."""
    model, pixels = _untrained()
    quantization = QuantizationConfig(io_dtype="uint8", per_channel=True, mode="int16x8")
    content = convert_to_tflite(model, pixels, (0.0, 1.0), quantization, heads=["object", "light"])
    tflite = read_tflite(content)
    bounded = [
        tflite.tensors[op.outputs[0]]
        for op in tflite.operators
        if op.activation == "RELU6" and tflite.tensors[op.outputs[0]].dtype == "int16"
    ]
    assert len(bounded) == 27  # every convolution of MobileNetV1's 13 blocks and its stem
    assert min(tensor.scale for tensor in bounded) >= 2 * 6 / (2**31 - 1)
    micro_by_hand(content, pixels[:1].astype(np.int16))  # int16 I/O in this mode
