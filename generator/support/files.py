"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

from pathlib import Path


def write_atomically(texts: dict[Path, str]) -> None:
    """Write every text under a temporary name first, then rename them all into place: a
    failure while writing leaves the previous files as they were."""
    partials = {path: path.with_name(f".{path.name}.partial") for path in texts}
    try:
        for path, partial in partials.items():
            partial.write_text(texts[path], encoding="utf-8")
        for path, partial in partials.items():
            partial.replace(path)
    finally:
        for partial in partials.values():
            if partial.is_file():  # not what stood in the way of one
                partial.unlink()
