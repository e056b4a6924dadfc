"""Simulation: a thin shell around state, params, backend, noise stream and metrics.

The physics is ``flock.step.step(state, params, backend, noise)``; a ``Simulation``
holds what a run keeps between steps (the state, the step count, the noise stream, the
metrics log, the device-side correction counters) and rebuilds its ``Params`` when the
scenario or the live point forces change. Everything a checkpoint, a replay, the window
or a CUDA graph needs goes through the public API: the constructor (``state=``),
``state_dict()`` / ``load_state_dict()`` and ``advance()``.

With ``seeds=[s0, s1, ...]`` it is B members of one scenario stepped together (the member
axis of ``flock.step``): ``state`` holds B * N rows, metrics rows hold a list of B values,
and converged mean shift members stay put while the others go on.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import ScenarioError
from .forces import PointForce
from .kernels import Kernel, max_support
from .metrics import MetricsLog, boids_metrics, count_modes, mean_speed_tensor
from .names import MAX_ABS_VALUE
from .noise import NoiseStream
from .neighbors import BACKENDS, choose_backend, is_fused_compatible
from .params import Params, build_params
from .resources import check_run_memory
from .scenario import Scenario, load_scenario
from .species import initial_group_state
from .state import FlockState
from .step import StepStats, neighbor_sums, step_with_stats
from .world import World

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# A single mean shift run reads its convergence back from the device (a host sync) at most
# this often between metrics rows: up to this many - 1 steps past convergence are taken,
# which move nothing (the converged run is frozen on the device) and are not counted.
CONVERGENCE_READ_STEPS = 8


def resolve_device(requested: str | torch.device | None) -> torch.device:
    """'auto' -> cuda when available else cpu; a CUDA request without CUDA is a ScenarioError."""
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise ScenarioError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {requested!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ScenarioError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {requested!r}")
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


def _point_force_key(forces) -> tuple:
    return tuple((tuple(f.center), f.strength, f.radius) for f in forces)


class Simulation:
    """A running scenario.

    Args:
        scenario: a validated ``Scenario``.
        device, dtype, backend, seed: None takes the scenario's ``run`` values.
        seeds: B seeds: B members stepped together (default: one member with ``seed``).
        state: a ``FlockState`` to start from instead of the scenario's initial placement
            (B * N rows for B members).
        record_metrics: False records no metrics rows (fastest stepping).

    Attributes:
        scenario: the ``Scenario``; assigning it, or changing one of its values (a slider:
            ``sim.scenario.rules.separation.weight = 2``), takes effect at the next ``step``.
        params: the ``flock.params.Params`` of the current scenario.
        state: the ``FlockState`` (assignable).
        metrics: ``MetricsLog`` time series. step_count, time: steps done, simulated time.
        done: True once every member of a mean shift run has converged or reached max_iter.
        backend: the resolved neighbor backend.
        noise: the ``flock.noise.NoiseStream`` of this run (one key per member seed, the draw
            counter on the device); wander draws from it.
        point_forces: live ``PointForce`` attractors/repellers (the window adds them).
        info: facts about the start (``blob_centers``/``blob_ids`` for blob placements).
        n_members, member_done [B] bool, member_steps [B] int64, member_shift [B] floats.
    """

    def __init__(self, scenario: Scenario, *, device="auto", dtype=None, backend=None, seed=None,
                 seeds: Sequence[int] | None = None, state: FlockState | None = None,
                 record_metrics: bool = True):
        self._scenario = scenario
        self.device = resolve_device(scenario.run.device if device is None else device)
        self.dtype = resolve_dtype(scenario.run.dtype if dtype is None else dtype)
        self._member_rows = seeds is not None       # metrics rows hold one value per member
        if seeds is not None:
            self.seeds = [int(s) for s in seeds]
            if not self.seeds:
                raise ScenarioError("seeds: expected at least one seed (one per member), got none")
        else:
            self.seeds = [scenario.run.seed if seed is None else int(seed)]
        self.seed = self.seeds[0]
        self.requested_backend = scenario.run.backend if backend is None else backend
        if self.requested_backend not in BACKENDS:
            raise ScenarioError(f"backend: expected one of {', '.join(BACKENDS)}, got {self.requested_backend!r}")
        self.record_metrics = record_metrics
        self.point_forces: list[PointForce] = []
        self._params: Params | None = None
        self._params_key = None
        self.reset(state=state)

    @classmethod
    def from_scenario(cls, scenario_or_path: Scenario | str | Path, device="auto", dtype=None, backend=None,
                      seed=None, **kwargs) -> "Simulation":
        """Build a simulation from a ``Scenario`` (copied) or a YAML path.

        Args:
            device: 'auto' | 'cpu' | 'cuda' (None: the scenario's run.device).
            dtype: None (the scenario's, float32 by default), 'float64' or a torch dtype.
            backend: None (the scenario's run.backend) or one of ``flock.neighbors.BACKENDS``.
            seed: None (the scenario's run.seed) or an int.
            kwargs: ``seeds``, ``state``, ``record_metrics`` as the constructor.
        """
        if isinstance(scenario_or_path, Scenario):
            scenario = scenario_or_path.model_copy(deep=True)
        else:
            scenario = load_scenario(scenario_or_path)
        return cls(scenario, device=device, dtype=dtype, backend=backend, seed=seed, **kwargs)

    # ------------------------------------------------------------ setup

    def reset(self, state: FlockState | None = None) -> None:
        """Back to step 0 with a fresh noise stream, empty metrics and the initial state (or ``state``)."""
        if state is None:
            # refuse before allocating: the estimate and the limit, not an allocator crash
            check_run_memory(self._scenario, self.requested_backend, self.device, members=self.n_members,
                             origin=str(self._scenario.source or self._scenario.name or "scenario"))
            parts = [initial_group_state(self._scenario, seed=s, device=self.device, dtype=self.dtype)
                     for s in self.seeds]
            self.info = parts[0][1]
            self.member_info = [info for _, info in parts]
            states = [st for st, _ in parts]
            state = states[0] if len(states) == 1 else FlockState(
                pos=torch.cat([s.pos for s in states]), vel=torch.cat([s.vel for s in states]),
                group=torch.cat([s.group for s in states]))
        else:
            self.info, self.member_info = {}, [{} for _ in self.seeds]
        self._state = self._checked(state)
        self.noise = NoiseStream(self.seeds, self.device)
        self.step_count = 0
        b = self.n_members
        self.member_done = torch.zeros(b, dtype=torch.bool, device=self.device)
        self.member_steps = torch.zeros(b, dtype=torch.int64, device=self.device)
        self.member_shift = [math.nan] * b
        self.done = False
        self._reset_convergence()
        self._nan_corrections = torch.zeros((), dtype=torch.int64, device=self.device)
        self._obstacle_corrections = torch.zeros((), dtype=torch.int64, device=self.device)
        self._metrics = MetricsLog()
        self._refresh(force=True)
        self.record()

    def _checked(self, value: FlockState) -> FlockState:
        if not isinstance(value, FlockState):
            raise ScenarioError(f"sim.state: expected a FlockState, got {type(value).__name__}")
        if value.dim != self._scenario.world.dims:
            raise ScenarioError(f"sim.state: expected dim {self._scenario.world.dims} (world.dims), got {value.dim}")
        if value.n_agents % self.n_members:
            raise ScenarioError(f"sim.state: expected a multiple of {self.n_members} agents (one block per member), "
                                f"got {value.n_agents}")
        return value.to(self.device, self.dtype)

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    @property
    def n_per_member(self) -> int:
        return self._state.n_agents // self.n_members

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @scenario.setter
    def scenario(self, value: Scenario) -> None:
        self._scenario = value
        self._refresh()

    @property
    def params(self) -> Params:
        self._refresh()
        return self._params

    @property
    def state(self) -> FlockState:
        return self._state

    @state.setter
    def state(self, value: FlockState) -> None:
        self._state = self._checked(value)
        self._refresh()

    @property
    def metrics(self) -> MetricsLog:
        return self._metrics

    @metrics.setter
    def metrics(self, log: MetricsLog) -> None:
        # the correction counters continue from the log's last row (a resumed run)
        last = log.last()
        self._metrics = log
        self._nan_corrections = torch.tensor(int(last.get("nan_corrections", 0)), device=self.device)
        self._obstacle_corrections = torch.tensor(int(last.get("obstacle_corrections", 0)), device=self.device)

    @property
    def world(self) -> World:
        return self.params.world

    @property
    def time(self) -> float:
        return self.step_count * self._scenario.run.dt

    @property
    def nan_corrections(self) -> int:
        """Agents the NaN guard has put back so far (reading it synchronises)."""
        return int(self._nan_corrections)

    @property
    def last_shift(self) -> float:
        """The largest last relative shift over the members (mean shift; NaN before the first step)."""
        finite = [s for s in self.member_shift if math.isfinite(s)]
        return max(finite) if finite else math.nan

    def kernels(self) -> list[Kernel]:
        return list(self.params.kernels)

    def _refresh(self, force: bool = False) -> None:
        """Rebuild the params (and the backend choice) when the scenario or the point forces changed."""
        key = (self._scenario.model_dump_json(), _point_force_key(self.point_forces), self._state.n_agents)
        if not force and key == self._params_key:
            return
        self._params = build_params(self._scenario, device=self.device, dtype=self.dtype,
                                    point_forces=tuple(self.point_forces), n_members=self.n_members)
        self._params_key = key
        self._resolve_backend(list(self._params.kernels))

    def _resolve_backend(self, kernels: list[Kernel]) -> None:
        req = self.requested_backend
        if req in ("grid", "triton", "numba") and math.isinf(max_support(kernels)):
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
            self.backend = choose_backend(self.n_per_member, kernels, self.device, tuple(self._scenario.world.size))
        else:
            self.backend = req

    def add_agents(self, pos, vel=None, group=None) -> None:
        """Append agents (the seed's ``addFish``); a converged mean shift run starts moving again.

        Args:
            pos: [M, D] positions. vel: [M, D] velocities (zeros if None). group: [M] ids (zeros if None).
        """
        if self.n_members > 1:
            raise ScenarioError("add_agents: members of an ensemble cannot grow; build one with a larger agents.count")
        _check_added_values("pos", pos)
        _check_added_values("vel", vel)
        new = FlockState(pos=torch.as_tensor(pos, dtype=self.dtype, device=self.device),
                         vel=None if vel is None else torch.as_tensor(vel, dtype=self.dtype, device=self.device),
                         group=group)
        if new.dim != self._state.dim:
            raise ScenarioError(f"add_agents: expected positions with {self._state.dim} columns, got {new.dim}")
        self.state = self._state.concat(new)
        # a converged mean shift has somewhere to go again
        self.member_done = torch.zeros_like(self.member_done)
        self.done = False
        self._reset_convergence()

    # ------------------------------------------------------------ stepping

    def sums(self, kernels: list[Kernel] | None = None) -> torch.Tensor:
        """The one kernel's sums [K, N, 2D+F+1] of the current state."""
        params = self.params
        if kernels is not None:
            params = dataclasses.replace(params, kernels=tuple(kernels))
        return neighbor_sums(self._state, params, self.backend)

    def advance(self, state: FlockState, stats: StepStats, steps: int = 1, *, read: bool = True) -> None:
        """Take ``state``, computed by ``flock.step`` from the current one, as ``steps`` more steps.

        ``step`` calls this after each step; a CUDA-graph replay of k steps calls it once.
        Counters add up on the device. Mean shift's convergence is decided on the device
        too (a member whose shift fell below ``rules.tol``, or that reached ``rules.max_iter``
        steps, is frozen from the next step on); ``read`` (the default) then reads it back
        into ``done`` / ``member_shift`` at once, while ``step`` reads it on its own schedule
        (``_read_convergence``).
        """
        self._state = state
        self.step_count += int(steps)
        self._nan_corrections = self._nan_corrections + stats.nan_corrections
        self._obstacle_corrections = self._obstacle_corrections + stats.obstacle_corrections
        active = ~self.member_done
        self.member_steps = self.member_steps + active.to(torch.int64) * int(steps)
        if self._params.rule.converges and stats.shift is not None:
            rules = self._scenario.rules
            shift = stats.shift.to(torch.float64)
            self._shift = torch.where(active, shift, self._shift)
            self._active_steps = self._active_steps + active.any().to(torch.int64) * int(steps)
            self.member_done = self.member_done | (active & ((self._shift < rules.tol)
                                                             | (self.member_steps >= rules.max_iter)))
            if read:
                self._read_convergence()

    def _reset_convergence(self) -> None:
        """The device's convergence record from the host's (``member_shift``, ``member_done``)."""
        self._shift = torch.tensor(self.member_shift, dtype=torch.float64, device=self.device)
        self._active_steps = torch.zeros((), dtype=torch.int64, device=self.device)
        self._read_at = (self.step_count, 0)          # (step_count, _active_steps) at the last read
        self._done_read = self.member_done.tolist()

    def _read_convergence(self) -> None:
        """Read the device's convergence record back (one host sync): ``member_shift``, ``done``
        and ``_newly_done`` (a member converged since the last read).

        When every member is done, ``step_count`` comes back to the step at which the last one
        finished: the steps taken after it (before this read) moved nothing, every member
        being frozen, so the state is the one the run had there.
        """
        b = self.n_members
        values = torch.cat([self._shift, self.member_done.to(torch.float64),
                            self._active_steps.to(torch.float64)[None]]).tolist()
        done = [bool(v) for v in values[b:2 * b]]
        active_steps = int(values[-1])
        self.member_shift = values[:b]
        self._newly_done = any(d and not r for d, r in zip(done, self._done_read))
        if all(done):
            self.step_count = self._read_at[0] + active_steps - self._read_at[1]
        self._done_read = done
        self._read_at = (self.step_count, active_steps)
        self.done = all(done)

    def step(self, n: int = 1) -> "Simulation":
        """Advance ``n`` steps (fewer if a mean shift run converges first). Returns self."""
        self._refresh()
        if self.backend == "triton":
            # one host read per call: cell plans whose bounds no longer hold are rebuilt
            from .neighbors.triton_grid import check_cell_plans

            check_cell_plans()
        params, every = self._params, self._scenario.metrics.every
        converges = params.rule.converges
        # one member: its convergence is read every CONVERGENCE_READ_STEPS steps, on every
        # metrics row and at the end of the call; several: every step, so that the row a
        # member's convergence writes holds the other members' state of that step
        read_every = CONVERGENCE_READ_STEPS if self.n_members == 1 else 1
        frozen = self.member_done if converges else None
        due = False
        unread = 0
        n = int(n)
        try:
            for i in range(n):
                if self.done:
                    break
                self._newly_done = False
                state, stats = step_with_stats(self._state, params, self.backend, self.noise, time=self.time,
                                               frozen=frozen)
                self.advance(state, stats, read=False)
                due = self.step_count % every == 0
                if converges:
                    frozen = self.member_done
                    unread += 1
                    if due or unread >= read_every or i == n - 1:
                        self._read_convergence()
                        unread = 0
                    due = due or self.done or self._newly_done
                if due:
                    self.record()
                    due = False
        except KeyboardInterrupt:
            # a step taken but interrupted before its metrics row: write the row, so the state,
            # the metrics and the summary agree after a Ctrl-C
            if converges and unread:
                self._read_convergence()
            if due and self.record_metrics and self._metrics.last().get("step") != self.step_count:
                self.record()
            raise
        return self

    # ------------------------------------------------------------ state dict

    def state_dict(self) -> dict[str, Any]:
        """Everything a run needs to continue exactly: tensors and plain values (no pickle needed).

        Keys: pos, vel, group, noise ([1] int64, the noise stream's counter), member_done,
        member_steps (tensors);
        step_count, done, member_shift, seeds, nan_corrections, obstacle_corrections,
        point_forces (list of dicts), metrics (the ``MetricsLog``).
        """
        return {"pos": self._state.pos, "vel": self._state.vel, "group": self._state.group,
                "noise": self.noise.get_state(), "member_done": self.member_done,
                "member_steps": self.member_steps, "step_count": self.step_count, "done": self.done,
                "member_shift": list(self.member_shift), "seeds": list(self.seeds),
                "nan_corrections": int(self._nan_corrections), "obstacle_corrections": int(self._obstacle_corrections),
                "point_forces": [{"center": list(f.center), "strength": f.strength, "radius": f.radius}
                                 for f in self.point_forces],
                "metrics": self._metrics}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` output (missing keys keep their current values)."""
        if "pos" in d:
            self.state = FlockState(pos=d["pos"], vel=d.get("vel"), group=d.get("group"))
        if "metrics" in d:
            self.metrics = d["metrics"]
        for key in ("nan_corrections", "obstacle_corrections"):
            if key in d:
                setattr(self, f"_{key}", torch.tensor(int(d[key]), device=self.device))
        if "noise" in d:
            self.noise.set_state(d["noise"])
        if "point_forces" in d:
            self.point_forces = [PointForce(center=tuple(f["center"]), strength=float(f["strength"]),
                                            radius=float(f["radius"])) for f in d["point_forces"]]
        if "step_count" in d:
            self.step_count = int(d["step_count"])
        if "member_done" in d:
            self.member_done = torch.as_tensor(d["member_done"], dtype=torch.bool, device=self.device)
        if "member_steps" in d:
            self.member_steps = torch.as_tensor(d["member_steps"], dtype=torch.int64, device=self.device)
        elif "step_count" in d:
            self.member_steps = torch.full((self.n_members,), self.step_count, dtype=torch.int64, device=self.device)
        if "member_shift" in d:
            self.member_shift = [float(s) for s in d["member_shift"]]
        if "done" in d:
            self.done = bool(d["done"])
        self._reset_convergence()
        self._refresh(force=True)

    # ------------------------------------------------------------ metrics

    def _measure_rows(self, state: FlockState, shift: float) -> dict[str, float]:
        sc = self._scenario
        rule = self._params.rule
        row: dict[str, float] = {}
        if rule.converges:
            row["n_modes"] = count_modes(state.pos, sc.rules.bandwidth)
            row["shift"] = shift
        elif not rule.is_boid:
            row["mean_speed"] = mean_speed_tensor(state.vel)
        else:
            # 0-d device tensors: the log turns them into numbers when a row is read or written
            row.update(boids_metrics(state.pos, state.vel, self._params.world.period(state.pos), sc.metrics.nn_sample))
        return row

    def measure(self) -> dict[str, Any]:
        """The metrics of the current state (see ``flock.metrics``); a list of B values each for B members."""
        row: dict[str, Any] = {"step": self.step_count, "time": self.time, "n_agents": self.n_per_member,
                               "nan_corrections": self._nan_corrections.clone()}
        if self._scenario.obstacles:
            row["obstacle_corrections"] = self._obstacle_corrections.clone()
        n = self.n_per_member
        if not self._member_rows:
            row.update(self._measure_rows(self._state, self.member_shift[0]))
            return row
        per_member = []
        for e in range(self.n_members):
            rows = slice(e * n, (e + 1) * n)
            part = FlockState(pos=self._state.pos[rows], vel=self._state.vel[rows], group=self._state.group[rows])
            per_member.append(self._measure_rows(part, self.member_shift[e]))
        for key in per_member[0]:
            values = [r[key] for r in per_member]
            if values and isinstance(values[0], torch.Tensor):      # one read for all members
                values = torch.stack([v.to(torch.float64) for v in values]).tolist()
            row[key] = values
        if self._params.rule.converges:
            row["member_steps"] = self.member_steps.tolist()
        return row

    def record(self) -> None:
        """Append ``measure()`` to the metrics log (nothing when ``record_metrics`` is False)."""
        if self.record_metrics:
            self._metrics.append(self.measure())

    def __repr__(self) -> str:
        members = f", members={self.n_members}" if self.n_members > 1 else ""
        return (f"Simulation({self._scenario.name or 'scenario'}, n_agents={self.n_per_member}{members}, "
                f"step={self.step_count}, device={self.device}, backend={self.backend})")


def _check_added_values(name: str, value) -> None:
    """Refuse ``add_agents`` values that are not numbers, NaN/inf, or beyond +-MAX_ABS_VALUE."""
    if value is None:
        return
    try:
        arr = torch.as_tensor(value).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ScenarioError(f"add_agents: {name} must be an array of numbers ({str(exc)[:120]})") from None
    bad = torch.nonzero(~torch.isfinite(arr) | (arr.abs() > MAX_ABS_VALUE))
    if bad.numel():
        at = tuple(bad[0].tolist())
        raise ScenarioError(f"add_agents: {name}{list(at)} is {arr[at].item():g}; expected finite numbers "
                            f"within +-{MAX_ABS_VALUE:g}")
