"""Mean shift on a cell list of the data: the climb's sums and the nearest-centre labels, in numba.

The climb. scikit-learn's flat kernel needs, for each seed y, the points with
|y - x_j| <= h. The data is sorted once by cell (cells of side h / ``SUBCELLS``
over the data's bounding box, a counting sort; the first axis runs fastest, so a
row of cells along it is one contiguous strip of the sorted data). A seed walks
only the rows of cells that come within h of it, and in each row only the cells
within the half-chord sqrt(h^2 - (distance to the row)^2) along the first axis:
the candidates cover ~(1 + 2 / SUBCELLS)^D of the ball's bounding cube instead
of the 3^D cells of side h, and nothing of size N x neighbors is ever held.

Exactness. Every candidate is decided by the exact difference test of
scikit-learn's trees, d^2 = sum_k (y_k - x_jk)^2 in float64 (float32 data is
widened exactly first), d^2 <= h^2; the cell ranges are computed with a margin
above float64 rounding, and cell ids are monotone in the coordinate, so no pair
within h is ever missed. The neighbor sets are therefore those of
``flock.neighbors.gemm.reduce_gemm`` (which decides its edge pairs by the same
test) in float32 as in float64, ties at d == h included. Sums are accumulated
in float64.

    symbol              variable
    h                   ``bandwidth``
    x_j                 ``table`` (the cell-sorted data)
    y_i                 ``queries`` (the seeds still moving)
    S_i = sum_j w_ij    last column of the sums
    sum_j w_ij x_j      first D columns

The labels. Each point's nearest centre by the same float64 difference test,
over a grid of the centres (cells of the bandwidth: centres are at least that
far apart, so a cell holds few), searched in rings of cells outward until no
unvisited cell can hold a nearer centre. Points whose two nearest centres are
within float rounding of a tie, or (for ``cluster_all=False``) whose distance is
within rounding of the bandwidth, are handed to scikit-learn's
``NearestNeighbors``, which ``MeanShift`` used for every point before: so the
labels and orphans are exactly the ones it gave, in time linear in N.

Compiled on first use and cached on disk (``cache=True``), parallel over queries
(numba's threads). CPU only; without numba nothing here is used
(``cells_available``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

try:  # the module imports without numba; MeanShift then keeps its torch paths
    import numba
    from numba import njit, prange

    from .neighbors.numba_grid import _bin_points, _counting_sort     # the engine's binning and stable sort
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

# cells of side h / SUBCELLS: 2 cuts the candidates of a 2-D seed from 9 h^2 to ~5 h^2
# (disc-restricted rows), for more, shorter strips
SUBCELLS = 2
# at most this many cells per data point (and in all), widened by fit_cells beyond
MAX_CELLS_PER_POINT = 4
MAX_CELLS = 1 << 24
# seeds per parallel work item, taken in cell order so a block shares candidates in cache
BLOCK = 16
# a call with fewer (estimated) candidate pairs runs on one thread: waking numba's
# workers costs ~20 ms a call on this loaded 2-core box (1.4 ms single-threaded for
# 232 bin seeds over 20,000 points, 18 ms on two threads at load 6.8)
PARALLEL_PAIRS = 20_000_000
# kernel ids of the compiled loop
_KINDS = {"flat": 0, "triangular": 1}
CELL_KERNELS = tuple(_KINDS)
# relative float64 margin on every cell range and tie test (distances are sums of D
# rounded squares: relative error below (D + 2) eps)
_REL = 64 * np.finfo(np.float64).eps


def cells_available() -> bool:
    """True when numba imports (the cell-list climb and labels need it)."""
    return numba is not None


# ------------------------------------------------------------------ compiled loops

if numba is not None:

    @njit(cache=True)
    def _sort_by_cell(points, ids, n_total):  # pragma: no cover - compiled
        """(table [P, D] float64 = points in stable cell order, order [P], ptr [n_total + 1])."""
        n_pts, dim = points.shape
        order, ptr = _counting_sort(ids, n_total)
        table = np.empty((n_pts, dim), np.float64)
        for s in range(n_pts):
            for a in range(dim):
                table[s, a] = points[order[s], a]
        return table, order, ptr

    @njit(cache=True)
    def _axis_range(q, half, origin, width, n):  # pragma: no cover - compiled
        """Cells [lo, hi] along one axis that meet [q - half, q + half] (grown by the margin)."""
        grow = half + _REL * (abs(q) + abs(origin) + half + width)
        lo = int(math.floor((q - grow - origin) / width))
        hi = int(math.floor((q + grow - origin) / width))
        return max(lo, 0), min(hi, n - 1)

    @njit(cache=True)
    def _gap(q, c, origin, width):  # pragma: no cover - compiled
        """Distance from q to cell c's interval along one axis, shrunk by the margin (never above it)."""
        left = origin + c * width
        right = left + width
        g = max(left - q, q - right, 0.0)
        return max(g - _REL * (abs(q) + abs(origin) + width + abs(left)), 0.0)

    @njit(cache=True, inline="always")
    def _strip(table, j0, j1, y, h, kind, acc):  # pragma: no cover - compiled
        """Add the weights and weighted positions of table[j0:j1] within h of y to acc [D + 1].

        The test is the exact one, d^2 = sum_k (x_k - y_k)^2 <= h^2 in float64 (table is
        float64); D = 2 and 3 are written out (registers, ~3x faster than the loop).
        """
        dim = y.shape[0]
        h2 = h * h
        if dim == 2:
            y0, y1 = y[0], y[1]
            s0 = s1 = n = 0.0
            for j in range(j0, j1):
                x0, x1 = table[j, 0], table[j, 1]
                e0, e1 = x0 - y0, x1 - y1
                d2 = e0 * e0 + e1 * e1
                if d2 <= h2:
                    w = 1.0 if kind == 0 else 1.0 - math.sqrt(d2) / h
                    s0 += w * x0
                    s1 += w * x1
                    n += w
            acc[0] += s0
            acc[1] += s1
            acc[2] += n
        elif dim == 3:
            y0, y1, y2 = y[0], y[1], y[2]
            s0 = s1 = s2 = n = 0.0
            for j in range(j0, j1):
                x0, x1, x2 = table[j, 0], table[j, 1], table[j, 2]
                e0, e1, e2 = x0 - y0, x1 - y1, x2 - y2
                d2 = e0 * e0 + e1 * e1 + e2 * e2
                if d2 <= h2:
                    w = 1.0 if kind == 0 else 1.0 - math.sqrt(d2) / h
                    s0 += w * x0
                    s1 += w * x1
                    s2 += w * x2
                    n += w
            acc[0] += s0
            acc[1] += s1
            acc[2] += s2
            acc[3] += n
        else:
            for j in range(j0, j1):
                d2 = 0.0
                for a in range(dim):
                    e = table[j, a] - y[a]
                    d2 += e * e
                if d2 <= h2:
                    w = 1.0 if kind == 0 else 1.0 - math.sqrt(d2) / h
                    for a in range(dim):
                        acc[a] += w * table[j, a]
                    acc[dim] += w

    @njit(cache=True)
    def _sums_at(table, ptr, n_cells, origin, width, y, h, kind, acc, lo, hi, cur, gap2):  # pragma: no cover
        """Kernel sums at y ([D] float64) over the cell-sorted data, into acc [D + 1] (zeroed here).

        Walks the rows of cells (axes 1..D-1) within h of y, pruning by the squared gaps
        (gap2[a]: over axes >= a), and in each row the cells along axis 0 within the
        half-chord; lo, hi, cur [D] int64 and gap2 [D + 1] float64 are scratch.
        """
        dim = y.shape[0]
        h2 = h * h
        for a in range(dim + 1):
            acc[a] = 0.0
        for a in range(1, dim):
            lo[a], hi[a] = _axis_range(y[a], h, origin[a], width, n_cells[a])
            if lo[a] > hi[a]:
                return
            cur[a] = lo[a]
        gap2[dim] = 0.0
        while True:
            for a in range(dim - 1, 0, -1):
                g = _gap(y[a], cur[a], origin[a], width)
                gap2[a] = gap2[a + 1] + g * g
            if gap2[1] <= h2 * (1.0 + _REL):
                half = math.sqrt(max(h2 - gap2[1], 0.0))
                c0, c1 = _axis_range(y[0], half, origin[0], width, n_cells[0])
                if c0 <= c1:
                    base = 0
                    stride = n_cells[0]
                    for a in range(1, dim):
                        base += cur[a] * stride
                        stride *= n_cells[a]
                    _strip(table, ptr[base + c0], ptr[base + c1 + 1], y, h, kind, acc)
            a = 1
            while a < dim:
                cur[a] += 1
                if cur[a] <= hi[a]:
                    break
                cur[a] = lo[a]
                a += 1
            if a >= dim:
                return

    @njit(cache=True)
    def _scratch(dim):  # pragma: no cover - compiled
        """Per-thread scratch of ``_sums_at``: y [D], acc [D + 1], lo, hi, cur [D] int64, gap2 [D + 1]."""
        return (np.empty(dim, np.float64), np.empty(dim + 1, np.float64), np.empty(dim, np.int64),
                np.empty(dim, np.int64), np.empty(dim, np.int64), np.empty(dim + 1, np.float64))

    @njit(cache=True, parallel=True)
    def _cell_sums(table, ptr, n_cells, origin, width, queries, order, h, kind, out):  # pragma: no cover
        """Kernel sums of every query over the cell-sorted data, into ``out`` [M, D + 1] float64.

        table: [N, D] float64 data in cell order; ptr: [cells + 1]; n_cells: [D]; origin: [D]
        float64; queries: [M, D]; order: [M] the queries in cell order; h: bandwidth;
        kind: 0 flat (w = 1 for d <= h), 1 triangular (w = 1 - d / h for d <= h).
        """
        n_query, dim = queries.shape
        n_blocks = (n_query + BLOCK - 1) // BLOCK
        for b in prange(n_blocks):
            y, acc, lo, hi, cur, gap2 = _scratch(dim)
            for t in range(b * BLOCK, min(n_query, (b + 1) * BLOCK)):
                i = order[t]
                for a in range(dim):
                    y[a] = np.float64(queries[i, a])
                _sums_at(table, ptr, n_cells, origin, width, y, h, kind, acc, lo, hi, cur, gap2)
                for a in range(dim + 1):
                    out[i, a] = acc[a]

    @njit(cache=True, parallel=True)
    def _climb_seeds(table, ptr, n_cells, origin, width, order, h, kind, stop, max_iter, single, budget,
                     pos, intensity, passes, done):  # pragma: no cover - compiled
        """scikit-learn's ``_mean_shift_single_seed`` for the seeds ``order`` lists, in parallel.

        A seed moves to the weighted mean of the data within h (``_sums_at``) until it
        moves at most ``stop`` (float64 norm) or has made ``max_iter`` moves, or is
        dropped when its window is empty; each seed evaluates at most ``budget`` windows
        in this call and resumes from its state in the next. ``single``: positions are
        rounded to float32 after every move (float32 data: scikit-learn's float32 means).
        State, read and written: pos [S, D] float64 positions, intensity [S] (weight sum
        at the position before the last move; 0: dropped), passes [S] (windows evaluated;
        n_iter = passes - 1), done [S] uint8.
        """
        n_seed = order.shape[0]
        dim = pos.shape[1]
        n_blocks = (n_seed + BLOCK - 1) // BLOCK
        for b in prange(n_blocks):
            y, acc, lo, hi, cur, gap2 = _scratch(dim)
            new = np.empty(dim, np.float64)
            for t in range(b * BLOCK, min(n_seed, (b + 1) * BLOCK)):
                i = order[t]
                for a in range(dim):
                    y[a] = pos[i, a]
                p = passes[i]
                for _ in range(budget):
                    _sums_at(table, ptr, n_cells, origin, width, y, h, kind, acc, lo, hi, cur, gap2)
                    count = acc[dim]
                    p += 1
                    if not count > 0:
                        intensity[i] = 0.0
                        done[i] = 1
                        break
                    shift2 = 0.0
                    for a in range(dim):
                        m = acc[a] / count
                        if single:
                            m = np.float64(np.float32(m))
                        e = m - y[a]
                        shift2 += e * e
                        new[a] = m
                    for a in range(dim):
                        y[a] = new[a]
                    intensity[i] = count
                    if math.sqrt(shift2) <= stop or p - 1 >= max_iter:
                        done[i] = 1
                        break
                for a in range(dim):
                    pos[i, a] = y[a]
                passes[i] = p

    @njit(cache=True, parallel=True)
    def _nearest_centres(points, centres, cptr, corder, n_cells, origin, width, tie, out_idx, out_d2, out_d2b):  # pragma: no cover
        """Nearest centre of every point by rings of centre cells, and whether a second is as near.

        centres: [C, D] float64 in cell order (``corder`` maps back to the caller's
        index); cptr: [cells + 1]. Rings of cells around the point's cell (clamped into
        the grid) are visited until every unvisited cell is farther than ``tie`` times
        the best d^2 (or none is left), so a second centre within that factor is seen.
        Ties in d^2 keep the lowest caller index. Writes out_idx [P] (caller's index),
        out_d2 [P] (best d^2) and out_d2b [P] (second best among those visited, inf if none).
        """
        n_pts, dim = points.shape
        for p in prange(n_pts):
            y = np.empty(dim, np.float64)
            cell = np.empty(dim, np.int64)
            cur = np.empty(dim, np.int64)
            for a in range(dim):
                y[a] = np.float64(points[p, a])
                c = int(math.floor((y[a] - origin[a]) / width))
                cell[a] = min(max(c, 0), n_cells[a] - 1)
            best = np.inf
            second = np.inf
            bi = -1
            ring = 0
            while True:
                # the cells at Chebyshev distance exactly ``ring`` from the point's cell
                for a in range(dim):
                    cur[a] = cell[a] - ring
                while True:
                    on_shell = False
                    inside = True
                    for a in range(dim):
                        if cur[a] == cell[a] - ring or cur[a] == cell[a] + ring:
                            on_shell = True
                        if cur[a] < 0 or cur[a] >= n_cells[a]:
                            inside = False
                    if on_shell and inside:
                        cid = 0
                        stride = 1
                        for a in range(dim):
                            cid += cur[a] * stride
                            stride *= n_cells[a]
                        for j in range(cptr[cid], cptr[cid + 1]):
                            d2 = 0.0
                            for a in range(dim):
                                e = y[a] - centres[j, a]
                                d2 += e * e
                            k = corder[j]
                            if d2 < best or (d2 == best and k < bi):
                                second = best
                                best = d2
                                bi = k
                            elif d2 < second:
                                second = d2
                    a = 0
                    while a < dim:
                        cur[a] += 1
                        if cur[a] <= cell[a] + ring:
                            break
                        cur[a] = cell[a] - ring
                        a += 1
                    if a >= dim:
                        break
                # an unvisited cell lies beyond the visited box on some axis, on a side where
                # cells remain: its distance is at least that side's gap
                bound = np.inf
                for a in range(dim):
                    if cell[a] - ring - 1 >= 0:
                        left = origin[a] + (cell[a] - ring) * width
                        bound = min(bound, max(y[a] - left, 0.0))
                    if cell[a] + ring + 1 <= n_cells[a] - 1:
                        right = origin[a] + (cell[a] + ring + 1) * width
                        bound = min(bound, max(right - y[a], 0.0))
                if bound == np.inf:
                    break
                bound *= 1.0 - _REL
                if best * tie < bound * bound:
                    break
                ring += 1
            out_idx[p] = bi
            out_d2[p] = best
            out_d2b[p] = second


