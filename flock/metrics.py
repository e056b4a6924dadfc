"""Metrics: time series of what a run looks like, recorded every few steps.

Boids: polarization |mean unit(v)| (0 disordered .. 1 all aligned), mean speed,
mean nearest-neighbor distance (estimated from a subset of agents at large N).
Mean shift: the number of distinct modes and the relative shift of the last step.
"""

from __future__ import annotations

import csv
import functools
import math
from typing import Callable

import numpy as np
import torch

from .names import NN_MAX_OFFSET_LOG2
from .vectors import unit

NN_PAIR_BUDGET = 40_000_000  # pair distances one dense nearest-neighbor estimate may compute


def polarization_tensor(vel: torch.Tensor) -> torch.Tensor:
    """|mean_i unit(v_i)| of [N, D] velocities as a 0-d tensor on ``vel``'s device (no host sync); 0 for N = 0."""
    if vel.shape[0] == 0:
        return vel.new_zeros(())
    return torch.linalg.vector_norm(unit(vel).mean(0))


def mean_speed_tensor(vel: torch.Tensor) -> torch.Tensor:
    """Mean |v| of [N, D] velocities as a 0-d tensor on ``vel``'s device (no host sync); 0 for N = 0."""
    return torch.linalg.vector_norm(vel, dim=1).mean() if vel.shape[0] else vel.new_zeros(())


def polarization(vel: torch.Tensor) -> float:
    """|mean_i unit(v_i)| of [N, D] velocities; 0 for N = 0."""
    return float(polarization_tensor(vel))


def mean_speed(vel: torch.Tensor) -> float:
    """Mean |v| of [N, D] velocities; 0 for N = 0."""
    return float(mean_speed_tensor(vel))


