"""Writing files so that a reader never sees half of one, and saying in one line why a folder
cannot take them."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from generator.support.text import display_path, format_bytes


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


# The errors of a disk that cannot take what a run writes: full, or read-only.
_FULL_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_FORBIDDEN = frozenset({errno.EACCES, errno.EPERM})


def is_write_failure(error: OSError, folder: Path) -> bool:
    """Whether `error` is `folder` refusing what a run writes there: its disk full or
    read-only, or a file in it the run may not write (a file elsewhere it may not read is
    another matter)."""
    if error.errno in _FULL_OR_READ_ONLY:
        return True
    inside = error.filename is not None and Path(str(error.filename)).is_relative_to(folder)
    return error.errno in _FORBIDDEN and inside


def cannot_write(error: OSError, folder: Path, written: int | None = None) -> str:
    """One line for a write `folder` refused (`is_write_failure`): the folder, why, what the
    run needs and the fix. `written`: what the run had written when the disk filled."""
    shown = display_path(folder)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        free = format_bytes(shutil.disk_usage(_existing(folder)).free)
        needs = (
            f"the run needs more than the {format_bytes(written)} it had written; "
            if written
            else ""
        )
        return (
            f"no space left on the disk of {shown} ({needs}{free} free now): free some space "
            "or give another --output-dir"
        )
    if error.errno == errno.EROFS:
        return f"{shown} is on a read-only file system: give another --output-dir"
    return (
        f"cannot write in {shown} ({error.strerror}): give a folder you can write to "
        "(--output-dir) or change its permissions"
    )


def folder_size(folder: Path) -> int:
    """The bytes of every file below `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
