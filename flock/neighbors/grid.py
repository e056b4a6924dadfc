"""Grid (cell-list) backend of the one neighbor kernel.

A cell list bins agents into cells at least as wide as the largest kernel support,
so every neighbor of a query lies in the 3^D cells around the query's own cell.
Same answer as ``reduce_dense`` (up to float summation order), at a cost of
O(M * candidates) instead of O(M * N):

    S[k, i] = sum_j w_k(|d_ij|) * [q_i + d_ij, v_j, f_j, 1]        shape [K, M, 2D+F+1]

Two functions, called one after the other on every ``reduce_grid`` (the grid is
rebuilt each call; the sync-free, allocate-once cell plan of the Triton kernel is in
``cells.py``):

- ``build_grid`` sizes the cells and sorts the agents by cell (``NeighborGrid``).
  In a periodic world the cells tile the box [0, L) exactly (floor(L / support)
  cells per axis, at least 1) and the wrap is a cell-index modulo; elsewhere
  the cells cover the world box when the caller passes it (``box``: the
  simulation's step does, so the layout needs nothing back from the device) or
  the bounding box of agents and queries, and points outside fall into the edge
  cells (still correct: clamping never separates two points closer than a cell).
- ``query_grid`` reduces each query over its candidate agents. The candidates of
  one query are a few contiguous ranges of the cell-sorted agents (one per row
  of cells along the first axis, plus the wrapped cell at a periodic seam).
  Queries are processed in blocks (cell order, for locality); inside a block
  they are sorted by candidate count and cut into chunks padded to the chunk's
  largest count, so one chunk's temporaries stay under ``memory_budget`` bytes.
  A row whose candidates alone exceed the budget (everyone in one cell) has its
  candidates split too: slow, never out of memory.

Cells are wider than the support by a float rounding margin (a few eps times
the coordinates' magnitude): the dense backend computes x_j - q_i in the input
dtype, and the margin guarantees every pair it weighs is a candidate here. With
float32 and a box length that is an exact multiple of the support, this gives
one cell fewer per axis than floor(L / support).

Weights come from the same ``Kernel.weights`` and offsets from the same
``minimum_image`` as the dense backend, pair by pair, so the two agree to
summation order. Kernels with unbounded support (an untruncated Gaussian) have
no cell list: use the dense or fused backend, or give the Gaussian a radius.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..kernels import Kernel, has_fov, pair_weights
from .cells import cell_list_support, fit_cells, rounding_margin, strides as cell_strides
from ..world import minimum_image
from .dense import DEFAULT_MEMORY_BUDGET
from .progress import PassProgress, active_progress

# Chunks are kept this small even under a large budget: past it the temporaries
# fall out of cache and nothing gets faster.
_MAX_CHUNK_PAIRS = 1 << 17
_MAX_BLOCK_ROWS = 1 << 15


@dataclass(frozen=True)
class NeighborGrid:
    """Agents binned into cells and sorted by cell.

    Attributes:
        origin: [D] float64 low corner of cell (0, ..., 0), world units.
        cell_size: [D] float64 cell widths, world units (>= the support they were built for).
        n_cells: cells per axis (len D); cell (c_0, c_1, ...) has the linear id
            c_0 + n_0 * (c_1 + n_1 * c_2), so the first axis is contiguous.
        period: [D] box lengths of a periodic world, or None.
        order: [N] int64 agent indices sorted by cell id.
        cell_start: [C] int64 offset of each cell's first agent in ``order``.
        cell_end: [C] int64 one past each cell's last agent in ``order``.
    """

    origin: torch.Tensor
    cell_size: torch.Tensor
    n_cells: tuple[int, ...]
    period: torch.Tensor | None
    order: torch.Tensor
    cell_start: torch.Tensor
    cell_end: torch.Tensor

    @property
    def dim(self) -> int:
        return len(self.n_cells)

    @property
    def periodic(self) -> bool:
        return self.period is not None

    @property
    def n_agents(self) -> int:
        return self.order.shape[0]

    def cell_coords(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] int64 cell coordinates of points ``x`` ([..., D] float, world units).

        Periodic worlds wrap (any image of a point lands in the same cell); open
        worlds clamp to the edge cells.
        """
        n = torch.as_tensor(self.n_cells, device=x.device, dtype=torch.int64)
        c = torch.floor((x.to(torch.float64) - self.origin) / self.cell_size).to(torch.int64)
        if self.periodic:
            return torch.remainder(c, n)
        return torch.minimum(c.clamp_min(0), n - 1)

    def cell_ids(self, coords: torch.Tensor) -> torch.Tensor:
        """[...] int64 linear cell ids of cell coordinates ``coords`` ([..., D] int64)."""
        strides = torch.as_tensor(cell_strides(self.n_cells), device=coords.device, dtype=torch.int64)
        return (coords * strides).sum(-1)


