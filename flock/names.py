"""Names declared once: formulations, backends, boundaries, devices, and shared defaults.

The scenario schema builds its ``Literal`` choices from these tuples, the CLI its
``choices=``, and the neighbor package its ``BACKENDS``; nothing else spells them out.
"""

from __future__ import annotations

# Boid formulations: every agent steers by cohesion / alignment / separation sums.
BOID_FORMULATIONS = ("seed", "reynolds", "mesa", "netlogo")
# The boid formulations that move every agent at the constant speed ``agents.max_speed``.
CONSTANT_SPEED_FORMULATIONS = ("mesa", "netlogo")
# The boid formulations that run several groups (species, flee, chase).
GROUP_FORMULATIONS = ("seed", "reynolds")
FORMULATION_NAMES = (*BOID_FORMULATIONS, "meanshift", "circles", "neural")

# Neighbor backends a scenario, the CLI and ``Simulation`` accept ("auto" picks one).
BACKEND_NAMES = ("auto", "dense", "grid", "fused", "triton", "numba")

BOUNDARY_NAMES = ("wrap", "soft", "reflect", "open")

# Devices a scenario may name, besides "cuda:N".
DEVICE_NAMES = ("auto", "cpu", "cuda")

DTYPE_NAMES = ("float32", "float64")

MEANSHIFT_KERNEL_NAMES = ("gaussian", "triangular", "flat")

# A truncated Gaussian is cut at this many bandwidths (3h: weights below exp(-4.5) ~ 1.1%).
GAUSSIAN_CUT_BANDWIDTHS = 3.0

# Ranges every input is held to (the schema, initial-state files, CLI flags). A coordinate,
# speed or weight of at most 1e15 squares to 1e30, well inside float32's 3.4e38.
MAX_ABS_VALUE = 1e15
MAX_COUNT = 10**12          # agents, steps, iterations: beyond any run that fits in memory
MAX_SEED = 2**63 - 1        # torch.Generator.manual_seed takes a 64-bit integer
MAX_PIXELS = 16384          # a picture or window side
MAX_FPS = 1000
MAX_TRAIL = 10000

# The nearest-neighbor metric scales an open world's offsets down to at most 2^this (a power
# of two, exact), so that their squares stay far inside float32's range in the norm.
NN_MAX_OFFSET_LOG2 = 60

__all__ = ["BACKEND_NAMES", "BOID_FORMULATIONS", "BOUNDARY_NAMES", "CONSTANT_SPEED_FORMULATIONS", "DEVICE_NAMES",
           "DTYPE_NAMES", "FORMULATION_NAMES", "GAUSSIAN_CUT_BANDWIDTHS", "GROUP_FORMULATIONS",
           "MAX_ABS_VALUE", "MAX_COUNT", "MAX_FPS", "MAX_PIXELS", "MAX_SEED", "MAX_TRAIL", "MEANSHIFT_KERNEL_NAMES",
           "NN_MAX_OFFSET_LOG2"]
