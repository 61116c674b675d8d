import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PHOTOS, REPO, small_config, write_config

from generator.config.loading import apply_override, load_config
from generator.config.resources import (
    GIB,
    Workload,
    available_bytes,
    backbone_network,
    estimate_bytes,
)
from generator.config.schema import ACCELERATORS
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
        (
            {"model": {"backbone": "mobilenet_v2", "pretrained": "imagenet"}},
            "model.pretrained: Keras publishes no ImageNet weights for mobilenet_v2 alpha 0.25: "
            "use alpha 0.35",
        ),
        (
            {"model": {"backbone": "mobilenet_v3_small", "alpha": 1.2, "pretrained": "imagenet"}},
            "mobilenet_v3_small alpha 1.2: use alpha 1 ",
        ),
        ({"model": {"pretrained": "nowhere.h5"}}, "model.pretrained: .*nowhere.h5 not found"),
        (
            {
                "train": {
                    "data": str(REPO / "representative_data/digits/train.csv"),
                    "freeze_backbone_epochs": 31,
                }
            },
            "at most train.epochs",
        ),
        (
            {
                "train": {
                    "data": str(REPO / "representative_data/digits/train.csv"),
                    "backbone_learning_rate": 0,
                }
            },
            "heads' rate in",
        ),
        ({"model": {"depth": 0}}, "model.depth: 0 is no stage count or mobilenet_v1 block: use 1"),
        (
            {"model": {"depth": "conv_pw_14"}},
            "from conv_pw_1 to conv_pw_13 .did you mean conv_pw_13?.",
        ),
        (
            {"model": {"backbone": "mobilenet_v2", "depth": "conv_pw_3"}},
            "from expanded_conv to block_16",
        ),
        ({"model": {"depth": 3, "output_stride": 16}}, "more than the 8 that model.depth 3 leaves"),
        ({"optimize": {"clusters": 1}}, "optimize.clusters: 1 must be 0 .off. or"),
        ({"optimize": {"clusters": {"conv*": 300}}}, "optimize.clusters.conv.: 300 must be"),
        ({"optimize": {"sparsity": 1.0}}, r"optimize.sparsity: 1.0 must be in .0, 1\)"),
        ({"optimize": {"clusters": 8}}, "optimize.epochs: fine-tuning needs labelled images"),
        ({"optimize": {"clusters": 8, "epochs": 0, "learning_rate": -1}}, "must be > 0"),
        (
            {
                "train": {
                    "data": str(REPO / "representative_data/digits/train.csv"),
                    "teacher": "nowhere.keras",
                }
            },
            "train.teacher: .*nowhere",
        ),
        (
            {
                "train": {
                    "data": str(REPO / "representative_data/digits/train.csv"),
                    "distillation_weight": 1.5,
                }
            },
            "train.distillation_weight: 1.5 must be in .0, 1., e.g. 0.5",
        ),
        (
            {
                "train": {
                    "data": str(REPO / "representative_data/digits/train.csv"),
                    "temperature": 0,
                }
            },
            "train.temperature: 0.0 must be in",
        ),
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


def _pretrained_config(tmp_path, suffix: str, **calibration) -> Path:
    weights = tmp_path / f"backbone{suffix}"
    weights.write_bytes(b"")  # read only by the build; the config checks the name
    model = {"pretrained": str(weights)}
    return write_config(tmp_path, small_config(tmp_path, model=model, calibration=calibration))


@pytest.mark.parametrize(("suffix", "follows"), [(".h5", True), (".keras", False)])
def test_input_range_follows_published_weights_unless_the_config_sets_it(tmp_path, suffix, follows):
    """A Keras .h5 (as Keras publishes ImageNet weights) expects [-1, 1]; another build's
    .keras was trained at what its config said, which this config must say again."""
    calibration = load_config(_pretrained_config(tmp_path, suffix)).calibration
    assert calibration.input_range_from_pretrained is follows
    assert calibration.input_range == ((-1.0, 0.9921875) if follows else (0.0, 1.0))
    given = load_config(_pretrained_config(tmp_path, suffix, input_range=[0, 1])).calibration
    assert given.input_range == (0.0, 1.0) and not given.input_range_from_pretrained


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"pretrained": "imagenet", "weights": "w.weights.h5"},
            "model.pretrained: model.weights already gives every weight: remove one of them",
        ),
        (
            {"pretrained": "w.weights.h5"},
            "model.pretrained: w.weights.h5 is not a Keras .h5 or .keras file (a .weights.h5 "
            "holds no layer names): give a .keras model, or the whole weights as model.weights",
        ),
    ],
)
def test_pretrained_refusals(tmp_path, model, message):
    (tmp_path / "w.weights.h5").write_bytes(b"")
    model = {key: str(tmp_path / v) if v.endswith(".h5") else v for key, v in model.items()}
    path = write_config(tmp_path, small_config(tmp_path, model=model))
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert str(caught.value) == message


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


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path))
    path.write_text(path.read_text() + "name: again\n")
    line = len(path.read_text().splitlines())
    with pytest.raises(UserError, match=f"at line {line} \\(key 'name' given twice\\)"):
        load_config(path)


