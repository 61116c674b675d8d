"""Load and validate a build config (YAML) completely, before any TensorFlow work starts.

Relative paths in the file (and in `--set` values, which count as if written in the file)
resolve against the folder holding the config file. `--output-dir` on the command line resolves
against the current directory, as command-line paths do. When `output.dir` is omitted, outputs
go to `./outputs` in the current directory.

Whatever the user got wrong ends here as a `UserError` naming the field and the fix, so that a
build never starts TensorFlow on a config it cannot finish: the file itself (UTF-8 YAML, a
mapping, no key given twice), every value's type (numbers finite, booleans not taken for
numbers), paths the OS can look up, an output folder that can be created, and an estimate of the
memory the build needs (`generator.resources`).
"""

from __future__ import annotations

import configparser
import difflib
import importlib.resources
import importlib.util
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from generator.boards import AXI_BYTES_PER_CYCLE, Board, custom_board, preset_boards
from generator.errors import UserError
from generator.resources import Workload, backbone_network, check_memory, workload

BACKBONES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")

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


@dataclass(frozen=True)
class Head:
    name: str
    num_classes: int | None  # None only for a model file's head, until the file is read
    labels: tuple[str, ...] | None


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class CalibrationConfig:
    data: Path
    samples: int
    holdout: int
    input_range: tuple[float, float]


# `quantization.mode`: what `build` makes, and the rows `compare` measures (plus `qat`).
# Deployable modes run on an Ethos-U (Vela compiles them); host modes are formats for a host
# runtime with float operators, which no Ethos-U runs.
DEPLOYABLE_MODES = ("full_integer", "int16x8")
HOST_MODES = ("dynamic_range", "float16", "float32")
MODES = DEPLOYABLE_MODES + HOST_MODES
# `compare` also makes `qat` (fine-tuned, then full_integer) and `mixed` (full_integer with the
# layers quantization.keep_float names kept float and those quantization.int16 names at 16 bits).
COMPARE_MODES = (*MODES, "qat", "mixed")


@dataclass(frozen=True)
class QuantizationConfig:
    """`io_dtype` and `per_channel` apply to the integer modes; `keep_float` and `int16` name
    Keras layers or TFLite operator types (upper case, e.g. MEAN) that a `full_integer` model
    keeps in float32 or gives 16-bit activations (generator/convert.py,
    generator/int16_layers.py)."""

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
    """Quantization-aware fine-tuning after float training (generator/qat.py)."""

    epochs: int
    learning_rate: float


@dataclass(frozen=True)
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


def load_config(path: Path, overrides: list[str] = (), output_dir: Path | None = None) -> Config:
    """Read `path`, apply `--set KEY=VALUE` overrides and return the validated config."""
    path = Path(path)
    raw = read_config_file(path)
    for override in overrides:
        apply_override(raw, override)
    return config_from_raw(raw, path, output_dir)


def read_config_file(path: Path) -> dict:
    """The config file's mapping, as written (nothing validated yet)."""
    if path.is_dir():
        raise UserError(f"config file {path} is a folder: pass the path of a YAML config")
    if not path.is_file():
        raise UserError(f"config file {path} not found: pass the path of a YAML config")
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not UTF-8 text (byte {error.start}): save the config as UTF-8"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = f" ({error.problem})" if getattr(error, "problem", None) else ""
        raise UserError(f"{path}: not valid YAML{where}{problem}: fix the syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the top level must be a mapping of sections (name, model, ...)")
    return raw


def config_from_raw(raw: dict, path: Path, output_dir: Path | None = None) -> Config:
    """Validate the mapping read from `path` (relative paths resolve against its folder).

    Last come the checks that need the whole config: the output folder (`--output-dir` when
    given, else `output.dir`) and the memory the build needs.
    """
    config = parse_config(raw, base=path.resolve().parent, source=path)
    field = "output.dir"
    if output_dir is not None:
        field = "--output-dir"
        resolved = _resolve(Path.cwd(), str(output_dir), field)
        config = replace(config, output=replace(config.output, dir=resolved))
    _check_output_dir(config.output.dir, config.name, field)
    work = workload(config)
    if config.model.path is None:
        shape = config.model.input_shape
        check_memory(
            backbone_network(config.model), shape, work, f"model.input_shape: {list(shape)}"
        )
    return replace(config, model=replace(config.model, workload=work))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping.

    PyYAML keeps the last of two equal keys without a word, so a second `model:` section would
    silently replace the first. Keys merged in with `<<:` may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only


