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
from .world import constant


def stacked_sums(sums, k: int) -> torch.Tensor:
    """The first ``k`` channels' sums as one [k, N, W] tensor (a view when they already are one).

    Channels of different widths (a group's own channels without the feature columns
    that the channel from everyone has) keep the columns the rules read: [x, v, count].

    Args:
        sums: [K, N, W] tensor or a sequence of [N, W_k] tensors (layout [x, v, f, count]), K >= k.
    """
    if isinstance(sums, torch.Tensor):
        return sums[:k]
    parts = list(sums[:k])
    width = min(p.shape[1] for p in parts)
    if any(p.shape[1] != width for p in parts):
        parts = [torch.cat((p[:, :width - 1], p[:, -1:]), dim=1) for p in parts]
    return torch.stack(parts)


def _weights(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """[k, 1, 1] rule weights on ``like``'s device and dtype (made once per value, no copy per step)."""
    return constant(tuple(float(v) for v in values), like.device, like.dtype).view(-1, 1, 1)


# The rules below take every channel at once ([K, N, ...] tensors): a flock step is mostly
# the launch cost of its small tensor operations, so one operation on K channels beats K.
# Each computes the same values, operation by operation, as the per-channel arithmetic in
# the docstrings (flock.testing keeps that form as the reference the tests compare with).


def seed_acceleration(pos: torch.Tensor, vel: torch.Tensor, s_view: torch.Tensor, s_near: torch.Tensor, *,
                      cohesion: float, alignment: float, separation: float, max_force: float,
                      sums: torch.Tensor | None = None) -> torch.Tensor:
    """The JavaScript boids post's ``nextAcceleration`` for every agent at once.

    direction = c unit(xbar_view - p) + a unit(vbar_view - v) - s unit(xbar_near - p) [if any near];
    acceleration = max_force unit(direction), and 0 for an agent that sees nobody.

    Args:
        pos, vel: [N, D] positions and velocities.
        s_view: [N, 2D+F+1] sums of the flat view kernel (self excluded).
        s_near: [N, 2D+F+1] sums of the flat "too near" kernel (self excluded).
        cohesion, alignment, separation: the rule weights (seed: 1, 0.7, 5.0).
        max_force: acceleration norm (seed: 0.1).
        sums: [2, N, W], the two channels stacked, when the caller has them so (no copy).
    Returns:
        [N, D] accelerations.
    """
    dim = pos.shape[1]
    s = stacked_sums((s_view, s_near), 2) if sums is None else sums
    count = s[:, :, -1:]
    seen = count > 0                                                   # [2, N, 1]
    means = s[:, :, :2 * dim] / torch.where(seen, count, 1.0)          # [2, N, 2D]: xbar, vbar per channel
    offsets = torch.cat((means[:, :, :dim] - pos, (means[0, :, dim:] - vel)[None]))   # xbar-p, xbar_near-p, vbar-v
    dirs = _weights((cohesion, separation, alignment), pos) * unit(offsets)
    direction = (dirs[0] + dirs[2]) - torch.where(seen[1], dirs[1], 0.0)
    accel = max_force * unit(direction)
    return torch.where(seen[0], accel, 0.0)


def reynolds_steer(desired_dir: torch.Tensor, vel: torch.Tensor, active: torch.Tensor, *,
                   max_speed: float, max_force: float) -> torch.Tensor:
    """Reynolds / OpenSteer steering: clip(max_speed unit(desired_dir) - v, max_force), 0 where not active.

    Args:
        desired_dir: [..., N, D] direction to go. vel: [N, D]. active: [..., N, 1] bool.
    """
    steer = clip_norm(max_speed * unit(desired_dir) - vel, max_force)
    return torch.where(active, steer, 0.0)


def reynolds_acceleration(pos: torch.Tensor, vel: torch.Tensor, s_coh: torch.Tensor, s_ali: torch.Tensor,
                          s_sep: torch.Tensor, *, cohesion: float, alignment: float, separation: float,
                          max_speed: float, max_force: float, sums: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted sum of the three Reynolds steering forces.

    cohesion   desired toward xbar_coh - p
    alignment  desired along vbar_ali
    separation desired along sum_j (p - x_j) / d_ij^2 = p n_sep - S_sep[x] (inverse-square
               kernel), i.e. away from each neighbor weighted by inverse distance

    Args:
        pos, vel: [N, D]. s_coh, s_ali: [N, 2D+F+1] flat-kernel sums. s_sep: inverse-square sums.
        sums: [3, N, W], the three channels stacked, when the caller has them so (no copy).
    Returns:
        [N, D] accelerations (each steering force clipped to max_force before weighting).
    """
    dim = pos.shape[1]
    s = stacked_sums((s_coh, s_ali, s_sep), 3) if sums is None else sums
    count = s[:, :, -1:]
    seen = count > 0                                                   # [3, N, 1]
    means = s[:2, :, :2 * dim] / torch.where(seen[:2], count[:2], 1.0)
    away = pos * count[2] - s[2, :, :dim]
    desired = torch.cat(((means[0, :, :dim] - pos)[None], means[1:2, :, dim:2 * dim], away[None]))
    steer = _weights((cohesion, alignment, separation), pos) * reynolds_steer(
        desired, vel, seen, max_speed=max_speed, max_force=max_force)
    return steer[0] + steer[1] + steer[2]


def mesa_velocity(vel: torch.Tensor, s_view: torch.Tensor, s_sep: torch.Tensor, pos: torch.Tensor, *,
                  cohere: float, separate: float, match: float, speed: float,
                  sums: torch.Tensor | None = None) -> torch.Tensor:
    """Mesa 3's boid_flockers ``Boid.step`` for every agent at once (synchronously).

    direction = v / speed; with n neighbors within vision,
    direction += (cohere sum_j d_ij - separate sum_{j: |d_ij| < separation} d_ij + match sum_j dir_j) / n,
    then normalised; an agent with no neighbor keeps its direction. Returns the new [N, D] velocity
    (direction x speed).

    Args:
        vel, pos: [N, D]. s_view: flat sums within vision. s_sep: flat sums within the separation.
        sums: [2, N, W], the two channels stacked, when the caller has them so (no copy).
    """
    dim = pos.shape[1]
    s = stacked_sums((s_view, s_sep), 2) if sums is None else sums
    n = s[0, :, -1:]
    seen = n > 0
    offsets = _weights((cohere, separate), pos) * (s[:, :, :dim] - pos * s[:, :, -1:])   # cohere delta, separate close
    headings = s[0, :, dim:2 * dim] / speed
    turned = unit(vel / speed + ((offsets[0] - offsets[1]) + match * headings) / torch.where(seen, n, 1.0))
    return torch.where(seen, turned * speed, vel)


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
