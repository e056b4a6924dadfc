"""The rule registry: every formulation is one entry, looked up by name, nowhere switched on.

A formulation (a ``Rule``) says which kernel channels it needs and turns their sums into
an ``Update``: an acceleration (``accel``), a new velocity (``vel``) or a new position
(``pos``). The step (``flock.step``) does the rest the same way for every rule: extra
acceleration terms, the one integrator, boundaries, obstacles, the NaN guard.

    name       update  channels (K)                                         source
    seed       accel   view flat, too-near flat                             the JavaScript boids post
    reynolds   accel   cohesion flat, alignment flat, separation inv-square Reynolds / OpenSteer
    mesa       vel     view flat, separation flat                           Mesa 3 boid_flockers
    netlogo    vel     view flat, view inverse (+ a nearest query)          NetLogo Flocking
    groups     accel   each group's seed/reynolds channels, flee, chase     species (flock.species)
    circles    pos     circles, count                                       FLAME GPU 2 circles
    meanshift  pos     gaussian | triangular | flat, self included          the fastai lesson

``rule_for(scenario)`` picks the entry: ``groups`` when the scenario has species or
interactions, else ``scenario.rules.formulation``. A new formulation is a new class with
``@register_rule``; no other module needs to change.

Every rule reads its parameters from ``params.scenario`` when the step runs, and
``Params`` is rebuilt when the scenario changes (a slider), so live edits take effect.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .compiled import for_flock
from .kernels import Kernel
from .names import GAUSSIAN_CUT_BANDWIDTHS
from .neighbors.epilogues import Epilogue
from .rules import mesa_velocity, netlogo_velocity, reynolds_acceleration, seed_acceleration, stacked_sums

# ``Params`` (flock.params) and ``FlockState`` (flock.state) appear in annotations only, as
# strings: params builds on this module, so importing it here would make a loop.

UPDATE_KINDS = ("accel", "vel", "pos")


@dataclass(frozen=True)
class Update:
    """What a rule produces for every agent.

    Attributes:
        kind: 'accel' (world units / time^2), 'vel' (new velocity, world units / time) or
            'pos' (new position, world units).
        value: [N, D] tensor of that quantity.
    """

    kind: str
    value: torch.Tensor


class Rule:
    """One formulation. Subclasses set ``name`` and ``update_kind`` and implement ``kernels`` and ``update``.

    Class attributes:
        name: the registry key (``rules.formulation``, or ``groups``).
        update_kind: one of ``UPDATE_KINDS``.
        constant_speed: the rule moves every agent at ``agents.max_speed`` (mesa, netlogo):
            after extra terms act, the integrator brings the speed back to it.
        refuses_terms: the extra terms (walls, forces, avoidance, wander) have no meaning for
            this rule (mean shift); validation refuses a scenario that asks for them.
        converges: the run stops when the relative shift falls below ``rules.tol`` (mean shift).
        sums_velocities: the rule reads the velocity (and feature) columns of the sums; when
            False a backend may skip them (the Triton kernel does).
        is_boid: the rule moves boids (the metrics then include polarization and spacing).
        fixed_fields: rule keys the formulation holds fixed (validation refuses other values;
            a slider panel leaves them out).
    """

    name: ClassVar[str]
    update_kind: ClassVar[str]
    constant_speed: ClassVar[bool] = False
    refuses_terms: ClassVar[bool] = False
    converges: ClassVar[bool] = False
    sums_velocities: ClassVar[bool] = True
    is_boid: ClassVar[bool] = False
    fixed_fields: ClassVar[tuple[str, ...]] = ()

    def kernels(self, params: "Params") -> list[Kernel]:
        raise NotImplementedError

    def features(self, state: "FlockState", params: "Params") -> torch.Tensor | None:
        """[N, F] extra per-agent columns the kernel sums (None: none)."""
        return None

    def epilogue(self, params: "Params") -> Epilogue | None:
        """This rule's update as a kernel epilogue (``flock.neighbors.epilogues``), or None.

        A backend that has epilogues (triton) then writes ``update``'s value itself, equal
        to it up to rounding, instead of the sums.
        """
        return None

    def update(self, state: "FlockState", sums: torch.Tensor, params: "Params") -> Update:
        raise NotImplementedError

    @classmethod
    def check(cls, scenario) -> list[tuple[str, str]]:
        """Problems (key path, message) of a scenario with this rule that the schema cannot see."""
        return []


RULES: dict[str, type[Rule]] = {}
# rules registered by a module of their own, imported the first time the name is asked for
# (their module needs torch.nn and safetensors, which boid runs never load)
RULE_MODULES: dict[str, str] = {"neural": "flock.neural"}


def register_rule(cls: type[Rule]) -> type[Rule]:
    """Class decorator: add ``cls`` to ``RULES`` under ``cls.name``."""
    if cls.update_kind not in UPDATE_KINDS:
        raise ValueError(f"rule {cls.name}: update_kind must be one of {UPDATE_KINDS}, got {cls.update_kind!r}")
    RULES[cls.name] = cls
    return cls


def rule_name(scenario) -> str:
    """The registry key of ``scenario``'s dynamics."""
    if scenario.species is not None or scenario.interactions is not None:
        return "groups"
    return scenario.rules.formulation


