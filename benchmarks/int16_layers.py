"""Time the convert stage for each way of quantizing the demo's model, and print a table of
medians with each result's size and 16-bit tensor count.

    python benchmarks/int16_layers.py [CONFIG] [--runs N] [--int16 a,b,...]

The model is CONFIG's (default: configs/default.yaml) as built, untrained (conversion costs the
same whatever the weights), calibrated on CONFIG's calibration images. Rows: the converter's
int8 (`full_integer`), the whole model at 16-bit activations (`int16x8`), the converter's
debugger keeping the `--int16` layers float (`keep_float`), and ai-edge-quantizer giving them
16-bit activations (`int16`, which converts to float first and calibrates itself).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "default.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--int16", default="conv_pw_12,conv_dw_13")
    args = parser.parse_args()

    from generator.support.quiet import muted, quiet_tensorflow

    quiet_tensorflow()
    with muted():
        from generator.config.loading import load_config
        from generator.data.calibration import load_calibration_set
        from generator.engines.tflite_file import read_tflite
        from generator.model.build import build
        from generator.quantization.convert import convert_to_tflite

        config = load_config(Path(args.config))
        built = build(config.model)
        images = load_calibration_set(config.calibration, built.input_shape, config.model.seed)
    layers = tuple(args.int16.split(","))
    plain = dataclasses.replace(config.quantization, mode="full_integer", keep_float=(), int16=())
    variants = {
        "full_integer": plain,
        "int16x8": dataclasses.replace(plain, mode="int16x8"),
        "keep_float": dataclasses.replace(plain, keep_float=layers),
        "int16": dataclasses.replace(plain, int16=layers),
    }
    heads = [head.name for head in built.heads]
    print(
        f"convert stage, {config.name}'s model, {len(images.calibration)} calibration images, "
        f"median of {args.runs} (layers: {', '.join(layers)})"
    )
    print(f"{'quantization':<14} {'seconds':>8} {'bytes':>9} {'int16 tensors':>14}")
    for name, quantization in variants.items():
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            with muted():
                content = convert_to_tflite(
                    built.model,
                    images.calibration,
                    config.calibration.input_range,
                    quantization,
                    heads=heads,
                )
            seconds.append(time.perf_counter() - start)
        int16 = sum(t.dtype == "int16" for t in read_tflite(content).tensors)
        print(f"{name:<14} {statistics.median(seconds):>8.2f} {len(content):>9,} {int16:>14}")


if __name__ == "__main__":
    main()