@functools.lru_cache(maxsize=64)
def _sample_rows(n_agents: int, max_queries: int) -> torch.Tensor:
    n_query = max(1, min(n_agents, max_queries, NN_PAIR_BUDGET // max(n_agents, 1)))
    return torch.linspace(0, n_agents - 1, n_query).round().long().unique()


def nn_sample_index(n_agents: int, max_queries: int, device) -> torch.Tensor:
    """[Q] int64 evenly spaced agents whose nearest-neighbor distances estimate the mean.

    At most ``max_queries``, and few enough that a dense scan of them computes at most
    ``NN_PAIR_BUDGET`` pair distances (made on the host: no device sync; float32
    ``linspace`` as the estimate always chose them; made once per size, so callers must
    not write into it).
    """
    return _sample_rows(int(n_agents), int(max_queries)).to(device)


def mean_nn_distance_tensor(pos: torch.Tensor, period: torch.Tensor | None = None,
                            max_queries: int = 2000) -> torch.Tensor:
    """Mean distance from a sampled agent to its nearest other agent, a 0-d tensor (NaN for N < 2).

    The sample is ``nn_sample_index`` (every agent up to ``max_queries``). On the CPU the
    distances come from one compiled ring search on a cell list
    (``flock.neighbors.nearest_rings``: exact, however far the nearest agent is); on other
    devices, or without numba, from the dense scan. Both compute each distance the same
    way (the dense estimate's value, to float rounding of the norm).

    Args:
        pos: [N, D] positions, world units. period: [D] or None.
    """
    n = pos.shape[0]
    if n < 2:
        return torch.full((), math.nan, dtype=pos.dtype, device=pos.device)
    idx = nn_sample_index(n, max_queries, pos.device)
    if pos.device.type == "cpu":
        from .neighbors.nearest_rings import nearest_distances

        found = nearest_distances(pos, idx, period)
        if found is not None:
            dist, scale = found
            return dist.mean() / scale
    from .neighbors.nearest import nearest_neighbor

    pos, scale = _centred(pos, period)
    _, dist = nearest_neighbor(pos, period=period, query_pos=pos[idx], query_index=idx)
    return dist.mean() / scale


_NN_MAX_OFFSET = 2.0 ** NN_MAX_OFFSET_LOG2


def _centred(pos: torch.Tensor, period: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions [N, D] relative to their minimum and scaled by a power of two, that scale (0-d)).

    Distances are translation invariant, and a power-of-two scale is exact, so the mean
    nearest-neighbor distance of the result divided by the scale is the original's; but
    far from the origin (1e7 in float32) or spread over 1e20 the offsets' squares no longer
    overflow. A wrapped world's positions already lie in its box (at most 1e15 wide by the
    schema) and the cell query lays its cells from 0, so they are left as they are.
    Device-only operations: nothing is read back.
    """
    one = torch.ones((), dtype=pos.dtype, device=pos.device)
    if period is not None:
        return pos, one
    rel = pos - pos.detach().min(0).values
    extent = rel.detach().amax().clamp_min(1.0)
    shift = (torch.floor(torch.log2(extent)) - math.log2(_NN_MAX_OFFSET)).clamp_min(0.0)
    scale = torch.exp2(-shift).to(pos.dtype)
    return rel * scale, scale


def mean_nearest_neighbor_distance(pos: torch.Tensor, period: torch.Tensor | None = None,
                                   max_queries: int = 2000, chunk: int = 256) -> float:
    """Mean distance from an agent to its nearest other agent (NaN for N < 2).

    At large N the mean is taken over evenly spaced agents (at most ``max_queries``,
    and few enough that at most ``NN_PAIR_BUDGET`` pairs are computed), each against
    all agents: ``mean_nn_distance_tensor`` as a float (``chunk`` is kept for callers;
    the scan sizes its own chunks).

    Args:
        pos: [N, D] positions, world units. period: [D] or None.
    """
    return float(mean_nn_distance_tensor(pos, period, max_queries))


def boids_metrics(pos: torch.Tensor, vel: torch.Tensor, period: torch.Tensor | None = None,
                  nn_sample: int = 2000) -> dict[str, torch.Tensor]:
    """The boid metrics of one state as 0-d tensors on its device: nothing waits for the device.

    ``MetricsLog.append`` takes the dict as it is and turns it into numbers only when
    a row is written or read.

    Args:
        pos, vel: [N, D] positions and velocities. period: [D] or None.
        nn_sample: agents whose nearest-neighbor distances estimate the mean.
    """
    if vel.shape[0] == 0:
        polar = speed = vel.new_zeros(())
    else:       # polarization_tensor and mean_speed_tensor, sharing the speeds (the same values)
        norm = torch.linalg.vector_norm(vel, dim=1, keepdim=True)
        speed = norm.mean()
        polar = torch.linalg.vector_norm(torch.where(norm > 0, vel / norm, 0.0).mean(0))
    return {"polarization": polar, "mean_speed": speed, "mean_nn_distance": mean_nn_distance_tensor(pos, period, nn_sample)}


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
    uniq, inverse, counts = _unique_cells(_mode_cell_keys(pos, radius), return_inverse=True, return_counts=True)
    reps, order = _cell_representatives(pos, inverse, counts, len(uniq))
    cell_mode_np, centers = _greedy_merge(reps, radius)
    cell_mode = torch.from_numpy(cell_mode_np).to(pos.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=pos.device)
    labels = cell_mode[rank[inverse]]
    centers_t = reps[torch.as_tensor(centers, device=pos.device)]
    sizes = torch.bincount(labels, minlength=len(centers))
    by_size = torch.argsort(sizes, descending=True, stable=True)
    relabel = torch.empty_like(by_size)
    relabel[by_size] = torch.arange(len(by_size), device=pos.device)
    return centers_t[by_size], relabel[labels]


def _cell_representatives(pos: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor,
                          n_cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean position of each occupied cell [M, D], most populated first; that order [M] int64)."""
    sums = torch.zeros(n_cells, pos.shape[1], device=pos.device, dtype=pos.dtype).index_add_(0, inverse, pos)
    reps = sums / counts[:, None].to(pos.dtype)
    order = torch.argsort(counts, descending=True, stable=True)
    return reps[order], order


def _greedy_merge(reps: torch.Tensor, radius: float) -> tuple[np.ndarray, list[int]]:
    """Greedy merge of cell representatives [M, D] (most populated first) within ``radius``.

    Each cell not yet taken starts a mode and takes every free cell within ``radius``.
    The distances are torch's (the same norm as ever); which cells are taken is kept on
    the host, so the loop reads the device once per mode, not once per cell.

    Returns:
        (mode of every cell [M] int64, the cells that started a mode, in order).
    """
    free = np.ones(reps.shape[0], dtype=bool)
    cell_mode = np.full(reps.shape[0], -1, dtype=np.int64)
    centers: list[int] = []
    for c in range(reps.shape[0]):
        if not free[c]:
            continue
        near = (torch.linalg.vector_norm(reps - reps[c], dim=1) <= radius).cpu().numpy() & free
        cell_mode[near] = len(centers)
        free &= ~near
        centers.append(c)
    return cell_mode, centers


# cell coordinates above this are not exact in float64 (and near int64's 9.2e18)
_MAX_CELL_COORD = 2.0 ** 52


def _mode_cell_keys(pos: torch.Tensor, radius: float) -> torch.Tensor:
    """[N, D] keys whose equal rows are the points' cells (radius / 4 wide), reads one value back.

    Cell coordinates are counted in float64 from the points' minimum, so they stay small
    wherever the points are. Where they would still pass 2^52 (a bandwidth far below the
    points' spread, e.g. 1e-20 over 100 units, or not a positive number) a cell would be
    narrower than the coordinates' own resolution: the cells are then the distinct positions
    themselves (their rows), and the greedy merge still joins those within ``radius``.
    """
    rel = pos.detach().to(torch.float64)
    rel = rel - rel.min(0).values
    cells = torch.floor(rel / (radius / 4)) if radius > 0 else rel
    if radius > 0 and math.isfinite(radius) and bool(cells.max() <= _MAX_CELL_COORD):
        return cells.long()
    return pos.detach()


def _unique_cells(keys: torch.Tensor, **kwargs):
    """``torch.unique(keys, dim=0, **kwargs)`` in the same (lexicographic) order, through one
    1-D unique of linear cell ids when the keys are non-negative integer cells whose id range
    fits int64 (a row-wise unique sorts rows and costs several times more)."""
    if keys.dtype == torch.int64 and keys.shape[0]:
        extent = (keys.max(0).values + 1).tolist()
        if math.prod(extent) < 2**62:
            strides = [math.prod(extent[i + 1:]) for i in range(len(extent))]   # first axis most significant
            ids = (keys * torch.tensor(strides, dtype=torch.int64, device=keys.device)).sum(1)
            return torch.unique(ids, **kwargs)
    return torch.unique(keys, dim=0, **kwargs)


def count_modes(pos: torch.Tensor, radius: float, max_cells: int = 4096) -> int:
    """Number of modes (``find_modes``); above ``max_cells`` occupied cells, the cell count (a cheap bound)."""
    if pos.shape[0] == 0:
        return 0
    uniq, inverse, counts = _unique_cells(_mode_cell_keys(pos, radius), return_inverse=True, return_counts=True)
    if len(uniq) > max_cells:
        return len(uniq)
    reps, _ = _cell_representatives(pos, inverse, counts, len(uniq))
    return len(_greedy_merge(reps, radius)[1])


class MetricsLog:
    """A time series: one row (a dict of numbers) per recorded step.

    ``log["polarization"]`` is the column as a list; listeners get each new row
    (the CLI writes CSV lines as they come, so an interrupted run keeps them).
    Rows may be appended with 0-d tensors as values (``boids_metrics``): they become
    floats, in one device sync for every pending row, only when rows are read or a
    listener writes them.
    """

    def __init__(self):
        self._rows: list[dict[str, float]] = []
        self._pending = 0          # rows at the end of _rows that may still hold tensors
        self._listeners: list[Callable[[dict[str, float]], None]] = []

    def add_listener(self, fn: Callable[[dict[str, float]], None]) -> None:
        self._listeners.append(fn)

    def append(self, row: dict) -> None:
        self._rows.append(row)
        self._pending += 1
        if self._listeners:
            row = self.rows[-1]
            for fn in self._listeners:
                fn(row)

    @property
    def rows(self) -> list[dict[str, float]]:
        if self._pending:
            self._materialize()
        return self._rows

    @rows.setter
    def rows(self, rows: list[dict]) -> None:
        self._rows = list(rows)
        self._pending = len(self._rows)

    def _materialize(self) -> None:
        tail = self._rows[len(self._rows) - self._pending:]
        tensors = [v for row in tail for v in row.values() if isinstance(v, torch.Tensor)]
        if tensors:
            values = iter(torch.stack([t.detach().reshape(()).to(torch.float64) for t in tensors]).cpu().tolist())
            for row in tail:
                for key, v in row.items():
                    if isinstance(v, torch.Tensor):
                        row[key] = next(values)
        self._pending = 0

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else []

    def __getitem__(self, name: str) -> list[float]:
        return [row[name] for row in self.rows]

    def __len__(self) -> int:
        return len(self._rows)

    def last(self) -> dict[str, float]:
        return self.rows[-1] if self._rows else {}

    def to_csv(self, path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