def apply_override(raw: dict, override: str) -> None:
    """Set one dotted key, e.g. `model.alpha=0.5` or `vela.targets.0.accelerator=ethos-u55-64`.

    The value is read as YAML, so `0.5` is a number, `[64, 64, 3]` a list and `false` a boolean.
    """
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {override!r}: expected KEY=VALUE, e.g. --set model.alpha=0.5")
    try:
        parsed = _load_yaml(value)
    except yaml.YAMLError:
        raise UserError(f"--set {override!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {key.strip()}: an empty key between dots: e.g. model.alpha=0.5")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise UserError(f"--set {key}: {where} is not a section, so it has no keys")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = parsed
    elif isinstance(node, dict):
        node[last] = parsed
    else:
        raise UserError(f"--set {key}: {'.'.join(parts[:-1])} is not a section, so it has no keys")


def _list_index(items: list, part: str, where: str) -> int:
    if not items:
        raise UserError(f"--set {where}: the list is empty: set the whole list instead")
    if not part.isdigit() or int(part) >= len(items):
        raise UserError(f"--set {where}: use an index from 0 to {len(items) - 1}")
    return int(part)


def parse_config(raw: dict, base: Path, source: Path) -> Config:
    """Validate a config mapping; relative paths resolve against `base`."""
    top = _Section(
        raw,
        "",
        (
            "name",
            "model",
            "train",
            "calibration",
            "quantization",
            "vela",
            "boards",
            "evaluation",
            "output",
        ),
    )
    name = top.get("name", str, default="default")
    if not NAME_PATTERN.match(name) or len(name) > MAX_NAME_LENGTH:
        raise UserError(
            f"name: {name[:MAX_NAME_LENGTH]!r} may only use letters, digits, '_' and '-', "
            f"at most {MAX_NAME_LENGTH} of them"
        )
    output = _parse_output(top.get("output", dict, default={}), base)
    model = _parse_model(_Section(top.get("model", dict, default={}), "model", _MODEL_KEYS), base)
    train = top.get("train", dict, default=None)
    train = None if train is None else _parse_train(train, model, base)
    evaluation = top.get("evaluation", dict, default=None)
    quantization = _parse_quantization(top.get("quantization", dict, default={}))
    if quantization.int16 and train is not None and train.qat is not None:
        raise UserError(
            "quantization.int16: quantization-aware training learns 8-bit ranges, which 16-bit "
            "layers would not use: remove train.qat or quantization.int16"
        )
    return Config(
        name=name,
        model=model,
        calibration=_parse_calibration(top.get("calibration", dict, default={}), base),
        quantization=quantization,
        vela=_parse_vela(top.get("vela", dict, default={}), top.get("boards", dict, default={})),
        output=output,
        source=source,
        train=train,
        evaluation=None if evaluation is None else _parse_evaluation(evaluation, base),
    )


_MODEL_KEYS = (
    "path",
    "backbone",
    "alpha",
    "input_shape",
    "output_stride",
    "heads",
    "weights",
    "seed",
)
_ARCHITECTURE_KEYS = ("backbone", "alpha", "input_shape", "output_stride", "weights")
OUTPUT_STRIDES = (1, 2, 4, 8, 16, 32)
FULL_STRIDE = 32  # five stride-2 stages in every keras.applications MobileNet
MIN_FEATURE_MAP = 3  # the smallest last feature map side `output_stride: auto` allows


