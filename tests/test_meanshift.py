"""flock.MeanShift: scikit-learn's clustering, vectorised; the lesson's blobs; every bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions.multivariate_normal import MultivariateNormal

from sklearn import exceptions as sklearn_exceptions

from flock.meanshift import MeanShift, NotFittedError, choose_meanshift_backend, estimate_bandwidth
from flock.testing import adjusted_rand_index as ari


def lesson_blobs(n_per_blob=250):
    """The 2022 fastai notebook's data: 6 centroids in [-35, 35]^2 (seed 42), 250 points each, cov 5 I."""
    with torch.random.fork_rng():
        torch.manual_seed(42)
        centroids = torch.rand(6, 2) * 70 - 35
        cov = torch.diag(torch.tensor([5.0, 5.0]))
        data = torch.cat([MultivariateNormal(c, cov).sample((n_per_blob,)) for c in centroids])
    return data.numpy(), np.repeat(np.arange(6), n_per_blob), centroids.numpy()


def small_blobs(seed=0, n=120, std=0.6, dim=2):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]])[:, :dim] if dim <= 2 else \
        rng.uniform(-8, 8, (3, dim))
    X = np.concatenate([c + std * rng.standard_normal((n // 3, dim)) for c in centres])
    return X, np.repeat(np.arange(3), n // 3)


# ---------------------------------------------------------------- the lesson's data

@pytest.mark.parametrize("mode", ["standard", "blurring"])
def test_lesson_blobs_gaussian_finds_the_six(mode):
    X, truth, centroids = lesson_blobs()
    model = MeanShift(bandwidth=2.5, kernel="gaussian", mode=mode).fit(X)
    assert len(model.cluster_centers_) == 6
    assert ari(model.labels_, truth) == 1.0
    # every true centroid has a centre within a bandwidth (sampling noise: ~0.14 std)
    d = np.linalg.norm(centroids[:, None] - model.cluster_centers_[None], axis=2)
    assert d.min(1).max() < 0.6
    assert model.backend_ == "fused"
    assert model.cluster_centers_.dtype == np.float32 and model.labels_.dtype == np.int64


def test_lesson_blobs_gaussian_bin_seeding_and_grid():
    X, truth, _ = lesson_blobs()
    for kw in (dict(bin_seeding=True), dict(backend="grid", bin_seeding=True),
               dict(backend="dense", bin_seeding=True)):
        model = MeanShift(bandwidth=2.5, kernel="gaussian", **kw).fit(X)
        assert len(model.cluster_centers_) == 6, kw
        assert ari(model.labels_, truth) == 1.0, kw


def test_lesson_blobs_blurring_matches_the_lesson_loop():
    # the lesson's five blurring steps, then clusters; the triangular kernel of the 2022 notebook too
    X, truth, _ = lesson_blobs()
    model = MeanShift(bandwidth=2.5, kernel="gaussian", mode="blurring", max_iter=4, tol=0).fit(X)
    assert model.n_iter_ == 5
    X, truth, _ = lesson_blobs(100)
    tri = MeanShift(bandwidth=8, kernel="triangular", mode="blurring").fit(X)
    assert len(tri.cluster_centers_) == 6 and ari(tri.labels_, truth) == 1.0


# ---------------------------------------------------------------- scikit-learn agreement

SK_CASES = [
    dict(bandwidth=2.0),
    dict(bandwidth=1.2),
    dict(bandwidth=2.0, bin_seeding=True),
    dict(bandwidth=1.0, bin_seeding=True, min_bin_freq=3),
    dict(bandwidth=0.9, cluster_all=False),
    dict(bandwidth=1.5, bin_seeding=True, cluster_all=False),
    dict(bandwidth=2.0, max_iter=2),
]


@pytest.mark.parametrize("params", SK_CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_sklearn(params, seed):
    sk = pytest.importorskip("sklearn.cluster")
    X, _ = small_blobs(seed, n=150, std=0.8)
    X = np.concatenate([X, [[20.0, 20.0], [-9.0, 3.0]]])      # two outliers
    ref = sk.MeanShift(**params).fit(X)
    got = MeanShift(**params).fit(X)
    assert got.cluster_centers_.shape == ref.cluster_centers_.shape
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.labels_, ref.labels_)
    assert got.n_iter_ == ref.n_iter_
    new = np.random.default_rng(seed).uniform(-5, 10, (40, 2))
    np.testing.assert_array_equal(got.predict(new), ref.predict(new))


def test_agrees_with_sklearn_given_seeds_3d():
    sk = pytest.importorskip("sklearn.cluster")
    X, _ = small_blobs(3, n=150, std=1.0, dim=3)
    seeds = X[::7] + 0.3
    ref = sk.MeanShift(bandwidth=2.5, seeds=seeds).fit(X)
    got = MeanShift(bandwidth=2.5, seeds=seeds).fit(X)
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.labels_, ref.labels_)


def test_lesson_blobs_flat_agrees_with_sklearn():
    sk = pytest.importorskip("sklearn.cluster")
    for bins, per_blob in ((True, 250), (False, 80)):   # scikit-learn takes ~5 s on all 1,500 seeds
        X, _, _ = lesson_blobs(per_blob)
        ref = sk.MeanShift(bandwidth=2.5, bin_seeding=bins).fit(X)
        got = MeanShift(bandwidth=2.5, bin_seeding=bins).fit(X)
        assert ari(got.labels_, ref.labels_) == 1.0
        # float32 means of ~1,000 points: a few ulps apart (numpy sums pairwise, torch by matmul)
        np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, rtol=1e-6, atol=0)
        # the flat kernel splits the lesson's blobs; the Gaussian does not (see above)
        assert len(got.cluster_centers_) > 6


def test_estimate_bandwidth_agrees_with_sklearn():
    sk = pytest.importorskip("sklearn.cluster")
    X, _ = small_blobs(2, n=300)
    for kw in (dict(), dict(quantile=0.1), dict(quantile=0.5), dict(quantile=1.0), dict(quantile=0.0),
               dict(n_samples=100), dict(n_samples=50, random_state=3), dict(n_samples=5000)):
        got = estimate_bandwidth(X, **kw)
        assert got == pytest.approx(sk.estimate_bandwidth(X, **kw), rel=1e-12)
        assert type(got) is type(sk.estimate_bandwidth(X, **kw)) is np.float64
    assert estimate_bandwidth(torch.from_numpy(X).float()) == pytest.approx(
        sk.estimate_bandwidth(X.astype(np.float32)), rel=1e-12)
    ref = sk.MeanShift().fit(X)
    got = MeanShift().fit(X)
    assert got.bandwidth_ == pytest.approx(ref.bandwidth if ref.bandwidth else
                                           sk.estimate_bandwidth(X), rel=1e-12)
    np.testing.assert_array_equal(got.labels_, ref.labels_)


def test_sklearn_clone_and_params():
    base = pytest.importorskip("sklearn.base")
    model = MeanShift(bandwidth=3.0, kernel="gaussian", bin_seeding=True)
    copy = base.clone(model)
    assert copy.get_params() == model.get_params()
    assert copy is not model
    assert repr(model) == "MeanShift(bandwidth=3.0, bin_seeding=True, kernel='gaussian')"
    assert repr(MeanShift()) == "MeanShift()"


# ---------------------------------------------------------------- estimator contract

def test_get_and_set_params():
    model = MeanShift()
    params = model.get_params()
    assert params == dict(backend="auto", bandwidth=None, bin_seeding=False, cluster_all=True,
                          device=None, kernel="flat", max_iter=300, min_bin_freq=1, mode="standard",
                          n_jobs=None, seeds=None, tol=1e-3)
    assert model.set_params(bandwidth=2.0, kernel="triangular") is model
    assert model.bandwidth == 2.0 and model.kernel == "triangular"
    with pytest.raises(ValueError, match="Invalid parameter 'bandwith' for estimator MeanShift"):
        model.set_params(bandwith=1.0)
    with pytest.raises(TypeError):
        MeanShift(2.0)      # keyword-only, as scikit-learn


def test_init_only_stores():
    model = MeanShift(bandwidth=-1, kernel="nope", mode="nope", backend="nope", max_iter="x")
    assert model.bandwidth == -1 and model.kernel == "nope"


def test_fit_returns_self_and_fit_predict():
    X, _ = small_blobs(0)
    model = MeanShift(bandwidth=2.0)
    assert model.fit(X) is model
    np.testing.assert_array_equal(MeanShift(bandwidth=2.0).fit_predict(X), model.labels_)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.n_features_in_ == 2 and isinstance(model.n_iter_, int)


@pytest.mark.parametrize("kernel", ["flat", "triangular", "gaussian"])
@pytest.mark.parametrize("mode", ["standard", "blurring"])
def test_every_kernel_and_mode_finds_the_blobs(kernel, mode):
    X, truth = small_blobs(1, n=150, std=0.5)
    model = MeanShift(bandwidth=1.5 if kernel != "triangular" else 3.0, kernel=kernel, mode=mode).fit(X)
    assert len(model.cluster_centers_) == 3
    assert ari(model.labels_, truth) == 1.0


def test_backends_agree():
    X, _ = small_blobs(4, n=240, std=0.7)
    ref = MeanShift(bandwidth=1.4, backend="dense").fit(X)
    grid = MeanShift(bandwidth=1.4, backend="grid").fit(X)
    np.testing.assert_allclose(grid.cluster_centers_, ref.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(grid.labels_, ref.labels_)
    fused = MeanShift(bandwidth=1.0, kernel="gaussian", backend="fused").fit(X)
    dense = MeanShift(bandwidth=1.0, kernel="gaussian", backend="dense").fit(X)
    np.testing.assert_allclose(fused.cluster_centers_, dense.cluster_centers_, atol=1e-6)
    np.testing.assert_array_equal(fused.labels_, dense.labels_)


def test_spatial_batching_changes_nothing(monkeypatch):
    import flock.meanshift as ms
    X, _, _ = lesson_blobs(100)
    X = X.astype(np.float64)
    ref = MeanShift(bandwidth=2.5, kernel="triangular").fit(X)
    monkeypatch.setattr(ms, "_BATCH_MIN_PAIRS", 0)
    monkeypatch.setattr(ms, "_BATCH_ROWS", 16)
    got = MeanShift(bandwidth=2.5, kernel="triangular").fit(X)
    # sums in other orders: centres of (nearly) equal intensity may swap places
    order_got, order_ref = np.lexsort(got.cluster_centers_.T), np.lexsort(ref.cluster_centers_.T)
    np.testing.assert_allclose(got.cluster_centers_[order_got], ref.cluster_centers_[order_ref], atol=1e-9)
    assert ari(got.labels_, ref.labels_) == 1.0


def test_cluster_all_false_marks_orphans():
    X, _ = small_blobs(0, n=90, std=0.3)
    X = np.concatenate([X, [[30.0, 30.0]]])
    seeds = X[:-1]
    model = MeanShift(bandwidth=1.0, cluster_all=False, seeds=seeds).fit(X)
    assert model.labels_[-1] == -1 and (model.labels_[:-1] >= 0).all()
    assert MeanShift(bandwidth=1.0, seeds=seeds).fit(X).labels_[-1] >= 0


def test_max_iter_zero_and_tol_zero():
    X, _ = small_blobs(0)
    assert MeanShift(bandwidth=2.0, max_iter=0).fit(X).n_iter_ == 0
    assert MeanShift(bandwidth=2.0, tol=0).fit(X).n_iter_ >= MeanShift(bandwidth=2.0).fit(X).n_iter_


def test_single_point_and_identical_points():
    one = MeanShift(bandwidth=1.0).fit([[1.0, 2.0]])
    np.testing.assert_array_equal(one.cluster_centers_, [[1.0, 2.0]])
    np.testing.assert_array_equal(one.labels_, [0])
    same = MeanShift(bandwidth=1.0, kernel="gaussian").fit(np.ones((5, 3)))
    np.testing.assert_allclose(same.cluster_centers_, np.ones((1, 3)))


def test_bin_seeding_warns_when_every_point_has_its_own_bin():
    X = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    with pytest.warns(UserWarning, match="Binning data failed"):
        model = MeanShift(bandwidth=1.0, bin_seeding=True).fit(X)
    assert len(model.cluster_centers_) == 3


def test_choose_backend():
    assert choose_meanshift_backend("gaussian", 1000, 2.5, 70.0, "cpu") == "fused"
    assert choose_meanshift_backend("gaussian", 100_000, 0.1, 70.0, "cpu") == "fused"   # never truncates
    assert choose_meanshift_backend("flat", 20_000, 2.5, 70.0, "cpu") == "dense"
    assert choose_meanshift_backend("triangular", 20_000, 0.25, 70.0, "cpu") == "grid"
    assert choose_meanshift_backend("flat", 20_000, 0.25, 70.0, "cpu") == "dense"     # exact edge: dense
    assert choose_meanshift_backend("flat", 500, 0.25, 70.0, "cpu") == "dense"
    assert choose_meanshift_backend("triangular", 5_000, 0.25, 70.0, "cpu") == "dense"  # grid from 20,000
    assert choose_meanshift_backend("triangular", 20_000, 0.25, 70.0, "cuda") == "dense"
    assert MeanShift(bandwidth=2.0).fit(small_blobs(0)[0]).backend_ == "dense"


# ---------------------------------------------------------------- input types and dtypes

@pytest.mark.parametrize("kind", ["numpy32", "numpy64", "torch32", "torch64", "list", "int"])
def test_input_types_round_trip(kind, device):
    X, truth = small_blobs(5, n=90, std=0.4)
    inputs = {
        "numpy32": (X.astype(np.float32), np.float32),
        "numpy64": (X, np.float64),
        "torch32": (torch.tensor(X, dtype=torch.float32, device=device), torch.float32),
        "torch64": (torch.tensor(X, dtype=torch.float64, device=device), torch.float64),
        "list": (X.tolist(), np.float64),
        "int": ((X * 10).round().astype(np.int32), np.float64),
    }
    data, dtype = inputs[kind]
    model = MeanShift(bandwidth=2.0 if kind != "int" else 20.0, kernel="gaussian").fit(data)
    pred = model.predict(data)
    if kind.startswith("torch"):
        assert isinstance(model.cluster_centers_, torch.Tensor) and model.cluster_centers_.dtype == dtype
        assert model.cluster_centers_.device == data.device and model.labels_.device == data.device
        assert model.labels_.dtype == torch.int64 and isinstance(pred, torch.Tensor)
        labels = model.labels_.cpu().numpy()
        assert torch.equal(pred, model.labels_)
    else:
        assert isinstance(model.cluster_centers_, np.ndarray) and model.cluster_centers_.dtype == dtype
        assert model.labels_.dtype == np.int64 and isinstance(pred, np.ndarray)
        labels = model.labels_
        np.testing.assert_array_equal(pred, labels)
    assert ari(labels, truth) == 1.0
    # predict follows its own input's kind
    assert isinstance(model.predict(X.tolist()), np.ndarray)
    assert isinstance(model.predict(torch.tensor(X)), torch.Tensor)


def test_float32_and_float64_agree():
    X, _, _ = lesson_blobs(50)
    a = MeanShift(bandwidth=2.5, kernel="gaussian").fit(X)
    b = MeanShift(bandwidth=2.5, kernel="gaussian").fit(X.astype(np.float64))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    # a seed stops anywhere within tol * bandwidth = 2.5e-3 of its mode
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, atol=1e-2)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16), st.floats(-100, 100), st.floats(-100, 100))
def test_translation_and_permutation_invariance(seed, dx, dy):
    X, _ = small_blobs(seed % 7, n=60, std=0.5)
    perm = np.random.default_rng(seed).permutation(len(X))
    base = MeanShift(bandwidth=1.5).fit(X)
    moved = MeanShift(bandwidth=1.5).fit(X[perm] + [dx, dy])
    assert ari(moved.labels_, base.labels_[perm]) == 1.0
    np.testing.assert_allclose(np.sort(moved.cluster_centers_ - [dx, dy], axis=0),
                               np.sort(base.cluster_centers_, axis=0), atol=1e-9)


# ---------------------------------------------------------------- bad input

# scikit-learn's validation and messages for array-likes (its estimator checks need them);
# flock's own for tensors, which scikit-learn does not check

@pytest.mark.parametrize("X, match", [
    ([[1.0, 2.0], [np.nan, 1.0]], r"Input X contains NaN"),
    ([[1.0, np.inf], [0.0, 1.0]], r"Input X contains infinity"),
    ([1.0, 2.0, 3.0], r"(?s)Expected 2D array, got 1D array instead.*reshape"),
    (np.zeros((2, 2, 2)), r"Found array with dim 3"),
    (np.zeros((0, 2)), r"Found array with 0 sample\(s\) \(shape=\(0, 2\)\)"),
    (np.zeros((3, 0)), r"Found array with 0 feature\(s\)"),
    ([["a", "b"], ["c", "d"]], r"could not convert string to float"),
    ([[1.0, 2.0], [3.0]], r"inhomogeneous"),
    (np.array([[1 + 1j, 2]]), r"Complex data not supported"),
])
def test_bad_X(X, match):
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1.0).fit(X)


