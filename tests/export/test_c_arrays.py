"""Firmware deliverables end to end: one real build for every board preset, a custom board and a
plain accelerator; its C arrays compiled with the system C compiler and checked by a C program."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, small_config, write_config

from generator.config.boards import preset_boards
from generator.engines.tflite_file import read_tflite

LABELS = ["person", 'say "hi"', "café"]  # a quote and UTF-8 must survive as C strings
CUSTOM = {
    "tiny": {
        "accelerator": "ethos-u55-32",
        "clock_mhz": 100,
        "sram": {"kib": 64, "mb_per_s": 400},
        "flash": {"kib": 512, "mb_per_s": 25},
    }
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], capture_output=True, text=True, cwd=REPO
    )


def firmware_config(folder, **sections) -> dict:
    targets = [{"board": name} for name in [*preset_boards(), "tiny"]]
    return small_config(
        folder,
        model={
            "heads": [
                {"name": "object", "labels": LABELS},
                {"name": "light", "num_classes": 2},
            ]
        },
        vela={"targets": [*targets, {"accelerator": "ethos-u55-128"}]},
        boards=CUSTOM,
        output={"dir": str(folder / "out"), "c_array": {"section": ".nn_model"}},
        **sections,
    )


@pytest.fixture(scope="module")
def board_build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("boards")
    run = run_cli("build", str(write_config(folder, firmware_config(folder))))
    assert run.returncode == 0, run.stderr
    out = folder / "out" / "small"
    return out, json.loads((out / "small_quantization_info.json").read_text()), run


def test_every_preset_compiles_with_its_own_system_config(board_build):
    out, info, _ = board_build
    clocks = {"alif_e7_hp": 400, "alif_e7_he": 160, "himax_we2": 400, "tiny": 100}
    for name, board in [*preset_boards().items(), ("tiny", None)]:
        vela = info["vela"][name]
        assert vela["board"] == name
        assert vela["cpu_operators"] == 0
        if board is not None:
            assert (vela["accelerator"], vela["system_config"], vela["memory_mode"]) == (
                board.accelerator,
                board.system_config,
                board.memory_mode,
            )
        if name in clocks:  # our .ini reached Vela: its summary reports the board's clock
            assert vela["core_clock_mhz"] == clocks[name]
            assert (out / "vela" / name / f"{name}.ini").is_file()
    # A slower, narrower system is estimated slower: the custom board's .ini took effect.
    assert (
        info["vela"]["tiny"]["inference_time_ms"]
        > 4 * info["vela"]["corstone_300"]["inference_time_ms"]
    )
    ini = (out / "vela/tiny/tiny.ini").read_text()
    assert "Sram_clock_scale=0.5\n" in ini  # 400 MB/s of 8 B × 100 MHz
    assert "OffChipFlash_clock_scale=0.03125\n" in ini  # 25 of 800 MB/s


def test_fit_verdicts_come_from_the_artifacts(board_build):
    out, info, run = board_build
    assert set(info["boards"]) == {*preset_boards(), "tiny"}
    for name, fit in info["boards"].items():
        compiled = out / "vela" / name / "small_vela.tflite"
        assert fit["flash_needed_bytes"] == compiled.stat().st_size
        assert fit["sram_needed_bytes"] == info["tflm"]["targets"][name]["arena_bytes"]
        assert fit["fits"] is True
        assert fit["verdict"].endswith("to spare") and ": fits" in fit["verdict"]
        assert f"{name}: SRAM" in run.stderr and fit["verdict"] in run.stderr
    he = info["boards"]["alif_e7_he"]
    assert (he["sram_budget_bytes"], he["flash_budget_bytes"]) == (256 * 1024, 0xFF000)
    assert he["limiting"] == "flash"  # 240 KiB of weights in 1,020 KiB vs 11 KiB in 256 KiB
    report = (out / "small_report.md").read_text()
    assert "## Board fit" in report and he["verdict"] in report
    assert "ensemble_vela.ini" in report  # the source of the numbers is named


def test_every_board_lists_its_placements(board_build):
    out, info, run = board_build
    for name, board in info["boards"].items():
        placements = board["placements"]
        assert placements[0]["memory_mode"] == board["memory_mode"] == "Shared_Sram"
        assert placements[0]["folder"] == f"vela/{name}"
        assert placements[0]["sram_needed_bytes"] == board["sram_needed_bytes"]
        for placement in placements:
            folder = out / placement["folder"]
            assert (folder / "small_vela.tflite").stat().st_size == placement["model_bytes"]
            header = (folder / "small_model.h").read_text()
            for macro, value in (
                ("MEMORY_MODE", f'"{placement["memory_mode"]}"'),
                ("WEIGHTS_IN", f'"{placement["weights_in"]}"'),
                ("ARENA_IN", f'"{placement["arena_in"]}"'),
                ("ARENA_SIZE", f"{placement['arena_bytes']}u"),
                ("NPU_FAST_MEMORY_SIZE", f"{placement['fast_memory_bytes']}u"),
            ):
                assert f"#define SMALL_MODEL_{macro} {value}\n" in header, (name, macro)
        fitting = [p for p in placements if p["fits"]]
        fastest = min(fitting, key=lambda p: p["inference_time_ms"])
        assert board["recommended"] == fastest["memory_mode"]
        assert board["recommendation"] in run.stderr
    modes = [p["memory_mode"] for p in info["boards"]["corstone_320"]["placements"]]
    assert modes == ["Shared_Sram", "Sram_Only", "Dedicated_Sram"]
    report = (out / "small_report.md").read_text()
    assert "### Placements: where the weights live" in report
    assert info["boards"]["corstone_300"]["recommendation"] in report


def test_require_fit_fails_the_build_and_names_the_resource(tmp_path):
    config = small_config(
        tmp_path,
        vela={"targets": [{"board": "tiny"}]},
        boards={"tiny": {**CUSTOM["tiny"], "sram": {"kib": 8, "mb_per_s": 400}}},
        output={"dir": str(tmp_path / "out"), "require_fit": True},
    )
    run = run_cli("build", str(write_config(tmp_path, config)))
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("verification failed: tiny: SRAM")
    assert "of 8.0 KiB: does not fit" in last and "output.require_fit" in last
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out" / "small").exists()


C_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "small_model.h"

static void head(const char *name, int index, int classes, const char *dtype, float scale,
                 int zero_point, const char *const *labels) {
    printf("head %s %d %d %s %.9e %d ", name, index, classes, dtype, scale, zero_point);
    for (int i = 0; i < classes; i++) printf("%s%s", i ? "|" : "", labels[i]);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *file = fopen(argv[1], "rb");
    static uint8_t bytes[8 << 20];
    size_t size = fread(bytes, 1, sizeof bytes, file);
    fclose(file);
    printf("match %d\n", size == small_model_size && !memcmp(bytes, small_model_data, size));
    printf("size %zu %u\n", small_model_size, SMALL_MODEL_SIZE);
    printf("aligned %d\n", (int)((uintptr_t)small_model_data % 16 == 0));
    printf("sha256 %s\n", SMALL_MODEL_SHA256);
    printf("npu %s %d\n", SMALL_MODEL_ACCELERATOR, SMALL_MODEL_NPU_MACS);
#ifdef SMALL_MODEL_VELA_VERSION
    printf("vela %s %s %s\n", SMALL_MODEL_VELA_VERSION, SMALL_MODEL_SYSTEM_CONFIG,
           SMALL_MODEL_MEMORY_MODE);
#endif
#ifdef SMALL_MODEL_BOARD
    printf("board %s\n", SMALL_MODEL_BOARD);
#endif
#ifdef SMALL_MODEL_ARENA_SIZE
    printf("arena %u\n", SMALL_MODEL_ARENA_SIZE);
#else
    printf("arena none\n");  /* not measured: no figure rather than a guess */
#endif
    printf("input %d %d %d %u %s %.9e %d\n", SMALL_MODEL_INPUT_HEIGHT, SMALL_MODEL_INPUT_WIDTH,
           SMALL_MODEL_INPUT_CHANNELS, SMALL_MODEL_INPUT_BYTES, SMALL_MODEL_INPUT_DTYPE,
           SMALL_MODEL_INPUT_SCALE, SMALL_MODEL_INPUT_ZERO_POINT);
    printf("heads %d\n", SMALL_MODEL_HEADS);
    head("object", SMALL_MODEL_OBJECT_OUTPUT_INDEX, SMALL_MODEL_OBJECT_CLASSES,
         SMALL_MODEL_OBJECT_DTYPE, SMALL_MODEL_OBJECT_SCALE, SMALL_MODEL_OBJECT_ZERO_POINT,
         small_model_object_labels);
    head("light", SMALL_MODEL_LIGHT_OUTPUT_INDEX, SMALL_MODEL_LIGHT_CLASSES,
         SMALL_MODEL_LIGHT_DTYPE, SMALL_MODEL_LIGHT_SCALE, SMALL_MODEL_LIGHT_ZERO_POINT,
         small_model_light_labels);
    return 0;
}
"""


