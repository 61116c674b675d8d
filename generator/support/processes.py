"""Processes that must not outlive the run that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

import psutil

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int | None = None) -> None:
    """Send this process `signum` when its parent ends, however the parent ended (SIGKILL
    included, which no handler sees). Linux does it itself (the parent-death signal, SIGKILL by
    default). macOS and Windows have no such request: there a daemon thread looks for the parent
    every `PARENT_POLL_SECONDS` and sends `signum` (SIGTERM by default) once it is gone."""
    if not sys.platform.startswith("linux"):
        watch_parent(signal.SIGTERM if signum is None else signum)
        return
    if signum is None:
        signum = signal.SIGKILL
    parent = os.getppid()
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:  # the parent ended before the request was made
        os.kill(os.getpid(), signum)


# How often a process without Linux's parent-death signal looks for its parent.
PARENT_POLL_SECONDS = 1.0


def watch_parent(signum: int) -> None:
    """Send this process `signum` as soon as a poll finds its parent gone (psutil's
    `is_running` tells a new process that got the parent's id from the parent). On Windows,
    `os.kill` with SIGTERM ends the process outright."""
    parent = psutil.Process().parent()
    if parent is None:  # already orphaned
        os.kill(os.getpid(), signum)
        return

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            try:
                gone = not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                os.kill(os.getpid(), signum)
                return

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def end_children() -> None:
    """Kill every process this one started that is still running (Vela compiling into a
    folder about to be removed, an arena search): a process that is stopping must not leave
    them writing after it. SIGKILL on POSIX, TerminateProcess on Windows (psutil's `kill`)."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
            child.kill()


def is_running(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts). Not `os.kill(pid, 0)`: on Windows
    that terminates the process."""
    return psutil.pid_exists(pid)
