"""The config file's shape, as pydantic models: every section and key a user may write, its type,
its default and what it means. Three things come from these models and nothing else:

- the first pass of validation (`validate_document`): unknown keys with the nearest known one,
  every value's type (booleans are no numbers, numbers are finite, whole numbers fit in
  int32), sections that must be mappings, keys that must be given; each failure is one line
  naming the field's path, as every other config message;
- `config.schema.json`, the JSON Schema editors use for completion (`python -m
  generator.config.document` writes it; a test checks it is current);
- the config reference, docs/config.md, rendered from that schema by the same command.

What needs more than a type (a path that must exist, values that must agree with each other,
boards, Vela's system configs) is checked afterwards by `generator.config.parsing`, which turns
the validated document into the frozen dataclasses of `generator.config.schema`. A value of
`null` counts as not given (its default applies), as it always has in these configs.

Why pydantic rather than the hand-written checks it replaced: docs/design/config-validation.md.
"""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from generator.config.schema import (
    ACCELERATORS,
    BACKBONES,
    MAX_WHOLE_NUMBER,
    MODES,
    OUTPUT_STRIDES,
    STAGES,
)
from generator.errors import UserError
from generator.support.text import nearest


def _within_int32(value: int) -> int:
    if abs(value) > MAX_WHOLE_NUMBER:
        raise ValueError(f"{value} is too large: use at most {MAX_WHOLE_NUMBER:,}")
    return value


# A count TensorFlow takes: whole, and no larger than its int32.
WholeNumber = Annotated[int, AfterValidator(_within_int32)]


