"""Fit: whether a compiled model's memory needs stay within a board's budgets, and what to try
when they do not."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from generator.config.boards import Board
from generator.support.text import format_bytes


@dataclass(frozen=True)
class Fit:
    board: Board
    memory_mode: str  # the placement judged (`generator.analysis.placement`)
    sram_needed: int  # what the placement puts in SRAM: the tensor arena, maybe the model
    flash_needed: int  # what it puts in the other memory: the model array, maybe the arena
    hint: str  # what to try when it does not fit; empty when it fits

    @property
    def sram_budget(self) -> int:
        return self.board.sram_bytes

    @property
    def flash_budget(self) -> int:
        return self.board.flash_bytes

    @property
    def fits(self) -> bool:
        return self.sram_needed <= self.sram_budget and self.flash_needed <= self.flash_budget

    @property
    def limiting(self) -> str:
        """The resource with the least room left, relative to its budget."""
        sram = self.sram_needed / self.sram_budget
        flash = self.flash_needed / self.flash_budget
        return "SRAM" if sram >= flash else "flash"

    def verdict(self) -> str:
        """e.g. "SRAM 412 KiB of 256 KiB: does not fit; try alpha 0.25 or 64×64 input".

        A fit names the limiting resource and its margin; a misfit names every resource over
        budget, the limiting one first.
        """
        usage = {
            "SRAM": (self.sram_needed, self.sram_budget),
            "flash": (self.flash_needed, self.flash_budget),
        }
        order = [self.limiting, *(r for r in usage if r != self.limiting)]
        if self.fits:
            needed, budget = usage[self.limiting]
            return (
                f"{self.limiting} {format_bytes(needed)} of {format_bytes(budget)}: fits, "
                f"{format_bytes(budget - needed)} to spare"
            )
        over = [
            f"{r} {format_bytes(usage[r][0])} of {format_bytes(usage[r][1])}"
            for r in order
            if usage[r][0] > usage[r][1]
        ]
        return ", ".join(over) + ": does not fit" + (f"; {self.hint}" if self.hint else "")


# MobileNet's usual width multipliers (those keras.applications names), largest first.
_ALPHAS = (1.4, 1.3, 1.0, 0.75, 0.5, 0.35, 0.25)


def fit_on_board(
    *,
    board: Board,
    sram_needed: int,
    flash_needed: int,
    alpha: float | None,
    input_shape: tuple[int, int, int],
    memory_mode: str | None = None,
) -> Fit:
    """The verdict for a model needing `sram_needed` bytes of SRAM and `flash_needed` bytes of
    the other memory, placed as `memory_mode` (the board's own by default).

    The hint is a starting point, not a promise: activations (SRAM) grow with the input area and
    alpha, weights (flash) with alpha squared. Only a build tells the real figure.
    """
    fit = Fit(board, memory_mode or board.memory_mode, sram_needed, flash_needed, "")
    if fit.fits:
        return fit
    return replace(fit, hint=_hint(fit, alpha, input_shape))


def _hint(fit: Fit, alpha: float | None, input_shape: tuple[int, int, int]) -> str:
    if alpha is None:
        return "shrink the model or pick a board with more memory"
    if fit.limiting == "flash":
        ratio = fit.flash_budget / fit.flash_needed
        smaller = [a for a in _ALPHAS if a < alpha and a * a <= alpha * alpha * ratio]
        return f"try alpha {smaller[0]}" if smaller else "try a board with more flash"
    ratio = fit.sram_budget / fit.sram_needed
    height, width, _ = input_shape
    scale = math.sqrt(ratio)
    new_height = max(32, int(height * scale) // 16 * 16)
    new_width = max(32, int(width * scale) // 16 * 16)
    options = []
    lower = [a for a in _ALPHAS if a < alpha]
    if lower:
        options.append(f"alpha {lower[0]}")
    if (new_height, new_width) != (height, width):
        options.append(f"{new_height}×{new_width} input")
    return "try " + " or ".join(options) if options else "try a board with more SRAM"
