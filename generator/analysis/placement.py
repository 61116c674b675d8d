"""Placement stage: where the weights live on each board, and what each choice costs.

Reading weights is most of what a small model does on an Ethos-U: the demo on the Corstone-300
spends 242,000 of its 260,000 estimated cycles reading them from flash. A board target is
compiled once per placement its memory allows, each a Vela memory mode:

- `Shared_Sram` (every board's own): weights read from flash, MRAM or DDR over AXI1, the tensor
  arena in SRAM. The least SRAM.
- `Sram_Only`: weights and arena in SRAM. The model array is copied there at boot, so it still
  takes its size in flash too.
- `Dedicated_Sram` (Ethos-U65 and U85 on a system with DRAM on AXI1; a U55's AXI1 is read-only):
  weights and arena in DRAM, SRAM given to the NPU as a cache of at most the board's SRAM
  budget.

What a placement needs is read from its compiled model and Vela's .ini (`vela.MemoryLayout`):
SRAM holds the arena (Vela's scratch tensor plus TFLite Micro's margin) when the arena is there,
the model array when the weights are there, and the cache; the other memory holds the model
array always and the arena when it is not in SRAM. The recommendation is the fastest placement
(Vela's estimate) that fits and runs every operator the board's own placement runs on the NPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from generator.analysis.fit import Fit, fit_on_board
from generator.config.schema import VelaTarget
from generator.engines.tflm import npu_arena_bytes
from generator.engines.vela import VelaResult, compile_for_target, memory_layout, memory_modes

WEIGHTS_IN_SRAM = "Sram_Only"
ARENA_IN_DRAM = "Dedicated_Sram"


@dataclass(frozen=True)
class Placement:
    result: VelaResult
    fit: Fit

    @property
    def memory_mode(self) -> str:
        return self.result.memory_mode


@dataclass(frozen=True)
class BoardPlacements:
    """Every placement compiled for one board target; the board's own memory mode first."""

    placements: tuple[Placement, ...]

    @property
    def own(self) -> Placement:
        return self.placements[0]

    @property
    def recommended(self) -> Placement | None:
        """The fastest placement that fits, None when none does."""
        fitting = [
            p
            for p in self.placements
            if p.fit.fits and p.result.cpu_operators <= self.own.result.cpu_operators
        ]
        return min(fitting, key=lambda p: p.result.inference_time_ms, default=None)


def placement_targets(target: VelaTarget) -> list[VelaTarget]:
    """The other memory modes a board target can be compiled for, besides its own."""
    if target.board is None:
        return []
    defined = memory_modes(target)
    others = []
    for mode in (WEIGHTS_IN_SRAM, ARENA_IN_DRAM):
        if mode == target.memory_mode or mode not in defined:
            continue
        other = replace(target, memory_mode=mode)
        layout = memory_layout(other)
        if mode == ARENA_IN_DRAM and (
            layout.arena != "DRAM" or target.accelerator.startswith("ethos-u55")
        ):
            continue
        others.append(other)
    return others


def compile_placements(
    tflite_path: Path, target: VelaTarget, optimise: str, output_dir: Path
) -> list[VelaResult]:
    """Compile the board `target` for its other placements, each into
    `<output_dir>/<memory mode>/`."""
    board = target.board
    return [
        compile_for_target(
            tflite_path=tflite_path,
            target=placement,
            optimise=optimise,
            output_dir=output_dir / placement.memory_mode,
            arena_cache_bytes=board.sram_bytes if placement.memory_mode == ARENA_IN_DRAM else None,
        )
        for placement in placement_targets(target)
    ]


def arena_bytes(result: VelaResult) -> int:
    """The tensor arena a firmware reserves for the compiled model, wherever it lives."""
    return npu_arena_bytes(result.scratch_bytes)


def memory_needed(result: VelaResult) -> tuple[int, int]:
    """(SRAM, other memory) bytes the compiled model needs where its memory mode puts things."""
    layout = result.layout
    model, arena = result.vela_tflite_bytes, arena_bytes(result)
    sram = result.fast_scratch_bytes
    sram += arena if layout.arena == "SRAM" else 0
    sram += model if layout.weights == "SRAM" else 0
    other = model + (arena if layout.arena != "SRAM" else 0)
    return sram, other


def judge_placements(
    results: list[VelaResult], alpha: float | None, input_shape: tuple[int, int, int]
) -> BoardPlacements:
    """The fit of each placement of one board (the board's own placement first)."""
    placements = []
    for result in results:
        sram, other = memory_needed(result)
        fit = fit_on_board(
            board=result.target.board,
            sram_needed=sram,
            flash_needed=other,
            alpha=alpha,
            input_shape=input_shape,
            memory_mode=result.memory_mode,
        )
        if placements:  # shrinking the model is advice for the board's own placement only
            fit = replace(fit, hint="")
        placements.append(Placement(result, fit))
    return BoardPlacements(tuple(placements))


def describe(result: VelaResult) -> str:
    """e.g. "weights in SRAM, arena in SRAM"."""
    layout = result.layout
    text = f"weights in {layout.weights}, arena in {layout.arena}"
    if layout.cache != layout.arena:
        text += f", {layout.cache} as its cache"
    return text
