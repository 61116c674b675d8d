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
from generator.config.document import (
    AugmentDocument,
    BoardDocument,
    CalibrationDocument,
    HeadDocument,
    MemoryDocument,
    ModelDocument,
    OptimizeDocument,
    OutputDocument,
    QatDocument,
    QuantizationDocument,
    TargetDocument,
    TrainDocument,
    VelaDocument,
    validate_document,
)
from generator.config.schema import (
    ACCELERATORS,
    BACKBONE_BLOCKS,
    BACKBONES,
    DEFAULT_SYSTEM,
    HEAD_NAME_PATTERN,
    IMAGENET,
    IMAGENET_INPUT_RANGE,
    IMAGENET_WEIGHTS,
    MAX_NAME_LENGTH,
    MIN_ALPHA_V1,
    MIN_SIDE,
    MODES,
    NAME_PATTERN,
    OUTPUT_STRIDES,
    STAGES,
    AugmentConfig,
    CalibrationConfig,
    Config,
    EvaluationConfig,
    Head,
    ModelConfig,
    OptimizeConfig,
    OutputConfig,
    QatConfig,
    QuantizationConfig,
    TrainConfig,
    VelaConfig,
    VelaTarget,
    imagenet_scaled,
)
from generator.config.vela_ini import vela_ini_sections
from generator.errors import UserError
from generator.support.text import nearest


def parse_config(raw: dict, base: Path, source: Path) -> Config:
    """Validate a config mapping; relative paths resolve against `base`."""
    document = validate_document(raw)
    name = document.name
    if not NAME_PATTERN.match(name) or len(name) > MAX_NAME_LENGTH:
        raise UserError(
            f"name: {name[:MAX_NAME_LENGTH]!r} may only use letters, digits, '_' and '-', "
            f"at most {MAX_NAME_LENGTH} of them"
        )
    output = _parse_output(document.output, base)
    model = _parse_model(document.model, base)
    train = None if document.train is None else _parse_train(document.train, model, base)
    evaluation = document.evaluation
    quantization = _parse_quantization(document.quantization)
    if quantization.int16 and train is not None and train.qat is not None:
        raise UserError(
            "quantization.int16: quantization-aware training learns 8-bit ranges, which 16-bit "
            "layers would not use: remove train.qat or quantization.int16"
        )
    optimize = None
    if document.optimize is not None:
        optimize = _parse_optimize(document.optimize, train)
    return Config(
        name=name,
        optimize=optimize,
        model=model,
        calibration=_parse_calibration(
            document.calibration, base, scaled_to_imagenet=imagenet_scaled(model)
        ),
        quantization=quantization,
        vela=_parse_vela(document.vela, document.boards),
        output=output,
        source=source,
        train=train,
        evaluation=None
        if evaluation is None
        else EvaluationConfig(_labelled_path(evaluation.data, base, "evaluation.data")),
    )


_ARCHITECTURE_KEYS = (
    "backbone",
    "alpha",
    "input_shape",
    "output_stride",
    "depth",
    "weights",
    "pretrained",
)


def _parse_model(section: ModelDocument, base: Path) -> ModelConfig:
    if section.path is not None:
        return _parse_model_file(section, resolve_path(base, section.path, "model.path"))
    backbone = section.backbone
    if backbone not in BACKBONES:
        raise UserError(f"model.backbone: {backbone!r} is not one of {', '.join(BACKBONES)}")
    alpha = section.alpha
    if not 0 < alpha <= 4:
        raise UserError(f"model.alpha: {alpha} is out of range: use a width multiplier in (0, 4]")
    if backbone == "mobilenet_v1" and alpha < MIN_ALPHA_V1:
        raise UserError(
            f"model.alpha: {alpha} gives mobilenet_v1 convolutions with no filters "
            f"(32 × alpha < 1): use alpha >= {MIN_ALPHA_V1}, e.g. 0.25"
        )
    shape = section.input_shape
    if (
        len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        or shape[2] not in (1, 3)
        or min(shape[:2]) < MIN_SIDE
    ):
        raise UserError(
            f"model.input_shape: {shape} must be [H, W, C] with H, W >= {MIN_SIDE} and C 1 or 3"
        )
    stride = section.output_stride
    if stride != "auto" and (type(stride) is not int or stride not in OUTPUT_STRIDES):
        raise UserError(
            f"model.output_stride: {stride!r} is not auto or one of "
            f"{', '.join(map(str, OUTPUT_STRIDES))}: use auto (the default) or e.g. 32"
        )
    last_block = _parse_depth(section.depth, backbone)
    if last_block is not None and stride != "auto":
        kept = BACKBONE_BLOCKS[backbone].stride(last_block)
        if stride > kept:
            raise UserError(
                f"model.output_stride: {stride} is more than the {kept} that model.depth "
                f"{section.depth!r} leaves: use auto or at most {kept}"
            )
    heads = section.heads
    if not heads:
        raise UserError(
            "model.heads: give one or more heads, e.g. [{name: object, num_classes: 4}]"
        )
    parsed_heads = tuple(_parse_head(h, f"model.heads[{i}]") for i, h in enumerate(heads))
    _check_unique(parsed_heads)
    weights = section.weights
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
    pretrained = section.pretrained
    if pretrained is not None:
        if weights_path is not None:
            raise UserError(
                "model.pretrained: model.weights already gives every weight: remove one of them"
            )
        pretrained = _parse_pretrained(pretrained, backbone, alpha, base)
    return ModelConfig(
        backbone=backbone,
        alpha=alpha,
        input_shape=tuple(shape),
        heads=parsed_heads,
        weights=weights_path,
        seed=_seed(section.seed, "model"),
        output_stride=None if stride == "auto" else stride,
        pretrained=pretrained,
        last_block=last_block,
    )