def cell_layout(points: torch.Tensor, cell_size: float, *, period: torch.Tensor | None = None,
                bounds: torch.Tensor | None = None, max_cells: int | None = None,
                caller: str = "cell_layout",
                box: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> tuple[list[float], list[float], list[int]]:
    """Where the cells lie: (low corner [D], cell widths [D], cells per axis [D]).

    Shared by the torch grid (``build_grid``) and the Triton cell list
    (``triton_grid.cell_geometry``).

    Args:
        points: [P, D] float, world units: everything that will be binned.
        cell_size: smallest cell width (the largest kernel support), finite and > 0;
            cells come out a float rounding margin wider, and wider still when the
            box would need more than ``max_cells`` cells.
        period: [D] box lengths of a periodic world ([0, L) per axis; cells per axis
            floor(L / width), at least 1, so they tile the box), or None.
        bounds: [2, D] low / high corners of an open world; default the bounding box
            of ``points`` (points outside fall into the edge cells).
        max_cells: cap on the total number of cells (default 2 P + 64).
        caller: names the function in the error message.
        box: the world box (low corner, high corner) as host floats, when the caller knows
            it: the layout is then made without reading anything back from the device
            (periodic: the period is high - low; otherwise the box is the bounds, points
            outside falling into the edge cells).
    """
    if not (cell_size > 0 and math.isfinite(cell_size)):
        raise ValueError(f"{caller}: cell_size: expected a finite number > 0, got {cell_size!r}")
    n_pts, dim = points.shape
    if max_cells is None:
        max_cells = 2 * n_pts + 64
    if box is not None:
        box_lo, box_hi = [float(v) for v in box[0]], [float(v) for v in box[1]]
        box_scale = max(abs(v) for v in box_lo + box_hi)
    if period is not None:
        if box is not None:
            per = [h - l for l, h in zip(box_lo, box_hi)]
            scale = max(per) + box_scale
        else:
            per = [float(v) for v in torch.as_tensor(period).reshape(dim).tolist()]
            scale = max(per) + (float(points.abs().max()) if n_pts else 0.0)
        lo = [0.0] * dim
    else:
        if box is not None:
            lo, hi = box_lo, box_hi
        elif bounds is not None:
            b = torch.as_tensor(bounds, dtype=torch.float64).reshape(2, dim)
            lo, hi = b[0].tolist(), b[1].tolist()
        elif n_pts:
            mm = torch.stack([points.min(0).values, points.max(0).values]).to(torch.float64).cpu()
            lo, hi = mm[0].tolist(), mm[1].tolist()
        else:
            lo = hi = [0.0] * dim
        extent = [max(h - l, 0.0) for l, h in zip(lo, hi)]
        scale = max(max(abs(v) for v in lo + hi), max(extent))
    width, n_cells = fit_cells(cell_size + rounding_margin(points.dtype, cell_size, scale),
                               per if period is not None else None, extent if period is None else None, max_cells)
    sizes = [L / n for L, n in zip(per, n_cells)] if period is not None else [width] * dim
    return lo, sizes, n_cells


def build_grid(pos: torch.Tensor, cell_size: float, *, period: torch.Tensor | None = None,
               bounds: torch.Tensor | None = None, max_cells: int | None = None,
               box: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> NeighborGrid:
    """Bin agents into cells of width >= ``cell_size`` and sort them by cell.

    Args:
        pos: [N, D] float agent positions, world units.
        cell_size: smallest allowed cell width, world units (the largest kernel
            support, ``flock.kernels.max_support``); > 0 and finite. Cells come out
            slightly wider (a float rounding margin), and wider still when the
            box would otherwise need more than ``max_cells`` cells.
        period: [D] box lengths of a periodic world ([0, L) per axis), or None.
            Cells per axis = floor(L / width), at least 1, so they tile the box.
        bounds: [2, D] low / high corners to bin over in a non-periodic world;
            defaults to the bounding box of ``pos``. Points outside fall into
            the edge cells.
        max_cells: cap on the total number of cells (default 2 N + 64), so a
            sparse or spread-out world does not allocate a huge empty grid.
        box: the world box as host floats (``cell_layout``): no read-back from the device.

    Returns:
        The ``NeighborGrid``.
    """
    dim = pos.shape[1]
    device = pos.device
    lo, sizes, n_cells = cell_layout(pos, cell_size, period=period, bounds=bounds, max_cells=max_cells,
                                     caller="build_grid", box=box)
    if period is not None:
        period_t = torch.as_tensor(period, device=device, dtype=pos.dtype).reshape(dim)
    else:
        period_t = None
    grid = NeighborGrid(
        origin=torch.tensor(lo, device=device, dtype=torch.float64),
        cell_size=torch.tensor(sizes, device=device, dtype=torch.float64),
        n_cells=tuple(n_cells), period=period_t,
        order=torch.empty(0, device=device, dtype=torch.int64),
        cell_start=torch.empty(0, device=device, dtype=torch.int64),
        cell_end=torch.empty(0, device=device, dtype=torch.int64))
    cell = grid.cell_ids(grid.cell_coords(pos))                       # [N]
    order = torch.argsort(cell, stable=True)
    cell_end = torch.cumsum(torch.bincount(cell, minlength=math.prod(n_cells)), 0)
    cell_start = torch.cat([cell_end.new_zeros(1), cell_end[:-1]])
    return NeighborGrid(origin=grid.origin, cell_size=grid.cell_size, n_cells=grid.n_cells,
                        period=period_t, order=order, cell_start=cell_start, cell_end=cell_end)


def _axis_offsets(n: int, periodic: bool) -> list[int]:
    """Neighbor-cell offsets along one axis, each distinct cell once."""
    if periodic:
        # fewer than 3 cells: -1, 0, +1 modulo n repeat cells, so visit each once
        return [-1, 0, 1] if n >= 3 else list(range(n))
    return [o for o in (-1, 0, 1) if abs(o) < n]


def _segments(grid: NeighborGrid, qc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate ranges of the cell-sorted agents for queries in cells ``qc`` ([m, D] int64).

    Returns:
        start, count: [m, S] int64; the candidates of query i are
        ``order[start[i, s] : start[i, s] + count[i, s]]`` for every s, each agent once.
    """
    n, periodic = grid.n_cells, grid.periodic
    strides = list(cell_strides(n))
    c0 = qc[:, 0]
    n0 = n[0]
    # cells c0-1 .. c0+1 of one row are consecutive ids: one range per row,
    # plus, in a periodic world, the cell across the seam
    if periodic and n0 < 3:
        xlo = torch.zeros_like(c0)
        xhi = torch.full_like(c0, n0 - 1)
        wrap = None
    else:
        xlo = (c0 - 1).clamp_min(0)
        xhi = (c0 + 1).clamp_max(n0 - 1)
        wrap = None
        if periodic:
            wrap = torch.where(c0 == 0, n0 - 1, torch.where(c0 == n0 - 1, 0, -1))
    starts, counts = [], []
    row_offsets = [_axis_offsets(n[a], periodic) for a in range(1, len(n))]
    for row in itertools.product(*row_offsets):
        base = torch.zeros_like(c0)
        valid = None
        for a, o in enumerate(row, start=1):
            ca = qc[:, a] + o
            if periodic:
                ca = torch.remainder(ca, n[a])
            else:
                inside = (ca >= 0) & (ca < n[a])
                valid = inside if valid is None else valid & inside
                ca = ca.clamp(0, n[a] - 1)
            base = base + ca * strides[a]
        start = grid.cell_start[base + xlo]
        cnt = grid.cell_end[base + xhi] - start
        if valid is not None:
            cnt = cnt * valid
        starts.append(start)
        counts.append(cnt)
        if wrap is not None:
            wid = base + wrap.clamp_min(0)
            start = grid.cell_start[wid]
            starts.append(start)
            counts.append((grid.cell_end[wid] - start) * (wrap >= 0))
    return torch.stack(starts, 1), torch.stack(counts, 1)


def grid_chunk_pairs(dim: int, n_kernels: int, n_feat: int, itemsize: int,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """(query, candidate) pairs per chunk so one chunk's temporaries fit ``memory_budget`` bytes."""
    width = 2 * dim + n_feat + 1
    # per pair: slot, segment and agent indices (int64) and masks; the gathered
    # row [x, v, f, 1]; offsets with their minimum-image temporaries; distance;
    # K weights and the temporaries a kernel makes while computing them
    per_pair = 5 * 8 + itemsize * (width + 4 * dim + 4 + 3 * n_kernels)
    return max(1, int(memory_budget // per_pair))


def _check_kernels(kernels) -> float:
    return cell_list_support(kernels, "grid")


def reduce_grid(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                period: torch.Tensor | None = None,
                query_pos: torch.Tensor | None = None,
                query_index: torch.Tensor | None = None,
                features: torch.Tensor | None = None,
                memory_budget: int = DEFAULT_MEMORY_BUDGET,
                chunk_rows: int | None = None,
                bounds: torch.Tensor | None = None,
                query_vel: torch.Tensor | None = None,
                box: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> torch.Tensor:
    """Kernel sums of every query over the agents in its 3^D neighboring cells.

    Same arguments, semantics and layout as ``reduce_dense``, plus:

    Args:
        bounds: [2, D] low / high corners to bin over in a non-periodic world;
            defaults to the bounding box of agents and queries. Only speed
            depends on it: points outside fall into the edge cells.
        memory_budget: bytes of temporaries one chunk may use.
        chunk_rows: at most this many query rows per chunk (tests).
        box: the world box (low, high corners) as host floats, for a walled or wrapped
            world: the cells are laid out over it with no read-back from the device (the
            simulation's step passes it, so a grid step has no host synchronisation).

    Returns:
        S: [K, M, 2D + F + 1], layout [positions (D), velocities (D), features (F), weight sum (1)].

    Raises:
        ValueError: a kernel has unbounded support (an untruncated Gaussian).
    """
    support = _check_kernels(kernels)
    n_agents, dim = pos.shape
    n_query = n_agents if query_pos is None else query_pos.shape[0]
    n_feat = 0 if features is None else features.shape[1]
    if n_query == 0 or n_agents == 0 or len(kernels) == 0:
        return torch.zeros(len(kernels), n_query, 2 * dim + n_feat + 1,
                           device=pos.device, dtype=pos.dtype)
    if period is None and bounds is None and query_pos is not None:
        bounds = torch.stack([torch.minimum(pos.min(0).values, query_pos.min(0).values),
                              torch.maximum(pos.max(0).values, query_pos.max(0).values)])
    cell = support
    if query_pos is not None:
        # the rounding margin of the cells must cover the query coordinates too
        cell += rounding_margin(pos.dtype, support, float(query_pos.abs().max()))
    grid = build_grid(pos, cell, period=period, bounds=bounds, box=box if query_pos is None else None)
    return query_grid(grid, pos, vel, kernels, query_pos=query_pos, query_index=query_index,
                      features=features, memory_budget=memory_budget, chunk_rows=chunk_rows,
                      query_vel=query_vel)


def query_grid(grid: NeighborGrid, pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
               query_pos: torch.Tensor | None = None,
               query_index: torch.Tensor | None = None,
               features: torch.Tensor | None = None,
               memory_budget: int = DEFAULT_MEMORY_BUDGET,
               chunk_rows: int | None = None,
               query_vel: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel sums [K, M, 2D+F+1] of every query over the agents of ``grid``.

    Args:
        grid: built by ``build_grid`` from these ``pos`` with a cell size >= the
            largest kernel support (the caller's contract: not re-checked).
        pos, vel, kernels, query_pos, query_index, features, memory_budget,
            chunk_rows, query_vel: as ``reduce_grid`` (``query_vel`` as ``reduce_dense``).
    """
    n_agents, dim = pos.shape
    device, dtype = pos.device, pos.dtype
    n_feat = 0 if features is None else features.shape[1]
    n_k = len(kernels)
    width = 2 * dim + n_feat + 1
    self_query = query_pos is None
    if self_query:
        query_pos = pos
        query_vel = vel if query_vel is None else query_vel
        if query_index is None:
            query_index = torch.arange(n_agents, device=device)
    if has_fov(kernels) and query_vel is None:
        raise ValueError("reduce_grid: a kernel has a field of view (fov), so query_vel (the "
                         "queries' headings) is needed with query_pos")
    heading = query_vel if has_fov(kernels) else None
    n_query = query_pos.shape[0]
    out = torch.zeros(n_query, n_k, width, device=device, dtype=dtype)
    if n_query == 0 or n_agents == 0 or n_k == 0:
        return out.permute(1, 0, 2).contiguous()

    order = grid.order
    # one cell-sorted table [pos, vel, features, 1]: a single gather per chunk
    table = [pos, vel] + ([] if features is None else [features.to(dtype)])
    table.append(torch.ones(n_agents, 1, device=device, dtype=dtype))
    table = torch.cat(table, 1)[order]                                # [N, 2D+F+1]
    period = grid.period
    exclude = [kern.exclude_self for kern in kernels]
    # each query's own agent as an index into the cell-sorted agents (-1: none)
    qself = None
    if any(exclude) and query_index is not None:
        inv = torch.empty_like(order)
        inv[order] = torch.arange(n_agents, device=device)
        ok = (query_index >= 0) & (query_index < n_agents)
        qself = torch.where(ok, inv[query_index.clamp(0, n_agents - 1)], -1)

    if self_query:
        qorder = order
    else:
        qorder = torch.argsort(grid.cell_ids(grid.cell_coords(query_pos)), stable=True)

    budget_pairs = grid_chunk_pairs(dim, n_k, n_feat, pos.element_size(), memory_budget)
    max_pairs = min(budget_pairs, _MAX_CHUNK_PAIRS)
    n_seg = _segments(grid, torch.zeros(1, dim, device=device, dtype=torch.int64))[0].shape[1]
    # a block holds ~8 int64 [m, S] segment tables
    block_rows = max(1, min(_MAX_BLOCK_ROWS, int(memory_budget // (64 * n_seg + 64))))
    if chunk_rows is not None:
        block_rows = min(block_rows, max(chunk_rows, 1))
    row_cap = max(1, chunk_rows) if chunk_rows is not None else max_pairs
    # a large pass on the CPU reports its progress (``flock.neighbors.progress``); the chunks
    # below are already small (at most max_pairs pairs), so a Ctrl-C is prompt either way
    setting = active_progress() if device.type == "cpu" else None
    done = 0
    pass_pairs = None if setting is None else _large_pass_pairs(grid, query_pos, qorder, block_rows, setting)
    if pass_pairs is not None:
        setting.report(0, pass_pairs)

    for b0 in range(0, n_query, block_rows):
        rows = qorder[b0:b0 + block_rows]                              # original query ids
        q = query_pos[rows]
        start, count = _segments(grid, grid.cell_coords(q))
        total = count.sum(1)
        total, perm = torch.sort(total, stable=True)                   # tight padding per chunk
        rows, q = rows[perm], q[perm]
        start, count = start[perm], count[perm]
        incl = torch.cumsum(count, 1)                                   # [m, S]
        shift = start - (incl - count)                                  # agent = shift[s] + slot
        own = None if qself is None else qself[rows]
        qv = None if heading is None else heading[rows]
        total_np = total.cpu().numpy()
        m = len(total_np)
        block = torch.zeros(m, n_k, width, device=device, dtype=dtype)
        r = int(np.searchsorted(total_np, 0, side="right"))            # rows with no candidate
        while r < m:
            c = int(total_np[r])
            if c > max_pairs:
                # one row's candidates exceed the chunk: split them
                sl = slice(r, r + 1)
                for p0 in range(0, c, max_pairs):
                    block[sl] += _reduce_chunk(table, q[sl], incl[sl], shift[sl],
                                               None if own is None else own[sl], kernels,
                                               exclude, period, p0, min(c, p0 + max_pairs),
                                               None if qv is None else qv[sl])
                    if pass_pairs is not None:
                        done += min(c, p0 + max_pairs) - p0
                        setting.report(done, pass_pairs)
                r += 1
                continue
            window = total_np[r:r + min(row_cap, max_pairs)]
            fits = np.arange(1, len(window) + 1) * window <= max_pairs   # True, then False
            k = max(1, int(np.count_nonzero(fits)))
            sl = slice(r, r + k)
            block[sl] = _reduce_chunk(table, q[sl], incl[sl], shift[sl],
                                      None if own is None else own[sl], kernels, exclude,
                                      period, 0, int(total_np[r + k - 1]),
                                      None if qv is None else qv[sl])
            r += k
            if pass_pairs is not None:
                done += int(total_np[sl].sum())
                setting.report(done, pass_pairs)
        out[rows] = block
    return out.permute(1, 0, 2).contiguous()


def _large_pass_pairs(grid: NeighborGrid, query_pos: torch.Tensor, qorder: torch.Tensor, block_rows: int,
                      setting: PassProgress) -> int | None:
    """Candidate pairs of the pass when at least ``setting.min_pairs`` (progress is reported), else None."""
    n_query = query_pos.shape[0]
    # a bound first, from the fullest cell, so ordinary passes skip the exact count
    fullest = int((grid.cell_end - grid.cell_start).max()) if grid.cell_end.numel() else 0
    if n_query * min(grid.n_agents, 3 ** grid.dim * fullest) < setting.min_pairs:
        return None
    total = 0
    for b0 in range(0, n_query, block_rows):
        q = query_pos[qorder[b0:b0 + block_rows]]
        total += int(_segments(grid, grid.cell_coords(q))[1].sum())
    return total if total >= max(1.0, setting.min_pairs) else None


def _reduce_chunk(table, q, incl, shift, own, kernels, exclude, period, p0, p1, qv=None):
    """Sums [m, K, 2D+F+1] of m queries over their candidate slots p0 .. p1-1.

    Args:
        table: [N, 2D+F+1] cell-sorted [position, velocity, features, 1].
        q: [m, D] query positions.
        incl: [m, S] inclusive cumulative candidate counts over segments.
        shift: [m, S] sorted-agent index minus slot, per segment.
        own: [m] sorted-agent index of each query's own agent (-1 none) or None.
        qv: [m, D] query velocities (headings of kernels with a field of view) or None.
    """
    m, n_seg = incl.shape
    dim = q.shape[1]
    n_slots = p1 - p0
    slots = torch.arange(p0, p1, device=q.device).expand(m, n_slots).contiguous()
    seg = torch.searchsorted(incl, slots, right=True)                  # [m, P]; S = padding
    valid = seg < n_seg
    # padding slots read some agent (clamped in range) and get weight 0 below
    j = torch.gather(shift, 1, seg.clamp_max_(n_seg - 1)).add_(slots).clamp_max_(table.shape[0] - 1)
    g = table.index_select(0, j.view(-1)).view(m, n_slots, -1)         # [m, P, 2D+F+1]
    off = minimum_image(g[..., :dim] - q[:, None, :], period)          # [m, P, D]
    dist = torch.linalg.vector_norm(off, dim=-1)                       # [m, P]
    w = pair_weights(kernels, off, dist, qv, 1)                        # [m, K, P]
    # every weight is finite (inverse_square floors d), so masking is a product
    keep = valid.to(w.dtype)
    if own is None or not any(exclude):
        w.mul_(keep[:, None, :])
    else:
        keep_other = keep * (j != own[:, None])
        if all(exclude):
            w.mul_(keep_other[:, None, :])
        else:
            w.mul_(torch.stack([keep_other if ex else keep for ex in exclude], 1))
    res = torch.bmm(w, g)                                              # [m, K, 2D+F+1]
    if period is not None:
        # q_i + d_ij, the image of x_j nearest to q_i, as reduce_dense sums it
        res[..., :dim] = q[:, None, :] * res[..., -1:] + torch.bmm(w, off)
    return res