@pytest.mark.parametrize("X, match", [
    (torch.tensor([[0.0, float("nan")]]), r"X contains NaN \(first at row 0, column 1"),
    (torch.tensor([[0.0, float("inf")]]), r"X contains infinity"),
    (torch.zeros(3), r"expected a 2-D array .* got a 1-D array of shape \(3,\).*reshape"),
    (torch.zeros(0, 2), r"found 0 samples"),
    (torch.zeros(2, 2, dtype=torch.complex64), r"expected real numbers"),
])
def test_bad_tensor_X(X, match):
    with pytest.raises(ValueError, match=match):
        MeanShift(bandwidth=1.0).fit(X)


def test_sparse_X_is_a_type_error():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="Sparse data was passed"):
        MeanShift(bandwidth=1.0).fit(sparse.csr_matrix(np.eye(3)))


def test_nan_and_features_in_predict():
    model = MeanShift(bandwidth=1.0).fit([[0.0, 0.0], [0.5, 0.0]])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.predict([[np.nan, 0.0]])
    for X in ([[0.0, 0.0, 0.0]], torch.zeros(1, 3)):
        with pytest.raises(ValueError, match="X has 3 features, but MeanShift is expecting 2 features"):
            model.predict(X)


@pytest.mark.parametrize("params, match", [
    (dict(bandwidth=0), r"'bandwidth' parameter of MeanShift must be a float in the range \(0.0, inf\) "
                        r"or None. Got 0 instead"),
    (dict(bandwidth=-2.5), r"'bandwidth' parameter .* Got -2.5 instead"),
    (dict(bandwidth=math.nan), r"'bandwidth' parameter .* Got nan instead"),
    (dict(bandwidth="2"), r"'bandwidth' parameter .* Got '2' instead"),
    (dict(kernel="gauss"), r"'kernel' parameter of MeanShift must be a str among .*'gaussian'.* Got 'gauss'"),
    (dict(mode="blur"), r"'mode' parameter .* Got 'blur'"),
    (dict(backend="gpu"), r"'backend' parameter .* Got 'gpu'"),
    (dict(backend="fused"), r"backend='fused' runs only kernel='gaussian'.*got kernel='flat'"),
    (dict(max_iter=-1), r"'max_iter' parameter of MeanShift must be an int in the range \[0, inf\)"),
    (dict(max_iter=2.5), r"'max_iter' parameter .* Got 2.5"),
    (dict(tol=-1e-3), r"'tol' parameter of MeanShift must be a float in the range \[0.0, inf\)"),
    (dict(min_bin_freq=0), r"'min_bin_freq' parameter of MeanShift must be an int in the range \[1, inf\)"),
    (dict(bin_seeding="yes"), r"'bin_seeding' parameter .* Got 'yes'"),
    (dict(cluster_all=None), r"'cluster_all' parameter .* Got None"),
    (dict(n_jobs="x"), r"'n_jobs' parameter of MeanShift must be an instance of 'int' or None"),
    (dict(device="tpu:x"), r"device: expected a torch device"),
    (dict(seeds=[[0.0, 0.0]], mode="blurring"), r"blurring mode .* takes no seeds"),
    (dict(seeds=[[0.0, 0.0, 0.0]]), r"seeds: expected 2 features like X, got shape \(1, 3\)"),
    (dict(seeds=[[0.0, np.nan]]), r"seeds contains NaN"),
])
def test_bad_parameters(params, match):
    params.setdefault("bandwidth", 1.0)
    with pytest.raises(ValueError, match=match):
        MeanShift(**params).fit([[0.0, 0.0], [1.0, 1.0]])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        MeanShift(bandwidth=1.0, device="cuda").fit([[0.0, 0.0]])