class _Document(BaseModel):
    """A mapping of the config: unknown keys refused, types strict, null taken as absent."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, frozen=True, use_attribute_docstrings=True
    )
    # What the section is, for a value that is not a mapping: "a head is a mapping like ...".
    mapping_hint: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class HeadDocument(_Document):
    """One classification head: a Dense layer of logits on the pooled features."""

    mapping_hint: ClassVar[str | None] = "a head is a mapping like {name: object, num_classes: 4}"

    name: str
    """The head's name ([A-Za-z_][A-Za-z0-9_]*): its output tensor, its C macros, its labels'
    column in a CSV."""
    num_classes: WholeNumber | None = None
    """The number of classes; with `labels`, their count (the two must agree)."""
    labels: Annotated[
        list[Any] | None, WithJsonSchema({"type": "array", "items": {"type": "string"}})
    ] = None
    """Class names in output order (quote yes/no/on/off: YAML reads them as booleans)."""


class ModelDocument(_Document):
    """The network: our MobileNet with its heads, or a trained Keras model."""

    path: str | None = None
    """A trained .keras model of any architecture; it brings its own input shape and heads, so
    backbone, alpha, input_shape, output_stride and weights do not go with it."""
    backbone: Annotated[str, WithJsonSchema({"enum": list(BACKBONES)})] = "mobilenet_v1"
    """The MobileNet the heads sit on: keras.applications' V1, V2, V3, or MobileNetV4's
    convolutional Conv-Small and Conv-Medium (built here)."""
    alpha: float = 0.25
    """Width multiplier, in (0, 4]."""
    input_shape: Annotated[
        list[Any],
        WithJsonSchema(
            {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 3,
                "maxItems": 3,
            }
        ),
    ] = [96, 96, 3]
    """[H, W, C]: H and W at least 32 (need not be equal), C 1 or 3."""
    output_stride: Annotated[
        Any, WithJsonSchema({"anyOf": [{"const": "auto"}, {"enum": list(OUTPUT_STRIDES)}]})
    ] = "auto"
    """The backbone's total downsampling; auto: the largest of the kept stages' stride (32 for
    a whole backbone), half that, ... that leaves the last feature map at least 3 pixels on its
    shorter side."""
    depth: Annotated[
        Any,
        WithJsonSchema(
            {"anyOf": [{"type": "integer", "minimum": 1, "maximum": STAGES}, {"type": "string"}]}
        ),
    ] = None
    """End the backbone early: after this many stride-2 stages (1 to 5; 5 is the whole
    backbone), or after a named block, such as conv_pw_11 (mobilenet_v1), block_12
    (mobilenet_v2 and both mobilenet_v4), or expanded_conv_7 (mobilenet_v3_small and _large).
    The pooling and heads follow the block kept last; every layer keeps its Keras name. Unset:
    the whole backbone."""
    heads: list[HeadDocument] | None = None
    """One or more heads, each a Dense layer of logits on the pooled features (required without
    path)."""
    weights: str | None = None
    """A Keras .weights.h5 saved from this exact architecture; without it the weights are
    random (seeded) unless train: trains them."""
    pretrained: str | None = None
    """Start the backbone from trained weights: imagenet (the ImageNet weights Keras publishes,
    fetched once into Keras's cache) or a file, a Keras .h5 or another build's .keras; the heads
    start random. With imagenet or a Keras .h5, calibration.input_range defaults to the
    published weights' scaling, [-1, 0.9921875]."""
    seed: WholeNumber = 0
    """Seeds the weights' initialisation, image selection and training."""


class AugmentDocument(_Document):
    """Light augmentation of the training images (never of validation or evaluation)."""

    flip: bool = True
    """Random horizontal flips."""
    shift: float = 0.1
    """Random shifts up to this fraction of the height and width, in [0, 1)."""
    brightness: float = 0.1
    """Random brightness changes up to this fraction of the input range, in [0, 1)."""


class QatDocument(_Document):
    """Quantization-aware fine-tuning of the trained float model."""

    mapping_hint: ClassVar[str | None] = (
        "expected a mapping: e.g. qat: {epochs: 3, learning_rate: 0.0001}"
    )

    epochs: WholeNumber = 3
    """Epochs of quantization-aware fine-tuning, at least 1."""
    learning_rate: float = 1e-4
    """Its learning rate, constant."""


class OptimizeDocument(_Document):
    """Weights made for the NPU: kernels pruned and clustered, then fine-tuned under that
    constraint, so that Vela's weight encoder stores fewer bytes (docs/optimize.md)."""

    mapping_hint: ClassVar[str | None] = "expected a mapping: e.g. optimize: {clusters: 16}"

    clusters: Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                ]
            }
        ),
    ] = 0
    """Values per kernel (per layer, k-means): a number for every Conv2D, DepthwiseConv2D and
    Dense layer, or a mapping of layer-name patterns to numbers, the first match deciding
    ({"*_logits": 0, "conv_pw_1*": 32, "*": 16}); 0: not clustered. After per-channel int8
    quantization each output channel holds at most this many values. A pattern that decides no
    layer is refused."""
    sparsity: float = 0.0
    """The fraction of each kernel's smallest weights set to 0, in [0, 1); with clusters, 0 is
    one of the values."""
    sparsity_layers: list[str] = ["*"]
    """Layer-name patterns that sparsity applies to (default: every kernel)."""
    epochs: WholeNumber = 10
    """Epochs of fine-tuning under the constraint (needs train:); 0: compress only."""
    learning_rate: float | None = None
    """The fine-tuning's peak learning rate (cosine decay); default: a tenth of train's."""
    distill: bool = True
    """Learn from the uncompressed model's logits (or train.teacher's) while fine-tuning."""