# ------------------------------------------------------------------ host side

def _bin(points: np.ndarray, origin: np.ndarray, width: float, n_cells: np.ndarray) -> np.ndarray:
    """[P] int64 linear cell ids (first axis fastest), coordinates clamped into the grid."""
    size = np.full(points.shape[1], width, dtype=np.float64)
    return _bin_points(points, origin, size, n_cells, False)


def _grid(points: np.ndarray, width: float, max_cells: int):
    """(origin [D] float64, cell width, cells per axis [D] int64) over the points' bounding box."""
    from .neighbors.cells import fit_cells

    lo = points.min(0).astype(np.float64)
    hi = points.max(0).astype(np.float64)
    width, n_cells = fit_cells(width, None, (hi - lo).tolist(), max_cells)
    return lo, float(width), np.asarray(n_cells, dtype=np.int64)


@contextmanager
def _numba_threads(threads: int | None, pairs: float):
    """numba's threads for one call: ``threads``, or by the work (``PARALLEL_PAIRS``)."""
    if threads is None:
        from .threads import free_cores

        threads = free_cores() if pairs >= PARALLEL_PAIRS else 1
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


class CellSums:
    """The climb's kernel sums over a cell list of the data, with ``_Sums``' call signature.

    ``__call__(points, queries)`` returns [M, D + 1] float64: sum_j w_ij x_j and
    sum_j w_ij (module text). The cell list of ``points`` is built on the first call
    and reused while the same tensor is passed (the climb's data never moves).

    Args:
        kernel: the flat (d <= h) or triangular ``Kernel``; its radius is h.
        subcells: cells per bandwidth along each axis.
        threads: numba threads per call; None: one below ``PARALLEL_PAIRS`` estimated
            candidate pairs, else the free cores (``flock.threads.free_cores``).
    """

    def __init__(self, kernel, subcells: int = SUBCELLS, threads: int | None = None):
        if kernel.kind not in _KINDS:
            raise ValueError(f"cells backend: kernel {kernel.kind!r} is not one of {CELL_KERNELS}")
        self.kernel = kernel
        self.backend = "cells"
        self.h = float(kernel.radius)
        self.subcells = int(subcells)
        self.threads = threads
        self._cells = None

    def _build(self, points: torch.Tensor):
        x = points.numpy()
        max_cells = min(MAX_CELLS, max(1024, MAX_CELLS_PER_POINT * x.shape[0]))
        origin, width, n_cells = _grid(x, self.h / self.subcells, max_cells)
        ids = _bin(x, origin, width, n_cells)
        table, _, ptr = _sort_by_cell(x, ids, int(np.prod(n_cells)))
        self._cells = (points, table, ptr, n_cells, origin, width)

    def __call__(self, points: torch.Tensor, queries: torch.Tensor, counts=None) -> torch.Tensor:
        if counts is not None:
            raise ValueError("cells backend: weighted points (blurring mode) are not supported; "
                             "use backend='dense' or 'grid'")
        if self._cells is None or self._cells[0] is not points:
            self._build(points)
        _, table, ptr, n_cells, origin, width = self._cells
        q = queries.numpy()
        out = np.empty((q.shape[0], q.shape[1] + 1), dtype=np.float64)
        if q.shape[0]:
            qid = _bin(q, origin, width, n_cells)
            order = np.argsort(qid, kind="stable")
            # candidates ~ queries x points in the (2 subcells + 1)^D cells around each query's cell
            around = (2 * self.subcells + 1) ** q.shape[1]
            pairs = float(np.diff(ptr)[qid].sum()) * around
            with _numba_threads(self.threads, pairs):
                _cell_sums(table, ptr, n_cells, origin, width, q, order, self.h, _KINDS[self.kernel.kind], out)
        return torch.from_numpy(out)


