"""``flocksim cluster`` end to end: CSV with a header, .npy, labels file, plot, bad files."""

import argparse
import sys

import numpy as np
import pytest

from flock.cluster_cli import add_cluster_parser, read_points, run_cluster


def cluster(argv):
    parser = argparse.ArgumentParser(prog="flocksim")
    add_cluster_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cluster", *map(str, argv)])
    return run_cluster(args)


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.concatenate([c + 0.5 * rng.standard_normal((40, 2)) for c in centres])
    return X, np.repeat(np.arange(3), 40)


def same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pairs = {(int(x), int(y)) for x, y in zip(a, b)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_csv_with_header(tmp_path, capsys):
    X, truth = blobs()
    data = tmp_path / "points.csv"
    data.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in X))
    out = tmp_path / "labels.csv"
    assert cluster([data, "--bandwidth", "2", "--kernel", "gaussian", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "120 points, 2 features" in text and "3 clusters; sizes: 40, 40, 40" in text
    lines = out.read_text().splitlines()
    assert lines[0] == "label" and len(lines) == 121          # header, then one label per input row
    assert same_partition([int(v) for v in lines[1:]], truth)


def test_npy_and_csv_without_header(tmp_path, capsys):
    X, truth = blobs(1)
    npy = tmp_path / "points.npy"
    np.save(npy, X.astype(np.float32))
    out = tmp_path / "npy_labels.csv"
    assert cluster([npy, "--bandwidth", "auto", "--out", out, "--bin-seeding"]) == 0
    assert "(estimated)" in capsys.readouterr().out
    labels = np.loadtxt(out, dtype=int)
    assert labels.shape == (120,) and same_partition(labels, truth)
    csv = tmp_path / "plain.csv"
    np.savetxt(csv, X, delimiter=",")
    out2 = tmp_path / "csv_labels.csv"
    assert cluster([csv, "--bandwidth", "2", "--mode", "blurring", "--out", out2]) == 0
    assert same_partition(np.loadtxt(out2, dtype=int), truth)


def test_unclustered_points_are_reported(tmp_path, capsys):
    X, _ = blobs(2)
    X = np.concatenate([X, [[50.0, 50.0]]])
    npy = tmp_path / "x.npy"
    np.save(npy, X)
    out = tmp_path / "l.csv"
    assert cluster([npy, "--bandwidth", "2", "--bin-seeding", "--min-bin-freq", "3", "--no-cluster-all",
                    "--out", out]) == 0
    assert "1 points unclustered (label -1)" in capsys.readouterr().out
    assert np.loadtxt(out, dtype=int)[-1] == -1


def test_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    X, _ = blobs(3)
    npy = tmp_path / "x.npy"
    np.save(npy, X)
    png = tmp_path / "plots" / "clusters.png"
    assert cluster([npy, "--bandwidth", "2", "--plot", png]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in capsys.readouterr().out


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    X, _ = blobs(3)
    npy = tmp_path / "x.npy"
    np.save(npy, X)
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    assert cluster([npy, "--bandwidth", "2", "--plot", tmp_path / "p.png"]) != 0
    assert "pip install matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
    assert cluster([npy, "--bandwidth", "2"]) == 0             # only --plot needs it


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "missing.csv: no such file"),
    ("points.txt", "1,2\n", "points.txt: unsupported file type '.txt'; expected .csv or .npy"),
    ("cells.csv", "x,y\n1,2\n3,abc\n", "cells.csv: line 3, column 2: expected a number, got 'abc'"),
    ("nan.csv", "1,2\n3,nan\n", "nan.csv: line 2, column 2: 'nan' is not a finite number"),
    ("inf.csv", "1,2\ninf,3\n", "inf.csv: line 2, column 1: 'inf' is not a finite number"),
    ("ragged.csv", "1,2\n3\n", "ragged.csv: line 2: expected 2 cells like line 1, got 1"),
    ("empty.csv", "", "empty.csv: empty file"),
    ("header.csv", "x,y\n", "header.csv: only a header row"),
])
def test_bad_csv_files(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    assert cluster([path, "--bandwidth", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("array, message", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "row 0, column 1 is nan; NaN and infinite values"),
    (np.array(["a", "b"]), "expected numbers, got an array of dtype <U1"),
    (np.zeros((2, 2, 2)), "expected a 2-D array (rows x features), got shape (2, 2, 2)"),
    (np.zeros((0, 2)), "empty array of shape (0, 2)"),
])
def test_bad_npy_files(tmp_path, capsys, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    assert cluster([path, "--bandwidth", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err and err.count("\n") == 1


def test_corrupt_npy_and_pickled_npy(tmp_path, capsys):
    corrupt = _write(tmp_path / "corrupt.npy", "not numpy")
    assert cluster([corrupt, "--bandwidth", "1"]) == 2
    assert "corrupt.npy: not a valid .npy file (no NPY header" in capsys.readouterr().err
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert cluster([pickled, "--bandwidth", "1"]) == 2
    assert "objects.npy: cannot read as a numeric .npy array" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--bandwidth", "-1"], "--bandwidth: expected a number > 0 or 'auto', got '-1'"),
    (["--bandwidth", "wide"], "--bandwidth: expected a number > 0 or 'auto', got 'wide'"),
    (["--bandwidth", "1", "--backend", "fused"], "backend='fused' runs only kernel='gaussian'"),
    (["--bandwidth", "0.001", "--bin-seeding", "--max-iter", "-1"],
     "The 'max_iter' parameter of MeanShift must be an int in the range [0, inf). Got -1"),
])
def test_bad_options(tmp_path, capsys, args, message):
    X, _ = blobs()
    npy = tmp_path / "x.npy"
    np.save(npy, X)
    assert cluster([npy, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_single_point_with_auto_bandwidth(tmp_path, capsys):
    # as scikit-learn: the estimated bandwidth of one point is 0, and the point is its own cluster
    path = _write(tmp_path / "one.csv", "1,2\n")
    assert cluster([path]) == 0
    assert "1 cluster" in capsys.readouterr().out


def test_read_points_one_column_and_header_detection(tmp_path):
    X, header = read_points(_write(tmp_path / "one.csv", "value\n1\n2.5\n-3e2\n"))
    assert header and X.shape == (3, 1) and X[2, 0] == -300.0
    X, header = read_points(_write(tmp_path / "two.csv", "1, 2\n3 ,4\n\n"))
    assert not header and X.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    np.save(tmp_path / "v.npy", np.arange(4))
    X, header = read_points(tmp_path / "v.npy")
    assert X.shape == (4, 1) and X.dtype == np.float64 and not header


def test_header_names_axes_float32_and_progress(tmp_path, capsys, monkeypatch):
    import flock.cluster_cli as cc

    X, truth = blobs(4)
    data = tmp_path / "named.csv"
    data.write_text("width,height\n" + "".join(f"{a},{b}\n" for a, b in X))
    values, names = read_points(data)
    assert names == ["width", "height"] and values.dtype == np.float32
    np.testing.assert_allclose(values, X.astype(np.float32))
    seen = {}
    monkeypatch.setattr(cc, "plot_clusters", lambda path, X, labels, centres, title, names=None:
                        seen.update(names=names, dtype=X.dtype))
    calls = []
    real = cc._ProgressBar.__call__
    monkeypatch.setattr(cc._ProgressBar, "__call__", lambda self, it, moving: (calls.append(moving),
                                                                                real(self, it, moving)))
    assert cluster([data, "--bandwidth", "2", "--plot", tmp_path / "p.png"]) == 0
    out = capsys.readouterr()
    assert "first row read as a header" in out.out and "width, height" in out.out
    assert seen == {"names": ["width", "height"], "dtype": np.float32}
    assert calls and calls[-1] == 0 and calls == sorted(calls, reverse=True)   # seeds still moving, down to 0
    assert cluster([data, "--bandwidth", "2", "--float64", "--no-progress"]) == 0
    assert "3 clusters" in capsys.readouterr().out
