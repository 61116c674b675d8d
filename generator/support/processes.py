"""Processes that must not outlive the run that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send this process `signum` when its parent ends, however the parent ended
    (SIGKILL included, which no handler sees). Elsewhere there is no such request: see
    docs/failures.md for what a killed run leaves there."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:  # the parent ended before the request was made
        os.kill(os.getpid(), signum)


def end_children() -> None:
    """SIGKILL every process this one started that is still running (Vela compiling into a
    folder about to be removed, an arena search): a process that is stopping must not leave
    them writing after it. Linux only (it reads /proc); elsewhere they finish by themselves."""
    if not sys.platform.startswith("linux"):
        return
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if fields[1] == me:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def is_running(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