class TrainDocument(_Document):
    """Training on labelled images: masked cross-entropy per head, Adam, early stopping on
    the validation loss, the best epoch kept."""

    data: str
    """A labelled set: a folder <head>/<class>/ or a CSV path,<head1>,<head2>,..."""
    validation: Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    {"type": "string"},
                ]
            }
        ),
    ] = 0.2
    """A fraction of data held out (seeded), or a separate labelled set."""
    epochs: WholeNumber = 30
    """At most this many epochs (early stopping may end sooner)."""
    batch_size: WholeNumber = 32
    learning_rate: float = 0.003
    """The peak learning rate of Adam."""
    schedule: Annotated[str, WithJsonSchema({"enum": ["cosine", "constant"]})] = "cosine"
    """cosine decays the rate to 0 over all epochs; constant keeps it."""
    loss_weights: Annotated[
        dict[Any, Any],
        WithJsonSchema({"type": "object", "additionalProperties": {"type": "number"}}),
    ] = {}
    """Per head, e.g. {digit: 2.0}; 1.0 where not given."""
    warmup_epochs: WholeNumber = 0
    """Linear warm-up of the learning rate from 0, then the schedule."""
    freeze_backbone_epochs: WholeNumber = 0
    """Train the heads alone for this many epochs first, the backbone frozen (batch
    normalization in inference mode), then the whole network."""
    backbone_learning_rate: float = 1.0
    """The backbone's learning rate as a multiple of the heads' (e.g. 0.1 when fine-tuning
    pretrained weights)."""
    mixed_precision: bool = False
    """Compute in float16 with float32 weights, heads and logits (for GPUs: on a CPU it is
    slower)."""
    early_stopping: WholeNumber = 5
    """Patience in epochs on the validation loss; 0 turns it off."""
    augment: Annotated[
        Any,
        WithJsonSchema({"anyOf": [{"type": "boolean"}, AugmentDocument.model_json_schema()]}),
    ] = True
    """Augmentation of the training images: true (the defaults), false, or a mapping that tunes
    it (train.augment below)."""
    seed: WholeNumber | None = None
    """Shuffling and augmentation; default: model.seed."""
    teacher: str | None = None
    """A float .keras model with the same input and heads (a bigger one, trained before) whose
    logits the training learns from too: each head's loss mixes the labels' cross-entropy with
    the teacher's softened logits (distillation_weight), and images without a label learn from
    the teacher alone."""
    distillation_weight: float = 0.5
    """The teacher term's share of each head's loss, in [0, 1] (1: the teacher alone)."""
    temperature: float = 2.0
    """Divides both models' logits in the teacher term (> 0; higher: softer targets)."""
    qat: QatDocument | None = None
    """Quantization-aware fine-tuning after the float training; absent: post-training
    quantization only."""


