"""Pruning and clustering (generator/model/compress.py), and the teacher term of the loss."""

import keras
import numpy as np
import pytest
from test_train import HEADS, MODEL, _config, _train

from generator.config.schema import OptimizeConfig
from generator.errors import UserError
from generator.model.build import build_model, load_teacher
from generator.model.compress import compress
from generator.model.train import distillation_loss, masked_sparse_crossentropy


def _optimize(clusters=0, sparsity=0.0, **changes) -> OptimizeConfig:
    settings = dict(
        clusters=(("*", clusters),) if isinstance(clusters, int) else clusters,
        sparsity=sparsity,
        sparsity_layers=("*",),
        epochs=1,
        learning_rate=1e-3,
        distill=False,
    )
    return OptimizeConfig(**(settings | changes))


def _kernels(model) -> dict[str, np.ndarray]:
    return {
        layer.name: layer.kernel.numpy()
        for layer in model.layers
        if isinstance(
            layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Dense
        )
    }


@pytest.mark.parametrize(("clusters", "sparsity"), [(8, 0.0), (0, 0.5), (4, 0.5), (16, 0.25)])
def test_every_kernel_holds_its_values_and_zeros(clusters, sparsity):
    model = build_model(MODEL, None)
    before = _kernels(model)
    compression = compress(model, _optimize(clusters, sparsity))
    assert {c.layer for c in compression.layers} == set(before)
    for name, kernel in _kernels(model).items():
        assert np.mean(kernel == 0) == pytest.approx(sparsity, abs=1 / kernel.size)
        if clusters:
            assert len(np.unique(kernel)) <= clusters
        else:  # pruning alone: the smallest weights went, the others are untouched
            kept = kernel != 0
            assert np.array_equal(kernel[kept], before[name][kept])
            assert np.abs(before[name][~kept]).max() <= np.abs(before[name][kept]).min()


def test_training_keeps_the_clusters_and_zeros_and_lets_them_go_after():
    model = build_model(MODEL, None)
    compression = compress(model, _optimize(4, 0.5))
    compressed = _kernels(model)
    with compression.held(model):
        _train(model, _config(1, learning_rate=0.01), count=64)
    for name, kernel in _kernels(model).items():
        assert not np.array_equal(kernel, compressed[name]), name  # it did train
        assert np.mean(kernel == 0) >= np.mean(compressed[name] == 0)
        assert len(np.unique(kernel)) <= 4
        # the assignments are fixed: weights that shared a value still share one
        for value in np.unique(compressed[name]):
            assert len(np.unique(kernel[compressed[name] == value])) == 1
    assert all(
        layer.kernel.constraint is None for layer in model.layers if hasattr(layer, "kernel")
    )


def test_layer_patterns_choose_the_clusters_and_the_first_match_wins():
    model = build_model(MODEL, None)
    optimize = _optimize((("*_logits", 0), ("conv_pw_1*", 32), ("*", 4)))
    compression = compress(model, optimize)
    by_layer = {c.layer: c.clusters for c in compression.layers}
    assert "digit_logits" not in by_layer
    assert by_layer["conv_pw_13"] == 32 and by_layer["conv_pw_1"] == 32
    assert by_layer["conv_pw_2"] == 4 and by_layer["conv1"] == 4
    kernels = _kernels(model)
    assert len(np.unique(kernels["conv_pw_13"])) <= 32
    assert len(np.unique(kernels["digit_logits"])) > 32


def test_clustering_is_deterministic():
    first, second = build_model(MODEL, None), build_model(MODEL, None)
    compress(first, _optimize(8, 0.3))
    compress(second, _optimize(8, 0.3))
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)


def _targets(labels, teacher_logits):
    return np.concatenate([labels[:, None], teacher_logits], axis=1).astype("float32")


def test_the_teacher_term_mixes_with_the_labels_as_documented():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(6, 4)).astype("float32")
    teacher = rng.normal(size=(6, 4)).astype("float32") * 3
    labels = np.array([0, 1, 2, 3, -1, -1], dtype="float32")  # two images without a label

    def kl(t, s, temperature):
        p = np.exp(t / temperature) / np.exp(t / temperature).sum(-1, keepdims=True)
        log_q = s / temperature - np.log(np.exp(s / temperature).sum(-1, keepdims=True))
        return (p * (np.log(p) - log_q)).sum(-1)

    labelled = np.asarray(masked_sparse_crossentropy(labels, student))
    for weight, temperature in ((0.0, 2.0), (0.5, 2.0), (1.0, 4.0), (0.3, 1.0)):
        loss = np.asarray(
            distillation_loss(weight, temperature)(_targets(labels, teacher), student)
        )
        expected = (1 - weight) * labelled + weight * temperature**2 * kl(
            teacher, student, temperature
        )
        np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)
    # the mean over the batch: labels over the 4 labelled images, the teacher over all 6
    half = np.asarray(distillation_loss(0.5, 2.0)(_targets(labels, teacher), student)).mean()
    log_q = student - np.log(np.exp(student).sum(-1, keepdims=True))
    cross_entropy = -log_q[np.arange(4), labels[:4].astype(int)]
    expected = 0.5 * cross_entropy.mean() + 0.5 * 2.0**2 * kl(teacher, student, 2.0).mean()
    assert half == pytest.approx(expected, rel=1e-5)
    # a student that matches its teacher owes it nothing
    same = np.asarray(distillation_loss(1.0, 2.0)(_targets(labels, student), student))
    np.testing.assert_allclose(same, 0.0, atol=1e-5)


