"""Rules: from the kernel's sums S to accelerations (boids) or new positions (mean shift).

No rule computes a distance: each reads only ``S [K, N, 2D+F+1]`` (layout
[positions D, velocities D, features F, weight sum 1]) from ``neighbors``.
The dynamics objects read their parameters from the scenario model at every
step, so a parameter changed live (a renderer slider) takes effect on the next step.

Symbol -> variable, for one agent i:
    p, v                 pos[i], vel[i]
    n_k = sum_j w_k      S[k, i, -1]
    xbar_k               S[k, i, :D] / n_k       (weighted mean neighbor position)
    vbar_k               S[k, i, D:2D] / n_k     (weighted mean neighbor velocity)
    sum_j w_k (p - x_j)  p * n_k - S[k, i, :D]
"""

from __future__ import annotations

import torch

import math

from .kernels import Kernel
from .vectors import clip_norm, unit
from .world import World, wall_acceleration


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


class BoidDynamics:
    """Boid rules of a scenario (``rules.formulation`` seed or reynolds).

    Channels: seed, mesa -> [view (flat, r = cohesion.radius), near (flat, r = min(separation, view))];
    reynolds -> [cohesion (flat), alignment (flat), separation (inverse-square)];
    netlogo -> [view (flat), view (inverse distance: sums of unit offsets)] and a nearest-flockmate query.
    seed and reynolds give accelerations (``acceleration``); mesa and netlogo set the
    velocity directly at constant speed (``velocity``).
    """

    @property
    def sets_velocity(self) -> bool:
        return self.scenario.rules.formulation in ("mesa", "netlogo")

    def velocity(self, pos: torch.Tensor, vel: torch.Tensor, sums: torch.Tensor, period) -> torch.Tensor:
        """New [N, D] velocities of the constant-speed formulations (mesa, netlogo)."""
        rules, speed = self.scenario.rules, self.scenario.agents.max_speed
        if rules.formulation == "mesa":
            return mesa_velocity(vel, sums[0], sums[1], pos, cohere=rules.cohesion.weight,
                                 separate=rules.separation.weight, match=rules.alignment.weight, speed=speed)
        from .neighbors.nearest import nearest_neighbor

        idx, dist = nearest_neighbor(pos, radius=rules.cohesion.radius, period=period)
        nearest_vel = vel[idx.clamp_min(0)] if pos.shape[0] else vel
        too_close = (idx >= 0) & (dist < rules.separation.radius)
        return netlogo_velocity(vel, sums[0], sums[1], pos, nearest_vel, too_close,
                                max_align=math.radians(rules.alignment.max_turn),
                                max_cohere=math.radians(rules.cohesion.max_turn),
                                max_separate=math.radians(rules.separation.max_turn), speed=speed)

    def __init__(self, scenario):
        self.scenario = scenario

    def kernels(self) -> list[Kernel]:
        return boid_kernels(self.scenario.rules)

    def acceleration(self, pos: torch.Tensor, vel: torch.Tensor, sums: torch.Tensor, world: World) -> torch.Tensor:
        """[N, D] accelerations from the sums [K, N, W], soft walls included."""
        rules, agents = self.scenario.rules, self.scenario.agents
        weights = dict(cohesion=rules.cohesion.weight, alignment=rules.alignment.weight,
                       separation=rules.separation.weight)
        max_force = agents.max_force if agents.max_force is not None else float("inf")
        if rules.formulation == "seed":
            accel = seed_acceleration(pos, vel, sums[0], sums[1], max_force=max_force, **weights)
        else:
            max_speed = agents.max_speed if agents.max_speed is not None else 1.0
            accel = reynolds_acceleration(pos, vel, sums[0], sums[1], sums[2], max_speed=max_speed,
                                          max_force=max_force, **weights)
        if world.boundary == "soft":
            accel = accel + wall_acceleration(pos, world)
        return accel


def boid_kernels(rules) -> list[Kernel]:
    """The kernel channels of a ``BoidRules`` formulation, with its field of view.

    seed / mesa: [view (flat at cohesion.radius), too near (flat at separation.radius)];
    netlogo: [view, inverse (sums of unit offsets)]; reynolds: [cohesion, alignment,
    separation (inverse square)], each at its own radius.
    """
    fov = rules.field_of_view
    view = rules.cohesion.radius
    if rules.formulation in ("seed", "mesa"):
        return [Kernel("flat", radius=view, fov=fov),
                Kernel("flat", radius=min(rules.separation.radius, view), fov=fov)]
    if rules.formulation == "netlogo":
        return [Kernel("flat", radius=view), Kernel("inverse", radius=view)]
    return [Kernel("flat", radius=rules.cohesion.radius, fov=fov),
            Kernel("flat", radius=rules.alignment.radius, fov=fov),
            Kernel("inverse_square", radius=rules.separation.radius, fov=fov)]


class MeanShiftDynamics:
    """Mean shift as particle dynamics: every point moves to the kernel-weighted mean of all points.

    new x_i = S[x] / S[1] with the point itself included (the fastai lesson's
    ``weight @ X / div``); one step is one iteration. Converged when
    sum|X_new - X| / sum|X| < tol, or after max_iter steps.
    """

    def __init__(self, scenario):
        self.scenario = scenario

    def kernels(self) -> list[Kernel]:
        rules = self.scenario.rules
        h = rules.bandwidth
        if rules.kernel == "gaussian":
            radius = rules.radius if rules.radius is not None else (3 * h if rules.truncate else None)
            return [Kernel("gaussian", bandwidth=h, radius=radius, exclude_self=False)]
        return [Kernel(rules.kernel, radius=rules.radius or h, exclude_self=False)]

    @staticmethod
    def shift(pos: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
        """New positions [N, D] = weighted means; a point with zero weight sum stays put."""
        dim = pos.shape[1]
        count = sums[0, :, -1:]
        mean = sums[0, :, :dim] / torch.where(count > 0, count, torch.ones_like(count))
        return torch.where(count > 0, mean, pos)


class CirclesDynamics:
    """FLAME GPU 2's circles benchmark as a rule: two channels, one kernel pass.

    Channels: [circles: w = a sin(-2 pi' d / r) / d on 0 < d < r, count: flat on 0 < d < r].
    displacement_i = (S_circ[x] - x_i S_circ[1]) / max(count_i, 1)
                   = mean_j a sin(-2 pi' d_ij / r) (x_j - x_i) / d_ij
    """

    def __init__(self, scenario):
        self.scenario = scenario

    def kernels(self) -> list[Kernel]:
        rules = self.scenario.rules
        return [Kernel("circles", radius=rules.radius, strength=rules.repulse),
                Kernel("flat", radius=rules.radius, open_center=True)]

    @staticmethod
    def displacement(pos: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
        """[N, D] move of every agent this step."""
        dim = pos.shape[1]
        count = torch.clamp_min(sums[1, :, -1:], 1.0)
        return (sums[0, :, :dim] - pos * sums[0, :, -1:]) / count
