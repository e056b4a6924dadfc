"""flock.MeanShift as a drop-in for sklearn.cluster.MeanShift (issue 15).

scikit-learn's own test file for mean shift, with only its import swapped to
flock's; scikit-learn's estimator checks; the meta-estimators; and the data on
which flock used to differ: ties at exactly the bandwidth on integer grids, and
float32 data far from the origin.
"""

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone, is_clusterer  # noqa: E402
from sklearn.cluster import MeanShift as SkMeanShift  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import flock  # noqa: E402
from flock.meanshift import MeanShift  # noqa: E402
from flock.testing import adjusted_rand_index as ari  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_compare_tool():
    """tools/compare_sklearn.py as a module (it owns the swap of scikit-learn's test file)."""
    spec = importlib.util.spec_from_file_location("compare_sklearn", ROOT / "tools" / "compare_sklearn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_sklearn_own_mean_shift_tests_pass(tmp_path):
    """Every test of scikit-learn's file, float32 and float64, under scikit-learn's own conftest."""
    tool = load_compare_tool()
    try:
        path = tool.swapped_sklearn_test_file(tmp_path)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    text = path.read_text()
    assert tool.FLOCK_IMPORT in text and "from sklearn.cluster import" not in text
    result = tool.run_sklearn_tests(tmp_path)
    assert result["returncode"] == 0, result["output"]
    assert " passed" in result["summary"] and "failed" not in result["summary"], result["output"]
    assert "error" not in result["summary"], result["output"]


@pytest.mark.slow
@parametrize_with_checks([MeanShift()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]])
    return np.concatenate([c + 0.6 * rng.standard_normal((n // 3, 2)) for c in centres])


def test_meta_estimators_clone_and_pickle():
    X = blobs()
    truth = np.repeat(np.arange(3), 50)
    assert is_clusterer(MeanShift())
    pipe = make_pipeline(StandardScaler(), MeanShift(bandwidth=0.8)).fit(X)
    np.testing.assert_array_equal(pipe.predict(X), pipe[-1].labels_)
    search = GridSearchCV(MeanShift(), {"bandwidth": [0.3, 2.0]}, scoring="adjusted_rand_score",
                          cv=KFold(2, shuffle=True, random_state=0))
    search.fit(X, truth)
    assert search.best_params_ == {"bandwidth": 2.0}
    fitted = MeanShift(bandwidth=2.0).fit(X)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(X), fitted.labels_)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "labels_")


def test_pandas_input_sets_feature_names():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(blobs(), columns=["x", "y"])
    model = MeanShift(bandwidth=2.0).fit(X)
    assert list(model.feature_names_in_) == ["x", "y"] and model.n_features_in_ == 2
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(X.rename(columns={"x": "a"}))
    model.fit(torch.tensor(X.to_numpy()))               # a tensor has no names: they are dropped
    assert not hasattr(model, "feature_names_in_")


def test_n_jobs_sets_torch_threads_only_during_fit(monkeypatch):
    seen = []
    import flock.meanshift as ms

    real = ms._label_points

    def spy(x, c, *args):
        seen.append(torch.get_num_threads())
        return real(x, c, *args)

    monkeypatch.setattr(ms, "_label_points", spy)
    before = torch.get_num_threads()
    MeanShift(bandwidth=2.0, n_jobs=1).fit(blobs())
    assert seen == [1] and torch.get_num_threads() == before


def test_mean_shift_function():
    X = blobs(1)
    centres, labels = flock.mean_shift(X, bandwidth=2.0)
    ref_c, ref_l = sklearn.cluster.mean_shift(X, bandwidth=2.0)
    np.testing.assert_allclose(centres, ref_c, atol=1e-9)
    np.testing.assert_array_equal(labels, ref_l)


# ---------------------------------------------------------------- where flock used to differ

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bandwidth", [1.0, 1.5])
def test_integer_grid_ties_as_sklearn(dtype, bandwidth):
    """Points at exactly the bandwidth count (d <= h), as scikit-learn's; ARI 0.52 / 0.80 before."""
    rng = np.random.default_rng(int(bandwidth * 10))
    X = rng.integers(0, 8, (120, 2)).astype(dtype)
    ref = SkMeanShift(bandwidth=bandwidth).fit(X)
    got = MeanShift(bandwidth=bandwidth).fit(X)
    assert ari(got.labels_, ref.labels_) == 1.0
    np.testing.assert_allclose(got.cluster_centers_, ref.cluster_centers_, atol=1e-5)


@pytest.mark.parametrize("bin_seeding", [False, True])
def test_float32_far_from_origin_as_float64_and_sklearn(bin_seeding):
    """20 blobs in a 30,000-wide box, bandwidth 2: float32 gave ARI 0.72 (0.52 with bins) before."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 30_000, (20, 2))
    X = np.concatenate([c + rng.normal(0, 1.0, (20, 2)) for c in centres]).astype(np.float32)
    f32 = MeanShift(bandwidth=2.0, bin_seeding=bin_seeding).fit(X)
    f64 = MeanShift(bandwidth=2.0, bin_seeding=bin_seeding).fit(X.astype(np.float64))
    ref = SkMeanShift(bandwidth=2.0, bin_seeding=bin_seeding).fit(X)
    assert f32.cluster_centers_.dtype == np.float32
    assert ari(f32.labels_, f64.labels_) == 1.0
    assert ari(f32.labels_, ref.labels_) == 1.0
    tensor = MeanShift(bandwidth=2.0, bin_seeding=bin_seeding).fit(torch.from_numpy(X))   # torch's default dtype
    assert ari(tensor.labels_.numpy(), ref.labels_) == 1.0
