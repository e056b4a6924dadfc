"""Ensembles: many independent flocks of one scenario stepped together as one batch.

Small flocks leave a GPU mostly idle; E of them side by side fill it. An
``EnsembleSimulation`` holds E members that differ only in their seed (or in
parameter values taken from lists), keeps their agents in one state of E * N
rows (``pos`` viewed as [E, N, D]), and runs one batched neighbor pass per step
in which no pair crosses members:

- dense: the pairwise block gets a leading member axis ([E, m, N] weights, one
  batched matrix product), so member e's sums are ``reduce_dense`` of member e
  up to summation order;
- triton: one cell list over all members, member e in its own copy of the cells
  (``flock.neighbors.triton_grid.reduce_triton_batched``), periodic worlds included;
- grid, fused: member by member (same answers, no batching of the neighbor pass).

Everything after the neighbor sums (rules, limits, boundaries) acts row by row, so
it runs once over all E * N rows, through the same ``Simulation`` code a single
flock uses: a member's trajectory equals ``Simulation.from_scenario(sc, seed=s)``
with its seed, up to float summation order. Mean shift members converge
independently: a converged member is frozen (its agents stop moving) while the
others go on, as a run on its own would stop.

Metrics are per member: each recorded row holds, for every metric of the single
simulation, a list of E values (``metric(name)`` gives a [T, E] tensor,
``member_metrics(e)`` the rows member e alone would have recorded).

Members whose parameter values differ cannot share one rule evaluation (rules read
scalars from the scenario), so members are grouped: members with the same scenario
(all but the seed) form one batch, and batches step one after another. A sweep of
8 values x 8 seeds is 8 batches of 8; a pure seed ensemble is one batch.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import ScenarioError
from .initial import initial_state
from .kernels import Kernel, has_fov, in_view
from .metrics import MetricsLog
from .neighbors import choose_backend, dense_chunk_rows, reduce_neighbors
from .neighbors.dense import DEFAULT_MEMORY_BUDGET
from .scenario import Scenario, load_scenario, validate_scenario
from .simulation import Simulation
from .state import FlockState
from .world import minimum_image

ENSEMBLE_BACKENDS = ("auto", "dense", "grid", "fused", "triton")
DEFAULT_MEMBERS = 64
_CPU_CHUNK_PAIRS = 1 << 18


# ------------------------------------------------------------------ batched dense pass

def reduce_dense_batched(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                         period: torch.Tensor | None = None,
                         features: torch.Tensor | None = None,
                         memory_budget: int = DEFAULT_MEMORY_BUDGET,
                         chunk_rows: int | None = None) -> torch.Tensor:
    """``reduce_dense`` of E independent flocks at once (self-pairs excluded per kernel).

    Args:
        pos, vel: [E, N, D] float, world units.
        kernels: K channels, the same for every member.
        period: [D] box lengths of a periodic world, or None.
        features: [E, N, F] or None.
        memory_budget: bytes of temporaries one chunk of query rows may use (all members).
        chunk_rows: force the query rows per chunk (tests).

    Returns:
        S: [E, K, N, 2D + F + 1]; member e's block is ``reduce_dense(pos[e], vel[e], kernels)``
        up to summation order. No host synchronisation (CUDA-graph capturable).
    """
    n_mem, n_agents, dim = pos.shape
    n_feat = 0 if features is None else features.shape[2]
    n_k = len(kernels)
    width = 2 * dim + n_feat + 1
    out = torch.zeros(n_mem, n_k, n_agents, width, device=pos.device, dtype=pos.dtype)
    if n_mem == 0 or n_agents == 0 or n_k == 0:
        return out
    values = vel if features is None else torch.cat([vel, features.to(vel.dtype)], dim=2)
    if period is None:
        values = torch.cat([pos, values], dim=2)                                # one product for x and v
    exclude = [k for k, kern in enumerate(kernels) if kern.exclude_self]
    fov = has_fov(kernels)
    rows = chunk_rows or dense_chunk_rows(n_agents * n_mem, dim, n_k, pos.element_size(), memory_budget)
    if chunk_rows is None and pos.device.type == "cpu":
        # on a CPU, chunks past a few hundred thousand pairs fall out of cache
        rows = min(rows, max(1, _CPU_CHUNK_PAIRS // (n_mem * n_agents)))
    for start in range(0, n_agents, rows):
        stop = min(start + rows, n_agents)
        m = stop - start
        q = pos[:, start:stop]                                                  # [E, m, D]
        offset = minimum_image(pos[:, None, :, :] - q[:, :, None, :], period)   # [E, m, N, D]
        dist = torch.linalg.vector_norm(offset, dim=-1)                         # [E, m, N]
        if fov:
            heading = vel[:, start:stop]                                        # [E, m, D]
            along = torch.einsum("emnd,emd->emn", offset, heading)
            reach = dist * torch.linalg.vector_norm(heading, dim=-1)[..., None]
            w = torch.stack([kern.weights(dist) * in_view(kern, along, reach) if kern.fov is not None
                             else kern.weights(dist) for kern in kernels], 2)
        else:
            w = torch.stack([kern.weights(dist) for kern in kernels], 2)        # [E, m, K, N]
        if exclude:
            r = torch.arange(m, device=pos.device)
            for k in exclude:
                w[:, r, k, start + r] = 0
        wsum = w.sum(-1)                                                        # [E, m, K]
        # plain batched products over reshaped views: no broadcast copies
        summed = torch.bmm(w.reshape(n_mem, m * n_k, n_agents), values).view(n_mem, m, n_k, -1)
        if period is None:
            out[:, :, start:stop, :width - 1] = summed.transpose(1, 2)
        else:
            soff = torch.bmm(w.reshape(n_mem * m, n_k, n_agents), offset.reshape(n_mem * m, n_agents, dim))
            spos = q[:, :, None, :] * wsum[..., None] + soff.view(n_mem, m, n_k, dim)
            out[:, :, start:stop, :dim] = spos.transpose(1, 2)
            out[:, :, start:stop, dim:width - 1] = summed.transpose(1, 2)
        out[:, :, start:stop, width - 1] = wsum.transpose(1, 2)
    return out


def reduce_members(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *, backend: str,
                   period: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel sums [E, K, N, W] of E members with ``backend`` (no pair across members).

    Args:
        pos, vel: [E, N, D]. backend: 'dense', 'triton' (one batched pass) or any
            backend of ``reduce_neighbors`` (member by member).
    """
    if backend == "dense":
        return reduce_dense_batched(pos, vel, kernels, period=period)
    if backend == "triton":
        from .neighbors.triton_grid import reduce_triton_batched

        return reduce_triton_batched(pos, vel, kernels, period=period)
    return torch.stack([reduce_neighbors(pos[e], vel[e], kernels, backend=backend, period=period)
                        for e in range(pos.shape[0])])


