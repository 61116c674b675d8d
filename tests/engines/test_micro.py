"""The runtime that stands for a Cortex-M: TFLite Micro where installed, LiteRT's reference
kernels where not, and how close the two are where both run."""

import numpy as np
import pytest
from conftest import MICRO, PHOTOS, TFLM_INSTALLED, micro_by_hand, needs_tflm
from PIL import Image

from generator.engines.litert import run_tflite
from generator.engines.micro import micro_runtime, minimum_arena, run_micro, start_arena_search
from generator.errors import VerificationError


def _photos(count: int) -> np.ndarray:
    paths = sorted(PHOTOS.glob("*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32))) for p in paths])


def test_the_runtime_follows_what_is_installed(small_tflite):
    content = small_tflite("mobilenet_v1")
    images = _photos(4)
    assert micro_runtime() == MICRO
    for ours, theirs in zip(
        run_micro(content, images, 2), micro_by_hand(content, images), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    if TFLM_INSTALLED:
        assert minimum_arena(content, images[0]) > 0
        search = start_arena_search(content, images[0])
        assert search is not None and search.result() == minimum_arena(content, images[0])
    else:  # no arena without TFLite Micro: not measured, never guessed
        assert minimum_arena(content, images[0]) is None
        assert start_arena_search(content, images[0]) is None


def test_a_model_the_runtime_cannot_run_is_a_verification_error(small_tflite):
    content = small_tflite("mobilenet_v1")
    with pytest.raises(VerificationError, match="cannot load, allocate or run"):
        run_micro(content[: len(content) // 2], _photos(1), 2)


@needs_tflm
@pytest.mark.parametrize(
    "backbone", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"]
)
def test_the_reference_kernels_stay_within_one_step_of_tflite_micro(small_tflite, backbone):
    """What justifies the substitute: on every backbone the reference kernels' integer outputs
    are at most one quantization step from TFLite Micro's."""
    from generator.engines.tflm import run_tflm

    content = small_tflite(backbone)
    images = _photos(16)
    micro = run_tflm(content, images, 2)
    reference = run_tflite(content, images, "litert_reference")
    for ours, theirs in zip(micro, reference, strict=True):
        steps = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
        assert steps.max() <= 1, backbone
