"""Extra acceleration terms: what acts on agents besides their formulation's rule.

Each term maps the state to an [N, D] acceleration that the step adds to whatever the
rule produced (an acceleration, a new velocity or a new position), for every formulation
whose rule does not refuse terms (mean shift does; validation then refuses the scenario).

    walls       soft boundary push-back (``world.boundary: soft``)
    forces      point forces: the scenario's attractors (fixed or moving along a path at
                simulated time t) and the ones added live (``sim.point_forces``, the window)
    avoidance   obstacle look-ahead steering (``obstacles``, ``rules.avoidance``)
    wander      Gaussian noise of std ``rules.wander`` per axis, from the run's ``NoiseStream``
                (flock.noise: counter-based, so a CUDA graph can replay it)

``build_terms`` lists the terms a scenario needs once, when ``Params`` is built, so the
step itself has no branch on the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch

from .forces import PointForce, point_force_acceleration
from .obstacles import attractor_forces, avoidance_acceleration
from .species import group_rules
from .world import wall_acceleration

# ``Params`` (flock.params), ``FlockState`` (flock.state) and ``NoiseStream`` (flock.noise)
# appear in annotations only, as strings: params builds on this module, so importing it here
# would make a loop.


class Term:
    """One extra acceleration. ``name`` is how errors and ``Params.terms`` refer to it."""

    name: str = "term"

    def __call__(self, state: "FlockState", params: "Params", limits: dict[str, torch.Tensor], *,
                 time: float, noise: "NoiseStream | None") -> torch.Tensor:
        """[N, D] acceleration, world units / time^2.

        Args:
            limits: per-agent [N, 1] limits (``Params.agent_limits``).
            time: simulated time of the step (moving attractors).
            noise: the run's ``flock.noise.NoiseStream`` (wander draws from it).
        """
        raise NotImplementedError


class Walls(Term):
    name = "walls"

    def __call__(self, state, params, limits, *, time, noise):
        return wall_acceleration(state.pos, params.world)


@dataclass
class Forces(Term):
    """Attractors of the scenario at ``time`` plus the live point forces."""

    live: tuple[PointForce, ...] = ()
    name: str = "forces"

    def __call__(self, state, params, limits, *, time, noise):
        forces = attractor_forces(params.scenario, time) + list(self.live)
        return point_force_acceleration(state.pos, forces, params.world.period(state.pos))


class Avoidance(Term):
    name = "avoidance"

    def __call__(self, state, params, limits, *, time, noise):
        return avoidance_acceleration(params.scenario, state.pos, state.vel, params.world.period(state.pos), limits)


class Wander(Term):
    name = "wander"

    def __call__(self, state, params, limits, *, time, noise):
        if noise is None:
            raise ValueError("wander draws from a flock.noise.NoiseStream; pass noise=NoiseStream(seeds, device) "
                             "to the step (a Simulation passes its sim.noise)")
        if noise.device != state.pos.device:
            raise ValueError(f"wander: the NoiseStream is on {noise.device} but the state on {state.pos.device}; "
                             "build the stream on the state's device")
        return limits["wander"] * noise.normal(state.pos.shape, state.pos.dtype)


def build_terms(scenario, point_forces=()) -> tuple[Term, ...]:
    """The terms ``scenario`` (and the live ``point_forces``) switch on, in the order they are added."""
    terms: list[Term] = []
    if scenario.world.boundary == "soft":
        terms.append(Walls())
    if scenario.attractors or point_forces:
        terms.append(Forces(live=tuple(point_forces)))
    if scenario.obstacles:
        terms.append(Avoidance())
    if any(getattr(r, "wander", None) for r in group_rules(scenario)):
        terms.append(Wander())
    return tuple(terms)


__all__ = ["Avoidance", "Forces", "Term", "Walls", "Wander", "build_terms"]
