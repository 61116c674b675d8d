"""Every mistake in the user's input ends the same way: exit code 2, one line on stderr that
starts `error: ` and names the field or file (and the fix), no traceback, and nothing written
in the output folder. Most cases fail while the config is validated, before TensorFlow is
imported; model files and a few data cases need TensorFlow and run the build."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import PHOTOS, REPO, small_config, write_config
from PIL import Image

from generator.cli import main

PHOTO = PHOTOS / "astronaut_00.jpg"
HEADS = [{"name": "shape", "labels": ["round", "square"]}]
GOOD_ROWS = "img/0.png,round\nimg/1.png,square\n"


def bomb_png(path: Path, side: int = 20000) -> None:
    """A PNG whose header claims side×side pixels, with almost no data: what a decompression
    bomb looks like to a reader that trusts the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def truncated_jpeg(path: Path) -> None:
    data = PHOTO.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def config(tmp_path: Path, command: str = "validate", **sections) -> list[str]:
    return [command, str(write_config(tmp_path, small_config(tmp_path, **sections)))]


def raw_config(tmp_path: Path, content: str | bytes) -> list[str]:
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return ["build", str(path)]


def labelled(tmp_path: Path, manifest: str | bytes, field: str = "train", **section) -> list[str]:
    """`validate` with the `field` set labels.csv holding `manifest`, next to two good images;
    `section` adds keys to that section."""
    (tmp_path / "img").mkdir(exist_ok=True)
    for index in range(2):
        Image.new("L", (8, 8), index * 100).save(tmp_path / "img" / f"{index}.png")
    csv = tmp_path / "labels.csv"
    if isinstance(manifest, bytes):
        csv.write_bytes(manifest)
    else:
        csv.write_text(manifest)
    return config(tmp_path, model={"heads": HEADS}, **{field: {"data": str(csv), **section}})


def with_image(name: str, make: Callable[[Path], None], field: str = "train") -> Callable:
    """A labelled set listing a good image and `name`, which `make` writes."""

    def setup(tmp_path: Path) -> list[str]:
        (tmp_path / "img").mkdir()
        make(tmp_path / "img" / name)
        return labelled(tmp_path, f"path,shape\nimg/0.png,round\nimg/{name},square\n", field)

    return setup


def calibration_folder(*makers: tuple[str, Callable[[Path], None]]) -> Callable:
    """Calibration images that all fail to load: validate finds fewer than 2 usable."""

    def setup(tmp_path: Path) -> list[str]:
        folder = tmp_path / "images"
        folder.mkdir()
        for name, make in makers:
            make(folder / name)
        return config(tmp_path, calibration={"data": str(folder)})

    return setup


def with_file(name: str, content: bytes, **sections) -> Callable:
    """A build whose config names the file `name` (holding `content`) in `sections`."""

    def setup(tmp_path: Path) -> list[str]:
        (tmp_path / name).write_bytes(content)
        return config(tmp_path, "build", **sections)

    return setup


def symlink_loop_as_calibration_data(tmp_path: Path) -> list[str]:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return config(tmp_path, "build", calibration={"data": "loop"})


def file_where_the_build_goes(tmp_path: Path) -> list[str]:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "small").write_text("not a folder")
    return config(tmp_path, "build")


def validation_not_utf8(tmp_path: Path) -> list[str]:
    (tmp_path / "v.csv").write_bytes(b"path,shape\n\xe9.png,round\n")
    return labelled(tmp_path, "path,shape\n" + GOOD_ROWS, validation="v.csv")


def folders(*files: str, make: Callable[[Path], None] = lambda p: None) -> Callable:
    """A labelled set in the folder layout under set/, holding `files` written by `make`."""

    def setup(tmp_path: Path) -> list[str]:
        (tmp_path / "set").mkdir()
        for name in files:
            (tmp_path / "set" / name).parent.mkdir(parents=True, exist_ok=True)
            make(tmp_path / "set" / name)
        return config(tmp_path, model={"heads": HEADS}, train={"data": "set"})

    return setup


def heads_model(tmp_path: Path, name: str, make: Callable[[Path], None]) -> list[str]:
    """A build from the model file `name`, which `make` writes."""
    make(tmp_path / name)
    raw = small_config(tmp_path, model={"path": name})
    for key in ("backbone", "alpha", "input_shape", "heads"):
        del raw["model"][key]
    return ["build", str(write_config(tmp_path, raw))]


