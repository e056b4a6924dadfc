"""Numba backend of the one neighbor kernel: the fused cell-list loop, compiled for the CPU.

Same sums, layout and semantics as ``reduce_dense`` (up to float summation order):

    S[k, i] = sum_j w_k(|d_ij|) * [q_i + d_ij, v_j, f_j, 1]        shape [K, M, 2D+F+1]

The design is the Triton kernel's (``triton_grid.py``), on CPU threads:

1. Binning. The cells of ``grid.cell_layout`` (at least one support wide; a periodic
   box tiled by floor(L / width) cells per axis, an open world's cells over the
   bounding box of agents and queries, outliers clamped into the edge cells). A
   counting sort (histogram, exclusive scan, a scatter in agent order, so the
   permutation is stable: exactly ``argsort(cell, stable=True)``) orders the agents
   by cell; one table [N, 2D+F] of [x, v, f] is gathered into that order.
2. ``_cell_sums``: ``prange`` over blocks of queries taken in cell order (a block's
   queries share most candidates, so their reads hit the cache). Each query walks
   the 3^(D-1) rows of neighboring cells; the three cells of a row along x are
   consecutive in cell order, so each row is one contiguous strip of the table
   (plus the wrapped cell at a periodic seam). A candidate farther than the largest
   support is dropped after its distance; otherwise every channel's weight is
   computed and accumulated into a [K, 2D+F+1] scratch row of the block. Nothing
   of size N x neighbors exists in memory: memory is O(N + M + cells). From about
   ``UNROLLED_MIN_PAIRS`` candidate pairs the same loop runs written out for the call's
   shape (``numba_unrolled``: the same sums bit for bit, accumulators in registers), on
   Python threads over ranges of blocks.
3. Large passes (``flock.neighbors.progress``): inside ``report_progress`` a pass of at
   least ``min_pairs`` candidate pairs (counted per query from the cell pointers, after
   a bound from the fullest cell) runs the loop on consecutive ranges of the
   cell-ordered queries (row slices, no copy) of about ``chunk_seconds`` each, with the
   binning, sort and table made once. Each query's sum is the same loop over the same
   candidates, so the result is bit-identical; Python runs (progress, Ctrl-C) in between.

Numerics follow ``reduce_dense`` operation by operation, in the input dtype (the
channel parameters and constants are passed as arrays of that dtype, so a float32
run never silently computes in float64): d = x_j - q_i, minimum image
``d - L rint(d / L)`` (round half to even, as ``torch.round``), |d| by an IEEE
square root, each kind's formula of ``flock.kernels``. Positions are accumulated as
offsets and q_i * sum_j w is added at the end, in open worlds too (where the dense
backend sums x_j directly: the same value up to rounding).

Compilation: each function is compiled on first use for the dtypes it meets and
cached on disk (``cache=True``, in ``__pycache__``), so a later process loads it in
a fraction of a second. ``warm_up()`` compiles (or loads) both float dtypes ahead of
a timed run. Thread count: numba's (``numba.set_num_threads``; ``flock.threads``).

Tensors must live on the CPU. When autograd needs the result (an input requires
grad and grad mode is on), ``reduce_numba`` falls back to the torch ``grid``
backend, which differentiates. Untruncated Gaussians have no cell list:
``ValueError``; use the dense or fused backend, or give the kernel a radius.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..kernels import CIRCLES_PI, KERNEL_KINDS, Kernel, has_fov
from .dense import DEFAULT_MEMORY_BUDGET
from .cells import cell_list_support
from .grid import cell_layout
from .numba_unrolled import channel_key, run_blocks, unrolled_cell_sums
from .numba_unrolled import supports as unrolled_supports
from .progress import PassProgress, active_progress, run_in_chunks

try:  # the module imports without numba; using it then raises a clear error
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

# queries per parallel work item: enough to share candidates in cache, and many
# items per thread so that uneven cells balance out
DEFAULT_BLOCK = 128
# from this many candidate pairs (queries x agents per cell x 3^D, an estimate) a call runs
# the loop unrolled for its shape (``numba_unrolled``: faster per pair, one more compile per
# shape, cached on disk); smaller calls, a few hundred microseconds of loop, share the one
# generic loop
UNROLLED_MIN_PAIRS = 100_000
# a chunk of a large pass (``flock.neighbors.progress``) is cut into at least this many
# blocks per thread
_BLOCKS_PER_THREAD = 16

_KIND = {name: i for i, name in enumerate(KERNEL_KINDS)}
# _cell_sums switches on these ids (a new kind needs its formula there, and its test fails until then)
_KERNEL_IDS = ("flat", "triangular", "gaussian", "inverse_square", "inverse", "circles")
if tuple(KERNEL_KINDS) != _KERNEL_IDS:  # pragma: no cover - a guard for whoever adds a kind
    raise ImportError(f"numba_grid: kernel kinds {KERNEL_KINDS} differ from the ids {_KERNEL_IDS} "
                      "its kernel knows; add the new kind's formula to _cell_sums")


def numba_available() -> bool:
    """True when ``numba`` imports."""
    return numba is not None


def _require_numba(device: torch.device) -> None:
    if numba is None:
        raise ImportError("the numba backend needs the 'numba' package: pip install numba "
                          "(or use backend='grid')")
    if device.type != "cpu":
        raise ValueError(f"numba backend: tensors on {device}; it runs on CPU tensors only "
                         "(use backend='triton' or 'grid' on CUDA)")


# ------------------------------------------------------------------ kernels

if numba is not None:

    @njit(cache=True)
    def _bin_points(points, origin, size, n_cells, periodic):  # pragma: no cover - compiled
        """[P] int64 linear cell ids of ``points`` ([P, D]); wrap or clamp per ``periodic``."""
        n_pts, dim = points.shape
        ids = np.empty(n_pts, np.int64)
        for i in range(n_pts):
            cid = 0
            stride = 1
            for a in range(dim):
                c = int(math.floor((np.float64(points[i, a]) - origin[a]) / size[a]))
                n = n_cells[a]
                if periodic:
                    c = c % n
                elif c < 0:
                    c = 0
                elif c >= n:
                    c = n - 1
                cid += c * stride
                stride *= n
            ids[i] = cid
        return ids

    @njit(cache=True)
    def _counting_sort(keys, n_bins):  # pragma: no cover - compiled
        """(order [P] int64 = argsort(keys, stable=True), ptr [n_bins + 1] int64)."""
        n = keys.shape[0]
        ptr = np.zeros(n_bins + 1, np.int64)
        for i in range(n):
            ptr[keys[i] + 1] += 1
        for b in range(n_bins):
            ptr[b + 1] += ptr[b]
        cursor = ptr[:-1].copy()
        order = np.empty(n, np.int64)
        for i in range(n):
            k = keys[i]
            order[cursor[k]] = i
            cursor[k] += 1
        return order, ptr

    @njit(cache=True)
    def _wrap(d, period, half_period, fast):  # pragma: no cover - compiled
        """Minimum image of one offset component: d - L rint(d / L) (``fast``: d in (-L, L))."""
        if fast:
            if d > half_period:
                return d - period
            if d < -half_period:
                return d + period
            return d
        return d - period * np.rint(d / period)

    @njit(cache=True)
    def _strips(cid, n0, n1, n2, periodic, cell_ptr, strips):  # pragma: no cover - compiled
        """Candidate ranges [lo, hi) of the cell-sorted agents around cell ``cid``, into ``strips``
        ([18, 2] int64); returns how many. Each neighboring cell appears once.

        The three cells of a row along x are consecutive ids (one strip); at a periodic
        seam the wrapped cell is one more. Rows come from the offsets along y and z, each
        distinct cell once (fewer than 3 cells on a periodic axis repeat them otherwise).
        """
        c0 = cid % n0
        c1 = (cid // n0) % n1
        c2 = cid // (n0 * n1)
        if periodic and n0 < 3:
            xlo, xhi, xwrap = 0, n0 - 1, -1
        else:
            xlo, xhi, xwrap = max(c0 - 1, 0), min(c0 + 1, n0 - 1), -1
            if periodic:
                if c0 == 0:
                    xwrap = n0 - 1
                elif c0 == n0 - 1:
                    xwrap = 0
        count = 0
        for o2 in range(3):
            ca2 = _row_cell(c2, o2, n2, periodic)
            if ca2 < 0:
                continue
            for o1 in range(3):
                ca1 = _row_cell(c1, o1, n1, periodic)
                if ca1 < 0:
                    continue
                base = (ca2 * n1 + ca1) * n0
                strips[count, 0] = cell_ptr[base + xlo]
                strips[count, 1] = cell_ptr[base + xhi + 1]
                count += 1
                if xwrap >= 0:
                    strips[count, 0] = cell_ptr[base + xwrap]
                    strips[count, 1] = cell_ptr[base + xwrap + 1]
                    count += 1
        return count

    @njit(cache=True)
    def _row_cell(c, o, n, periodic):  # pragma: no cover - compiled
        """Cell along one axis at offset index ``o`` (0, 1, 2) from cell ``c``, or -1 (none or repeated)."""
        if periodic:
            if n >= 3:
                return (c + o - 1) % n
            if o < n:
                return (c + o) % n
            return -1
        ca = c + o - 1
        return ca if 0 <= ca < n else -1

    @njit(cache=True)
    def _weight(kd, dist, r, bw, amp, floor_d, half, one, circ):  # pragma: no cover - compiled
        """Weight of one pair at distance ``dist`` for kernel kind id ``kd`` (``flock.kernels``' formulas)."""
        if kd == 0:        # flat
            return one
        if kd == 1:        # triangular
            return one - dist / r
        if kd == 2:        # gaussian
            z = dist / bw
            return np.exp(-half * (z * z))
        if kd == 3:        # inverse_square
            m = max(dist, floor_d)
            return one / (m * m)
        if kd == 4:        # inverse
            return one / max(dist, floor_d)
        return amp * np.sin(dist / r * circ) / dist     # circles (dist > 0 here: open centre)

    @njit(cache=True, parallel=True)
    def _cell_sums(table, cell_ptr, qpos, qwrap, qvel, qcell, qown, qout, n_cells, period, periodic, fast_wrap,
                   kind, excl, openc, fov, rad, bw, amp, floor_d, cosf, consts, out, block):  # pragma: no cover
        """Sums of every query over the agents of its 3^D neighboring cells, into ``out``.

        table: [N, C] cell-sorted [x, v, f]; cell_ptr: [cells + 1] first slot of each cell;
        qpos, qvel: [M, D] queries in cell order (qvel: headings, read for channels with
        ``fov``); qwrap: [M, D] the query positions offsets are taken from (with
        ``fast_wrap``, table and queries are moved into the box [0, L)); qcell: [M] linear cell id of each query; qown: [M] sorted slot of its own
        agent (-1 none); qout: [M] output row; n_cells: [3] cells per axis (padded with 1);
        period: [D]; periodic: minimum image on; fast_wrap: every point lies in [0, L) and
        every L > 2 supports; kind, excl, openc, fov: [K] int64 per-channel kind id and flags;
        rad, bw, amp, floor_d, cosf: [K] parameters in the input dtype; consts: [4]
        (1/2, 1, the circles factor -2 pi', the largest support); out: [K, M, C + 1] zeros.
        """
        n_query, dim = qpos.shape
        n_col = table.shape[1]
        n_k = kind.shape[0]
        n0, n1, n2 = n_cells[0], n_cells[1], n_cells[2]
        half, one, circ, rmax = consts[0], consts[1], consts[2], consts[3]
        zero = one - one
        p0 = period[0]
        p1 = period[1] if dim > 1 else period[0]
        p2 = period[2] if dim > 2 else period[0]
        h0, h1, h2 = p0 * half, p1 * half, p2 * half
        # offsets of points inside [0, L) lie in (-L, L): the minimum image is one compare
        # and one add, the same value as d - L rint(d / L) wherever the two can differ only
        # at |d| ~ L / 2, which is then beyond the support
        fast = fast_wrap
        any_fov = False
        for k in range(n_k):
            if fov[k] != 0:
                any_fov = True
        n_blocks = (n_query + block - 1) // block
        for b in prange(n_blocks):
            acc = np.empty((n_k, n_col + 1), table.dtype)
            strips = np.empty((18, 2), np.int64)
            for s in range(b * block, min(n_query, (b + 1) * block)):
                acc[:, :] = zero
                cid = qcell[s]
                own = qown[s]
                q0 = qwrap[s, 0]
                q1 = qwrap[s, 1] if dim > 1 else zero
                q2 = qwrap[s, 2] if dim > 2 else zero
                qspeed = zero
                v0 = v1 = v2 = zero
                if any_fov:
                    v0 = qvel[s, 0]
                    v1 = qvel[s, 1] if dim > 1 else zero
                    v2 = qvel[s, 2] if dim > 2 else zero
                    qspeed = np.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
                n_strips = _strips(cid, n0, n1, n2, periodic, cell_ptr, strips)
                for t in range(n_strips):
                    for j in range(strips[t, 0], strips[t, 1]):
                        # D <= 3 unrolled by hand: scalars stay in registers
                        e0 = table[j, 0] - q0
                        if periodic:
                            e0 = _wrap(e0, p0, h0, fast)
                        # exact: |e0| >= rmax implies dist >= rmax (sqrt(fl(x * x)) == |x|)
                        if not abs(e0) < rmax:
                            continue
                        e1 = zero
                        e2 = zero
                        if dim > 1:
                            e1 = table[j, 1] - q1
                            if periodic:
                                e1 = _wrap(e1, p1, h1, fast)
                        if dim > 2:
                            e2 = table[j, 2] - q2
                            if periodic:
                                e2 = _wrap(e2, p2, h2, fast)
                        if dim == 1:
                            dist = np.sqrt(e0 * e0)
                        elif dim == 2:
                            dist = np.sqrt(e0 * e0 + e1 * e1)
                        else:
                            dist = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
                        if not dist < rmax:
                            continue
                        along = zero
                        if any_fov:
                            along = e0 * v0 + e1 * v1 + e2 * v2
                        for k in range(n_k):
                            if not dist < rad[k]:
                                continue
                            if excl[k] != 0 and j == own:
                                continue
                            if (openc[k] != 0) and not dist > zero:
                                continue
                            if fov[k] != 0 and not along >= cosf[k] * (dist * qspeed):
                                continue
                            w = _weight(kind[k], dist, rad[k], bw[k], amp[k], floor_d[k], half, one, circ)
                            acc[k, 0] += w * e0
                            if dim > 1:
                                acc[k, 1] += w * e1
                            if dim > 2:
                                acc[k, 2] += w * e2
                            for c in range(dim, n_col):
                                acc[k, c] += w * table[j, c]
                            acc[k, n_col] += w
                row = qout[s]
                for k in range(n_k):
                    wsum = acc[k, n_col]
                    for a in range(dim):
                        out[k, row, a] = acc[k, a] + qpos[s, a] * wsum
                    for c in range(dim, n_col + 1):
                        out[k, row, c] = acc[k, c]

    @njit(cache=True, parallel=True)
    def _candidate_counts(qcell, cell_ptr, n_cells, periodic):  # pragma: no cover - compiled
        """[M] int64 candidates of each query: the agents of the 3^D cells around ``qcell[s]``."""
        n_query = qcell.shape[0]
        n0, n1, n2 = n_cells[0], n_cells[1], n_cells[2]
        counts = np.empty(n_query, np.int64)
        for s in prange(n_query):
            strips = np.empty((18, 2), np.int64)
            n_strips = _strips(qcell[s], n0, n1, n2, periodic, cell_ptr, strips)
            c = 0
            for t in range(n_strips):
                c += strips[t, 1] - strips[t, 0]
            counts[s] = c
        return counts

    @njit(cache=True, parallel=True)
    def _nearest_cells(table, ids, cell_ptr, qpos, qcell, qself, qout, n_cells, period, periodic, radius,
                       out_idx, out_dist, block):  # pragma: no cover - compiled
        """Nearest agent closer than ``radius`` of every query, into ``out_idx`` / ``out_dist``.

        table: [N, D] cell-sorted candidate positions; ids: [N] their agent indices;
        qpos: [M, D] queries in cell order; qcell: [M] their cell ids; qself: [M] agent
        index each query excludes (-1 none); qout: [M] output row; radius: [1] in the
        input dtype. Ties go to the lowest agent index.
        """
        n_query, dim = qpos.shape
        n0, n1, n2 = n_cells[0], n_cells[1], n_cells[2]
        r = radius[0]
        n_blocks = (n_query + block - 1) // block
        for b in prange(n_blocks):
            strips = np.empty((18, 2), np.int64)
            for s in range(b * block, min(n_query, (b + 1) * block)):
                best = np.inf
                best_j = -1
                me = qself[s]
                n_strips = _strips(qcell[s], n0, n1, n2, periodic, cell_ptr, strips)
                for t in range(n_strips):
                    for j in range(strips[t, 0], strips[t, 1]):
                        aid = ids[j]
                        if aid == me:
                            continue
                        d2 = r - r
                        for a in range(dim):
                            e = table[j, a] - qpos[s, a]
                            if periodic:
                                e = e - period[a] * np.rint(e / period[a])
                            d2 += e * e
                        dist = np.sqrt(d2)
                        if dist < r and (dist < best or (dist == best and aid < best_j)):
                            best = dist
                            best_j = aid
                row = qout[s]
                if best_j >= 0:
                    out_idx[row] = best_j
                    out_dist[row] = best


    # what the generated loops of numba_unrolled import from here
    _UNROLLED_HELPERS = (_strips, _row_cell, _wrap, _weight)

# ------------------------------------------------------------------ host side

def _check_kernels(kernels) -> float:
    return cell_list_support(kernels, "numba")


def _channel_arrays(kernels: list[Kernel], dtype: np.dtype, support: float) -> tuple:
    """Per-channel kind ids and flags ([K] int64) and parameters ([K] ``dtype``), and the constants."""
    ints = np.array([[_KIND[k.kind], int(k.exclude_self), int(k.open_center or k.kind == "circles"),
                      int(k.fov is not None)] for k in kernels], dtype=np.int64).reshape(-1, 4)
    # parameters rounded to the input dtype once, as torch rounds a Python scalar against a tensor
    pars = np.array([[k.radius, k.bandwidth if k.bandwidth is not None else 1.0, k.strength,
                      1e-3 * k.radius, k.cos_half_fov] for k in kernels], dtype=dtype).reshape(-1, 5)
    consts = np.array([0.5, 1.0, -2 * CIRCLES_PI, support], dtype=dtype)
    return ((np.ascontiguousarray(ints[:, c]) for c in range(4)),
            (np.ascontiguousarray(pars[:, c]) for c in range(5)), consts)


def _np(t: torch.Tensor, dtype: torch.dtype | None = None) -> np.ndarray:
    if dtype is not None:
        t = t.to(dtype)
    return np.ascontiguousarray(t.detach().numpy())


def _into_box(x: np.ndarray, period: np.ndarray) -> np.ndarray:
    """[P, D] points moved into [0, L) by whole periods; points already inside are unchanged (bit for bit)."""
    inside = (x >= 0) & (x < period)
    if inside.all():
        return x
    moved = x - period * np.floor(x / period)
    moved = np.where(moved < period, moved, 0)          # a tiny negative x rounds up to L
    return np.where(inside, x, moved).astype(x.dtype)


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def reduce_numba(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                 period: torch.Tensor | None = None,
                 query_pos: torch.Tensor | None = None,
                 query_index: torch.Tensor | None = None,
                 features: torch.Tensor | None = None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 chunk_rows: int | None = None,
                 bounds: torch.Tensor | None = None,
                 query_vel: torch.Tensor | None = None,
                 unrolled: bool | None = None) -> torch.Tensor:
    """Kernel sums of every query over the agents in its 3^D neighboring cells, compiled with numba.

    Same arguments, semantics and layout as ``reduce_dense``, plus:

    Args:
        memory_budget: accepted for the common signature; unused (memory is O(N + M + cells)).
        chunk_rows: queries per parallel work item (default ``DEFAULT_BLOCK``).
        bounds: [2, D] low / high corners to bin over in an open world; default the
            bounding box of agents and queries. Only speed depends on it.
        query_vel: [M, D] query velocities for kernels with a field of view
            (default ``vel`` when ``query_pos`` is None).
        unrolled: run the loop written out for this call's shape (``numba_unrolled``; the
            same sums bit for bit, faster, one compile per shape) or the generic one;
            default: unrolled from about ``UNROLLED_MIN_PAIRS`` candidate pairs.

    Returns:
        S: [K, M, 2D + F + 1] on the CPU, the dtype of ``pos``, layout [positions (D),
        velocities (D), features (F), weight sum (1)].

    Raises:
        ValueError: a kernel has unbounded support, a kernel has a field of view and
            explicit queries come without ``query_vel``, or the tensors are not on the CPU.
        ImportError: numba is not installed.
    """
    support = _check_kernels(kernels)
    n_agents, dim = pos.shape
    self_query = query_pos is None
    n_query = n_agents if self_query else query_pos.shape[0]
    n_feat = 0 if features is None else features.shape[1]
    width = 2 * dim + n_feat + 1
    fov = has_fov(kernels)
    if fov and not self_query and query_vel is None:
        raise ValueError("reduce_numba: a kernel has a field of view (fov), so query_vel (the "
                         "queries' headings) is needed with query_pos")
    if n_query == 0 or n_agents == 0 or len(kernels) == 0:
        return torch.zeros(len(kernels), n_query, width, device=pos.device, dtype=pos.dtype)
    _require_numba(pos.device)
    if _needs_grad(pos, vel, query_pos, features, query_vel):
        from .grid import reduce_grid

        return reduce_grid(pos, vel, kernels, period=period, query_pos=query_pos, query_index=query_index,
                           features=features, bounds=bounds, query_vel=query_vel)
    dtype = pos.dtype
    default_index = self_query and query_index is None
    points = pos if self_query else torch.cat([pos, query_pos.to(dtype)])
    lo, sizes, n_cells = cell_layout(points, support, period=period, bounds=bounds, caller="reduce_numba")
    n_total = math.prod(n_cells)
    periodic = period is not None
    origin = np.asarray(lo, dtype=np.float64)
    size = np.asarray(sizes, dtype=np.float64)
    ncell = np.asarray(n_cells, dtype=np.int64)

    pos_np = _np(pos)
    cell = _bin_points(pos_np, origin, size, ncell, periodic)
    order, ptr = _counting_sort(cell, n_total)
    parts = [pos_np, _np(vel, dtype)] + ([] if features is None else [_np(features, dtype)])
    # np.take, not table[order]: numpy's fancy indexing of short rows is ~20x slower
    table = np.take(np.concatenate(parts, axis=1), order, axis=0)     # [N, 2D+F], cell order

    if self_query:
        qorder, qcell = order, cell[order]
        qpos = np.ascontiguousarray(table[:, :dim])
        qv_src = vel if query_vel is None else query_vel
    else:
        qp = _np(query_pos, dtype)
        qc = _bin_points(qp, origin, size, ncell, periodic)
        qorder, _ = _counting_sort(qc, n_total)
        qcell = qc[qorder]
        qpos = np.take(qp, qorder, axis=0)
        qv_src = query_vel
    qvel = (np.take(_np(qv_src, dtype), qorder, axis=0) if fov
            else np.zeros((1, dim), dtype=pos_np.dtype))
    qown = np.full(n_query, -1, dtype=np.int64)
    if self_query and default_index and any(k.exclude_self for k in kernels):
        qown = np.arange(n_query, dtype=np.int64)      # query s is the agent in sorted slot s
    elif query_index is not None and any(k.exclude_self for k in kernels):
        inv = np.empty(n_agents, dtype=np.int64)
        inv[order] = np.arange(n_agents)
        qi = query_index.detach().cpu().numpy().astype(np.int64)[qorder]
        ok = (qi >= 0) & (qi < n_agents)
        qown[ok] = inv[qi[ok]]

    per = (_np(torch.as_tensor(period, dtype=dtype).reshape(dim)) if periodic
           else np.ones(dim, dtype=pos_np.dtype))
    fast_wrap = periodic and bool((per > 2.01 * support).all())
    qwrap = qpos
    if fast_wrap:
        table[:, :dim] = _into_box(table[:, :dim], per)
        qwrap = _into_box(qpos, per)
    n3 = np.ones(3, dtype=np.int64)
    n3[:dim] = ncell
    (kind, excl, openc, fovs), (rad, bw, amp, floor_d, cosf), consts = _channel_arrays(
        kernels, pos_np.dtype, support)
    out = np.zeros((len(kernels), n_query, width), dtype=pos_np.dtype)
    block = DEFAULT_BLOCK if chunk_rows is None else max(1, int(chunk_rows))
    qwrap, qout = np.ascontiguousarray(qwrap), np.ascontiguousarray(qorder)
    channels = (kind, excl, openc, fovs, rad, bw, amp, floor_d, cosf, consts)
    if unrolled is None:
        unrolled = n_query * (n_agents / n_total) * 3 ** dim >= UNROLLED_MIN_PAIRS
    loop = (unrolled_cell_sums(dim, channel_key(kind, excl, openc, fovs), n_feat, _UNROLLED_HELPERS)
            if unrolled and unrolled_supports(dim, len(kernels), n_feat) else None)

    def run(q0: int, q1: int, rows: int) -> None:
        # a query range is a set of row slices (views, no copy): each query's sum is the
        # same code over the same candidates whatever the range, so chunks are bit-identical
        args = (table, ptr, qpos[q0:q1], qwrap[q0:q1], qvel[q0:q1] if fov else qvel, qcell[q0:q1],
                qown[q0:q1], qout[q0:q1], n3, per, periodic, fast_wrap, *channels, out, rows)
        if loop is None:
            _cell_sums(*args)
        else:
            run_blocks(loop, -(-(q1 - q0) // rows), args)

    setting = active_progress()
    cumulative = None if setting is None else _large_pass(setting, qcell, ptr, n3, periodic, n_agents, dim)
    if cumulative is None:
        run(0, n_query, block)
    else:
        threads = numba.get_num_threads()

        def run_chunk(q0: int, q1: int) -> None:
            # many blocks per thread even in a small chunk of very costly queries, handed out
            # one at a time: with the default static split, every chunk would wait at its end
            # for the thread the OS paused longest (on a busy CPU, 10-20% of the pass)
            with numba.parallel_chunksize(1):
                run(q0, q1, max(1, min(block, (q1 - q0) // (_BLOCKS_PER_THREAD * threads))))

        run_in_chunks(cumulative, run_chunk, setting)
    return torch.from_numpy(out)


def _large_pass(setting: PassProgress, qcell: np.ndarray, ptr: np.ndarray, n3: np.ndarray, periodic: bool,
                n_agents: int, dim: int) -> np.ndarray | None:
    """[M] int64 cumulative candidates of the cell-ordered queries when the pass has at least
    ``setting.min_pairs`` of them (to be chunked), else None."""
    n_query = qcell.shape[0]
    # a bound first, from the fullest cell (O(cells)), so ordinary passes skip the exact count
    fullest = int(np.diff(ptr).max()) if ptr.shape[0] > 1 else 0
    if n_query * min(n_agents, 3 ** dim * fullest) < setting.min_pairs:
        return None
    cumulative = np.cumsum(_candidate_counts(qcell, ptr, n3, periodic))
    return cumulative if cumulative[-1] >= max(1.0, setting.min_pairs) else None


def nearest_cells(pos: torch.Tensor, *, radius: float, period: torch.Tensor | None = None,
                  query_pos: torch.Tensor | None = None, query_index: torch.Tensor | None = None,
                  candidates: torch.Tensor | None = None,
                  chunk_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest agent closer than ``radius`` through a cell list one radius wide (CPU, numba).

    Arguments and answer as ``flock.neighbors.nearest.nearest_neighbor`` (ties: the lowest
    agent index); ``radius`` must be finite. Memory O(N + M + cells).

    Returns:
        (index [M] int64, -1 where none; distance [M], inf where none).
    """
    n_agents, dim = pos.shape
    if query_pos is None:
        query_pos = pos
        if query_index is None:
            query_index = torch.arange(n_agents)
    n_query = query_pos.shape[0]
    best_idx = torch.full((n_query,), -1, dtype=torch.int64)
    best_d = torch.full((n_query,), math.inf, dtype=pos.dtype)
    if not math.isfinite(radius) or not radius > 0:
        raise ValueError(f"nearest_cells: radius: expected a finite number > 0, got {radius!r}")
    if n_agents == 0 or n_query == 0:
        return best_idx.to(pos.device), best_d.to(pos.device)
    _require_numba(pos.device)
    pos_np = _np(pos)
    ids = np.arange(n_agents, dtype=np.int64)
    if candidates is not None:
        ids = np.flatnonzero(_np(candidates)).astype(np.int64)
        if ids.size == 0:
            return best_idx, best_d
    cand = pos_np[ids]
    qp = _np(query_pos, pos.dtype)
    periodic = period is not None
    # the layout from host (numpy) values: this path runs on the CPU only and reads no tensor back
    points = np.concatenate([cand, qp])
    if periodic:
        per_host = _np(torch.as_tensor(period, dtype=pos.dtype).reshape(dim)).astype(np.float64)
        # a box of the period's size whose corners bound |points| (cell_layout takes the
        # period as high - low and its rounding margin from the corners' magnitude)
        m = float(np.abs(points).max())
        box = ((-m,) * dim, tuple(float(v) - m for v in per_host))
    else:
        box = (tuple(points.min(0).astype(np.float64)), tuple(points.max(0).astype(np.float64)))
    lo, sizes, n_cells = cell_layout(torch.from_numpy(points), float(radius), period=period, caller="nearest",
                                     box=box)
    origin, size = np.asarray(lo, dtype=np.float64), np.asarray(sizes, dtype=np.float64)
    ncell = np.asarray(n_cells, dtype=np.int64)
    n_total = math.prod(n_cells)
    order, ptr = _counting_sort(_bin_points(cand, origin, size, ncell, periodic), n_total)
    qc = _bin_points(qp, origin, size, ncell, periodic)
    qorder, _ = _counting_sort(qc, n_total)
    qself = (np.full(n_query, -1, dtype=np.int64) if query_index is None
             else query_index.detach().cpu().numpy().astype(np.int64))
    per = (_np(torch.as_tensor(period, dtype=pos.dtype).reshape(dim)) if periodic
           else np.ones(dim, dtype=pos_np.dtype))
    n3 = np.ones(3, dtype=np.int64)
    n3[:dim] = ncell
    out_idx = best_idx.numpy()
    out_d = best_d.numpy()
    _nearest_cells(np.take(cand, order, axis=0), np.ascontiguousarray(ids[order]), ptr,
                   np.take(qp, qorder, axis=0), np.ascontiguousarray(qc[qorder]),
                   np.ascontiguousarray(qself[qorder]), qorder, n3, per, periodic,
                   np.array([radius], dtype=pos_np.dtype), out_idx, out_d,
                   DEFAULT_BLOCK if chunk_rows is None else max(1, int(chunk_rows)))
    return best_idx, best_d


def warm_up(dims=(2, 3), dtypes=(torch.float32, torch.float64), kernels=None, n_features: int = 0) -> float:
    """Compile (or load from the disk cache) the kernels for ``dtypes``; returns the seconds it took.

    Every specialisation of the generic loop is reached: open and periodic worlds, self and
    external queries, a field of view (runtime flags of one compiled function per dtype).
    With ``kernels`` (a run's channels), the loop unrolled for their shape is compiled too.
    """
    import time

    t0 = time.perf_counter()
    generic = [Kernel("flat", radius=1.0, fov=270.0), Kernel("gaussian", bandwidth=0.5, radius=1.0)]
    for dtype in dtypes:
        for dim in dims:
            pos = torch.rand(8, dim, dtype=dtype) * 3
            period = torch.full((dim,), 3.0, dtype=dtype)
            reduce_numba(pos, pos, generic, period=period, unrolled=False)
            reduce_numba(pos, pos, generic, query_pos=pos[:2], query_vel=pos[:2], unrolled=False)
            nearest_cells(pos, radius=1.0, period=period)
            if kernels:
                feats = torch.zeros(8, n_features, dtype=dtype) if n_features else None
                reduce_numba(pos, pos, list(kernels), period=period, features=feats, unrolled=True)
    return time.perf_counter() - t0


__all__ = ["DEFAULT_BLOCK", "nearest_cells", "numba_available", "reduce_numba", "warm_up"]
