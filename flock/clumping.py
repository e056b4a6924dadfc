"""Pathological clumping (issue 14): say, before stepping, when many agents share one neighborhood.

A million agents in one spot are computed correctly by the cell list, but every agent then
has every other one as a candidate: a step costs N^2 pair evaluations (hours on a CPU).
``neighborhood_report`` estimates the candidates each agent will see from one pass over the
cell occupancy of a state (cells as wide as the largest kernel support, as the grid lays
them out) and returns a one-line warning when a step would be that large.
"""

from __future__ import annotations

import itertools
import math

import torch

from .kernels import max_support
from .params import Params
from .state import FlockState

# warn when one step is estimated to evaluate more neighbor pairs than this ...
PAIR_WARNING = 1e9
# ... or when agents have more candidates than this on average
MEAN_CANDIDATE_WARNING = 1000
# linear cell ids stay below this (int64); wider layouts are coarsened by factors of two
_MAX_LINEAR_CELLS = 2 ** 62


def _cell_layout(pos: torch.Tensor, params: Params, support: float):
    """(integer cell coordinates [N, D] int64, cells per axis [D] list of int, periodic)."""
    world = params.world
    if world.periodic:
        low = world.origin_tensor(pos)
        size = [float(v) for v in world.size]
        cells = [max(1, int(s // support)) if support > 0 else 1 for s in size]
        while math.prod(cells) > _MAX_LINEAR_CELLS:
            cells = [max(1, c // 2) for c in cells]
        width = torch.tensor([s / c for s, c in zip(size, cells)], dtype=pos.dtype, device=pos.device)
        coords = torch.floor((pos - low) / width).long()
        coords = torch.remainder(coords, torch.tensor(cells, device=pos.device))
        return coords, cells, True
    low = pos.min(0).values
    extent = (pos.max(0).values - low).tolist()          # the one host read of the layout
    width = max(support, 1e-300)
    while math.prod(int(e // width) + 1 for e in extent) > _MAX_LINEAR_CELLS:
        width *= 2.0
    cells = [int(e // width) + 1 for e in extent]
    coords = torch.floor((pos - low) / width).long().clamp_min(0)
    coords = torch.minimum(coords, torch.tensor(cells, device=pos.device) - 1)
    return coords, cells, False


def _linear(coords: torch.Tensor, cells: list[int]) -> torch.Tensor:
    """[...] int64 row-major id of integer cell coordinates [..., D]."""
    strides = [math.prod(cells[d + 1:]) for d in range(len(cells))]
    return (coords * torch.tensor(strides, device=coords.device)).sum(-1)


def neighborhood_counts(state: FlockState, params: Params) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Agents per occupied cell and in its 3^D neighborhood of cells.

    Cells are as wide as the largest kernel support (at least; a wrapped box is split into
    whole cells, an open world's cells are laid from the agents' minimum). In a wrapped box
    with fewer than 3 cells on an axis, each neighboring cell is counted once.

    Args:
        state: pos [N, D] (any float dtype, world units). params: the step's ``Params``.
    Returns:
        (count [C] int64 agents in each occupied cell, neighborhood [C] int64 agents in its
        3^D cells, the cell width used: the largest support, world units; inf when unbounded,
        in which case there is one cell holding everyone).
    """
    pos = state.pos.detach()
    n = pos.shape[0]
    support = float(max_support(params.kernels))
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=pos.device)
        return empty, empty, support
    if not math.isfinite(support):
        one = torch.full((1,), n, dtype=torch.int64, device=pos.device)
        return one, one, support
    coords, cells, periodic = _cell_layout(pos, params, support)
    ids, counts = torch.unique(_linear(coords, cells), return_counts=True)      # sorted ids
    dim = coords.shape[1]
    # the cell coordinates of each occupied cell, back from its linear id
    strides = [math.prod(cells[d + 1:]) for d in range(dim)]
    occupied = torch.stack([(ids // s) % c for s, c in zip(strides, cells)], dim=1)
    steps = []
    for c in cells:
        axis = [-1, 0, 1]
        if periodic:
            axis = sorted({o % c for o in axis})       # fewer than 3 cells: each one once
        steps.append(axis)
    around = torch.zeros_like(counts)
    for offset in itertools.product(*steps):
        other = occupied + torch.tensor(offset, device=pos.device)
        if periodic:
            other = torch.remainder(other, torch.tensor(cells, device=pos.device))
            inside = torch.ones(len(ids), dtype=torch.bool, device=pos.device)
        else:
            inside = ((other >= 0) & (other < torch.tensor(cells, device=pos.device))).all(1)
        key = _linear(other.clamp_min(0), cells)
        at = torch.searchsorted(ids, key).clamp_max(len(ids) - 1)
        hit = inside & (ids[at] == key)
        around += torch.where(hit, counts[at], torch.zeros_like(counts))
    return counts, around, support


def neighborhood_report(state: FlockState, params: Params) -> tuple[int, str | None]:
    """(largest number of candidates one agent will see, a warning line or None).

    The estimate of a step's cost is the candidate pairs of a cell list: the sum over cells
    of (agents in the cell) x (agents in its 3^D neighborhood). The warning is given when
    that passes ``PAIR_WARNING`` pairs or (with a bounded kernel) ``MEAN_CANDIDATE_WARNING``
    candidates per agent on average. Reads a few numbers back from the device (once, before a run).

    Args:
        state: pos [N, D], world units. params: the step's ``Params`` (kernels, world).
    """
    n = state.pos.shape[0]
    counts, around, support = neighborhood_counts(state, params)
    if n == 0:
        return 0, None
    pairs, densest = (int(v) for v in torch.stack([(counts * around).sum(), around.max()]).tolist())
    mean = pairs / n
    # with an unbounded kernel everyone is a candidate by design: only the size of a step counts
    crowded = mean > MEAN_CANDIDATE_WARNING and math.isfinite(support)
    if pairs <= PAIR_WARNING and not crowded:
        return densest, None
    where = ("every agent is within the kernels' unbounded support" if not math.isfinite(support)
             else f"cells {support:g} wide, the largest kernel support")
    return densest, (f"warning: {densest:,} of {n:,} agents share one neighborhood ({where}); a step will "
                     f"evaluate about {pairs:.3g} neighbor pairs ({mean:,.0f} candidates per agent on average), "
                     "which may take a long time; Ctrl-C stops the run")
