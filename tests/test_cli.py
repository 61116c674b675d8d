"""End to end: `python -m generator build|validate` on small real models and real images."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    MICRO,
    REPO,
    TFLM_INSTALLED,
    digit_images,
    digits_config,
    micro_by_hand,
    small_config,
    write_config,
    write_digits,
)
from PIL import Image

from generator.cli import main
from generator.engines.tflite_file import read_tflite
from generator.records.policy import RUNTIME_TITLES


def run_cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """One real build of the small config, shared by the checks below."""
    folder = tmp_path_factory.mktemp("build")
    run = run_cli("build", str(write_config(folder, small_config(folder))))
    assert run.returncode == 0, run.stderr
    return folder / "out" / "small", run


def test_build_writes_every_artifact_and_lists_it(small_build):
    out, run = small_build
    expected = [
        "small.keras",
        "small.tflite",
        "vela/ethos-u55-128/small_vela.tflite",
        "vela/ethos-u55-128/small_summary_Ethos_U55_High_End_Embedded.csv",
        "vela/ethos-u55-128/small_per-layer.csv",
        "vela/ethos-u55-128/small_model.h",
        "vela/ethos-u55-128/small_model.c",
        "small_model.h",
        "small_model.c",
        "small_quantization_info.json",
        "small_report.md",
        "small_report.html",
    ]
    for relative in expected:
        assert (out / relative).is_file(), relative
        assert relative in run.stdout
    assert not list(out.parent.glob(".*")), "staging folders left behind"
    # Quiet: progress lines of ours only, no TensorFlow or LiteRT log lines.
    assert "[report]" in run.stderr
    for noise in ("W0000", "I0000", "INFO:", "WARNING:", "TensorSpec", "Traceback"):
        assert noise not in run.stderr + run.stdout


def test_quantization_info_is_read_back_from_the_artifacts(small_build):
    out, _ = small_build
    info = json.loads((out / "small_quantization_info.json").read_text())
    content = (out / "small.tflite").read_bytes()
    tflite = read_tflite(content)
    assert info["schema_version"] == 6
    assert info["fully_quantized"] is True
    assert info["float32_tensors"] == 0
    dtype_keys = [k for k in info if k.endswith("_tensors") and k != "total_tensors"]
    assert sum(info[k] for k in dtype_keys) == info["total_tensors"] == len(tflite.tensors)
    assert sum(info["operators"].values()) == len(tflite.operators)
    assert info["model"]["tflite_bytes"] == len(content)
    assert info["model"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert info["model"]["input_shape"] == [32, 32, 3]
    model_input = info["input"]
    assert (model_input["shape"], model_input["dtype"]) == ([1, 32, 32, 3], "uint8")
    assert model_input["zero_point"] == 0
    assert model_input["float_range"] == pytest.approx([0.0, 1.0], abs=1e-6)
    heads = info["heads"]
    assert [h["name"] for h in heads] == ["object", "light"]
    assert [h["num_classes"] for h in heads] == [3, 2]
    assert heads[0]["labels"] == ["person", "vehicle", "animal"] and heads[1]["labels"] is None
    for head in heads:
        output = tflite.outputs[head["output_index"]]
        assert output.index == tflite.signature_outputs[head["name"]]
        assert (head["scale"], head["zero_point"]) == (output.scale, output.zero_point)
    assert info["calibration"]["samples"] == 16 and info["calibration"]["held_out"] == 8
    assert info["calibration"]["images_found"] == 260
    vela = info["vela"]["ethos-u55-128"]
    assert vela["cpu_operators"] == 0 and vela["npu_operators"] > 0
    compiled = out / "vela/ethos-u55-128/small_vela.tflite"
    assert vela["vela_tflite_bytes"] == compiled.stat().st_size
    summary = (out / "vela/ethos-u55-128/small_summary_Ethos_U55_High_End_Embedded.csv").read_text()
    assert f"{vela['sram_kib']}" in summary.replace(".0,", ",")
    assert info["fidelity"]["runtime"] == MICRO and info["fidelity"]["images"] == 8
    assert set(info["fidelity"]["heads"]) == {"object", "light"}
    assert set(info["runtimes"]["compared"]) == {"litert_builtin", "litert_default"}
    # random weights: the tool must say so in plain words
    assert any("weights look untrained" in w for w in info["warnings"])
    report = (out / "small_report.md").read_text()
    for fact in ("object", "light", "ethos-u55-128", info["model"]["sha256"], "untrained"):
        assert fact in report


def test_the_runtime_that_stood_for_a_cortex_m_is_named_everywhere(small_build):
    """Without tflite-micro (no wheel on the platform) LiteRT's reference kernels give the
    Cortex-M figures and every report says so; with it, nothing mentions a substitute."""
    out, run = small_build
    info = json.loads((out / "small_quantization_info.json").read_text())
    tflm = info["tflm"]
    assert (tflm["installed"], tflm["runtime"]) == (TFLM_INSTALLED, MICRO)
    assert info["runtimes"]["reference"] == MICRO
    pages = [
        run.stderr,
        (out / "small_report.md").read_text(),
        (out / "small_report.html").read_text(),
        (out / "small_model.h").read_text(),
    ]
    if TFLM_INSTALLED:
        assert tflm["note"] is None and tflm["arena_bytes"] > 0
        assert info["versions"]["tflite_micro"]
        assert f"SMALL_MODEL_ARENA_SIZE {tflm['arena_bytes']}u" in pages[3]
        assert "[arena]" in run.stderr
        assert not any("reference kernels" in page for page in pages)
        return
    assert tflm["arena_bytes"] is None and "not measured" in tflm["arena_basis"]
    assert info["versions"]["tflite_micro"] is None
    assert "TensorFlow Lite Micro is not installed" in tflm["note"]
    assert f"{tflm['note']}." in info["warnings"]
    for page in pages[:3]:  # the CLI's summary, the Markdown and the HTML
        assert "TensorFlow Lite Micro is not installed" in page, page[:300]
        assert "reference kernels" in page
    # The C header gives no arena figure rather than a guessed one.
    assert "SMALL_MODEL_ARENA_SIZE" in pages[3] and "#define SMALL_MODEL_ARENA_SIZE" not in pages[3]
    assert "[arena]" not in run.stderr


def test_output_i_is_head_i_in_every_file_and_layers_have_keras_names(small_build):
    out, _ = small_build
    info = json.loads((out / "small_quantization_info.json").read_text())
    assert [h["output_index"] for h in info["heads"]] == [0, 1]
    for relative in ("small.tflite", "vela/ethos-u55-128/small_vela.tflite"):
        model = read_tflite((out / relative).read_bytes())
        assert [t.name for t in model.outputs] == ["object", "light"], relative
        assert list(model.signature_outputs) == ["object", "light"], relative
    for relative in ("small_model.h", "vela/ethos-u55-128/small_model.h"):
        header = (out / relative).read_text()
        assert "SMALL_MODEL_OBJECT_OUTPUT_INDEX 0" in header
        assert "SMALL_MODEL_LIGHT_OUTPUT_INDEX 1" in header
    layers = info["vela"]["ethos-u55-128"]["layers"]
    assert {"conv1", "conv_pw_13", "object_logits", "light_logits"} <= {r["layer"] for r in layers}
    assert any(";" in r["name"] for r in layers)  # Vela's full fused name stays in the JSON
    report = (out / "small_report.md").read_text()
    assert "| conv_pw_13 |" in report and "Relu6;" not in report
    assert RUNTIME_TITLES[MICRO] in report


def test_same_config_gives_byte_identical_models(small_build, tmp_path):
    out, _ = small_build
    config = small_config(tmp_path)
    run = run_cli("build", str(write_config(tmp_path, config)))
    assert run.returncode == 0, run.stderr
    again = tmp_path / "out" / "small"
    for relative in ("small.tflite", "vela/ethos-u55-128/small_vela.tflite"):
        assert (again / relative).read_bytes() == (out / relative).read_bytes()


def test_set_and_output_dir_override_the_file(tmp_path):
    config = write_config(tmp_path, small_config(tmp_path))
    run = run_cli(
        "build",
        str(config),
        "--set",
        "model.backbone=mobilenet_v3_small",
        "--set",
        "model.input_shape=[40, 48, 1]",
        "--set",
        "name=overridden",
        "--output-dir",
        str(tmp_path / "elsewhere"),
    )
    assert run.returncode == 0, run.stderr
    info_path = tmp_path / "elsewhere" / "overridden" / "overridden_quantization_info.json"
    info = json.loads(info_path.read_text())
    assert info["model"]["backbone"] == "mobilenet_v3_small"
    assert info["input"]["shape"] == [1, 40, 48, 1]
    assert info["vela"]["ethos-u55-128"]["cpu_operators"] == 0
    assert not (tmp_path / "out").exists()


def test_trained_weights_give_meaningful_fidelity(digits_model_weights, tmp_path):
    data = tmp_path / "digits"
    write_digits(data, range(1500, 1560))
    config = digits_config(tmp_path, digits_model_weights, data, holdout=30)
    assert main(["build", str(write_config(tmp_path, config))]) == 0
    info = json.loads((tmp_path / "out/small/small_quantization_info.json").read_text())
    assert info["fidelity"]["heads"]["digit"]["agreement_top1"] >= 0.9
    assert info["fidelity"]["heads"]["digit"]["sqnr_db"] > 15
    assert not [w for w in info["warnings"] if "untrained" in w or "random" in w]


BAD_CONFIGS = {
    "unknown key": (
        {
            "model": {
                "backbone": "mobilenet_v1",
                "heads": [{"name": "a", "num_classes": 2}],
                "alhpa": 1,
            }
        },
        "did you mean 'alpha'",
    ),
    "unknown target": (
        {"vela": {"targets": [{"accelerator": "ethos-u99"}]}},
        "vela.targets[0].accelerator",
    ),
    "missing data": ({"calibration": {"data": "no/such/folder"}}, "calibration.data"),
    "bad range": ({"calibration": {"input_range": [-1, 1]}}, "calibration.input_range"),
    "bad shape": ({"model": {"input_shape": [96, 96, 2]}}, "model.input_shape"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_configs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case):
    change, fragment = BAD_CONFIGS[case]
    config = small_config(tmp_path, **change)
    assert main(["build", str(write_config(tmp_path, config))]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert not (tmp_path / "out").exists()


def test_data_folder_without_usable_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    config = small_config(tmp_path, calibration={"data": str(tmp_path / "empty")})
    path = write_config(tmp_path, config)
    assert main(["validate", str(path)]) == 2
    assert "fewer than 2 readable images" in capsys.readouterr().err
    assert main(["build", str(path)]) == 2
    assert "0 usable image(s) (1 image files, 1 unreadable)" in capsys.readouterr().err
    assert not list((tmp_path / "out").iterdir())


def test_late_failure_leaves_no_half_written_output(tmp_path):
    """Weights that do not fit fail after TensorFlow started; the previous build survives."""
    wrong = tmp_path / "wrong.weights.h5"
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(wrong)
    path = write_config(tmp_path, small_config(tmp_path, model={"weights": str(wrong)}))
    previous = tmp_path / "out" / "small"
    previous.mkdir(parents=True)
    (previous / "small.tflite").write_bytes(b"previous build")
    run = run_cli("build", str(path))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("error: model.weights:")
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small"]
    assert (previous / "small.tflite").read_bytes() == b"previous build"
    debug = run_cli("build", str(path), "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_validate_checks_without_importing_tensorflow(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path))
    probe = (
        "import sys; from generator.cli import main; code = main(['validate', sys.argv[1]]); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; sys.exit(code)"
    )
    run = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "valid" in run.stdout and "260 image files" in run.stdout
    assert not (tmp_path / "out").exists()


def test_real_exit_code_for_a_bad_config(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path, model={"backbone": "mobilenet_v9"}))
    run = run_cli("validate", str(path))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "error: model.backbone: 'mobilenet_v9' is not one of mobilenet_v1, mobilenet_v2, "
        "mobilenet_v3_small, mobilenet_v3_large, mobilenet_v4_conv_small, mobilenet_v4_conv_medium"
    ]


def test_keras_file_loads_with_its_heads(small_build):
    import keras

    out, _ = small_build
    model = keras.saving.load_model(out / "small.keras")
    assert model.input_shape == (1, 32, 32, 3)
    pixels = np.asarray(
        Image.open(REPO / "representative_data/photos/chelsea_00.jpg").resize((32, 32))
    )
    outputs = model.predict(pixels[None] / np.float32(255), verbose=0)
    assert {name: value.shape for name, value in outputs.items()} == {
        "object": (1, 3),
        "light": (1, 2),
    }


def test_own_model_file_builds_with_its_heads_in_order(tmp_path):
    import keras

    image = keras.Input((32, 32, 3), name="pixels")
    features = keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(8, 3, strides=2, activation="relu")(image)
    )
    model = keras.Model(
        image,
        [
            keras.layers.Dense(3, name="first")(features),
            keras.layers.Dense(3, name="second")(features),
        ],
    )
    # Make the heads tell themselves apart: "first" always says class 0, "second" class 2.
    for name, winner in (("first", 0), ("second", 2)):
        kernel, bias = model.get_layer(name).get_weights()
        bias[:] = -4.0
        bias[winner] = 4.0
        model.get_layer(name).set_weights([np.zeros_like(kernel), bias])
    model.save(tmp_path / "own.keras")
    config = small_config(tmp_path, model={"path": "own.keras"})
    del config["model"]["backbone"], config["model"]["alpha"], config["model"]["input_shape"]
    del config["model"]["heads"]
    assert main(["build", str(write_config(tmp_path, config))]) == 0
    out = tmp_path / "out" / "small"
    info = json.loads((out / "small_quantization_info.json").read_text())
    assert info["model"]["source"] == "own.keras" or info["model"]["source"].endswith("own.keras")
    assert info["model"]["backbone"] is None and info["model"]["input_shape"] == [32, 32, 3]
    assert [h["name"] for h in info["heads"]] == ["first", "second"]
    assert (info["input"]["dtype"], info["heads"][0]["dtype"]) == ("uint8", "uint8")
    assert info["vela"]["ethos-u55-128"]["cpu_operators"] == 0
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "small.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(
        interpreter.get_input_details()[0]["index"], np.zeros((1, 32, 32, 3), np.uint8)
    )
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    for head, winner in zip(info["heads"], (0, 2), strict=True):
        assert interpreter.get_tensor(outputs[head["output_index"]]["index"])[0].argmax() == winner


def test_own_model_with_an_unsupported_layer_is_named(tmp_path, capsys):
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="tests")
    class Wave(keras.layers.Layer):
        def call(self, x):
            return tf.math.sin(x)

    image = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D()(
        Wave(name="wave")(keras.layers.Conv2D(4, 3)(image))
    )
    keras.Model(image, keras.layers.Dense(2, name="out")(features)).save(tmp_path / "wavy.keras")
    config = small_config(tmp_path, model={"path": "wavy.keras"})
    for key in ("backbone", "alpha", "input_shape", "heads"):
        del config["model"][key]
    assert main(["build", str(write_config(tmp_path, config))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: model: layer 'wave' (SIN) stay float")
    assert not any(line.startswith("Traceback") for line in lines)
    assert not [p for p in (tmp_path / "out").iterdir()]


def test_evaluation_in_the_json_matches_an_independent_computation(digits_model_weights, tmp_path):
    _, labels = digit_images()
    data = tmp_path / "digits"
    write_digits(data, range(1500, 1600), parity_every=5)
    evaluation = {"data": str(data / "labels.csv")}
    config = digits_config(tmp_path, digits_model_weights, data, holdout=10, evaluation=evaluation)
    path = write_config(tmp_path, config)
    assert main(["build", str(path)]) == 0
    out = tmp_path / "out" / "small"
    info = json.loads((out / "small_quantization_info.json").read_text())
    accuracy = info["accuracy"]

    import keras
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = keras.saving.load_model(out / "small.keras")
    runner = Interpreter(
        model_path=str(out / "small.tflite"),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    ).get_signature_runner()
    images = np.stack(
        [
            np.asarray(
                Image.open(data / f"{i}.png")
                .convert("L")
                .resize((32, 32), Image.Resampling.BILINEAR)
            )
            for i in range(1500, 1600)
        ]
    )[..., None]
    expected = model.predict(images / np.float32(255), verbose=0)
    for head, truth in (("digit", labels[1500:1600]), ("parity", labels[1500:1600] % 2)):
        keep = np.array([not (head == "parity" and i % 5 == 0) for i in range(1500, 1600)])
        host = np.stack([runner(image=image[None])[head][0] for image in images])
        # The quantized figures are TFLite Micro's (or its substitute's); output i is head i.
        content = (out / "small.tflite").read_bytes()
        quantized = micro_by_hand(content, images)[["digit", "parity"].index(head)]
        builtin = accuracy["heads"][head]["runtimes"]["litert_builtin"]
        assert builtin["top1"] == np.mean(host[keep].argmax(1) == truth[keep])
        float_pred, quant_pred = expected[head][keep].argmax(1), quantized[keep].argmax(1)
        figures = accuracy["heads"][head]
        assert figures["images"] == keep.sum()
        assert figures["float_top1"] == np.mean(float_pred == truth[keep])
        assert figures["quantized_top1"] == np.mean(quant_pred == truth[keep])
        assert figures["agreement_top1"] == np.mean(float_pred == quant_pred)
        assert np.sum(figures["confusion_matrix"]) == keep.sum()
    assert accuracy["tflite_bytes"] == (out / "small.tflite").stat().st_size
    assert accuracy["keras_bytes"] == (out / "small.keras").stat().st_size
    report = (out / "small_report.md").read_text()
    micro = "TFLite Micro" if TFLM_INSTALLED else "LiteRT's reference kernels (for TFLite Micro)"
    assert f"| int8 TFLite (.tflite), {micro} |" in report and "Confusion matrix" in report

    # `evaluate` re-runs only the evaluation and lands on the same figures
    before = (out / "small.tflite").read_bytes()
    (out / "small_quantization_info.json").write_text(json.dumps({**info, "accuracy": None}))
    assert main(["evaluate", str(path)]) == 0
    again = json.loads((out / "small_quantization_info.json").read_text())
    assert again["accuracy"] == accuracy
    assert (out / "small.tflite").read_bytes() == before


def test_evaluate_needs_an_existing_build(tmp_path, capsys):
    config = small_config(
        tmp_path, evaluation={"data": str(REPO / "representative_data/digits/test.csv")}
    )
    assert main(["evaluate", str(write_config(tmp_path, config))]) == 2
    assert "run 'python -m generator build" in capsys.readouterr().err


def test_validate_reads_the_labelled_sets(tmp_path, capsys):
    digits = REPO / "representative_data" / "digits"
    heads = [
        {"name": "digit", "num_classes": 10},
        {"name": "parity", "labels": ["even", "odd"]},
        {"name": "high", "labels": ["low", "high"]},
    ]
    config = small_config(
        tmp_path,
        model={"input_shape": [32, 32, 1], "heads": heads},
        train={"data": str(digits / "train.csv")},
        evaluation={"data": str(digits / "test.csv")},
    )
    path = write_config(tmp_path, config)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "train.data: 1438 images" in out and "evaluation.data: 359 images" in out
    assert main(["validate", str(path), "--set", "model.heads.2.labels=[small, big]"]) == 2
    assert "labels ['small', 'big'] in the config" in capsys.readouterr().err


def test_debris_of_a_killed_build_is_removed_by_the_next(tmp_path):
    """SIGKILL leaves the staging folder; the next build of that name removes it, and only it."""
    import os
    import signal
    import time

    path = write_config(tmp_path, small_config(tmp_path))
    out = tmp_path / "out"
    build = subprocess.Popen(
        [sys.executable, "-m", "generator", "build", str(path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob(f".small-{build.pid}-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    build.send_signal(signal.SIGKILL)
    build.wait()
    (left,) = out.glob(f".small-{build.pid}-*")
    # A running build's staging folder (this process is alive) and another name's stay.
    running = out / f".small-{os.getpid()}-abc123"
    other = out / ".small-2-9-xyz"
    running.mkdir()
    other.mkdir()
    run = run_cli("build", str(path))
    assert run.returncode == 0, run.stderr
    assert not left.exists()
    assert running.is_dir() and other.is_dir()
    assert (out / "small" / "small.tflite").is_file()


def test_a_publish_cut_short_restores_the_previous_build(tmp_path):
    """Killed after moving the previous result aside: the next build puts it back first."""
    from generator.runs.publish import clear_debris

    out = tmp_path / "out"
    out.mkdir()
    (out / ".small-old").mkdir()
    (out / ".small-old" / "small.tflite").write_bytes(b"previous build")
    clear_debris(out, "small")
    assert (out / "small" / "small.tflite").read_bytes() == b"previous build"
    assert sorted(p.name for p in out.iterdir()) == ["small"]
