"""Rule arithmetic: from the kernel's sums S to accelerations or new velocities, for every agent at once.

No rule computes a distance: each reads only ``S [K, N, 2D+F+1]`` (layout
[positions D, velocities D, features F, weight sum 1]) from ``neighbors``.
The registry entries that use these functions live in ``flock.formulations``.

Symbol -> variable, for one agent i:
    p, v                 pos[i], vel[i]
    n_k = sum_j w_k      S[k, i, -1]
    xbar_k               S[k, i, :D] / n_k       (weighted mean neighbor position)
    vbar_k               S[k, i, D:2D] / n_k     (weighted mean neighbor velocity)
    sum_j w_k (p - x_j)  p * n_k - S[k, i, :D]
"""

from __future__ import annotations

import math

import torch

from .vectors import clip_norm, unit


def _means(s: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(count [N, 1], mean position [N, D], mean velocity [N, D]) of one channel's sums; 0 where count = 0."""
    count = s[:, -1:]
    safe = torch.where(count > 0, count, torch.ones_like(count))
    return count, s[:, :dim] / safe, s[:, dim:2 * dim] / safe


def seed_acceleration(pos: torch.Tensor, vel: torch.Tensor, s_view: torch.Tensor, s_near: torch.Tensor, *,
                      cohesion: float, alignment: float, separation: float, max_force: float) -> torch.Tensor:
    """The JavaScript boids post's ``nextAcceleration`` for every agent at once.

    direction = c unit(xbar_view - p) + a unit(vbar_view - v) - s unit(xbar_near - p) [if any near];
    acceleration = max_force unit(direction), and 0 for an agent that sees nobody.

    Args:
        pos, vel: [N, D] positions and velocities.
        s_view: [N, 2D+F+1] sums of the flat view kernel (self excluded).
        s_near: [N, 2D+F+1] sums of the flat "too near" kernel (self excluded).
        cohesion, alignment, separation: the rule weights (seed: 1, 0.7, 5.0).
        max_force: acceleration norm (seed: 0.1).
    Returns:
        [N, D] accelerations.
    """
    dim = pos.shape[1]
    n_view, xbar, vbar = _means(s_view, dim)
    n_near, xbar_near, _ = _means(s_near, dim)
    direction = cohesion * unit(xbar - pos) + alignment * unit(vbar - vel)
    direction = direction - torch.where(n_near > 0, separation * unit(xbar_near - pos), torch.zeros_like(pos))
    accel = max_force * unit(direction)
    return torch.where(n_view > 0, accel, torch.zeros_like(accel))


def reynolds_steer(desired_dir: torch.Tensor, vel: torch.Tensor, active: torch.Tensor, *,
                   max_speed: float, max_force: float) -> torch.Tensor:
    """Reynolds / OpenSteer steering: clip(max_speed unit(desired_dir) - v, max_force), 0 where not active.

    Args:
        desired_dir: [N, D] direction to go. vel: [N, D]. active: [N, 1] bool.
    """
    steer = clip_norm(max_speed * unit(desired_dir) - vel, max_force)
    return torch.where(active, steer, torch.zeros_like(steer))


def reynolds_acceleration(pos: torch.Tensor, vel: torch.Tensor, s_coh: torch.Tensor, s_ali: torch.Tensor,
                          s_sep: torch.Tensor, *, cohesion: float, alignment: float, separation: float,
                          max_speed: float, max_force: float) -> torch.Tensor:
    """Weighted sum of the three Reynolds steering forces.

    cohesion   desired toward xbar_coh - p
    alignment  desired along vbar_ali
    separation desired along sum_j (p - x_j) / d_ij^2 = p n_sep - S_sep[x] (inverse-square
               kernel), i.e. away from each neighbor weighted by inverse distance

    Args:
        pos, vel: [N, D]. s_coh, s_ali: [N, 2D+F+1] flat-kernel sums. s_sep: inverse-square sums.
    Returns:
        [N, D] accelerations (each steering force clipped to max_force before weighting).
    """
    dim = pos.shape[1]
    n_coh, xbar, _ = _means(s_coh, dim)
    n_ali, _, vbar = _means(s_ali, dim)
    away = pos * s_sep[:, -1:] - s_sep[:, :dim]
    kw = dict(max_speed=max_speed, max_force=max_force)
    return (cohesion * reynolds_steer(xbar - pos, vel, n_coh > 0, **kw)
            + alignment * reynolds_steer(vbar, vel, n_ali > 0, **kw)
            + separation * reynolds_steer(away, vel, s_sep[:, -1:] > 0, **kw))


def mesa_velocity(vel: torch.Tensor, s_view: torch.Tensor, s_sep: torch.Tensor, pos: torch.Tensor, *,
                  cohere: float, separate: float, match: float, speed: float) -> torch.Tensor:
    """Mesa 3's boid_flockers ``Boid.step`` for every agent at once (synchronously).

    direction = v / speed; with n neighbors within vision,
    direction += (cohere sum_j d_ij - separate sum_{j: |d_ij| < separation} d_ij + match sum_j dir_j) / n,
    then normalised; an agent with no neighbor keeps its direction. Returns the new [N, D] velocity
    (direction x speed).

    Args:
        vel, pos: [N, D]. s_view: flat sums within vision. s_sep: flat sums within the separation.
    """
    dim = pos.shape[1]
    n = s_view[:, -1:]
    direction = vel / speed
    delta = s_view[:, :dim] - pos * n
    close = s_sep[:, :dim] - pos * s_sep[:, -1:]
    headings = s_view[:, dim:2 * dim] / speed
    safe_n = torch.where(n > 0, n, torch.ones_like(n))
    turned = unit(direction + (cohere * delta - separate * close + match * headings) / safe_n)
    return torch.where(n > 0, turned * speed, vel)


def _angle(v: torch.Tensor) -> torch.Tensor:
    return torch.atan2(v[:, 1], v[:, 0])


def _turn_at_most(angle: torch.Tensor, target: torch.Tensor, max_turn: torch.Tensor | float,
                  active: torch.Tensor) -> torch.Tensor:
    """NetLogo's turn-towards: rotate ``angle`` toward ``target`` by at most ``max_turn`` (radians)."""
    turn = torch.remainder(target - angle + math.pi, 2 * math.pi) - math.pi
    turn = torch.clamp(turn, -max_turn, max_turn)
    return torch.where(active, angle + turn, angle)


def netlogo_velocity(vel: torch.Tensor, s_view: torch.Tensor, s_inv: torch.Tensor, pos: torch.Tensor,
                     nearest_vel: torch.Tensor, too_close: torch.Tensor, *, max_align: float, max_cohere: float,
                     max_separate: float, speed: float) -> torch.Tensor:
    """NetLogo's Flocking ``flock`` procedure for every turtle at once (2D, synchronously).

    With flockmates in vision: if the nearest is closer than minimum-separation, turn away
    from its heading by at most max-separate-turn; else turn toward the flockmates' summed
    heading by at most max-align-turn, then toward the mean direction to them (sum of unit
    offsets, the ``inverse`` kernel) by at most max-cohere-turn. A zero sum means no turn.
    Constant speed. Angles in radians.

    Args:
        vel, pos: [N, 2]. s_view: flat sums within vision. s_inv: inverse-distance sums within vision.
        nearest_vel: [N, 2] velocity of each turtle's nearest flockmate (any value where none).
        too_close: [N] bool, nearest flockmate closer than minimum-separation.
    """
    dim = pos.shape[1]
    has_mates = s_view[:, -1] > 0
    heading = _angle(vel)
    separate = has_mates & too_close
    flocking = has_mates & ~too_close
    away = heading + (heading - _angle(nearest_vel))   # the target whose turn-towards is turn-away
    heading = _turn_at_most(heading, away, max_separate, separate)
    mates_heading = s_view[:, dim:2 * dim]
    heading = _turn_at_most(heading, _angle(mates_heading), max_align,
                            flocking & (torch.linalg.vector_norm(mates_heading, dim=1) > 0))
    toward = s_inv[:, :dim] - pos * s_inv[:, -1:]
    heading = _turn_at_most(heading, _angle(toward), max_cohere,
                            flocking & (torch.linalg.vector_norm(toward, dim=1) > 0))
    return speed * torch.stack([torch.cos(heading), torch.sin(heading)], dim=1)
