"""The config's document: the JSON Schema editors use and the reference in docs/ are generated
from it and must be current; its messages are one line naming the field."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO

from generator.config.document import (
    REFERENCE_FILE,
    SCHEMA_FILE,
    json_schema,
    reference,
    validate_document,
)
from generator.errors import UserError


def test_the_schema_and_the_reference_are_current():
    """Run `python -m generator.config.document` after changing the document."""
    schema = json_schema()
    assert json.loads(SCHEMA_FILE.read_text()) == schema
    assert REFERENCE_FILE.read_text() == reference(schema) + "\n"


def test_every_key_of_every_section_is_in_the_reference():
    schema = json_schema()
    text = REFERENCE_FILE.read_text()
    keys = set()

    def collect(value):
        if isinstance(value, dict):
            keys.update(value.get("properties", {}))
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(schema)
    assert {"alpha", "heads", "num_classes", "qat", "flip", "mb_per_s", "section"} <= keys
    for key in keys:
        assert f"| `{key}` |" in text, key


@pytest.mark.parametrize("name", ["default.yaml", "profile_96x96.yaml"])
def test_the_shipped_configs_follow_the_schema(name):
    raw = yaml.safe_load((REPO / "configs" / name).read_text())
    assert validate_document(raw).calibration is not None
    assert (
        (REPO / "configs" / name)
        .read_text()
        .startswith("# yaml-language-server: $schema=config.schema.json")
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"modle": {}}, "modle: unknown key: did you mean 'model'?"),
        (
            {"model": {"heads": [{"name": "a", "num_clases": 2}]}},
            "model.heads[0].num_clases: unknown key: did you mean 'num_classes'?",
        ),
        ({"boards": {"b": {"sram": {"kb": 1}}}}, "boards.b.sram.kb: unknown key: did you mean"),
        ({"vela": {"targets": ["u55"]}}, "vela.targets[0]: a target is a mapping like"),
        ({"train": {"data": "x", "epochs": 2.5}}, "train.epochs: expected a whole number, got 2.5"),
        ({"train": {"data": "x", "epochs": 2**40}}, "train.epochs: 1099511627776 is too large"),
        ({"model": {"alpha": 10**400}}, "model.alpha: a 401-digit number is too large"),
        ({"train": {}}, "train.data: give a labelled set"),
        ({"model": {"heads": [{}]}}, "model.heads[0].name: give each head a name"),
        ({"output": {"c_array": 3}}, "output.c_array: expected a mapping, got 3"),
        ({"train": {"data": "x", "qat": 3}}, "train.qat: expected a mapping: e.g. qat:"),
    ],
)
def test_a_structural_mistake_is_one_line_naming_the_field(raw, message):
    with pytest.raises(UserError) as caught:
        validate_document(raw)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)
