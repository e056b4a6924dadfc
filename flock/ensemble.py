"""Ensembles: many independent flocks of one scenario stepped together as one batch.

Small flocks leave a GPU mostly idle; E of them side by side fill it. An
``EnsembleSimulation`` holds E members that differ in their seed (or in parameter
values taken from lists). Members with the same scenario (all but the seed) form one
batch, and a batch is one ``Simulation`` with ``seeds=[...]``: the member axis of
``flock.step`` (B * N rows, one batched neighbor pass in which no pair crosses members,
everything else row by row). A member's trajectory equals
``Simulation.from_scenario(sc, seed=s)`` with its seed, up to float summation order.
Mean shift members converge independently: a converged member stays put while the
others go on, as a run on its own would stop.

Metrics are per member: each recorded row holds, for every metric of the single
simulation, a list of E values (``metric(name)`` gives a [T, E] tensor,
``member_metrics(e)`` the rows member e alone would have recorded).

Members whose parameter values differ cannot share one rule evaluation (rules read
scalars from the scenario), so a sweep of 8 values x 8 seeds is 8 batches of 8, stepped
one after another; a pure seed ensemble is one batch.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Sequence

import torch

from .errors import ScenarioError
from .metrics import MetricsLog
from .neighbors import BACKENDS
from .scenario import Scenario, load_scenario, set_path, validate_scenario
from .simulation import Simulation
from .state import FlockState

ENSEMBLE_BACKENDS = BACKENDS
DEFAULT_MEMBERS = 64


# ------------------------------------------------------------------ the ensemble

class EnsembleSimulation:
    """E independent members of one scenario, stepped together.

    Attributes:
        scenario: the base scenario.
        seeds: [E] the members' seeds.
        params: {key path: [E values]} the per-member parameter values (may be empty).
        member_scenarios: the E validated scenarios (equal to ``scenario`` but for params).
        batches: the ``Simulation`` of each group of members (one for a seed ensemble).
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
        self.batches: list[Simulation] = []
        for b, members in enumerate(groups.values()):
            self.batches.append(Simulation(self.member_scenarios[members[0]], seeds=[seeds[e] for e in members],
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
                data = set_path(data, key, values[e], origin="ensemble params")
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
        return self._gather(lambda b: b.state.pos.view(b.n_members, b.n_per_member, -1))

    @property
    def vel(self) -> torch.Tensor:
        """[E, N, D] velocities."""
        return self._gather(lambda b: b.state.vel.view(b.n_members, b.n_per_member, -1))

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


__all__ = ["ENSEMBLE_BACKENDS", "EnsembleSimulation", "ensemble_grid"]
