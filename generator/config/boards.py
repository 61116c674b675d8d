"""Boards: named Ethos-U systems a config can target instead of spelling out a Vela target, and
the fit verdict of a compiled model on each.

A board is an accelerator, a Vela system config and memory mode (from Vela's built-in
`Arm/vela.ini` or from `boards.ini` beside this module, which documents and sources its clocks and
bandwidths), and two budgets: the SRAM a firmware can give the tensor arena and the flash (or
MRAM, or DDR standing in for flash) that holds the model array. Every board's own memory mode is
Shared_Sram: arena in SRAM, model read-only from the other memory. The other placements a board
allows (weights in SRAM, or arena in DRAM with SRAM as a cache) are
`generator.analysis.placement`'s.

The budgets are the memory regions where the vendor's own reference firmware puts the arena and
the model (sources below). Your firmware's own code and data may share a region: the margin of
the verdict is what is left for it.

A custom board is a few lines under `boards:` in the config; generator writes its Vela `.ini`.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass

from generator.support.text import KIB, MIB

# Bytes an AXI port of the NPU moves per core clock cycle (Ethos-U55: 64-bit; U65, U85: 128-bit).
AXI_BYTES_PER_CYCLE = {"ethos-u55": 8, "ethos-u65": 16, "ethos-u85": 16}

# Burst lengths and latencies a custom board's .ini takes: Vela's Ethos_U55_High_End_Embedded.
_CUSTOM_SRAM_TIMING = {"burst_length": 32, "read_latency": 32, "write_latency": 32}
_CUSTOM_FLASH_TIMING = {"burst_length": 128, "read_latency": 64, "write_latency": 0}

BOARDS_INI = "boards.ini"  # next to this module


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    accelerator: str
    system_config: str
    memory_mode: str
    sram_bytes: int  # budget for the tensor arena
    flash_bytes: int  # budget for the model array
    source: str  # where the budgets and the system config come from
    ini_text: str | None  # the Vela .ini to compile with; None: Vela's built-in Arm/vela.ini


def _boards_ini() -> str:
    return (importlib.resources.files("generator.config") / BOARDS_INI).read_text()


_MLEK = "Arm ML Embedded Evaluation Kit linker script"
_ALIF = "Alif ML Embedded Evaluation Kit (alifsemi/alif_ml-embedded-evaluation-kit)"


def preset_boards() -> dict[str, Board]:
    """The presets, by name."""
    shipped = _boards_ini()
    boards = [
        Board(
            "corstone_300",
            "Arm Corstone-300 (MPS3 AN552, FVP): Cortex-M55 + Ethos-U55-128",
            "ethos-u55-128",
            "Ethos_U55_High_End_Embedded",
            "Shared_Sram",
            2 * MIB,
            32 * MIB,
            f"{_MLEK} mps3-sse-300: arena in the 2 MiB SRAM at 0x31000000, model in the "
            "32 MiB DDR; U55-128 and High_End_Embedded are the kit's defaults",
            None,
        ),
        Board(
            "corstone_310",
            "Arm Corstone-310 (MPS3 AN555, FVP): Cortex-M85 + Ethos-U55-128",
            "ethos-u55-128",
            "Ethos_U55_High_End_Embedded",
            "Shared_Sram",
            4 * MIB,
            32 * MIB,
            f"{_MLEK} mps3-sse-310: arena in the 4 MiB SRAM at 0x31000000, model in the "
            "32 MiB DDR; U55-128 and High_End_Embedded are the kit's defaults",
            None,
        ),
        Board(
            "corstone_320",
            "Arm Corstone-320 (MPS4, FVP): Cortex-M85 + Ethos-U85-256",
            "ethos-u85-256",
            "Ethos_U85_SYS_DRAM_Mid",
            "Shared_Sram",
            4 * MIB,
            32 * MIB,
            f"{_MLEK} mps4-sse-320: arena in the 4 MiB SRAM at 0x31000000, model in the "
            "32 MiB DDR (Vela's Ethos_U85_SYS_DRAM_Mid: 1 GHz, SRAM 32 GB/s, DRAM 12 GB/s)",
            None,
        ),
        Board(
            "alif_e7_hp",
            "Alif Ensemble E7, high-performance core: Cortex-M55 + Ethos-U55-256 at 400 MHz",
            "ethos-u55-256",
            "Alif_E7_HP_SRAM_MRAM",
            "Shared_Sram",
            2560 * KIB,
            0x477000,
            f"{_ALIF}: RTSS-HP linker script puts the arena in SRAM1 (2.5 MiB) and the model in "
            "the HP core's 4,572 KiB MRAM partition; system config from its ensemble_vela.ini",
            shipped,
        ),
        Board(
            "alif_e7_he",
            "Alif Ensemble E7, high-efficiency core: Cortex-M55 + Ethos-U55-128 at 160 MHz",
            "ethos-u55-128",
            "Alif_E7_HE_SRAM_MRAM",
            "Shared_Sram",
            256 * KIB,
            0xFF000,
            f"{_ALIF}: RTSS-HE-TCM linker script keeps everything in the HE core's 256 KiB DTCM "
            "(arena, stack, heap and data) and the model in its 1,020 KiB MRAM partition; "
            "system config from its ensemble_vela.ini",
            shipped,
        ),
        Board(
            "himax_we2",
            "Himax WiseEye2 / Seeed Grove Vision AI V2: Cortex-M55 + Ethos-U55-64 at 400 MHz",
            "ethos-u55-64",
            "Himax_WE2",
            "Shared_Sram",
            2 * MIB,
            16 * MIB,
            "Himax HX6538 2 MB on-chip SRAM (shared with the firmware) and the Grove Vision AI "
            "V2's 16 MB external flash; system config from Seeed's vela_config.ini",
            shipped,
        ),
    ]
    return {board.name: board for board in boards}


def custom_board(
    *,
    name: str,
    accelerator: str,
    clock_mhz: float,
    sram_kib: float,
    sram_mb_per_s: float,
    flash_kib: float,
    flash_mb_per_s: float,
) -> Board:
    """A board from its clock, memory sizes and bandwidths, with the Vela .ini written for it.

    Vela wants each memory's bandwidth as a fraction of what the NPU's AXI port can move per
    core cycle (`<memory>_clock_scale`); the caller has checked it is at most 1.
    """
    per_cycle = AXI_BYTES_PER_CYCLE[accelerator.rsplit("-", 1)[0]]
    peak = per_cycle * clock_mhz  # MB/s
    system = f"Custom_{name}"
    lines = [
        f"; Written by generator for the custom board {name!r}.",
        f"; {accelerator} at {clock_mhz:g} MHz: an AXI port moves {per_cycle} B per cycle, "
        f"{peak:g} MB/s. SRAM {sram_mb_per_s:g} MB/s, flash {flash_mb_per_s:g} MB/s.",
        "; Burst lengths and latencies are those of Vela's Ethos_U55_High_End_Embedded.",
        f"[System_Config.{system}]",
        f"core_clock={clock_mhz:g}e6",
        "axi0_port=Sram",
        "axi1_port=OffChipFlash",
        f"Sram_clock_scale={sram_mb_per_s / peak:.6g}",
        *(f"Sram_{key}={value}" for key, value in _CUSTOM_SRAM_TIMING.items()),
        f"OffChipFlash_clock_scale={flash_mb_per_s / peak:.6g}",
        *(f"OffChipFlash_{key}={value}" for key, value in _CUSTOM_FLASH_TIMING.items()),
        "",
        "[Memory_Mode.Shared_Sram]",
        "const_mem_area=Axi1",
        "arena_mem_area=Axi0",
        "cache_mem_area=Axi0",
        "",
        "[Memory_Mode.Sram_Only]",
        "const_mem_area=Axi0",
        "arena_mem_area=Axi0",
        "cache_mem_area=Axi0",
        "",
    ]
    return Board(
        name,
        f"custom board {name}: {accelerator} at {clock_mhz:g} MHz",
        accelerator,
        system,
        "Shared_Sram",
        int(sram_kib * KIB),
        int(flash_kib * KIB),
        "the config's boards section",
        "\n".join(lines),
    )