def lookup_rule(name: str) -> type[Rule]:
    """The registered rule ``name`` (importing the module that registers it, if need be)."""
    if name not in RULES and name in RULE_MODULES:
        importlib.import_module(RULE_MODULES[name])
    return RULES[name]


def rule_class(scenario) -> type[Rule]:
    return lookup_rule(rule_name(scenario))


def converges(scenario) -> bool:
    """True when ``scenario``'s rule runs until it converges (mean shift)."""
    return rule_class(scenario).converges


def moves_boids(scenario) -> bool:
    """True when ``scenario``'s rule moves boids (polarization and spacing mean something)."""
    return rule_class(scenario).is_boid


def rule_for(scenario) -> Rule:
    """The registered rule that moves ``scenario``'s agents."""
    return rule_class(scenario)()


# ---------------------------------------------------------------- boids


def _boid_weights(rules) -> dict[str, float]:
    return dict(cohesion=rules.cohesion.weight, alignment=rules.alignment.weight,
                separation=rules.separation.weight)


class BoidRule(Rule):
    """Shared by the boid formulations: channels from ``rules`` with the field of view.

    Class attributes:
        needs_speed: the rule reads ``agents.max_speed`` (validation requires it).
        groups: the rule runs in several groups (species, flee, chase) through ``steer``.
    """

    is_boid = True
    needs_speed: ClassVar[bool] = True
    groups: ClassVar[bool] = False

    @classmethod
    def check(cls, scenario):
        rules, problems = scenario.rules, []
        if cls.needs_speed and scenario.agents.max_speed is None:
            problems.append(("agents.max_speed", f"required key is missing (the {cls.name} rules need a speed)"))
        if cls.constant_speed and rules.alignment.radius != rules.cohesion.radius:
            problems.append(("rules.alignment.radius", f"{cls.name} has one vision radius: expected "
                             f"{rules.cohesion.radius} (rules.cohesion.radius), got {rules.alignment.radius}"))
        return problems

    @staticmethod
    def channels(rules) -> list[Kernel]:
        """Kernel channels of one group's ``BoidRules`` (the same list for every group)."""
        raise NotImplementedError

    def kernels(self, params):
        return self.channels(params.scenario.rules)

    @staticmethod
    def steer(pos, vel, sums: torch.Tensor | list[torch.Tensor], rules, *, max_speed, max_force) -> torch.Tensor:
        """[N, D] acceleration of every agent from its channels' sums (acceleration rules).

        Args:
            sums: [K, N, W] tensor, or a list of K [N, W] tensors (one group's sums).
        """
        raise NotImplementedError

    def update(self, state, sums, params):
        limits = params.base_limits
        accel = self.steer(state.pos, state.vel, sums, params.scenario.rules,
                           max_speed=limits["max_speed"], max_force=limits["max_force"])
        return Update("accel", accel)


