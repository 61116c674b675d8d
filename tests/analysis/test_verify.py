import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from conftest import digit_images, digits_model_config, micro_by_hand, needs_tflm

from generator.analysis.verify import (
    SQNR_MARGIN_DB,
    RuntimeDifference,
    check_runtimes,
    is_constant,
    verify,
)
from generator.config.schema import QuantizationConfig
from generator.engines.tflite_file import read_tflite
from generator.errors import VerificationError
from generator.model.build import build_model
from generator.quantization.convert import convert_to_tflite, tensor_layers

HEADS = ["digit", "parity"]


def _trained(weights, calibration: np.ndarray):
    config = digits_model_config(weights)
    model = build_model(config)
    content = convert_to_tflite(
        model,
        calibration,
        (0.0, 1.0),
        QuantizationConfig(io_dtype="uint8", per_channel=True),
        heads=HEADS,
    )
    return config, model, content


def _verify(config, model, content, pixels):
    tflite = read_tflite(content)
    layers = tensor_layers(tflite, model, HEADS)
    return verify(
        model=model,
        content=content,
        tflite=tflite,
        heads=config.heads,
        pixels=pixels,
        input_range=(0.0, 1.0),
        layers=layers,
    )


def _sqnr(expected, actual):
    return 10 * np.log10((expected**2).sum() / ((actual - expected) ** 2).sum())


def test_figures_match_an_independent_run_of_each_runtime(digits_model_weights):
    pixels, _ = digit_images()
    config, model, content = _trained(digits_model_weights, pixels[:100])
    held_out = pixels[1500:1560]
    verification = _verify(config, model, content, held_out)
    expected = model.predict(held_out / 255.0, batch_size=1, verbose=0)

    # Fidelity is TFLite Micro's (or its substitute's): run it by hand. Output i is head i.
    micro = micro_by_hand(content, held_out)
    outputs = read_tflite(content).outputs
    for position, name in enumerate(HEADS):
        scale, zero_point = outputs[position].scale, outputs[position].zero_point
        values = micro[position]
        logits = (values.astype(float) - zero_point) * scale
        fidelity = verification.fidelity[name]
        assert fidelity.images == 60
        assert fidelity.agreement_top1 == np.mean(logits.argmax(1) == expected[name].argmax(1))
        # float64 p / 255 here, float32 in the tool: equal up to float rounding
        assert fidelity.sqnr_db == pytest.approx(_sqnr(expected[name], logits), rel=1e-4)
        assert fidelity.saturated == np.mean(((values == 0) | (values == 255)).any(axis=1))
        for kernels, key in (
            (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, "litert_builtin"),
            (OpResolverType.AUTO, "litert_default"),
        ):
            runner = Interpreter(
                model_content=content, experimental_op_resolver_type=kernels
            ).get_signature_runner()
            theirs = np.stack([runner(image=image[None])[name][0] for image in held_out])
            difference = verification.runtimes[key][name]
            steps = np.abs(theirs.astype(int) - values.astype(int)).max()
            assert difference.max_step_difference == steps
            assert difference.agreement_top1 == np.mean(theirs.argmax(1) == values.argmax(1))
    digit = verification.fidelity["digit"]
    assert digit.agreement_top1 >= 0.95 and digit.sqnr_db > 15
    assert not digit.constant_output and not verification.fidelity["parity"].constant_output


def _repacked(content: bytes, corrupt) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    corrupt(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _second_conv(model: schema.ModelT) -> schema.OperatorT:
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    convs = [
        op
        for op in model.subgraphs[0].operators
        if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D
    ]
    return convs[1]


@needs_tflm  # the message is TFLite Micro's adapter's
def test_a_corrupted_model_tflite_micro_cannot_run_fails(digits_model_weights):
    """One conv's filter claims one more output channel than its weights and output have."""
    pixels, _ = digit_images()
    config, model, content = _trained(digits_model_weights, pixels[:20])

    def grow_filter(model: schema.ModelT) -> None:
        tensor = model.subgraphs[0].tensors[_second_conv(model).inputs[1]]
        tensor.shape = np.array([tensor.shape[0] + 1, *tensor.shape[1:]])

    corrupted = _repacked(content, grow_filter)
    with pytest.raises(VerificationError, match="TensorFlow Lite Micro cannot load, allocate"):
        _verify(config, model, corrupted, pixels[1500:1510])


def test_the_defect_rule_on_figures_of_a_real_run(digits_model_weights):
    """Top-1 differences count as a defect only with TFLite Micro clearly further from float."""
    pixels, _ = digit_images()
    config, model, content = _trained(digits_model_weights, pixels[:100])
    healthy = _verify(config, model, content, pixels[1500:1560])
    assert healthy.runtimes["litert_builtin"]["digit"].sqnr_db is not None
    # The check itself, on figures from a real run: rounding-sized differences pass ...
    sqnr = {name: f.sqnr_db for name, f in healthy.fidelity.items()}
    check_runtimes(healthy.runtimes, sqnr, "held-out")
    # ... and the same top-1 differences with TFLite Micro clearly further from float fail.
    flipped = {
        runtime: {
            name: RuntimeDifference(d.max_step_difference, 0.9, d.sqnr_db)
            for name, d in heads.items()
        }
        for runtime, heads in healthy.runtimes.items()
    }
    near = {name: value - SQNR_MARGIN_DB + 0.5 for name, value in sqnr.items()}
    check_runtimes(flipped, near, "held-out")
    far = {name: flipped["litert_builtin"][name].sqnr_db - SQNR_MARGIN_DB - 1 for name in sqnr}
    with pytest.raises(VerificationError, match=r"beyond rounding .*head digit"):
        check_runtimes(flipped, far, "held-out")


def test_badly_calibrated_model_clips_and_saturates(digits_model_weights):
    """Calibrated on faint digits (pixels at most 40), verified on real ones: the first layers'
    ranges and the heads' ranges are too narrow, and the report names the Keras layers."""
    pixels, _ = digit_images()
    faint = (pixels[:50].astype(np.float32) * 40 / 255).astype(np.uint8)
    config, model, content = _trained(digits_model_weights, faint)
    verification = _verify(config, model, content, pixels[1500:1560])
    worst = verification.clipping[0]
    assert worst.clipped > 0.01
    keras_layers = {layer.name for layer in model.layers}
    assert worst.layer in keras_layers
    assert [c.clipped for c in verification.clipping] == sorted(
        (c.clipped for c in verification.clipping), reverse=True
    )
    assert max(f.saturated for f in verification.fidelity.values()) > 0.01
    well = _verify(*_trained(digits_model_weights, pixels[:100]), pixels[1500:1560])
    assert well.clipping[0].clipped < worst.clipped


def test_constant_outputs_are_recognised():
    varying = np.array([[0.1, 2.0], [1.5, -0.3], [0.7, 0.9]])
    assert not is_constant(varying, np.array([[1, 5], [4, 0], [3, 3]]))
    assert is_constant(varying * 1e-9, np.array([[128, 128], [128, 128], [128, 128]]))
    assert is_constant(np.array([[1.0, 2.0], [1.0, 2.0000001]]), np.array([[1, 2], [1, 3]]))
