"""Placements: each board compiled for the memory modes it allows, each placement's needs read
back from its compiled model, the fit judged with the weights where they really are."""

from dataclasses import replace

import pytest

from generator.analysis.placement import (
    compile_placements,
    judge_placements,
    placement_targets,
)
from generator.config.boards import KIB, custom_board, preset_boards
from generator.config.schema import VelaTarget
from generator.engines.tflite_file import read_tflite
from generator.engines.tflm import NPU_ARENA_MARGIN_BYTES
from generator.engines.vela import compile_for_target, memory_layout

BOARDS = preset_boards()


def _target(board) -> VelaTarget:
    return VelaTarget(board.accelerator, board.system_config, board.memory_mode, board)


def _scratch(path, name: str) -> int:
    """A scratch tensor's size, read from the compiled model independently of the adapter."""
    sizes = {t.name: t.shape[0] for t in read_tflite(path.read_bytes()).tensors}
    return sizes.get(name, 0)


def _arena(path) -> int:
    return -(-_scratch(path, "scratch") // 16) * 16 + NPU_ARENA_MARGIN_BYTES


def _placements(small_tflite, tmp_path, board):
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "small.tflite"
    path.write_bytes(small_tflite("mobilenet_v1"))
    own = compile_for_target(
        tflite_path=path,
        target=_target(board),
        optimise="Performance",
        output_dir=tmp_path / board.name,
    )
    others = compile_placements(path, own.target, "Performance", tmp_path / board.name)
    return judge_placements([own, *others], 0.25, (32, 32, 3))


def test_weights_in_sram_count_against_sram(small_tflite, tmp_path):
    board = BOARDS["corstone_300"]
    placements = _placements(small_tflite, tmp_path, board)
    assert [p.memory_mode for p in placements.placements] == ["Shared_Sram", "Sram_Only"]
    shared, sram_only = placements.placements
    assert (shared.result.layout.weights, sram_only.result.layout.weights) == ("flash", "SRAM")
    for placement in placements.placements:
        compiled = placement.result.tflite_path
        model = compiled.stat().st_size
        assert placement.fit.flash_needed == model  # in flash, or loaded from it at boot
        expected = _arena(compiled) + (model if placement is sram_only else 0)
        assert placement.fit.sram_needed == expected
    # Vela's own SRAM figure leaves the weights out; the verdict does not.
    assert sram_only.result.sram_kib * 1024 < sram_only.fit.sram_needed - 100 * KIB
    assert sram_only.result.inference_time_ms < shared.result.inference_time_ms
    assert placements.recommended is sram_only
    assert (tmp_path / "corstone_300/Sram_Only/small_vela.tflite").is_file()


def test_the_fastest_placement_that_fits_is_recommended(small_tflite, tmp_path):
    """A board whose SRAM holds the arena but not the model keeps its weights in flash."""
    tight = custom_board(
        name="tight",
        accelerator="ethos-u55-128",
        clock_mhz=400,
        sram_kib=64,
        sram_mb_per_s=1600,
        flash_kib=1024,
        flash_mb_per_s=100,
    )
    placements = _placements(small_tflite, tmp_path, tight)
    shared, sram_only = placements.placements
    assert shared.fit.fits and not sram_only.fit.fits
    assert sram_only.fit.limiting == "SRAM" and "does not fit" in sram_only.fit.verdict()
    assert sram_only.result.inference_time_ms < shared.result.inference_time_ms
    assert placements.recommended is shared
    roomy = replace(tight, sram_bytes=1024 * KIB)
    assert _placements(small_tflite, tmp_path / "roomy", roomy).recommended.memory_mode == (
        "Sram_Only"
    )


def test_a_u85_with_dram_can_put_the_arena_in_dram(small_tflite, tmp_path):
    board = replace(BOARDS["corstone_320"], sram_bytes=8 * KIB)
    placements = _placements(small_tflite, tmp_path, board)
    modes = {p.memory_mode: p for p in placements.placements}
    assert list(modes) == ["Shared_Sram", "Sram_Only", "Dedicated_Sram"]
    dedicated = modes["Dedicated_Sram"]
    layout = dedicated.result.layout
    assert (layout.weights, layout.arena, layout.cache) == ("DRAM", "DRAM", "SRAM")
    compiled = dedicated.result.tflite_path
    cache = _scratch(compiled, "scratch_fast")
    assert 0 < cache <= board.sram_bytes  # the cache was bounded by the board's SRAM
    assert dedicated.fit.sram_needed == cache
    assert dedicated.fit.flash_needed == compiled.stat().st_size + _arena(compiled)
    # 8 KiB of SRAM holds neither the arena nor the model: only the cache placement fits.
    assert not modes["Shared_Sram"].fit.fits and not modes["Sram_Only"].fit.fits
    assert dedicated.fit.fits and placements.recommended is dedicated


def test_which_boards_get_which_placements():
    assert placement_targets(VelaTarget("ethos-u55-128", "Ethos_U55_High_End_Embedded", "x")) == []
    for name, board in BOARDS.items():
        modes = [t.memory_mode for t in placement_targets(_target(board))]
        # A U55's AXI1 is read-only: its arena cannot go to DRAM.
        expected = ["Sram_Only", "Dedicated_Sram"] if name == "corstone_320" else ["Sram_Only"]
        assert modes == expected, name


@pytest.mark.parametrize(
    ("system", "mode", "expected"),
    [
        ("Ethos_U55_High_End_Embedded", "Shared_Sram", ("flash", "SRAM", "SRAM")),
        ("Ethos_U55_High_End_Embedded", "Sram_Only", ("SRAM", "SRAM", "SRAM")),
        ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_256KB", ("DRAM", "DRAM", "SRAM")),
        ("Ethos_U85_SYS_DRAM_Mid", "Shared_Sram", ("DRAM", "SRAM", "SRAM")),
    ],
)
def test_memory_layout_follows_the_ini(system, mode, expected):
    layout = memory_layout(VelaTarget("ethos-u85-256", system, mode))
    assert (layout.weights, layout.arena, layout.cache) == expected
