"""The option names of ``flock.MeanShift`` (kernels, modes, backends), in a module without torch,
so that ``flocksim --help`` can list them without importing the engine."""

KERNELS = ("flat", "gaussian", "triangular")
MODES = ("standard", "blurring")
BACKENDS = ("auto", "dense", "grid", "fused", "cells")