@register_rule
class SeedRule(BoidRule):
    """The JavaScript boids post: unit cohesion, alignment and separation directions, norm max_force."""

    name = "seed"
    update_kind = "accel"
    needs_speed = False
    groups = True

    @staticmethod
    def channels(rules):
        fov, view = rules.field_of_view, rules.cohesion.radius
        return [Kernel("flat", radius=view, fov=fov), Kernel("flat", radius=min(rules.separation.radius, view), fov=fov)]

    def epilogue(self, params):
        rules = params.scenario.rules
        return Epilogue("seed", (*_boid_weights(rules).values(), params.base_limits["max_force"]))

    @staticmethod
    def steer(pos, vel, sums, rules, *, max_speed, max_force):
        return for_flock(seed_acceleration, pos, vel, sums)(
            pos, vel, sums[0], sums[1], max_force=max_force, sums=stacked_sums(sums, 2), **_boid_weights(rules))


@register_rule
class ReynoldsRule(BoidRule):
    """Reynolds / OpenSteer steering forces, each at its own radius; separation by inverse square."""

    name = "reynolds"
    update_kind = "accel"
    groups = True

    @staticmethod
    def channels(rules):
        fov = rules.field_of_view
        return [Kernel("flat", radius=rules.cohesion.radius, fov=fov),
                Kernel("flat", radius=rules.alignment.radius, fov=fov),
                Kernel("inverse_square", radius=rules.separation.radius, fov=fov)]

    def epilogue(self, params):
        limits = params.base_limits
        return Epilogue("reynolds", (*_boid_weights(params.scenario.rules).values(), limits["max_speed"],
                                     limits["max_force"]))

    @staticmethod
    def steer(pos, vel, sums, rules, *, max_speed, max_force):
        return for_flock(reynolds_acceleration, pos, vel, sums)(
            pos, vel, sums[0], sums[1], sums[2], max_speed=max_speed, max_force=max_force,
            sums=stacked_sums(sums, 3), **_boid_weights(rules))


@register_rule
class MesaRule(BoidRule):
    """Mesa 3's boid_flockers: a new heading from cohere / separate / match, at constant speed."""

    name = "mesa"
    update_kind = "vel"
    constant_speed = True
    channels = staticmethod(SeedRule.channels)

    def epilogue(self, params):
        rules = params.scenario.rules
        return Epilogue("mesa", (rules.cohesion.weight, rules.separation.weight, rules.alignment.weight,
                                 params.scenario.agents.max_speed))

    def update(self, state, sums, params):
        rules, speed = params.scenario.rules, params.scenario.agents.max_speed
        velocity = for_flock(mesa_velocity, state.pos, state.vel, sums)(
            state.vel, sums[0], sums[1], state.pos, cohere=rules.cohesion.weight,
            separate=rules.separation.weight, match=rules.alignment.weight, speed=speed, sums=sums[:2])
        return Update("vel", velocity)


@register_rule
class NetLogoRule(BoidRule):
    """NetLogo's Flocking: turn by at most max_turn degrees per rule, at constant speed (2D)."""

    name = "netlogo"
    update_kind = "vel"
    constant_speed = True
    fixed_fields = ("field_of_view",)       # NetLogo's turtles see all around

    @classmethod
    def check(cls, scenario):
        problems = super().check(scenario)
        rules = scenario.rules
        if rules.field_of_view != 360:
            problems.append(("rules.field_of_view", "NetLogo's Flocking turtles see all around: expected "
                             f"360 with the netlogo formulation, got {rules.field_of_view:g}"))
        if scenario.world.dims != 2:
            problems.append(("world.dims", "the netlogo formulation is 2D: expected 2, got 3"))
        for rule in ("cohesion", "alignment", "separation"):
            if getattr(rules, rule).max_turn is None:
                problems.append((f"rules.{rule}.max_turn", "required key is missing (netlogo turns by at most "
                                 "max_turn degrees per rule)"))
        return problems

    @staticmethod
    def channels(rules):
        view = rules.cohesion.radius
        return [Kernel("flat", radius=view), Kernel("inverse", radius=view)]

    def update(self, state, sums, params):
        from .neighbors.nearest import nearest

        rules, speed = params.scenario.rules, params.scenario.agents.max_speed
        pos, vel = state.pos, state.vel
        idx, dist = nearest(pos, radius=rules.cohesion.radius, period=params.world.period(pos))
        nearest_vel = vel[idx.clamp_min(0)]
        too_close = (idx >= 0) & (dist < rules.separation.radius)
        return Update("vel", netlogo_velocity(vel, sums[0], sums[1], pos, nearest_vel, too_close,
                                              max_align=math.radians(rules.alignment.max_turn),
                                              max_cohere=math.radians(rules.cohesion.max_turn),
                                              max_separate=math.radians(rules.separation.max_turn), speed=speed))