def _parse_depth(value: Any, backbone: str) -> int | None:
    """`model.depth` as the last block kept (None: the whole backbone)."""
    blocks = BACKBONE_BLOCKS[backbone]
    if value is None or value == STAGES:
        return None
    if type(value) is int and 1 <= value < STAGES:
        return blocks.last_block_of_stage(value)
    if isinstance(value, str):
        for block, name in blocks.names.items():
            if value == name:
                return block
    names = list(blocks.names.values())
    suggestion = None
    if isinstance(value, str):
        numbered = re.fullmatch(r"(.*_)(\d+)", value)
        same_kind = [
            (abs(block - int(numbered[2])), name)
            for block, name in blocks.names.items()
            if numbered and name.startswith(numbered[1]) and name[len(numbered[1]) :].isdigit()
        ]
        suggestion = min(same_kind)[1] if same_kind else nearest(value, names)
    raise UserError(
        f"model.depth: {value!r} is no stage count or {backbone} block: use 1 to {STAGES} "
        f"stages, or a block from {names[0]} to {names[-1]}"
        + (f" (did you mean {suggestion}?)" if suggestion else "")
    )


def _parse_pretrained(value: str, backbone: str, alpha: float, base: Path) -> str | Path:
    """`imagenet` where Keras publishes weights for the backbone and alpha, or a .h5 / .keras
    file that exists (whether it fits the architecture is checked when it is read)."""
    if value == IMAGENET:
        if backbone not in IMAGENET_WEIGHTS:
            raise UserError(
                f"model.pretrained: Keras publishes no ImageNet weights for {backbone}: train "
                "it from scratch, or start it from another build's .keras"
            )
        alphas, _ = IMAGENET_WEIGHTS[backbone]
        if alpha not in alphas:
            closest = min(alphas, key=lambda published: (abs(published - alpha), -published))
            raise UserError(
                f"model.pretrained: Keras publishes no ImageNet weights for {backbone} alpha "
                f"{alpha}: use alpha {closest:g} (published: {', '.join(f'{a:g}' for a in alphas)})"
                ", or train from scratch"
            )
        return value
    path = resolve_path(base, value, "model.pretrained")
    if not path.is_file():
        raise UserError(
            f"model.pretrained: {path} not found: give imagenet, a Keras .h5 or a .keras file"
        )
    if path.name.endswith(".weights.h5") or path.suffix not in (".h5", ".keras"):
        raise UserError(
            f"model.pretrained: {path.name} is not a Keras .h5 or .keras file (a .weights.h5 "
            "holds no layer names): give a .keras model, or the whole weights as model.weights"
        )
    return path


def _seed(seed: int, where: str) -> int:
    """A seed NumPy and Keras both take: a whole number in 0 .. 2**31 - 1."""
    if seed < 0:
        raise UserError(f"{where}.seed: {seed} is negative: use a whole number >= 0")
    return seed