class CalibrationDocument(_Document):
    """Real images the quantization is calibrated on, and held-out ones it is verified on."""

    data: str
    """The folder of calibration images (PNG, JPEG, ...), searched recursively."""
    samples: WholeNumber = 200
    """Images the converter calibrates on."""
    holdout: WholeNumber = 50
    """Other images, kept for verifying the quantized model only."""
    input_range: Annotated[
        list[Any],
        WithJsonSchema(
            {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
        ),
    ] = [0.0, 1.0]
    """The float range pixels 0..255 map onto: [0, 1], or [-1, 0.9921875] (pixel / 128 - 1);
    its zero point must be a whole pixel value. Default: [0, 1], or [-1, 0.9921875] with
    model.pretrained imagenet or a Keras .h5."""


# Layer names or operator types.
_NAMES = {"type": "array", "items": {"type": "string"}}


class QuantizationDocument(_Document):
    """How the float model becomes a .tflite."""

    mode: Annotated[str, WithJsonSchema({"enum": list(MODES)})] = "full_integer"
    """full_integer (int8 inside) or int16x8 (16-bit activations) run on an Ethos-U;
    dynamic_range, float16 and float32 are host formats for compare only."""
    io_dtype: Annotated[str, WithJsonSchema({"enum": ["uint8", "int8"]})] = "uint8"
    """The type of the input and of every output (integer modes)."""
    per_channel: bool = True
    """Per-channel weight scales (per-tensor when false)."""
    keep_float: Annotated[
        list[Any], WithJsonSchema({"type": "array", "items": {"type": "string"}})
    ] = []
    """Keras layers (or TFLite operator types such as MEAN) a full_integer model keeps in
    float32; they run on the CPU, not the NPU."""
    int16: Annotated[list[Any], WithJsonSchema(_NAMES)] = []
    """Keras layers given 16-bit activations in a full_integer model (the int16 extra); name a
    run of consecutive layers."""


class TargetDocument(_Document):
    """One Ethos-U target: a board, or an accelerator with a Vela system config and memory
    mode."""

    mapping_hint: ClassVar[str | None] = (
        "a target is a mapping like {accelerator: ethos-u55-128} or {board: alif_e7_he}"
    )

    board: str | None = None
    """A preset board (corstone_300, corstone_310, corstone_320, alif_e7_he, alif_e7_hp, ...)
    or one defined under boards:; it brings its own accelerator, system config and memory
    mode."""
    accelerator: Annotated[str | None, WithJsonSchema({"enum": list(ACCELERATORS)})] = None
    """An Ethos-U configuration Vela knows."""
    system_config: str | None = None
    """A system config of Vela's Arm/vela.ini; default: Vela's own for the accelerator."""
    memory_mode: str | None = None
    """A memory mode of Vela's Arm/vela.ini; default: Vela's own for the accelerator."""


class VelaDocument(_Document):
    """Compiling with Arm's Vela."""

    targets: list[TargetDocument] = [TargetDocument(accelerator="ethos-u55-128")]
    """Each accelerator or board to compile for, once each; outputs go to vela/<board or
    accelerator>/."""
    optimise: Annotated[str, WithJsonSchema({"enum": ["Performance", "Size"]})] = "Performance"
    """Vela's --optimise."""
    allow_cpu_fallback: bool = False
    """Accept operators Vela leaves to the CPU; otherwise any fails the build, named."""


class MemoryDocument(_Document):
    """One memory of a custom board."""

    kib: float | None = None
    """Size in KiB, at least 1."""
    mb_per_s: float | None = None
    """Bandwidth in MB/s, at most what the NPU's AXI port moves at clock_mhz."""


class BoardDocument(_Document):
    """A custom board: an accelerator, its clock, and its SRAM and flash (generator writes its
    Vela .ini)."""

    accelerator: Annotated[str | None, WithJsonSchema({"enum": list(ACCELERATORS)})] = None
    clock_mhz: float | None = None
    """The NPU's clock in MHz."""
    sram: MemoryDocument | None = None
    """The SRAM the tensor arena may use."""
    flash: MemoryDocument | None = None
    """The flash (or MRAM, or DDR) that holds the model."""


class EvaluationDocument(_Document):
    """Accuracy of the float and the quantized model on labelled images."""

    data: str
    """A labelled set (as train.data) to measure float and quantized accuracy on."""


class CArrayDocument(_Document):
    """The C arrays of the model."""

    section: str | None = None
    """The linker section of the model arrays, e.g. .nn_model; default: the compiler's."""


class OutputDocument(_Document):
    """Where and how results are written."""

    dir: str | None = None
    """Where <name>/ is written; default: ./outputs in the current directory."""
    require_fit: bool = False
    """Fail the build when no placement of the model fits a board target."""
    c_array: CArrayDocument = CArrayDocument()
    """The C arrays (below)."""


class ConfigDocument(_Document):
    """A generator config: one multi-head classifier, how to train, quantize and compile it,
    and for which Ethos-U targets."""

    # calibration is required; parsing says so after the model's own checks, as it always did.
    model_config = ConfigDict(json_schema_extra={"required": ["calibration"]})

    name: str = "default"
    """Names the output folder and files: letters, digits, '_' and '-', at most 100 of them."""
    model: ModelDocument = ModelDocument()
    """The network (below)."""
    train: TrainDocument | None = None
    """Train the heads and backbone on labelled images; without it the weights stay as built
    or loaded."""
    calibration: CalibrationDocument | None = None
    """Real images to calibrate the quantization on (required)."""
    quantization: QuantizationDocument = QuantizationDocument()
    """How the model is quantized (below)."""
    vela: VelaDocument = VelaDocument()
    """What Vela compiles for (below)."""
    boards: dict[str, BoardDocument] = {}
    """Custom boards by name, usable as vela.targets[].board."""
    optimize: OptimizeDocument | None = None
    """Prune and cluster the trained weights for the NPU, and fine-tune them (below)."""
    evaluation: EvaluationDocument | None = None
    """Measure accuracy on a labelled set."""
    output: OutputDocument = OutputDocument()
    """Where results go (below)."""


# What a missing required key means, by its path (list positions as *).
_MISSING = {
    "calibration": "give the folder of calibration images",
    "calibration.data": "give the folder of calibration images",
    "train.data": "give a labelled set: a folder <head>/<class>/ or a .csv file",
    "evaluation.data": "give a labelled set: a folder <head>/<class>/ or a .csv file",
    "model.heads[*].name": "give each head a name of letters, digits and '_' (not starting "
    "with a digit), got None",
}

_KINDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "finite_number": "a finite number",
}