def _parse_model(section: _Section, base: Path) -> ModelConfig:
    path = section.get("path", str, default=None)
    if path is not None:
        return _parse_model_file(section, _resolve(base, path, "model.path"))
    backbone = section.get("backbone", str, default="mobilenet_v1")
    if backbone not in BACKBONES:
        raise UserError(f"model.backbone: {backbone!r} is not one of {', '.join(BACKBONES)}")
    alpha = section.get("alpha", float, default=0.25)
    if not 0 < alpha <= 4:
        raise UserError(f"model.alpha: {alpha} is out of range: use a width multiplier in (0, 4]")
    if backbone == "mobilenet_v1" and alpha < MIN_ALPHA_V1:
        raise UserError(
            f"model.alpha: {alpha} gives mobilenet_v1 convolutions with no filters "
            f"(32 × alpha < 1): use alpha >= {MIN_ALPHA_V1}, e.g. 0.25"
        )
    shape = section.get("input_shape", list, default=[96, 96, 3])
    if (
        len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        or shape[2] not in (1, 3)
        or min(shape[:2]) < MIN_SIDE
    ):
        raise UserError(
            f"model.input_shape: {shape} must be [H, W, C] with H, W >= {MIN_SIDE} and C 1 or 3"
        )
    stride = section.raw.get("output_stride", "auto")
    if stride != "auto" and (type(stride) is not int or stride not in OUTPUT_STRIDES):
        raise UserError(
            f"model.output_stride: {stride!r} is not auto or one of "
            f"{', '.join(map(str, OUTPUT_STRIDES))}: use auto (the default) or e.g. 32"
        )
    heads = section.get("heads", list, default=None)
    if not heads:
        raise UserError(
            "model.heads: give one or more heads, e.g. [{name: object, num_classes: 4}]"
        )
    parsed_heads = tuple(_parse_head(h, f"model.heads[{i}]") for i, h in enumerate(heads))
    _check_unique(parsed_heads)
    weights = section.get("weights", str, default=None)
    weights_path = _resolve(base, weights, "model.weights") if weights else None
    if weights_path is not None and not weights_path.is_file():
        raise UserError(
            f"model.weights: {weights_path} not found: give a Keras .weights.h5 file or null"
        )
    if weights_path is not None and not weights_path.name.endswith(".weights.h5"):
        raise UserError(
            f"model.weights: {weights_path.name} is not a .weights.h5 file: save the weights "
            "with model.save_weights('name.weights.h5'), or give a whole .keras model as model.path"
        )
    return ModelConfig(
        backbone,
        alpha,
        tuple(shape),
        parsed_heads,
        weights_path,
        _seed(section),
        output_stride=None if stride == "auto" else stride,
    )


def output_stride(config: ModelConfig) -> int:
    """The backbone's total downsampling: `model.output_stride`, or for `auto` the largest of
    32, 16, 8, ... that leaves the last feature map at least 3 pixels on its shorter side.

    keras.applications MobileNets halve the image five times, which suits 224×224 photos (a
    7×7 last map) but leaves a 32×32 input a single pixel before the pooling: every class is
    decided from one 1×1 vector, and the depthwise 3×3 filters of the last stages see only
    padding. Measured on the digits demo (MobileNetV1 α 0.25, 32×32), output stride 8 instead
    of 32 raised `digit` from 95.5 % to 98.9 % at the same epochs (README, "Training").
    """
    if config.output_stride is not None:
        return config.output_stride
    side = min(config.input_shape[:2])
    stride = FULL_STRIDE
    while stride > 1 and math.ceil(side / stride) < MIN_FEATURE_MAP:
        stride //= 2
    return stride


def _seed(section: _Section) -> int:
    """A seed NumPy and Keras both take: a whole number in 0 .. 2**31 - 1."""
    seed = section.get("seed", int, default=0)
    if seed < 0:
        raise UserError(f"{section.where}.seed: {seed} is negative: use a whole number >= 0")
    return seed


def _parse_model_file(section: _Section, path: Path) -> ModelConfig:
    """`model.path`: the file brings its architecture, input shape and outputs."""
    if not path.is_file():
        raise UserError(f"model.path: {path} not found: give a model saved with model.save")
    if path.suffix != ".keras":
        raise UserError(
            f"model.path: {path.name} is not a .keras file: save your model with "
            "model.save('name.keras')"
        )
    extra = [key for key in _ARCHITECTURE_KEYS if key in section.raw]
    if extra:
        raise UserError(
            f"model.{extra[0]}: a model file brings its own architecture and weights: "
            f"remove model.{extra[0]} or model.path"
        )
    heads = section.get("heads", list, default=[])
    parsed = tuple(
        _parse_head(h, f"model.heads[{i}]", needs_classes=False) for i, h in enumerate(heads)
    )
    _check_unique(parsed)
    return ModelConfig(None, None, None, parsed, None, _seed(section), path)


def _check_unique(heads: tuple[Head, ...]) -> None:
    names = [h.name for h in heads]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(
            f"model.heads: head names must be unique; repeated: {', '.join(duplicates)}"
        )