def _parse_model_file(section: ModelDocument, path: Path) -> ModelConfig:
    """`model.path`: the file brings its architecture, input shape and outputs."""
    if not path.is_file():
        raise UserError(f"model.path: {path} not found: give a model saved with model.save")
    if path.suffix != ".keras":
        raise UserError(
            f"model.path: {path.name} is not a .keras file: save your model with "
            "model.save('name.keras')"
        )
    extra = [key for key in _ARCHITECTURE_KEYS if key in section.model_fields_set]
    if extra:
        raise UserError(
            f"model.{extra[0]}: a model file brings its own architecture and weights: "
            f"remove model.{extra[0]} or model.path"
        )
    heads = section.heads or []
    parsed = tuple(
        _parse_head(h, f"model.heads[{i}]", needs_classes=False) for i, h in enumerate(heads)
    )
    _check_unique(parsed)
    return ModelConfig(
        backbone=None,
        alpha=None,
        input_shape=None,
        heads=parsed,
        weights=None,
        seed=_seed(section.seed, "model"),
        path=path,
    )


def _check_unique(heads: tuple[Head, ...]) -> None:
    names = [h.name for h in heads]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(
            f"model.heads: head names must be unique; repeated: {', '.join(duplicates)}"
        )


def _parse_head(section: HeadDocument, where: str, needs_classes: bool = True) -> Head:
    name = section.name
    if not HEAD_NAME_PATTERN.match(name):
        raise UserError(
            f"{where}.name: give each head a name of letters, digits and '_' "
            f"(not starting with a digit), got {name!r}"
        )
    labels = section.labels
    num_classes = section.num_classes
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


def _parse_train(section: TrainDocument, model: ModelConfig, base: Path) -> TrainConfig:
    data = _labelled_path(section.data, base, "train.data")
    validation = section.validation
    if isinstance(validation, str):
        validation = _labelled_path(validation, base, "train.validation")
    else:
        if not isinstance(validation, int | float) or isinstance(validation, bool):
            raise UserError(
                f"train.validation: expected a fraction or a labelled set, got {validation!r}"
            )
        if not 0 < validation < 1:
            raise UserError(
                f"train.validation: {validation} must be a fraction in (0, 1) or a labelled set"
            )
    epochs, batch_size = section.epochs, section.batch_size
    learning_rate = section.learning_rate
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise UserError("train: epochs and batch_size must be >= 1, learning_rate > 0")
    warmup_epochs = section.warmup_epochs
    if not 0 <= warmup_epochs < epochs:
        raise UserError(
            f"train.warmup_epochs: {warmup_epochs} must be >= 0 and below train.epochs ({epochs})"
        )
    freeze = section.freeze_backbone_epochs
    if not 0 <= freeze <= epochs:
        raise UserError(
            f"train.freeze_backbone_epochs: {freeze} must be >= 0 and at most train.epochs "
            f"({epochs})"
        )
    backbone_rate = section.backbone_learning_rate
    if not 0 < backbone_rate <= 1e3:
        raise UserError(
            f"train.backbone_learning_rate: {backbone_rate} must be a multiplier of the heads' "
            "rate in (0, 1000], e.g. 0.1"
        )
    if section.mixed_precision and model.path is not None:
        raise UserError(
            "train.mixed_precision: a model file trains in the dtypes it was saved with: "
            "remove train.mixed_precision, or save the model under a mixed_float16 policy"
        )
    schedule = section.schedule
    if schedule not in ("cosine", "constant"):
        raise UserError(f"train.schedule: {schedule!r} must be cosine or constant")
    loss_weights = section.loss_weights
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
    early_stopping = section.early_stopping
    augment = _parse_augment(section.augment)
    seed = model.seed if section.seed is None else _seed(section.seed, "train")
    return TrainConfig(
        data=data,
        validation=validation,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        schedule=schedule,
        loss_weights={str(k): float(v) for k, v in loss_weights.items()},
        early_stopping=max(0, early_stopping),
        augment=augment,
        seed=seed,
        qat=_parse_qat(section.qat),
        warmup_epochs=warmup_epochs,
        freeze_backbone_epochs=freeze,
        backbone_learning_rate=float(backbone_rate),
        mixed_precision=section.mixed_precision,
        teacher=_parse_teacher(section.teacher, base),
        distillation_weight=_fraction(
            section.distillation_weight, "train.distillation_weight", closed=True
        ),
        temperature=_temperature(section.temperature),
    )


