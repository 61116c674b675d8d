"""`python -m generator compare`: every mode from one float model, its figures recomputed here
from the artifacts it wrote, with engines called directly (not through generator's adapters)."""

import csv
import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from conftest import (
    MICRO,
    TFLM_INSTALLED,
    digits_config,
    evaluated_digits_config,
    micro_by_hand,
    small_config,
    write_config,
    write_digits,
)
from markupsafe import escape

from generator.cli import main
from generator.engines.tflite_file import read_tflite
from generator.records.compare_record import ACCURACY_MARGIN_POINTS, HOST_LATENCY_TIE

HOST = ("dynamic_range", "float16", "float32")


def _rows(info):
    return {row["mode"]: row for row in info["modes"]}


def test_every_mode_has_the_tensor_types_it_promises(comparison):
    folder, info, _ = comparison
    rows = _rows(info)
    assert list(rows) == ["full_integer", "int16x8", "dynamic_range", "float16", "float32"]
    for mode, row in rows.items():
        path = folder / row["tflite"]
        tflite = read_tflite(path.read_bytes())
        assert row["tflite_bytes"] == path.stat().st_size
        assert row["dtypes"] == dict(tflite.dtype_counts())
        io = {t.dtype for t in (*tflite.inputs, *tflite.outputs)}
        weights = {
            tflite.tensors[op.inputs[1]].dtype
            for op in tflite.operators
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")
        }
        if mode == "full_integer":
            assert io == {"uint8"} and "float32" not in row["dtypes"]
            assert weights == {"int8"}
        elif mode == "int16x8":
            assert io == {"int16"} and "float32" not in row["dtypes"]
            activations = {tflite.tensors[i].dtype for op in tflite.operators for i in op.outputs}
            assert activations == {"int16"} and weights == {"int8"}
        elif mode == "dynamic_range":
            # The converter leaves weights of under 1,024 elements float.
            activations = {tflite.tensors[i].dtype for op in tflite.operators for i in op.outputs}
            assert io == {"float32"} and "int8" in weights and activations == {"float32"}
        elif mode == "float16":
            assert io == {"float32"} and "float16" in row["dtypes"]
        else:
            assert set(row["dtypes"]) <= {"float32", "int32"}


def test_host_modes_are_not_compiled_and_say_why(comparison):
    folder, info, _ = comparison
    for mode, row in _rows(info).items():
        if mode in HOST:
            assert row["vela"] is None
            assert "host format" in row["vela_note"] and "Ethos-U" in row["vela_note"]
            assert not (folder / "compare" / mode / "vela").exists()
        else:
            assert set(row["vela"]) == {"ethos-u55-128", "ethos-u85-256"}


def test_vela_figures_are_vela_s_own(comparison):
    """int16x8 compiles for U55 and U85; the NPU/CPU split is counted from Vela's per-layer CSV."""
    folder, info, _ = comparison
    for mode in ("full_integer", "int16x8"):
        for key, figures in _rows(info)[mode]["vela"].items():
            output = folder / "compare" / mode / "vela" / key
            (per_layer,) = output.glob("*_per-layer.csv")
            with per_layer.open() as handle:
                targets = [
                    row[" Target"].strip() if " Target" in row else row["Target"].strip()
                    for row in csv.DictReader(handle)
                ]
            assert figures["npu_operators"] == targets.count("NPU")
            assert figures["cpu_operators"] == len(targets) - targets.count("NPU")
            (summary,) = output.glob("*_summary_*.csv")
            with summary.open() as handle:
                (row,) = [
                    {k.strip(): v.strip() for k, v in r.items()} for r in csv.DictReader(handle)
                ]
            assert figures["sram_kib"] == float(row["sram_memory_used"])
            assert figures["encoded_weight_bytes"] == int(float(row["total_npu_encoded_weights"]))
            assert figures["inference_time_ms"] == pytest.approx(
                float(row["inference_time"]) * 1000
            )


def _outputs(path, images, runtime_name):
    """Dequantized outputs by head of the .tflite at `path` for uint8 `images`, run directly."""
    content = path.read_bytes()
    tflite = read_tflite(content)
    model_input = tflite.inputs[0]
    values = images.astype(np.float32) * np.float32(1 / 255)  # lo + p * (hi - lo) / 255
    if model_input.dtype == "uint8":
        feed = images
    elif model_input.dtype == "int16":
        feed = np.clip(
            np.round(values / model_input.scale) + model_input.zero_point, -32768, 32767
        ).astype(np.int16)
    else:
        feed = values
    raw = [[] for _ in tflite.outputs]
    if runtime_name == MICRO:
        raw = micro_by_hand(content, feed)
    else:
        interpreter = Interpreter(
            model_content=content,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
        details = interpreter.get_output_details()
        for sample in feed:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample[None])
            interpreter.invoke()
            for i, detail in enumerate(details):
                raw[i].append(interpreter.get_tensor(detail["index"])[0])
    result = {}
    for output, values in zip(tflite.outputs, raw, strict=True):
        values = np.stack(values).astype(np.float64)
        if output.scale is not None:
            values = (values - output.zero_point) * output.scale
        result[output.name] = values
    return result


