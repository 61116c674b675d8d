"""`compare --modes`: which quantization modes a comparison measures, checked against what the
config can make before TensorFlow starts."""

from __future__ import annotations

from generator.config.schema import COMPARE_MODES, MODES, Config
from generator.errors import UserError


def _default_compare_modes(config: Config) -> tuple[str, ...]:
    """Every mode the config can make: `qat` needs training data, `mixed` layers named in
    quantization.keep_float or quantization.int16, `optimized` an `optimize:` section."""
    modes = [*MODES]
    if config.train is not None:
        modes.append("qat")
    if config.quantization.keep_float or config.quantization.int16:
        modes.append("mixed")
    if config.optimize is not None:
        modes.append("optimized")
    return tuple(modes)


def compare_modes(text: str | None, config: Config) -> tuple[str, ...]:
    """`--modes a,b,c` checked against what the config can make (before TensorFlow starts)."""
    if text is None:
        return _default_compare_modes(config)
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    for mode in modes:
        if mode not in COMPARE_MODES:
            raise UserError(
                f"--modes: {mode!r} is not a mode: use some of {', '.join(COMPARE_MODES)}"
            )
    if not modes:
        raise UserError(f"--modes: name at least one of {', '.join(COMPARE_MODES)}")
    if "qat" in modes and config.train is None:
        raise UserError(
            "--modes: qat fine-tunes the trained model on labelled images and the config has no "
            "train: section: add one or leave qat out"
        )
    if "mixed" in modes and not (config.quantization.keep_float or config.quantization.int16):
        raise UserError(
            "--modes: mixed keeps the layers quantization.keep_float names float and gives those "
            "quantization.int16 names 16-bit activations, and the config names none: name some "
            "or leave mixed out"
        )
    if "optimized" in modes and config.optimize is None:
        raise UserError(
            "--modes: optimized prunes and clusters the weights as optimize: says, and the "
            "config has no optimize: section (or one that compresses nothing): add one or leave "
            "optimized out"
        )
    return modes
