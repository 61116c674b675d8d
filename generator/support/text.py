"""Small helpers of the one-line messages every layer writes."""

from __future__ import annotations

import difflib
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


def nearest(word: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """The choice closest to `word`, for a "did you mean" (None when nothing is close)."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def display_path(path: Path) -> str:
    """`path` relative to the current directory when it lies below it, for messages."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def format_bytes(size: int) -> str:
    """A size as a person reads it: KiB below 10 MiB, else MiB."""
    if size < 100 * KIB:
        return f"{size / KIB:.1f} KiB"
    return f"{size / KIB:,.0f} KiB" if size < 10 * MIB else f"{size / MIB:,.1f} MiB"


def first_line(error: BaseException | str, *, limit: int | None = None) -> str:
    """The first line of an error, for a message that must stay one line (Keras's and
    TensorFlow's go on for lines). An OSError gives its reason alone: its text would repeat a
    path the message already names. `limit` cuts it to that many characters."""
    if isinstance(error, OSError) and error.strerror:
        line = error.strerror
    else:
        lines = str(error).strip().splitlines()
        fallback = type(error).__name__ if isinstance(error, BaseException) else "no details"
        line = lines[0] if lines else fallback
    return line if limit is None else line[:limit]
