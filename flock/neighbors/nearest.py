"""Nearest other agent within a radius: the one neighbor query that is a minimum, not a sum.

NetLogo's Flocking turns away from its nearest flockmate's heading, and a chasing
predator steers at the nearest prey; both need which agent is nearest, which no
weighted sum gives.

Two implementations, one answer (ties go to the lowest agent index):

    nearest_neighbor        dense: every query against every agent, rows in chunks
                            like the dense kernel (memory bounded by ``memory_budget``)
    nearest(backend=...)    'dense' (the above) or 'cells': a cell list with cells at
                            least ``radius`` wide, each query scanning the agents of its
                            3^D neighboring cells (compiled with numba; without numba,
                            'cells' falls back to the dense scan). 'auto' takes the cells
                            for a finite radius on the CPU, the dense scan otherwise.
"""

from __future__ import annotations

import math

import torch

from ..world import minimum_image
from .dense import DEFAULT_MEMORY_BUDGET


def nearest_neighbor(pos: torch.Tensor, *, radius: float = math.inf, period: torch.Tensor | None = None,
                     query_pos: torch.Tensor | None = None, query_index: torch.Tensor | None = None,
                     candidates: torch.Tensor | None = None,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and distance to each query's nearest agent closer than ``radius``.

    Args:
        pos: [N, D] agent positions. radius: search radius, world units.
        period: [D] box lengths of a periodic world, or None.
        query_pos: [M, D] query positions (default: the agents, each excluding itself).
        query_index: [M] index of each query among the agents (to exclude itself; -1 none).
        candidates: [N] bool, agents that may be found (default: all).
    Returns:
        (index [M] int64, -1 where none; distance [M], inf where none).
    """
    if query_pos is None:
        query_pos = pos
        if query_index is None:
            query_index = torch.arange(pos.shape[0], device=pos.device)
    n, m = pos.shape[0], query_pos.shape[0]
    best_idx = torch.full((m,), -1, dtype=torch.int64, device=pos.device)
    best_d = torch.full((m,), math.inf, dtype=pos.dtype, device=pos.device)
    if n == 0 or m == 0:
        return best_idx, best_d
    rows = max(1, memory_budget // (max(n, 1) * pos.element_size() * (pos.shape[1] + 2)))
    for start in range(0, m, rows):
        stop = min(start + rows, m)
        off = minimum_image(pos[None] - query_pos[start:stop, None], period)
        d = torch.linalg.vector_norm(off, dim=-1)
        if query_index is not None:
            own = query_index[start:stop]
            rows_idx = torch.arange(stop - start, device=pos.device)
            # -1 (no agent) must not hit the last column
            d[rows_idx, own.clamp(0, n - 1)] = torch.where(own >= 0, math.inf, d[rows_idx, own.clamp(0, n - 1)])
        if candidates is not None:
            d = torch.where(candidates[None], d, torch.full_like(d, math.inf))
        dmin, imin = d.min(dim=1)          # the first minimum: ties go to the lowest index
        found = dmin < radius
        best_idx[start:stop] = torch.where(found, imin, torch.full_like(imin, -1))
        best_d[start:stop] = torch.where(found, dmin, torch.full_like(dmin, math.inf))
    return best_idx, best_d


NEAREST_BACKENDS = ("auto", "dense", "cells")


def nearest(pos: torch.Tensor, *, radius: float, period: torch.Tensor | None = None,
            query_pos: torch.Tensor | None = None, query_index: torch.Tensor | None = None,
            candidates: torch.Tensor | None = None, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and distance to each query's nearest agent closer than ``radius``.

    Same arguments and answer as ``nearest_neighbor`` (ties: the lowest agent index);
    ``backend`` picks the implementation (``NEAREST_BACKENDS``). The cell list costs
    O(N + M * neighbors) time and O(N + M + cells) memory; it needs a finite radius.

    Args:
        pos: [N, D] float agent positions, world units.
        radius: search radius, world units (> 0).
        period: [D] box lengths of a periodic world, or None.
        query_pos: [M, D] query positions (default: the agents, each excluding itself).
        query_index: [M] int64 index of each query among the agents (excluded; -1 none).
        candidates: [N] bool, agents that may be found (default: all).
        backend: 'auto', 'dense' or 'cells'.

    Returns:
        (index [M] int64, -1 where none; distance [M] in ``pos``'s dtype, inf where none).
    """
    if backend not in NEAREST_BACKENDS:
        raise ValueError(f"nearest: backend: expected one of {NEAREST_BACKENDS}, got {backend!r}")
    if not radius > 0:
        raise ValueError(f"nearest: radius: expected a number > 0, got {radius!r}")
    finite = math.isfinite(radius)
    if backend == "cells" and not finite:
        raise ValueError("nearest: backend 'cells' needs a finite radius (cells are one radius wide); "
                         "use backend='dense' for an unbounded search")
    if backend == "auto":
        backend = "cells" if finite and pos.device.type == "cpu" else "dense"
    if backend == "cells":
        from .numba_grid import nearest_cells, numba_available

        if numba_available() and pos.device.type == "cpu":
            return nearest_cells(pos, radius=radius, period=period, query_pos=query_pos,
                                 query_index=query_index, candidates=candidates)
    return nearest_neighbor(pos, radius=radius, period=period, query_pos=query_pos, query_index=query_index,
                            candidates=candidates)
