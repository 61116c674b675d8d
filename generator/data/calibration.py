"""Calibrate stage: choose real images for calibration and for the held-out fidelity check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator.data.images import select_images
from generator.errors import UserError

if TYPE_CHECKING:
    from generator.config.schema import CalibrationConfig


@dataclass(frozen=True)
class CalibrationSet:
    """uint8 pixels (N, H, W, C) to calibrate on, and held-out ones to verify on."""

    calibration: np.ndarray
    held_out: np.ndarray
    source: Path
    images_found: int
    images_skipped: int


def load_calibration_set(
    config: CalibrationConfig, shape: tuple[int, int, int], seed: int
) -> CalibrationSet:
    """Read `samples + holdout` images; with fewer usable, split them in that proportion.

    The held-out images are never used for calibration, so the fidelity figures are measured on
    images the quantizer has not seen. At least two usable images are needed (one of each).
    """
    wanted = config.samples + config.holdout
    selection = select_images(config.data, wanted, shape, seed)
    usable = len(selection.pixels)
    if usable < 2:
        raise UserError(
            f"calibration.data: {config.data} has {usable} usable image(s) "
            f"({selection.images_found} image files, {selection.images_skipped} unreadable): "
            "add at least 2 readable images (PNG, JPEG, ...)"
        )
    held_out = (
        config.holdout if usable >= wanted else max(1, round(usable * config.holdout / wanted))
    )
    return CalibrationSet(
        calibration=selection.pixels[: usable - held_out],
        held_out=selection.pixels[usable - held_out :],
        source=config.data,
        images_found=selection.images_found,
        images_skipped=selection.images_skipped,
    )
