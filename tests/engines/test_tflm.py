import os

import numpy as np
import pytest
from conftest import PHOTOS
from PIL import Image

from generator.engines.tflm import ARENA_STEP, ArenaSearch, minimum_arena
from generator.errors import VerificationError

runtime = pytest.importorskip(
    "tflite_micro", reason="tflite-micro is not installed (no wheel for this platform)"
).runtime


def test_minimum_arena_is_the_smallest_that_runs_even_where_smaller_ones_crash(small_tflite):
    """MobileNetV2 at 32×32 crashes TFLite Micro natively in too small an arena: the search
    survives that and lands on an arena that runs, one step above one that does not."""
    content = small_tflite("mobilenet_v2")
    image = np.asarray(Image.open(PHOTOS / "astronaut_00.jpg").convert("RGB").resize((32, 32)))
    arena = minimum_arena(content, image)
    assert arena % ARENA_STEP == 0
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena)
    interpreter.set_input(image[None], 0)
    interpreter.invoke()
    assert interpreter.get_output(0).shape == (1, 3)
    assert minimum_arena(content, image) == arena


def _image() -> np.ndarray:
    return np.asarray(Image.open(PHOTOS / "astronaut_00.jpg").convert("RGB").resize((32, 32)))


def test_the_search_beside_other_work_finds_the_same_arena(small_tflite):
    content = small_tflite("mobilenet_v1")
    search = ArenaSearch(content, _image())
    assert search.result() == minimum_arena(content, _image())


def test_a_cancelled_search_leaves_no_process(small_tflite):
    search = ArenaSearch(small_tflite("mobilenet_v1"), _image())
    child = search._pid
    search.cancel()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # reaped, not a zombie


def test_a_model_tflite_micro_cannot_run_is_a_verification_error(small_tflite):
    content = small_tflite("mobilenet_v1")
    with pytest.raises(VerificationError, match="could not allocate and run"):
        ArenaSearch(content[: len(content) // 2], _image()).result()  # cut short