def _parse_teacher(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    path = resolve_path(base, value, "train.teacher")
    if not path.is_file():
        raise UserError(
            f"train.teacher: {path} not found: give a float .keras model, such as another "
            "build's <name>.keras"
        )
    if path.suffix != ".keras":
        raise UserError(
            f"train.teacher: {path} is not a .keras file: give a float model saved with "
            "model.save('teacher.keras'), such as another build's <name>.keras"
        )
    return path


def _fraction(value: float, field: str, *, closed: bool) -> float:
    """A fraction in [0, 1] (`closed`) or [0, 1)."""
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise UserError(f"{field}: {value} must be in [0, 1{']' if closed else ')'}, e.g. 0.5")
    return float(value)


MAX_TEMPERATURE = 100.0


def _temperature(value: float) -> float:
    if not 0 < value <= MAX_TEMPERATURE:
        raise UserError(f"train.temperature: {value} must be in (0, {MAX_TEMPERATURE:g}], e.g. 2")
    return float(value)


# Clusters beyond 256 cannot be told apart: an int8 kernel has 255 values per channel.
MAX_CLUSTERS = 256


def _parse_optimize(section: OptimizeDocument, train: TrainConfig | None) -> OptimizeConfig | None:
    raw = section.clusters
    if isinstance(raw, dict):
        clusters = tuple((str(pattern), k) for pattern, k in raw.items())
        where = {pattern: f"optimize.clusters.{pattern}" for pattern, _ in clusters}
    else:
        clusters = (("*", raw),)
        where = {"*": "optimize.clusters"}
    for pattern, k in clusters:
        if type(k) is not int or not (k == 0 or 2 <= k <= MAX_CLUSTERS):
            raise UserError(
                f"{where[pattern]}: {k!r} must be 0 (off) or a whole number of values from 2 "
                f"to {MAX_CLUSTERS}, e.g. 16"
            )
    sparsity = _fraction(section.sparsity, "optimize.sparsity", closed=False)
    if not any(k for _, k in clusters) and not sparsity:
        return None  # clusters 0 and sparsity 0: off (a sweep's uncompressed row)
    if section.epochs and train is None:
        raise UserError(
            "optimize.epochs: fine-tuning needs labelled images: add a train: section, or set "
            "optimize.epochs: 0 to compress without fine-tuning"
        )
    rate = section.learning_rate
    if rate is None:
        rate = train.learning_rate / 10 if train is not None else 0.0
    elif not 0 < rate < math.inf:
        raise UserError(f"optimize.learning_rate: {rate} must be > 0, e.g. 0.001")
    return OptimizeConfig(
        clusters=clusters,
        sparsity=sparsity,
        sparsity_layers=tuple(section.sparsity_layers),
        epochs=section.epochs,
        learning_rate=float(rate),
        distill=section.distill,
    )


def _parse_qat(section: QatDocument | None) -> QatConfig | None:
    """`train.qat: {epochs, learning_rate}`; absent or null: post-training quantization only."""
    if section is None:
        return None
    epochs, learning_rate = section.epochs, section.learning_rate
    if epochs < 1 or learning_rate <= 0:
        raise UserError("train.qat: epochs must be >= 1 and learning_rate > 0")
    return QatConfig(epochs, learning_rate)


def _parse_augment(raw: Any) -> AugmentConfig | None:
    """`augment: false` turns augmentation off, `true` (the default) takes the defaults, and a
    mapping tunes them."""
    if raw is False:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(
            f"train.augment: expected true, false or a mapping such as {{flip: true}}, got {raw!r}"
        )
    section = validate_document(raw, AugmentDocument, "train.augment")
    shift, brightness = section.shift, section.brightness
    if not (0 <= shift < 1 and 0 <= brightness < 1):
        raise UserError("train.augment: shift and brightness are fractions in [0, 1)")
    return AugmentConfig(section.flip, shift, brightness)


def _labelled_path(value: str, base: Path, field: str) -> Path:
    path = resolve_path(base, value, field)
    if not path.exists():
        raise UserError(f"{field}: {path} not found: give a folder <head>/<class>/ or a .csv file")
    if not path.is_dir() and not (path.is_file() and path.suffix.lower() == ".csv"):
        raise UserError(
            f"{field}: {path} is neither a folder nor a .csv file: give a folder "
            "<head>/<class>/ or a CSV path,<head>,..."
        )
    return path


def _parse_calibration(
    section: CalibrationDocument | None, base: Path, *, scaled_to_imagenet: bool
) -> CalibrationConfig:
    """`input_range`, when the config does not give it, follows ImageNet weights' scaling."""
    if section is None:
        raise UserError("calibration.data: give the folder of calibration images")
    data_path = resolve_path(base, section.data, "calibration.data")
    if data_path.is_file():
        raise UserError(
            f"calibration.data: {data_path} is a file: give the folder that holds the images"
        )
    if not data_path.is_dir():
        raise UserError(f"calibration.data: folder {data_path} not found: point it at your images")
    samples, holdout = section.samples, section.holdout
    if samples < 1 or holdout < 1:
        raise UserError("calibration.samples and calibration.holdout must be at least 1")
    follows = scaled_to_imagenet and "input_range" not in section.model_fields_set
    input_range = list(IMAGENET_INPUT_RANGE) if follows else section.input_range
    return CalibrationConfig(
        data=data_path,
        samples=samples,
        holdout=holdout,
        input_range=_parse_input_range(input_range),
        input_range_from_pretrained=follows,
    )


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


def _parse_quantization(section: QuantizationDocument) -> QuantizationConfig:
    io_dtype = section.io_dtype
    if io_dtype not in ("uint8", "int8"):
        raise UserError(f"quantization.io_dtype: {io_dtype!r} must be uint8 or int8")
    mode = section.mode
    if mode not in MODES:
        hint = nearest(mode, MODES)
        raise UserError(
            f"quantization.mode: {mode!r} is not a mode: "
            + (f"did you mean {hint!r}?" if hint else f"use one of {', '.join(MODES)}")
        )
    keep_float = _layer_names(section.keep_float, "keep_float")
    int16 = _layer_names(section.int16, "int16")
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
        io_dtype=io_dtype,
        per_channel=section.per_channel,
        mode=mode,
        keep_float=keep_float,
        int16=int16,
    )


