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
FORMULATION_NAMES = (*BOID_FORMULATIONS, "meanshift", "circles")

# Neighbor backends a scenario, the CLI and ``Simulation`` accept ("auto" picks one).
BACKEND_NAMES = ("auto", "dense", "grid", "fused", "triton")

BOUNDARY_NAMES = ("wrap", "soft", "reflect", "open")

# Devices a scenario may name, besides "cuda:N".
DEVICE_NAMES = ("auto", "cpu", "cuda")

DTYPE_NAMES = ("float32", "float64")

MEANSHIFT_KERNEL_NAMES = ("gaussian", "triangular", "flat")

# A truncated Gaussian is cut at this many bandwidths (3h: weights below exp(-4.5) ~ 1.1%).
GAUSSIAN_CUT_BANDWIDTHS = 3.0

__all__ = ["BACKEND_NAMES", "BOID_FORMULATIONS", "BOUNDARY_NAMES", "CONSTANT_SPEED_FORMULATIONS", "DEVICE_NAMES",
           "DTYPE_NAMES", "FORMULATION_NAMES", "GAUSSIAN_CUT_BANDWIDTHS", "GROUP_FORMULATIONS",
           "MEANSHIFT_KERNEL_NAMES"]