def keras_model(input_shape: tuple, conv: bool = True) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import keras

        image = keras.Input(input_shape)
        x = image
        if conv:
            x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=2)(x))
        keras.Model(image, keras.layers.Dense(2)(x)).save(path)

    return make


def zip_without_model(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


def write(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def symlink_loop(path: Path) -> None:
    path.symlink_to(path)


def float_tiff(path: Path) -> None:
    Image.fromarray(np.ones((8, 8), np.float32)).save(path)


def board(**changes) -> dict:
    spec = {
        "accelerator": "ethos-u55-128",
        "clock_mhz": 200,
        "sram": {"kib": 512, "mb_per_s": 800},
        "flash": {"kib": 512, "mb_per_s": 100},
    }
    return {"my_board": {**spec, **changes}}


def config_folder(tmp_path: Path) -> list[str]:
    (tmp_path / "dir.yaml").mkdir()
    return ["build", str(tmp_path / "dir.yaml")]


def labelled_build(tmp_path: Path, setup: Callable) -> list[str]:
    """`setup`'s validate run as a build: the set is then read after TensorFlow started."""
    return ["build", *setup(tmp_path)[1:]]


DIGITS_CSV = str(REPO / "representative_data" / "digits" / "train.csv")

# id -> (setup(tmp_path) -> argv, a fragment the error line must contain)
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # The config file itself
    "config missing": (lambda t: ["build", str(t / "none.yaml")], "none.yaml not found"),
    "config is a folder": (config_folder, "dir.yaml is a folder"),
    "config not UTF-8": (
        lambda t: raw_config(t, yaml.safe_dump(small_config(t)).encode() + b"# caf\xe9\n"),
        "config.yaml: not UTF-8",
    ),
    "config binary": (lambda t: raw_config(t, b"\x89PNG\r\n\x1a\n\0\0"), "not UTF-8"),
    "config empty": (lambda t: raw_config(t, ""), "model.heads: give one or more heads"),
    "config a list": (lambda t: raw_config(t, "- a\n- b\n"), "top level must be a mapping"),
    "config a scalar": (lambda t: raw_config(t, "hello\n"), "top level must be a mapping"),
    "YAML syntax": (lambda t: raw_config(t, "model: [1, 2\n"), "not valid YAML at line 2"),
    "YAML tab indent": (lambda t: raw_config(t, "model:\n\talpha: 1\n"), "not valid YAML"),
    "key given twice": (
        lambda t: raw_config(t, yaml.safe_dump(small_config(t), sort_keys=False) + "name: again\n"),
        "key 'name' given twice",
    ),
    # Fields with a wrong type or value
    "name a number": (lambda t: config(t, "build", name=123), "name: expected a string"),
    "name too long": (lambda t: config(t, "build", name="a" * 300), "at most 100"),
    "name with a space": (lambda t: config(t, "build", name="my model"), "name: 'my model'"),
    "unknown key": (lambda t: config(t, "build", modle={}), "did you mean 'model'"),
    "alpha a bool": (lambda t: config(t, "build", model={"alpha": True}), "model.alpha: expected"),
    "alpha a string": (lambda t: config(t, "build", model={"alpha": "0.5"}), "model.alpha"),
    "alpha NaN": (lambda t: config(t, "build", model={"alpha": float("nan")}), "model.alpha"),
    "alpha inf": (lambda t: config(t, "build", model={"alpha": float("inf")}), "model.alpha"),
    "alpha zero": (lambda t: config(t, "build", model={"alpha": 0}), "model.alpha: 0.0 is out"),
    "alpha negative": (lambda t: config(t, "build", model={"alpha": -1}), "model.alpha"),
    "alpha huge": (lambda t: config(t, "build", model={"alpha": 1e300}), "model.alpha"),
    "alpha below v1's 1/32": (
        lambda t: config(t, "build", model={"alpha": 0.01}),
        "model.alpha: 0.01 gives mobilenet_v1 convolutions with no filters",
    ),
    "backbone unknown": (
        lambda t: config(t, "build", model={"backbone": "resnet"}),
        "model.backbone",
    ),
    "input_shape a string": (
        lambda t: config(t, "build", model={"input_shape": "96x96x3"}),
        "model.input_shape: expected a list",
    ),
    "input_shape floats": (
        lambda t: config(t, "build", model={"input_shape": [96.0, 96, 3]}),
        "model.input_shape",
    ),
    "input_shape negative": (
        lambda t: config(t, "build", model={"input_shape": [-96, 96, 3]}),
        "model.input_shape",
    ),
    "input_shape a bool": (
        lambda t: config(t, "build", model={"input_shape": [True, 96, 3]}),
        "model.input_shape",
    ),
    "input_shape 4 channels": (
        lambda t: config(t, "build", model={"input_shape": [96, 96, 4]}),
        "model.input_shape",
    ),
    "input_shape too large for memory": (
        lambda t: config(t, "build", model={"input_shape": [20000, 20000, 3]}),
        "model.input_shape: [20000, 20000, 3] needs an estimated",
    ),
    "heads a mapping": (
        lambda t: config(t, "build", model={"heads": {"name": "a"}}),
        "model.heads: expected a list",
    ),
    "head a string": (
        lambda t: config(t, "build", model={"heads": ["a"]}),
        "model.heads[0]: a head is a mapping",
    ),
    "head names repeated": (
        lambda t: config(t, "build", model={"heads": [{"name": "a", "num_classes": 2}] * 2}),
        "model.heads: head names must be unique; repeated: a",
    ),
    "num_classes a bool": (
        lambda t: config(t, "build", model={"heads": [{"name": "a", "num_classes": True}]}),
        "model.heads[0].num_classes",
    ),
    "num_classes zero": (
        lambda t: config(t, "build", model={"heads": [{"name": "a", "num_classes": 0}]}),
        "num_classes >= 2",
    ),
    "num_classes huge": (
        lambda t: config(t, "build", model={"heads": [{"name": "a", "num_classes": 10**9}]}),
        "fewer classes",
    ),
    "labels as yes/no booleans": (
        lambda t: config(t, "build", model={"heads": [{"name": "a", "labels": [True, False]}]}),
        "model.heads[0].labels: True is a boolean",
    ),
    "label null": (
        lambda t: config(t, "build", model={"heads": [{"name": "a", "labels": ["x", None]}]}),
        "model.heads[0].labels",
    ),
    "seed negative": (lambda t: config(t, "build", model={"seed": -1}), "model.seed: -1"),
    "seed huge": (lambda t: config(t, "build", model={"seed": 2**70}), "model.seed"),
    "weights missing": (
        lambda t: config(t, "build", model={"weights": "none.weights.h5"}),
        "model.weights",
    ),
    "weights not .weights.h5": (
        with_file("w.h5", b"x", model={"weights": "w.h5"}),
        "model.weights: w.h5 is not a .weights.h5 file",
    ),
    "model.path with backbone": (
        with_file("m.keras", b"x", model={"path": "m.keras"}),
        "model.backbone: a model file brings its own architecture",
    ),
    "model.path missing": (
        lambda t: heads_model(t, "m.keras", lambda p: None),
        "m.keras not found",
    ),
    "model.path not .keras": (
        lambda t: heads_model(t, "m.h5", write(b"x")),
        "model.path: m.h5 is not a .keras file",
    ),
    "calibration.data a file": (
        lambda t: config(t, "build", calibration={"data": str(PHOTO)}),
        "calibration.data: " + str(PHOTO) + " is a file",
    ),
    "calibration.data missing": (
        lambda t: config(t, "build", calibration={"data": "nowhere"}),
        "calibration.data: folder",
    ),
    "calibration.data with NUL": (
        lambda t: config(t, "build", calibration={"data": "a\0b"}),
        "calibration.data: 'a\\x00b' is not a usable path",
    ),
    "calibration.data name too long": (
        lambda t: config(t, "build", calibration={"data": "x" * 5000}),
        "calibration.data",
    ),
    "calibration.data symlink loop": (symlink_loop_as_calibration_data, "calibration.data: "),
    "samples zero": (
        lambda t: config(t, "build", calibration={"samples": 0}),
        "calibration.samples",
    ),
    "samples a bool": (
        lambda t: config(t, "build", calibration={"samples": True}),
        "calibration.samples",
    ),
    "samples beyond int32": (
        lambda t: config(t, "build", calibration={"samples": 10**12}),
        "calibration.samples",
    ),
    "input_range inf": (
        lambda t: config(t, "build", calibration={"input_range": [0, float("inf")]}),
        "calibration.input_range",
    ),
    "input_range -inf": (
        lambda t: config(t, "build", calibration={"input_range": [float("-inf"), 0]}),
        "calibration.input_range",
    ),
    "input_range NaN": (
        lambda t: config(t, "build", calibration={"input_range": [float("nan"), 1]}),
        "calibration.input_range",
    ),
    "input_range booleans": (
        lambda t: config(t, "build", calibration={"input_range": [False, True]}),
        "calibration.input_range",
    ),
    "io_dtype a number": (
        lambda t: config(t, "build", quantization={"io_dtype": 8}),
        "quantization.io_dtype",
    ),
    "per_channel a string": (
        lambda t: config(t, "build", quantization={"per_channel": "yes"}),
        "quantization.per_channel",
    ),
    "targets a mapping": (
        lambda t: config(t, "build", vela={"targets": {"accelerator": "ethos-u55-128"}}),
        "vela.targets",
    ),
    "board clock NaN": (
        lambda t: config(
            t,
            "build",
            vela={"targets": [{"board": "my_board"}]},
            boards=board(clock_mhz=float("nan")),
        ),
        "boards.my_board.clock_mhz",
    ),
    "board SRAM NaN": (
        lambda t: config(
            t,
            "build",
            vela={"targets": [{"board": "my_board"}]},
            boards=board(sram={"kib": float("nan"), "mb_per_s": 800}),
        ),
        "boards.my_board.sram.kib: expected a finite number",
    ),
    "board clock inf": (
        lambda t: config(
            t,
            "build",
            vela={"targets": [{"board": "my_board"}]},
            boards=board(clock_mhz=float("inf")),
        ),
        "boards.my_board.clock_mhz",
    ),
    "learning_rate NaN": (
        lambda t: config(t, "build", train={"data": DIGITS_CSV, "learning_rate": float("nan")}),
        "train.learning_rate",
    ),
    "batch_size too large for memory": (
        lambda t: config(
            t,
            "build",
            model={"input_shape": [224, 224, 3], "alpha": 1.0},
            train={"data": DIGITS_CSV, "batch_size": 1024},
        ),
        "train.batch_size: 1024 at input 224×224×3 needs an estimated",
    ),
    "loss weight inf": (
        lambda t: config(
            t, "build", train={"data": DIGITS_CSV, "loss_weights": {"object": float("inf")}}
        ),
        "train.loss_weights.object: inf must be a finite number >= 0",
    ),
    "validation a bool": (
        lambda t: config(t, "build", train={"data": DIGITS_CSV, "validation": True}),
        "train.validation",
    ),
    "train seed negative": (
        lambda t: config(t, "build", train={"data": DIGITS_CSV, "seed": -3}),
        "train.seed: -3",
    ),
    "train without data": (
        lambda t: config(t, "build", train={"epochs": 3}),
        "train.data: give a labelled set",
    ),
    "train.data missing": (
        lambda t: config(t, "build", train={"data": "none.csv"}),
        "none.csv not found",
    ),
    "evaluation.data missing": (
        lambda t: config(t, "build", evaluation={"data": "none"}),
        "none not found: give a folder <head>/<class>/ or a .csv file",
    ),
    "train.data a text file": (
        with_file("d.txt", b"x", train={"data": "d.txt"}),
        "d.txt is neither a folder nor a .csv file",
    ),
    # Output folder
    "output.dir a file": (
        lambda t: config(t, "build", output={"dir": str(PHOTO)}),
        "output.dir: " + str(PHOTO) + " is a file",
    ),
    "output.dir under a file": (
        lambda t: config(t, "build", output={"dir": str(PHOTO / "out")}),
        "output.dir: cannot create",
    ),
    "--output-dir a file": (
        lambda t: [*config(t, "build"), "--output-dir", str(PHOTO)],
        "--output-dir: " + str(PHOTO) + " is a file",
    ),
    "output.dir/name a file": (
        file_where_the_build_goes,
        "is a file where the build's folder goes",
    ),
    # --set
    "--set without =": (lambda t: [*config(t, "build"), "--set", "model.alpha"], "--set"),
    "--set empty key": (lambda t: [*config(t, "build"), "--set", "=3"], "--set"),
    "--set past a list": (
        lambda t: [*config(t, "build"), "--set", "model.heads.7.name=x"],
        "--set model.heads.7: use an index from 0 to 1",
    ),
    "--set negative index": (
        lambda t: [*config(t, "build"), "--set", "model.heads.-1.name=x"],
        "--set model.heads.-1",
    ),
    "--set into an empty list": (
        lambda t: [*config(t, "build"), "--set", "vela.targets=[]", "--set", "vela.targets.0.x=1"],
        "--set vela.targets.0: the list is empty",
    ),
    "--set into a value": (
        lambda t: [*config(t, "build"), "--set", "name.x=1"],
        "--set name.x: name is not a section",
    ),
    "--set bad YAML": (
        lambda t: [*config(t, "build"), "--set", "model.alpha=[1"],
        "--set 'model.alpha=[1'",
    ),
    "--set empty part": (
        lambda t: [*config(t, "build"), "--set", "model..alpha=1"],
        "--set model..alpha",
    ),
    # Calibration images: unreadable ones are skipped; none usable is an error
    "calibration images all unreadable": (
        calibration_folder(
            ("empty.png", write(b"")),
            ("corrupt.jpg", write(b"\xff\xd8 not a jpeg")),
            ("truncated.jpg", truncated_jpeg),
            ("bomb.png", bomb_png),
            ("float.tif", float_tiff),
            ("loop.png", symlink_loop),
        ),
        "calibration.data: ",
    ),
    # Labelled sets
    "csv empty": (lambda t: labelled(t, ""), "labels.csv is empty: its first line must be"),
    "csv header only": (lambda t: labelled(t, "path,shape\n"), "train.data: no labelled images"),
    "csv missing column": (lambda t: labelled(t, "path\nimg/0.png\n"), "(missing: shape)"),
    "csv repeated column": (
        lambda t: labelled(t, "path,shape,shape\nimg/0.png,round,round\n"),
        "repeats the column 'shape'",
    ),
    "csv blank path": (
        lambda t: labelled(t, "path,shape\n" + GOOD_ROWS + ",round\n"),
        "labels.csv row 4 has no path",
    ),
    "csv short row without path": (
        lambda t: labelled(t, "shape,path\nround,img/0.png\nsquare\n"),
        "labels.csv row 3 has no path",
    ),
    "csv path missing": (
        lambda t: labelled(t, "path,shape\n" + GOOD_ROWS + "img/9.png,round\n"),
        "9.png does not exist",
    ),
    "csv path a folder": (
        lambda t: labelled(t, "path,shape\n" + GOOD_ROWS + "img,round\n"),
        "img is a folder, not an image",
    ),
    "csv not UTF-8": (
        lambda t: labelled(
            t, "path,shape\nimg/0.png,round\nimg/1.png,squar\xe9\n".encode("latin-1")
        ),
        "labels.csv is not UTF-8 text",
    ),
    "csv a PNG": (lambda t: labelled(t, PHOTO.read_bytes()), "labels.csv is not UTF-8"),
    "csv label not configured": (
        lambda t: labelled(t, "path,shape\nimg/0.png,round\nimg/1.png,oval\n"),
        "head 'shape' has classes ['oval', 'round'] in the data",
    ),
    "csv decompression bomb": (with_image("bomb.png", bomb_png), "bomb.png is too large"),
    "csv corrupt image": (
        with_image("bad.png", write(b"\x89PNG\r\n\x1a\nxx")),
        "bad.png is not an image Pillow can read",
    ),
    "csv zero-byte image": (with_image("zero.png", write(b"")), "zero.png is not an image"),
    "csv truncated JPEG": (with_image("cut.jpg", truncated_jpeg), "cut.jpg cannot be decoded"),
    "csv float image": (with_image("f.tif", float_tiff), "f.tif has floating-point pixels"),
    "csv symlink loop": (with_image("loop.png", symlink_loop), "loop.png cannot be decoded"),
    "evaluation bomb": (
        with_image("bomb.png", bomb_png, field="evaluation"),
        "evaluation.data: image",
    ),
    "validation set not UTF-8": (validation_not_utf8, "train.validation: "),
    "folder layout: head not configured": (
        folders("colour/red/a.png", make=lambda p: Image.new("L", (8, 8)).save(p)),
        "has folders colour that name no head",
    ),
    "folder layout: no images": (folders(), "train.data: no labelled images"),
    "folder layout: bomb": (
        folders("shape/round/b.png", "shape/square/c.png", make=bomb_png),
        "b.png is too large",
    ),
}

# Cases that need TensorFlow: the build stage reads the model file or the weights, or the
# training stage reads its labelled set.
TF_CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "model file corrupt": (
        lambda t: heads_model(t, "m.keras", write(b"garbage" * 50)),
        "m.keras is not a Keras archive",
    ),
    "model file a zip but no model": (
        lambda t: heads_model(t, "m.keras", zip_without_model),
        "m.keras is a zip file but no Keras model",
    ),
    "model file not an image model": (
        lambda t: heads_model(t, "m.keras", keras_model((4,), conv=False)),
        "model.path: input shape (4,)",
    ),
    "model file input too large for memory": (
        lambda t: heads_model(t, "m.keras", keras_model((20000, 20000, 3))),
        "model.path: m.keras (input 20000×20000×3) needs an estimated",
    ),
    "weights corrupt": (
        with_file("w.weights.h5", b"garbage" * 50, model={"weights": "w.weights.h5"}),
        "w.weights.h5 is not an HDF5 file",
    ),
    "train.data bomb, in the build": (
        lambda t: labelled_build(t, with_image("bomb.png", bomb_png)),
        "train.data: image",
    ),
}