def climb(points: torch.Tensor, seeds: torch.Tensor, kernel, stop: float, max_iter: int,
          subcells: int = SUBCELLS, threads: int | None = None, progress=None):
    """Standard mean shift of ``seeds`` over ``points`` on the cell list.

    Args:
        points: [N, D] float32/float64 CPU data. seeds: [S, D] starting positions, same dtype.
        kernel: flat or triangular ``Kernel`` (radius h). stop: a seed stops once it moves
            at most this far (data units). max_iter: most moves per seed.
        subcells, threads: as ``CellSums``.
        progress: None (each seed climbs to its end in one compiled call), or
            ``f(iteration, seeds_moving)``, called after every iteration (one call each).

    Returns:
        (centres [C, D] points' dtype, intensity [C], n_iter): the surviving seeds' final
        positions, their weight sums before the last move, and the most moves any seed
        completed (scikit-learn's ``n_iter_``), as ``flock.meanshift._climb`` returns them.
    """
    sums = CellSums(kernel, subcells, threads)
    sums._build(points)
    _, table, ptr, n_cells, origin, width = sums._cells
    q = seeds.numpy()
    n_seed, dim = q.shape
    pos = q.astype(np.float64)
    intensity = np.zeros(n_seed, np.float64)
    passes = np.zeros(n_seed, np.int64)
    done = np.zeros(n_seed, np.uint8)
    if n_seed:
        qid = _bin(q, origin, width, n_cells)
        order = np.argsort(qid, kind="stable")
        pairs = float(np.diff(ptr)[qid].sum()) * (2 * sums.subcells + 1) ** dim * 8
        budget = max_iter + 1 if progress is None else 1
        it = 0
        with _numba_threads(threads, pairs):
            while order.size:
                _climb_seeds(table, ptr, n_cells, origin, width, order, sums.h, _KINDS[kernel.kind], float(stop),
                             int(max_iter), q.dtype == np.float32, budget, pos, intensity, passes, done)
                order = order[done[order] == 0]
                if progress is not None:
                    progress(it, int(order.size))
                it += 1
    alive = intensity > 0
    n_iter = int(passes.max()) - 1 if n_seed else 0
    dtype = points.dtype
    return (torch.from_numpy(pos[alive]).to(dtype), torch.from_numpy(intensity[alive]).to(dtype),
            max(n_iter, 0))


