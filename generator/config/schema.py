"""The config's shape: frozen dataclasses handed from stage to stage, and the constants that
bound their values. Nothing here reads files or validates: `generator.config.parsing` builds
these from YAML, and every later stage takes them as plain data.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generator.config.boards import Board
    from generator.config.resources import Workload

BACKBONES = (
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mobilenet_v4_conv_small",
    "mobilenet_v4_conv_medium",
)


# Vela 5.x `--accelerator-config` choices (`vela --help`); tests check this list against Vela.
ACCELERATORS = (
    "ethos-u55-32",
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
    "ethos-u65-512",
    "ethos-u85-128",
    "ethos-u85-256",
    "ethos-u85-512",
    "ethos-u85-1024",
    "ethos-u85-2048",
)


# What Vela itself picks when system config and memory mode are omitted (Vela's docs).
DEFAULT_SYSTEM = {
    "ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65": ("Ethos_U65_Client_Server", "Dedicated_Sram"),
    "ethos-u85": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram"),
}


# The ImageNet weights Keras publishes for keras.applications (keras/src/applications/
# mobilenet.py, mobilenet_v2.py, mobilenet_v3.py in Keras 3.15): the width multipliers that have
# them, and the square input sides they were trained at (one file each).
IMAGENET = "imagenet"  # model.pretrained's name for them
IMAGENET_WEIGHTS = {
    "mobilenet_v1": ((0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
    "mobilenet_v2": ((0.35, 0.5, 0.75, 1.0, 1.3, 1.4), (96, 128, 160, 192, 224)),
    "mobilenet_v3_small": ((0.75, 1.0), (224,)),
    "mobilenet_v3_large": ((0.75, 1.0), (224,)),
}


# The pixel mapping ImageNet-trained MobileNets expect: V1 and V2 were trained on pixel / 127.5
# - 1 and V3's own preprocessing layer does the same. The nearest range whose uint8 zero point
# is a whole pixel value (calibration.input_range needs one) is pixel / 128 - 1, 0.4 % narrower.
IMAGENET_INPUT_RANGE = (-1.0, 0.9921875)


NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")


HEAD_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Names become file names such as `<name>_summary_Custom_<board>.csv`: two of them must stay
# within the 255 bytes a file name may have.
MAX_NAME_LENGTH = 100


MIN_SIDE = 32  # keras.applications MobileNets refuse smaller inputs


# MobileNetV1 gives its first convolution int(32 * alpha) filters, and Keras refuses 0.
# (MobileNetV2 and V3 round channels up to at least 8.)
MIN_ALPHA_V1 = 1 / 32


# Whole numbers beyond this are no count a build can use (and overflow TensorFlow's int32).
MAX_WHOLE_NUMBER = 2**31 - 1


OUTPUT_STRIDES = (1, 2, 4, 8, 16, 32)


FULL_STRIDE = 32  # five stride-2 stages in every MobileNet


@dataclass(frozen=True)
class BackboneBlocks:
    """A keras.applications backbone's blocks, for `model.depth` (generator/model/build.py).

    `names[n]` is block n's name for `model.depth`; `layers` matches the Keras names of a
    block's layers, its group the block's number (no number: block 0). The stem (the first,
    stride-2 convolution) comes before the first block; `strided` are the blocks whose
    depthwise convolution has stride 2, the first of stages 2 to 5. A test checks these against
    the built models.
    """

    names: dict[int, str]
    layers: str
    strided: tuple[int, int, int, int]

    def stages(self, last_block: int) -> int:
        """Stride-2 stages that blocks up to `last_block` (-1: the stem alone) take part in."""
        return 1 + sum(block <= last_block for block in self.strided)

    def stride(self, last_block: int) -> int:
        """The downsampling of a backbone that ends after `last_block`."""
        return 2 ** self.stages(last_block)

    def last_block_of_stage(self, stage: int) -> int:
        """The last block of stride-2 stage `stage` (1 to 4); -1 when the stage is the stem."""
        return self.strided[stage - 1] - 1


BACKBONE_BLOCKS = {
    "mobilenet_v1": BackboneBlocks(
        {n: f"conv_pw_{n}" for n in range(1, 14)}, r"conv_(?:pad|dw|pw)_(\d+)", (2, 4, 6, 12)
    ),
    "mobilenet_v2": BackboneBlocks(
        {0: "expanded_conv", **{n: f"block_{n}" for n in range(1, 17)}},
        r"(?:block_(\d+)|expanded_conv)_",
        (1, 3, 6, 13),
    ),
    "mobilenet_v3_small": BackboneBlocks(
        {0: "expanded_conv", **{n: f"expanded_conv_{n}" for n in range(1, 11)}},
        r"expanded_conv_(?:(\d+)_)?",
        (0, 1, 3, 8),
    ),
    "mobilenet_v3_large": BackboneBlocks(
        {0: "expanded_conv", **{n: f"expanded_conv_{n}" for n in range(1, 15)}},
        r"expanded_conv_(?:(\d+)_)?",
        (1, 3, 6, 12),
    ),
    "mobilenet_v4_conv_small": BackboneBlocks(
        {n: f"block_{n}" for n in range(16)}, r"block_(\d+)(?:_|$)", (0, 2, 4, 10)
    ),
    "mobilenet_v4_conv_medium": BackboneBlocks(
        {n: f"block_{n}" for n in range(22)}, r"block_(\d+)(?:_|$)", (0, 1, 3, 11)
    ),
}


STAGES = 5  # stride-2 stages of a whole backbone: model.depth's largest whole number


MIN_FEATURE_MAP = 3  # the smallest last feature map side `output_stride: auto` allows


# `quantization.mode`: what `build` makes, and the rows `compare` measures (plus `qat`).
# Deployable modes run on an Ethos-U (Vela compiles them); host modes are formats for a host
# runtime with float operators, which no Ethos-U runs.
DEPLOYABLE_MODES = ("full_integer", "int16x8")


HOST_MODES = ("dynamic_range", "float16", "float32")


MODES = DEPLOYABLE_MODES + HOST_MODES


# `compare` also makes `qat` (fine-tuned, then full_integer), `mixed` (full_integer with the
# layers quantization.keep_float names kept float and those quantization.int16 names at 16 bits)
# and `optimized` (the config's `optimize:` applied to a copy, then full_integer).
COMPARE_MODES = (*MODES, "qat", "mixed", "optimized")


@dataclass(frozen=True)
class Head:
    name: str
    num_classes: int | None  # None only for a model file's head, until the file is read
    labels: tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Our MobileNet (`backbone`...), or a trained Keras model of any architecture (`path`).

    For a model file, `backbone`, `alpha` and `weights` are None, `input_shape` is None until
    the file is read, and `heads` may be empty (named from the model's outputs). `workload`
    (the images the build holds in memory) lets the build check a model file's memory needs
    once TensorFlow has read its input shape; None skips that check.
    """

    backbone: str | None
    alpha: float | None
    input_shape: tuple[int, int, int] | None
    heads: tuple[Head, ...]
    weights: Path | None
    seed: int
    path: Path | None = None
    workload: Workload | None = None
    output_stride: int | None = None  # None: auto (see output_stride below)
    # "imagenet" (Keras's published weights) or a local .h5 / .keras file the backbone's
    # weights are read from (generator/model/pretrained.py); None: random (seeded) or `weights`
    pretrained: str | Path | None = None
    # The last block kept (BACKBONE_BLOCKS; -1: the stem alone), from `model.depth`; None: the
    # whole backbone, its last 1×1 convolution (V2, V3) included
    last_block: int | None = None


