"""Refuse a build that cannot fit in this machine's memory, before TensorFlow is imported.

A 20000×20000 input is accepted by every other check, then runs for minutes until the OS kills
the process. So the config is checked against an estimate of the build's peak memory, an upper
bound by design (a refused build should really not have fitted), and the memory available now.
No TensorFlow here: `validate` runs this check too. A model file's input shape and layers are
only known once TensorFlow reads it; `build.load_model_file` then runs the same check with the
file's own figures (`Network`).

The estimate, in bytes, for an input of H×W×C (P = H·W pixels), is the sum of:

    runtime      1 GiB: Python, TensorFlow, LiteRT, TFLite Micro and Vela loaded, and Keras's
                 fixed cost of training (measured: 580 MiB after import, 886 MiB peak for the
                 32×32 demo with training)
    weights      parameters × 24 (float32 in Keras, the saved .keras, the converter's copies),
                 × 36 with training (Adam's two moments and the gradients)
    calibration  images × H·W·C × 5: uint8 plus a float32 copy, for min(samples + holdout,
                 image files in calibration.data) images
    inference    A × 4 × 34: verify and evaluate run the float model on chunks of 32 images,
                 and Keras keeps every layer's output of a chunk until the call returns (32);
                 the converter's calibration keeps every tensor of one image (2)
    training     B × A × 4 × 2: the activations kept for the backward pass and their
                 gradients (measured: 1.2 × B × A × 4), for a batch of B = min(batch_size,
                 images in train.data) images
    labelled     labelled images (train.data, train.validation, evaluation.data; one per CSV
                 row or image file) × H·W·C × 2: the uint8 images, decoded into one array
                 (training converts one batch at a time to float, `model.train`), and the copy
                 evaluation feeds the integer runtimes

The stages run one after another, so summing every term overstates the peak, by design.

A is the number of float values every layer of the float Keras model outputs for one image
(BatchNormalization and activation layers count on their own, as Keras keeps their outputs).
For our backbones, A ≤ P × (a + b·alpha), and the parameters are at most c + d·alpha² plus the
heads' Dense layers (features × (classes + 1) each). The constants bound what keras.applications
(and generator/model/mobilenet_v4.py) builds at 64×64 and 224×224 for alpha 0.05 to 4
(measured: sum of every layer's output size):

| backbone | a | b | measured A / P at alpha 0.25, 1, 4 | c | d | features |
|---|---|---|---|---|---|---|
| mobilenet_v1 | 4 | 340 | 87, 339, 1347 | 20,000 | 3.3 M | 1024·alpha |
| mobilenet_v2 | 120 | 440 | 157, 439, 1745 | 250,000 | 2.3 M | 1280·max(1, alpha) |
| mobilenet_v3_small | 48 | 90 | 58, 109, 366 | 100,000 | 0.95 M | 576·alpha (at least 48) |
| mobilenet_v3_large | 100 | 290 | 135, 315, 1162 | 250,000 | 3.0 M | 960·alpha (at least 48) |
| mobilenet_v4_conv_small | 12 | 116 | 29, 115, 461 | 30,000 | 1.26 M | 960·alpha (at least 48) |
| mobilenet_v4_conv_medium | 30 | 332 | 90, 330, 1321 | 300,000 | 7.0 M | 960·alpha (at least 48) |

MobileNetV2's constant is large because its expanded layers are 6× wider and its channels
never drop below 8; MobileNetV1's first convolution runs at H/2×W/2 with 32·alpha channels.

Checked against real builds, peak resident memory (`resource.getrusage` after each stage;
`/usr/bin/time -v` agrees within 1%), mobilenet_v1, 250 calibration images:

| build | measured | estimated |
|---|---|---|
| configs/profile_96x96.yaml (96×96×3, α 0.25) | 0.80 GiB | 1.14 GiB |
| the same at 224×224×3, α 1.0 | 3.17 GiB (2.1 GiB of it in verify) | 3.44 GiB |
| configs/default.yaml (32×32×1, 1,797 labelled images), one epoch (*) | 0.87 GiB | 1.05 GiB |
| the same at 128×128×1 | 1.14 GiB | 1.72 GiB |
| the same at 224×224×3, α 1.0, without evaluation | 4.46 GiB | 8.80 GiB |

(*) up to the evaluation stage, which a change in progress elsewhere had broken at the time.

The memory available is the kernel's MemAvailable (what can be allocated without swapping),
capped by the cgroup's memory limit when the process runs in a container that sets one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from generator.data.images import find_images
from generator.errors import UserError

if TYPE_CHECKING:
    from generator.config.schema import Config, ModelConfig

GIB = 1024**3
RUNTIME_BYTES = GIB
INFERENCE_CHUNK = 32  # images per call of the float model in verify and evaluate
FLOAT_BYTES = 4

# (a, b, c, d, features per alpha, fewest features): see the module docstring.
_BACKBONES = {
    "mobilenet_v1": (4, 340, 20_000, 3.3e6, 1024, 0),
    "mobilenet_v2": (120, 440, 250_000, 2.3e6, 1280, 1280),
    "mobilenet_v3_small": (48, 90, 100_000, 0.95e6, 576, 48),
    "mobilenet_v3_large": (100, 290, 250_000, 3.0e6, 960, 48),
    "mobilenet_v4_conv_small": (12, 116, 30_000, 1.26e6, 960, 48),
    "mobilenet_v4_conv_medium": (30, 332, 300_000, 7.0e6, 960, 48),
}

# Where the cgroup (v2, then v1) states the container's memory limit.
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


@dataclass(frozen=True)
class Workload:
    """How many images a build holds in memory, known from the config before the input shape."""

    calibration_images: int
    labelled_images: int
    batch_size: int  # as configured; 0 without training
    batch_images: int  # what a batch holds: no more than train.data has


@dataclass(frozen=True)
class Network:
    """The float model's size: values all layers output for one image, and its parameters."""

    activations: int
    parameters: int


