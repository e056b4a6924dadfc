"""Nearest other agent within a radius: the one neighbor query that is a minimum, not a sum.

NetLogo's Flocking turns away from its nearest flockmate's heading, and a chasing
predator steers at the nearest prey; both need which agent is nearest, which no
weighted sum gives. Rows are processed in chunks, like the dense kernel.
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
        query_index: [M] index of each query among the agents (to exclude itself).
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
            d[torch.arange(stop - start, device=pos.device), query_index[start:stop]] = math.inf
        if candidates is not None:
            d = torch.where(candidates[None], d, torch.full_like(d, math.inf))
        dmin, imin = d.min(dim=1)
        found = dmin < radius
        best_idx[start:stop] = torch.where(found, imin, torch.full_like(imin, -1))
        best_d[start:stop] = torch.where(found, dmin, torch.full_like(dmin, math.inf))
    return best_idx, best_d
