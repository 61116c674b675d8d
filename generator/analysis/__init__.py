"""What the artifacts are worth: the quantized model against the float model and between runtimes,
accuracy on labelled images, and where the weights go on each board and whether it fits."""
