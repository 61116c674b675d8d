"""The Keras model: building the MobileNet backbone with its heads (or loading a model file),
training it, and quantization-aware fine-tuning."""