def _parse_head(raw: Any, where: str, needs_classes: bool = True) -> Head:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a head is a mapping like {{name: object, num_classes: 4}}")
    section = _Section(raw, where, ("name", "num_classes", "labels"))
    name = section.get("name", str, default=None)
    if name is None or not HEAD_NAME_PATTERN.match(name):
        raise UserError(
            f"{where}.name: give each head a name of letters, digits and '_' "
            f"(not starting with a digit), got {name!r}"
        )
    labels = section.get("labels", list, default=None)
    num_classes = section.get("num_classes", int, default=None)
    if labels is not None:
        labels = tuple(_label(label, f"{where}.labels") for label in labels)
        if len(set(labels)) != len(labels):
            raise UserError(f"{where}.labels: labels of head {name!r} must be unique")
        if num_classes is not None and num_classes != len(labels):
            raise UserError(
                f"{where}: num_classes {num_classes} disagrees with {len(labels)} labels: "
                "drop num_classes or fix it"
            )
        num_classes = len(labels)
    if (needs_classes and num_classes is None) or (num_classes is not None and num_classes < 2):
        raise UserError(f"{where}: head {name!r} needs labels or num_classes >= 2")
    return Head(name, num_classes, labels)


def _label(value: Any, where: str) -> str:
    """A class label as the data spells it. YAML reads unquoted yes/no/on/off as booleans."""
    if isinstance(value, bool):
        raise UserError(
            f"{where}: {value} is a boolean, as YAML reads unquoted yes, no, on, off, true and "
            "false: quote the label, e.g. 'yes'"
        )
    if not isinstance(value, str | int | float) or str(value).strip() == "":
        raise UserError(f"{where}: each label must be a non-empty name, got {value!r}")
    return str(value)


def _parse_train(raw: dict, model: ModelConfig, base: Path) -> TrainConfig:
    section = _Section(
        raw,
        "train",
        (
            "data",
            "validation",
            "epochs",
            "batch_size",
            "learning_rate",
            "schedule",
            "loss_weights",
            "early_stopping",
            "augment",
            "seed",
            "warmup_epochs",
            "qat",
        ),
    )
    data = _labelled_path(section.get("data", str, default=None), base, "train.data")
    validation_raw = section.raw.get("validation", 0.2)
    if isinstance(validation_raw, str):
        validation: float | Path = _labelled_path(validation_raw, base, "train.validation")
    else:
        validation = section.get("validation", float, default=0.2)
        if not 0 < validation < 1:
            raise UserError(
                f"train.validation: {validation} must be a fraction in (0, 1) or a labelled set"
            )
    epochs = section.get("epochs", int, default=30)
    batch_size = section.get("batch_size", int, default=32)
    learning_rate = section.get("learning_rate", float, default=0.003)
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise UserError("train: epochs and batch_size must be >= 1, learning_rate > 0")
    warmup_epochs = section.get("warmup_epochs", int, default=0)
    if not 0 <= warmup_epochs < epochs:
        raise UserError(
            f"train.warmup_epochs: {warmup_epochs} must be >= 0 and below train.epochs ({epochs})"
        )
    schedule = section.get("schedule", str, default="cosine")
    if schedule not in ("cosine", "constant"):
        raise UserError(f"train.schedule: {schedule!r} must be cosine or constant")
    loss_weights = section.get("loss_weights", dict, default={})
    known = {h.name for h in model.heads}
    for head, weight in loss_weights.items():
        if known and head not in known:
            hint = _nearest(str(head), sorted(known))
            raise UserError(
                f"train.loss_weights.{head}: no such head"
                + (f": did you mean {hint!r}?" if hint else "")
            )
        if (
            not isinstance(weight, int | float)
            or isinstance(weight, bool)
            or not 0 <= weight < math.inf
        ):
            raise UserError(f"train.loss_weights.{head}: {weight!r} must be a finite number >= 0")
    early_stopping = section.get("early_stopping", int, default=5)
    augment = _parse_augment(section.raw.get("augment", {}))
    seed = _seed(section) if "seed" in section.raw else model.seed
    return TrainConfig(
        data,
        validation,
        epochs,
        batch_size,
        learning_rate,
        schedule,
        {str(k): float(v) for k, v in loss_weights.items()},
        max(0, early_stopping),
        augment,
        seed,
        _parse_qat(section.raw.get("qat")),
        warmup_epochs,
    )