def test_scores_equal_an_independent_recomputation(comparison):
    from conftest import digit_images

    folder, info, _ = comparison
    pixels, labels = digit_images()
    images, truth = pixels[1500:1560], {"digit": labels[1500:1560], "parity": labels[1500:1560] % 2}
    rows = _rows(info)
    reference = _outputs(folder / rows["float32"]["tflite"], images, "litert_builtin")
    for mode, row in rows.items():
        # TFLite Micro cannot run the hybrid and float16 modes; LiteRT's reference kernels,
        # standing in for it where it is not installed, can.
        assert row["runtime"] == (
            "litert_builtin" if mode in ("dynamic_range", "float16") and TFLM_INSTALLED else MICRO
        )
        outputs = _outputs(folder / row["tflite"], images, row["runtime"])
        for head in ("digit", "parity"):
            predicted = outputs[head].argmax(1)
            assert row["accuracy"][head] == np.mean(predicted == truth[head])
            assert row["agreement"][head] == np.mean(predicted == reference[head].argmax(1))
            noise = np.sum((outputs[head] - reference[head]) ** 2)
            if noise:
                signal = np.sum(reference[head] ** 2)
                assert row["sqnr_db"][head] == pytest.approx(
                    10 * np.log10(signal / noise), rel=1e-6
                )
        if not TFLM_INSTALLED:
            assert row["tflm_arena_bytes"] is None and "not installed" in row["tflm_note"]
        elif mode in ("full_integer", "int16x8", "float32"):
            from tflite_micro import runtime

            arena = row["tflm_arena_bytes"]
            runtime.Interpreter.from_bytes((folder / row["tflite"]).read_bytes(), arena_size=arena)
            with pytest.raises(RuntimeError):
                runtime.Interpreter.from_bytes(
                    (folder / row["tflite"]).read_bytes(), arena_size=arena - 64
                )
        else:
            assert row["tflm_arena_bytes"] is None and "TFLite Micro cannot run" in row["tflm_note"]
    assert info["reference"]["tflite_bytes"] == rows["float32"]["tflite_bytes"]


def test_the_comparison_names_the_runtime_that_stood_for_a_cortex_m(comparison):
    folder, info, _ = comparison
    assert info["schema_version"] == 3
    assert info["micro"]["runtime"] == MICRO
    pages = [(folder / f"small_compare.{suffix}").read_text() for suffix in ("md", "html")]
    if TFLM_INSTALLED:
        assert info["micro"]["note"] is None
        assert not any("reference kernels" in page for page in pages)
    else:
        assert "TensorFlow Lite Micro is not installed" in info["micro"]["note"]
        for page in pages:
            assert info["micro"]["note"] in page.replace("&#39;", "'")
            assert "LiteRT's reference kernels (for TFLite Micro) where it runs" in page.replace(
                "&#39;", "'"
            )


def test_the_recommendation_follows_from_the_figures(comparison):
    folder, info, _ = comparison
    rows = _rows(info)
    lost = {
        mode: max(100 * (info["reference"]["accuracy"][h] - a) for h, a in row["accuracy"].items())
        for mode, row in rows.items()
    }
    markdown = (folder / "small_compare.md").read_text()
    for target in info["targets"]:
        key = target["key"]
        fitting = {
            mode: sum(row["vela"][key][f"{memory}_kib"] for memory in ("sram", "flash", "dram"))
            for mode, row in rows.items()
            if row["vela"]
            and row["vela"][key]["cpu_operators"] == 0
            and lost[mode] <= ACCURACY_MARGIN_POINTS
        }
        chosen = info["recommendations"][key]["mode"]
        if fitting:
            assert fitting[chosen] == min(fitting.values())
            assert f"**{chosen}**" in markdown
        else:
            assert chosen is None
    host = [m for m in rows if lost[m] <= ACCURACY_MARGIN_POINTS]
    fastest = min(rows[m]["host_latency_ms"] for m in host)
    tied = [m for m in host if rows[m]["host_latency_ms"] <= fastest * (1 + HOST_LATENCY_TIE)]
    assert info["recommendations"]["host"]["mode"] == min(
        tied, key=lambda m: (rows[m]["tflite_bytes"], rows[m]["host_latency_ms"])
    )
    for mode in rows:
        assert f"| {mode} |" in markdown


