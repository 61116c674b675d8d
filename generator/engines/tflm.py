"""TensorFlow Lite Micro adapter: the reference interpreter a Cortex-M runs, here on the host.

It cannot run a Vela-compiled model (its Ethos-U kernel is a stub off-target), but it runs the
integer .tflite: that is what a Cortex-M without an NPU computes, so every figure about a
Cortex-M comes from here. A model it cannot load, allocate or run is a defect of the build
(`VerificationError`); TFLite Micro prints its reasons from native code, muted unless --debug.

The smallest arena is found by bisection over 16-byte steps, each candidate allocating the
model and running one inference. On this 64-bit host TFLite Micro's own structures hold 8-byte
pointers, so the figure is an upper bound for a 32-bit Cortex-M. `ArenaSearch` runs the search in
a child process while the caller goes on with other stages.

`tflite_micro` is imported where a model is run, not with this module: its constants and the
arena of a Vela-compiled model are needed where TensorFlow Lite Micro is not installed
(`engines/micro.py` says what stands in for it there). The arena search forks, which only
POSIX systems do; TensorFlow Lite Micro's wheels are for Linux x86-64 alone.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import struct
from collections.abc import Iterator

import numpy as np

from generator.errors import VerificationError
from generator.support.processes import die_with_parent
from generator.support.quiet import muted

ARENA_STEP = 16

# What a firmware adds to Vela's SRAM figure for TFLite Micro's own structures when running a
# Vela-compiled model: Arm's ML Embedded Evaluation Kit reserves at least 2 KiB. Documented, not
# measured: the NPU model cannot run on this host.
NPU_ARENA_MARGIN_BYTES = 2048


def npu_arena_bytes(scratch_bytes: int) -> int:
    """The tensor arena a firmware must reserve to run a Vela-compiled model whose `scratch`
    tensor (the NPU's working memory, allocated in the arena) has `scratch_bytes`."""
    return _round_up(scratch_bytes) + NPU_ARENA_MARGIN_BYTES


def run_tflm(content: bytes, inputs: np.ndarray, outputs: int) -> list[np.ndarray]:
    """Raw values of the model's `outputs` outputs by position, each (N, ...), for `inputs`."""
    from tflite_micro import runtime

    try:
        with muted():
            interpreter = runtime.Interpreter.from_bytes(content)
            details = [interpreter.get_output_details(i) for i in range(outputs)]
            results = [np.empty((len(inputs), *d["shape"][1:]), d["dtype"]) for d in details]
            for row, sample in enumerate(inputs):
                interpreter.set_input(sample[None], 0)
                interpreter.invoke()
                for position, result in enumerate(results):
                    result[row] = interpreter.get_output(position)[0]
    except (RuntimeError, ValueError, struct.error) as error:
        raise VerificationError(
            f"TensorFlow Lite Micro cannot load, allocate or run the .tflite ({error}): a "
            "Cortex-M could not run it either; --debug shows TFLite Micro's own messages"
        ) from error
    return results


def minimum_arena(content: bytes, sample: np.ndarray) -> int:
    """The smallest tensor arena (bytes) in which TFLite Micro allocates and runs the model."""
    low, high = 0, _round_up(10 * len(content))  # the runtime's own default is 10× the model
    if not _runs(content, sample, high):
        raise RuntimeError(f"TFLite Micro cannot run the model even in {high} bytes")
    while high - low > ARENA_STEP:
        middle = _round_up((low + high) // 2)
        if middle >= high:
            break
        if _runs(content, sample, middle):
            high = middle
        else:
            low = middle
    return high


class ArenaSearch:
    """`minimum_arena` running in a forked child while the caller goes on with other stages.

    The child is forked before the caller starts threads of its own (Vela's), so it holds no
    lock another thread held, and it forks each candidate from a process with one thread. It
    dies with its parent, whatever signal killed that (Linux's parent-death signal), so a
    killed build leaves no search behind.
    """

    def __init__(self, content: bytes, sample: np.ndarray) -> None:
        self._limit = _round_up(10 * len(content))
        reader, writer = os.pipe()
        try:
            with _signals_held():  # a stop arriving now is taken once the child is known
                self._pid = os.fork()
                if self._pid == 0:  # the child: answer through the pipe, never return
                    code = 1
                    try:
                        os.close(reader)
                        die_with_parent()
                        os.write(writer, str(minimum_arena(content, sample)).encode())
                        code = 0
                    finally:
                        os._exit(code)
                os.close(writer)
                self._answer = os.fdopen(reader, "rb")
        except BaseException:  # the stop held above: the child must not outlive it
            if hasattr(self, "_answer"):
                self.cancel()
            raise

    def result(self) -> int:
        """Wait for the smallest arena, in bytes."""
        with self._answer:
            text = self._answer.read()
        _, status = os.waitpid(self._pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not text:
            raise VerificationError(
                "TensorFlow Lite Micro could not allocate and run the .tflite in any arena up "
                f"to {self._limit} bytes: a Cortex-M could not run it either"
            )
        return int(text)

    def cancel(self) -> None:
        """End the search (the build failed elsewhere) and reap the child."""
        if not self._answer.closed:
            os.kill(self._pid, signal.SIGKILL)
            self._answer.close()
            os.waitpid(self._pid, 0)


def _runs(content: bytes, sample: np.ndarray, arena_size: int) -> bool:
    """Whether the model allocates and runs in `arena_size` bytes.

    Some models crash TFLite Micro outright when the arena is too small (MobileNetV2 at 32×32:
    a segmentation fault, not an error), so each try runs in a forked child process and a crash
    counts as "does not fit".
    """
    from tflite_micro import runtime  # imported before the fork: once, not in every child

    with _signals_held():
        pid = os.fork()
    if pid == 0:  # the child: report by exit code, never return into the caller's code
        faulthandler.disable()  # a crash here is an answer, not something to print
        code = 1
        try:
            with muted():
                interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena_size)
                interpreter.set_input(sample[None], 0)
                interpreter.invoke()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM around a fork: the CLI turns them into KeyboardInterrupt, and
    raised inside fork's own callbacks (logging's lock, released after a fork) Python prints
    and drops it, so the run would go on. Held, the signal is taken when the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _round_up(size: int) -> int:
    return -(-size // ARENA_STEP) * ARENA_STEP