def _parse_qat(raw: Any) -> QatConfig | None:
    """`train.qat: {epochs, learning_rate}`; absent or null: post-training quantization only."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UserError(
            f"train.qat: expected a mapping, got {raw!r}: e.g. qat: {{epochs: 3, "
            "learning_rate: 0.0001}"
        )
    section = _Section(raw, "train.qat", ("epochs", "learning_rate"))
    epochs = section.get("epochs", int, default=3)
    learning_rate = section.get("learning_rate", float, default=1e-4)
    if epochs < 1 or learning_rate <= 0:
        raise UserError("train.qat: epochs must be >= 1 and learning_rate > 0")
    return QatConfig(epochs, learning_rate)


def _parse_augment(raw: Any) -> AugmentConfig | None:
    """`augment: false` turns augmentation off; a mapping tunes it."""
    if raw is False or raw is None:
        return None
    if raw is True:
        raw = {}
    section = _Section(raw, "train.augment", ("flip", "shift", "brightness"))
    shift = section.get("shift", float, default=0.1)
    brightness = section.get("brightness", float, default=0.1)
    if not (0 <= shift < 1 and 0 <= brightness < 1):
        raise UserError("train.augment: shift and brightness are fractions in [0, 1)")
    return AugmentConfig(section.get("flip", bool, default=True), shift, brightness)


def _parse_evaluation(raw: dict, base: Path) -> EvaluationConfig:
    section = _Section(raw, "evaluation", ("data",))
    return EvaluationConfig(
        _labelled_path(section.get("data", str, default=None), base, "evaluation.data")
    )


def _labelled_path(value: str | None, base: Path, field: str) -> Path:
    if value is None:
        raise UserError(f"{field}: give a labelled set: a folder <head>/<class>/ or a .csv file")
    path = _resolve(base, value, field)
    if not path.exists():
        raise UserError(f"{field}: {path} not found: give a folder <head>/<class>/ or a .csv file")
    if not path.is_dir() and not (path.is_file() and path.suffix.lower() == ".csv"):
        raise UserError(
            f"{field}: {path} is neither a folder nor a .csv file: give a folder "
            "<head>/<class>/ or a CSV path,<head>,..."
        )
    return path


def _parse_calibration(raw: dict, base: Path) -> CalibrationConfig:
    section = _Section(raw, "calibration", ("data", "samples", "holdout", "input_range"))
    data = section.get("data", str, default=None)
    if data is None:
        raise UserError("calibration.data: give the folder of calibration images")
    data_path = _resolve(base, data, "calibration.data")
    if data_path.is_file():
        raise UserError(
            f"calibration.data: {data_path} is a file: give the folder that holds the images"
        )
    if not data_path.is_dir():
        raise UserError(f"calibration.data: folder {data_path} not found: point it at your images")
    samples = section.get("samples", int, default=200)
    holdout = section.get("holdout", int, default=50)
    if samples < 1 or holdout < 1:
        raise UserError("calibration.samples and calibration.holdout must be at least 1")
    input_range = section.get("input_range", list, default=[0.0, 1.0])
    return CalibrationConfig(data_path, samples, holdout, _parse_input_range(input_range))


def _parse_input_range(value: list) -> tuple[float, float]:
    """The float range pixels 0..255 map onto, checked to be exactly representable.

    A uint8 input means real = scale * (pixel - zero_point) with an integer zero point, so
    `lo + p * (hi - lo) / 255` is exact only when `-lo * 255 / (hi - lo)` is an integer in
    0..255. `[-1, 1]` is not (zero point 127.5); `[-1, 0.9921875]` (pixel / 128 - 1) is.
    """
    if len(value) != 2 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise UserError(
            f"calibration.input_range: {value} must be two finite numbers [lo, hi], e.g. [0.0, 1.0]"
        )
    lo, hi = float(value[0]), float(value[1])
    if not lo < hi or not lo <= 0 <= hi:
        raise UserError(
            f"calibration.input_range: [{lo}, {hi}] must have lo < hi and include 0, "
            "e.g. [0.0, 1.0] or [-1.0, 0.9921875]"
        )
    zero_point = -lo * 255 / (hi - lo)
    if not math.isclose(zero_point, round(zero_point), abs_tol=1e-4):
        raise UserError(
            f"calibration.input_range: [{lo}, {hi}] puts pixel zero point at {zero_point:g}, "
            "which uint8 cannot hold exactly: use [0.0, 1.0] or [-1.0, 0.9921875] (pixel/128 - 1)"
        )
    return lo, hi


def _parse_quantization(raw: dict) -> QuantizationConfig:
    section = _Section(
        raw, "quantization", ("mode", "io_dtype", "per_channel", "keep_float", "int16")
    )
    io_dtype = section.get("io_dtype", str, default="uint8")
    if io_dtype not in ("uint8", "int8"):
        raise UserError(f"quantization.io_dtype: {io_dtype!r} must be uint8 or int8")
    mode = section.get("mode", str, default="full_integer")
    if mode not in MODES:
        hint = _nearest(mode, MODES)
        raise UserError(
            f"quantization.mode: {mode!r} is not a mode: "
            + (f"did you mean {hint!r}?" if hint else f"use one of {', '.join(MODES)}")
        )
    keep_float = _layer_names(section, "keep_float")
    int16 = _layer_names(section, "int16")
    for key, names, what in (
        ("keep_float", keep_float, "keeps layers float"),
        ("int16", int16, "gives single layers 16-bit activations"),
    ):
        if names and mode != "full_integer":
            raise UserError(
                f"quantization.{key}: only a full_integer model {what}, and mode is {mode}: "
                f"set quantization.mode: full_integer or remove {key}"
            )
    if int16 and importlib.util.find_spec("ai_edge_quantizer") is None:
        raise UserError(
            "quantization.int16: 16-bit layers need Google's ai-edge-quantizer: "
            "install the int16 extra, pip install -e '.[int16]' (or remove quantization.int16)"
        )
    both = [name for name in int16 if name in keep_float]
    if both:
        raise UserError(
            f"quantization.int16: {', '.join(both)} also in quantization.keep_float: name each "
            "layer in one of them"
        )
    return QuantizationConfig(
        io_dtype, section.get("per_channel", bool, default=True), mode, keep_float, int16
    )


def _layer_names(section: _Section, key: str) -> tuple[str, ...]:
    """A list of Keras layer names or TFLite operator types, each once (checked against the
    converted model, `convert._denied`)."""
    names = section.get(key, list, default=[])
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise UserError(
                f"quantization.{key}[{index}]: expected a Keras layer name or a TFLite operator "
                f"type such as MEAN, got {name!r}"
            )
    return tuple(dict.fromkeys(names))


_SECTION_PATTERN = re.compile(r"^[A-Za-z0-9_.$]+$")


def _parse_output(raw: dict, base: Path) -> OutputConfig:
    section = _Section(raw, "output", ("dir", "require_fit", "c_array"))
    output_dir = section.get("dir", str, default=None)
    c_array = _Section(section.get("c_array", dict, default={}), "output.c_array", ("section",))
    linker_section = c_array.get("section", str, default=None)
    if linker_section is not None and not _SECTION_PATTERN.match(linker_section):
        raise UserError(
            f"output.c_array.section: {linker_section!r} is not a linker section name: "
            "use letters, digits, '_', '.' and '$', e.g. .nn_model"
        )
    return OutputConfig(
        dir=_resolve(base, output_dir, "output.dir") if output_dir else Path("outputs").resolve(),
        require_fit=section.get("require_fit", bool, default=False),
        c_array_section=linker_section,
    )


def _parse_vela(raw: dict, boards_raw: dict) -> VelaConfig:
    section = _Section(raw, "vela", ("targets", "optimise", "allow_cpu_fallback"))
    targets_raw = section.get("targets", list, default=[{"accelerator": "ethos-u55-128"}])
    if not targets_raw:
        raise UserError(
            "vela.targets: name at least one target, e.g. [{accelerator: ethos-u55-128}] "
            "or [{board: alif_e7_he}]"
        )
    systems, modes = vela_ini_sections()
    boards = preset_boards() | _parse_custom_boards(boards_raw)
    targets = tuple(
        _parse_target(t, f"vela.targets[{i}]", systems, modes, boards)
        for i, t in enumerate(targets_raw)
    )
    keys = [t.key for t in targets]
    if len(set(keys)) != len(keys):
        raise UserError(
            "vela.targets: each accelerator or board may appear once (outputs go to vela/<it>/)"
        )
    optimise = section.get("optimise", str, default="Performance")
    if optimise not in ("Performance", "Size"):
        raise UserError(f"vela.optimise: {optimise!r} must be Performance or Size")
    allow_cpu = section.get("allow_cpu_fallback", bool, default=False)
    return VelaConfig(targets, optimise, allow_cpu)


def _parse_target(
    raw: Any, where: str, systems: list[str], modes: list[str], boards: dict[str, Board]
) -> VelaTarget:
    if not isinstance(raw, dict):
        raise UserError(
            f"{where}: a target is a mapping like {{accelerator: ethos-u55-128}} "
            "or {board: alif_e7_he}"
        )
    section = _Section(raw, where, ("board", "accelerator", "system_config", "memory_mode"))
    board_name = section.get("board", str, default=None)
    if board_name is not None:
        extra = [key for key in raw if key != "board"]
        if extra:
            raise UserError(
                f"{where}.{extra[0]}: a board brings its own accelerator, system_config and "
                f"memory_mode: remove {extra[0]}, or define a custom board under boards:"
            )
        if board_name not in boards:
            hint = _nearest(board_name, list(boards))
            raise UserError(
                f"{where}.board: unknown board {board_name!r}: "
                + (f"did you mean {hint!r}? " if hint else "")
                + f"presets are {', '.join(preset_boards())}; define your own under boards:"
            )
        board = boards[board_name]
        return VelaTarget(board.accelerator, board.system_config, board.memory_mode, board)
    accelerator = section.get("accelerator", str, default=None)
    accelerator = _accelerator(accelerator, f"{where}.accelerator")
    default_system, default_mode = DEFAULT_SYSTEM[accelerator.rsplit("-", 1)[0]]
    system = section.get("system_config", str, default=default_system)
    mode = section.get("memory_mode", str, default=default_mode)
    for key, value, known in (("system_config", system, systems), ("memory_mode", mode, modes)):
        if value not in known:
            hint = _nearest(value, known)
            raise UserError(
                f"{where}.{key}: {value!r} is not in Vela's Arm/vela.ini"
                + (f": did you mean {hint!r}?" if hint else f"; choose one of {', '.join(known)}")
            )
    return VelaTarget(accelerator, system, mode)


def _accelerator(value: str | None, where: str) -> str:
    if value not in ACCELERATORS:
        hint = _nearest(str(value), ACCELERATORS) or "ethos-u55-128"
        raise UserError(
            f"{where}: unknown target {value!r}: did you mean {hint!r}? "
            f"Vela knows {', '.join(ACCELERATORS)}"
        )
    return value


def _parse_custom_boards(raw: dict) -> dict[str, Board]:
    """`boards:` maps a name to {accelerator, clock_mhz, sram: {kib, mb_per_s}, flash: ...}."""
    boards = {}
    presets = preset_boards()
    for name, spec in raw.items():
        where = f"boards.{name}"
        if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > MAX_NAME_LENGTH:
            raise UserError(
                f"{where}: a board name may only use letters, digits, '_' and '-', "
                f"at most {MAX_NAME_LENGTH} of them"
            )
        if name in presets:
            raise UserError(f"{where}: {name!r} is a preset board: give yours another name")
        section = _Section(spec, where, ("accelerator", "clock_mhz", "sram", "flash"))
        accelerator = _accelerator(
            section.get("accelerator", str, default=None), f"{where}.accelerator"
        )
        clock = section.get("clock_mhz", float, default=None)
        if clock is None or clock <= 0:
            raise UserError(f"{where}.clock_mhz: give the NPU clock in MHz, e.g. 200")
        peak = AXI_BYTES_PER_CYCLE[accelerator.rsplit("-", 1)[0]] * clock
        memories = [
            _memory(section.get(memory, dict, default=None), f"{where}.{memory}", peak, clock)
            for memory in ("sram", "flash")
        ]
        (sram_kib, sram_rate), (flash_kib, flash_rate) = memories
        boards[name] = custom_board(
            name, accelerator, clock, sram_kib, sram_rate, flash_kib, flash_rate
        )
    return boards


def _memory(raw: dict | None, where: str, peak: float, clock: float) -> tuple[float, float]:
    if raw is None:
        raise UserError(f"{where}: give its size and bandwidth, e.g. {{kib: 512, mb_per_s: 800}}")
    section = _Section(raw, where, ("kib", "mb_per_s"))
    kib = section.get("kib", float, default=None)
    rate = section.get("mb_per_s", float, default=None)
    if kib is None or kib < 1 or rate is None or rate <= 0:
        raise UserError(
            f"{where}: give kib >= 1 and mb_per_s > 0, e.g. {{kib: 512, mb_per_s: 800}}"
        )
    if rate > peak:
        raise UserError(
            f"{where}.mb_per_s: {rate:g} is more than the NPU's AXI port moves at {clock:g} MHz "
            f"({peak:g} MB/s): lower it or raise clock_mhz"
        )
    return kib, rate


def vela_ini_path() -> Path:
    """Vela's built-in system configurations file (`vela --list-config-files`)."""
    return Path(str(importlib.resources.files("ethosu") / "config_files" / "Arm" / "vela.ini"))


