import subprocess
import sys

import pytest
from conftest import PHOTOS, small_config, write_config

from generator.config import ACCELERATORS, apply_override, load_config
from generator.errors import UserError


def test_defaults_fill_omitted_keys(tmp_path):
    path = write_config(
        tmp_path,
        {
            "model": {"heads": [{"name": "a", "num_classes": 3}]},
            "calibration": {"data": str(PHOTOS)},
        },
    )
    config = load_config(path)
    assert config.name == "default"
    assert config.model.backbone == "mobilenet_v1"
    assert config.model.alpha == 0.25
    assert config.model.input_shape == (96, 96, 3)
    assert config.calibration.input_range == (0.0, 1.0)
    assert config.quantization.io_dtype == "uint8"
    assert config.quantization.per_channel is True
    (target,) = config.vela.targets
    assert (target.accelerator, target.system_config, target.memory_mode) == (
        "ethos-u55-128",
        "Ethos_U55_High_End_Embedded",
        "Shared_Sram",
    )
    assert config.vela.allow_cpu_fallback is False


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "sub" / "images").mkdir(parents=True)
    raw = small_config(tmp_path, calibration={"data": "images"}, output={"dir": "../out"})
    config = load_config(write_config(tmp_path / "sub", raw))
    assert config.calibration.data == (tmp_path / "sub" / "images").resolve()
    assert config.output.dir == (tmp_path / "out").resolve()


def test_labels_set_num_classes(tmp_path):
    config = load_config(write_config(tmp_path, small_config(tmp_path)))
    assert [(h.name, h.num_classes) for h in config.model.heads] == [("object", 3), ("light", 2)]
    assert config.model.heads[0].labels == ("person", "vehicle", "animal")


def test_set_overrides_by_dotted_path(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path))
    config = load_config(
        path,
        [
            "model.alpha=0.5",
            "model.input_shape=[40, 48, 1]",
            "model.heads.1.num_classes=5",
            "vela.targets.0.accelerator=ethos-u65-256",
            "quantization.per_channel=false",
        ],
    )
    assert config.model.alpha == 0.5
    assert config.model.input_shape == (40, 48, 1)
    assert config.model.heads[1].num_classes == 5
    assert config.vela.targets[0].accelerator == "ethos-u65-256"
    # the target's omitted system config follows the new accelerator's Vela default
    assert config.vela.targets[0].system_config == "Ethos_U65_Client_Server"
    assert config.quantization.per_channel is False


def test_override_creates_a_missing_section():
    raw = {}
    apply_override(raw, "quantization.io_dtype=int8")
    assert raw == {"quantization": {"io_dtype": "int8"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modle": {}}, "modle: unknown key: did you mean 'model'?"),
        ({"model": {"alpah": 0.5}}, "model.alpah: unknown key: did you mean 'alpha'?"),
        ({"model": {"backbone": "resnet50"}}, "model.backbone: 'resnet50' is not one of"),
        ({"model": {"alpha": "wide"}}, "model.alpha: expected a number"),
        ({"model": {"input_shape": [96, 96, 4]}}, "model.input_shape"),
        ({"model": {"input_shape": [16, 16, 3]}}, "H, W >= 32"),
        ({"model": {"heads": []}}, "model.heads: give one or more heads"),
        (
            {
                "model": {
                    "heads": [{"name": "a", "num_classes": 2}, {"name": "a", "num_classes": 3}]
                }
            },
            "repeated: a",
        ),
        ({"model": {"heads": [{"name": "a", "num_classes": 1}]}}, "num_classes >= 2"),
        (
            {"model": {"heads": [{"name": "a", "num_classes": 3, "labels": ["x", "y"]}]}},
            "disagrees with 2 labels",
        ),
        ({"model": {"weights": "missing.weights.h5"}}, "model.weights"),
        ({"calibration": {"data": "nowhere"}}, "calibration.data: folder"),
        ({"calibration": {"input_range": [-1, 1]}}, "zero point at 127.5"),
        ({"calibration": {"input_range": [0.5, 1]}}, "include 0"),
        ({"quantization": {"io_dtype": "int16"}}, "uint8 or int8"),
        ({"vela": {"targets": [{"accelerator": "ethos-u55-100"}]}}, "did you mean 'ethos-u55-128'"),
        (
            {"vela": {"targets": [{"accelerator": "ethos-u55-128", "system_config": "Fast"}]}},
            "not in Vela's Arm/vela.ini",
        ),
        (
            {
                "vela": {
                    "targets": [{"accelerator": "ethos-u55-128"}, {"accelerator": "ethos-u55-128"}]
                }
            },
            "each accelerator or board may appear once",
        ),
        ({"vela": {"optimise": "Speed"}}, "Performance or Size"),
        ({"name": "my model"}, "name:"),
    ],
)
def test_bad_configs_name_the_field(tmp_path, change, message):
    path = write_config(tmp_path, small_config(tmp_path, **change))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(path)


@pytest.mark.parametrize("override", ["model.alpha", "=3", "model.heads.7.name=x"])
def test_bad_overrides(tmp_path, override):
    path = write_config(tmp_path, small_config(tmp_path))
    with pytest.raises(UserError, match="--set"):
        load_config(path, [override])


def test_input_range_for_pixel_over_128_minus_1_is_accepted(tmp_path):
    path = write_config(
        tmp_path, small_config(tmp_path, calibration={"input_range": [-1, 0.9921875]})
    )
    assert load_config(path).calibration.input_range == (-1.0, 0.9921875)


def test_accelerator_list_matches_vela():
    help_text = subprocess.run(
        [sys.executable, "-m", "ethosu.vela", "--help"], capture_output=True, text=True, check=True
    ).stdout
    choices = help_text.split("--accelerator-config {", 1)[1].split("}", 1)[0].split(",")
    assert tuple(choices) == ACCELERATORS
