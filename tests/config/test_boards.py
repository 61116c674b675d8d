"""Board presets, custom boards and fit verdicts (config side; builds are in test_firmware)."""

import configparser
import re

import pytest
from conftest import small_config, write_config

from generator.analysis.fit import fit_on_board
from generator.config.boards import KIB, MIB, custom_board, preset_boards
from generator.config.loading import load_config
from generator.config.schema import ACCELERATORS
from generator.errors import UserError


def test_presets_are_complete_and_their_system_configs_exist():
    presets = preset_boards()
    assert {
        "corstone_300",
        "corstone_310",
        "corstone_320",
        "alif_e7_hp",
        "alif_e7_he",
        "himax_we2",
    } <= set(presets)
    for board in presets.values():
        assert board.accelerator in ACCELERATORS
        assert board.memory_mode == "Shared_Sram"
        assert board.sram_bytes > 0 and board.flash_bytes > 0 and board.source
        if board.ini_text is not None:  # shipped .ini: the section is there, with a clock
            ini = configparser.ConfigParser()
            ini.read_string(board.ini_text)
            assert float(ini[f"System_Config.{board.system_config}"]["core_clock"]) > 0
            assert ini.has_section("Memory_Mode.Shared_Sram")


def test_a_board_target_takes_the_preset(tmp_path):
    path = write_config(
        tmp_path, small_config(tmp_path, vela={"targets": [{"board": "himax_we2"}]})
    )
    (target,) = load_config(path).vela.targets
    assert (target.key, target.accelerator, target.system_config) == (
        "himax_we2",
        "ethos-u55-64",
        "Himax_WE2",
    )


def test_custom_board_ini_turns_bandwidths_into_clock_scales():
    board = custom_board(
        name="lab",
        accelerator="ethos-u85-256",
        clock_mhz=250,
        sram_kib=1024,
        sram_mb_per_s=2000,
        flash_kib=4096,
        flash_mb_per_s=500,
    )
    ini = configparser.ConfigParser()
    ini.read_string(board.ini_text)
    system = ini["System_Config.Custom_lab"]
    # U85 ports move 16 B per cycle: 250 MHz → 4,000 MB/s peak.
    assert float(system["core_clock"]) == 250e6
    assert float(system["Sram_clock_scale"]) == 0.5
    assert float(system["OffChipFlash_clock_scale"]) == 0.125
    assert (board.sram_bytes, board.flash_bytes) == (1024 * KIB, 4096 * KIB)


@pytest.mark.parametrize(
    ("targets", "boards", "message"),
    [
        ([{"board": "alif_e7"}], {}, "unknown board 'alif_e7': did you mean 'alif_e7_hp'?"),
        (
            [{"board": "himax_we2", "accelerator": "ethos-u55-128"}],
            {},
            "vela.targets[0].accelerator: a board brings its own accelerator",
        ),
        (
            [{"board": "fast"}],
            {
                "fast": {
                    "accelerator": "ethos-u55-128",
                    "clock_mhz": 100,
                    "sram": {"kib": 256, "mb_per_s": 5000},
                    "flash": {"kib": 1024, "mb_per_s": 50},
                }
            },
            "boards.fast.sram.mb_per_s: 5000 is more than the NPU's AXI port moves at 100 MHz "
            "(800 MB/s)",
        ),
        (
            [{"board": "fast"}],
            {"fast": {"accelerator": "ethos-u55-128", "clock_mhz": 100, "sram": {"kib": 256}}},
            "boards.fast.sram: give kib >= 1 and mb_per_s > 0",
        ),
        (
            [{"board": "himax_we2"}],
            {"himax_we2": {"accelerator": "ethos-u55-64"}},
            "boards.himax_we2: 'himax_we2' is a preset board",
        ),
        ([{"board": "himax_we2"}, {"board": "himax_we2"}], {}, "may appear once"),
    ],
)
def test_bad_board_settings_name_the_field(tmp_path, targets, boards, message):
    config = small_config(tmp_path, vela={"targets": targets})
    if boards:
        config["boards"] = boards
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(write_config(tmp_path, config))


def test_c_array_section_must_be_a_section_name(tmp_path):
    config = small_config(tmp_path, output={"c_array": {"section": ".nn model"}})
    with pytest.raises(UserError, match=r"output.c_array.section: '.nn model' is not"):
        load_config(write_config(tmp_path, config))


BOARD = preset_boards()["alif_e7_he"]  # 256 KiB arena budget, 1,020 KiB model budget


def test_sram_misfit_suggests_a_lower_alpha_and_a_smaller_input():
    fit = fit_on_board(
        board=BOARD,
        sram_needed=412 * KIB,
        flash_needed=300 * KIB,
        alpha=0.5,
        input_shape=(96, 96, 3),
    )
    assert not fit.fits and fit.limiting == "SRAM"
    # 96 × sqrt(256 / 412) = 75.7, down to a multiple of 16
    assert fit.verdict() == "SRAM 412 KiB of 256 KiB: does not fit; try alpha 0.35 or 64×64 input"


def test_flash_misfit_suggests_an_alpha_whose_weights_fit():
    fit = fit_on_board(
        board=BOARD, sram_needed=100 * KIB, flash_needed=3 * MIB, alpha=1.0, input_shape=(96, 96, 3)
    )
    # weights scale with alpha²: 1,020 / 3,072 of alpha 1.0 allows 0.5 (0.25×), not 0.75
    assert fit.verdict() == "flash 3,072 KiB of 1,020 KiB: does not fit; try alpha 0.5"


def test_a_fit_names_the_tighter_resource_and_its_margin():
    fit = fit_on_board(
        board=BOARD,
        sram_needed=200 * KIB,
        flash_needed=300 * KIB,
        alpha=0.25,
        input_shape=(96, 96, 3),
    )
    assert fit.fits and fit.limiting == "SRAM"  # 78% of SRAM vs 29% of flash
    assert fit.verdict() == "SRAM 200 KiB of 256 KiB: fits, 56.0 KiB to spare"


def test_both_resources_over_budget_are_named():
    fit = fit_on_board(
        board=BOARD,
        sram_needed=300 * KIB,
        flash_needed=4 * MIB,
        alpha=None,
        input_shape=(96, 96, 3),
    )
    assert fit.verdict() == (
        "flash 4,096 KiB of 1,020 KiB, SRAM 300 KiB of 256 KiB: does not fit; "
        "shrink the model or pick a board with more memory"
    )
