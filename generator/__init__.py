"""generator: multi-head MobileNet classifiers, quantized and compiled for Arm Ethos-U NPUs."""

__version__ = "0.1.0"
