"""Images in: decoding files the way a camera frame reaches the model, labelled sets for training
and evaluation, the calibration set, and the mapping from uint8 pixels to what each model takes."""
