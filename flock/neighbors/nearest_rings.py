"""Distance to the nearest other agent, exact and unbounded, by a ring search on a cell list (numba, CPU).

The mean nearest-neighbor metric needs, for a sample of agents, how far the nearest
other agent is, however far that is. ``nearest_distances`` answers it in one compiled
call, with no search radius to guess and no dense fallback:

1. Cells about one mean agent spacing wide, (V / N)^(1/D) (a periodic box tiled by
   floor(L / w) cells per axis; an open world's cells over the points' bounding box),
   at most 2 N + 64 of them and at most ``CELLS_PER_QUERY`` per query (a sample of 40
   among a million agents needs no fine grid, and a coarse one sorts in cache); agents
   counting-sorted by cell.
2. Each query scans the cells at Chebyshev distance 0, 1, 2, ... from its own cell,
   one shell at a time. After shell k, every agent not scanned lies beyond the faces of
   the (2k+1)^D block, so once the best distance found is within the query's distance to
   the nearest face (less a float rounding margin) it is the minimum; a face past the
   grid's edge (open) or a block that covers a periodic axis is no face.

Numerics are the dense scan's and ``numba_grid.nearest_cells``': e = x_j - q_i in the
input dtype, the minimum image e - L rint(e / L), |d| by an IEEE square root (taken once
per query, of the smallest squared distance: the square root is monotonic, so that is
the smallest distance bit for bit). Open worlds first move the points to their
minimum and scale them by a power of two (``metrics._centred``), so far from the origin
or spread over 1e30 the squares do not overflow; the distances come back in those
units with the scale to divide by.

Compiled on first use per dtype and cached on disk (``cache=True``), like ``numba_grid``;
``warm_up()`` compiles or loads it ahead of a timed run (``flocksim bench`` adds it to its
compile column when the metrics are on).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..names import NN_MAX_OFFSET_LOG2

try:  # the module imports without numba; ``nearest_distances`` then returns None
    from numba import njit
except ImportError:  # pragma: no cover - exercised where numba is absent
    njit = None

# cells per query at most: with few queries among many agents (a sample of 40 in a million)
# a coarse grid, whose counting sort stays in cache, beats one cell per agent
CELLS_PER_QUERY = 16

if njit is not None:

    @njit(cache=True)
    def _centre(pos, periodic, max_log2):  # pragma: no cover - compiled
        """(ok, low [D], scale) of ``metrics._centred``: the points are (pos - low) * scale.

        ok is False when a position is not finite; a periodic world keeps its points
        (low 0, scale 1); offsets are scaled to at most 2^max_log2.
        """
        n, dim = pos.shape
        low = pos[0].copy()
        for i in range(n):
            for a in range(dim):
                v = pos[i, a]
                if not np.isfinite(v):
                    return False, low, 1.0
                if v < low[a]:
                    low[a] = v
        if periodic:
            return True, low - low, 1.0
        top = pos[0, 0] - pos[0, 0]
        for i in range(n):
            for a in range(dim):
                top = max(top, pos[i, a] - low[a])
        shift = max(math.frexp(max(np.float64(top), 1.0))[1] - 1 - max_log2, 0)
        return True, low, math.ldexp(1.0, -shift)

    @njit(cache=True, inline="always")
    def _wrap(e, period, length):  # pragma: no cover - compiled
        """The minimum image e - L rint(e / L), bit for bit, without the division where
        rint(e / L) is plainly 0 or +-1 (``length``: L as a float64)."""
        m = abs(e)
        if m <= 0.4 * length:
            return e
        if 0.6 * length <= m <= 1.4 * length:
            return e - period if e > 0 else e + period
        return e - period * np.rint(e / period)

    @njit(cache=True)
    def _ring_nearest(pos, qidx, period, periodic, max_cells, max_log2, out):  # pragma: no cover - compiled
        """Smallest distance from agent ``qidx[s]`` to any other agent, into ``out[s]``.

        pos: [N, D] (N >= 2); qidx: [M] int64 agent indices; period: [D] in pos's dtype;
        max_cells: cap on the cells; max_log2: ``NN_MAX_OFFSET_LOG2``. Returns (ok, scale):
        ok False (nothing written) when a position is not finite; ``out`` is in units of the
        scaled points (divide by ``scale``).
        """
        n, dim = pos.shape
        ok, low, scale = _centre(pos, periodic, max_log2)
        if not ok:
            return False, 1.0
        one = pos[0, 0] - pos[0, 0] + scale          # the scale in pos's dtype (a power of two: exact)
        # ---- the cells: about one agent spacing wide, at most max_cells
        lo = np.zeros(dim)
        ext = np.zeros(dim)
        for a in range(dim):
            if periodic:
                ext[a] = np.float64(period[a])
        if not periodic:
            hi = np.zeros(dim)
            for i in range(n):
                for a in range(dim):
                    hi[a] = max(hi[a], np.float64((pos[i, a] - low[a]) * one))
            ext[:] = hi
        volume = 1.0
        spread = 0
        for a in range(dim):
            if ext[a] > 0:
                volume *= ext[a]
                spread += 1
        width = (volume / n) ** (1.0 / max(spread, 1)) if spread else 1.0
        ncell = np.ones(dim, np.int64)
        while True:
            total = 1
            for a in range(dim):
                if periodic:
                    ncell[a] = max(1, int(math.floor(ext[a] / width)))
                else:
                    ncell[a] = max(1, int(math.floor(ext[a] / width)) + 1)
                total *= ncell[a]
            if total <= max_cells:
                break
            width *= 1.05
        cw = np.empty(dim)
        for a in range(dim):
            cw[a] = ext[a] / ncell[a] if periodic else width
        stride = np.ones(dim, np.int64)
        for a in range(1, dim):
            stride[a] = stride[a - 1] * ncell[a - 1]
        # ---- bin (a periodic world by the wrapped coordinate; clamped to the grid), counting-sort
        cell = np.empty(n, np.int64)
        ptr = np.zeros(total + 1, np.int64)
        for i in range(n):
            cid = 0
            for a in range(dim):
                x = np.float64((pos[i, a] - low[a]) * one)
                if periodic:
                    x = x - ext[a] * math.floor(x / ext[a])
                cid += min(max(int(math.floor(x / cw[a])), 0), ncell[a] - 1) * stride[a]
            cell[i] = cid
            ptr[cid + 1] += 1
        for c in range(total):
            ptr[c + 1] += ptr[c]
        cursor = ptr[:-1].copy()
        order = np.empty(n, np.int64)
        table = np.empty((n, dim), pos.dtype)
        for i in range(n):
            r = cursor[cell[i]]
            cursor[cell[i]] += 1
            order[r] = i
            for a in range(dim):
                table[r, a] = (pos[i, a] - low[a]) * one
        # float rounding of the binning and of the offsets: far below a cell width
        big = 0.0
        for a in range(dim):
            big = max(big, ext[a] + abs(np.float64(low[a])))
        margin = 16.0 * np.finfo(pos.dtype).eps * (big + width)
        # ---- one ring search per query
        off = np.zeros(dim, np.int64)
        coord = np.zeros(dim, np.int64)
        wrapped = np.zeros(dim)
        q = np.empty(dim, pos.dtype)
        for s in range(qidx.shape[0]):
            me = qidx[s]
            for a in range(dim):
                q[a] = (pos[me, a] - low[a]) * one
                x = np.float64(q[a])
                if periodic:
                    x = x - ext[a] * math.floor(x / ext[a])
                wrapped[a] = x
                coord[a] = min(max(int(math.floor(x / cw[a])), 0), ncell[a] - 1)
            best = np.inf
            k = 0
            while True:
                # after this shell, has every cell been scanned?
                full = True
                for a in range(dim):
                    if periodic and 2 * k + 1 >= ncell[a]:
                        continue
                    if not periodic and coord[a] - k <= 0 and coord[a] + k >= ncell[a] - 1:
                        continue
                    full = False
                # the shell at Chebyshev distance k: offsets in [-k, k]^D with some |o_a| = k;
                # a periodic axis the block wraps onto visits each of its n cells once
                for a in range(dim):
                    off[a] = -k
                while True:
                    on_shell = k == 0
                    valid = True
                    cid = 0
                    for a in range(dim):
                        o = off[a]
                        if periodic and 2 * k + 1 > ncell[a]:
                            # offsets -k .. -k + n - 1 are the n cells; the previous block
                            # (offsets -k+1 .. k-1, when it did not cover the axis) had the rest
                            if o > -k + ncell[a] - 1:
                                valid = False
                                break
                            if 2 * k - 1 < ncell[a] and (o == -k or o >= k):
                                on_shell = True
                        elif o == -k or o == k:
                            on_shell = True
                        c = coord[a] + o
                        if periodic:
                            c = c % ncell[a]
                        elif c < 0 or c >= ncell[a]:
                            valid = False
                            break
                        cid += c * stride[a]
                    if valid and on_shell:
                        for r in range(ptr[cid], ptr[cid + 1]):
                            if order[r] == me:
                                continue
                            e = table[r, 0] - q[0]
                            if periodic:
                                e = _wrap(e, period[0], ext[0])
                            d2 = e * e
                            for a in range(1, dim):
                                e = table[r, a] - q[a]
                                if periodic:
                                    e = _wrap(e, period[a], ext[a])
                                d2 += e * e
                            if d2 < best:
                                best = d2
                    a = 0
                    while a < dim:          # the next offset in [-k, k]^D
                        off[a] += 1
                        if off[a] <= k:
                            break
                        off[a] = -k
                        a += 1
                    if a == dim:
                        break
                if full:
                    break
                # every agent not scanned lies beyond a face of the block
                gap = np.inf
                for a in range(dim):
                    if periodic and 2 * k + 1 >= ncell[a]:
                        continue
                    if periodic or coord[a] - k > 0:
                        gap = min(gap, wrapped[a] - (coord[a] - k) * cw[a])
                    if periodic or coord[a] + k < ncell[a] - 1:
                        gap = min(gap, (coord[a] + k + 1) * cw[a] - wrapped[a])
                if best < np.inf and math.sqrt(best) <= gap - margin:
                    break
                k += 1
            out[s] = math.sqrt(best)
        return True, scale


def nearest_distances(pos: torch.Tensor, query_index: torch.Tensor,
                      period: torch.Tensor | None = None) -> tuple[torch.Tensor, float] | None:
    """Distance from each query agent to its nearest other agent, however far (CPU, numba).

    Args:
        pos: [N, D] float CPU positions, world units, N >= 2.
        query_index: [M] int64 agents to answer for (each excludes itself).
        period: [D] box lengths of a periodic world, or None (open: the points are moved
            to their minimum and scaled by a power of two first, see the module docstring).

    Returns:
        (distances [M] in ``pos``'s dtype, in scaled units; the scale to divide them by),
        or None where this path cannot answer (numba missing, a tensor off the CPU or
        needing grad, a position not finite): the caller then uses the dense scan.
    """
    if njit is None or pos.device.type != "cpu" or (pos.requires_grad and torch.is_grad_enabled()):
        return None
    pts = pos.detach().numpy()
    if not pts.flags.c_contiguous:
        pts = np.ascontiguousarray(pts)
    dim = pts.shape[1]
    per = (np.ascontiguousarray(torch.as_tensor(period, dtype=pos.dtype).reshape(dim).numpy()) if period is not None
           else np.ones(dim, dtype=pts.dtype))
    qidx = query_index.numpy() if query_index.dtype == torch.int64 else query_index.long().numpy()
    out = np.empty(qidx.shape[0], dtype=pts.dtype)
    max_cells = min(2 * pts.shape[0] + 64, max(64, CELLS_PER_QUERY * qidx.shape[0]))
    ok, scale = _ring_nearest(pts, qidx, per, period is not None, max_cells, NN_MAX_OFFSET_LOG2, out)
    if not ok:
        return None
    return torch.from_numpy(out), scale


def warm_up(dtypes=(torch.float32, torch.float64)) -> float:
    """Compile (or load from the disk cache) the kernel for ``dtypes``; returns the seconds it took."""
    import time

    t0 = time.perf_counter()
    for dtype in dtypes:
        pos = torch.rand(8, 2, dtype=dtype)
        nearest_distances(pos, torch.arange(2))
    return time.perf_counter() - t0


__all__ = ["nearest_distances", "warm_up"]