def test_zero_estimated_bandwidth_clusters_distinct_points():
    # scikit-learn: one sample, or constant data, estimate a bandwidth of 0 and cluster the
    # distinct points (each seed's window is the points exactly on it)
    one = MeanShift().fit([[1.0, 2.0]])
    np.testing.assert_array_equal(one.labels_, [0])
    np.testing.assert_array_equal(one.cluster_centers_, [[1.0, 2.0]])
    const = MeanShift().fit(np.zeros((10, 2), dtype=np.float32))
    assert const.bandwidth_ == 0 and const.n_iter_ == 0
    assert const.cluster_centers_.dtype == np.float32 and const.cluster_centers_.tolist() == [[0.0, 0.0]]
    X = np.array([3, 1, 1, 2, 2, 2, 3, 1], dtype=float).reshape(-1, 1)   # estimate: 0
    model = MeanShift(bin_seeding=True).fit(X)
    np.testing.assert_array_equal(model.cluster_centers_, [[2.0], [1.0], [3.0]])  # intensity, then value
    np.testing.assert_array_equal(model.labels_, [2, 1, 1, 0, 0, 0, 2, 1])
    sk = pytest.importorskip("sklearn.cluster").MeanShift(bin_seeding=True).fit(X)
    np.testing.assert_array_equal(model.cluster_centers_, sk.cluster_centers_)
    np.testing.assert_array_equal(model.labels_, sk.labels_)
    seeded = MeanShift(seeds=[[2.0], [7.0]]).fit(X)     # a seed on no point is dropped
    np.testing.assert_array_equal(seeded.cluster_centers_, [[2.0]])


