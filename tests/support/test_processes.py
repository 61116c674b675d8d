"""Processes that must not outlive their run: the portable parts, exercised on this machine."""

import subprocess
import sys
import time

import psutil
import pytest

from generator.support.processes import is_running

# A middle process starts a grandchild that watches for it the way macOS and Windows do (no
# parent-death signal there), prints the grandchild's pid and waits to be killed.
_MIDDLE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import signal, time
from generator.support.processes import watch_parent
watch_parent(signal.SIGTERM)
print("watching", flush=True)
time.sleep(60)
'''], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_process_watching_its_parent_ends_when_the_parent_is_killed():
    middle = subprocess.Popen([sys.executable, "-c", _MIDDLE], stdout=subprocess.PIPE, text=True)
    grandchild = int(middle.stdout.readline())
    watched = psutil.Process(grandchild)
    assert watched.is_running()
    middle.kill()  # SIGKILL: no handler of the middle process runs
    middle.wait()
    watched.wait(timeout=10)  # the watcher polls once a second
    assert not is_running(grandchild)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX's")
def test_end_children_kills_what_this_process_started_and_nothing_else():
    """In a process of its own: here it would also end what pytest's other fixtures started."""
    script = """
import os, signal, subprocess, sys
from generator.support.processes import end_children
children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in "ab"]
end_children()
print([child.wait(timeout=10) for child in children] == [-signal.SIGKILL] * 2)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout.strip()) == (0, "True"), run.stderr


def test_is_running_does_not_signal_the_process():
    """`os.kill(pid, 0)` would end a process on Windows; the check must only look."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert is_running(child.pid)
        time.sleep(0.2)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
    assert not is_running(child.pid)
