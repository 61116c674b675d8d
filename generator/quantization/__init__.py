"""Float Keras model to integer .tflite: the TensorFlow Lite converter in every mode, single layers
at 16-bit activations, and each layer's own quantization error."""