def test_keys_merged_in_may_be_overridden(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path))
    text = path.read_text().replace(
        "model:\n", "shared: &shared {alpha: 0.5}\nmodel:\n  <<: *shared\n", 1
    )
    path.write_text(text.replace("shared: &shared", "x-shared: &shared"))
    with pytest.raises(UserError, match="x-shared: unknown key"):  # merged, not a duplicate
        load_config(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"alpha": float("nan")}}, "model.alpha: expected a finite number, got nan"),
        ({"model": {"alpha": 10**400}}, "model.alpha: a 401-digit number is too large"),
        ({"model": {"seed": -1}}, "model.seed: -1 is negative"),
        ({"model": {"heads": [{"name": "a", "labels": ["on", False]}]}}, "False is a boolean"),
        ({"model": {"heads": [{"name": "a", "labels": ["x", ""]}]}}, "non-empty name, got ''"),
        ({"calibration": {"samples": 2**31}}, "calibration.samples: 2147483648 is too large"),
        ({"calibration": {"input_range": [0, True]}}, "two finite numbers"),
    ],
)
def test_numbers_must_be_finite_and_labels_names(tmp_path, change, message):
    path = write_config(tmp_path, small_config(tmp_path, **change))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(path)


def test_output_dir_must_be_a_folder_that_can_be_made(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"--output-dir: .*file is a file"):
        load_config(path, output_dir=tmp_path / "file")
    with pytest.raises(
        UserError, match=r"--output-dir: cannot create .*file/out: .*file is a file"
    ):
        load_config(path, output_dir=tmp_path / "file" / "out")
    # --output-dir replaces output.dir, which is then not checked
    config = load_config(path, output_dir=tmp_path / "new" / "out")
    assert config.output.dir == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists()  # loading creates nothing


def test_output_dir_must_be_writable(tmp_path, monkeypatch):
    path = write_config(tmp_path, small_config(tmp_path))
    monkeypatch.setattr("generator.config.loading.os.access", lambda *_: False)
    with pytest.raises(UserError, match=f"output.dir: cannot write in {tmp_path}"):
        load_config(path)


def test_demo_configs_pass_the_memory_check_easily():
    for name in ("default.yaml", "profile_96x96.yaml"):
        config = load_config(REPO / "configs" / name)
        terms = estimate_bytes(
            backbone_network(config.model), config.model.input_shape, config.model.workload
        )
        assert sum(terms.values()) < 1.2 * GIB, name


def test_workload_counts_images_without_reading_them(tmp_path):
    digits = REPO / "representative_data" / "digits"
    raw = small_config(
        tmp_path,
        train={
            "data": str(digits / "train.csv"),
            "validation": str(digits / "images/test"),
            "batch_size": 4096,
        },
        evaluation={"data": str(digits / "test.csv")},
    )
    config = load_config(write_config(tmp_path, raw))
    assert config.model.workload == Workload(
        calibration_images=16 + 8,
        labelled_images=1438 + 359 + 359,
        batch_size=4096,
        batch_images=1438,  # a batch holds no more than train.csv has
    )


def test_memory_refusal_names_the_largest_term_and_a_fix_that_fits(tmp_path, monkeypatch):
    monkeypatch.setattr("generator.config.resources.available_bytes", lambda: 3 * GIB)
    model = {"input_shape": [1024, 1024, 3], "alpha": 1.0}
    path = write_config(tmp_path, small_config(tmp_path, model=model))
    with pytest.raises(UserError) as refused:
        load_config(path)
    message = str(refused.value)
    assert message.startswith("model.input_shape: [1024, 1024, 3] needs an estimated")
    suggested = re.search(
        r"this machine has 3.0 GiB available: use a smaller input_shape "
        r"\(e.g. (\[\d+, \d+, 3\])\) or fewer calibration.samples$",
        message,
    )
    assert suggested, message
    load_config(path, [f"model.input_shape={suggested[1]}"])

    digits = REPO / "representative_data" / "digits"
    train = {"data": str(digits / "train.csv"), "batch_size": 4096}
    model = {"input_shape": [96, 96, 3], "alpha": 1.0}
    path = write_config(tmp_path, small_config(tmp_path, model=model, train=train))
    with pytest.raises(UserError) as refused:
        load_config(path)
    fits = re.fullmatch(
        r"train.batch_size: 4096 at input 96×96×3 needs an estimated [\d.]+ GiB of memory, this "
        r"machine has 3.0 GiB available: use a smaller batch_size \(at most (\d+)\)",
        str(refused.value),
    )
    assert fits, str(refused.value)
    load_config(path, [f"train.batch_size={fits[1]}"])


def test_available_memory_is_capped_by_a_cgroup_limit(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "limit_in_bytes").write_text(f"{2**30}\n")
    monkeypatch.setattr(
        "generator.config.resources._CGROUP_LIMITS", (tmp_path / "memory.max", tmp_path / "none")
    )
    unlimited = available_bytes()
    assert unlimited > 0
    monkeypatch.setattr(
        "generator.config.resources._CGROUP_LIMITS",
        (tmp_path / "memory.max", tmp_path / "limit_in_bytes"),
    )
    assert available_bytes() == min(unlimited, 2**30)
