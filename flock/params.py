"""Params: everything static a step needs, built once from a scenario (Brax keeps ``System`` apart from ``State``).

``build_params(scenario, device=, dtype=)`` resolves the scenario into the rule of the
registry, its kernel channels, the world, the time step, the per-group limit tables on
the device, and the list of extra acceleration terms. The step reads nothing else, so
it never looks at the scenario's structure again; ``Simulation`` rebuilds the params when
the scenario changes (a slider) or when point forces are added live.
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass, field

import torch

from .errors import ScenarioError
from .formulations import Rule, rule_for
from .forces import PointForce
from .kernels import Kernel
from .species import group_limits, n_groups
from .terms import Term, build_terms
from .world import World


def world_of(scenario) -> World:
    """The ``World`` of a scenario's ``world`` section."""
    w = scenario.world
    return World(size=tuple(w.size), boundary=w.boundary, wall_force=w.wall_force, wall_margin=w.wall_margin,
                 origin=tuple(w.origin) if w.origin is not None else None)


@dataclass(frozen=True)
class Params:
    """Static configuration of a step.

    Attributes:
        scenario: the validated scenario the params were built from (rules read their weights here).
        rule: the registered ``Rule`` (``flock.formulations``).
        kernels: the rule's kernel channels (K of them).
        world: the box and its boundary.
        dt: time step, time units.
        n_groups: G, groups (species) in the state.
        n_members: B, independent members stacked in the state (ensembles; 1 otherwise).
            The neighbor sums never pair agents of different members.
        terms: the extra acceleration terms, added in this order.
        limit_tables: per-group [G] tensors (max_speed, min_speed, max_force, wander,
            avoid_weight, lookahead) on the state's device and dtype.
        base_limits: group 0's steering limits as Python floats (max_speed, default 1.0 for
            steering; max_force, inf when none).
        speed_limited: some group has a finite max_speed or a min_speed > 0.
        obstacles: the scenario has obstacles (the integrator projects agents out of them).
        box: (low, high) corners of the world box as host floats where agents are kept
            near it (wrap, soft, reflect), None in an open world; cell lists are laid out
            over it without reading positions back from the device.
        shared_limits: with one group, its limits as [1, 1] tensors (``agent_limits``
            returns them without a gather), else None.
        raises_speed: some group has a min_speed > 0 (the integrator raises slow agents).
    """

    scenario: object
    rule: Rule
    kernels: tuple[Kernel, ...]
    world: World
    dt: float
    n_groups: int
    n_members: int
    terms: tuple[Term, ...]
    limit_tables: dict[str, torch.Tensor] = field(repr=False)
    base_limits: dict[str, float]
    speed_limited: bool
    obstacles: bool
    box: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    shared_limits: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    raises_speed: bool = True

    def agent_limits(self, group: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-agent [N, 1] limits of every agent's group (a gather: no host sync); with one
        group, the same [1, 1] values for everyone (made once: they broadcast as [N, 1]).

        Args:
            group: [N] int64 group ids.
        """
        if self.shared_limits is not None:
            return self.shared_limits
        g = group.clamp(0, self.n_groups - 1)
        return {key: table[g][:, None] for key, table in self.limit_tables.items()}

    def period(self, like: torch.Tensor) -> torch.Tensor | None:
        return self.world.period(like)


def build_params(scenario, *, device, dtype, point_forces: tuple[PointForce, ...] | list = (),
                 n_members: int = 1) -> Params:
    """The ``Params`` of ``scenario`` on ``device`` / ``dtype``.

    Raises:
        ScenarioError: live point forces on a rule that refuses extra terms (mean shift).
    """
    rule = rule_for(scenario)
    terms = build_terms(scenario, tuple(point_forces))
    if rule.refuses_terms and terms:
        raise ScenarioError(f"{rule.name}: extra forces ({', '.join(t.name for t in terms)}) have no meaning for "
                            f"the {rule.name} formulation; remove them")
    limits = group_limits(scenario)
    tables = {key: torch.tensor(values, device=device, dtype=dtype) for key, values in limits.items()}
    agents = scenario.agents
    base = {"max_speed": agents.max_speed if agents.max_speed is not None else 1.0,
            "max_force": agents.max_force if agents.max_force is not None else math.inf}
    speed_limited = any(math.isfinite(v) for v in limits["max_speed"]) or any(v > 0 for v in limits["min_speed"])
    world = world_of(scenario)
    origin = world.origin if world.origin is not None else (0.0,) * world.dim
    box = None if world.boundary == "open" else (tuple(origin), tuple(o + s for o, s in zip(origin, world.size)))
    groups = n_groups(scenario)
    shared = {key: table[:1].reshape(1, 1) for key, table in tables.items()} if groups == 1 else None
    params = Params(scenario=scenario, rule=rule, kernels=(), world=world, dt=float(scenario.run.dt), box=box,
                    n_groups=groups, n_members=int(n_members), terms=terms, limit_tables=tables,
                    base_limits=base, speed_limited=speed_limited, obstacles=bool(scenario.obstacles),
                    shared_limits=shared, raises_speed=any(v > 0 for v in limits["min_speed"]))
    return dataclasses.replace(params, kernels=tuple(rule.kernels(params)))


__all__ = ["Params", "build_params", "world_of"]
