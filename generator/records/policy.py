"""What a build's record means to a person: the thresholds its warnings use, how its runtimes
are named, and the views of it every page shows. The build's record (`build_record`) and the
renderers both take these from here, so a page never needs the stages that made the record.
"""

from __future__ import annotations

# How each runtime is described wherever a figure names it.
RUNTIME_TITLES = {
    "tflite_micro": "TFLite Micro (what a Cortex-M runs)",
    "litert_builtin": "LiteRT built-in kernels",
    "litert_default": "LiteRT default interpreter (XNNPACK)",
    "litert_reference": "LiteRT reference kernels (standing in for TFLite Micro, not installed)",
}

# The runtime that stands for a Cortex-M, as a page's sentences name it (`engines/micro.py`):
# TFLite Micro, or where it is not installed the LiteRT kernels that stood in for it.
MICRO_TITLES = {
    "tflite_micro": "TFLite Micro",
    "litert_reference": "LiteRT's reference kernels (for TFLite Micro)",
}


# Intermediate tensors listed in the Markdown report, most clipped first.
CLIPPING_LISTED = 5


# Layers listed in the Markdown report, largest own quantization error first.
LAYER_ERRORS_LISTED = 5


# A layer whose own error is this many steps RMS (rounding alone gives 1/sqrt(12) = 0.29) is
# warned about: something beyond rounding (weights int8 cannot hold, clipping) dominates it.
LAYER_ERROR_WARNING_STEPS = 2.0


LAYER_ERRORS_WITH_INT16 = (
    "Not measured for this build: TensorFlow's quantization debugger builds its own int8 model "
    "and cannot give layers 16-bit activations, so its figures would describe another model. "
    "Build without `quantization.int16` to see the int8 per-layer error."
)


def quantized_format(quantization: dict) -> str:
    """What the integer .tflite holds, for table rows: int8, int16x8, or int8 with int16
    layers (the report's `quantization` section)."""
    if quantization["mode"] == "int16x8":
        return "int16x8"
    return "int8 + int16 layers" if quantization.get("int16") else "int8"


def folded_layers(layers: list[dict]) -> list[dict]:
    """Vela's per-layer rows by Keras layer. Vela lists a fused activation as a row of its own
    with 0 cycles under the same name: consecutive rows of one name are folded into one."""
    folded: list[dict] = []
    for layer in layers:
        if folded and folded[-1]["name"] == layer["name"]:
            for key in ("cycles", "share", "macs"):
                folded[-1][key] += layer[key]
        else:
            folded.append(dict(layer))
    return folded


# A head whose logits sit at the integer limit on more than this share of images is warned
# about: calibration did not cover its range, so its largest logits are clipped.
SATURATION_WARNING = 0.01
