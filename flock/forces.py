"""Point forces: attractors and repellers placed in the world (by a scenario or by the user live).

An attractor pulls agents within ``radius`` toward its centre with acceleration
``strength``; a negative strength is a repeller (a predator the agents flee).
These act on single agents from fixed points, so they need no neighbor sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .vectors import unit
from .world import constant, minimum_image


@dataclass
class PointForce:
    """One attractor (strength > 0) or repeller (strength < 0).

    Attributes:
        center: position, world units (len D).
        strength: acceleration magnitude, world units per time unit squared.
        radius: agents farther than this feel nothing (inf: everywhere).
    """

    center: tuple[float, ...]
    strength: float
    radius: float = math.inf


def point_force_acceleration(pos: torch.Tensor, forces: list[PointForce],
                             period: torch.Tensor | None = None) -> torch.Tensor:
    """[N, D] acceleration of every agent from ``forces`` (zeros when there are none).

    Args:
        pos: [N, D] positions, world units. period: [D] box lengths of a wrapped world, or None.
    """
    accel = torch.zeros_like(pos)
    for force in forces:
        center = constant(tuple(float(c) for c in force.center), pos.device, pos.dtype)
        offset = minimum_image(center - pos, period)
        inside = torch.linalg.vector_norm(offset, dim=1, keepdim=True) < force.radius
        accel = accel + torch.where(inside, force.strength * unit(offset), torch.zeros_like(offset))
    return accel
