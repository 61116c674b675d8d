"""MobileNetV4's convolutional backbones, Conv-Small and Conv-Medium, in Keras 3.

Keras 3 has no MobileNetV4. This builds it from the paper's block tables (Qin et al. 2024,
"MobileNetV4: Universal Models for the Mobile Ecosystem") as the TensorFlow Model Garden
implements them (official/vision/modeling/backbones/mobilenet.py, MNV4ConvSmall_BLOCK_SPECS and
the Conv-Medium specs; blocks in official/vision/modeling/layers/nn_blocks.py):

- `convbn`: a k×k convolution (no bias), batch normalization, ReLU.
- `fused_ib` (fused inverted bottleneck): a k×k convolution to 4× the input channels, batch
  normalization, ReLU; a 1×1 projection with batch normalization.
- `uib` (universal inverted bottleneck): an optional k×k depthwise convolution with batch
  normalization and no activation (`start_dw`); a 1×1 expansion with batch normalization and
  ReLU; an optional k×k depthwise convolution with batch normalization and ReLU (`middle_dw`,
  which takes the block's stride); a 1×1 projection with batch normalization. Both depthwise
  convolutions (ExtraDW), only the start (ConvNext-like), only the middle (the inverted
  bottleneck of MobileNetV2) or neither (FFN).
- A block adds its input when its stride is 1 and its input and output channels agree.
- Every operator is one the Ethos-U55, U65 and U85 run: 'same' padding, ReLU, Add.

The width multiplier `alpha` scales every block's output channels, the first convolution's and
the last 1×1 convolution's (960) alike, rounded to a multiple of 8 (at least 8) as the Model
Garden's `round_filters` does; expansions are a multiple of the scaled input. The Model
Garden's classification top (average pooling, then a 1×1 convolution to 1280) is left out like
keras.applications' tops: the backbone ends with the 960-channel convolution, and the heads sit
on its average-pooled features. A parameter count of this build matches the Model Garden's own
tests (Conv-Small α1: 2,518,112 with the 1280 top; tests/model/test_mobilenet_v4.py).

Layer names follow keras.applications' MobileNetV3: the stem is `conv`, `conv_bn`,
`conv_relu`; each block's layers are `block_<n>_<part>` (`block_4_start_dw`,
`block_4_expand_bn`, `block_4_middle_dw_relu`, `block_4_project`, `block_4_add`); the last
1×1 convolution is `conv_1`, `conv_1_bn`, `conv_1_relu`.
"""

from __future__ import annotations

from typing import NamedTuple

import keras

LAST_CHANNELS = 960
BATCHNORM_EPSILON = 1e-3


class Block(NamedTuple):
    """One row of a block table: `kind` convbn, fused_ib or uib; `kernel` for convbn and
    fused_ib; `start` and `middle` the depthwise kernel sizes of a uib (0: none)."""

    kind: str
    stride: int
    filters: int
    kernel: int = 0
    start: int = 0
    middle: int = 0
    expand: float = 0.0


def _convbn(kernel, stride, filters):
    return Block("convbn", stride, filters, kernel=kernel)


def _uib(start, middle, stride, filters, expand):
    return Block("uib", stride, filters, start=start, middle=middle, expand=expand)


# After the stem (convbn 3×3, stride 2, 32 channels). Model Garden: MNV4ConvSmall_BLOCK_SPECS.
CONV_SMALL = (
    _convbn(3, 2, 32),
    _convbn(1, 1, 32),
    _convbn(3, 2, 96),
    _convbn(1, 1, 64),
    _uib(5, 5, 2, 96, 3.0),
    _uib(0, 3, 1, 96, 2.0),
    _uib(0, 3, 1, 96, 2.0),
    _uib(0, 3, 1, 96, 2.0),
    _uib(0, 3, 1, 96, 2.0),
    _uib(3, 0, 1, 96, 4.0),
    _uib(3, 3, 2, 128, 6.0),
    _uib(5, 5, 1, 128, 4.0),
    _uib(0, 5, 1, 128, 4.0),
    _uib(0, 5, 1, 128, 3.0),
    _uib(0, 3, 1, 128, 4.0),
    _uib(0, 3, 1, 128, 4.0),
)

