"""The step as a function: ``step(state, params, backend, noise) -> state``.

One synchronous step for every formulation (JAX-MD's ``step_fn(state) -> state``):

    sums   = neighbor_sums(state, params, backend)          # the one kernel, [K, N, W]
    update = params.rule.update(state, sums, params)        # accel | vel | pos
                                                            # (triton: both in the kernel, kernel_update)
    accel  = sum(term(state, ...) for term in params.terms) # walls, forces, avoidance, wander
    state  = integrate(state, update, accel, params)        # limits, boundary, obstacles
    state  = nan_guard(previous, state)

Pure except for the noise stream's counter (wander draws from a ``flock.noise.NoiseStream``
and advances its device-side counter). No host synchronisation on the
path of a boid step: no ``.item()``, ``float(tensor)``, ``.tolist()``, ``nonzero`` or
boolean-mask indexing; counters come back as device tensors in ``StepStats``.

Ensembles are the same step with a member axis: ``params.n_members = B`` stacks B
independent flocks of N agents as B * N rows; the neighbor pass never pairs rows of
different members, and everything after it is row by row. ``frozen`` ([B] bool) keeps
converged mean shift members where they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .formulations import Update
from .integrate import integrate, nan_guard
from .neighbors import reduce_members, reduce_neighbors
from .noise import NoiseStream
from .params import Params
from .state import FlockState


@dataclass(frozen=True)
class StepStats:
    """Device-side facts of one step (reading them synchronises; the step never does).

    Attributes:
        nan_corrections: 0-dim int64, agents the NaN guard put back.
        obstacle_corrections: 0-dim int64, agents projected out of obstacles.
        shift: [B] relative shift sum|x' - x| / sum|x| per member (rules that converge), else None.
    """

    nan_corrections: torch.Tensor
    obstacle_corrections: torch.Tensor
    shift: torch.Tensor | None = None


def neighbor_sums(state: FlockState, params: Params, backend: str) -> torch.Tensor:
    """The one kernel's sums [K, B * N, 2D+F+1] of ``state`` for ``params.kernels``.

    Args:
        backend: a resolved backend name ('dense', 'grid', 'fused', 'triton', ...).
    """
    kernels = list(params.kernels)
    pos, vel = state.pos, state.vel
    period = params.world.period(pos)
    features = params.rule.features(state, params)
    extra = {"box": params.box, "columns": "all" if params.rule.sums_velocities else "positions"}
    if features is not None:
        extra["features"] = features
    b = params.n_members
    if b == 1:
        return reduce_neighbors(pos, vel, kernels, backend=backend, period=period, **extra)
    n, dim = pos.shape[0] // b, pos.shape[1]
    if features is not None:
        extra["features"] = features.view(b, n, -1)
    s = reduce_members(pos.view(b, n, dim), vel.view(b, n, dim), kernels, backend=backend, period=period,
                       **extra)                                                  # [B, K, N, W]
    return s.transpose(0, 1).reshape(len(kernels), b * n, s.shape[-1])


def kernel_update(state: FlockState, params: Params, backend: str) -> Update | None:
    """The rule's update written by the neighbor kernel itself (its epilogue), or None.

    Only the triton backend has epilogues, for the rules that name one (seed, reynolds,
    mesa); never under autograd (the kernel has no backward).
    """
    if backend != "triton":
        return None
    epilogue = params.rule.epilogue(params)
    if epilogue is None or params.rule.features(state, params) is not None:
        return None
    if torch.is_grad_enabled() and (state.pos.requires_grad or state.vel.requires_grad):
        return None
    from .neighbors.triton_grid import reduce_triton, reduce_triton_batched

    kernels = list(params.kernels)
    pos, vel = state.pos, state.vel
    period = params.world.period(pos)
    b = params.n_members
    if b == 1:
        value = reduce_triton(pos, vel, kernels, period=period, epilogue=epilogue)
    else:
        n, dim = pos.shape[0] // b, pos.shape[1]
        value = reduce_triton_batched(pos.view(b, n, dim), vel.view(b, n, dim), kernels, period=period,
                                      epilogue=epilogue).reshape(b * n, dim)
    return Update(params.rule.update_kind, value)


def rule_update(state: FlockState, params: Params, backend: str) -> Update:
    """``params.rule``'s update of every agent: from the kernel's epilogue where the backend
    has one for the rule (``kernel_update``), else from the sums (``neighbor_sums``)."""
    update = kernel_update(state, params, backend)
    if update is None:
        update = params.rule.update(state, neighbor_sums(state, params, backend), params)
    return update


def extra_acceleration(state: FlockState, params: Params, limits: dict[str, torch.Tensor], *, time: float,
                       noise: NoiseStream | None) -> torch.Tensor | None:
    """[N, D] sum of ``params.terms`` (None when the scenario has none)."""
    accel = None
    for term in params.terms:
        a = term(state, params, limits, time=time, noise=noise)
        accel = a if accel is None else accel + a
    return accel


def _member_shift(old: torch.Tensor, new: torch.Tensor, members: int) -> torch.Tensor:
    moved = (new - old).abs().reshape(members, -1).sum(1)
    scale = old.abs().reshape(members, -1).sum(1)
    return torch.where(scale > 0, moved / torch.where(scale > 0, scale, torch.ones_like(scale)), moved)


def step_with_stats(state: FlockState, params: Params, backend: str, noise: NoiseStream | None = None, *,
                    time: float = 0.0, frozen: torch.Tensor | None = None) -> tuple[FlockState, StepStats]:
    """One step of every agent, and its ``StepStats``.

    Args:
        state: the current ``FlockState`` (B * N rows for B members).
        params: ``flock.params.build_params(...)``.
        backend: resolved neighbor backend.
        noise: the run's ``NoiseStream`` (wander draws from it; None for scenarios without wander).
        time: simulated time at the start of the step (moving attractors).
        frozen: [B] bool, members that do not move (converged mean shift), or None.
    """
    update = rule_update(state, params, backend)
    limits = params.agent_limits(state.group)
    accel = extra_acceleration(state, params, limits, time=time, noise=noise)
    moved, obstacle_corrections = integrate(state, update, accel, params, limits)
    new, nan_corrections = nan_guard(state, moved)
    if frozen is not None:
        keep = frozen.repeat_interleave(state.n_agents // params.n_members)[:, None]
        new = new.replace(pos=torch.where(keep, state.pos, new.pos), vel=torch.where(keep, state.vel, new.vel))
    shift = _member_shift(state.pos, new.pos, params.n_members) if params.rule.converges else None
    return new, StepStats(nan_corrections=nan_corrections, obstacle_corrections=obstacle_corrections, shift=shift)


def step(state: FlockState, params: Params, backend: str, noise: NoiseStream | None = None, *,
         time: float = 0.0, frozen: torch.Tensor | None = None) -> FlockState:
    """One step of every agent (``step_with_stats`` without the stats)."""
    return step_with_stats(state, params, backend, noise, time=time, frozen=frozen)[0]


__all__ = ["StepStats", "extra_acceleration", "kernel_update", "neighbor_sums", "rule_update", "step",
           "step_with_stats"]