def compile_and_run(folder, work, model_path, language: str) -> tuple[list[str], str]:
    """Compile `<folder>/small_model.c` with cc and a checking program in C or C++, run it on
    the .tflite at `model_path`; return its lines and the object's section table."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not (compiler and shutil.which("objdump")):
        pytest.skip("checking the C arrays needs a C compiler (cc or gcc) and objdump")
    work.mkdir()
    flags = ["-Wall", "-Wextra", "-Werror", f"-I{folder}"]
    model_object = work / "small_model.o"
    subprocess.run(
        [compiler, "-std=c99", *flags, "-c", str(folder / "small_model.c"), "-o", model_object],
        check=True,
    )
    main = work / ("main.c" if language == "c" else "main.cpp")
    main.write_text(C_PROGRAM)
    main_compiler = compiler if language == "c" else (shutil.which("c++") or shutil.which("g++"))
    standard = "-std=c99" if language == "c" else "-std=c++17"
    program = work / "check"
    subprocess.run(
        [main_compiler, standard, *flags, str(main), str(model_object), "-o", str(program)],
        check=True,
    )
    sections = subprocess.run(
        ["objdump", "-h", str(model_object)], capture_output=True, text=True, check=True
    ).stdout
    run = subprocess.run([program, str(model_path)], capture_output=True, check=True)
    return run.stdout.decode().splitlines(), sections


@pytest.mark.parametrize(
    "target", [None, "alif_e7_he", "tiny", "ethos-u55-128"], ids=lambda t: t or "tflite"
)
def test_c_arrays_compile_and_carry_the_model_and_its_metadata(board_build, tmp_path, target):
    out, info, _ = board_build
    folder = out if target is None else out / "vela" / target
    model_path = folder / ("small.tflite" if target is None else "small_vela.tflite")
    content = model_path.read_bytes()
    model = read_tflite(content)
    language = "c++" if target == "tiny" else "c"  # the header works from C++ too
    lines, sections = compile_and_run(folder, tmp_path / "c", model_path, language)
    printed = dict(line.split(" ", 1) for line in lines if not line.startswith("head "))

    assert printed["match"] == "1"
    assert printed["size"] == f"{len(content)} {len(content)}"
    assert printed["aligned"] == "1"
    # The array sits in the configured linker section, all of it.
    (row,) = [line.split() for line in sections.splitlines() if ".nn_model" in line]
    assert int(row[2], 16) == len(content)
    if target is None:
        assert printed["npu"] == "none 0"
        assert "vela" not in printed and "board" not in printed
        assert printed["arena"] == str(info["tflm"]["arena_bytes"] or "none")
    else:
        vela = info["vela"][target]
        accelerator = vela["accelerator"]
        assert printed["npu"] == f"{accelerator} {accelerator.rsplit('-', 1)[1]}"
        assert printed["vela"] == (
            f"{info['versions']['vela']} {vela['system_config']} {vela['memory_mode']}"
        )
        assert printed.get("board") == vela["board"]
        assert printed["arena"] == str(info["tflm"]["targets"][target]["arena_bytes"])
    (model_input,) = model.inputs
    height, width, channels = model_input.shape[1:]
    assert printed["input"].split() == [
        str(height),
        str(width),
        str(channels),
        str(height * width * channels),
        "uint8",
        f"{model_input.scale:.9e}",
        "0",
    ]
    assert printed["heads"] == "2"
    heads = [line.split(" ", 7)[1:] for line in lines if line.startswith("head ")]
    expected_labels = {"object": LABELS, "light": ["0", "1"]}
    for name, index, classes, dtype, scale, zero_point, labels in heads:
        output = model.outputs[int(index)]
        assert output.index == model.signature_outputs[name]  # the index really is this head
        assert (int(classes), dtype, int(zero_point)) == (
            output.shape[-1],
            output.dtype,
            output.zero_point,
        )
        assert float(scale) == pytest.approx(float(np.float32(output.scale)), rel=1e-7)
        assert labels.split("|") == expected_labels[name]
