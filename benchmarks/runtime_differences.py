"""How far the host runtimes are from TensorFlow Lite Micro, per backbone and input size.

    python benchmarks/runtime_differences.py [--sizes 96x96x3 48x64x1] [--images 50] [--heads 4]

Each backbone is built at alpha 0.35 with random weights made healthy: the batch-norm statistics
are set from a batch of the repo's photos (one forward pass in training mode with momentum 0),
so every layer's activations are normalised and the heads' logits vary from image to image, as
a trained model's do (with Keras's initial statistics the logits are nearly constant, and every
runtime agrees trivially). The model is quantized on 100 photos like a build does, then the same
.tflite runs on held-out photos in TFLite Micro, LiteRT's built-in kernels and LiteRT's default
interpreter (XNNPACK). The table gives, per model, the largest difference from TFLite Micro in
quantization steps over all heads, and the lowest top-1 agreement of any head.

`verify.SQNR_MARGIN_DB` is set from this table (docs/verification.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.support.quiet import muted, quiet_tensorflow

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["96x96x3", "48x64x1"])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--heads", type=int, default=4)
    args = parser.parse_args()
    quiet_tensorflow()
    with muted():
        import keras

        from generator.analysis.logits import dequantize, float_logits, sqnr_db
        from generator.analysis.verify import compare_runtimes, integer_outputs
        from generator.config.schema import (
            BACKBONES,
            CalibrationConfig,
            Head,
            ModelConfig,
            QuantizationConfig,
        )
        from generator.data.calibration import load_calibration_set
        from generator.engines.tflite_file import read_tflite
        from generator.model.build import build_model
        from generator.quantization.convert import convert_to_tflite

    heads = tuple(Head(f"head{i}", 2 + i, None) for i in range(args.heads))
    runtimes = ("litert_builtin", "litert_default")
    print(
        "| backbone | input | batch-norm statistics | "
        + " | ".join(f"{r} steps | {r} top-1 agreement" for r in runtimes)
        + " | SQNR dB vs float: tflite_micro | "
        + " | ".join(runtimes)
        + " |"
    )
    print("|---|---|---|" + "---|---|" * len(runtimes) + "---|" * (1 + len(runtimes)))
    for size in args.sizes:
        shape = tuple(int(v) for v in size.split("x"))
        calibration = CalibrationConfig(
            data=REPO / "representative_data/photos",
            samples=100,
            holdout=args.images,
            input_range=(0.0, 1.0),
        )
        images = load_calibration_set(calibration, shape, 0)
        for backbone in BACKBONES:
            for statistics in ("initial", "photos"):
                model = build_model(
                    ModelConfig(
                        backbone=backbone,
                        alpha=0.35,
                        input_shape=shape,
                        heads=heads,
                        weights=None,
                        seed=0,
                    )
                )
                if statistics == "photos":
                    for layer in model.layers:
                        if isinstance(layer, keras.layers.BatchNormalization):
                            layer.momentum = 0.0
                    model(images.calibration[:64].astype("float32") / 255, training=True)
                content = convert_to_tflite(
                    model,
                    images.calibration,
                    (0.0, 1.0),
                    QuantizationConfig(io_dtype="uint8", per_channel=True),
                    heads=[h.name for h in heads],
                )
                tflite = read_tflite(content)
                outputs = integer_outputs(
                    content=content,
                    tflite=tflite,
                    pixels=images.held_out,
                    heads=heads,
                    input_range=(0.0, 1.0),
                )
                expected = float_logits(model, images.held_out, (0.0, 1.0))
                differences = compare_runtimes(outputs, expected, tflite)
                cells = []
                for runtime in runtimes:
                    by_head = differences[runtime].values()
                    cells += [
                        str(max(d.max_step_difference for d in by_head)),
                        f"{min(d.agreement_top1 for d in by_head):.0%}",
                    ]
                for runtime in ("tflite_micro", *runtimes):
                    logits = dequantize(outputs[runtime], tflite)
                    sqnr = [sqnr_db(expected[h.name], logits[h.name]) for h in heads]
                    sqnr = [float("inf") if value is None else value for value in sqnr]
                    cells.append(f"{min(sqnr):.1f}")
                print(
                    f"| {backbone} | {size} | {statistics} | " + " | ".join(cells) + " |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
