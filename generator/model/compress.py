"""Compress stage: kernels pruned and clustered for the Ethos-U's weight encoder, and held so
while they are fine-tuned.

On an Ethos-U55 a small classifier is bound by the weight bytes it streams, and Vela's weight
encoder stores a kernel in fewer bytes the fewer distinct values each output channel holds
(docs/optimize.md has the measurements). So:

- **Pruning** (`optimize.sparsity`): the fraction S of each kernel's smallest weights (by
  magnitude, the whole kernel ranked at once; ties in index order) is set to 0 and stays 0.
- **Clustering** (`optimize.clusters`): the kernel's values are replaced by K centroids, found
  by one-dimensional k-means (Lloyd's iterations from the values' quantiles, deterministic).
  With pruning, 0 is one of the K values: the remaining weights share K - 1 centroids.
- **Fine-tuning keeps the constraint**: each weight stays in its cluster (the assignment is
  fixed), and after every optimizer step a Keras constraint sets the kernel back to its
  clusters' means (pruned weights to 0). That is the step tfmot's clustering takes (a centroid
  moves by its members' mean update), as a projection after the step.
- Per-channel int8 quantization keeps the promise: batch normalization folds a positive or
  negative scale per output channel into the kernel, and quantization rounds each of K float
  values to one integer per channel, so each output channel holds at most K int8 values
  (generator/analysis/compression.py reads them back from the .tflite).

Both work on the kernel as Keras holds it, before batch normalization's per-channel scale is
folded in: the centroids are the layer's, not each channel's (docs/optimize.md says what that
costs).

Why native Keras 3 and not `tensorflow-model-optimization`: the same reason as QAT's
(generator/model/qat.py): tfmot needs Keras 2 and refuses Keras 3 models. The whole of what its
clustering and pruning wrappers do for a trained model is the projection above.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from generator.config.schema import OptimizeConfig
from generator.errors import UserError
from generator.model.layers import all_layers

# The layers whose `kernel` is compressed (Keras 3 names a depthwise kernel `kernel` too).
_WEIGHTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)

KMEANS_ITERATIONS = 50


@dataclass(frozen=True)
class LayerCompression:
    """What was done to one layer's kernel."""

    layer: str
    clusters: int  # values the kernel holds (0 stays among them with sparsity); 0: not clustered
    sparsity: float  # the fraction of its weights set to 0
    weights: int  # the kernel's size


@dataclass(frozen=True)
class _Constraint:
    """Each weight's cluster (flat `assignments`; the last of `clusters` is the pruned weights',
    held at 0, and may be empty), or with pruning alone the `mask` (1 kept, 0 pruned)."""

    assignments: np.ndarray | None
    clusters: int
    mask: np.ndarray | None


class Compression:
    """The compressed layers of a model and the constraint that holds each kernel so."""

    def __init__(self, layers: list[LayerCompression], constraints: dict[str, _Constraint]):
        self.layers = layers
        self._constraints = constraints

    @contextmanager
    def held(self, model: keras.Model) -> Iterator[None]:
        """Within this block every optimizer step on `model` (a copy of the compressed model,
        layers found by name) keeps the compression."""
        variables = []
        for layer in _kernel_layers(model):
            constraint = self._constraints.get(layer.name)
            if constraint is not None:
                variable = layer.kernel
                variable.constraint = _KeepCompressed(constraint)
                variables.append(variable)
        try:
            yield
        finally:
            for variable in variables:
                variable.constraint = None


