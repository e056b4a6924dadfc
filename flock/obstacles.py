"""Static obstacles and scenario attractors: things in the world that are not agents.

Obstacles (``scenario.obstacles``): solid circles/spheres, thin 2D segment walls, and 3D
planes (the half-space behind the normal is solid). Agents avoid them the Reynolds way,
looking ``lookahead`` ahead along their velocity and steering laterally away from an
obstacle the path would hit; after the move a hard projection puts any agent that got
inside (or crossed a segment) back on the surface and removes its inward velocity.

Attractors (``scenario.attractors``) become ``flock.forces.PointForce`` objects; a
``path`` attractor moves at ``speed`` along the closed polyline.
"""

from __future__ import annotations

import math

import torch

from .forces import PointForce
from .rules import reynolds_steer
from .scenario_schema import Scenario, SegmentObstacle, SphereObstacle
from .vectors import unit
from .world import constant, minimum_image

_EPS = 1e-4  # relative distance kept from a wall after a projection


def _vec(values, like: torch.Tensor) -> torch.Tensor:
    """A cached constant on ``like``'s device: no host-to-device copy per step."""
    return constant(tuple(float(v) for v in values), like.device, like.dtype)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1, keepdim=True)


def _perpendicular(u: torch.Tensor) -> torch.Tensor:
    """A unit vector perpendicular to each row of ``u`` [N, D] (2D: rotated left)."""
    if u.shape[1] == 2:
        return torch.stack([-u[:, 1], u[:, 0]], dim=1)
    axis = torch.zeros_like(u)
    axis[:, 0] = 1.0
    other = torch.zeros_like(u)
    other[:, 1] = 1.0
    use = torch.where(u[:, :1].abs() < 0.9, axis, other)
    return unit(torch.linalg.cross(u, use))


