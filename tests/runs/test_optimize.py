"""End to end: `optimize` and `model.depth` in real builds, checked on the artifacts.

The promises are read back independently of the generator: the weights from the .tflite
through LiteRT's interpreter, Vela's encoded bytes from its own summary CSV.
"""

import csv
import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from conftest import REPO, digits_config, write_config, write_digits

from generator.cli import main

DIGITS_CSV = REPO / "representative_data" / "digits" / "train.csv"


def _build(folder, config: dict) -> tuple:
    assert main(["build", str(write_config(folder, config, f"{config['name']}.yaml"))]) == 0
    out = folder / "out" / config["name"]
    info = json.loads((out / f"{config['name']}_quantization_info.json").read_text())
    return out, info


def _weights_by_channel(tflite_path) -> dict[str, list[np.ndarray]]:
    """Every int8 weight tensor of a convolution or dense layer, split by output channel, by
    tensor name, read through LiteRT."""
    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    kernels = {}
    for op in interpreter._get_ops_details():
        axis = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}.get(op["op_name"])
        if axis is None:
            continue
        index = op["inputs"][1]
        weights = interpreter.get_tensor(index)
        assert weights.dtype == np.int8
        name = interpreter.get_tensor_details()[index]["name"]
        kernels[name] = list(np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1))
    return kernels


def _encoded_bytes(out, name: str) -> int:
    (summary,) = (out / "vela" / "ethos-u55-128").glob(f"{name}_summary_*.csv")
    with summary.open() as handle:
        (row,) = csv.DictReader(handle)
    return int(float(row["total_npu_encoded_weights"]))


@pytest.fixture(scope="module")
def trained_and_compressed(digits_model_weights, tmp_path_factory):
    """The trained digits model built as it is, and with 8 values and half zeros per kernel
    (heads left whole), without fine-tuning."""
    folder = tmp_path_factory.mktemp("compressed")
    data = folder / "digits"
    write_digits(data, range(1500, 1540))
    plain = digits_config(folder, digits_model_weights, data, holdout=10)
    plain["name"] = "plain"
    compressed = {
        **plain,
        "name": "compressed",
        "optimize": {
            "clusters": {"*_logits": 0, "*": 8},
            "sparsity": 0.5,
            "sparsity_layers": ["conv_*"],
            "epochs": 0,
        },
    }
    return _build(folder, plain), _build(folder, compressed)


def test_every_compressed_kernel_holds_at_most_k_values_per_channel_in_the_tflite(
    trained_and_compressed,
):
    _, (out, info) = trained_and_compressed
    kernels = _weights_by_channel(out / "compressed.tflite")
    clustered = [name for name in kernels if "logits" not in name]
    assert len(clustered) == 27  # every convolution of MobileNetV1
    for name in clustered:
        assert max(len(np.unique(channel)) for channel in kernels[name]) <= 8, name
        zeros = np.mean(np.concatenate(kernels[name]) == 0)
        pruned = "conv_dw" in name or "conv_pw" in name
        assert zeros >= (0.49 if pruned else 0.0), name
    heads = [name for name in kernels if "logits" in name]
    assert heads and all(max(len(np.unique(c)) for c in kernels[h]) > 8 for h in heads)
    # the record says what the artifact holds
    recorded = {layer["layer"]: layer for layer in info["optimize"]["layers"]}
    assert len(recorded) == 27 and all(r["values_per_channel"] <= 8 for r in recorded.values())
    assert recorded["conv_pw_13"]["zeros"] >= 0.5 and recorded["conv1"]["sparsity"] == 0.0


def test_vela_encodes_the_compressed_weights_in_fewer_bytes(trained_and_compressed):
    (plain_out, plain), (out, info) = trained_and_compressed
    before, after = _encoded_bytes(plain_out, "plain"), _encoded_bytes(out, "compressed")
    assert after < 0.6 * before
    target = info["vela"]["ethos-u55-128"]
    assert target["encoded_weight_bytes"] == after
    assert plain["vela"]["ethos-u55-128"]["encoded_weight_bytes"] == before
    assert target["inference_time_ms"] < plain["vela"]["ethos-u55-128"]["inference_time_ms"]
    report = (out / "compressed_report.md").read_text()
    assert "## Weights for the NPU" in report and "Not fine-tuned" in report


def test_fine_tuning_and_qat_keep_the_clusters_of_a_shortened_backbone(tmp_path):
    """Trained, ended after stage 4, clustered to 4 values and fine-tuned with the uncompressed
    model as teacher, then quantization-aware trained: the .tflite still holds at most 4 values
    per output channel, and the report says what was done."""
    data = tmp_path / "digits"
    write_digits(data, range(1500, 1540))
    config = digits_config(tmp_path, "unused", data, holdout=10)
    model = {k: v for k, v in config["model"].items() if k != "weights"}
    config |= {
        "name": "tuned",
        "model": {**model, "depth": 4},
        "train": {
            "data": str(DIGITS_CSV),
            "epochs": 1,
            "validation": 0.5,
            "qat": {"epochs": 1},
            "loss_weights": {},
        },
        "optimize": {"clusters": 4, "epochs": 1},
    }
    config["model"]["heads"] = [
        {"name": "digit", "num_classes": 10},
        {"name": "parity", "labels": ["even", "odd"]},
        {"name": "high", "labels": ["low", "high"]},
    ]
    out, info = _build(tmp_path, config)
    kernels = _weights_by_channel(out / "tuned.tflite")
    assert not any("conv_pw_12" in name or "conv_dw_12" in name for name in kernels)
    for name, channels in kernels.items():
        assert max(len(np.unique(channel)) for channel in channels) <= 4, name
    assert info["model"]["depth"] == "conv_pw_11" and info["model"]["output_stride"] == 8
    tuning = info["optimize"]["fine_tuning"]
    assert tuning["teacher"] == "the uncompressed model" and tuning["epochs_run"] == 1
    assert info["training"]["qat"]["epochs_run"] == 1
    assert "ended after conv_pw_11" in (out / "tuned_report.md").read_text()