@dataclass(frozen=True, kw_only=True)
class CalibrationConfig:
    data: Path
    samples: int
    holdout: int
    input_range: tuple[float, float]
    # True when input_range was not in the config and follows the pretrained weights' scaling
    input_range_from_pretrained: bool = False


@dataclass(frozen=True, kw_only=True)
class QuantizationConfig:
    """`io_dtype` and `per_channel` apply to the integer modes; `keep_float` and `int16` name
    Keras layers or TFLite operator types (upper case, e.g. MEAN) that a `full_integer` model
    keeps in float32 or gives 16-bit activations (generator/quantization/convert.py,
    generator/quantization/int16_layers.py)."""

    io_dtype: str
    per_channel: bool
    mode: str = "full_integer"
    keep_float: tuple[str, ...] = ()
    int16: tuple[str, ...] = ()


@dataclass(frozen=True)
class VelaTarget:
    accelerator: str
    system_config: str
    memory_mode: str
    board: Board | None = None

    @property
    def key(self) -> str:
        """The target's name in outputs (`vela/<key>/`) and reports: its board, or its NPU."""
        return self.board.name if self.board else self.accelerator


@dataclass(frozen=True)
class VelaConfig:
    targets: tuple[VelaTarget, ...]
    optimise: str
    allow_cpu_fallback: bool


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool  # random horizontal flips
    shift: float  # random shifts up to this fraction of the height and width
    brightness: float  # random brightness change up to this fraction of the input range


@dataclass(frozen=True)
class QatConfig:
    """Quantization-aware fine-tuning after float training (generator/model/qat.py)."""

    epochs: int
    learning_rate: float


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    data: Path
    validation: float | Path  # a fraction of `data` held out, or a separate labelled set
    epochs: int
    batch_size: int
    learning_rate: float
    schedule: str  # cosine | constant
    loss_weights: dict[str, float]
    early_stopping: int  # patience in epochs on validation loss; 0 turns it off
    augment: AugmentConfig | None
    seed: int
    qat: QatConfig | None = None
    warmup_epochs: int = 0  # linear warm-up of the learning rate from 0
    freeze_backbone_epochs: int = 0  # heads alone first, backbone frozen (BN in inference mode)
    backbone_learning_rate: float = 1.0  # the backbone's rate, a multiple of the heads' rate
    mixed_precision: bool = False  # float16 compute, float32 variables, heads and logits
    # A float .keras model whose logits the training also learns from (generator/model/train.py)
    teacher: Path | None = None
    distillation_weight: float = 0.5  # the teacher term's share of each head's loss
    temperature: float = 2.0  # softens both models' logits in the teacher term


