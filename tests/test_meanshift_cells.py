"""The cell-list climb and the grid labels of mean shift against the dense paths, a slow exact
reference and scikit-learn: same neighbor sets (ties at d == h), same labels."""

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from sklearn.cluster import MeanShift as SkMeanShift  # noqa: E402

from flock.kernels import Kernel  # noqa: E402
from flock.meanshift import MeanShift, _label_points_sklearn, cells_pay  # noqa: E402
from flock.meanshift_cells import climb, climb_sums, label_points  # noqa: E402
from flock.neighbors.gemm import reduce_gemm  # noqa: E402
from flock.testing import adjusted_rand_index as ari  # noqa: E402


def exact_sums(points, queries, h, kind="flat"):
    """[M, D + 1] float64 sums by the obvious loop: d^2 from differences in float64, d <= h."""
    p = points.astype(np.float64)
    out = np.zeros((len(queries), p.shape[1] + 1))
    for i, q in enumerate(queries.astype(np.float64)):
        d2 = ((p - q) ** 2).sum(1)
        w = (d2 <= h * h).astype(np.float64)
        if kind == "triangular":
            w *= 1.0 - np.sqrt(d2) / h
        out[i, :-1] = (w[:, None] * p).sum(0)
        out[i, -1] = w.sum()
    return out


def random_data(rng, n, dim, dtype, offset=0.0, integer=False):
    if integer:
        x = rng.integers(0, 6, (n, dim)).astype(dtype)
    else:
        x = (rng.normal(0, 3.0, (n, dim)) + offset).astype(dtype)
    return x


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["normal", "far", "integer"])
def test_cell_sums_match_exact_reference_and_gemm(dim, dtype, case):
    rng = np.random.default_rng(dim * 10 + (dtype == np.float32))
    x = random_data(rng, 200, dim, dtype, offset=3.0e4 if case == "far" else 0.0, integer=case == "integer")
    # queries on data points (ties on integer grids), between them, and far outside
    q = np.concatenate([x[:40], x[40:80] + rng.normal(0, 1, (40, dim)).astype(dtype),
                        x[:2] + 50]).astype(dtype)
    for h in (1.0, 1.5, 2.0):
        kern = Kernel("flat", radius=h, exclude_self=False)
        got = climb_sums(torch.from_numpy(x), torch.from_numpy(q), kern).numpy()
        ref = exact_sums(x, q, h)
        np.testing.assert_array_equal(got[:, -1], ref[:, -1])                  # the same neighbor sets
        np.testing.assert_allclose(got[:, :-1], ref[:, :-1], rtol=1e-12, atol=1e-9)
        dense = reduce_gemm(torch.from_numpy(x), torch.from_numpy(q), kern).numpy()
        np.testing.assert_array_equal(got[:, -1], dense[:, -1])


def test_triangular_sums_match_reference():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 2, (300, 2))
    q = x[:50] + 0.3
    kern = Kernel("triangular", radius=1.5, exclude_self=False)
    got = climb_sums(torch.from_numpy(x), torch.from_numpy(q), kern).numpy()
    np.testing.assert_allclose(got, exact_sums(x, q, 1.5, "triangular"), rtol=1e-12, atol=1e-12)


def reference_climb(x, seeds, h, stop, max_iter):
    """scikit-learn's _mean_shift_single_seed loop, seed by seed, exact neighbor test in float64."""
    pos, inten, n_iter = [], [], 0
    for s in seeds.astype(np.float64):
        y, it = s, 0
        while True:
            within = x[((x.astype(np.float64) - y) ** 2).sum(1) <= h * h]
            if len(within) == 0:
                count = 0
                break
            count = len(within)
            new = within.astype(np.float64).mean(0).astype(x.dtype).astype(np.float64)
            shift = np.linalg.norm(new - y)
            y = new
            if shift <= stop or it >= max_iter:
                break
            it += 1
        n_iter = max(n_iter, it)
        if count:
            pos.append(y)
            inten.append(count)
    return np.array(pos), np.array(inten), n_iter


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [2, 3])
def test_climb_matches_reference_and_dense_climb(dtype, dim):
    rng = np.random.default_rng(dim)
    centres = rng.uniform(-20, 20, (4, dim))
    x = np.concatenate([c + rng.normal(0, 1.5, (80, dim)) for c in centres]).astype(dtype)
    seeds = np.concatenate([x[::7], [[99.0] * dim]]).astype(dtype)         # one seed with an empty window
    h, stop = 2.5, 2.5e-3
    kern = Kernel("flat", radius=h, exclude_self=False)
    pos, inten, n_iter = climb(torch.from_numpy(x), torch.from_numpy(seeds), kern, stop, 300)
    rpos, rint, rn = reference_climb(x, seeds, h, stop, 300)
    assert pos.dtype == torch.from_numpy(x).dtype and n_iter == rn
    np.testing.assert_array_equal(inten.numpy(), rint)
    np.testing.assert_allclose(pos.numpy(), rpos, atol=1e-5 if dtype == np.float32 else 1e-9)
    cells = MeanShift(bandwidth=h, seeds=seeds[:-1], backend="cells").fit(x)
    dense = MeanShift(bandwidth=h, seeds=seeds[:-1], backend="dense").fit(x)
    assert cells.backend_ == "cells" and ari(cells.labels_, dense.labels_) == 1.0
    assert cells.n_iter_ == dense.n_iter_
    np.testing.assert_allclose(cells.cluster_centers_, dense.cluster_centers_, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bandwidth", [1.0, 1.5])
@pytest.mark.parametrize("bin_seeding", [False, True])
def test_integer_grid_ties_as_sklearn(dtype, bandwidth, bin_seeding):
    rng = np.random.default_rng(int(bandwidth * 10))
    X = rng.integers(0, 8, (120, 2)).astype(dtype)
    ref = SkMeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding).fit(X)
    got = MeanShift(bandwidth=bandwidth, bin_seeding=bin_seeding, backend="cells").fit(X)
    assert ari(got.labels_, ref.labels_) == 1.0 and got.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, atol=1e-5)