def test_no_point_within_bandwidth_of_any_seed():
    X = [[0.0, 0.0], [1.0, 0.0]]
    for kernel in ("flat", "triangular", "gaussian"):
        with pytest.raises(ValueError, match=r"No point was within bandwidth=0.100000 of any seed. Try a "
                                             r"different seeding strategy or increase the bandwidth"):
            MeanShift(bandwidth=0.1, kernel=kernel, seeds=[[1e5, 1e5]]).fit(X)


def test_bin_seeding_without_enough_points():
    with pytest.raises(ValueError, match=r"no bin of size 1 holds min_bin_freq=5 points .*fullest holds 2"):
        MeanShift(bandwidth=1.0, bin_seeding=True, min_bin_freq=5).fit([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0]])


def test_predict_before_fit():
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        MeanShift().predict([[0.0, 0.0]])
    assert NotFittedError is sklearn_exceptions.NotFittedError


def test_estimate_bandwidth_bad_input():
    with pytest.raises(ValueError, match=r"'quantile' parameter of estimate_bandwidth must be a float in "
                                         r"the range \[0.0, 1.0\]. Got 1.5"):
        estimate_bandwidth([[0.0], [1.0]], quantile=1.5)
    with pytest.raises(ValueError, match=r"'n_samples' parameter .* Got 0 instead"):
        estimate_bandwidth([[0.0], [1.0]], n_samples=0)
    with pytest.raises(ValueError, match="Input contains NaN"):
        estimate_bandwidth([[0.0], [np.nan]])
