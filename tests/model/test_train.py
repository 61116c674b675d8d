import keras
import numpy as np
import tensorflow as tf
from conftest import digit_images

from generator.config.schema import AugmentConfig, Head, ModelConfig, TrainConfig
from generator.data.labelled import MISSING, LabelledImages
from generator.model.build import BuiltModel, build_model, training_copy
from generator.model.layers import all_layers
from generator.model.pretrained import backbone_layers
from generator.model.train import masked_sparse_crossentropy, split_validation, train_model

HEADS = (Head("digit", 10, None), Head("parity", 2, None), Head("high", 2, None))
MODEL = ModelConfig(
    backbone="mobilenet_v1", alpha=0.25, input_shape=(32, 32, 1), heads=HEADS, weights=None, seed=0
)


def _digits(count: int) -> LabelledImages:
    pixels, digits = digit_images()
    labels = np.stack([digits, digits % 2, (digits >= 5).astype(int)], axis=1)[:count]
    classes = {"digit": tuple(map(str, range(10))), "parity": ("0", "1"), "high": ("0", "1")}
    return LabelledImages(pixels[:count], labels, classes)


def _config(epochs: int, **changes) -> TrainConfig:
    settings = dict(
        data=None,
        validation=0.2,
        epochs=epochs,
        batch_size=32,
        learning_rate=0.003,
        schedule="cosine",
        loss_weights={},
        early_stopping=0,
        augment=AugmentConfig(flip=False, shift=0.1, brightness=0.1),
        seed=0,
    )
    return TrainConfig(**(settings | changes))


def _train(model, config: TrainConfig, count: int = 96):
    training, validation = split_validation(_digits(count), 0.25, seed=0)
    return train_model(
        model=model,
        heads=HEADS,
        training=training,
        validation=validation,
        config=config,
        input_range=(0.0, 1.0),
        on_epoch=lambda record: None,
    )


def test_a_head_without_labels_in_the_batch_gets_no_gradient():
    model = build_model(MODEL, batch_size=None)
    pixels, digits = digit_images()
    x = pixels[:16].astype("float32") / 255
    parity = np.full(16, MISSING)  # no parity label anywhere in this batch
    with tf.GradientTape() as tape:
        outputs = model(x, training=True)
        loss = tf.reduce_mean(masked_sparse_crossentropy(digits[:16], outputs["digit"]))
        loss += tf.reduce_mean(masked_sparse_crossentropy(parity, outputs["parity"]))
    parity_kernel = model.get_layer("parity_logits").kernel
    digit_kernel = model.get_layer("digit_logits").kernel
    gradients = tape.gradient(loss, [parity_kernel.value, digit_kernel.value])
    assert gradients[0] is None or np.all(gradients[0].numpy() == 0)
    assert np.abs(gradients[1].numpy()).max() > 0


def test_masked_loss_averages_over_labelled_images_only():
    logits = tf.constant([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0], [1.0, 1.0]])
    labels = tf.constant([0, 0, MISSING, MISSING])
    expected = (
        keras.losses.sparse_categorical_crossentropy(
            tf.constant([0, 0]), logits[:2], from_logits=True
        )
        .numpy()
        .mean()
    )
    masked = tf.reduce_mean(masked_sparse_crossentropy(labels, logits)).numpy()
    assert np.isclose(masked, expected)


def test_training_lifts_every_head_well_above_chance():
    data = _digits(1200)
    training, validation = split_validation(data, 0.2, seed=0)
    model = build_model(MODEL, batch_size=None)
    records = []
    config = _config(12, batch_size=16, augment=None)
    result = train_model(
        model=model,
        heads=HEADS,
        training=training,
        validation=validation,
        config=config,
        input_range=(0.0, 1.0),
        on_epoch=records.append,
    )
    assert [r.epoch for r in records] == list(range(1, 13))
    assert (result.train_images, result.validation_images) == (960, 240)
    best = records[result.best_epoch - 1]
    assert best.val_loss == min(r.val_loss for r in records)
    # chance: 10% for digit, 50% for the two binary heads
    assert best.val_accuracy["digit"] > 0.6
    assert best.val_accuracy["parity"] > 0.75 and best.val_accuracy["high"] > 0.75
    # the kept weights are the best epoch's: recompute its validation accuracy
    outputs = model.predict(validation.pixels / np.float32(255), verbose=0)
    accuracy = np.mean(outputs["digit"].argmax(1) == validation.labels[:, 0])
    assert np.isclose(accuracy, best.val_accuracy["digit"], atol=1e-6)


def test_training_is_reproducible_for_a_seed():
    def weights():
        model = build_model(MODEL, batch_size=None)
        _train(model, _config(2), count=200)
        return model.get_weights()

    for a, b in zip(weights(), weights(), strict=True):
        assert np.array_equal(a, b)


