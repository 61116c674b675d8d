"""Which form of sparsity Vela's weight encoder turns into fewer bytes, on the U55 and the U85.

    python benchmarks/sparsity_forms.py

The demo's network (MobileNetV1 α 0.25, 32×32×1, three heads; random seeded weights: the
encoder sees the same distribution of magnitudes a trained network has, within a factor), every
kernel pruned to 50 % zeros in three forms, converted to int8 as a build does and compiled by
Vela for `ethos-u55-128` (High_End_Embedded, Shared_Sram) and `ethos-u85-256` (its default):

- unstructured: the 50 % smallest weights of each kernel (what `optimize.sparsity` does);
- 2:4: in every group of 4 consecutive input weights of an output channel, the 2 smallest;
- channels: the half of each kernel's output channels with the smallest L1 norm, whole.

Prints Vela's `total_npu_encoded_weights` and latency per form and NPU, and the machine.
Deterministic: one run.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import machine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator.config.schema import (  # noqa: E402
    DEFAULT_SYSTEM,
    Head,
    ModelConfig,
    QuantizationConfig,
    VelaTarget,
)
from generator.engines.vela import compile_for_target  # noqa: E402
from generator.model.build import build_model  # noqa: E402
from generator.quantization.convert import convert_to_tflite  # noqa: E402

TARGETS = (
    VelaTarget("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
    VelaTarget("ethos-u85-256", *DEFAULT_SYSTEM["ethos-u85"]),
)


def _unstructured(kernel: np.ndarray) -> np.ndarray:
    order = np.argsort(np.abs(kernel).reshape(-1), kind="stable")
    flat = kernel.reshape(-1).copy()
    flat[order[: flat.size // 2]] = 0
    return flat.reshape(kernel.shape)


def _two_of_four(kernel: np.ndarray) -> np.ndarray:
    """Keras kernels are (..., in, out): groups of 4 along the input axis of each output."""
    moved = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1)
    usable = moved.shape[1] // 4 * 4
    groups = moved[:, :usable].reshape(moved.shape[0], -1, 4).copy()
    smallest = np.argsort(np.abs(groups), axis=-1, kind="stable")[..., :2]
    np.put_along_axis(groups, smallest, 0, axis=-1)
    moved = moved.copy()
    moved[:, :usable] = groups.reshape(moved.shape[0], usable)
    return np.moveaxis(moved.reshape(kernel.shape[-1], *kernel.shape[:-1]), 0, -1)


def _channels(kernel: np.ndarray) -> np.ndarray:
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    pruned = kernel.copy()
    pruned[..., np.argsort(norms, kind="stable")[: kernel.shape[-1] // 2]] = 0
    return pruned


FORMS = {"none": None, "unstructured": _unstructured, "2:4": _two_of_four, "channels": _channels}


def main() -> None:
    heads = (Head("digit", 10, None), Head("parity", 2, None), Head("high", 2, None))
    config = ModelConfig(
        backbone="mobilenet_v1",
        alpha=0.25,
        input_shape=(32, 32, 1),
        heads=heads,
        seed=0,
        weights=None,
    )
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 1), dtype=np.uint8)
    quantization = QuantizationConfig(io_dtype="uint8", per_channel=True)
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        for form, prune in FORMS.items():
            model = build_model(config)
            if prune is not None:
                for layer in model.layers:
                    if hasattr(layer, "kernel") and not layer.name.endswith("_logits"):
                        layer.kernel.assign(prune(layer.kernel.numpy()))
            content = convert_to_tflite(
                model, pixels, (0.0, 1.0), quantization, heads=[h.name for h in heads]
            )
            path = Path(temporary) / f"{form.replace(':', '_')}.tflite"
            path.write_bytes(content)
            for target in TARGETS:
                result = compile_for_target(
                    tflite_path=path,
                    target=target,
                    optimise="Performance",
                    output_dir=Path(temporary) / path.stem / target.accelerator,
                )
                rows.append((form, target.accelerator, result))
    print(
        f"# {datetime.date.today()}, {machine()}; Vela's figures for the "
        "demo network with random weights, kernels 50 % zeros (heads whole)"
    )
    print("| form | NPU | encoded weights B | share of none | latency ms |")
    print("|---|---|---|---|---|")
    base = {npu: r.encoded_weight_bytes for form, npu, r in rows if form == "none"}
    for form, npu, result in rows:
        print(
            f"| {form} | {npu} | {result.encoded_weight_bytes:,} | "
            f"{result.encoded_weight_bytes / base[npu]:.0%} | {result.inference_time_ms:.3f} |"
        )


if __name__ == "__main__":
    main()