def _segment_crossing(p0, p1, a, b):
    """Where the moves p0 -> p1 [N, D] cross the segment a -> b (2D): (hit [N, 1] bool, t [N, 1])."""
    r = p1 - p0
    s = b - a
    denom = r[:, 0] * s[1] - r[:, 1] * s[0]
    q = a - p0
    safe = torch.where(denom != 0, denom, torch.ones_like(denom))
    t = (q[:, 0] * s[1] - q[:, 1] * s[0]) / safe
    u = (q[:, 0] * r[:, 1] - q[:, 1] * r[:, 0]) / safe
    hit = (denom != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    return hit[:, None], t[:, None]


def _segment_normal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    s = b - a
    return unit(torch.stack([-s[1], s[0]]))


def avoidance_acceleration(scenario: Scenario, pos: torch.Tensor, vel: torch.Tensor, period,
                           limits: dict[str, torch.Tensor]) -> torch.Tensor:
    """[N, D] look-ahead avoidance steering of every agent (zeros where no obstacle is ahead).

    Args:
        pos, vel: [N, D]. period: [D] or None. limits: ``flock.species.agent_limits``.
    """
    lookahead = limits["lookahead"]
    speed = torch.linalg.vector_norm(vel, dim=1, keepdim=True)
    u = unit(vel)
    moving = speed > 0
    away = torch.zeros_like(pos)
    for ob in scenario.obstacles or []:
        if isinstance(ob, SphereObstacle):
            off = minimum_image(_vec(ob.center, pos) - pos, period)          # agent -> centre
            along = _dot(off, u)
            rel = torch.clamp(along, min=torch.zeros_like(lookahead), max=lookahead) * u - off   # centre -> closest
            threat = moving & (along > 0) & (torch.linalg.vector_norm(rel, dim=1, keepdim=True) < 1.25 * ob.radius)
            lateral = rel - _dot(rel, u) * u
            lateral = torch.where(torch.linalg.vector_norm(lateral, dim=1, keepdim=True) > 1e-6 * ob.radius,
                                  unit(lateral), _perpendicular(u))
            closeness = 1.0 - torch.clamp(along / lookahead, 0, 1)
            away = away + torch.where(threat, lateral * (1.0 + closeness), torch.zeros_like(away))
        elif isinstance(ob, SegmentObstacle):
            a, b = _vec(ob.a, pos), _vec(ob.b, pos)
            hit, _ = _segment_crossing(pos, pos + u * lookahead, a, b)
            n = _segment_normal(a, b)
            side = torch.sign(_dot(pos - a, n))
            side = torch.where(side == 0, -torch.sign(_dot(u, n)), side)
            away = away + torch.where(hit & moving, side * n, torch.zeros_like(away))
        else:
            point, n = _vec(ob.point, pos), unit(_vec(ob.normal, pos))
            ahead = _dot(pos + u * lookahead - point, n)
            threat = moving & (ahead < 0)
            away = away + torch.where(threat, n.expand_as(pos), torch.zeros_like(away))
    active = torch.linalg.vector_norm(away, dim=1, keepdim=True) > 0
    steer = reynolds_steer(away, vel, active, max_speed=torch.where(torch.isfinite(limits["max_speed"]),
                                                                   limits["max_speed"], speed.clamp_min(1.0)),
                           max_force=limits["max_force"])
    return limits["avoid_weight"] * steer


def project_out(scenario: Scenario, old_pos: torch.Tensor, pos: torch.Tensor, vel: torch.Tensor,
                period) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Agents inside an obstacle (or that crossed a segment wall) back on its surface, inward velocity removed.

    Args:
        old_pos: [N, D] positions before the move. pos, vel: [N, D] after it. period: [D] or None.
    Returns:
        (pos, vel, corrections: 0-dim int64 tensor, agents moved back).
    """
    fixed = torch.zeros(pos.shape[0], 1, dtype=torch.bool, device=pos.device)
    for ob in scenario.obstacles or []:
        if isinstance(ob, SphereObstacle):
            center = _vec(ob.center, pos)
            off = minimum_image(pos - center, period)
            dist = torch.linalg.vector_norm(off, dim=1, keepdim=True)
            inside = dist < ob.radius
            fallback = unit(minimum_image(old_pos - center, period))
            fallback = torch.where(torch.linalg.vector_norm(fallback, dim=1, keepdim=True) > 0, fallback,
                                   _perpendicular(unit(vel) + _vec([1.0] + [0.0] * (pos.shape[1] - 1), pos)))
            n = torch.where(dist > 0, unit(off), fallback)
            surface = pos - off + n * ob.radius * (1 + _EPS)
            inward = torch.clamp_max(_dot(vel, n), 0.0)
            pos = torch.where(inside, surface, pos)
            vel = torch.where(inside, vel - inward * n, vel)
            fixed = fixed | inside
        elif isinstance(ob, SegmentObstacle):
            a, b = _vec(ob.a, pos), _vec(ob.b, pos)
            step = minimum_image(pos - old_pos, period)
            hit, t = _segment_crossing(old_pos, old_pos + step, a, b)
            n = _segment_normal(a, b)
            side = torch.sign(_dot(old_pos - a, n))
            side = torch.where(side == 0, -torch.sign(_dot(step, n)), side)
            side = torch.where(side == 0, torch.ones_like(side), side)
            length = math.dist(ob.a, ob.b)
            back = old_pos + t * step + side * n * (_EPS * length)
            inward = torch.clamp_max(_dot(vel, side * n), 0.0)
            pos = torch.where(hit, back, pos)
            vel = torch.where(hit, vel - inward * side * n, vel)
            fixed = fixed | hit
        else:
            point, n = _vec(ob.point, pos), unit(_vec(ob.normal, pos))
            depth = _dot(pos - point, n)
            inside = depth < 0
            pos = torch.where(inside, pos - depth * n, pos)
            vel = torch.where(inside, vel - torch.clamp_max(_dot(vel, n), 0.0) * n, vel)
            fixed = fixed | inside
    return pos, vel, fixed.sum()


def attractor_forces(scenario: Scenario, time: float) -> list[PointForce]:
    """The scenario's attractors as point forces at simulated ``time``."""
    forces = []
    for at in scenario.attractors or []:
        radius = at.radius if at.radius is not None else math.inf
        if at.position is not None:
            center = tuple(float(c) for c in at.position)
        else:
            center = _along_path(at.path, at.speed * time)
        forces.append(PointForce(center=center, strength=at.strength, radius=radius))
    return forces


def _along_path(path: list[list[float]], distance: float) -> tuple[float, ...]:
    """The point ``distance`` along the closed polyline ``path`` (from its first point)."""
    legs = [(path[i], path[(i + 1) % len(path)]) for i in range(len(path))]
    lengths = [math.dist(a, b) for a, b in legs]
    total = sum(lengths)
    if total == 0:
        return tuple(float(c) for c in path[0])
    distance = distance % total
    for (a, b), length in zip(legs, lengths):
        if distance <= length and length > 0:
            f = distance / length
            return tuple(float(x + f * (y - x)) for x, y in zip(a, b))
        distance -= length
    return tuple(float(c) for c in path[0])