# ------------------------------------------------------------------ one batch

class MemberBatch(Simulation):
    """B members that share one scenario (all but the seed), as one ``Simulation`` of B * N rows.

    Everything a ``Simulation`` does row by row is inherited; what is per member
    is overridden: the initial state (one seed each), the neighbor sums (no pair
    across members), mean shift convergence, and the metrics.

    Attributes:
        seeds: the B seeds. n_members: B. n_per_member: N.
        member_done: [B] bool tensor (mean shift: converged or at max_iter).
        member_steps: [B] int64 tensor, steps each member has taken.
        member_shift: [B] last relative shift of each member (mean shift).
    """

    def __init__(self, scenario: Scenario, seeds: Sequence[int], *, device="auto", dtype=None, backend=None,
                 record_metrics: bool = True):
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ScenarioError("ensemble: expected at least one member, got 0")
        wanted = scenario.run.backend if backend is None else backend
        if wanted not in ENSEMBLE_BACKENDS:
            raise ScenarioError(f"ensemble backend: expected one of {', '.join(ENSEMBLE_BACKENDS)}, got {wanted!r}")
        # Simulation itself may not know 'triton' yet: build on dense, then switch
        super().__init__(scenario, device=device, dtype=dtype, backend="dense" if wanted == "triton" else wanted,
                         seed=self.seeds[0], record_metrics=record_metrics)
        if wanted == "triton":
            from .neighbors.triton_grid import triton_usable

            if not triton_usable(self.device):
                raise ScenarioError(f"ensemble backend: 'triton' needs triton and a CUDA device, got {self.device}; "
                                    "use dense or grid")
            self.requested_backend = "triton"
            self.backend = "triton"

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    @property
    def n_per_member(self) -> int:
        return self._state.n_agents // self.n_members

    def reset(self) -> None:
        b = len(self.seeds)
        self.member_done = torch.zeros(b, dtype=torch.bool, device=self.device)
        self.member_steps = torch.zeros(b, dtype=torch.int64, device=self.device)
        self.member_shift = [math.nan] * b
        self._newly_done = False
        # Simulation.reset sets up everything else (generator, counters, metrics, backend)
        # for the first seed; then the state is replaced by all members'
        record, self.record_metrics = self.record_metrics, False
        try:
            super().reset()
        finally:
            self.record_metrics = record
        states, self.member_info = [], []
        for seed in self.seeds:
            state, info = initial_state(self.scenario, seed=seed, device=self.device, dtype=self.dtype)
            states.append(state)
            self.member_info.append(info)
        self._state = FlockState(pos=torch.cat([s.pos for s in states]), vel=torch.cat([s.vel for s in states]),
                                 group=torch.cat([s.group for s in states]))
        self._resolve_backend()
        self._record()

    def _resolve_backend(self) -> None:
        if getattr(self, "requested_backend", None) == "triton":
            self.backend = "triton"
            return
        super()._resolve_backend()
        if self.requested_backend == "auto":
            self.backend = choose_backend(self.n_per_member, self.kernels(), self.device,
                                          tuple(self.scenario.world.size))

    def add_agents(self, pos, vel=None, group=None) -> None:
        raise ScenarioError("ensemble: members cannot grow; build a new ensemble with a larger agents.count")

    @property
    def pos(self) -> torch.Tensor:
        """[B, N, D] positions (a view of the state)."""
        return self._state.pos.view(self.n_members, -1, self._state.dim)

    @property
    def vel(self) -> torch.Tensor:
        """[B, N, D] velocities (a view of the state)."""
        return self._state.vel.view(self.n_members, -1, self._state.dim)

    def sums(self, kernels: list[Kernel] | None = None) -> torch.Tensor:
        """Kernel sums [K, B * N, W], each member over its own agents only."""
        kernels = self.kernels() if kernels is None else kernels
        b = self.n_members
        s = reduce_members(self.pos, self.vel, kernels, backend=self.backend,
                           period=self.world.period(self._state.pos))          # [B, K, N, W]
        return s.transpose(0, 1).reshape(len(kernels), b * s.shape[2], s.shape[3])

    def _step_once(self) -> None:
        if not self.scenario.is_meanshift:
            super()._step_once()
            self.member_steps += 1
            return
        old = self._state
        super()._step_once()
        new = self._state
        b, frozen = self.n_members, self.member_done
        moved = (new.pos - old.pos).abs().view(b, -1).sum(1)
        scale = old.pos.abs().view(b, -1).sum(1)
        shift = torch.where(scale > 0, moved / torch.where(scale > 0, scale, torch.ones_like(scale)), moved)
        keep = frozen.repeat_interleave(self.n_per_member)[:, None]
        self._state = old.replace(pos=torch.where(keep, old.pos, new.pos), vel=torch.where(keep, old.vel, new.vel))
        self.member_steps += (~frozen).to(torch.int64)
        rules = self.scenario.rules
        shifts = shift.tolist()
        self.member_shift = [old_s if f else s for s, old_s, f in zip(shifts, self.member_shift, frozen.tolist())]
        now_done = (~frozen) & ((shift < rules.tol) | (self.member_steps >= rules.max_iter))
        self._newly_done = bool(now_done.any())
        self.member_done = frozen | now_done
        self.done = bool(self.member_done.all())
        finite = [s for s in self.member_shift if math.isfinite(s)]
        self.last_shift = max(finite) if finite else math.nan

    def step(self, n: int = 1) -> "MemberBatch":
        """Advance every member ``n`` steps (converged mean shift members stay put). Returns self."""
        every = self.scenario.metrics.every
        for _ in range(int(n)):
            if self.done:
                break
            self._newly_done = False
            self._step_once()
            if self.step_count % every == 0 or self.done or self._newly_done:
                self._record()
        return self

    def measure(self) -> dict[str, Any]:
        """One metrics row: ``step``, ``time``, ``n_agents`` (per member), and a list of B values per metric."""
        full, shift = self._state, self.last_shift
        n = self.n_per_member
        per_member = []
        try:
            for e in range(self.n_members):
                rows = slice(e * n, (e + 1) * n)
                self._state = full.replace(pos=full.pos[rows], vel=full.vel[rows])
                self.last_shift = self.member_shift[e]
                per_member.append(super().measure())
        finally:
            self._state, self.last_shift = full, shift
        row: dict[str, Any] = {"step": self.step_count, "time": self.time, "n_agents": n}
        for key in per_member[0]:
            if key not in row:
                row[key] = [r[key] for r in per_member]
        if self.scenario.is_meanshift:
            row["member_steps"] = self.member_steps.tolist()
        return row


