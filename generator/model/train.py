"""Train stage: fit the model's heads (and backbone) on labelled images.

- Each head's loss is cross-entropy on its logits, masked where the image has no label for
  it, and averaged over the labelled images of the batch only: a head with no labels in a
  batch gets zero loss and no gradient. The total is the sum weighted by `loss_weights`.
- Fine-tuning a pretrained backbone: the heads alone first (`freeze_backbone_epochs`), then
  the whole network with the backbone at a multiple of the heads' rate (`train_model`).
- Adam with a cosine-decayed (or constant) learning rate after an optional linear warm-up from
  0 (`warmup_epochs`); light augmentation (horizontal flip, shift, brightness) on the training
  images only. The warm-up lets a higher peak rate train stably: on the digits demo, 0.01 with 2
  warm-up epochs reached a lower training loss and higher test accuracy than 0.003 without
  (docs/training.md).
- After every epoch the validation loss and per-head accuracy are measured; early stopping
  watches the validation loss, and the weights of the epoch with the lowest validation loss
  are the ones kept, whether or not training stopped early.
- BatchNormalization layers train with momentum 0.9 (Keras's default is 0.99): with the few
  hundred steps a small data set gives, the moving statistics that inference (and the
  quantized model) use would otherwise still lag far behind the weights, and validation
  accuracy would stay at chance while training accuracy climbs.
- Reproducible for a fixed seed on the same machine: seeded shuffling and augmentation, and
  TensorFlow's deterministic ops (switched on for the whole process).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from generator.config.schema import Head, TrainConfig
from generator.data.labelled import LabelledImages
from generator.model.layers import all_layers
from generator.model.pretrained import backbone_layers

BATCHNORM_MOMENTUM = 0.9


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # from 1
    loss: float
    val_loss: float
    accuracy: dict[str, float]  # per head, over labelled training images (augmented)
    val_accuracy: dict[str, float]


@dataclass(frozen=True)
class TrainingResult:
    epochs: tuple[EpochRecord, ...]
    best_epoch: int
    train_images: int
    validation_images: int
    seconds: float  # wall time of the training loop (every epoch and its validation)
    images_per_second: float  # training images seen (augmented) per second of that time
    frozen_epochs: int = 0  # the first epochs, trained with the backbone frozen


def split_validation(data: LabelledImages, fraction: float, seed: int):
    """A deterministic (seeded) split into (training, validation) sets."""
    training, held = validation_rows(len(data.pixels), fraction, seed)
    return data.subset(training), data.subset(held)


def validation_rows(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a set of `count` images that train and those held out for validation, each
    in order: a seeded split (the build decodes each part on its own, so the whole set is
    never in memory beside its parts)."""
    order = np.random.default_rng(seed).permutation(count)
    held = max(1, round(count * fraction))
    return np.sort(order[held:]), np.sort(order[:held])


def masked_sparse_crossentropy(y_true, y_pred):
    """Per-image cross-entropy from logits, 0 where the label is -1 (missing).

    Scaled by batch / labelled so that Keras's mean over the batch is the mean over the
    labelled images alone.
    """
    labels = _labels(y_true)
    mask = ops.cast(labels >= 0, "float32")
    losses = keras.losses.sparse_categorical_crossentropy(
        ops.maximum(labels, 0), y_pred, from_logits=True
    )
    batch = ops.cast(ops.shape(mask)[0], "float32")
    return losses * mask * batch / ops.maximum(ops.sum(mask), 1.0)


def distillation_loss(weight: float, temperature: float) -> Callable:
    """A head's loss with a teacher: `y_true` holds each image's label (-1: none) and then the
    teacher's logits. Keras's mean over the batch of what this returns is

        (1 - weight) * (cross-entropy with the labels, over the labelled images)
        + weight * T² * KL(softmax(teacher / T) || softmax(student / T)), over every image,

    Hinton et al.'s (2015) form: T² keeps the teacher term's gradients at the labels' scale
    as T changes. An image without a label learns from the teacher alone. Targets of labels
    alone (validation) get the cross-entropy alone.
    """

    def loss(y_true, y_pred):
        if len(y_true.shape) == 1:  # validation batches carry the labels alone
            return masked_sparse_crossentropy(y_true, y_pred)
        teacher = ops.cast(y_true[:, 1:], "float32") / temperature
        student = ops.cast(y_pred, "float32") / temperature
        target = ops.softmax(teacher, axis=-1)
        divergence = ops.sum(
            target * (ops.log_softmax(teacher, axis=-1) - ops.log_softmax(student, axis=-1)),
            axis=-1,
        )
        labelled = masked_sparse_crossentropy(y_true, y_pred)
        return (1.0 - weight) * labelled + weight * temperature**2 * divergence

    return loss


def _labels(y_true):
    """The labels of a batch's targets: the targets themselves, or their first column when
    the teacher's logits follow (distillation)."""
    if len(y_true.shape) == 2:
        y_true = y_true[:, 0]
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


