"""Integrator: from accelerations to the next positions and velocities.

Semi-implicit Euler, as the JavaScript boids seed (``v += a dt``; speed limits;
``x += v dt``), followed by the world's hard boundary (wrap or reflect).
"""

from __future__ import annotations

import torch

from .vectors import clip_norm, raise_norm
from .world import World, apply_boundary


def integrate(pos: torch.Tensor, vel: torch.Tensor, accel: torch.Tensor, dt: float, world: World, *,
              max_speed: float | None = None, min_speed: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One synchronous move of every agent.

    Args:
        pos: [N, D] positions, world units.
        vel: [N, D] velocities, world units per time unit.
        accel: [N, D] accelerations (soft-wall push-back already included).
        dt: time step, time units.
        world: the box and its boundary.
        max_speed: speed clip after the velocity update (None: no limit).
        min_speed: moving agents slower than this are sped up to it.

    Returns:
        (pos, vel), the new [N, D] tensors.
    """
    vel = vel + accel * dt
    vel = raise_norm(clip_norm(vel, max_speed), min_speed)
    pos = pos + vel * dt
    return apply_boundary(pos, vel, world)
