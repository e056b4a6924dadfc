"""Groups (species): several kinds of boid in one state, told apart by ``state.group``.

Group 0 is the scenario's ``agents`` (named ``agents.name``, "flock" by default);
``species`` adds groups 1, 2, ... Each group has its own limits and may have its own
rules (same formulation). All groups' sums come out of the one kernel pass: the
kernel's ``features`` carry a one-hot group code and the positions and velocities
masked by it, so for every channel the sums over each group come out together.

Features, F = G (1 + D) (+ G D in a wrapped world), after [x D, v D] in S:
    onehot [N, G] | vel * onehot [N, G*D] | pos_A * onehot [N, G*D] | pos_B * onehot [N, G*D]

pos_A is the position relative to the world's origin, pos_B the same shifted by half a
period (wrapped): a query at least one support away from the seam of frame A sees all its
neighbors in one image of frame A, and otherwise in one image of frame B. So the mean
position of a group's neighbors is exact as long as the support is at most a quarter of the
world (the scenario checks this).

Symbol -> variable, for agent i, channel k, group h:
    n_kh          S[k, i, 2D + h]
    sum_j w v_j   S[k, i, 2D + G + hD : 2D + G + (h+1)D]
"""

from __future__ import annotations

import torch

from .initial import initial_state
from .kernels import Kernel
from .rules import boid_kernels, reynolds_acceleration, reynolds_steer, seed_acceleration
from .scenario import BoidRules, Scenario
from .state import FlockState
from .world import World, minimum_image, wall_acceleration

GROUP_SEED_STRIDE = 1_000_003  # species g draws its start from seed + g * stride


def group_names(scenario: Scenario) -> list[str]:
    return [scenario.agents.name or "flock"] + [sp.name for sp in scenario.species or []]


def group_specs(scenario: Scenario) -> list:
    """The agents spec of every group (``agents``, then each species)."""
    return [scenario.agents] + list(scenario.species or [])


def group_rules(scenario: Scenario) -> list[BoidRules]:
    """The rules of every group (a species without its own uses the top-level rules)."""
    return [scenario.rules] + [sp.rules or scenario.rules for sp in scenario.species or []]


def initial_group_state(scenario: Scenario, *, seed: int, device, dtype) -> tuple[FlockState, dict]:
    """The starting state of all groups: group 0 exactly as ``initial_state``, then each species."""
    state, info = initial_state(scenario, seed=seed, device=device, dtype=dtype)
    for g, spec in enumerate(scenario.species or [], start=1):
        part, _ = initial_state(scenario.model_copy(update={"agents": spec}), seed=seed + g * GROUP_SEED_STRIDE,
                                device=device, dtype=dtype)
        part.group = torch.full((part.n_agents,), g, dtype=torch.int64, device=part.device)
        state = state.concat(part)
    return state, info