def test_warm_up_rises_from_zero_to_the_peak_then_decays():
    model = build_model(MODEL, batch_size=None)
    config = _config(3, batch_size=16, augment=None, learning_rate=0.01, warmup_epochs=1)
    _train(model, config, count=64)
    schedule = model.optimizer._learning_rate  # 48 images: 3 steps per epoch
    rates = [float(schedule(step)) for step in (0, 3, 9)]
    assert rates[0] == 0.0 and np.isclose(rates[1], 0.01) and rates[2] < 1e-6
    assert int(model.optimizer.iterations.numpy()) == 9


def _arrays(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.weights] for layer in all_layers(model)}


def test_frozen_epochs_leave_the_backbone_and_its_statistics_as_they_were():
    model = build_model(MODEL, batch_size=None)
    before = _arrays(model)
    result = _train(model, _config(2, freeze_backbone_epochs=2, early_stopping=1))
    after = _arrays(model)
    backbone = {layer.name for layer in backbone_layers(model)}
    assert len(backbone) == 54 and result.frozen_epochs == len(result.epochs) == 2
    for name in backbone:  # kernels, and batch normalization's moving statistics
        for old, new in zip(before[name], after[name], strict=True):
            assert np.array_equal(old, new), name
    for head in HEADS:  # (a random backbone in inference mode: the biases move most)
        old, new = before[f"{head.name}_logits"], after[f"{head.name}_logits"]
        assert not all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
    assert all(layer.trainable for layer in all_layers(model))  # unfrozen when done


def test_after_the_frozen_epochs_the_backbone_trains_at_its_multiple_of_the_rate():
    """Adam's step is about the rate whatever the gradient's size, so the backbone's kernels
    move about as many times less as its rate is smaller."""
    moved = {}
    for multiple in (1.0, 0.01):
        model = build_model(MODEL, batch_size=None)
        before = _arrays(model)
        config = _config(
            2,
            freeze_backbone_epochs=1,
            backbone_learning_rate=multiple,
            schedule="constant",
            augment=None,
        )
        result = _train(model, config)
        assert result.frozen_epochs == 1 and len(result.epochs) == 2
        after = _arrays(model)
        kernels = [
            layer.name
            for layer in backbone_layers(model)
            if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
        ]
        moved[multiple] = np.mean(
            [np.abs(after[name][0] - before[name][0]).mean() for name in kernels]
        )
    assert moved[0.01] > 0
    assert moved[0.01] < 0.05 * moved[1.0]


def test_mixed_precision_computes_in_float16_with_float32_weights_and_logits():
    """The GPU option, exercised on the CPU: a float16 network, float32 variables, heads and
    logits; the policy is float32 again afterwards, and the weights copy back."""
    built = BuiltModel(build_model(MODEL), HEADS, MODEL.input_shape)
    model = training_copy(MODEL, built, mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("conv_pw_1").compute_dtype == "float16"
    assert model.get_layer("conv_pw_1").kernel.dtype == "float32"
    assert model.get_layer("digit_logits").compute_dtype == "float32"
    result = _train(model, _config(1))
    assert np.isfinite(result.epochs[0].loss)
    outputs = model(np.zeros((2, 32, 32, 1), "float32"))
    assert all(output.dtype == "float32" for output in outputs.values())
    built.model.set_weights(model.get_weights())


def test_a_model_with_one_head_records_its_accuracy():
    """Keras names a lone output's metrics without the output's name."""
    from dataclasses import replace

    single = replace(MODEL, heads=HEADS[:1])
    training, validation = split_validation(_digits(64), 0.25, seed=0)
    data = [
        type(part)(part.pixels, part.labels[:, :1], {"digit": part.classes["digit"]})
        for part in (training, validation)
    ]
    result = train_model(
        model=build_model(single, batch_size=None),
        heads=HEADS[:1],
        training=data[0],
        validation=data[1],
        config=_config(1),
        input_range=(0.0, 1.0),
        on_epoch=lambda record: None,
    )
    (record,) = result.epochs
    assert set(record.accuracy) == set(record.val_accuracy) == {"digit"}
    assert 0 <= record.val_accuracy["digit"] <= 1


def test_layers_frozen_before_training_stay_frozen_through_both_phases():
    """QAT freezes batch normalization, a model file may freeze its own layers: the phases
    unfreeze only what they froze."""
    model = build_model(MODEL, batch_size=None)
    norms = [
        layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in norms:
        layer.trainable = False
    before = _arrays(model)
    result = _train(model, _config(2, freeze_backbone_epochs=1))
    after = _arrays(model)
    assert result.frozen_epochs == 1 and len(result.epochs) == 2
    assert not any(layer.trainable for layer in norms)
    for layer in norms:
        for old, new in zip(before[layer.name], after[layer.name], strict=True):
            assert np.array_equal(old, new), layer.name
