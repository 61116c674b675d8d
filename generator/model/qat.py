"""QAT stage: quantization-aware fine-tuning of the trained float model, in Keras 3.

Why native Keras 3 and not `tensorflow-model-optimization`: tfmot 0.8 needs the legacy
`tf-keras` (Keras 2) and switches TensorFlow to it on import (`TF_USE_LEGACY_KERAS=1`); its
`quantize_model` refuses Keras 3 models ("`to_quantize` can only either be a keras Sequential or
Functional model", tensorflow/model-optimization issues 1144 and 1270; Keras 3 support is
still the open issue 1119). Converting our model to Keras 2 and back would be a second copy of
every layer to keep in step. Simulating what the TFLite converter does takes ~200 lines:

- Kernels of Conv2D, DepthwiseConv2D and Dense: per output channel, symmetric, narrow range
  (int8 in [-127, 127], scale max|w| / 127), taken from the current weights at every step, as
  round(w / s) * s with a straight-through gradient. The converter constant-folds that into a
  float kernel already on the int8 grid and quantizes it to the same integers. No batch-norm
  folding is needed: per-channel symmetric quantization commutes with a per-channel scale of
  either sign (q(a w) = a q(w)), so quantizing the raw kernel is quantizing the folded one (a
  rounding tie can differ by one step: 1 weight in 211,040 on MobileNetV1).
- Batch normalization is frozen during fine-tuning (inference mode, moving statistics), so what
  is trained is exactly what the converter folds and the .tflite computes.
- Activations: per tensor, asymmetric, 8 bits, at the tensors the converter keeps (see
  `_quantized_operations`): the input (fixed `input_range`), the output of every fused
  Conv/Depthwise/Dense[+BatchNorm][+ReLU/ReLU6] chain, Add, Multiply, pooling, and every head.
  Ranges start from the calibration images (the ranges post-training quantization would use),
  then follow an exponential moving average of the batch min/max while training.
- The converter turns each `FakeQuantWithMinMaxVars` range into its tensor's scale and zero
  point (calibration data is ignored for those tensors); `check_ranges` reads every int8
  activation of the .tflite back and fails the build if one is not a QAT range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import keras
import numpy as np
from keras import ops

from generator.config.schema import Head, TrainConfig
from generator.data.labelled import LabelledImages
from generator.data.pixels import pixels_to_float
from generator.engines.tflite_file import TfliteModel
from generator.model.layers import all_layers
from generator.model.train import EpochRecord, TrainingResult, train_model

# Layers that TFLite turns into an op whose output keeps the input's quantization (PAD,
# RESHAPE, ...) or that vanish at inference: no quantizer after them.
_PASSTHROUGH = (
    keras.layers.ZeroPadding2D,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.MaxPooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.Identity,
)
_WEIGHTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


@keras.saving.register_keras_serializable("qat")
class ActivationQuantizer(keras.layers.Layer):
    """Per-tensor 8-bit fake quantization with a tracked range.

    training=True: range <- decay * range + (1 - decay) * [min(batch, 0), max(batch, 0)] (the
    first batch sets it), then quantize with the new range. Otherwise quantize with the stored
    range. `fixed_range` (the input's) is never updated. While `observing` (see `calibrate`)
    the layer only widens its range to the values it sees and passes them through unchanged.
    """

    def __init__(self, decay: float = 0.99, fixed_range=None, **kwargs):
        super().__init__(**kwargs)
        self.decay = float(decay)
        self.fixed_range = None if fixed_range is None else tuple(map(float, fixed_range))
        self.observing = False

    def build(self, input_shape):
        low, high = self.fixed_range or (0.0, 0.0)
        self.range_min = self.add_weight(
            name="range_min",
            shape=(),
            initializer=keras.initializers.Constant(low),
            trainable=False,
        )
        self.range_max = self.add_weight(
            name="range_max",
            shape=(),
            initializer=keras.initializers.Constant(high),
            trainable=False,
        )
        self.seen = self.add_weight(name="seen", shape=(), initializer="zeros", trainable=False)

    def call(self, x, training=None):
        if self.fixed_range is None and (training or self.observing):
            low = ops.stop_gradient(ops.minimum(ops.min(x), 0.0))
            high = ops.stop_gradient(ops.maximum(ops.max(x), 0.0))
            first = self.seen <= 0.0
            if self.observing:
                low = ops.where(first, low, ops.minimum(self.range_min, low))
                high = ops.where(first, high, ops.maximum(self.range_max, high))
            else:
                d = self.decay
                low = ops.where(first, low, d * self.range_min + (1.0 - d) * low)
                high = ops.where(first, high, d * self.range_max + (1.0 - d) * high)
            high = ops.maximum(high, low + 1e-6)  # a dead tensor still gets a valid scale
            self.range_min.assign(low)
            self.range_max.assign(high)
            self.seen.assign(1.0)
            if self.observing:
                return x
        else:
            low, high = self.range_min, self.range_max
        return keras.quantizers.fake_quant_with_min_max_vars(x, low, high, num_bits=8)

    def compute_output_shape(self, input_shape):
        # Not traced: Keras marks `tensor * python_float` as sparse in V3's hard_sigmoid.
        return input_shape

    def get_config(self):
        return {**super().get_config(), "decay": self.decay, "fixed_range": self.fixed_range}


def fake_quant_kernel(kernel, depthwise: bool = False):
    """Per-output-channel symmetric narrow-range int8 fake quantization of a kernel.

    Output channels are the last axis (Conv2D: kh, kw, in, out; Dense: in, out). A depthwise
    kernel (kh, kw, in, multiplier) has in * multiplier output channels: it is quantized as
    (kh, kw, 1, in * multiplier), the layout of TFLite's DEPTHWISE_CONV_2D filter. TensorFlow's
    FakeQuantWithMinMaxVarsPerChannel would do the same for convolutions, but the converter
    fails on it for Dense ("mismatched quantized axes": it transposes the kernel), so this is
    plain arithmetic, which the converter folds to a constant.
    """
    shape = kernel.shape
    if depthwise:
        kernel = ops.reshape(kernel, (shape[0], shape[1], 1, shape[2] * shape[3]))
    axes = tuple(range(len(kernel.shape) - 1))
    scale = ops.maximum(ops.max(ops.abs(kernel), axis=axes), 1e-8) / 127.0
    grid = ops.clip(ops.round(kernel / scale), -127.0, 127.0) * scale
    quantized = kernel + ops.stop_gradient(grid - kernel)
    return ops.reshape(quantized, shape) if depthwise else quantized


@keras.saving.register_keras_serializable("qat")
class QuantizedWeights(keras.layers.Wrapper):
    """Calls the wrapped Conv2D / DepthwiseConv2D / Dense (its own variables) with a
    fake-quantized kernel; bias and activation as the layer does. It takes the wrapped layer's
    name, so the .tflite's tensors still name the layer a user knows."""

    def build(self, input_shape=None):
        super().build(input_shape)
        self.built = True

    def _kernel(self, depthwise=False):
        return fake_quant_kernel(self.layer.kernel, depthwise)

    def call(self, inputs):
        layer = self.layer
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            outputs = ops.depthwise_conv(
                inputs,
                self._kernel(depthwise=True),
                strides=layer.strides,
                padding=layer.padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        elif isinstance(layer, keras.layers.Conv2D):
            outputs = layer.convolution_op(inputs, self._kernel())
        else:
            outputs = ops.matmul(inputs, self._kernel())
        if layer.use_bias:
            bias = layer.bias
            if isinstance(layer, keras.layers.Dense) or layer.data_format == "channels_last":
                outputs = ops.add(outputs, bias)
            else:
                outputs = ops.add(outputs, ops.reshape(bias, (1, -1, 1, 1)))
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _is_fusable_activation(op) -> bool:
    """ReLU / ReLU6 that the converter fuses into the preceding Conv/Dense/Add/Mul."""
    if isinstance(op, keras.layers.ReLU):
        return op.max_value in (None, 6.0) and not op.negative_slope and not op.threshold
    if isinstance(op, keras.layers.Activation):
        name = getattr(op.activation, "__name__", "")
        return name in ("relu", "relu6")
    return False


def _activation_name(op) -> str:
    activation = getattr(op, "activation", None)
    return getattr(activation, "__name__", "linear") if activation else "linear"


def _is_constant_add(node) -> bool:
    """`x + 3.0` in a functional graph: a keras op node with one tensor and a scalar."""
    name = type(node.operation).__name__
    return (
        name in ("Add", "Subtract")
        and not isinstance(node.operation, keras.layers.Layer)
        and len(node.input_tensors) == 1
    )


def _quantized_operations(model) -> set[int]:
    """Ids of the operations whose output gets an activation quantizer.

    Every operation output does, except:
    - passthrough layers (padding, reshape, dropout, max pooling): TFLite gives their output
      the input's quantization;
    - an output that only feeds something the converter fuses into its producer:
      Conv/Depthwise/Dense (linear) -> BatchNormalization; Conv/Depthwise/Dense/BN -> x + c
      (folded into the bias); Conv/Depthwise/Dense/BN/Add/Multiply/x+c -> ReLU or ReLU6
      (fused activation).
    Model outputs are always quantized.
    """
    consumers: dict[int, list] = {}
    producers: dict[int, object] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is None or node.is_input:
                continue
            for tensor in node.input_tensors:
                consumers.setdefault(id(tensor), []).append(node)
            for tensor in node.outputs:
                producers[id(tensor)] = node
    model_outputs = {id(t) for t in model.outputs}

    def fuses_into(producer_node, consumer_node) -> bool:
        producer, consumer = producer_node.operation, consumer_node.operation
        linear_weighted = isinstance(producer, _WEIGHTED) and _activation_name(producer) == "linear"
        if isinstance(consumer, keras.layers.BatchNormalization):
            return linear_weighted
        if _is_constant_add(consumer_node):
            return linear_weighted or isinstance(producer, keras.layers.BatchNormalization)
        if _is_fusable_activation(consumer):
            return (
                linear_weighted
                or isinstance(
                    producer,
                    (
                        keras.layers.BatchNormalization,
                        keras.layers.Add,
                        keras.layers.Subtract,
                        keras.layers.Multiply,
                    ),
                )
                or _is_constant_add(producer_node)
            )
        return False

    quantized = set()
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            op = node.operation
            if op is None or node.is_input or isinstance(op, keras.layers.InputLayer):
                continue
            if any(id(t) in model_outputs for t in node.outputs):
                quantized.add(id(op))
                continue
            if isinstance(op, _PASSTHROUGH):
                continue
            users = [c for t in node.outputs for c in consumers.get(id(t), [])]
            if len(users) == 1 and fuses_into(node, users[0]):
                continue
            quantized.add(id(op))
    return quantized


def quantize_aware(float_model: keras.Model, input_range: tuple[float, float]) -> keras.Model:
    """The QAT version of the functional `float_model` (one image input), sharing its layers
    and so its weights: training it trains `float_model`."""
    quantized_ops = _quantized_operations(float_model)
    (source,) = float_model.inputs
    image = keras.Input(batch_shape=source.shape, dtype=source.dtype, name=source.name)
    quantized_image = ActivationQuantizer(fixed_range=input_range, name=f"{source.name}_quant")(
        image
    )
    wrappers: dict[int, keras.layers.Layer] = {}
    quantizers: dict[int, keras.layers.Layer] = {}

    def call(op, *args, **kwargs):
        args = keras.tree.map_structure(lambda a: quantized_image if a is image else a, args)
        if isinstance(op, _WEIGHTED):
            if isinstance(op, keras.layers.Conv2D) and getattr(op, "groups", 1) != 1:
                raise ValueError(f"{op.name}: grouped convolution is not supported")
            if id(op) not in wrappers:
                wrappers[id(op)] = QuantizedWeights(op, name=op.name)
            outputs = wrappers[id(op)](*args, **kwargs)
        else:
            outputs = op(*args, **kwargs)
        if id(op) in quantized_ops:
            if id(op) not in quantizers:
                quantizers[id(op)] = ActivationQuantizer(name=f"{op.name}_quant")
            outputs = keras.tree.map_structure(quantizers[id(op)], outputs)
        return outputs

    return keras.models.clone_model(
        float_model, input_tensors=image, clone_function=lambda op: op, call_function=call
    )


def activation_quantizers(qat_model) -> list[ActivationQuantizer]:
    return [layer for layer in qat_model.layers if isinstance(layer, ActivationQuantizer)]


def copy_ranges(source, target) -> None:
    """Copy the activation ranges between two QAT models of the same float architecture (e.g.
    the batch-None training model to the batch-1 deployed one), in graph order (auto-generated
    layer names differ between two builds in one session)."""
    sources, targets = activation_quantizers(source), activation_quantizers(target)
    if len(sources) != len(targets):
        raise ValueError("the two models do not have the same activation quantizers")
    for s, t in zip(sources, targets, strict=True):
        t.range_min.assign(s.range_min)
        t.range_max.assign(s.range_max)
        t.seen.assign(s.seen)


def calibrate(qat_model, batches: Iterable[np.ndarray]) -> None:
    """Set every activation range to the min/max seen over `batches`, in inference mode and
    without fake quantization (what post-training calibration measures)."""
    quantizers = [q for q in activation_quantizers(qat_model) if q.fixed_range is None]
    for q in quantizers:
        q.seen.assign(0.0)
        q.observing = True
    try:
        for batch in batches:
            qat_model(batch, training=False)
    finally:
        for q in quantizers:
            q.observing = False


def _nudged(low: float, high: float) -> tuple[float, int]:
    """(scale, int8 zero point) TensorFlow's 8-bit FakeQuant gives the range [low, high]
    (its zero point rounds half up)."""
    scale = (high - low) / 255.0
    zero = int(np.clip(np.floor(-low / scale + 0.5), 0, 255))
    return scale, zero - 128


def check_ranges(tflite: TfliteModel, qat_model: keras.Model) -> int:
    """Fail unless every int8 activation of the converted model has the scale and zero point of
    one of `qat_model`'s ranges (a tensor that got calibrated ranges instead would mean a
    quantizer is missing). Returns how many activations were checked."""
    expected = [
        _nudged(float(q.range_min.numpy()), float(q.range_max.numpy()))
        for q in activation_quantizers(qat_model)
    ]
    produced = {index for op in tflite.operators for index in op.outputs}
    activations = [t for t in tflite.tensors if t.index in produced and t.dtype == "int8"]
    stray = [
        t.name
        for t in activations
        if not any(abs(t.scale - s) <= 1e-6 * s and t.zero_point == z for s, z in expected)
    ]
    if stray:
        raise RuntimeError(f"QAT: activations {stray} do not carry a QAT range")
    return len(activations)


@dataclasses.dataclass(frozen=True)
class QatResult:
    model: keras.Model  # the QAT model around `deployed`, ready for the converter
    training: TrainingResult
    activations_checked: int = 0


def fine_tune(
    *,
    trainable: keras.Model,
    deployed: keras.Model,
    heads: tuple[Head, ...],
    training: LabelledImages,
    validation: LabelledImages,
    config: TrainConfig,
    calibration_pixels: np.ndarray,
    input_range: tuple[float, float],
    on_epoch: Callable[[EpochRecord], None],
) -> QatResult:
    """Fine-tune `trainable` (a copy of the trained float model that takes any batch size) with
    simulated quantization for `config.qat.epochs`, then carry its weights to `deployed` (the
    batch-1 architecture) and return the QAT model around it.

    Ranges start as post-training calibration would set them, on the same calibration images.
    """
    for layer in all_layers(trainable):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    qat_training = quantize_aware(trainable, input_range)
    calibrate(qat_training, (pixels_to_float(calibration_pixels, input_range),))
    qat = config.qat
    schedule = dataclasses.replace(
        config,
        epochs=qat.epochs,
        learning_rate=qat.learning_rate,
        early_stopping=0,
        warmup_epochs=0,
        freeze_backbone_epochs=0,  # the float training's phases, not QAT's
        backbone_learning_rate=1.0,
    )
    result = train_model(
        model=qat_training,
        heads=heads,
        training=training,
        validation=validation,
        config=schedule,
        input_range=input_range,
        on_epoch=on_epoch,
    )
    deployed.set_weights(trainable.get_weights())
    qat_deployed = quantize_aware(deployed, input_range)
    copy_ranges(qat_training, qat_deployed)
    return QatResult(qat_deployed, result)