def _layer_names(names: list, key: str) -> tuple[str, ...]:
    """A list of Keras layer names or TFLite operator types, each once (checked against the
    converted model, `convert._denied`)."""
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise UserError(
                f"quantization.{key}[{index}]: expected a Keras layer name or a TFLite operator "
                f"type such as MEAN, got {name!r}"
            )
    return tuple(dict.fromkeys(names))


_SECTION_PATTERN = re.compile(r"^[A-Za-z0-9_.$]+$")


def _parse_output(section: OutputDocument, base: Path) -> OutputConfig:
    output_dir = section.dir
    linker_section = section.c_array.section
    if linker_section is not None and not _SECTION_PATTERN.match(linker_section):
        raise UserError(
            f"output.c_array.section: {linker_section!r} is not a linker section name: "
            "use letters, digits, '_', '.' and '$', e.g. .nn_model"
        )
    return OutputConfig(
        dir=resolve_path(base, output_dir, "output.dir")
        if output_dir
        else Path("outputs").resolve(),
        require_fit=section.require_fit,
        c_array_section=linker_section,
    )


def _parse_vela(section: VelaDocument, boards_raw: dict[Any, BoardDocument]) -> VelaConfig:
    targets_raw = section.targets
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
    optimise = section.optimise
    if optimise not in ("Performance", "Size"):
        raise UserError(f"vela.optimise: {optimise!r} must be Performance or Size")
    return VelaConfig(targets, optimise, section.allow_cpu_fallback)


def _parse_target(
    section: TargetDocument,
    where: str,
    systems: list[str],
    modes: list[str],
    boards: dict[str, Board],
) -> VelaTarget:
    board_name = section.board
    if board_name is not None:
        extra = sorted(section.model_fields_set - {"board"})
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
    accelerator = _accelerator(section.accelerator, f"{where}.accelerator")
    default_system, default_mode = DEFAULT_SYSTEM[accelerator.rsplit("-", 1)[0]]
    system = section.system_config or default_system
    mode = section.memory_mode or default_mode
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


def _parse_custom_boards(raw: dict[Any, BoardDocument]) -> dict[str, Board]:
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
        accelerator = _accelerator(spec.accelerator, f"{where}.accelerator")
        clock = spec.clock_mhz
        if clock is None or clock <= 0:
            raise UserError(f"{where}.clock_mhz: give the NPU clock in MHz, e.g. 200")
        peak = AXI_BYTES_PER_CYCLE[accelerator.rsplit("-", 1)[0]] * clock
        memories = [
            _memory(getattr(spec, memory), f"{where}.{memory}", peak, clock)
            for memory in ("sram", "flash")
        ]
        (sram_kib, sram_rate), (flash_kib, flash_rate) = memories
        boards[name] = custom_board(
            name=name,
            accelerator=accelerator,
            clock_mhz=clock,
            sram_kib=sram_kib,
            sram_mb_per_s=sram_rate,
            flash_kib=flash_kib,
            flash_mb_per_s=flash_rate,
        )
    return boards


def _memory(
    section: MemoryDocument | None, where: str, peak: float, clock: float
) -> tuple[float, float]:
    if section is None:
        raise UserError(f"{where}: give its size and bandwidth, e.g. {{kib: 512, mb_per_s: 800}}")
    kib, rate = section.kib, section.mb_per_s
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
