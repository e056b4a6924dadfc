"""Simulation: a thin shell around state, scenario parameters, neighbor backend, generator and metrics.

One step is synchronous: the neighbor kernel computes every channel's sums from
one snapshot, the rules turn them into accelerations (or mean shift targets),
then every agent moves.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .errors import ScenarioError
from .forces import PointForce, point_force_acceleration
from .obstacles import attractor_forces, avoidance_acceleration, project_out
from .species import GroupDynamics, agent_limits, group_rules, initial_group_state
from .kernels import Kernel, max_support
from .metrics import (MetricsLog, count_modes, mean_nearest_neighbor_distance, mean_speed,
                      polarization)
from .neighbors import BACKENDS, choose_backend, is_fused_compatible, reduce_neighbors
from .rules import BoidDynamics, CirclesDynamics, MeanShiftDynamics
from .scenario import Scenario, load_scenario
from .state import FlockState
from .integrate import integrate
from .vectors import clip_norm
from .world import World, apply_boundary

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(requested: str | torch.device | None) -> torch.device:
    """'auto' -> cuda when available else cpu; a CUDA request without CUDA is a ScenarioError."""
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise ScenarioError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {requested!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScenarioError(f"device: 'cuda' was asked for but this torch ({torch.__version__}) sees no CUDA "
                            "device; use --device cpu or auto")
    return device


def resolve_dtype(requested) -> torch.dtype:
    if isinstance(requested, torch.dtype):
        if requested not in (torch.float32, torch.float64):
            raise ScenarioError(f"dtype: expected torch.float32 or torch.float64, got {requested}")
        return requested
    if requested not in _DTYPES:
        raise ScenarioError(f"dtype: expected 'float32' or 'float64', got {requested!r}")
    return _DTYPES[requested]


def make_dynamics(scenario):
    """The dynamics object for ``scenario.rules.formulation`` (groups -> ``GroupDynamics``)."""
    if scenario.rules.formulation == "meanshift":
        return MeanShiftDynamics(scenario)
    if scenario.rules.formulation == "circles":
        return CirclesDynamics(scenario)
    if scenario.species is not None or scenario.interactions is not None:
        return GroupDynamics(scenario)
    return BoidDynamics(scenario)


class Simulation:
    """A running scenario.

    Attributes:
        scenario: the validated ``Scenario``; its rule parameters are read every step, so
            changing e.g. ``sim.scenario.rules.separation.weight`` takes effect on the next step.
        state: the ``FlockState`` (assignable: ``sim.state.pos = my_positions``).
        metrics: ``MetricsLog`` time series.
        step_count: steps done. time: simulated time (step_count * dt).
        done: True once a mean shift run has converged or reached max_iter.
        backend: the neighbor backend in use ('dense', 'grid', 'fused').
        info: facts about the start (``blob_centers``/``blob_ids`` for blob placements).
        generator: the ``torch.Generator`` of this run, on its device.
        point_forces: ``PointForce`` attractors/repellers acting on boids (added live, e.g. by the window).
    """

    def __init__(self, scenario: Scenario, *, device="auto", dtype=None, backend=None, seed=None,
                 record_metrics: bool = True):
        self.scenario = scenario
        self.device = resolve_device(scenario.run.device if device is None else device)
        self.dtype = resolve_dtype(scenario.run.dtype if dtype is None else dtype)
        self.seed = scenario.run.seed if seed is None else int(seed)
        self.requested_backend = scenario.run.backend if backend is None else backend
        if self.requested_backend not in BACKENDS:
            raise ScenarioError(f"backend: expected one of {', '.join(BACKENDS)}, got {self.requested_backend!r}")
        self.record_metrics = record_metrics
        self.point_forces: list[PointForce] = []
        self.dynamics = make_dynamics(scenario)
        if isinstance(self.dynamics, GroupDynamics) and type(self).sums is not Simulation.sums:
            raise ScenarioError(f"{type(self).__name__}: species/interactions need the kernel's group features, "
                                "which this simulation type does not pass yet; run them as a single Simulation")
        self.reset()

    @classmethod
    def from_scenario(cls, scenario_or_path: Scenario | str | Path, device="auto", dtype=None, backend=None,
                      seed=None, ensemble: int | None = None, seeds=None, **kwargs):
        """Build a simulation from a ``Scenario`` or a YAML path.

        Args:
            device: 'auto' | 'cpu' | 'cuda' (None: the scenario's run.device).
            dtype: None (the scenario's, float32 by default), 'float64' or a torch dtype.
            backend: None (the scenario's run.backend), 'auto', 'dense', 'grid' or 'fused'.
            seed: None (the scenario's run.seed) or an int.
            ensemble, seeds: with either, an ``EnsembleSimulation`` of that many members (or
                those seeds) stepped together as one batch.
        """
        if ensemble is not None or seeds is not None:
            from .ensemble import EnsembleSimulation

            return EnsembleSimulation.from_scenario(scenario_or_path, ensemble=ensemble, seeds=seeds,
                                                    device=device, dtype=dtype, backend=backend, **kwargs)
        if isinstance(scenario_or_path, Scenario):
            scenario = scenario_or_path.model_copy(deep=True)
        else:
            scenario = load_scenario(scenario_or_path)
        return cls(scenario, device=device, dtype=dtype, backend=backend, seed=seed, **kwargs)

    # ------------------------------------------------------------ setup

    def reset(self) -> None:
        """Back to the scenario's initial state, step 0, a fresh generator and an empty metrics log."""
        self._state, self.info = initial_group_state(self.scenario, seed=self.seed, device=self.device,
                                                     dtype=self.dtype)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.step_count = 0
        self.done = False
        self.last_shift = math.nan
        self.metrics = MetricsLog()
        self._resolve_backend()
        self._record()

    @property
    def metrics(self) -> MetricsLog:
        return self._metrics

    @metrics.setter
    def metrics(self, log: MetricsLog) -> None:
        # the correction counters continue from the log's last row (a resumed checkpoint)
        last = log.last()
        self._metrics = log
        self._nan_corrections = torch.tensor(int(last.get("nan_corrections", 0)), device=self.device)
        self._obstacle_corrections = torch.tensor(int(last.get("obstacle_corrections", 0)), device=self.device)

    @property
    def world(self) -> World:
        w = self.scenario.world
        return World(size=tuple(w.size), boundary=w.boundary, wall_force=w.wall_force,
                     wall_margin=w.wall_margin, origin=tuple(w.origin) if w.origin is not None else None)

    @property
    def state(self) -> FlockState:
        return self._state

    @state.setter
    def state(self, value: FlockState) -> None:
        if not isinstance(value, FlockState):
            raise ScenarioError(f"sim.state: expected a FlockState, got {type(value).__name__}")
        if value.dim != self.scenario.world.dims:
            raise ScenarioError(f"sim.state: expected dim {self.scenario.world.dims} (world.dims), got {value.dim}")
        self._state = value.to(self.device, self.dtype)
        self._resolve_backend()

    @property
    def time(self) -> float:
        return self.step_count * self.scenario.run.dt

    def kernels(self) -> list[Kernel]:
        return self.dynamics.kernels()

    def _resolve_backend(self) -> None:
        kernels = self.kernels()
        req = self.requested_backend
        if req in ("grid", "triton") and math.isinf(max_support(kernels)):
            raise ScenarioError(f"run.backend: '{req}' needs kernels of finite support, but the untruncated "
                                "gaussian has none; set rules.truncate: true (3 x bandwidth) or use dense/fused")
        if req == "triton":
            from .neighbors.triton_grid import triton_usable

            if not triton_usable(self.device):
                raise ScenarioError("run.backend: 'triton' needs triton and a CUDA device "
                                    "(pip install triton); use auto or grid")
        if req == "fused" and not is_fused_compatible(kernels):
            raise ScenarioError("run.backend: 'fused' runs only untruncated gaussian mean shift "
                                "(rules.formulation: meanshift, kernel: gaussian, no radius); use auto, dense or grid")
        if req == "auto":
            self.backend = choose_backend(self._state.n_agents, kernels, self.device, tuple(self.scenario.world.size))
        else:
            self.backend = req

    def add_agents(self, pos, vel=None, group=None) -> None:
        """Append agents (the seed's ``addFish``).

        Args:
            pos: [M, D] positions. vel: [M, D] velocities (zeros if None). group: [M] ids (zeros if None).
        """
        new = FlockState(pos=torch.as_tensor(pos, dtype=self.dtype, device=self.device),
                         vel=None if vel is None else torch.as_tensor(vel, dtype=self.dtype, device=self.device),
                         group=group)
        if new.dim != self._state.dim:
            raise ScenarioError(f"add_agents: expected positions with {self._state.dim} columns, got {new.dim}")
        self._state = self._state.concat(new)
        self._resolve_backend()

    # ------------------------------------------------------------ stepping

    def sums(self, kernels: list[Kernel] | None = None) -> torch.Tensor:
        """The one kernel's sums [K, N, 2D+1] of the current state."""
        kernels = self.kernels() if kernels is None else kernels
        pos = self._state.pos
        extra = {}
        if isinstance(self.dynamics, GroupDynamics):
            extra["features"] = self.dynamics.features(self._state, self.world)
        return reduce_neighbors(pos, self._state.vel, kernels, backend=self.backend,
                                period=self.world.period(pos), **extra)

    @property
    def _extended(self) -> bool:
        """True when groups, obstacles, attractors or wander take part in the boid step."""
        sc = self.scenario
        return (isinstance(self.dynamics, GroupDynamics) or bool(sc.obstacles) or bool(sc.attractors)
                or bool(getattr(sc.rules, "wander", None)))

    def _step_once(self) -> None:
        old = self._state
        self._move()
        # NaN guard: an agent whose new state is not finite keeps its previous one (counted, no host sync)
        new = self._state
        finite = torch.isfinite(new.pos).all(1, keepdim=True) & torch.isfinite(new.vel).all(1, keepdim=True)
        self._state = new.replace(pos=torch.where(finite, new.pos, old.pos), vel=torch.where(finite, new.vel, old.vel))
        self._nan_corrections += (~finite).sum()

    def _move(self) -> None:
        state, world, dt = self._state, self.world, self.scenario.run.dt
        sums = self.sums()
        if self.scenario.is_meanshift:
            new_pos = self.dynamics.shift(state.pos, sums)
            moved = (new_pos - state.pos).abs().sum()
            scale = state.pos.abs().sum()
            self.last_shift = float(moved / scale) if float(scale) > 0 else float(moved)
            self._state = state.replace(pos=new_pos, vel=(new_pos - state.pos) / dt)
        elif self.scenario.rules.formulation == "circles":
            move = self.dynamics.displacement(state.pos, sums)
            pos, vel = apply_boundary(state.pos + move, move / dt, world)
            self._state = state.replace(pos=pos, vel=vel)
        elif self.dynamics.sets_velocity:
            vel = self.dynamics.velocity(state.pos, state.vel, sums, world.period(state.pos))
            pos, vel = apply_boundary(state.pos + vel * dt, vel, world)
            pos, vel = self._project(state.pos, pos, vel, world)
            self._state = state.replace(pos=pos, vel=vel)
        elif self._extended:
            self._extended_boid_move(state, sums, world, dt)
        else:
            accel = self.dynamics.acceleration(state.pos, state.vel, sums, world)
            if self.point_forces:
                accel = accel + point_force_acceleration(state.pos, self.point_forces, world.period(state.pos))
            agents = self.scenario.agents
            pos, vel = integrate(state.pos, state.vel, accel, dt, world,
                                 max_speed=agents.max_speed, min_speed=agents.min_speed)
            self._state = state.replace(pos=pos, vel=vel)
        self.step_count += 1
        if self.scenario.is_meanshift:
            rules = self.scenario.rules
            if self.last_shift < rules.tol or self.step_count >= rules.max_iter:
                self.done = True

    def _project(self, old_pos, pos, vel, world):
        if not self.scenario.obstacles:
            return pos, vel
        pos, vel, count = project_out(self.scenario, old_pos, pos, vel, world.period(pos))
        self._obstacle_corrections += count
        return apply_boundary(pos, vel, world)

    def _extended_boid_move(self, state: FlockState, sums: torch.Tensor, world: World, dt: float) -> None:
        """Seed/reynolds step with groups, obstacles, attractors and wander (per-agent limits)."""
        sc = self.scenario
        period = world.period(state.pos)
        limits = agent_limits(sc, state.group, state.pos)
        if isinstance(self.dynamics, GroupDynamics):
            accel = self.dynamics.acceleration(state, sums, world, limits)
        else:
            accel = self.dynamics.acceleration(state.pos, state.vel, sums, world)
        forces = attractor_forces(sc, self.time) + self.point_forces
        if forces:
            accel = accel + point_force_acceleration(state.pos, forces, period)
        if sc.obstacles:
            accel = accel + avoidance_acceleration(sc, state.pos, state.vel, period, limits)
        if any(rules.wander for rules in group_rules(sc)):
            noise = torch.randn(state.pos.shape, generator=self.generator, device=self.device, dtype=self.dtype)
            accel = accel + limits["wander"] * noise
        vel = clip_norm(state.vel + accel * dt, limits["max_speed"])
        norm = torch.linalg.vector_norm(vel, dim=1, keepdim=True)
        grow = (norm < limits["min_speed"]) & (norm > 0)
        vel = torch.where(grow, vel * (limits["min_speed"] / torch.where(norm > 0, norm, torch.ones_like(norm))), vel)
        pos, vel = apply_boundary(state.pos + vel * dt, vel, world)
        pos, vel = self._project(state.pos, pos, vel, world)
        self._state = state.replace(pos=pos, vel=vel)

    def step(self, n: int = 1) -> "Simulation":
        """Advance ``n`` steps (fewer if a mean shift run converges first). Returns self."""
        for _ in range(int(n)):
            if self.done:
                break
            self._step_once()
            if self.step_count % self.scenario.metrics.every == 0 or self.done:
                self._record()
        return self

    # ------------------------------------------------------------ metrics

    def measure(self) -> dict[str, float]:
        """The metrics of the current state (see ``flock.metrics``)."""
        state = self._state
        row = {"step": self.step_count, "time": self.time, "n_agents": state.n_agents,
               "nan_corrections": int(self._nan_corrections)}
        if self.scenario.obstacles:
            row["obstacle_corrections"] = int(self._obstacle_corrections)
        if self.scenario.is_meanshift:
            row["n_modes"] = count_modes(state.pos, self.scenario.rules.bandwidth)
            row["shift"] = self.last_shift
        elif not self.scenario.is_boids:
            row["mean_speed"] = mean_speed(state.vel)
        else:
            row["polarization"] = polarization(state.vel)
            row["mean_speed"] = mean_speed(state.vel)
            row["mean_nn_distance"] = mean_nearest_neighbor_distance(
                state.pos, self.world.period(state.pos), max_queries=self.scenario.metrics.nn_sample)
        return row

    def _record(self) -> None:
        if self.record_metrics:
            self.metrics.append(self.measure())

    def __repr__(self) -> str:
        return (f"Simulation({self.scenario.name or 'scenario'}, n_agents={self._state.n_agents}, "
                f"step={self.step_count}, device={self.device}, backend={self.backend})")