# ---------------------------------------------------------------- groups (species)


@register_rule
class GroupsRule(Rule):
    """Seed or reynolds boids in several groups with flee and chase (``flock.species``)."""

    name = "groups"
    update_kind = "accel"
    is_boid = True

    @classmethod
    def check(cls, scenario):
        return RULES[scenario.rules.formulation].check(scenario)

    def kernels(self, params):
        from .species import group_kernels

        return group_kernels(params.scenario, RULES)

    def features(self, state, params):
        from .species import group_features

        return group_features(state, params.world, params.n_groups)

    def update(self, state, sums, params):
        from .species import group_acceleration

        return Update("accel", group_acceleration(state, sums, params, RULES))


# ---------------------------------------------------------------- circles and mean shift


@register_rule
class CirclesRule(Rule):
    """FLAME GPU 2's circles benchmark: channels [circles, count (flat, open centre)].

    displacement_i = (S_circ[x] - x_i S_circ[1]) / max(count_i, 1)
                   = mean_j a sin(-2 pi d_ij / r) (x_j - x_i) / d_ij
    """

    name = "circles"
    update_kind = "pos"
    sums_velocities = False

    def kernels(self, params):
        rules = params.scenario.rules
        return [Kernel("circles", radius=rules.radius, strength=rules.repulse),
                Kernel("flat", radius=rules.radius, open_center=True)]

    def update(self, state, sums, params):
        pos = state.pos
        dim = pos.shape[1]
        count = torch.clamp_min(sums[1, :, -1:], 1.0)
        return Update("pos", pos + (sums[0, :, :dim] - pos * sums[0, :, -1:]) / count)


@register_rule
class MeanShiftRule(Rule):
    """Mean shift as particle dynamics: new x_i = S[x] / S[1] with the point itself included.

    One step is one iteration (the fastai lesson's ``weight @ X / div``); converged when
    sum|X_new - X| / sum|X| < tol, or after max_iter steps. A point with zero weight sum stays.
    """

    name = "meanshift"
    update_kind = "pos"
    refuses_terms = True
    converges = True
    sums_velocities = False

    @classmethod
    def check(cls, scenario):
        rules, problems = scenario.rules, []
        if rules.kernel != "gaussian" and rules.radius is not None and rules.radius != rules.bandwidth:
            problems.append(("rules.radius", f"the {rules.kernel} kernel's support is the bandwidth; "
                                             f"leave radius out or equal to {rules.bandwidth}, got {rules.radius}"))
        if scenario.world.boundary == "soft":
            problems.append(("world.boundary", "mean shift has no walls to push points back: expected open, wrap or "
                                               "reflect, got 'soft'"))
        return problems

    def kernels(self, params):
        return meanshift_kernels(params.scenario.rules)

    def update(self, state, sums, params):
        pos = state.pos
        dim = pos.shape[1]
        count = sums[0, :, -1:]
        mean = sums[0, :, :dim] / torch.where(count > 0, count, torch.ones_like(count))
        return Update("pos", torch.where(count > 0, mean, pos))


def meanshift_kernels(rules) -> list[Kernel]:
    """The one channel of ``MeanShiftRules`` (truncation at ``GAUSSIAN_CUT_BANDWIDTHS`` x h by default)."""
    h = rules.bandwidth
    if rules.kernel == "gaussian":
        radius = rules.radius if rules.radius is not None else (GAUSSIAN_CUT_BANDWIDTHS * h if rules.truncate else None)
        return [Kernel("gaussian", bandwidth=h, radius=radius, exclude_self=False)]
    return [Kernel(rules.kernel, radius=rules.radius or h, exclude_self=False)]


__all__ = ["RULES", "Rule", "UPDATE_KINDS", "Update", "converges", "lookup_rule", "meanshift_kernels", "moves_boids", "register_rule",
           "rule_class", "rule_for", "rule_name"]
