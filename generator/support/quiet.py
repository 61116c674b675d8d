"""Keep TensorFlow's and Vela's log noise away from the user.

TensorFlow logs from C++ (absl, MLIR) straight to file descriptor 2 and Keras's exporter prints
to stdout, so silencing `logging` is not enough: `muted()` points descriptors 1 and 2, and
`sys.stdout` and `sys.stderr`, at /dev/null around a noisy call. The CLI skips it under
`--debug`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

_enabled = True


def quiet_tensorflow(enabled: bool = True) -> None:
    """Call before TensorFlow is imported: sets its C++ log level and remembers `enabled`."""
    global _enabled
    _enabled = enabled
    if enabled:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Silence stdout, stderr and Python warnings for the block (unless quieting is off)."""
    if not _enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        # Python-level writers too, for when sys.stderr is not descriptor 2 (pytest's capture,
        # a notebook): ai-edge-quantizer's tqdm progress bar writes to the object.
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