class MaskedAccuracy(keras.metrics.Metric):
    """Top-1 accuracy over the images that have a label for the head."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = _labels(y_true)
        mask = labels >= 0
        hits = ops.logical_and(mask, ops.argmax(y_pred, axis=-1) == labels)
        self.correct.assign_add(ops.sum(ops.cast(hits, "float32")))
        self.count.assign_add(ops.sum(ops.cast(mask, "float32")))

    def result(self):
        return self.correct / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)


def train_model(
    *,
    model: keras.Model,
    heads: tuple[Head, ...],
    training: LabelledImages,
    validation: LabelledImages,
    config: TrainConfig,
    input_range: tuple[float, float],
    on_epoch: Callable[[EpochRecord], None],
    teacher: keras.Model | None = None,
) -> TrainingResult:
    """Train `model` (dict outputs keyed by head name) in place; return the epoch history.

    With `freeze_backbone_epochs`, training runs in two phases, each with its own optimizer
    and learning-rate schedule (warm-up, then cosine or constant, over the phase's epochs):
    first the heads alone, every other layer frozen (batch normalization then runs in
    inference mode, so its statistics stay as loaded too); then the whole network, the
    backbone at `backbone_learning_rate` times the heads' rate. Early stopping ends the frozen
    phase, not the training: the backbone is still unfrozen. The second phase starts from the
    frozen phase's best epoch; the kept weights are those of the epoch with the lowest
    validation loss over both phases.

    With a `teacher` (a float model with dict outputs keyed by head name), every training
    batch, as augmented, is also given to the teacher, and each head learns from its logits
    too (`distillation_loss`, weighted by `config.distillation_weight`). The validation loss,
    early stopping and the kept epoch follow the labels alone.
    """
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = min(layer.momentum, BATCHNORM_MOMENTUM)
    steps = int(np.ceil(len(training.pixels) / config.batch_size))
    train_set = _dataset(training, heads, config, input_range, shuffle=True, teacher=teacher)
    # Validation scores the labels alone: the kept epoch is the one that predicts them best.
    validation_set = _dataset(validation, heads, config, input_range, shuffle=False)
    if teacher is None:
        head_loss = masked_sparse_crossentropy
    else:
        head_loss = distillation_loss(config.distillation_weight, config.temperature)
    history, keep_best = _History(heads, on_epoch), _KeepBest()
    frozen = config.freeze_backbone_epochs
    backbone = backbone_layers(model) if frozen else []
    # Layers frozen before (QAT's batch normalization, a model file's own) stay frozen.
    was_trainable = [layer.trainable for layer in backbone]
    phases = [
        (epochs, freeze)
        for epochs, freeze in ((frozen, True), (config.epochs - frozen, False))
        if epochs
    ]
    frozen_run = 0
    start = time.perf_counter()
    try:
        for epochs, freeze in phases:
            for layer, trainable in zip(backbone, was_trainable, strict=True):
                layer.trainable = trainable and not freeze
            scaled = [w for layer in backbone_layers(model) for w in layer.trainable_weights]
            model.compile(
                optimizer=_optimizer(config, steps, epochs, scaled),
                loss={h.name: head_loss for h in heads},
                loss_weights={h.name: config.loss_weights.get(h.name, 1.0) for h in heads},
                metrics={h.name: [MaskedAccuracy()] for h in heads},
            )
            callbacks: list[keras.callbacks.Callback] = [history, keep_best]
            if config.early_stopping:
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor="val_loss", patience=config.early_stopping
                    )
                )
            done = len(history.records)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Keras notes that a tf.data set is shuffled
                model.fit(
                    train_set,
                    validation_data=validation_set,
                    initial_epoch=done,
                    epochs=done + epochs,
                    callbacks=callbacks,
                    verbose=0,
                )
            if freeze:
                frozen_run = len(history.records)
            elif len(history.records) < done + epochs:
                break  # stopped early
    finally:
        for layer, trainable in zip(backbone, was_trainable, strict=True):
            layer.trainable = trainable
    seconds = time.perf_counter() - start
    records = tuple(history.records)
    best = min(records, key=lambda r: r.val_loss)
    images = len(training.pixels)
    return TrainingResult(
        records,
        best.epoch,
        images,
        len(validation.pixels),
        seconds,
        images * len(records) / seconds,
        frozen_epochs=frozen_run,
    )


def _optimizer(config: TrainConfig, steps: int, epochs: int, scaled: list) -> keras.Optimizer:
    """Adam with the config's schedule over `epochs` epochs of `steps` steps; the `scaled`
    variables (the backbone's) step at `backbone_learning_rate` times the rate."""
    warmup = steps * min(config.warmup_epochs, epochs - 1)
    rate = config.learning_rate
    if config.schedule == "cosine" or warmup:
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else rate,
            decay_steps=max(1, steps * epochs - warmup),
            alpha=0.0 if config.schedule == "cosine" else 1.0,  # 1.0: constant after warm-up
            warmup_target=rate if warmup else None,
            warmup_steps=warmup,
        )
    if config.backbone_learning_rate == 1.0 or not scaled:
        return keras.optimizers.Adam(rate)
    return _ScaledAdam(rate, scaled=scaled, scale=config.backbone_learning_rate)


class _ScaledAdam(keras.optimizers.Adam):
    """Adam whose steps for some variables (the backbone's) use a multiple of the rate.

    Keras 3 has no per-variable learning rate, and scaling the gradients would not do it: Adam
    divides the gradient by its own running magnitude. The rate passed to `update_step` is
    scaled instead; `_var_key` is Keras's own key for a variable across backends.
    """

    def __init__(self, learning_rate, *, scaled: list, scale: float):
        super().__init__(learning_rate, name="scaled_adam")
        self._scaled_variables = scaled
        self._scale = scale
        self._scaled_keys: set = set()

    def build(self, variables):
        super().build(variables)
        self._scaled_keys = {self._var_key(v) for v in self._scaled_variables}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._scaled_keys:
            learning_rate = ops.multiply(learning_rate, self._scale)
        super().update_step(gradient, variable, learning_rate)


# Validation batches: larger than training's, since no gradients are kept.
VALIDATION_BATCH = 256


def _dataset(
    data: LabelledImages,
    heads,
    config: TrainConfig,
    input_range,
    *,
    shuffle: bool,
    teacher: keras.Model | None = None,
) -> tf.data.Dataset:
    """Batches of `data` as the model sees them, made one batch at a time from the uint8 pixels:
    the set is never held as floats (4 bytes a value), only the batch being fed. Training
    batches (`shuffle`) come in a new seeded order each epoch and are augmented; validation
    batches in file order, as they are. With a `teacher`, each head's targets are its labels
    followed by the teacher's logits for the same (augmented) images."""
    pixels, labels = data.pixels, data.labels
    size = config.batch_size if shuffle else VALIDATION_BATCH
    steps = -(-len(pixels) // size)
    order = np.random.default_rng(config.seed)

    def batches():
        rows = order.permutation(len(pixels)) if shuffle else np.arange(len(pixels))
        for start in range(0, len(rows), size):
            batch = np.sort(rows[start : start + size])  # sorted: contiguous reads
            yield pixels[batch], {h.name: labels[batch, i] for i, h in enumerate(heads)}

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, *pixels.shape[1:]), tf.uint8),
            {h.name: tf.TensorSpec((None,), tf.int64) for h in heads},
        ),
    ).apply(tf.data.experimental.assert_cardinality(steps))
    low, high = input_range
    scale = np.float32((high - low) / 255)
    dataset = dataset.map(
        lambda images, y: (np.float32(low) + tf.cast(images, tf.float32) * scale, y)
    )
    augment = config.augment
    if shuffle and augment is not None:
        layers = []
        if augment.flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=config.seed))
        if augment.shift:
            layers.append(
                keras.layers.RandomTranslation(
                    augment.shift, augment.shift, fill_mode="nearest", seed=config.seed
                )
            )
        if augment.brightness:
            layers.append(
                keras.layers.RandomBrightness(
                    augment.brightness, value_range=input_range, seed=config.seed
                )
            )
        if layers:
            pipeline = keras.Sequential(layers)
            dataset = dataset.map(lambda images, labels: (pipeline(images, training=True), labels))
    if teacher is not None:

        def with_teacher(images, labels):
            logits = teacher(images, training=False)
            return images, {
                h.name: tf.concat(
                    [
                        tf.cast(labels[h.name], tf.float32)[:, None],
                        tf.cast(logits[h.name], tf.float32),
                    ],
                    axis=-1,
                )
                for h in heads
            }

        dataset = dataset.map(with_teacher)
    return dataset.prefetch(2)


class _History(keras.callbacks.Callback):
    def __init__(self, heads, on_epoch):
        super().__init__()
        self.heads = heads
        self.on_epoch = on_epoch
        self.records: list[EpochRecord] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # Keras names a metric after its output only when the model has more than one.
        prefix = "{}_" if len(self.heads) > 1 else ""
        record = EpochRecord(
            epoch=epoch + 1,
            loss=float(logs["loss"]),
            val_loss=float(logs["val_loss"]),
            accuracy={h.name: float(logs[prefix.format(h.name) + "accuracy"]) for h in self.heads},
            val_accuracy={
                h.name: float(logs["val_" + prefix.format(h.name) + "accuracy"]) for h in self.heads
            },
        )
        self.records.append(record)
        self.on_epoch(record)


class _KeepBest(keras.callbacks.Callback):
    """Restore, at the end, the weights of the epoch with the lowest validation loss."""

    def __init__(self):
        super().__init__()
        self.best_loss = np.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_loss"] < self.best_loss:
            self.best_loss = logs["val_loss"]
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