def vela_ini_sections() -> tuple[list[str], list[str]]:
    """System configs and memory modes defined in Vela's Arm/vela.ini, read without Vela."""
    parser = configparser.ConfigParser()
    parser.read(vela_ini_path())
    systems = [s.split(".", 1)[1] for s in parser.sections() if s.startswith("System_Config.")]
    modes = [s.split(".", 1)[1] for s in parser.sections() if s.startswith("Memory_Mode.")]
    return systems, modes


class _Section:
    """One mapping of the config: refuses unknown keys, checks each value's type."""

    def __init__(self, raw: Any, where: str, known: tuple[str, ...]):
        if not isinstance(raw, dict):
            raise UserError(f"{where or 'config'}: must be a mapping of keys to values")
        for key in raw:
            if key not in known:
                full = f"{where}.{key}" if where else str(key)
                hint = _nearest(str(key), known)
                fix = f"did you mean {hint!r}?" if hint else f"known keys: {', '.join(known)}"
                raise UserError(f"{full}: unknown key: {fix}")
        self.raw = raw
        self.where = where

    def get(self, key: str, kind: type, default: Any) -> Any:
        """The value of `key` checked to be of `kind`, `default` when absent or null.

        YAML's booleans are ints to Python, and its .nan and .inf are floats: neither passes for
        a number. Whole numbers are bounded, so no count overflows TensorFlow's int32.
        """
        full = f"{self.where}.{key}" if self.where else key
        value = self.raw.get(key)
        if value is None:
            return default
        wrong_bool = isinstance(value, bool) and kind is not bool
        if kind is float and isinstance(value, int) and not wrong_bool:
            if abs(value) > 1e300:  # beyond any float; YAML reads 1e400 as inf, 10**400 as int
                raise UserError(f"{full}: a {len(str(value))}-digit number is too large")
            value = float(value)
        if wrong_bool or not isinstance(value, kind):
            raise UserError(f"{full}: expected {_KIND_NAMES[kind]}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise UserError(f"{full}: expected a finite number, got {value!r}")
        if kind is int and abs(value) > MAX_WHOLE_NUMBER:
            raise UserError(f"{full}: {value} is too large: use at most {MAX_WHOLE_NUMBER:,}")
        return value


_KIND_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


def _nearest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _resolve(base: Path, value: str, field: str) -> Path:
    """`value` made absolute against `base`, refused when the OS cannot look it up at all.

    A NUL byte, a name longer than the OS allows or a loop of symbolic links would otherwise
    raise from the first `is_dir()`; a path that does not exist (yet) is for the caller to judge.
    """
    try:
        path = (base / value).resolve()
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return path
    except (OSError, ValueError, RuntimeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        shown = value if len(value) <= 80 else f"{value[:77]}..."
        raise UserError(f"{field}: {shown!r} is not a usable path ({reason}): fix it") from None
    return path


def _check_output_dir(folder: Path, name: str, field: str) -> None:
    """Refuse an output folder a build could not create or publish into.

    The build creates `folder` (and missing parents) and moves its result to `folder/<name>`:
    a file at either place, or at a parent, fails only after minutes of work otherwise.
    """
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            raise UserError(f"{field}: {folder} is a file: give a folder (created if missing)")
        raise UserError(f"{field}: cannot create {folder}: {existing} is a file: give a folder")
    final = folder / name
    if final.exists() and not final.is_dir():
        raise UserError(
            f"{field}: {final} is a file where the build's folder goes: remove it, or change "
            "name or the output folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{field}: cannot write in {existing}: give a folder you can write to")


def display_path(path: Path) -> str:
    """`path` relative to the current directory when it lies below it, for messages."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def _default_compare_modes(config: Config) -> tuple[str, ...]:
    """Every mode the config can make: `qat` needs training data, `mixed` layers named in
    quantization.keep_float or quantization.int16."""
    modes = [*MODES]
    if config.train is not None:
        modes.append("qat")
    if config.quantization.keep_float or config.quantization.int16:
        modes.append("mixed")
    return tuple(modes)


def compare_modes(text: str | None, config: Config) -> tuple[str, ...]:
    """`--modes a,b,c` checked against what the config can make (before TensorFlow starts)."""
    if text is None:
        return _default_compare_modes(config)
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    for mode in modes:
        if mode not in COMPARE_MODES:
            raise UserError(
                f"--modes: {mode!r} is not a mode: use some of {', '.join(COMPARE_MODES)}"
            )
    if not modes:
        raise UserError(f"--modes: name at least one of {', '.join(COMPARE_MODES)}")
    if "qat" in modes and config.train is None:
        raise UserError(
            "--modes: qat fine-tunes the trained model on labelled images and the config has no "
            "train: section: add one or leave qat out"
        )
    if "mixed" in modes and not (config.quantization.keep_float or config.quantization.int16):
        raise UserError(
            "--modes: mixed keeps the layers quantization.keep_float names float and gives those "
            "quantization.int16 names 16-bit activations, and the config names none: name some "
            "or leave mixed out"
        )
    return modes