def _constant_teacher(favourite: int) -> keras.Model:
    """A teacher whose every head says `favourite` (class index) for any image, confidently."""
    image = keras.Input(MODEL.input_shape)
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    outputs = {}
    for head in HEADS:
        bias = np.zeros(head.num_classes, dtype="float32")
        bias[favourite] = 8.0
        dense = keras.layers.Dense(head.num_classes, kernel_initializer="zeros")
        outputs[head.name] = dense(pooled)
        dense.bias.assign(bias)
    return keras.Model(image, outputs)


def test_images_without_labels_learn_the_teachers_answers():
    """Trained with the teacher alone on images whose labels are all missing (no label could
    move it), the student comes to give the teacher's answer."""
    from test_train import _digits

    from generator.model.train import split_validation, train_model

    data = _digits(96)
    unlabelled = type(data)(data.pixels, np.full_like(data.labels, -1), data.classes)
    training, validation = split_validation(unlabelled, 0.25, seed=0)
    student = build_model(MODEL, None)
    train_model(
        model=student,
        heads=HEADS,
        training=training,
        validation=validation,
        config=_config(3, learning_rate=0.01, distillation_weight=0.5),
        input_range=(0.0, 1.0),
        on_epoch=lambda record: None,
        teacher=_constant_teacher(1),
    )
    answers = student.predict(data.pixels.astype("float32") / 255, verbose=0)
    for head in HEADS:
        assert np.mean(np.argmax(answers[head.name], -1) == 1) > 0.9, head.name


def test_a_rule_that_decides_no_layer_is_refused_before_anything_changes():
    model = build_model(MODEL, None)
    before = model.get_weights()
    for optimize, message in (
        (_optimize((("block_*", 8),)), "'block_\\*' decides no Conv2D"),
        (_optimize((("*", 8), ("conv_pw_*", 4))), "'conv_pw_\\*' decides no"),  # shadowed
        (_optimize(0, 0.5, sparsity_layers=("expanded_*",)), "sparsity_layers: .* match no"),
    ):
        with pytest.raises(UserError, match=message):
            compress(model, optimize)
    for a, b in zip(before, model.get_weights(), strict=True):
        assert np.array_equal(a, b)


def _teacher_file(path, outputs: str):
    image = keras.Input(MODEL.input_shape)
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    parity = keras.layers.Dense(2, name="p")(pooled)
    high = keras.layers.Dense(2, name="h")(pooled)
    digit = keras.layers.Dense(10, name="d")(pooled)
    if outputs == "named":
        result = {"parity": parity, "digit": digit, "high": high}
    elif outputs == "other names":
        result = {"z_digit": digit, "a_parity": parity, "m_high": high}  # sorted: a, m, z
    else:
        result = [digit, parity, high]
    keras.Model(image, result).save(path)
    return path


@pytest.mark.parametrize("outputs", ["named", "other names", "list"])
def test_a_teachers_outputs_are_matched_by_name_else_in_the_files_order(tmp_path, outputs):
    teacher = load_teacher(_teacher_file(tmp_path / "t.keras", outputs), HEADS, MODEL.input_shape)
    layers = {head: teacher.output[head]._keras_history.operation.name for head in teacher.output}
    assert layers == {"digit": "d", "parity": "p", "high": "h"}


def test_a_teacher_for_other_images_or_heads_is_refused_in_one_line(tmp_path):
    image = keras.Input((40, 40, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    keras.Model(image, [keras.layers.Dense(10)(pooled)] * 3).save(tmp_path / "size.keras")
    with pytest.raises(UserError, match=r"takes input \(40, 40, 1\), the model \(32, 32, 1\)"):
        load_teacher(tmp_path / "size.keras", HEADS, MODEL.input_shape)
    image = keras.Input(MODEL.input_shape)
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    keras.Model(image, [keras.layers.Dense(10)(pooled)] * 3).save(tmp_path / "heads.keras")
    with pytest.raises(UserError, match=r"output for 'parity' has shape .*the head 2 classes"):
        load_teacher(tmp_path / "heads.keras", HEADS, MODEL.input_shape)
