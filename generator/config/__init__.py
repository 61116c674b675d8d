"""What to build: the YAML config read and validated completely into frozen dataclasses before any
TensorFlow work starts, the boards it can target, and the memory the build will need."""