def validate_document(
    raw: dict, document: type[_Document] = ConfigDocument, where: str = ""
) -> Any:
    """`raw` checked against `document` (the whole config, or the section at `where`), or a
    `UserError` for its first problem, in one line: `model.alpha: expected a number, got 'x'`."""
    try:
        return document.model_validate(raw)
    except ValidationError as errors:
        raise UserError(_message(errors.errors()[0], document, where)) from None


def _message(error: dict, document: type[_Document], where: str) -> str:
    """One pydantic error as `<field path>: <problem>[: <fix>]`."""
    where, parent, value_type = _location(error["loc"], document, where)
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        known = list(parent.model_fields) if parent else []
        hint = nearest(where.rsplit(".", 1)[-1], known)
        fix = f"did you mean {hint!r}?" if hint else f"known keys: {', '.join(known)}"
        return f"{where}: unknown key: {fix}"
    if kind == "missing":
        pattern = re.sub(r"\[\d+\]", "[*]", where)
        return f"{where}: {_MISSING.get(pattern, 'required')}"
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    if kind == "model_type" and _is_document(value_type) and value_type.mapping_hint:
        return f"{where}: {value_type.mapping_hint}"
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return f"{where}: a {len(str(abs(value)))}-digit number is too large"
    if kind in _KINDS:
        return f"{where}: expected {_KINDS[kind]}, got {value!r}"
    return f"{where}: {error['msg']}"


def _location(
    loc: tuple, document: type[_Document], path: str
) -> tuple[str, type[_Document] | None, Any]:
    """An error's location as the config spells it (`model.heads[0].name`), the document
    whose key it names last (for the known keys beside an unknown one) and the type the value
    there should have. `document` is what was validated, found at `path`."""
    parent: type[_Document] | None = None
    expected: Any = document
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
            expected = _element(expected)
            continue
        path += f".{item}" if path else str(item)
        if _is_document(expected):
            parent = expected
            field = expected.model_fields.get(item)
            expected = _unwrap(field.annotation) if field else None
        else:  # a key of a mapping (boards:)
            expected = _element(expected)
    return path or "config", parent, expected


def _is_document(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, _Document)


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` as X."""
    while True:
        if hasattr(annotation, "__metadata__"):  # Annotated[X, ...]
            annotation = annotation.__origin__
            continue
        arguments = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
        if isinstance(annotation, types.UnionType) and len(arguments) == 1:
            annotation = arguments[0]
            continue
        return annotation


def _element(annotation: Any) -> Any:
    """The element type of a list, or the value type of a dict."""
    arguments = getattr(annotation, "__args__", ())
    return _unwrap(arguments[-1]) if arguments else None


def json_schema() -> dict:
    """`ConfigDocument` as a JSON Schema (draft 2020-12), for editors: name it in a config's
    first line, `# yaml-language-server: $schema=config.schema.json`."""
    schema = ConfigDocument.model_json_schema()
    schema["title"] = "generator config"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_one_line(schema)}