# Model Garden: _mnv4_conv_medium_block_specs.
CONV_MEDIUM = (
    Block("fused_ib", 2, 48, kernel=3, expand=4.0),
    _uib(3, 5, 2, 80, 4.0),
    _uib(3, 3, 1, 80, 2.0),
    _uib(3, 5, 2, 160, 6.0),
    _uib(3, 3, 1, 160, 4.0),
    _uib(3, 3, 1, 160, 4.0),
    _uib(3, 5, 1, 160, 4.0),
    _uib(3, 3, 1, 160, 4.0),
    _uib(3, 0, 1, 160, 4.0),
    _uib(0, 0, 1, 160, 2.0),
    _uib(3, 0, 1, 160, 4.0),
    _uib(5, 5, 2, 256, 6.0),
    _uib(5, 5, 1, 256, 4.0),
    _uib(3, 5, 1, 256, 4.0),
    _uib(3, 5, 1, 256, 4.0),
    _uib(0, 0, 1, 256, 4.0),
    _uib(3, 0, 1, 256, 4.0),
    _uib(3, 5, 1, 256, 2.0),
    _uib(5, 5, 1, 256, 4.0),
    _uib(0, 0, 1, 256, 4.0),
    _uib(0, 0, 1, 256, 4.0),
    _uib(5, 0, 1, 256, 2.0),
)

TABLES = {"conv_small": CONV_SMALL, "conv_medium": CONV_MEDIUM}


def make_divisible(value: float, divisor: int = 8) -> int:
    """The Model Garden's rounding: the nearest multiple of `divisor` (at least `divisor`),
    one more step up when rounding lost more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_v4(
    table: str,
    *,
    input_tensor,
    alpha: float = 1.0,
    include_top: bool = False,
    weights=None,
    pooling: str = "avg",
) -> keras.Model:
    """The backbone `table` (conv_small or conv_medium) on `input_tensor`, average-pooled: the
    keras.applications call our build makes, which asks for no top and no weights."""
    if include_top or weights is not None or pooling != "avg":
        raise ValueError("MobileNetV4 is built without a top or weights, average-pooled")
    x = _conv(input_tensor, "conv", 3, 2, make_divisible(32 * alpha))
    for number, block in enumerate(TABLES[table]):
        x = _block(x, f"block_{number}", block, alpha)
    x = _conv(x, "conv_1", 1, 1, make_divisible(LAST_CHANNELS * alpha))
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model([input_tensor], pooled, name=f"mobilenet_v4_{table}")


def _block(x, name: str, block: Block, alpha: float):
    filters = make_divisible(block.filters * alpha)
    if block.kind == "convbn":
        return _conv(x, name, block.kernel, block.stride, filters)
    channels = x.shape[-1]
    shortcut = x
    expanded = make_divisible(channels * block.expand)
    if block.kind == "fused_ib":
        x = _conv(x, f"{name}_fused", block.kernel, block.stride, expanded)
    else:
        if block.start:
            stride = 1 if block.middle else block.stride
            x = _depthwise(x, f"{name}_start_dw", block.start, stride, relu=False)
        x = _conv(x, f"{name}_expand", 1, 1, expanded)
        if block.middle:
            x = _depthwise(x, f"{name}_middle_dw", block.middle, block.stride, relu=True)
    x = _conv(x, f"{name}_project", 1, 1, filters, relu=False)
    if block.stride == 1 and channels == filters:
        x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def _conv(x, name: str, kernel: int, stride: int, filters: int, relu: bool = True):
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BATCHNORM_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _depthwise(x, name: str, kernel: int, stride: int, *, relu: bool):
    x = keras.layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BATCHNORM_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x