def error_line(stderr: str, progress_allowed: bool) -> str:
    """The one `error:` line; with `progress_allowed`, after the build's progress lines."""
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    if progress_allowed:
        assert all(line.startswith(("generator ", "[")) for line in lines[:-1]), lines
    else:
        assert len(lines) == 1, lines
    assert lines[-1].startswith("error: "), lines
    return lines[-1]


def written(folder: Path) -> list[str]:
    return (
        sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
        if folder.exists()
        else []
    )


def run_case(tmp_path, capsys, setup, fragment, progress_allowed=False) -> None:
    argv = setup(tmp_path)
    before = written(tmp_path / "out")
    assert main(argv) == 2
    line = error_line(capsys.readouterr().err, progress_allowed)
    assert fragment in line, line
    assert written(tmp_path / "out") == before


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys, case):
    setup, fragment = CASES[case]
    run_case(tmp_path, capsys, setup, fragment)


@pytest.mark.parametrize("case", TF_CASES)
def test_bad_model_files_and_data_fail_the_build_in_one_line(tmp_path, capsys, case):
    setup, fragment = TF_CASES[case]
    run_case(tmp_path, capsys, setup, fragment, progress_allowed=True)


@pytest.mark.parametrize("case", ["--output-dir a file", "csv decompression bomb"])
def test_real_process_exits_2_without_traceback(tmp_path, case):
    setup, fragment = CASES[case]
    argv = setup(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "generator", *argv], capture_output=True, text=True, cwd=REPO
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert fragment in error_line(run.stderr, progress_allowed=False)
    assert written(tmp_path / "out") == []