def _per_agent(values: list[float], group: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[N, 1] tensor of ``values[group[i]]``."""
    table = torch.as_tensor(values, device=like.device, dtype=like.dtype)
    return table[group.clamp(0, len(values) - 1)][:, None]


def agent_limits(scenario: Scenario, group: torch.Tensor, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-agent [N, 1] limits and steering parameters of every agent's group.

    Keys: max_speed (inf if none), min_speed, max_force (inf if none), wander, avoid_weight, lookahead.
    """
    specs, rules = group_specs(scenario), group_rules(scenario)
    base = scenario.agents
    inf = float("inf")

    def pick(spec, key):
        value = getattr(spec, key)
        return value if value is not None else getattr(base, key)

    max_speed = [pick(s, "max_speed") for s in specs]
    max_force = [pick(s, "max_force") for s in specs]
    return {
        "max_speed": _per_agent([inf if v is None else v for v in max_speed], group, like),
        "min_speed": _per_agent([s.min_speed for s in specs], group, like),
        "max_force": _per_agent([inf if v is None else v for v in max_force], group, like),
        "wander": _per_agent([r.wander or 0.0 for r in rules], group, like),
        "avoid_weight": _per_agent([r.avoidance.weight if r.avoidance else 1.0 for r in rules], group, like),
        "lookahead": _per_agent([r.avoidance.lookahead if r.avoidance else 10.0 for r in rules], group, like),
    }


class GroupDynamics:
    """Seed or reynolds boids in several groups, with flee and chase between them.

    Channels: each group's rule channels (as ``BoidDynamics``), then one flat channel per
    flee and per centre-chase interaction at its radius.
    """

    sets_velocity = False

    def __init__(self, scenario: Scenario):
        self.scenario = scenario

    @property
    def n_groups(self) -> int:
        return 1 + len(self.scenario.species or [])

    def _group_kernels(self, rules: BoidRules) -> list[Kernel]:
        return boid_kernels(rules)

    def _interactions(self):
        inter = self.scenario.interactions
        if inter is None:
            return [], []
        return list(inter.flee), [c for c in inter.chase if c.mode == "centre"]

    def kernels(self) -> list[Kernel]:
        kernels = [k for rules in group_rules(self.scenario) for k in self._group_kernels(rules)]
        flee, chase = self._interactions()
        kernels += [Kernel("flat", radius=item.radius) for item in flee + chase]
        return kernels

    def features(self, state: FlockState, world: World) -> torch.Tensor:
        """[N, F] kernel features (layout in the module docstring)."""
        pos, vel = state.pos, state.vel
        onehot = torch.nn.functional.one_hot(state.group.clamp(0, self.n_groups - 1), self.n_groups).to(pos.dtype)
        rel = pos - world.origin_tensor(pos)
        parts = [onehot, _masked(vel, onehot), _masked(rel, onehot)]
        if world.periodic:
            size = world.size_tensor(pos)
            parts.append(_masked(torch.remainder(rel + size / 2, size), onehot))
        return torch.cat(parts, dim=1)

    def _group_sums(self, s: torch.Tensor, pos: torch.Tensor, h: torch.Tensor, support: float,
                    world: World) -> torch.Tensor:
        """[N, 2D+1] sums [x D, v D, 1] of channel sums ``s`` [N, W] over the neighbors in group ``h[i]``.

        Positions are the images nearest to each agent, as the kernel's own position sums are.
        """
        n, dim = pos.shape
        g = self.n_groups
        col = 2 * dim
        count = s[:, col:col + g].gather(1, h[:, None])
        idx = h[:, None, None].expand(n, 1, dim)
        vsum = s[:, col + g:col + g + g * dim].view(n, g, dim).gather(1, idx)[:, 0]
        xsum = s[:, col + g + g * dim:col + g + 2 * g * dim].view(n, g, dim).gather(1, idx)[:, 0]
        safe = torch.where(count > 0, count, torch.ones_like(count))
        origin = world.origin_tensor(pos)
        rel = pos - origin
        if world.periodic:
            size = world.size_tensor(pos)
            xsum_b = s[:, col + g + 2 * g * dim:col + g + 3 * g * dim].view(n, g, dim).gather(1, idx)[:, 0]
            near_seam = (rel < support) | (rel > size - support)
            mean = torch.where(near_seam, xsum_b / safe - size / 2, xsum / safe)
            mean = rel + minimum_image(mean - rel, size)
        else:
            mean = xsum / safe
        xsum = torch.where(count > 0, (mean + origin) * count, torch.zeros_like(mean))
        return torch.cat([xsum, vsum, count], dim=1)

    def acceleration(self, state: FlockState, sums: torch.Tensor, world: World,
                     limits: dict[str, torch.Tensor]) -> torch.Tensor:
        """[N, D] accelerations of every agent from the sums [K, N, W] (soft walls included)."""
        sc = self.scenario
        pos, vel, group = state.pos, state.vel, state.group
        dim = pos.shape[1]
        across = sc.interactions is not None and sc.interactions.flock_across_groups
        accel = torch.zeros_like(pos)
        k = 0
        for g, rules in enumerate(group_rules(sc)):
            channels = self._group_kernels(rules)
            s = [sums[k + c] for c in range(len(channels))]
            if not across:
                # cohesion/alignment within the own group; separation (the last channel) from everyone
                s = [self._group_sums(s[c], pos, group, channels[c].support, world)
                     for c in range(len(s) - 1)] + [s[-1]]
            weights = dict(cohesion=rules.cohesion.weight, alignment=rules.alignment.weight,
                           separation=rules.separation.weight)
            spec = group_specs(sc)[g]
            max_force = spec.max_force if spec.max_force is not None else sc.agents.max_force
            max_force = float("inf") if max_force is None else max_force
            if rules.formulation == "seed":
                a = seed_acceleration(pos, vel, s[0], s[1], max_force=max_force, **weights)
            else:
                max_speed = spec.max_speed if spec.max_speed is not None else sc.agents.max_speed
                a = reynolds_acceleration(pos, vel, s[0], s[1], s[2], max_speed=max_speed or 1.0,
                                          max_force=max_force, **weights)
            accel = torch.where((group == g)[:, None], a, accel)
            k += len(channels)
        names = group_names(sc)
        flee, chase = self._interactions()
        steer = dict(max_speed=limits["max_speed"], max_force=limits["max_force"])
        for item in flee:
            pred = torch.full_like(group, names.index(item.predator))
            s = self._group_sums(sums[k], pos, pred, item.radius, world)
            count, centre = s[:, -1:], s[:, :dim] / torch.clamp_min(s[:, -1:], 1.0)
            active = (group == names.index(item.prey))[:, None] & (count > 0)
            accel = accel + item.weight * reynolds_steer(pos - centre, vel, active, **steer)
            k += 1
        for item in chase:
            prey = torch.full_like(group, names.index(item.prey))
            s = self._group_sums(sums[k], pos, prey, item.radius, world)
            count, centre = s[:, -1:], s[:, :dim] / torch.clamp_min(s[:, -1:], 1.0)
            active = (group == names.index(item.predator))[:, None] & (count > 0)
            accel = accel + item.weight * reynolds_steer(centre - pos, vel, active, **steer)
            k += 1
        accel = accel + self._chase_nearest(state, world, steer)
        if world.boundary == "soft":
            accel = accel + wall_acceleration(pos, world)
        return accel

    def _chase_nearest(self, state: FlockState, world: World, steer: dict) -> torch.Tensor:
        from .neighbors.nearest import nearest_neighbor

        accel = torch.zeros_like(state.pos)
        inter = self.scenario.interactions
        if inter is None:
            return accel
        names = group_names(self.scenario)
        pos, vel, group = state.pos, state.vel, state.group
        period = world.period(pos)
        for item in inter.chase:
            if item.mode != "nearest":
                continue
            hunters = torch.nonzero(group == names.index(item.predator)).flatten()
            if hunters.numel() == 0:
                continue
            idx, _ = nearest_neighbor(pos, radius=item.radius, period=period, query_pos=pos[hunters],
                                      query_index=hunters, candidates=group == names.index(item.prey))
            target = minimum_image(pos[idx.clamp_min(0)] - pos[hunters], period)
            active = (idx >= 0)[:, None]
            a = item.weight * reynolds_steer(target, vel[hunters], active,
                                             max_speed=steer["max_speed"][hunters],
                                             max_force=steer["max_force"][hunters])
            accel = accel.index_add(0, hunters, a)
        return accel


def _masked(x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """[N, G*D]: x [N, D] in the block of each agent's group, zeros elsewhere."""
    return (onehot[:, :, None] * x[:, None, :]).reshape(x.shape[0], -1)