def workload(config: Config) -> Workload:
    """Count the images the config's sets hold (file names and CSV lines only, no decoding)."""
    calibration = config.calibration
    found = len(find_images(calibration.data))
    sets = []
    batch_size = batch_images = 0
    if config.train is not None:
        sets.append(_count_labelled(config.train.data))
        batch_size = config.train.batch_size
        batch_images = min(batch_size, sets[0])
        if isinstance(config.train.validation, Path):
            sets.append(_count_labelled(config.train.validation))
    if config.evaluation is not None:
        sets.append(_count_labelled(config.evaluation.data))
    return Workload(
        calibration_images=min(calibration.samples + calibration.holdout, found),
        labelled_images=sum(sets),
        batch_size=batch_size,
        batch_images=batch_images,
    )


def backbone_network(model: ModelConfig) -> Network:
    """Upper bounds of our MobileNet's activations and parameters (constants above)."""
    a, b, c, d, per_alpha, fewest = _BACKBONES[model.backbone]
    height, width, _ = model.input_shape
    features = max(fewest, per_alpha * model.alpha)
    heads = sum(features * (head.num_classes + 1) for head in model.heads)
    return Network(
        activations=math.ceil(height * width * (a + b * model.alpha)),
        parameters=math.ceil(c + d * model.alpha**2 + heads),
    )


def estimate_bytes(
    network: Network, shape: tuple[int, int, int], work: Workload
) -> dict[str, float]:
    """The estimate's terms in bytes, by name (module docstring); their sum is the peak."""
    values = math.prod(shape)
    training = work.batch_size > 0
    return {
        "runtime": RUNTIME_BYTES,
        "weights": network.parameters * (36 if training else 24),
        "calibration": work.calibration_images * values * (1 + FLOAT_BYTES),
        "inference": network.activations * FLOAT_BYTES * (INFERENCE_CHUNK + 2),
        "training": work.batch_images * network.activations * FLOAT_BYTES * 2,
        "labelled": work.labelled_images * values * 2,
    }


def available_bytes() -> int:
    """Memory this process can allocate now: what the system reports available (MemAvailable
    on Linux; psutil asks each system its own way), capped by a cgroup limit."""
    available = psutil.virtual_memory().available
    for limit_file in _CGROUP_LIMITS:
        limit = _read_int(limit_file)
        if limit is not None:
            available = min(available, limit)
    return available


def check_memory(
    network: Network,
    shape: tuple[int, int, int],
    work: Workload,
    what: str,
    *,
    model_file: bool = False,
) -> None:
    """Raise `UserError` when the estimate exceeds the memory available.

    The message names the field behind the largest term and its fix; `what` names the input
    (`model.input_shape: [20000, 20000, 3]`, or the model file, whose input cannot be resized).
    """
    terms = estimate_bytes(network, shape, work)
    needed = sum(terms.values())
    available = available_bytes()
    if needed <= available:
        return
    largest = max(terms, key=terms.__getitem__)
    if largest == "training":
        spare = available - (needed - terms["training"])
        fits = int(spare // (terms["training"] / work.batch_images))
        what = f"train.batch_size: {work.batch_size} at input {'×'.join(map(str, shape))}"
        fix = "use a smaller batch_size" + (f" (at most {fits})" if fits >= 1 else "")
    elif largest == "weights":
        what = f"model: {network.parameters:,} parameters"
        fix = "use a smaller alpha or fewer classes"
    elif largest == "runtime":
        fix = "free memory (TensorFlow alone needs about 1 GiB)"
    elif largest == "labelled":
        fix = "use fewer labelled images or a smaller input"
    elif model_file:
        fix = "use a model with a smaller input, or fewer calibration.samples"
    else:
        fix = _smaller_shape(terms, shape, available)
    raise UserError(
        f"{what} needs an estimated {needed / GIB:.1f} GiB of memory, this machine has "
        f"{available / GIB:.1f} GiB available: {fix}"
    )


def _smaller_shape(terms: dict[str, float], shape: tuple[int, int, int], available: int) -> str:
    """The fix for an input too large, with a shape that fits when there is one.

    Every term but runtime and weights grows with H·W, so H and W shrink by the square root of
    the factor those terms must shrink by, rounded down to multiples of 32.
    """
    fixed = terms["runtime"] + terms["weights"]
    scale = math.sqrt(max(available - fixed, 0) / (sum(terms.values()) - fixed))
    height, width, channels = shape
    # No side above 224 is suggested: the usual MobileNet input, and already a lot for an MCU.
    smaller = [min(224, int(side * scale) // 32 * 32) for side in (height, width)] + [channels]
    if min(smaller[:2]) < 32:
        return "use a smaller input_shape or fewer calibration.samples, or free memory"
    return f"use a smaller input_shape (e.g. {smaller}) or fewer calibration.samples"


def _count_labelled(source: Path) -> int:
    """Images in a labelled set: CSV lines but the header, or image files below a folder."""
    if source.is_dir():
        return len(find_images(source))
    with source.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _read_int(path: Path) -> int | None:
    """An integer from a cgroup file, or None when absent or 'max' (no limit)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
