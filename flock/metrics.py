"""Metrics: time series of what a run looks like, recorded every few steps.

Boids: polarization |mean unit(v)| (0 disordered .. 1 all aligned), mean speed,
mean nearest-neighbor distance (estimated from a subset of agents at large N).
Mean shift: the number of distinct modes and the relative shift of the last step.
"""

from __future__ import annotations

import csv
import math
from typing import Callable

import torch

from .vectors import unit
from .world import minimum_image

NN_PAIR_BUDGET = 40_000_000  # pair distances one nearest-neighbor estimate may compute


def polarization(vel: torch.Tensor) -> float:
    """|mean_i unit(v_i)| of [N, D] velocities; 0 for N = 0."""
    if vel.shape[0] == 0:
        return 0.0
    return float(torch.linalg.vector_norm(unit(vel).mean(0)))


def mean_speed(vel: torch.Tensor) -> float:
    """Mean |v| of [N, D] velocities; 0 for N = 0."""
    return float(torch.linalg.vector_norm(vel, dim=1).mean()) if vel.shape[0] else 0.0


def mean_nearest_neighbor_distance(pos: torch.Tensor, period: torch.Tensor | None = None,
                                   max_queries: int = 2000, chunk: int = 256) -> float:
    """Mean distance from an agent to its nearest other agent (NaN for N < 2).

    At large N the mean is taken over evenly spaced agents (at most ``max_queries``,
    and few enough that at most ``NN_PAIR_BUDGET`` pairs are computed), each against
    all agents.

    Args:
        pos: [N, D] positions, world units. period: [D] or None.
    """
    n = pos.shape[0]
    if n < 2:
        return math.nan
    n_query = max(1, min(n, max_queries, NN_PAIR_BUDGET // n))
    idx = torch.linspace(0, n - 1, n_query, device=pos.device).round().long().unique()
    best = []
    for start in range(0, len(idx), chunk):
        rows = idx[start:start + chunk]
        off = minimum_image(pos[None, :, :] - pos[rows][:, None, :], period)
        d = torch.linalg.vector_norm(off, dim=-1)
        d[torch.arange(len(rows), device=pos.device), rows] = math.inf
        best.append(d.min(dim=1).values)
    return float(torch.cat(best).mean())


def find_modes(pos: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Group converged points into modes: points within ``radius`` of a mode belong to it.

    Points are first snapped to cells of size radius / 4; cell representatives are
    merged greedily, most populated first (as scikit-learn merges mean shift centres).

    Args:
        pos: [N, D] positions. radius: merge distance, world units.
    Returns:
        (centers [M, D], labels [N] int64), modes ordered by size, largest first.
    """
    n, dim = pos.shape
    if n == 0:
        return pos.new_zeros(0, dim), torch.zeros(0, dtype=torch.int64, device=pos.device)
    keys = torch.floor(pos / (radius / 4)).long()
    uniq, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(uniq), dim, device=pos.device, dtype=pos.dtype).index_add_(0, inverse, pos)
    reps = sums / counts[:, None].to(pos.dtype)
    order = torch.argsort(counts, descending=True, stable=True)
    reps, counts = reps[order], counts[order]
    cell_mode = torch.full((len(reps),), -1, dtype=torch.int64, device=pos.device)
    centers = []
    for c in range(len(reps)):
        if cell_mode[c] >= 0:
            continue
        near = (torch.linalg.vector_norm(reps - reps[c], dim=1) <= radius) & (cell_mode < 0)
        cell_mode[near] = len(centers)
        centers.append(reps[c])
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=pos.device)
    labels = cell_mode[rank[inverse]]
    centers_t = torch.stack(centers)
    sizes = torch.bincount(labels, minlength=len(centers))
    by_size = torch.argsort(sizes, descending=True, stable=True)
    relabel = torch.empty_like(by_size)
    relabel[by_size] = torch.arange(len(by_size), device=pos.device)
    return centers_t[by_size], relabel[labels]


def count_modes(pos: torch.Tensor, radius: float, max_cells: int = 4096) -> int:
    """Number of modes (``find_modes``); above ``max_cells`` occupied cells, the cell count (a cheap bound)."""
    if pos.shape[0] == 0:
        return 0
    keys = torch.floor(pos / (radius / 4)).long()
    n_cells = torch.unique(keys, dim=0).shape[0]
    if n_cells > max_cells:
        return n_cells
    return find_modes(pos, radius)[0].shape[0]


class MetricsLog:
    """A time series: one row (a dict of numbers) per recorded step.

    ``log["polarization"]`` is the column as a list; listeners get each new row
    (the CLI writes CSV lines as they come, so an interrupted run keeps them).
    """

    def __init__(self):
        self.rows: list[dict[str, float]] = []
        self._listeners: list[Callable[[dict[str, float]], None]] = []

    def add_listener(self, fn: Callable[[dict[str, float]], None]) -> None:
        self._listeners.append(fn)

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        for fn in self._listeners:
            fn(row)

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []

    def __getitem__(self, name: str) -> list[float]:
        return [row[name] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def last(self) -> dict[str, float]:
        return self.rows[-1] if self.rows else {}

    def to_csv(self, path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