def compress(model: keras.Model, config: OptimizeConfig) -> Compression:
    """Prune and cluster `model`'s kernels in place, as `config` asks per layer. A rule that
    decides no layer (a misspelt pattern, another backbone's names, one an earlier pattern
    shadows) is refused before anything changes."""
    _check_rules(_kernel_layers(model), config)
    layers, constraints = [], {}
    for layer in _kernel_layers(model):
        clusters = config.clusters_for(layer.name)
        sparsity = config.sparsity_for(layer.name)
        variable = layer.kernel
        kernel = np.asarray(variable.numpy(), dtype=np.float64)
        size = kernel.size
        pruned = round(sparsity * size)
        if clusters < 2 and not pruned:
            continue
        flat = kernel.reshape(-1)
        mask = np.ones(size, dtype=bool)
        mask[np.argsort(np.abs(flat), kind="stable")[:pruned]] = False
        assignments = centroids = None
        if clusters >= 2:
            kept_clusters = clusters - 1 if pruned else clusters
            centroids, kept_assignments = _kmeans(flat[mask], kept_clusters)
            assignments = np.full(size, len(centroids), dtype=np.int32)  # pruned: the last
            assignments[mask] = kept_assignments
            flat = np.append(centroids, 0.0)[assignments]
        else:
            flat = np.where(mask, flat, 0.0)
        variable.assign(flat.reshape(kernel.shape).astype(variable.dtype))
        layers.append(LayerCompression(layer.name, clusters, pruned / size, size))
        constraints[layer.name] = (
            _Constraint(assignments, len(centroids) + 1, None)
            if assignments is not None
            else _Constraint(None, 0, mask.astype(np.float32))
        )
    return Compression(layers, constraints)


def _check_rules(layers: list[keras.layers.Layer], config: OptimizeConfig) -> None:
    names = [layer.name for layer in layers]
    deciding = {
        next((p for p, _ in config.clusters if fnmatch.fnmatchcase(name, p)), None)
        for name in names
    }
    for pattern, clusters in config.clusters:
        if clusters and pattern not in deciding:
            raise UserError(
                f"optimize.clusters: {pattern!r} decides no Conv2D, DepthwiseConv2D or Dense "
                f"layer (the first matching pattern decides): use the model's layer names, "
                f"e.g. {', '.join(names[:3])}"
            )
    if config.sparsity and not any(config.sparsity_for(name) for name in names):
        raise UserError(
            f"optimize.sparsity_layers: {list(config.sparsity_layers)} match no Conv2D, "
            f"DepthwiseConv2D or Dense layer: use the model's layer names, e.g. "
            f"{', '.join(names[:3])}"
        )


def _kmeans(values: np.ndarray, clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """One-dimensional k-means: (centroids ascending, each value's centroid). Starts from the
    values' quantiles, so dense regions get more centroids; clusters left empty are dropped."""
    distinct = np.unique(values)
    if len(distinct) <= clusters:
        return distinct, np.searchsorted(distinct, values).astype(np.int32)
    order = np.sort(values)
    centroids = np.quantile(order, (np.arange(clusters) + 0.5) / clusters)
    for _ in range(KMEANS_ITERATIONS):
        bounds = (centroids[1:] + centroids[:-1]) / 2
        members = np.searchsorted(bounds, order)
        sums = np.bincount(members, weights=order, minlength=len(centroids))
        counts = np.bincount(members, minlength=len(centroids))
        kept = counts > 0
        updated = sums[kept] / counts[kept]
        if len(updated) == len(centroids) and np.array_equal(updated, centroids):
            break
        centroids = updated
    bounds = (centroids[1:] + centroids[:-1]) / 2
    return centroids, np.searchsorted(bounds, values).astype(np.int32)


class _KeepCompressed:
    """Called by the optimizer on the kernel after each step: the kernel set back to its
    clusters' means (pruned weights 0), or the pruned weights set back to 0."""

    def __init__(self, constraint: _Constraint):
        self.constraint = constraint
        if constraint.assignments is None:
            self.mask = ops.convert_to_tensor(constraint.mask)
            return
        counts = np.bincount(constraint.assignments, minlength=constraint.clusters)
        self.assignments = ops.convert_to_tensor(constraint.assignments)
        self.counts = ops.convert_to_tensor(np.maximum(counts, 1), dtype="float32")
        self.learned = ops.convert_to_tensor(  # every cluster but the pruned weights'
            np.arange(constraint.clusters) < constraint.clusters - 1, dtype="float32"
        )

    def __call__(self, kernel):
        if self.constraint.assignments is None:
            return kernel * ops.reshape(self.mask, ops.shape(kernel))
        flat = ops.reshape(kernel, (-1,))
        sums = ops.segment_sum(flat, self.assignments, num_segments=self.constraint.clusters)
        centroids = sums / self.counts * self.learned
        return ops.reshape(ops.take(centroids, self.assignments), ops.shape(kernel))


def _kernel_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in all_layers(model) if isinstance(layer, _WEIGHTED) and layer.weights]