def test_a_mode_that_cannot_be_made_is_recorded_and_the_others_go_on(tmp_path, capsys):
    """MobileNetV3's hard-swish has no 16-bit quantization in the converter."""
    config = small_config(tmp_path, model={"backbone": "mobilenet_v3_small"})
    path = write_config(tmp_path, config)
    assert main(["compare", str(path), "--modes", "int16x8,full_integer"]) == 0
    info = json.loads((tmp_path / "out/small/small_compare.json").read_text())
    failed, made = info["modes"]
    assert failed["mode"] == "int16x8" and "HARD_SWISH" in failed["error"]
    assert failed["tflite"] is None and failed["vela"] is None
    assert made["mode"] == "full_integer" and made["error"] is None
    assert made["accuracy"] is None  # no evaluation set: agreement on held-out images only
    assert set(made["agreement"]) == {"object", "light"}
    assert "int16x8 failed" in capsys.readouterr().err
    # Both pages give the failed mode its reason, and score the other by agreement.
    markdown = (tmp_path / "out/small/small_compare.md").read_text()
    page = (tmp_path / "out/small/small_compare.html").read_text()
    assert f"| int16x8 | failed: {failed['error']} |" in markdown
    assert f"failed: {escape(failed['error'])}</td>" in page
    assert "<th>agreement</th>" in page and "<th>accuracy</th>" not in page


def test_mixed_keeps_its_layers_float_and_vela_says_what_that_costs(tmp_path):
    """`mixed` is full_integer with quantization.keep_float's layers float: those run on the
    CPU, so the NPU recommendation passes it over."""
    config = small_config(
        tmp_path,
        quantization={"keep_float": ["conv_pw_13"]},
        vela={"targets": [{"board": "corstone_300"}]},
        output={"dir": str(tmp_path / "out"), "require_fit": False},
    )
    assert main(["compare", str(write_config(tmp_path, config)), "--modes", "mixed"]) == 0
    folder = tmp_path / "out/small"
    info = json.loads((folder / "small_compare.json").read_text())
    (mixed,) = (row for row in info["modes"] if row["mode"] == "mixed")
    tflite = read_tflite((folder / mixed["tflite"]).read_bytes())
    kept = [(name, tensor) for name, tensor in tflite.float_operators() if "conv_pw_13" in tensor]
    assert kept, tflite.float_operators()  # the kept layer's operator is float in the file
    assert mixed["dtypes"]["float32"] == tflite.dtype_counts()["float32"] > 0
    vela = mixed["vela"]["corstone_300"]
    assert vela["cpu_operators"] > 0 and any(
        "CONV" in n.upper() for n in vela["cpu_operator_names"]
    )
    (summary,) = (folder / "compare/mixed/vela/corstone_300").glob("*_per-layer.csv")
    with summary.open() as handle:
        rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(handle)]
    targets = [row["Target"] for row in rows]
    assert targets.count("CPU") == vela["cpu_operators"]
    assert info["recommendations"]["corstone_300"]["mode"] != "mixed"