def _one_line(value: Any) -> Any:
    """Descriptions (the fields' docstrings) on one line each."""
    if isinstance(value, dict):
        return {
            key: " ".join(item.split()) if key == "description" else _one_line(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_one_line(item) for item in value]
    return value


def reference(schema: dict) -> str:
    """The config reference, docs/config.md: a table of keys per section, from the schema."""
    definitions = schema["$defs"]
    lines = [
        "# Config reference",
        "",
        "<!-- Generated from generator/config/document.py by `python -m "
        "generator.config.document`; a test checks it is current. Do not edit by hand. -->",
        "",
        "Every key is optional unless marked required; `null` counts as not given. Unknown keys "
        "are refused with the nearest known one. Relative paths resolve against the config "
        "file. Editors that read JSON Schema complete and check keys from "
        "[`configs/config.schema.json`](../configs/config.schema.json).",
        "",
    ]
    sections = [("config", schema)]
    seen = set()
    while sections:
        where, section = sections.pop(0)
        required = set(section.get("required", ()))
        lines += [f"## `{where}`", "", " ".join(section.get("description", "").split()), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, field in section["properties"].items():
            nested = _nested(field, definitions)
            if nested is not None and nested["title"] not in seen:
                seen.add(nested["title"])
                path = key if where == "config" else f"{where}.{key}"
                suffix = "[]" if _is_array(field) else ".*" if _is_mapping(field) else ""
                sections.append((path + suffix, nested))
            default = "required" if key in required else _default(field)
            meaning = field.get("description", "").replace("<", "&lt;").replace(">", "&gt;")
            lines.append(f"| `{key}` | {_type(field)} | {default} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def _nested(field: dict, definitions: dict) -> dict | None:
    """The section a field holds (directly, in a list, in a mapping, or as one of its
    options), as its schema."""
    for candidate in (field, field.get("items", {}), field.get("additionalProperties", {})):
        if not isinstance(candidate, dict):
            continue
        for option in (candidate, *candidate.get("anyOf", ())):
            for inner in (option, option.get("items", {})):
                if "$ref" in inner:
                    return definitions[inner["$ref"].rsplit("/", 1)[-1]]
                if "properties" in inner:
                    return inner
    return None


def _is_array(field: dict) -> bool:
    return field.get("type") == "array" or any(
        option.get("type") == "array" for option in field.get("anyOf", ())
    )


def _is_mapping(field: dict) -> bool:
    return isinstance(field.get("additionalProperties"), dict)


def _type(field: dict) -> str:
    if "enum" in field:
        return " \\| ".join(f"`{value}`" for value in field["enum"])
    if "const" in field:
        return f"`{field['const']}`"
    if "anyOf" in field:
        options = [_type(option) for option in field["anyOf"] if option.get("type") != "null"]
        return " or ".join(options)
    if "$ref" in field or "properties" in field:
        return "mapping (below)"
    kind = field.get("type")
    if kind == "array":
        return f"list of {_type(field.get('items', {}))}" if field.get("items") else "list"
    if kind == "object":
        values = field.get("additionalProperties")
        return f"mapping to {_type(values)}" if isinstance(values, dict) else "mapping"
    names = {"string": "string", "integer": "whole number", "number": "number"}
    return {"boolean": "true or false", **names}.get(kind, "any")


def _default(field: dict) -> str:
    if "default" not in field or field["default"] is None or isinstance(field["default"], dict):
        return ""
    return f"`{json.dumps(field['default'])}`"


SCHEMA_FILE = Path(__file__).resolve().parents[2] / "configs" / "config.schema.json"
REFERENCE_FILE = Path(__file__).resolve().parents[2] / "docs" / "config.md"


if __name__ == "__main__":  # python -m generator.config.document: write the schema and the docs
    schema = json_schema()
    SCHEMA_FILE.write_text(json.dumps(schema, indent=2) + "\n")
    REFERENCE_FILE.write_text(reference(schema) + "\n")
    sys.stdout.write(f"wrote {SCHEMA_FILE}\nwrote {REFERENCE_FILE}\n")
