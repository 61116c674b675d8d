"""Shared fixtures: small configs on the repo's real photos, and a model trained on digits."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "representative_data" / "photos"
CHROMIUM = shutil.which("chromium")

# The runtime that stands for a Cortex-M on this machine: TFLite Micro where its wheel is
# installed, else LiteRT's reference kernels (generator/engines/micro.py). CI runs the build,
# compare and report tests once more without tflite-micro.
TFLM_INSTALLED = importlib.util.find_spec("tflite_micro") is not None
MICRO = "tflite_micro" if TFLM_INSTALLED else "litert_reference"
needs_tflm = pytest.mark.skipif(not TFLM_INSTALLED, reason="tflite-micro is not installed")


def micro_by_hand(content: bytes, feed: np.ndarray) -> list[np.ndarray]:
    """Raw outputs by position, each (N, ...), of MICRO on `feed` (N, H, W, C), run directly
    through the runtime's own API rather than the generator's adapters."""
    raw = []
    if TFLM_INSTALLED:
        from tflite_micro import runtime

        from generator.engines.tflite_file import read_tflite

        interpreter = runtime.Interpreter.from_bytes(content)
        outputs = len(read_tflite(content).outputs)
        for sample in feed:
            interpreter.set_input(sample[None], 0)
            interpreter.invoke()
            raw.append([interpreter.get_output(i)[0] for i in range(outputs)])
    else:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        interpreter = Interpreter(
            model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_REF
        )
        interpreter.allocate_tensors()
        (model_input,) = interpreter.get_input_details()
        details = interpreter.get_output_details()
        for sample in feed:
            interpreter.set_tensor(model_input["index"], sample[None])
            interpreter.invoke()
            raw.append([interpreter.get_tensor(d["index"])[0] for d in details])
    return [np.stack(values) for values in zip(*raw, strict=True)]


def small_config(tmp_path: Path, **sections) -> dict:
    """A fast config: 32×32 input, few images, output under tmp_path. Sections override."""
    config = {
        "name": "small",
        "model": {
            "backbone": "mobilenet_v1",
            "alpha": 0.25,
            "input_shape": [32, 32, 3],
            "heads": [
                {"name": "object", "labels": ["person", "vehicle", "animal"]},
                {"name": "light", "num_classes": 2},
            ],
        },
        "calibration": {"data": str(PHOTOS), "samples": 16, "holdout": 8},
        "vela": {"targets": [{"accelerator": "ethos-u55-128"}]},
        "output": {"dir": str(tmp_path / "out")},
    }
    for key, value in sections.items():
        config[key] = value if not isinstance(value, dict) else {**config.get(key, {}), **value}
    return config


def write_config(tmp_path: Path, config: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def digit_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits as uint8 (N, size, size, 1), and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.stack(
        [
            np.asarray(
                Image.fromarray((image * 255 / 16).astype(np.uint8)).resize(
                    (size, size), Image.Resampling.BILINEAR
                )
            )
            for image in digits.images
        ]
    )
    return pixels[..., None], digits.target


def write_digits(folder, rows: range, parity_every: int = 0) -> None:
    """Digits `rows` as PNGs in `folder`, with a labels.csv (`path,digit,parity`); with
    `parity_every`, every such row has no parity label."""
    pixels, labels = digit_images()
    folder.mkdir()
    lines = ["path,digit,parity"]
    for index in rows:
        Image.fromarray(pixels[index, :, :, 0]).save(folder / f"{index}.png")
        missing = parity_every and index % parity_every == 0
        parity = "" if missing else ("odd" if labels[index] % 2 else "even")
        lines.append(f"{index}.png,{labels[index]},{parity}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def digits_config(tmp_path, weights, data, holdout: int, **sections) -> dict:
    """The small config for the trained digits model, calibrated on `data`."""
    heads = [{"name": "digit", "num_classes": 10}, {"name": "parity", "labels": ["even", "odd"]}]
    return small_config(
        tmp_path,
        model={"input_shape": [32, 32, 1], "heads": heads, "weights": str(weights)},
        calibration={"data": str(data), "samples": 30, "holdout": holdout},
        **sections,
    )


def evaluated_digits_config(folder, weights, **sections) -> dict:
    """The trained digits model's config, calibrated and evaluated on 60 held-out digits written
    to `folder/digits`."""
    data = folder / "digits"
    write_digits(data, range(1500, 1560))
    evaluation = {"data": str(data / "labels.csv")}
    return digits_config(folder, weights, data, holdout=10, evaluation=evaluation, **sections)


@pytest.fixture(scope="session")
def digits_model_weights(tmp_path_factory) -> Path:
    """Weights of a MobileNetV1 α0.25 32×32×1 with heads digit (10) and parity (2), trained
    for 5 epochs on the first 1,500 digits (about 80% held-out digit accuracy)."""
    import keras

    from generator.model.build import build_model

    pixels, labels = digit_images()
    model = build_model(digits_model_config(), batch_size=None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # short training: let the moving statistics catch up
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"digit": loss, "parity": loss})
    x = pixels[:1500].astype(np.float32) / 255
    model.fit(
        x,
        {"digit": labels[:1500], "parity": labels[:1500] % 2},
        epochs=5,
        batch_size=32,
        verbose=0,
    )
    path = tmp_path_factory.mktemp("digits") / "digits.weights.h5"
    model.save_weights(path)
    return path


def digits_model_config(weights: Path | None = None):
    from generator.config.schema import Head, ModelConfig

    heads = (Head("digit", 10, None), Head("parity", 2, ("even", "odd")))
    return ModelConfig(
        backbone="mobilenet_v1",
        alpha=0.25,
        input_shape=(32, 32, 1),
        heads=heads,
        weights=weights,
        seed=0,
    )


def digits_output_sqnr(model, content: bytes, pixels: np.ndarray) -> float:
    """The lower of the two heads' SQNR of the digits model's .tflite in TFLite Micro against
    the Keras `model`, on `pixels`."""
    from generator.analysis.logits import dequantize, float_logits, sqnr_db
    from generator.analysis.verify import integer_outputs
    from generator.engines.tflite_file import read_tflite

    tflite = read_tflite(content)
    heads = digits_model_config().heads
    raw = integer_outputs(
        content=content, tflite=tflite, pixels=pixels, heads=heads, input_range=(0.0, 1.0)
    )[MICRO]
    expected = float_logits(model, pixels, (0.0, 1.0))
    actual = dequantize(raw, tflite)
    return min(sqnr_db(expected[h.name], actual[h.name]) for h in heads)


@pytest.fixture(scope="session")
def small_tflite():
    """`small_tflite(backbone)`: a 32×32×3 two-head model of that backbone, quantized on the
    repo's photos (cached for the session, as bytes)."""
    from generator.config.schema import CalibrationConfig, Head, ModelConfig, QuantizationConfig
    from generator.data.calibration import load_calibration_set
    from generator.model.build import build_model
    from generator.quantization.convert import convert_to_tflite

    cache: dict[str, bytes] = {}

    def convert(backbone: str) -> bytes:
        if backbone not in cache:
            heads = (Head("object", 3, None), Head("light", 2, None))
            model = build_model(
                ModelConfig(
                    backbone=backbone,
                    alpha=0.25,
                    input_shape=(32, 32, 3),
                    heads=heads,
                    weights=None,
                    seed=0,
                )
            )
            calibration = CalibrationConfig(
                data=PHOTOS, samples=16, holdout=1, input_range=(0.0, 1.0)
            )
            images = load_calibration_set(calibration, (32, 32, 3), 0)
            cache[backbone] = convert_to_tflite(
                model,
                images.calibration,
                (0.0, 1.0),
                QuantizationConfig(io_dtype="uint8", per_channel=True),
                heads=[h.name for h in heads],
            )
        return cache[backbone]

    return convert