@pytest.mark.parametrize(
    ("arguments", "sections", "fragment"),
    [
        (["--modes", "full_integer,int4"], {}, "--modes: 'int4' is not a mode"),
        (["--modes", "qat"], {}, "qat fine-tunes the trained model"),
        (["--modes", "mixed"], {}, "mixed keeps the layers quantization.keep_float"),
        (["--modes", "optimized"], {}, "optimized prunes and clusters the weights"),
    ],
)
def test_bad_modes_exit_2_before_any_work(tmp_path, capsys, arguments, sections, fragment):
    path = write_config(tmp_path, small_config(tmp_path, **sections))
    assert main(["compare", str(path), *arguments]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode", HOST)
def test_build_refuses_host_modes(tmp_path, capsys, mode):
    config = small_config(tmp_path, quantization={"mode": mode})
    assert main(["build", str(write_config(tmp_path, config))]) == 2
    err = capsys.readouterr().err
    assert f"quantization.mode: {mode} is a host format" in err and "compare" in err
    assert not (tmp_path / "out").exists()


def test_build_and_compare_keep_each_other_s_results(tmp_path):
    path = write_config(tmp_path, small_config(tmp_path))
    folder = tmp_path / "out" / "small"
    assert main(["compare", str(path), "--modes", "float32"]) == 0
    compared = {
        suffix: (folder / f"small_compare.{suffix}").read_bytes()
        for suffix in ("json", "md", "html")
    }
    assert main(["build", str(path)]) == 0
    for suffix, content in compared.items():
        assert (folder / f"small_compare.{suffix}").read_bytes() == content, suffix
    assert (folder / "compare" / "float32" / "small_float32.tflite").is_file()
    built = (folder / "small.tflite").read_bytes()
    assert main(["compare", str(path), "--modes", "dynamic_range"]) == 0
    assert (folder / "small.tflite").read_bytes() == built
    assert not (folder / "compare" / "float32").exists()  # a comparison replaces the previous one
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    # 'report' renders the pages of both again from their JSON.
    pages = ("small_report.md", "small_report.html", "small_compare.md", "small_compare.html")
    rendered = {name: (folder / name).read_bytes() for name in pages}
    for name in pages:
        (folder / name).unlink()
    assert main(["report", str(folder)]) == 0
    assert {name: (folder / name).read_bytes() for name in pages} == rendered


def test_an_int16x8_build_runs_end_to_end(digits_model_weights, tmp_path):
    data = tmp_path / "digits"
    write_digits(data, range(1500, 1540))
    config = digits_config(tmp_path, digits_model_weights, data, holdout=10)
    config["quantization"] = {"mode": "int16x8"}
    assert main(["build", str(write_config(tmp_path, config))]) == 0
    folder = tmp_path / "out" / "small"
    info = json.loads((folder / "small_quantization_info.json").read_text())
    tflite = read_tflite((folder / "small.tflite").read_bytes())
    assert info["quantization"]["mode"] == "int16x8" and info["fully_quantized"]
    assert info["input"]["dtype"] == "int16" == tflite.inputs[0].dtype
    assert info["layer_errors"] is None  # measured for full_integer models
    assert info["fidelity"]["heads"]["digit"]["agreement_top1"] >= 0.9
    header = (folder / "small_model.h").read_text()
    assert "#define SMALL_MODEL_INPUT_BYTES 2048u" in header  # 32 x 32 x 1 int16


@pytest.mark.parametrize(
    ("quantization", "fragment"),
    [
        ({"mode": "int4"}, "quantization.mode: 'int4' is not a mode"),
        ({"mode": "int16x8", "keep_float": ["conv1"]}, "only a full_integer model keeps"),
        ({"mode": "int16x8", "int16": ["conv1"]}, "only a full_integer model gives single"),
        ({"int16": ["conv1"], "keep_float": ["conv1"]}, "conv1 also in quantization.keep_float"),
        ({"int16": [3]}, "quantization.int16[0]"),
        ({"keep_float": [""]}, "quantization.keep_float[0]"),
    ],
)
def test_bad_quantization_settings_exit_2(tmp_path, capsys, quantization, fragment):
    path = write_config(tmp_path, small_config(tmp_path, quantization=quantization))
    assert main(["build", str(path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_a_comparison_cut_short_while_publishing_is_restored(tmp_path):
    """Killed after moving the previous comparison aside: the next run puts it back first."""
    from generator.runs.publish import clear_debris

    old = tmp_path / "small" / ".compare-old"
    old.mkdir(parents=True)
    (old / "kept.txt").write_text("previous")
    clear_debris(tmp_path, "small")
    assert (tmp_path / "small" / "compare" / "kept.txt").read_text() == "previous"
    assert not old.exists()


def test_the_optimized_row_is_the_compressed_model_and_vela_encodes_it_smaller(
    digits_model_weights, tmp_path
):
    """`optimized` is full_integer of a clustered copy (4 values per kernel, no fine-tuning
    here): Vela's encoded weight bytes fall against the uncompressed row on every target, and
    its .tflite holds at most 4 int8 values per output channel of the backbone's kernels."""
    config = evaluated_digits_config(
        tmp_path, digits_model_weights, optimize={"clusters": {"*_logits": 0, "*": 4}, "epochs": 0}
    )
    path = write_config(tmp_path, config)
    assert main(["compare", str(path), "--modes", "full_integer,optimized"]) == 0
    out = tmp_path / "out" / config["name"]
    info = json.loads((out / f"{config['name']}_compare.json").read_text())
    rows = _rows(info)
    for key, plain in rows["full_integer"]["vela"].items():
        assert (
            rows["optimized"]["vela"][key]["encoded_weight_bytes"]
            < 0.6 * plain["encoded_weight_bytes"]
        )
    (tflite,) = (out / "compare" / "optimized").glob("*.tflite")
    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    convolutions = [
        op
        for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
    ]
    assert len(convolutions) == 27
    for op in convolutions:
        kernel = interpreter.get_tensor(op["inputs"][1])
        axis = 3 if op["op_name"] == "DEPTHWISE_CONV_2D" else 0
        channels = np.moveaxis(kernel, axis, 0).reshape(kernel.shape[axis], -1)
        assert max(len(np.unique(channel)) for channel in channels) <= 4
    assert "weights encoded" in (out / f"{config['name']}_compare.md").read_text()
