"""Mean shift clustering as a scikit-learn estimator, vectorised over seeds.

Mean shift moves points uphill on a kernel density estimate of the data: each
point goes to the kernel-weighted mean of the data around it, until it stops
moving. The modes it stops at are the cluster centres.

``MeanShift`` is a scikit-learn estimator (``ClusterMixin``, ``BaseEstimator``;
scikit-learn's own ``test_mean_shift.py`` and ``check_estimator`` pass, see
tests/test_sklearn_compat.py) with ``sklearn.cluster.MeanShift``'s parameters,
attributes and post-processing; ``mode="standard"``, ``kernel="flat"`` give its
labels, ties at exactly the bandwidth included (``d <= h``, decided by the exact
difference test in float64, as its trees do, in float32 as in float64). Where
scikit-learn climbs seed by seed with a KD tree, here
every seed moves at once: one call of the one neighbor kernel
(``flock.neighbors.reduce_neighbors``, queries = the seeds) per iteration,
converged seeds frozen, seeds that sit on exactly the same point computed once.

    symbol               variable
    x_j                  X (the data) / points (blurring)
    y_i                  the seeds' positions (``pos``)
    w(|y_i - x_j|)       ``Kernel`` of kind ``kernel`` and bandwidth h
    S_i = sum_j w        the seed's weight sum ("intensity")
    m(y_i)               sum_j w x_j / S_i, the next position

Two modes:

- ``standard`` (scikit-learn): seeds (every point, bins, or given ones) climb
  over the fixed data. A seed stops once it moves at most ``tol * bandwidth``
  (scikit-learn's ``stop_thresh = 1e-3 * bandwidth``) or after ``max_iter``
  iterations; a seed with no point within the kernel's support is dropped.
- ``blurring`` (the fastai lessons): the data itself moves, every point to the
  weighted mean of the current points; the points collapse onto the modes. It
  stops when no point moves more than ``tol * bandwidth``, or when no point's
  move differs from its previous move by more than that: the clusters have
  collapsed and only drift as rigid bodies, the phase in which Gaussian blurring
  mean shift would go on to merge them all (Carreira-Perpinan 2006 stops there
  too, by the entropy of the moves).

Then, as scikit-learn: centres sorted by intensity (for the flat kernel, the
number of points within the bandwidth), near-duplicates within ``bandwidth``
of a more intense centre removed, and each point labelled with its nearest
centre (its final position's nearest centre in blurring mode); with
``cluster_all=False`` points farther than ``bandwidth`` from every centre get -1.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import check_array, check_is_fitted, check_random_state, validate_data

from .kernels import Kernel
from .neighbors import reduce_neighbors
from .neighbors.dense import DEFAULT_MEMORY_BUDGET
from .neighbors.fused import fused_mean_shift_step, reduce_fused
from .neighbors.gemm import reduce_gemm, zorder

from .meanshift_options import BACKENDS, KERNELS, MODES  # noqa: E402  (declared without torch for the CLI)

# The Gaussian is cut at this many bandwidths where a finite support is needed
# (the grid backend, or spatial batching); exp(-4.5) = 1.1% of the peak weight.
GAUSSIAN_TRUNCATE = 3.0

# Spatial batching (dense backend, finite support): queries sorted along a
# Z-order curve of support-sized cells, cut into batches of _BATCH_ROWS (fewer,
# m // 16 but at least 16, when there are few queries, e.g. bin seeds), each
# reduced over only the data inside its bounding box grown by the support. At
# or below _BATCH_MIN_PAIRS query-data pairs one plain call is cheaper. Chosen on
# the lesson's blobs, bandwidth 2.5, whole fits (2 cores, median of 3): at 20,000
# points batches of 256 take ~1.0 s, 128 ~1.2 s, 64 ~2.2 s; with bin seeding
# (~230 seeds) one plain call (4.6 M pairs) takes 0.12 s where 16-seed batches
# take 0.16 s; at 100,000 points with bin seeding batches of 256 take 0.51 s,
# 128 0.69 s.
_BATCH_ROWS = 256
_BATCH_MIN_PAIRS = 1 << 23
# backend="auto" climbs on the cell list (cells_pay) within these limits, and labels on the
# centre grid from _GRID_LABELS points (below, scikit-learn's NearestNeighbors is as fast)
CELLS_MAX_DIM = 3
CELLS_MIN_POINTS = 2_000
CELLS_MIN_EXTENT = 8.0
_GRID_LABELS = 20_000
# scikit-learn's NearestNeighbors (n_neighbors=5) measures at most this many points by brute force
_SKLEARN_BRUTE_MAX = 11
# float32 data wider than this many supports is always batched (see _Sums._wide)
_WIDE_FLOAT32 = 64


# scikit-learn's, so that ``except NotFittedError`` and its checks work (kept importable here)
NotFittedError = NotFittedError


# --------------------------------------------------------------------- inputs

@contextmanager
def _cpu_threads(n_jobs):
    """torch's CPU threads set to ``n_jobs`` (joblib's meaning: -1 all cores) inside; None: untouched."""
    if n_jobs is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(effective_n_jobs(n_jobs))))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _resolve_device(device, data) -> torch.device:
    if device is None:
        return data.device if isinstance(data, torch.Tensor) else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"MeanShift: device: expected a torch device such as 'cpu' or 'cuda', "
                         f"got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"MeanShift: device: {device!r} requested but CUDA is not available; "
                         "use device='cpu'")
    return dev


def _as_points(X, name: str, device=None) -> tuple[torch.Tensor, dict]:
    """``X`` as a finite float [N, D] tensor on ``device``, plus how to hand results back.

    Numpy arrays and lists come back as numpy (lists as float64, like
    scikit-learn), tensors as tensors on their own device; float32 and float64
    are kept, other numeric types become float64 (half precision float32).
    """
    if isinstance(X, torch.Tensor):
        back = {"kind": "torch", "device": X.device}
        t = X.detach()
        if t.is_complex():
            raise ValueError(f"{name}: expected real numbers, got a {t.dtype} tensor")
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.to(torch.float32)
        elif t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float64)
    else:
        back = {"kind": "numpy"}
        try:
            a = np.asarray(X)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name}: could not make a 2-D numeric array: {exc}") from None
        if a.dtype.kind in "OUSV":
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: expected numbers, got non-numeric values ({exc})") from None
        if a.dtype.kind == "c":
            raise ValueError(f"{name}: expected real numbers, got complex values (dtype {a.dtype})")
        if a.dtype == np.float16:
            a = a.astype(np.float32)
        elif a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float64)
        t = _numpy_to_torch(a, "cpu")
    if t.ndim != 2:
        shape = tuple(t.shape)
        hint = (" (use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample)"
                if t.ndim == 1 else "")
        raise ValueError(f"{name}: expected a 2-D array of shape (n_samples, n_features), "
                         f"got a {t.ndim}-D array of shape {shape}{hint}")
    if t.shape[0] < 1:
        raise ValueError(f"{name}: found 0 samples (shape {tuple(t.shape)}); at least 1 is required")
    if t.shape[1] < 1:
        raise ValueError(f"{name}: found 0 features (shape {tuple(t.shape)}); at least 1 is required")
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        row, col = (int(v) for v in bad.nonzero()[0])
        value = float(t[row, col])
        what = "NaN" if math.isnan(value) else "infinity"
        raise ValueError(f"{name} contains {what} (first at row {row}, column {col}: {value}); "
                         "drop or impute non-finite values first")
    dev = torch.device("cpu") if device is None else device
    back["dtype"] = t.dtype
    return t.to(dev).contiguous(), back


def _numpy_to_torch(a: np.ndarray, device) -> torch.Tensor:
    """A C-contiguous numpy array as a tensor on ``device`` (read-only arrays are copied)."""
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def _hand_back(t: torch.Tensor, back: dict):
    """A result tensor as the caller's kind: numpy, or a tensor on the input's device."""
    if back["kind"] == "torch":
        return t.to(back["device"])
    return t.cpu().numpy()


# ------------------------------------------------------------------ bandwidth

@validate_params(
    {"X": ["array-like", torch.Tensor], "quantile": [Interval(Real, 0, 1, closed="both")],
     "n_samples": [Interval(Integral, 1, None, closed="left"), None],
     "random_state": ["random_state"], "n_jobs": [Integral, None], "device": [str, torch.device, None]},
    prefer_skip_nested_validation=True)
def estimate_bandwidth(X, quantile=0.3, n_samples=None, random_state=0, n_jobs=None, *, device=None):
    """Bandwidth for mean shift from the data, as ``sklearn.cluster.estimate_bandwidth``.

    The mean over points of the distance to their k-th nearest neighbour (the
    point itself counted as the first), k = max(1, int(n * quantile)); exact
    distances (differences, float64) in row chunks with torch, O(n^2) time,
    O(n) memory.

    Args:
        X: [N, D] array-like of points (numpy, torch, pandas or nested lists).
        quantile: in [0, 1]; 0.5 uses the median distance to the other points.
        n_samples: use this many points drawn without replacement (numpy
            ``RandomState(random_state).permutation``, as scikit-learn), or all.
        random_state: int, None or ``numpy.random.RandomState`` for the subsample.
        n_jobs: CPU threads for torch while computing (None: as set).
        device: where to compute (default: X's device, or cpu).

    Returns:
        The bandwidth as a ``numpy.float64`` (what scikit-learn returns, for
        any input; it is a ``float``): 0 when every point has k - 1 duplicates.
    """
    dev = _resolve_device(device, X)
    if isinstance(X, torch.Tensor):
        x, _ = _as_points(X, "X", dev)
    else:
        x = _numpy_to_torch(check_array(X, order="C"), dev)
    if n_samples is not None:
        idx = check_random_state(random_state).permutation(x.shape[0])[:n_samples]
        x = x[torch.as_tensor(idx, device=dev)]
    with _cpu_threads(n_jobs):
        return np.float64(_bandwidth_of(x, quantile))


def _bandwidth_of(x: torch.Tensor, quantile: float) -> float:
    """Mean distance to the k-th nearest point (k = max(1, int(n quantile))) of x ([N, D]), in float64."""
    x = x.to(torch.float64)
    n = x.shape[0]
    k = max(1, int(n * quantile))
    rows = max(1, int((64 * 2**20) // (max(n, 1) * x.element_size() * 3)))
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, n, rows):
        d = torch.cdist(x[start:start + rows], x, compute_mode="donot_use_mm_for_euclid_dist")
        total += torch.kthvalue(d, k, dim=1).values.sum()
    return float(total) / n


# ------------------------------------------------------------------ backends

def _kernel_for(kind: str, bandwidth: float, backend: str) -> Kernel:
    """The ``Kernel`` of ``kind`` at ``bandwidth`` for ``backend`` (Gaussian cut at 3 h off fused/dense)."""
    if kind == "flat":
        return Kernel("flat", radius=bandwidth, exclude_self=False)
    if kind == "triangular":
        return Kernel("triangular", radius=bandwidth, exclude_self=False)
    radius = None if backend in ("fused", "dense") else GAUSSIAN_TRUNCATE * bandwidth
    return Kernel("gaussian", bandwidth=bandwidth, radius=radius, exclude_self=False)


def choose_meanshift_backend(kernel: str, n_points: int, bandwidth: float, extent: float,
                             device: torch.device | str) -> str:
    """The backend ``backend="auto"`` resolves to; it never changes the kernel.

    Args:
        kernel: "flat", "triangular" or "gaussian".
        n_points: number of data points N.
        bandwidth: kernel bandwidth h, data units (the support of flat / triangular).
        extent: largest side of the data's bounding box, data units.
        device: where the computation runs.

    Seconds of one step with every point a seed over every point, on the
    lesson's blobs (extent ~75), the 2-core CPU of issue 5, torch 2.13 (fastest
    of 3 after a warm-up at 2,000 and 20,000 points, one run at 100,000):

        python tools/compare_sklearn.py --backend-steps --sizes 2000,20000,100000

        N        h     flat: dense  grid  plain   gaussian: fused  plain  dense(3h cut)  grid(3h cut)
        2,000    0.25        0.004 0.005 0.004            0.005    0.035  0.018          0.006
        2,000    2.5         0.003 0.009 0.004            0.005    0.020  0.017          0.013
        2,000    10          0.003 0.012 0.004            0.004    0.006  0.015          0.046
        20,000   0.25        0.048 0.022 0.96             0.36     3.2    0.13           0.075
        20,000   2.5         0.071 0.42  0.95             0.36     2.4    0.26           0.96
        20,000   10          0.30  1.3   0.96             0.37     1.0    0.89           6.1
        100,000  0.25        0.58  0.26  -                9.3      -      1.4            1.7
        100,000  2.5         1.0   23    -                9.2      -      9.8            38
        100,000  10          3.2   31    -                9.2      -      23             117

    ("dense" is the estimator's spatially batched matrix-product calls,
    ``flock.neighbors.gemm.reduce_gemm``; "plain" one such call over all pairs,
    which is what ``backend="dense"`` does for the untruncated Gaussian.) So: the
    Gaussian runs fused, exact and 3-7x faster than dense over all pairs, with no
    N x N memory (for bandwidths under ~1/100 of the extent the 3 h-truncated
    Gaussian is faster still, but truncated: ask for it with ``backend="grid"``).
    Flat and triangular kernels run on the grid once the support is under 1/100
    of the extent and N >= 20,000, and on batched dense otherwise (timings vary
    by ~2x run to run on this shared machine; the choices hold across runs). On
    CUDA (not measured here) dense does 20,000 x 20,000 pairs in milliseconds,
    so the grid is kept for N >= 100,000.

    The flat kernel always runs dense (issue 15): only the matrix-product path
    decides pairs at the bandwidth's edge by the exact test and counts
    ``d <= h`` as scikit-learn does; the grid's flat kernel is the engine's
    (``d < h``, distances rounded in the data's dtype), so ``backend="grid"``
    may differ from scikit-learn for points at (or within rounding of) exactly
    the bandwidth.
    """
    if kernel == "gaussian":
        return "fused"
    if kernel == "flat":
        return "dense"
    dev = torch.device(device)
    small_support = extent > 0 and bandwidth < extent / 100
    min_n = 100_000 if dev.type == "cuda" else 20_000
    return "grid" if small_support and n_points >= min_n else "dense"


def cells_pay(kernel: str, dim: int, n_points: int, bandwidth: float, extent: float,
              device: torch.device | str) -> bool:
    """Whether ``backend="auto"`` climbs on the cell list (``flock.meanshift_cells``), by a measured rule.

    Args:
        kernel: the kernel's kind. dim: D. n_points: N. bandwidth: h, data units.
        extent: largest side of the data's bounding box, data units. device: where it runs.

    The cell list needs numba, the CPU and a finite kernel (flat or triangular); it
    pays where a seed's candidates (the cells within h) are a small share of the
    data: D <= ``CELLS_MAX_DIM``, extent >= ``CELLS_MIN_EXTENT`` h and N >=
    ``CELLS_MIN_POINTS`` (see the constants for the measurements).
    """
    if kernel not in ("flat", "triangular") or torch.device(device).type != "cpu":
        return False
    if dim > CELLS_MAX_DIM or n_points < CELLS_MIN_POINTS or not extent >= CELLS_MIN_EXTENT * bandwidth:
        return False
    from .meanshift_cells import cells_available

    return cells_available()


class _Sums:
    """Kernel sums of query points over (weighted) points through the one kernel.

    ``__call__(points, queries, counts)`` returns [M, D + 1]: sum_j w_ij c_j x_j
    and sum_j w_ij c_j, where c_j (``counts``, default 1) is how many agents
    sit at the distinct position x_j.
    """

    def __init__(self, kernel: Kernel, backend: str, memory_budget: int = DEFAULT_MEMORY_BUDGET):
        self.kernel = kernel
        self.backend = backend
        self.memory_budget = memory_budget
        self.batch = backend == "dense" and math.isfinite(kernel.support)
        self._sorted = None     # (points, first coordinates sorted, their order), reused while points stay
        self._extent = None     # (points, largest side of their bounding box)

    def reduce(self, points, queries, counts):
        if self.backend == "dense":
            return reduce_gemm(points, queries, self.kernel, counts, self.memory_budget)
        dim = points.shape[1]
        if counts is None:
            s = reduce_neighbors(points, points, [self.kernel], backend=self.backend,
                                 query_pos=queries, memory_budget=self.memory_budget)[0]
            return torch.cat([s[:, :dim], s[:, -1:]], 1)
        c = counts.to(points.dtype)[:, None]
        s = reduce_neighbors(points, points * c, [self.kernel], backend=self.backend,
                             query_pos=queries, features=c, memory_budget=self.memory_budget)[0]
        return s[:, dim:2 * dim + 1]

    def __call__(self, points, queries, counts=None):
        n, m = points.shape[0], queries.shape[0]
        if not self.batch or m < 2 or (n * m <= _BATCH_MIN_PAIRS and not self._wide(points)):
            return self.reduce(points, queries, counts)
        rows = _BATCH_ROWS if m >= 16 * _BATCH_ROWS else max(16, m // 16)
        return self._batched(points, queries, counts, min(rows, _BATCH_ROWS))

    def _wide(self, points) -> bool:
        """float32 data wider than _WIDE_FLOAT32 supports: batch even small problems.

        The matrix-product path rounds d^2 by ~eps (tile extent + farthest
        point)^2 and decides the pairs within that of the edge exactly; over all
        points of such data that is a large share of the pairs (``reduce_gemm``).
        """
        if points.dtype != torch.float32 or not math.isfinite(self.kernel.support):
            return False
        if self._extent is None or self._extent[0] is not points:
            self._extent = (points, float((points.max(0).values - points.min(0).values).max()))
        return self._extent[1] > _WIDE_FLOAT32 * self.kernel.support

    def _batched(self, points, queries, counts, batch_rows):
        """Queries in Z-order batches, each over the points in its grown bounding box."""
        lo = torch.minimum(points.min(0).values, queries.min(0).values)
        hi = torch.maximum(points.max(0).values, queries.max(0).values)
        scale = float(torch.maximum(lo.abs(), hi.abs()).max())
        # grown a little beyond the support so float rounding never drops a neighbor
        support = self.kernel.support * (1 + 1e-6) + 8 * torch.finfo(points.dtype).eps * scale
        order = torch.argsort(zorder(queries, lo, support))
        if self._sorted is None or self._sorted[0] is not points:
            self._sorted = (points, *torch.sort(points[:, 0]))
        _, sorted_pts, pidx = self._sorted
        out = torch.empty(queries.shape[0], points.shape[1] + 1, device=points.device,
                          dtype=points.dtype)
        for start in range(0, queries.shape[0], batch_rows):
            rows = order[start:start + batch_rows]
            q = queries[rows]
            qlo = q.min(0).values - support
            qhi = q.max(0).values + support
            a, b = torch.searchsorted(sorted_pts, torch.stack([qlo[0], qhi[0]])).tolist()
            cand = pidx[a:b]
            if points.shape[1] > 1:
                sub = points[cand, 1:]
                inside = ((sub >= qlo[1:]) & (sub <= qhi[1:])).all(1)
                cand = cand[inside]
            out[rows] = self.reduce(points[cand], q, None if counts is None else counts[cand])
        return out


# ------------------------------------------------------------------ the estimator

class MeanShift(ClusterMixin, BaseEstimator):
    """Mean shift clustering with a flat, triangular or Gaussian kernel, on torch.

    A scikit-learn estimator (``ClusterMixin``, ``BaseEstimator``): parameters,
    validation, exceptions, attributes and results follow
    ``sklearn.cluster.MeanShift``, which ``mode="standard"``, ``kernel="flat"``
    (the defaults) reproduce, in float32 as in float64; ``kernel``, ``tol``,
    ``mode``, ``backend`` and ``device`` are flock's. ``__init__`` only stores
    the parameters; ``fit`` validates them (scikit-learn's
    ``_parameter_constraints``).

    Args:
        bandwidth: kernel bandwidth h (flat / triangular: the radius; Gaussian:
            the standard deviation), data units, > 0; None estimates it with
            ``estimate_bandwidth(X)`` (quadratic time). An estimate of 0 (at
            least 30% duplicates, one sample, constant data) clusters the
            distinct points, as scikit-learn does.
        kernel: "flat" (scikit-learn's: the plain mean of the points with
            d <= h, decided by the exact difference test), "triangular" (weight
            max(0, 1 - d / h), the 2022 fastai notebook's) or "gaussian"
            (exp(-d^2 / 2 h^2), the fastai lesson's; untruncated on the fused and
            dense backends, cut at 3 h on the grid backend).
        max_iter: most iterations per seed (standard) or of the data (blurring).
        tol: a seed stops once it moves at most ``tol * bandwidth`` in an
            iteration (scikit-learn's fixed ``1e-3``); blurring stops when no
            point does, or when every point repeats its last move to within that.
        seeds: [S, D] array-like of initial seed positions (standard mode), or None.
        bin_seeding: seed from the centres of the bandwidth-sized bins that hold
            at least ``min_bin_freq`` points (scikit-learn's ``get_bin_seeds``)
            instead of from every point; ignored when ``seeds`` are given.
        min_bin_freq: fewest points for a bin to seed.
        cluster_all: label every point with its nearest centre; if False, points
            farther than ``bandwidth`` from every centre get the label -1.
        n_jobs: CPU threads torch uses during ``fit`` / ``predict`` (joblib's
            meaning: -1 every core); None leaves torch's setting.
        mode: "standard" (seeds climb over the fixed data, as scikit-learn) or
            "blurring" (the data itself moves, as the fastai lessons).
        backend: "auto", "dense", "grid" or "fused" (Gaussian only); see
            ``choose_meanshift_backend`` for what auto picks.
        device: torch device to compute on; None: the input tensor's device, or cpu.

    Attributes:
        cluster_centers_: [C, D] centres, most intense first, X's dtype (numpy
            for numpy, pandas or list input, a tensor on the input's device for
            tensor input).
        labels_: [N] int64 label of each point (-1: no cluster, ``cluster_all=False``).
        n_iter_: standard mode: the most iterations any seed completed (as
            scikit-learn); blurring mode: the steps the data took.
        n_features_in_: D. feature_names_in_: column names of a pandas X.
        bandwidth_: the bandwidth used (estimated when ``bandwidth`` is None).
        backend_: the neighbor backend used ("dense", "grid" or "fused").

    Example:
        >>> X = [[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]
        >>> MeanShift(bandwidth=2).fit(X).labels_
        array([1, 1, 1, 0, 0, 0])
    """

    _parameter_constraints: dict = {
        "bandwidth": [Interval(Real, 0, None, closed="neither"), None],
        "seeds": ["array-like", torch.Tensor, None],
        "bin_seeding": ["boolean"],
        "min_bin_freq": [Interval(Integral, 1, None, closed="left")],
        "cluster_all": ["boolean"],
        "n_jobs": [Integral, None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "kernel": [StrOptions(set(KERNELS))],
        "tol": [Interval(Real, 0, None, closed="left")],
        "mode": [StrOptions(set(MODES))],
        "backend": [StrOptions(set(BACKENDS))],
        "device": [str, torch.device, None],
    }

    def __init__(self, *, bandwidth=None, seeds=None, bin_seeding=False, min_bin_freq=1,
                 cluster_all=True, n_jobs=None, max_iter=300, kernel="flat", tol=1e-3,
                 mode="standard", backend="auto", device=None):
        self.bandwidth = bandwidth
        self.seeds = seeds
        self.bin_seeding = bin_seeding
        self.min_bin_freq = min_bin_freq
        self.cluster_all = cluster_all
        self.n_jobs = n_jobs
        self.max_iter = max_iter
        self.kernel = kernel
        self.tol = tol
        self.mode = mode
        self.backend = backend
        self.device = device

    def _check_combination(self) -> None:
        if self.backend == "fused" and self.kernel != "gaussian":
            raise ValueError(f"MeanShift: backend='fused' runs only kernel='gaussian' (softmax "
                             f"attention), got kernel={self.kernel!r}; use backend='dense' or 'grid'")
        if self.backend == "cells" and (self.kernel == "gaussian" or self.mode == "blurring"):
            raise ValueError(f"MeanShift: backend='cells' runs the standard climb with a flat or "
                             f"triangular kernel, got kernel={self.kernel!r}, mode={self.mode!r}; "
                             "use backend='dense' or 'grid'")
        if self.seeds is not None and self.mode == "blurring":
            raise ValueError("MeanShift: seeds: blurring mode moves the data itself and takes no "
                             "seeds; use mode='standard' or seeds=None")

    def _points(self, X, device, *, reset: bool):
        """X as a float [N, D] tensor on ``device`` (scikit-learn's checks for non-tensors)."""
        if isinstance(X, torch.Tensor):
            x, back = _as_points(X, "X", device)
            if reset:
                self.n_features_in_ = x.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            elif x.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {x.shape[1]} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input.")
            return x, back
        a = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], order="C")
        return _numpy_to_torch(a, device), {"kind": "numpy", "dtype": a.dtype}

    # -------------------------------------------------------- fit / predict

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, progress=None):
        """Cluster ``X``.

        Args:
            X: [N, D] array-like (numpy array, pandas frame, torch tensor or
                nested lists); float32 and float64 are kept, other numbers become float64.
            y: ignored (scikit-learn's signature).
            progress: flock's: ``f(iteration, seeds_moving)`` called after every
                iteration of the standard climb (``flocksim cluster``'s progress bar), or None.

        Returns:
            self, with ``cluster_centers_``, ``labels_``, ``n_iter_`` set.

        Raises:
            ValueError: invalid parameters or input (scikit-learn's messages), or
                no point within the bandwidth of any seed.
            TypeError: sparse input, or parameters of the wrong type.
        """
        self._check_combination()
        device = _resolve_device(self.device, X)
        x, back = self._points(X, device, reset=True)
        with _cpu_threads(self.n_jobs):
            centres, labels, n_iter, bandwidth, backend = self._fit_points(x, device, progress)
        self.cluster_centers_ = _hand_back(centres, back)
        self.labels_ = _hand_back(labels, back)
        self.n_iter_ = int(n_iter)
        self.bandwidth_ = float(bandwidth)
        self.backend_ = backend
        return self

    def _fit_points(self, x, device, progress=None):
        n, dim = x.shape
        bandwidth = self.bandwidth
        if bandwidth is None:
            bandwidth = _bandwidth_of(x, 0.3)
        bandwidth = float(bandwidth)
        if bandwidth == 0:
            if self.mode == "standard":
                seeds = x if self.seeds is None else self._given_seeds(x, device)
            else:
                seeds = x
            centres, intensity = _zero_bandwidth_climb(x, seeds)
            n_iter, backend = 0, "dense"
            where = x
        else:
            extent = float((x.max(0).values - x.min(0).values).max())
            backend = self.backend
            if backend == "auto":
                backend = choose_meanshift_backend(self.kernel, n, bandwidth, extent, device)
            if self.mode == "standard":
                seeds = self._initial_seeds(x, bandwidth, device)
                if self.backend == "auto" and cells_pay(self.kernel, dim, n, bandwidth, extent, device):
                    backend = "cells"
            kern = _kernel_for(self.kernel, bandwidth, backend)
            sums = self._sums(kern, backend, device)
            stop = self.tol * bandwidth
            fused = backend == "fused"
            if self.mode == "standard" and backend == "cells":
                from .meanshift_cells import climb

                if seeds is x:     # duplicated points climb once
                    seeds = _unique_rows(x)[0]
                centres, intensity, n_iter = climb(x, seeds, kern, stop, self.max_iter,
                                                   threads=sums.threads, progress=progress)
                where = x
            elif self.mode == "standard":
                centres, intensity, n_iter = _climb(x, seeds, sums, stop, self.max_iter, fused,
                                                    bandwidth, seeds_are_data=seeds is x, progress=progress)
                where = x
            else:
                where, centres, intensity, n_iter = _blur(x, sums, stop, self.max_iter, fused, bandwidth)
        if centres.shape[0] == 0:
            # scikit-learn's message (its tests match it), and what to do
            raise ValueError(f"No point was within bandwidth={bandwidth:f} of any seed. Try a different "
                             "seeding strategy or increase the bandwidth.")
        centres = _select_centres(centres, intensity, bandwidth)
        labels, dist = _label_points(where, centres, bandwidth, None if self.cluster_all else bandwidth,
                                     self.n_jobs)
        if not self.cluster_all:
            labels = torch.where(dist <= bandwidth, labels, -1)
        return centres, labels, n_iter, bandwidth, backend

    def _sums(self, kern, backend, device):
        if backend != "cells":
            return _Sums(kern, backend)
        from .meanshift_cells import CellSums, cells_available

        if not cells_available():
            raise ValueError("MeanShift: backend='cells' needs the numba package (pip install numba); "
                             "use backend='dense'")
        if torch.device(device).type != "cpu":
            raise ValueError(f"MeanShift: backend='cells' runs on the CPU, got device {str(device)!r}; "
                             "use backend='dense' or 'grid'")
        threads = None if self.n_jobs is None else max(1, int(effective_n_jobs(self.n_jobs)))
        return CellSums(kern, threads=threads)

    def _given_seeds(self, x, device) -> torch.Tensor:
        seeds, _ = _as_points(self.seeds, "seeds", device)
        if seeds.shape[1] != x.shape[1]:
            raise ValueError(f"MeanShift: seeds: expected {x.shape[1]} features like X, got "
                             f"shape {tuple(seeds.shape)}")
        return seeds.to(x.dtype)

    def _initial_seeds(self, x, bandwidth, device) -> torch.Tensor:
        if self.seeds is not None:
            return self._given_seeds(x, device)
        if self.bin_seeding:
            return _bin_seeds(x, bandwidth, self.min_bin_freq)
        return x

    def predict(self, X):
        """Index of the nearest cluster centre for each point of ``X``.

        Args:
            X: [M, D] array-like with the fitted number of features.

        Returns:
            [M] int64 labels (numpy, or a tensor on X's device for tensor input).

        Raises:
            sklearn.exceptions.NotFittedError: before ``fit``.
        """
        check_is_fitted(self)
        device = _resolve_device(self.device, X)
        x, back = self._points(X, device, reset=False)
        centres = torch.as_tensor(self.cluster_centers_).to(device=device, dtype=x.dtype)
        with _cpu_threads(self.n_jobs):
            labels, _ = _label_points(x, centres, n_jobs=self.n_jobs)
        return _hand_back(labels, back)


def mean_shift(X, *, bandwidth=None, seeds=None, bin_seeding=False, min_bin_freq=1, cluster_all=True,
               max_iter=300, n_jobs=None, **flock_params):
    """Mean shift clustering of ``X``: ``sklearn.cluster.mean_shift``'s signature and results.

    Args:
        X: [N, D] array-like. The keyword arguments are ``MeanShift``'s
            (``flock_params``: kernel, tol, mode, backend, device).

    Returns:
        (cluster_centers [C, D], labels [N] int64), as ``MeanShift(...).fit(X)`` sets them.
    """
    model = MeanShift(bandwidth=bandwidth, seeds=seeds, bin_seeding=bin_seeding, min_bin_freq=min_bin_freq,
                      cluster_all=cluster_all, max_iter=max_iter, n_jobs=n_jobs, **flock_params).fit(X)
    return model.cluster_centers_, model.labels_


def get_bin_seeds(X, bin_size, min_bin_freq=1):
    """scikit-learn's ``get_bin_seeds``: bin centres with at least ``min_bin_freq`` points.

    Args:
        X: [N, D] array-like (or tensor). bin_size: the bins' side (0: X itself).
        min_bin_freq: fewest points for a bin to seed.

    Returns:
        [S, D] seeds, bins in order of first appearance, float32 coordinates times
        ``bin_size`` (numpy, or a tensor for tensor input); ``X`` itself (the
        same object, with scikit-learn's warning when every point has its own
        bin) when ``bin_size`` is 0 or nothing is gained.
    """
    if bin_size == 0:
        return X
    x, back = _as_points(X, "X")
    seeds = _bin_seeds(x, float(bin_size), int(min_bin_freq), empty_ok=True)
    if seeds is x:
        return X
    return _hand_back(seeds, back)


# ------------------------------------------------------------------ the algorithm

def _bin_seeds(x: torch.Tensor, bin_size: float, min_bin_freq: int, empty_ok: bool = False) -> torch.Tensor:
    """scikit-learn's ``get_bin_seeds``: centres of bins of side ``bin_size`` with enough points.

    Points are binned by ``round(x / bin_size)`` (half to even, as numpy); the
    seeds are the bins' integer coordinates times ``bin_size`` in float32, as
    scikit-learn computes them, in the order the bins first appear in x. If
    every point has its own bin, the points themselves are the seeds (with
    scikit-learn's warning). No bin full enough: ValueError, or [0, D] seeds
    with ``empty_ok``.
    """
    bins = torch.round(x / bin_size)
    uniq, inv, counts = _unique_bins(bins)
    first = torch.full((uniq.shape[0],), x.shape[0], device=x.device, dtype=torch.int64)
    first = first.scatter_reduce(0, inv, torch.arange(x.shape[0], device=x.device), reduce="amin")
    keep = (counts >= min_bin_freq).nonzero()[:, 0]
    keep = keep[torch.argsort(first[keep])]
    seeds = uniq[keep]
    if seeds.shape[0] == 0 and not empty_ok:
        raise ValueError(f"MeanShift: bin_seeding: no bin of size {bin_size:g} holds "
                         f"min_bin_freq={min_bin_freq} points (the fullest holds {int(counts.max())}); "
                         "lower min_bin_freq or increase the bandwidth")
    if seeds.shape[0] == x.shape[0]:
        warnings.warn(f"Binning data failed with provided bin_size={bin_size:f}, using data points "
                      "as seeds.", UserWarning, stacklevel=4)
        return x
    return (seeds.to(torch.float32) * torch.tensor(bin_size, dtype=torch.float32)).to(x.dtype)


def _unique_bins(bins: torch.Tensor):
    """``_unique_rows(bins, counts=True)`` of integer-valued bin coordinates ([M, D] float).

    When the bins' bounding box has under 2^53 cells, by one 1-D unique of their
    linear index (one sort instead of D, ~5x faster at 1,000,000 points on CPU);
    distinct rows come in the order of that index, not lexicographic (callers
    reorder them by first appearance).
    """
    if bins.shape[0] <= 1:
        return _unique_rows(bins, counts=True)
    lo = bins.min(0).values
    span = (bins.max(0).values - lo + 1).tolist()
    if math.prod(span) >= 2.0 ** 53:
        return _unique_rows(bins, counts=True)
    cells = (bins - lo).to(torch.int64)
    key = cells[:, 0].clone()
    stride = 1
    for d in range(1, bins.shape[1]):
        stride *= int(span[d - 1])
        key += cells[:, d] * stride
    _, inv, counts = torch.unique(key, return_inverse=True, return_counts=True)
    first = torch.full((counts.shape[0],), bins.shape[0], device=bins.device, dtype=torch.int64)
    first = first.scatter_reduce(0, inv, torch.arange(bins.shape[0], device=bins.device), reduce="amin")
    return bins[first], inv, counts


def _zero_bandwidth_climb(x: torch.Tensor, seeds: torch.Tensor):
    """Mean shift at bandwidth 0, as scikit-learn runs it (every kernel's limit).

    A seed's window is the points exactly at it (``radius_neighbors`` with
    radius 0), so it stays where it is: the centres are the distinct seeds that
    sit on a data point, their intensity the number of points there; seeds on
    no point are dropped.

    Returns:
        centres [C, D], intensity [C].
    """
    pts, _, counts = _unique_rows(x, counts=True)
    uniq = _unique_rows(seeds.to(x.dtype))[0]
    both, inv, n = _unique_rows(torch.cat([pts, uniq]), counts=True)
    # a distinct seed is on a point iff its row occurs twice in [points; seeds]
    on_point = n[inv[pts.shape[0]:]] == 2
    mult = torch.zeros(both.shape[0], device=x.device, dtype=counts.dtype)
    mult[inv[:pts.shape[0]]] = counts
    centres = uniq[on_point]
    return centres, mult[inv[pts.shape[0]:]][on_point].to(x.dtype)


def _climb(x, seeds, sums: _Sums, stop: float, max_iter: int, fused: bool, bandwidth: float,
           seeds_are_data: bool = False, progress=None):
    """Standard mean shift: every seed climbs over the fixed data ``x`` at once.

    Seeds follow scikit-learn's ``_mean_shift_single_seed``: at each iteration
    the seed's window gives its new position (the mean) and intensity (weight
    sum); it stops when it moved at most ``stop`` or after ``max_iter``
    iterations, and is dropped if its window is ever empty. Seeds on exactly the
    same position are computed once (they move identically from then on).

    Returns:
        centres [C, D] (the surviving seeds' final positions), intensity [C]
        (weight sum at the position before the last move), n_iter (the most
        iterations a seed completed, scikit-learn's ``n_iter_``).
    """
    seeds, _ = _unique_rows(seeds)
    n_seeds = seeds.shape[0]
    device = x.device
    pos = seeds.clone()
    intensity = torch.zeros(n_seeds, device=device, dtype=x.dtype)
    alive = torch.ones(n_seeds, device=device, dtype=torch.bool)
    if fused and not seeds_are_data:
        # softmax moves even a seed whose weights all underflow; drop it as the other
        # backends do (a seed on a data point has weight >= 1 and needs no check)
        alive = reduce_fused(x, x, [sums.kernel], query_pos=seeds)[0, :, -1] > 0
    active = alive.nonzero()[:, 0]
    n_iter = 0
    it = 0
    while active.numel():
        q = pos[active]
        uq, inv = _unique_rows(q)
        if fused:
            new = fused_mean_shift_step(uq, bandwidth, data=x)[inv]
            empty = torch.zeros(q.shape[0], device=device, dtype=torch.bool)
        else:
            s = sums(x, uq)[inv]
            wsum = s[:, -1]
            empty = ~(wsum > 0)
            new = s[:, :-1] / torch.where(empty, 1, wsum)[:, None]
            intensity[active] = wsum.to(intensity.dtype)
        shift = torch.linalg.vector_norm(new - q, dim=1)
        pos[active] = torch.where(empty[:, None], q, new).to(pos.dtype)   # cells: float64 sums
        alive[active[empty]] = False
        n_iter = it
        finished = empty | (shift <= stop) | (it >= max_iter)
        active = active[~finished]
        if progress is not None:
            progress(it, int(active.numel()))
        it += 1
    if fused:
        # the weight sum at each seed's position before its last move, as the
        # other backends record it; the last move is below tol, so the final
        # position gives the same ranking
        s = reduce_fused(x, x, [sums.kernel], query_pos=pos)[0]
        intensity = s[:, -1]
        alive &= intensity > 0
    return pos[alive], intensity[alive], n_iter


def _blur(x, sums: _Sums, stop: float, max_iter: int, fused: bool, bandwidth: float):
    """Blurring mean shift (the fastai lessons): every point moves to the weighted mean of all.

    Stops when no point moved more than ``stop`` or no move changed by more
    than ``stop`` since the previous step (collapsed clusters drifting), or
    after ``max_iter + 1`` steps. Points on exactly the same position are merged
    into one weighted point (flat kernels collapse clusters onto single points
    in a few steps), which changes no result and makes later steps cheap.

    Returns:
        points [N, D] final positions, centres [C, D] candidate centres (the
        distinct final positions), intensity [C] (weight sums there), steps taken.
    """
    y = x
    steps = 0
    last = None
    for it in range(max_iter + 1):
        uq, inv, counts = _unique_rows(y, counts=True)
        if fused and uq.shape[0] == y.shape[0]:
            new = fused_mean_shift_step(y, bandwidth)
        else:
            s = _weighted_sums(sums, fused, uq, counts)
            wsum = s[:, -1]
            new_u = s[:, :-1] / torch.where(wsum > 0, wsum, 1)[:, None]
            new = new_u[inv]
        move = new - y
        shift = float(torch.linalg.vector_norm(move, dim=1).max())
        change = math.inf if last is None else float(torch.linalg.vector_norm(move - last, dim=1).max())
        y, last = new, move
        steps = it + 1
        if shift <= stop or change <= stop:
            break
    uq, inv, counts = _unique_rows(y, counts=True)
    intensity = _weighted_sums(sums, fused, uq, counts)[:, -1]
    keep = intensity > 0
    return y, uq[keep], intensity[keep], steps


def _weighted_sums(sums: _Sums, fused: bool, points, counts):
    if fused:
        c = counts.to(points.dtype)[:, None]
        s = reduce_fused(points, points * c, [sums.kernel], features=c)[0]
        dim = points.shape[1]
        return s[:, dim:2 * dim + 1]
    if bool((counts == 1).all()):
        counts = None
    return sums(points, points, counts)


def _unique_rows(x: torch.Tensor, counts: bool = False):
    """Distinct rows of x ([M, D]) in lexicographic order, the inverse index (and multiplicities).

    As ``torch.unique(x, dim=0, return_inverse=True)``, but by D stable 1-D sorts
    (last column first), which is ~10x faster on CPU than the row-wise unique.
    """
    m = x.shape[0]
    if m <= 1:
        inv = torch.arange(m, device=x.device)
        if counts:
            return x, inv, torch.ones(m, device=x.device, dtype=torch.int64)
        return x, inv
    order = torch.arange(m, device=x.device)
    for d in range(x.shape[1] - 1, -1, -1):
        order = order[torch.sort(x[order, d], stable=True).indices]
    xs = x[order]
    starts = torch.ones(m, device=x.device, dtype=torch.bool)
    starts[1:] = (xs[1:] != xs[:-1]).any(1)
    group = torch.cumsum(starts, 0) - 1
    inv = torch.empty_like(group)
    inv[order] = group
    uniq = xs[starts]
    if counts:
        return uniq, inv, torch.bincount(group, minlength=uniq.shape[0])
    return uniq, inv


def _select_centres(centres: torch.Tensor, intensity: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """scikit-learn's post-processing: order by intensity, drop near-duplicates.

    Exactly equal centres count once (scikit-learn keys a dict by the centre,
    the last seed's intensity wins); the rest are sorted by (intensity, then
    coordinates) descending, and walking down that list every centre within
    ``bandwidth`` (<=) of a kept one is removed.
    """
    uniq, inv = _unique_rows(centres)
    last = torch.full((uniq.shape[0],), -1, device=centres.device, dtype=torch.int64)
    last = last.scatter_reduce(0, inv, torch.arange(centres.shape[0], device=centres.device),
                               reduce="amax")
    inten = intensity[last]
    keys = [uniq[:, d].cpu().numpy() for d in range(uniq.shape[1] - 1, -1, -1)]
    order = np.lexsort(keys + [inten.cpu().numpy()])[::-1]
    ranked = uniq[torch.as_tensor(order.copy(), device=centres.device)]
    if ranked.shape[0] <= _SKLEARN_BRUTE_MAX:
        # scikit-learn measures so few centres by brute force (|a|^2 - 2 a.b + |b|^2): its own
        # NearestNeighbors, to drop the same ones when two lie at (rounding of) the bandwidth
        from sklearn.neighbors import NearestNeighbors

        arr = ranked.cpu().numpy()
        nbrs = NearestNeighbors(radius=bandwidth).fit(arr)
        unique = np.ones(len(arr), dtype=bool)
        for i in range(len(arr)):
            if unique[i]:
                unique[nbrs.radius_neighbors(arr[i:i + 1], return_distance=False)[0]] = False
                unique[i] = True
        return ranked[torch.as_tensor(unique, device=ranked.device)]
    r64 = ranked.to(torch.float64)       # the exact test of scikit-learn's trees, in float64
    remaining = torch.arange(ranked.shape[0], device=centres.device)
    kept = []
    while remaining.numel():
        i = remaining[0]
        kept.append(i)
        rest = remaining[1:]
        d = torch.linalg.vector_norm(r64[rest] - r64[i], dim=1)
        remaining = rest[d > bandwidth]
    return ranked[torch.stack(kept)]


def _label_points(x: torch.Tensor, centres: torch.Tensor, cell: float | None = None,
                  cut: float | None = None, n_jobs=None):
    """Index [N] (int64) of and distance [N] to the nearest centre ([C, D]) of each point.

    On CPU the labels of scikit-learn's ``NearestNeighbors(n_neighbors=1)``, as
    ``sklearn.cluster.MeanShift`` labels: a point equidistant from two centres
    (integer grids) gets the same one. From ``_GRID_LABELS`` points (numba
    installed) by the grid query of ``flock.meanshift_cells.label_points`` (cells
    of side ``cell``, the bandwidth), which hands near-ties and points within
    rounding of ``cut`` (``cluster_all=False``) to that same reference, so the
    labels are identical. Elsewhere ``_nearest`` (the lowest index wins ties).
    """
    if x.device.type != "cpu":
        return _nearest(x, centres)
    if x.shape[0] >= _GRID_LABELS and centres.shape[0] > 1:
        from .meanshift_cells import cells_available, label_points

        if cells_available():
            threads = None if n_jobs is None else max(1, int(effective_n_jobs(n_jobs)))
            return label_points(x, centres, cell, cut, fallback=_label_points_sklearn, threads=threads)
    return _label_points_sklearn(x, centres)


def _label_points_sklearn(x: torch.Tensor, centres: torch.Tensor):
    """``_label_points`` by scikit-learn's ``NearestNeighbors(n_neighbors=1)`` (CPU tensors)."""
    from sklearn.neighbors import NearestNeighbors

    nbrs = NearestNeighbors(n_neighbors=1).fit(centres.numpy())
    dist, idx = nbrs.kneighbors(x.numpy())
    return torch.from_numpy(idx[:, 0].astype(np.int64)), torch.from_numpy(dist[:, 0])


def _nearest(x: torch.Tensor, centres: torch.Tensor):
    """Index [N] (int64) of and distance [N] to the nearest centre ([C, D]) of each point
    (the shared nearest query over every centre; ties: the lowest centre index)."""
    from .neighbors.nearest import nearest

    return nearest(centres, radius=math.inf, query_pos=x, backend="dense")


__all__ = ["BACKENDS", "KERNELS", "MODES", "MeanShift", "NotFittedError", "choose_meanshift_backend", "get_bin_seeds", "mean_shift",
           "estimate_bandwidth"]
