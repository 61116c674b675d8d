"""What firmware needs: the model (and each Vela-compiled model) as a C array with a header of its
metadata."""