@pytest.fixture(scope="session")
def demo_sized_build(tmp_path_factory) -> Path:
    """The demo's own config (three heads trained on the digits, evaluated, two boards), built
    with 3 epochs and fewer calibration images so that it takes seconds: every section of the
    report has its data. Returns the build's output folder."""
    from generator.cli import main

    out = tmp_path_factory.mktemp("demo_sized")
    overrides = ["train.epochs=3", "calibration.samples=30", "calibration.holdout=10"]
    arguments = ["build", str(REPO / "configs" / "default.yaml"), "--output-dir", str(out)]
    assert main(arguments + [f"--set={value}" for value in overrides]) == 0
    return out / "default"


@pytest.fixture(scope="session")
def comparison(digits_model_weights, tmp_path_factory):
    """A comparison of the five post-training modes of the trained digits model, for a U55 and a
    U85, scored on 60 labelled digits: `(folder, the compare JSON's dictionary, the digits'
    folder)`. Session-scoped: `compare`'s tests and the HTML page's share one run."""
    import json

    from generator.cli import main

    tmp_path = tmp_path_factory.mktemp("compare")
    data = tmp_path / "digits"
    config = evaluated_digits_config(
        tmp_path,
        digits_model_weights,
        vela={"targets": [{"accelerator": "ethos-u55-128"}, {"accelerator": "ethos-u85-256"}]},
    )
    modes = "full_integer,int16x8,dynamic_range,float16,float32"
    assert main(["compare", str(write_config(tmp_path, config)), "--modes", modes]) == 0
    folder = tmp_path / "out" / "small"
    return folder, json.loads((folder / "small_compare.json").read_text()), data


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (.ci/run installs it with apt-get; Playwright "
    "downloads no browser of its own here)",
)


def open_in_chromium(page_path, screenshot) -> tuple[str, int]:
    """Open the page offline in headless Chromium: its text (white space made one space) and
    its number of SVG figures, after checking that it logged no error and requested nothing
    but itself; a full-page screenshot goes to `screenshot`."""
    from playwright.sync_api import sync_playwright

    errors, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.as_uri(), wait_until="load")
            text = re.sub(r"\s+", " ", page.inner_text("body"))
            svgs = page.locator("svg").count()
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requests == [page_path.as_uri()]  # the page itself, nothing else
    return text, svgs
