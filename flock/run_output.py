"""What a run leaves behind, shared by the headless CLI and the window.

``metrics.csv`` written row by row and flushed (an interrupted run keeps every row),
``final_state.npz`` (positions, velocities, groups, step) and the one-line summary
printed at the end of a run. Each run without ``--out`` gets a folder of its own
(``new_run_folder``), and ``holds_a_run`` tells whether ``--out`` would overwrite one.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np


RUN_FILES = ("metrics.csv", "final_state.npz")


def new_run_folder(name: str, root="runs") -> Path:
    """Create and return ``root/<name>-<k>`` for the first k = 1, 2, ... not taken yet.

    The folder is made with ``exist_ok=False``, so two runs started at once never get the same one.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        path = root / f"{name}-{k}"
        try:
            path.mkdir()
        except FileExistsError:
            k += 1
            continue
        return path


def holds_a_run(folder) -> bool:
    """True when ``folder`` already holds what a run writes (metrics.csv or final_state.npz)."""
    return any((Path(folder) / f).exists() for f in RUN_FILES)


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


def finish_outputs(steps: list[tuple[str, Callable[[], object]]]) -> list[str]:
    """Run each ``(name, write)`` step of a run's closing writes, every one even when an
    earlier one fails; each failure is printed to stderr as ``cannot write <name>: <why>``.

    Returns the failures' lines (empty when everything was written). Never raises: it runs
    inside the run's ``finally``, where a raise would hide the run's own outcome.
    """
    failures = []
    for name, write in steps:
        try:
            write()
        except Exception as exc:  # noqa: BLE001  (any writer's error; reported, not re-raised)
            line = f"cannot write {name}: {type(exc).__name__}: {str(exc)[:300]}"
            failures.append(line)
            print(line, file=sys.stderr)
    return failures


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
    text += f", {int(sim.nan_corrections)} NaN-guard corrections"
    if sim.params.rule.converges:
        conv = "converged" if sim.done and sim.last_shift < sim.scenario.rules.tol else "not converged"
        text += f"; {last.get('n_modes', '?')} modes, {conv} (shift {sim.last_shift:.2e})"
    elif last and "polarization" in last:
        text += f"; polarization {last['polarization']:.3f}, mean speed {last['mean_speed']:.3f}"
    return text


__all__ = ["MetricsCsvWriter", "finish_outputs", "run_summary", "save_final_state"]
