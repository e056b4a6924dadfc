"""The world agents live in: an axis-aligned box [origin, origin + size) and what its edges do.

Boundaries:
    wrap     a torus: positions are taken modulo ``size``; offsets between agents
             use the minimum image.
    soft     walls that push back: an agent outside the box gets ``wall_force``
             per axis toward the inside (the JavaScript boids seed's Field).
    reflect  hard walls: an agent crossing a wall is mirrored back inside and its
             velocity component flipped.
    open     no edges at all; ``size`` only sets the initial placement and the view.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

BOUNDARIES = ("wrap", "soft", "reflect", "open")


@functools.lru_cache(maxsize=256)
def constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A cached small constant tensor: made once per device, so a step does no host-to-device copy
    (which CUDA-graph capture forbids). Callers never modify it in place."""
    return torch.tensor(values, device=device, dtype=dtype)


@dataclass(frozen=True)
class World:
    """Static description of the box.

    Attributes:
        size: per-axis box length, world units (len = D).
        origin: lower corner of the box, world units (zeros when None).
        boundary: one of ``BOUNDARIES``.
        wall_force: push-back acceleration per axis for ``soft`` walls, world
            units per time unit squared.
        wall_margin: distance inside the box at which ``soft`` walls start to
            push, world units (0 = only outside the box, as in the seed).
    """

    size: tuple[float, ...]
    boundary: str = "wrap"
    wall_force: float = 1.0
    wall_margin: float = 0.0
    origin: tuple[float, ...] | None = None

    @property
    def dim(self) -> int:
        return len(self.size)

    @property
    def periodic(self) -> bool:
        return self.boundary == "wrap"

    def size_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """[D] box lengths on ``like``'s device and dtype."""
        return constant(tuple(float(v) for v in self.size), like.device, like.dtype)

    def origin_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """[D] lower corner on ``like``'s device and dtype."""
        origin = self.origin if self.origin is not None else (0.0,) * self.dim
        return constant(tuple(float(v) for v in origin), like.device, like.dtype)

    def period(self, like: torch.Tensor) -> torch.Tensor | None:
        """[D] period for minimum-image offsets, or None when not periodic."""
        return self.size_tensor(like) if self.periodic else None


def minimum_image(offset: torch.Tensor, period: torch.Tensor | None) -> torch.Tensor:
    """Shortest periodic image of ``offset``.

    Args:
        offset: [..., D] differences x_j - x_i, world units.
        period: [D] box lengths, or None for a non-periodic world (returned as is).
    """
    if period is None:
        return offset
    return offset - period * torch.round(offset / period)


def wall_acceleration(pos: torch.Tensor, world: World) -> torch.Tensor:
    """Soft-wall push-back, [N, D]: +force on axes below ``margin``, -force above ``size - margin``.

    Args:
        pos: [N, D] positions, world units.
    """
    rel = pos - world.origin_tensor(pos)
    size = world.size_tensor(pos)
    low = (rel < world.wall_margin).to(pos.dtype)
    high = (rel > size - world.wall_margin).to(pos.dtype)
    return world.wall_force * (low - high)


def apply_boundary(pos: torch.Tensor, vel: torch.Tensor, world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and velocities after the hard boundary (wrap or reflect); soft/open unchanged.

    Args:
        pos: [N, D] positions after the move, world units.
        vel: [N, D] velocities, world units per time unit.
    """
    if world.boundary not in ("wrap", "reflect"):
        return pos, vel
    origin = world.origin_tensor(pos)
    size = world.size_tensor(pos)
    rel = pos - origin
    if world.boundary == "wrap":
        rel = torch.remainder(rel, size)
        # remainder can return exactly `size` for tiny negative inputs in float32
        rel = torch.where(rel >= size, rel - size, rel)
        return rel + origin, vel
    below = rel < 0
    above = rel > size
    rel = torch.where(below, -rel, torch.where(above, 2 * size - rel, rel))
    # an agent moving more than a whole box in one step is clamped inside
    rel = torch.minimum(torch.clamp_min(rel, 0), size)
    vel = torch.where(below | above, -vel, vel)
    return rel + origin, vel