def test_model_file_refused_by_a_real_build_without_traceback(tmp_path):
    argv = heads_model(tmp_path, "m.keras", zip_without_model)
    run = subprocess.run(
        [sys.executable, "-m", "generator", *argv], capture_output=True, text=True, cwd=REPO
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "m.keras is a zip file but no Keras model" in error_line(run.stderr, True)
    assert written(tmp_path / "out") == []


def test_things_that_are_fine_still_validate(tmp_path, capsys):
    """16-bit greyscale, CMYK JPEG, palette with transparency, RGBA, animated GIF and a
    BOM-prefixed CSV are no mistakes: they load."""
    folder = tmp_path / "img"
    folder.mkdir()
    rgb = np.asarray(Image.open(PHOTO).convert("RGB").resize((40, 40)))
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "g16.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png", transparency=0)
    Image.fromarray(rgb).convert("RGBA").save(folder / "rgba.png")
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    names = ["g16.png", "cmyk.jpg", "palette.png", "rgba.png", "anim.gif"]
    rows = "".join(f"img/{name},{'round' if i % 2 else 'square'}\n" for i, name in enumerate(names))
    (tmp_path / "labels.csv").write_text("\ufeffpath,shape\n" + rows)
    argv = config(
        tmp_path,
        model={"heads": HEADS},
        calibration={"data": str(folder)},
        train={"data": "labels.csv"},
    )
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "5 image files" in out and "train.data: 5 images" in out
