import numpy as np
import pytest
from conftest import digit_images, digits_model_config

from generator.build import build_model
from generator.config import QuantizationConfig
from generator.convert import convert_to_tflite
from generator.tflite_file import read_tflite
from generator.verify import is_constant, verify


def test_fidelity_of_a_trained_model_matches_an_independent_computation(digits_model_weights):
    config = digits_model_config(digits_model_weights)
    model = build_model(config)
    pixels, _ = digit_images()
    content = convert_to_tflite(model, pixels[:100], (0.0, 1.0), QuantizationConfig("uint8", True))
    held_out = pixels[1500:1560]
    verification = verify(model, content, read_tflite(content), config.heads, held_out, (0.0, 1.0))
    fidelity = verification.fidelity
    assert set(verification.reference_steps) == {"digit", "parity"}
    assert max(verification.reference_steps.values()) <= 1
    digit = fidelity["digit"]
    assert digit.images == 60
    assert digit.agreement_top1 >= 0.95
    assert digit.sqnr_db > 15
    assert not digit.constant_output and not fidelity["parity"].constant_output

    # Recompute the digit head's figures from the raw interpreter and the Keras model.
    # Same kernels as generator.litert (XNNPACK's int8 kernels round differently).
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    runner = Interpreter(
        model_content=content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    ).get_signature_runner()
    scale, zero_point = runner.get_output_details()["digit"]["quantization"]
    quantized = np.stack(
        [
            (runner(image=image[None])["digit"][0].astype(float) - zero_point) * scale
            for image in held_out
        ]
    )
    expected = model.predict(held_out / 255.0, batch_size=1, verbose=0)["digit"]
    error = quantized - expected
    assert digit.agreement_top1 == np.mean(quantized.argmax(1) == expected.argmax(1))
    # float64 p / 255 here, float32 in the tool: equal up to float rounding
    assert digit.max_abs_error == pytest.approx(np.abs(error).max(), rel=1e-4)
    assert digit.sqnr_db == pytest.approx(
        10 * np.log10((expected**2).sum() / (error**2).sum()), rel=1e-4
    )


def test_constant_outputs_are_recognised():
    varying = np.array([[0.1, 2.0], [1.5, -0.3], [0.7, 0.9]])
    assert not is_constant(varying, np.array([[1, 5], [4, 0], [3, 3]]))
    assert is_constant(varying * 1e-9, np.array([[128, 128], [128, 128], [128, 128]]))
    assert is_constant(np.array([[1.0, 2.0], [1.0, 2.0000001]]), np.array([[1, 2], [1, 3]]))
