"""The one integrator: from a rule's update and the extra terms to the next positions and velocities.

Semi-implicit Euler, as the JavaScript boids seed (``v += a dt``; speed limits;
``x += v dt``), for every kind of update a rule produces:

    accel   v' = v + (a_rule + a_terms) dt
    vel     v' = v_rule + a_terms dt
    pos     v' = (x_rule - x) / dt + a_terms dt   (x' = x_rule exactly when nothing else acts)

then the per-agent speed limits (max_speed clip, min_speed raise; a constant-speed rule
brings the speed back to ``agents.max_speed`` after the terms acted), ``x' = x + v' dt``,
the world's hard boundary (wrap or reflect), the projection out of obstacles, and the
NaN guard (an agent whose new state is not finite keeps its previous one).

Nothing here synchronises with the host: every choice is made from ``Params`` (static)
or with ``torch.where`` on the device.
"""

from __future__ import annotations

import functools

import torch

from .formulations import Update
from .obstacles import project_out
from .state import FlockState
from .vectors import clip_norm, raise_norm, unit
from .world import World, apply_boundary


def integrate_motion(pos: torch.Tensor, vel: torch.Tensor, accel: torch.Tensor, dt: float, world: World, *,
                     max_speed: float | torch.Tensor | None = None,
                     min_speed: float | torch.Tensor = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler move from an acceleration: v += a dt, speed limits, x += v dt, hard boundary.

    Args:
        pos: [N, D] positions, world units. vel: [N, D] velocities, world units per time unit.
        accel: [N, D] accelerations. dt: time step.
        max_speed: speed clip ([N, 1] per agent, a float, or None: no limit).
        min_speed: moving agents slower than this are sped up to it.
    Returns:
        (pos, vel), the new [N, D] tensors.
    """
    vel = raise_norm(clip_norm(vel + accel * dt, max_speed), min_speed)
    return apply_boundary(pos + vel * dt, vel, world)


def integrate(state: FlockState, update: Update, accel: torch.Tensor | None, params,
              limits: dict[str, torch.Tensor]) -> tuple[FlockState, torch.Tensor]:
    """The next state from ``update`` plus the extra-term acceleration ``accel`` (None: no terms).

    Args:
        state: the state the update was computed from.
        update: the rule's ``Update`` ([N, D]).
        accel: [N, D] sum of the extra terms, or None.
        params: ``flock.params.Params``.
        limits: per-agent [N, 1] limits (``params.agent_limits(state.group)``).
    Returns:
        (new state, obstacle corrections: 0-dim int64 tensor).
    """
    pos, vel, dt, world = state.pos, state.vel, params.dt, params.world
    rule = params.rule
    if update.kind == "accel":
        a = update.value if accel is None else update.value + accel
        new_vel = vel + _times(a, dt)
    elif update.kind == "vel":
        new_vel = update.value if accel is None else update.value + _times(accel, dt)
    else:
        new_vel = (update.value - pos) / dt
        if accel is not None:
            new_vel = new_vel + _times(accel, dt)
    if rule.constant_speed:
        if accel is not None:
            new_vel = unit(new_vel) * limits["max_speed"]
    elif params.speed_limited:
        new_vel = clip_norm(new_vel, limits["max_speed"])
        if params.raises_speed:
            new_vel = raise_norm(new_vel, limits["min_speed"])
    if update.kind == "pos" and accel is None and not params.speed_limited:
        new_pos = update.value
    else:
        new_pos = pos + _times(new_vel, dt)
    new_pos, new_vel = apply_boundary(new_pos, new_vel, world)
    corrections = _zero(pos.device)
    if params.obstacles:
        new_pos, new_vel, corrections = project_out(params.scenario, pos, new_pos, new_vel, world.period(pos))
        new_pos, new_vel = apply_boundary(new_pos, new_vel, world)
    return state.replace(pos=new_pos, vel=new_vel), corrections


def _times(x: torch.Tensor, dt: float) -> torch.Tensor:
    """x * dt, without the multiplication when dt is 1 (x * 1.0 is x, bit for bit)."""
    return x if dt == 1.0 else x * dt


@functools.lru_cache(maxsize=16)
def _zero(device: torch.device) -> torch.Tensor:
    """A 0-d int64 zero made once per device (callers never write into it)."""
    return torch.zeros((), dtype=torch.int64, device=device)


def nan_guard(old: FlockState, new: FlockState) -> tuple[FlockState, torch.Tensor]:
    """``new`` with every agent whose position or velocity is not finite put back to ``old``.

    Returns:
        (guarded state, corrections: 0-dim int64 tensor, agents put back).
    """
    finite = torch.isfinite(new.pos).all(1, keepdim=True) & torch.isfinite(new.vel).all(1, keepdim=True)
    guarded = new.replace(pos=torch.where(finite, new.pos, old.pos), vel=torch.where(finite, new.vel, old.vel))
    return guarded, (~finite).sum()


__all__ = ["integrate", "integrate_motion", "nan_guard"]
