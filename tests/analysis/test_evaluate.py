import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from conftest import digit_images, digits_model_config, micro_by_hand

from generator.analysis.evaluate import evaluate_accuracy
from generator.config.schema import QuantizationConfig
from generator.data.labelled import MISSING, LabelledImages
from generator.engines.tflite_file import read_tflite
from generator.model.build import build_model
from generator.quantization.convert import convert_to_tflite


def test_accuracy_figures_match_an_independent_computation(digits_model_weights):
    config = digits_model_config(digits_model_weights)
    model = build_model(config)
    pixels, digits = digit_images()
    content = convert_to_tflite(
        model,
        pixels[:100],
        (0.0, 1.0),
        QuantizationConfig(io_dtype="uint8", per_channel=True),
        heads=["digit", "parity"],
    )
    rows = slice(1500, 1700)
    labels = np.stack([digits[rows], digits[rows] % 2], axis=1)
    labels[::4, 1] = MISSING  # a quarter of the images have no parity label
    data = LabelledImages(
        pixels[rows], labels, {"digit": tuple(map(str, range(10))), "parity": ("even", "odd")}
    )
    result = evaluate_accuracy(
        model=model,
        content=content,
        tflite=read_tflite(content),
        heads=config.heads,
        data=data,
        input_range=(0.0, 1.0),
    )

    runner = Interpreter(
        model_content=content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    ).get_signature_runner()
    micro = micro_by_hand(content, pixels[rows])
    expected = model.predict(pixels[rows] / np.float32(255), verbose=0)
    for column, head in enumerate(("digit", "parity")):
        # The quantized figures are TFLite Micro's (output i is head i); LiteRT's are beside them.
        quantized = micro[column]
        host = np.stack([runner(image=p[None])[head][0] for p in pixels[rows]])
        keep = labels[:, column] != MISSING
        truth = labels[keep, column]
        float_pred = expected[head][keep].argmax(1)
        quant_pred = quantized[keep].argmax(1)  # argmax of uint8 = argmax of dequantized
        figures = result[head]
        assert figures.images == keep.sum() == (200 if head == "digit" else 150)
        assert figures.float_top1 == np.mean(float_pred == truth)
        assert figures.quantized_top1 == np.mean(quant_pred == truth)
        assert np.isclose(figures.drop_points, 100 * (figures.float_top1 - figures.quantized_top1))
        assert figures.agreement_top1 == np.mean(float_pred == quant_pred)
        confusion = np.zeros((len(figures.classes),) * 2, int)
        for t, p in zip(truth, quant_pred, strict=True):
            confusion[t, p] += 1
        assert figures.confusion == confusion.tolist()
        builtin = figures.runtimes["litert_builtin"]
        assert builtin.top1 == np.mean(host[keep].argmax(1) == truth)
        assert builtin.difference.agreement_top1 == np.mean(host[keep].argmax(1) == quant_pred)
        steps = np.abs(host[keep].astype(int) - quantized[keep].astype(int)).max()
        assert builtin.difference.max_step_difference == steps
    assert result["digit"].float_top1 > 0.7  # a trained model, so the figures mean something
