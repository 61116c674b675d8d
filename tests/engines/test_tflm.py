import numpy as np
from conftest import PHOTOS
from PIL import Image
from tflite_micro import runtime

from generator.engines.tflm import ARENA_STEP, minimum_arena


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