# ------------------------------------------------------------------ the ensemble

def _set_path(data: dict, path: str, value) -> dict:
    """A copy of scenario data with the value at dotted ``path`` (list items by index) replaced."""
    data = copy.deepcopy(data)
    parts = path.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ScenarioError(f"ensemble params: {path}: {'.'.join(parts[:depth + 1])} is not a mapping")
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError(f"ensemble params: {path}: cannot set a value there")
    return data


class EnsembleSimulation:
    """E independent members of one scenario, stepped together.

    Attributes:
        scenario: the base scenario.
        seeds: [E] the members' seeds.
        params: {key path: [E values]} the per-member parameter values (may be empty).
        member_scenarios: the E validated scenarios (equal to ``scenario`` but for params).
        batches: the ``MemberBatch`` groups (one for a seed ensemble).
        step_count: steps taken (mean shift members may have stopped earlier, see
            ``member_steps``).
    """

    def __init__(self, scenario: Scenario, *, ensemble: int | None = None, seeds: Sequence[int] | None = None,
                 params: dict[str, Sequence] | None = None, device="auto", dtype=None, backend=None,
                 record_metrics: bool = True):
        params = dict(params or {})
        sizes = {len(v) for v in params.values()}
        if len(sizes) > 1:
            raise ScenarioError(f"ensemble params: every list needs the same length, got {sorted(sizes)}")
        if seeds is None and "run.seed" in params:
            seeds = list(params["run.seed"])
        n = ensemble
        if n is None:
            n = len(seeds) if seeds is not None else (sizes.pop() if sizes else DEFAULT_MEMBERS)
        n = int(n)
        if n < 1:
            raise ScenarioError(f"ensemble: expected a number of members >= 1, got {n}")
        if seeds is None:
            seeds = [scenario.run.seed + e for e in range(n)]
        seeds = [int(s) for s in seeds]
        if len(seeds) != n:
            raise ScenarioError(f"ensemble seeds: expected {n} seeds (one per member), got {len(seeds)}")
        for key, values in params.items():
            if len(values) != n:
                raise ScenarioError(f"ensemble params: {key}: expected {n} values (one per member), got {len(values)}")
        self.scenario = scenario
        self.seeds = seeds
        self.params = params
        self.member_scenarios = self._member_scenarios(scenario, params, n)
        # group members with identical scenarios (all but the seed) into batches
        groups: dict[str, list[int]] = {}
        for e, sc in enumerate(self.member_scenarios):
            key = sc.model_copy(update={"run": sc.run.model_copy(update={"seed": 0})}).model_dump_json()
            groups.setdefault(key, []).append(e)
        self.member_slots: list[tuple[int, int]] = [(0, 0)] * n     # member -> (batch, index in batch)
        self.batches: list[MemberBatch] = []
        for b, members in enumerate(groups.values()):
            self.batches.append(MemberBatch(self.member_scenarios[members[0]], [seeds[e] for e in members],
                                            device=device, dtype=dtype, backend=backend,
                                            record_metrics=record_metrics))
            for i, e in enumerate(members):
                self.member_slots[e] = (b, i)
        self._batch_members = list(groups.values())
        self.record_metrics = record_metrics

    @staticmethod
    def _member_scenarios(scenario: Scenario, params: dict, n: int) -> list[Scenario]:
        if not params:
            return [scenario] * n
        base = scenario.to_dict()
        out = []
        for e in range(n):
            data = base
            for key, values in params.items():
                data = _set_path(data, key, values[e])
            label = f"{scenario.source or '<scenario>'} (ensemble member {e}: " + \
                ", ".join(f"{k}={v[e]}" for k, v in params.items()) + ")"
            sc = validate_scenario(data, source=scenario.source, label=label)
            out.append(sc)
        return out

    @classmethod
    def from_scenario(cls, scenario_or_path: Scenario | str | Path, ensemble: int | None = None,
                      seeds: Sequence[int] | None = None, params: dict[str, Sequence] | None = None,
                      device="auto", dtype=None, backend=None, **kwargs) -> "EnsembleSimulation":
        """Build an ensemble from a ``Scenario`` or a YAML path.

        Args:
            ensemble: number of members E; None: the length of ``seeds``, else of the
                ``params`` lists, else ``DEFAULT_MEMBERS`` (64).
            seeds: E seeds; default run.seed, run.seed + 1, ..., run.seed + E - 1
                (or the values of ``params["run.seed"]``).
            params: {scenario key path: E values}, e.g. ``{"rules.cohesion.weight": [0.5, 1.0]}``;
                each member's scenario is validated as a file would be.
            device, dtype, backend: as ``Simulation.from_scenario``; backend may also be 'triton'.
            record_metrics: as ``Simulation``.
        """
        if isinstance(scenario_or_path, Scenario):
            scenario = scenario_or_path.model_copy(deep=True)
        else:
            scenario = load_scenario(scenario_or_path)
        return cls(scenario, ensemble=ensemble, seeds=seeds, params=params, device=device, dtype=dtype,
                   backend=backend, **kwargs)

    # ------------------------------------------------------------ state

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    @property
    def device(self) -> torch.device:
        return self.batches[0].device

    @property
    def backend(self) -> str:
        return self.batches[0].backend

    @property
    def step_count(self) -> int:
        return max(b.step_count for b in self.batches)

    @property
    def done(self) -> bool:
        return all(b.done for b in self.batches)

    def _gather(self, fn) -> torch.Tensor:
        parts = [fn(b) for b in self.batches]
        if len(parts) == 1:
            return parts[0]
        out = [None] * self.n_members
        for e, (b, i) in enumerate(self.member_slots):
            out[e] = parts[b][i]
        return torch.stack(out)

    @property
    def pos(self) -> torch.Tensor:
        """[E, N, D] positions (a view for a seed ensemble, a copy otherwise)."""
        return self._gather(lambda b: b.pos)

    @property
    def vel(self) -> torch.Tensor:
        """[E, N, D] velocities."""
        return self._gather(lambda b: b.vel)

    @property
    def member_steps(self) -> torch.Tensor:
        """[E] int64 steps each member has taken."""
        return self._gather(lambda b: b.member_steps)

    def member_state(self, e: int) -> FlockState:
        """Member ``e``'s ``FlockState`` (views into the ensemble's tensors)."""
        b, i = self.member_slots[e]
        batch = self.batches[b]
        rows = slice(i * batch.n_per_member, (i + 1) * batch.n_per_member)
        st = batch.state
        return FlockState(pos=st.pos[rows], vel=st.vel[rows], group=st.group[rows])

    # ------------------------------------------------------------ stepping

    def step(self, n: int = 1) -> "EnsembleSimulation":
        """Advance every member ``n`` steps. Returns self."""
        for batch in self.batches:
            batch.step(n)
        return self

    def reset(self) -> None:
        for batch in self.batches:
            batch.reset()

    # ------------------------------------------------------------ metrics

    @property
    def metrics(self) -> MetricsLog:
        """Rows with a list of E values per metric (the batches' rows merged by step)."""
        if len(self.batches) == 1:
            return self.batches[0].metrics
        log = MetricsLog()
        by_step: dict[int, list] = {}
        for b, batch in enumerate(self.batches):
            for row in batch.metrics.rows:
                by_step.setdefault(row["step"], []).append((b, row))
        for step in sorted(by_step):
            entries = dict(by_step[step])
            if len(entries) != len(self.batches):
                continue
            first = next(iter(entries.values()))
            row = {k: v for k, v in first.items() if not isinstance(v, list)}
            for key, value in first.items():
                if isinstance(value, list):
                    row[key] = [entries[b][key][i] for b, i in self.member_slots]
            log.append(row)
        return log

    def metric(self, name: str) -> torch.Tensor:
        """[T, E] float64 values of metric ``name`` over the recorded steps."""
        return torch.tensor(self.metrics[name], dtype=torch.float64)

    def member_metrics(self, e: int) -> MetricsLog:
        """The rows member ``e`` would have recorded running alone (scalar values).

        For mean shift, a member's own step count stops when it converges: rows are
        kept where its own step is a multiple of ``metrics.every`` or its last step,
        with ``step`` and ``time`` its own.
        """
        b, i = self.member_slots[e]
        batch = self.batches[b]
        every = batch.scenario.metrics.every
        final = int(batch.member_steps[i]) if bool(batch.member_done[i]) else None
        log, seen = MetricsLog(), set()
        for row in batch.metrics.rows:
            steps = row.get("member_steps")
            own = row["step"] if steps is None else steps[i]
            if own in seen or (own % every != 0 and own != final):
                continue
            seen.add(own)
            out = {k: (v[i] if isinstance(v, list) else v) for k, v in row.items() if k != "member_steps"}
            out["step"], out["time"] = own, own * batch.scenario.run.dt
            log.append(out)
        return log

    def __repr__(self) -> str:
        b = self.batches[0]
        return (f"EnsembleSimulation({self.scenario.name or 'scenario'}, members={self.n_members}, "
                f"n_agents={b.n_per_member}, batches={len(self.batches)}, step={self.step_count}, "
                f"device={self.device}, backend={self.backend})")


def ensemble_grid(**values: Sequence) -> dict[str, list]:
    """Cartesian product of parameter lists as ``params`` for ``EnsembleSimulation``.

    ``ensemble_grid(**{"rules.cohesion.weight": [0.5, 1], "run.seed": [0, 1]})`` gives 4 members.
    """
    keys = list(values)
    combos = list(itertools.product(*(values[k] for k in keys)))
    return {k: [c[i] for c in combos] for i, k in enumerate(keys)}


__all__ = ["ENSEMBLE_BACKENDS", "EnsembleSimulation", "MemberBatch", "ensemble_grid", "reduce_dense_batched",
           "reduce_members"]