@pytest.mark.parametrize("bin_seeding", [pytest.param(False, marks=pytest.mark.slow), True])
def test_float32_far_from_origin_as_sklearn(bin_seeding):
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 30_000, (20, 2))
    X = np.concatenate([c + rng.normal(0, 1.0, (20, 2)) for c in centres]).astype(np.float32)
    f32 = MeanShift(bandwidth=2.0, bin_seeding=bin_seeding, backend="cells").fit(X)
    f64 = MeanShift(bandwidth=2.0, bin_seeding=bin_seeding, backend="cells").fit(X.astype(np.float64))
    ref = SkMeanShift(bandwidth=2.0, bin_seeding=bin_seeding).fit(X)
    assert f32.cluster_centers_.dtype == np.float32
    assert ari(f32.labels_, f64.labels_) == 1.0 and ari(f32.labels_, ref.labels_) == 1.0


def test_auto_picks_cells_by_the_rule():
    assert cells_pay("flat", 2, 20_000, 2.5, 75.0, "cpu")
    assert not cells_pay("flat", 10, 20_000, 2.5, 75.0, "cpu")         # high D: the dense path
    assert not cells_pay("gaussian", 2, 20_000, 2.5, 75.0, "cpu")
    assert not cells_pay("flat", 2, 500, 2.5, 75.0, "cpu")
    assert not cells_pay("flat", 2, 20_000, 20.0, 75.0, "cpu")         # bandwidth wide against the data
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(c, 1.0, (1500, 2)) for c in (0.0, 30.0)])
    assert MeanShift(bandwidth=2.0, bin_seeding=True).fit(X).backend_ == "cells"
    with pytest.raises(ValueError, match="backend='cells' runs the standard climb"):
        MeanShift(bandwidth=2.0, kernel="gaussian", backend="cells").fit(X)
    with pytest.raises(ValueError, match="backend='cells' runs the standard climb"):
        MeanShift(bandwidth=2.0, mode="blurring", backend="cells").fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["random", "integer", "far", "one"])
def test_grid_labels_match_sklearn_labels(dtype, case):
    rng = np.random.default_rng(3)
    if case == "integer":     # many points equidistant from two centres
        x = rng.integers(0, 12, (1000, 2)).astype(dtype)
        c = np.array([[2, 2], [4, 2], [2, 4], [8, 8], [10, 9]], dtype=dtype)
    else:
        x = rng.normal(0, 10, (1000, 3)).astype(dtype)
        c = rng.normal(0, 10, (1 if case == "one" else 40, 3)).astype(dtype)
        if case == "far":
            x[:50] += 1e3                 # points far outside the centres' grid
    xt, ct = torch.from_numpy(x), torch.from_numpy(c)
    ref_i, ref_d = _label_points_sklearn(xt, ct)
    for cell in (1.0, 2.5, None):
        for cut in (None, 2.0):
            idx, dist = label_points(xt, ct, cell, cut, fallback=_label_points_sklearn)
            np.testing.assert_array_equal(idx.numpy(), ref_i.numpy())
            np.testing.assert_allclose(dist.numpy(), ref_d.numpy(), rtol=1e-6)
            if cut is not None:
                np.testing.assert_array_equal(dist.numpy() <= cut, ref_d.numpy() <= cut)
    if case != "integer":            # without a reference, ties keep the lowest index
        idx, _ = label_points(xt, ct, 2.5)
        np.testing.assert_array_equal(idx.numpy(), ref_i.numpy())


def test_estimator_orphans_the_same_with_grid_labels(monkeypatch):
    import flock.meanshift as ms

    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(c, 1.0, (300, 2)) for c in (0.0, 12.0)] + [rng.uniform(-20, 30, (100, 2))])
    grid = MeanShift(bandwidth=2.0, bin_seeding=True, min_bin_freq=5, cluster_all=False)
    monkeypatch.setattr(ms, "_GRID_LABELS", 1)
    labels_grid = grid.fit(X).labels_
    monkeypatch.setattr(ms, "_GRID_LABELS", 10**12)
    labels_ref = grid.fit(X).labels_
    np.testing.assert_array_equal(labels_grid, labels_ref)
    assert (labels_ref == -1).any()