@dataclass(frozen=True, kw_only=True)
class OptimizeConfig:
    """Weights made for the NPU's weight encoder (generator/model/compress.py): each kernel of
    a Conv2D, DepthwiseConv2D or Dense layer pruned and clustered, then fine-tuned under that
    constraint, learning from the uncompressed model (or `train.teacher`) as well as the labels.

    `clusters` pairs fnmatch patterns of Keras layer names with a number of values, the first
    match deciding (0: the layer is not clustered); `sparsity` is the fraction of each kernel's
    smallest weights set to 0 (`sparsity_layers` names the layers it applies to).
    """

    clusters: tuple[tuple[str, int], ...]
    sparsity: float
    sparsity_layers: tuple[str, ...]
    epochs: int
    learning_rate: float
    distill: bool  # learn from the teacher's logits while fine-tuning

    def clusters_for(self, layer: str) -> int:
        return next((k for pattern, k in self.clusters if fnmatch.fnmatchcase(layer, pattern)), 0)

    def sparsity_for(self, layer: str) -> float:
        if any(fnmatch.fnmatchcase(layer, pattern) for pattern in self.sparsity_layers):
            return self.sparsity
        return 0.0


@dataclass(frozen=True)
class EvaluationConfig:
    data: Path


@dataclass(frozen=True)
class OutputConfig:
    dir: Path
    require_fit: bool  # fail the build when the model does not fit a board target
    c_array_section: str | None  # linker section of the model arrays; None: the default


@dataclass(frozen=True)
class Config:
    name: str
    model: ModelConfig
    calibration: CalibrationConfig
    quantization: QuantizationConfig
    vela: VelaConfig
    output: OutputConfig
    source: Path
    train: TrainConfig | None = None
    evaluation: EvaluationConfig | None = None
    optimize: OptimizeConfig | None = None


def imagenet_scaled(model: ModelConfig) -> bool:
    """Whether the pretrained weights are Keras's published ones (imagenet, or a Keras .h5 file
    such as a downloaded copy), which expect pixels scaled to [-1, 1]."""
    pretrained = model.pretrained
    return pretrained == IMAGENET or (isinstance(pretrained, Path) and pretrained.suffix == ".h5")


def backbone_stride(config: ModelConfig) -> int:
    """The downsampling of the backbone's kept stages, before `output_stride` relaxes any: 32
    for a whole backbone, 16 when `model.depth` ends it in stage 4, and so on."""
    if config.last_block is None:
        return FULL_STRIDE
    return BACKBONE_BLOCKS[config.backbone].stride(config.last_block)


def describe_optimize(optimize: OptimizeConfig) -> str:
    """`optimize` in a few words: `clusters *_logits: 0, *: 16; sparsity 0.5`."""
    asked = []
    if any(k for _, k in optimize.clusters):
        asked.append(f"clusters {', '.join(f'{p}: {k}' for p, k in optimize.clusters)}")
    if optimize.sparsity:
        asked.append(f"sparsity {optimize.sparsity:g}")
    tuning = f"{optimize.epochs} epochs fine-tuning" if optimize.epochs else "no fine-tuning"
    return "; ".join([*asked, tuning])


def ending_block(config: ModelConfig) -> str | None:
    """The block `model.depth` ends the backbone after (`stem` for the stem alone); None for
    a whole backbone or a model file."""
    if config.last_block is None:
        return None
    return BACKBONE_BLOCKS[config.backbone].names.get(config.last_block, "stem")


def output_stride(config: ModelConfig) -> int:
    """The backbone's total downsampling: `model.output_stride`, or for `auto` the largest of
    the kept stages' stride (32 for a whole backbone), half that, ... that leaves the last
    feature map at least 3 pixels on its shorter side.

    keras.applications MobileNets halve the image five times, which suits 224×224 photos (a
    7×7 last map) but leaves a 32×32 input a single pixel before the pooling: every class is
    decided from one 1×1 vector, and the depthwise 3×3 filters of the last stages see only
    padding. Measured on the digits demo (MobileNetV1 α 0.25, 32×32), output stride 8 instead
    of 32 raised `digit` from 95.5 % to 98.9 % at the same epochs (docs/training.md).
    """
    if config.output_stride is not None:
        return config.output_stride
    side = min(config.input_shape[:2])
    stride = backbone_stride(config)
    while stride > 1 and math.ceil(side / stride) < MIN_FEATURE_MAP:
        stride //= 2
    return stride
