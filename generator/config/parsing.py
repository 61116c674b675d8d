"""Validate a config mapping into `generator.config.schema`'s dataclasses.

Whatever the user got wrong ends here as a `UserError` naming the field and the fix, so that a
build never starts TensorFlow on a config it cannot finish: every value's type (numbers finite,
booleans not taken for numbers), unknown keys (with the nearest known one), paths the OS can
look up, and the values that must agree with each other.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import Any

from generator.config.boards import AXI_BYTES_PER_CYCLE, Board, custom_board, preset_boards
from generator.config.schema import (
    ACCELERATORS,
    BACKBONES,
    DEFAULT_SYSTEM,
    HEAD_NAME_PATTERN,
    MAX_NAME_LENGTH,
    MAX_WHOLE_NUMBER,
    MIN_ALPHA_V1,
    MIN_SIDE,
    MODES,
    NAME_PATTERN,
    OUTPUT_STRIDES,
    AugmentConfig,
    CalibrationConfig,
    Config,
    EvaluationConfig,
    Head,
    ModelConfig,
    OutputConfig,
    QatConfig,
    QuantizationConfig,
    TrainConfig,
    VelaConfig,
    VelaTarget,
)
from generator.config.vela_ini import vela_ini_sections
from generator.errors import UserError
from generator.support.text import nearest


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


def _parse_model(section: _Section, base: Path) -> ModelConfig:
    path = section.get("path", str, default=None)
    if path is not None:
        return _parse_model_file(section, resolve_path(base, path, "model.path"))
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
    weights_path = resolve_path(base, weights, "model.weights") if weights else None
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
            hint = nearest(str(head), sorted(known))
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
    path = resolve_path(base, value, field)
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
    data_path = resolve_path(base, data, "calibration.data")
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
        hint = nearest(mode, MODES)
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
        dir=resolve_path(base, output_dir, "output.dir")
        if output_dir
        else Path("outputs").resolve(),
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
            hint = nearest(board_name, list(boards))
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
            hint = nearest(value, known)
            raise UserError(
                f"{where}.{key}: {value!r} is not in Vela's Arm/vela.ini"
                + (f": did you mean {hint!r}?" if hint else f"; choose one of {', '.join(known)}")
            )
    return VelaTarget(accelerator, system, mode)


def _accelerator(value: str | None, where: str) -> str:
    if value not in ACCELERATORS:
        hint = nearest(str(value), ACCELERATORS) or "ethos-u55-128"
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


class _Section:
    """One mapping of the config: refuses unknown keys, checks each value's type."""

    def __init__(self, raw: Any, where: str, known: tuple[str, ...]):
        if not isinstance(raw, dict):
            raise UserError(f"{where or 'config'}: must be a mapping of keys to values")
        for key in raw:
            if key not in known:
                full = f"{where}.{key}" if where else str(key)
                hint = nearest(str(key), known)
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


def resolve_path(base: Path, value: str, field: str) -> Path:
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
