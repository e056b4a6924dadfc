"""What a run leaves behind, shared by the headless CLI and the window.

``metrics.csv`` written row by row and flushed (an interrupted run keeps every row),
``final_state.npz`` (positions, velocities, groups, step) and the one-line summary
printed at the end of a run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


class MetricsCsvWriter:
    """Writes each metrics row to ``path`` as it is recorded, flushed, so an interrupted run keeps it."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "w", newline="", encoding="utf-8")
        self._writer: csv.DictWriter | None = None

    def __call__(self, row: dict) -> None:
        if self._writer is None:
            self._writer = csv.DictWriter(self._fh, fieldnames=list(row))
            self._writer.writeheader()
        self._writer.writerow(row)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def save_final_state(sim, path: Path) -> None:
    """``pos`` and ``vel`` ([N, D]), ``group`` ([N]) and ``step`` of ``sim`` as a .npz file."""
    st = sim.state
    np.savez(path, pos=st.pos.cpu().numpy(), vel=st.vel.cpu().numpy(), group=st.group.cpu().numpy(),
             step=np.int64(sim.step_count))


def run_summary(sim, seconds: float, interrupted: bool, steps_done: int | None = None) -> str:
    """The closing line of a run: steps, agents, agent-steps/s, device, backend, NaN-guard
    corrections, last metrics.

    Args:
        sim: the simulation after the run.
        seconds: wall time the run stepped (time paused in a window left out by the caller).
        interrupted: the run was stopped early.
        steps_done: steps this run did (a resumed run started at the checkpoint's step);
            default all of ``sim.step_count``.
    """
    n = sim.state.n_agents
    steps = sim.step_count if steps_done is None else int(steps_done)
    rate = n * steps / seconds if seconds > 0 else math.inf
    name = sim.scenario.name or (sim.scenario.source.stem if sim.scenario.source else "scenario")
    head = "interrupted" if interrupted else "done"
    text = (f"{name}: {head} after {steps} steps of {n} agents in {seconds:.2f} s "
            f"({rate:,.0f} agent-steps/s) on {sim.device}, backend {sim.backend}")
    last = sim.metrics.last()
    corrections = getattr(sim, "nan_corrections", None)
    if corrections is None:
        corrections = getattr(sim, "_nan_corrections", last.get("nan_corrections", 0))
    text += f", {int(corrections)} NaN-guard corrections"
    if sim.scenario.is_meanshift:
        conv = "converged" if sim.done and sim.last_shift < sim.scenario.rules.tol else "not converged"
        text += f"; {last.get('n_modes', '?')} modes, {conv} (shift {sim.last_shift:.2e})"
    elif last and "polarization" in last:
        text += f"; polarization {last['polarization']:.3f}, mean speed {last['mean_speed']:.3f}"
    return text


__all__ = ["MetricsCsvWriter", "run_summary", "save_final_state"]