def climb_sums(points: torch.Tensor, queries: torch.Tensor, kernel, subcells: int = SUBCELLS) -> torch.Tensor:
    """[M, D + 1] float64 kernel sums of ``queries`` over ``points`` ([N, D] CPU) by the cell list."""
    return CellSums(kernel, subcells)(points, queries)


def label_points(x: torch.Tensor, centres: torch.Tensor, cell: float | None = None, cut: float | None = None,
                 fallback=None, threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of each point on a grid of the centres; the same labels as ``fallback``.

    Args:
        x: [N, D] float32/float64 CPU points. centres: [C, D] (C >= 1), same dtype.
        cell: cell side of the centre grid, data units (the bandwidth: centres are at
            least that far apart); None: from the centres' spacing.
        cut: the distance ``cluster_all=False`` cuts at, or None; points within
            rounding of it are decided by ``fallback`` too.
        fallback: ``f(x_rows, centres) -> (index, distance)``, the reference labelling
            that points at a near-tie (or near ``cut``) are handed to; None: ties keep
            the lowest centre index.

    Returns:
        (index [N] int64, distance [N] float64).
    """
    pts = x.numpy()
    cen = centres.numpy().astype(np.float64)
    n_c, dim = cen.shape
    extent = float((cen.max(0) - cen.min(0)).max())
    if cell is None or not cell > 0:
        cell = extent / max(1.0, n_c ** (1.0 / dim))
    origin, width, n_cells = _grid(cen, max(float(cell), extent * 1e-6, 1e-300), max(64, 4 * n_c))
    ctable, corder, cptr = _sort_by_cell(cen, _bin(cen, origin, width, n_cells), int(np.prod(n_cells)))
    idx = np.empty(pts.shape[0], np.int64)
    d2 = np.empty(pts.shape[0], np.float64)
    d2b = np.empty(pts.shape[0], np.float64)
    # a second centre within this factor of the best d^2 is a near-tie: far above float64
    # rounding of d^2 and of a float32 reference's own (its trees may round d to float32)
    tie = 1.0 + 1e-5
    with _numba_threads(threads, 16.0 * pts.shape[0]):
        _nearest_centres(pts, ctable, cptr, corder, n_cells, origin, width, tie, idx, d2, d2b)
    dist = np.sqrt(d2)
    if fallback is not None:
        near = d2b <= d2 * tie
        if cut is not None:
            near |= np.abs(dist - cut) <= (tie - 1.0) * cut
        rows = np.flatnonzero(near)
        if rows.size:
            ri, rd = fallback(x[torch.from_numpy(rows)], centres)
            idx[rows] = ri.numpy()
            dist[rows] = rd.numpy()
    return torch.from_numpy(idx), torch.from_numpy(dist)


__all__ = ["CELL_KERNELS", "SUBCELLS", "CellSums", "cells_available", "climb", "climb_sums", "label_points"]
