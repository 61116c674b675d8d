"""One thin adapter per external engine: the .tflite flatbuffer, LiteRT, TensorFlow Lite Micro and
Vela. Nothing engine-specific leaves these modules; they return plain data."""
