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
from .rules import reynolds_steer
from .scenario_schema import BoidRules, Scenario
from .state import FlockState
from .world import World, minimum_image

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


def group_limits(scenario: Scenario) -> dict[str, list[float]]:
    """Per-group limits and steering parameters, a list of G values each (``Params`` holds them as tensors).

    Keys: max_speed (inf if none), min_speed, max_force (inf if none), wander, avoid_weight, lookahead.
    A species leaves out a limit: the base group's applies.
    """
    specs, rules = group_specs(scenario), group_rules(scenario)
    base = scenario.agents
    inf = float("inf")

    def pick(spec, key):
        value = getattr(spec, key)
        return value if value is not None else getattr(base, key)

    values = {
        "max_speed": [inf if (v := pick(s, "max_speed")) is None else v for s in specs],
        "min_speed": [s.min_speed for s in specs],
        "max_force": [inf if (v := pick(s, "max_force")) is None else v for s in specs],
        "wander": [getattr(r, "wander", None) or 0.0 for r in rules],
        "avoid_weight": [a.weight if (a := getattr(r, "avoidance", None)) else 1.0 for r in rules],
        "lookahead": [a.lookahead if (a := getattr(r, "avoidance", None)) else 10.0 for r in rules],
    }
    return values


def n_groups(scenario: Scenario) -> int:
    return 1 + len(scenario.species or [])


def _interactions(scenario: Scenario):
    inter = scenario.interactions
    if inter is None:
        return [], []
    return list(inter.flee), [c for c in inter.chase if c.mode == "centre"]


def group_kernels(scenario: Scenario, rules_table) -> list[Kernel]:
    """Channels: each group's rule channels (``rules_table[formulation].channels``), then one flat
    channel per flee and per centre-chase interaction at its radius."""
    kernels = [k for rules in group_rules(scenario) for k in rules_table[rules.formulation].channels(rules)]
    flee, chase = _interactions(scenario)
    return kernels + [Kernel("flat", radius=item.radius) for item in flee + chase]


def group_features(state: FlockState, world: World, groups: int) -> torch.Tensor:
    """[N, F] kernel features (layout in the module docstring)."""
    pos, vel = state.pos, state.vel
    # a comparison, not one_hot: one_hot checks the largest id on the host
    onehot = (state.group.clamp(0, groups - 1)[:, None] == torch.arange(groups, device=pos.device)).to(pos.dtype)
    rel = pos - world.origin_tensor(pos)
    parts = [onehot, _masked(vel, onehot), _masked(rel, onehot)]
    if world.periodic:
        size = world.size_tensor(pos)
        parts.append(_masked(torch.remainder(rel + size / 2, size), onehot))
    return torch.cat(parts, dim=1)


def group_sums(s: torch.Tensor, pos: torch.Tensor, h: torch.Tensor, support: float, world: World,
               groups: int) -> torch.Tensor:
    """[N, 2D+1] sums [x D, v D, 1] of channel sums ``s`` [N, W] over the neighbors in group ``h[i]``.

    Positions are the images nearest to each agent, as the kernel's own position sums are.
    """
    n, dim = pos.shape
    g = groups
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


def group_acceleration(state: FlockState, sums: torch.Tensor, params, rules_table) -> torch.Tensor:
    """[N, D] accelerations of every agent from the sums [K, N, W] (walls are a separate term).

    Args:
        params: ``flock.params.Params`` (scenario, world, per-agent limits).
        rules_table: the rule registry; each group's formulation supplies ``channels`` and ``steer``.
    """
    sc, world, groups = params.scenario, params.world, params.n_groups
    pos, vel, group = state.pos, state.vel, state.group
    dim = pos.shape[1]
    across = sc.interactions is not None and sc.interactions.flock_across_groups
    accel = torch.zeros_like(pos)
    k = 0
    for g, (rules, spec) in enumerate(zip(group_rules(sc), group_specs(sc))):
        rule = rules_table[rules.formulation]
        channels = rule.channels(rules)
        s = [sums[k + c] for c in range(len(channels))]
        if not across:
            # cohesion/alignment within the own group; separation (the last channel) from everyone
            s = [group_sums(s[c], pos, group, channels[c].support, world, groups)
                 for c in range(len(s) - 1)] + [s[-1]]
        max_force = spec.max_force if spec.max_force is not None else sc.agents.max_force
        max_speed = spec.max_speed if spec.max_speed is not None else sc.agents.max_speed
        a = rule.steer(pos, vel, s, rules, max_speed=max_speed or 1.0,
                       max_force=float("inf") if max_force is None else max_force)
        accel = torch.where((group == g)[:, None], a, accel)
        k += len(channels)
    names = group_names(sc)
    flee, chase = _interactions(sc)
    limits = params.agent_limits(group)
    steer = dict(max_speed=limits["max_speed"], max_force=limits["max_force"])
    for item in flee:
        pred = torch.full_like(group, names.index(item.predator))
        s = group_sums(sums[k], pos, pred, item.radius, world, groups)
        count, centre = s[:, -1:], s[:, :dim] / torch.clamp_min(s[:, -1:], 1.0)
        active = (group == names.index(item.prey))[:, None] & (count > 0)
        accel = accel + item.weight * reynolds_steer(pos - centre, vel, active, **steer)
        k += 1
    for item in chase:
        prey = torch.full_like(group, names.index(item.prey))
        s = group_sums(sums[k], pos, prey, item.radius, world, groups)
        count, centre = s[:, -1:], s[:, :dim] / torch.clamp_min(s[:, -1:], 1.0)
        active = (group == names.index(item.predator))[:, None] & (count > 0)
        accel = accel + item.weight * reynolds_steer(centre - pos, vel, active, **steer)
        k += 1
    return accel + chase_nearest(state, params, steer)


def chase_nearest(state: FlockState, params, steer: dict) -> torch.Tensor:
    """[N, D] steering of every ``mode: nearest`` hunter toward its nearest prey within the radius.

    Every agent queries (no host-side selection of the hunters, so no sync); the steering is
    kept for the hunters only.
    """
    from .neighbors.nearest import nearest

    accel = torch.zeros_like(state.pos)
    inter = params.scenario.interactions
    if inter is None:
        return accel
    names = group_names(params.scenario)
    pos, vel, group = state.pos, state.vel, state.group
    period = params.world.period(pos)
    for item in inter.chase:
        if item.mode != "nearest":
            continue
        idx, _ = nearest(pos, radius=item.radius, period=period, candidates=group == names.index(item.prey))
        target = minimum_image(pos[idx.clamp_min(0)] - pos, period)
        active = ((idx >= 0) & (group == names.index(item.predator)))[:, None]
        accel = accel + item.weight * reynolds_steer(target, vel, active, **steer)
    return accel


def _masked(x: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """[N, G*D]: x [N, D] in the block of each agent's group, zeros elsewhere."""
    return (onehot[:, :, None] * x[:, None, :]).reshape(x.shape[0], -1)
