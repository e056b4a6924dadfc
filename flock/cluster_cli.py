"""``flocksim cluster``: mean shift clustering of a data file from the command line.

    flocksim cluster DATA.{csv,npy} [--bandwidth X|auto] [--kernel K] [--mode M]
                     [--backend B] [--device D] [--bin-seeding] [--min-bin-freq K]
                     [--max-iter N] [--no-cluster-all] [--out labels.csv]
                     [--plot clusters.png]

Reads an [N, D] table of numbers (a CSV file with or without a header row, or a
.npy array), clusters it with ``flock.MeanShift``, prints the number of clusters
and their sizes, and optionally writes one label per input row and a scatter
plot of the first two columns coloured by cluster (needs matplotlib).
Errors a user can cause (missing or unreadable file, wrong extension,
non-numeric or non-finite cells, bad options) print one line naming the file
and the problem and return 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ScenarioError
from .input_files import MAX_ARRAY_BYTES, file_problem
from .meanshift_options import BACKENDS, KERNELS, MODES
from .names import MAX_ABS_VALUE
from .output_paths import LABEL_SUFFIXES, PLOT_SUFFIXES, check_output_file


class DataError(ValueError):
    """A data file that cannot be clustered; the message names the file and the problem."""


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv_points(path: Path, dtype=np.float32) -> tuple[np.ndarray, list[str] | None]:
    """[N, D] points of a comma-separated file, and its header's names (None: no header row).

    The first row is a header when any of its cells is not a number. Blank
    lines are skipped; every other row must have the header's (or the first
    row's) number of cells, all numbers and finite. Parsed by pandas' C reader
    (2,000,000 rows: 0.52-0.65 s, pyarrow's 0.59-0.74 s, this box at load 5);
    a file it rejects, or with non-finite values, is read again by the checks
    below, which name the line and column.
    """
    fast = _read_csv_fast(path, dtype)
    if fast is not None:
        return fast
    values, names = _read_csv_checked(path)
    return values.astype(dtype, copy=False), names


def _read_csv_fast(path: Path, dtype):
    """(points, names) by pandas, or None when the file needs the line-by-line checks."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return None
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = next((row for row in csv.reader(fh) if any(cell.strip() for cell in row)), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    if first is None:
        return None
    header = any(_number(cell) is None for cell in first)
    try:
        frame = pd.read_csv(path, header=0 if header else None, dtype=dtype, engine="c",
                            skip_blank_lines=True, encoding="utf-8-sig", float_precision="high")
    except Exception:  # noqa: BLE001  (pandas raises many kinds; the checked reader names the problem)
        return None
    values = frame.to_numpy(dtype=dtype)
    if values.shape[0] == 0 or values.shape[1] != len(first) or not np.isfinite(values).all():
        return None
    return np.ascontiguousarray(values), ([c.strip() for c in first] if header else None)


def _read_csv_checked(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """``read_csv_points`` by Python's csv module, cell by cell, in float64 (precise messages)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [(i, row) for i, row in enumerate(csv.reader(fh), start=1)
                    if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (could not decode it as UTF-8)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    if not rows:
        raise DataError(f"{path}: empty file: no rows of numbers")
    header = any(_number(cell) is None for cell in rows[0][1])
    data_rows = rows[1:] if header else rows
    if not data_rows:
        raise DataError(f"{path}: only a header row, no rows of numbers")
    width = len(rows[0][1])
    names = [cell.strip() for cell in rows[0][1]] if header else None
    values = np.empty((len(data_rows), width), dtype=np.float64)
    for r, (line, row) in enumerate(data_rows):
        if len(row) != width:
            raise DataError(f"{path}: line {line}: expected {width} cells like line {rows[0][0]}, "
                            f"got {len(row)}")
        for c, cell in enumerate(row):
            v = _number(cell)
            if v is None:
                raise DataError(f"{path}: line {line}, column {c + 1}: expected a number, got {cell!r}")
            if not math.isfinite(v):
                raise DataError(f"{path}: line {line}, column {c + 1}: {cell.strip()!r} is not a finite "
                                "number; drop or impute such rows first")
            values[r, c] = v
    return values, names


def read_npy_points(path: Path) -> np.ndarray:
    """[N, D] points of a .npy file (a 1-D array is one column)."""
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise DataError(f"{path}: not a valid .npy file (no NPY header; save arrays with numpy.save)")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as a numeric .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a valid .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: expected one array, got {type(arr).__name__}")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array (rows x features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: empty array of shape {arr.shape}")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{path}: row {row}, column {col} is {arr[row, col]}; NaN and infinite "
                        "values are not supported, drop or impute them first")
    return arr


def read_points(path: str | Path, dtype=np.float32) -> tuple[np.ndarray, list[str] | None]:
    """Points [N, D] of a .csv (as ``dtype``) or .npy file (its own float dtype), and the header's
    column names (None: no header row)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npy"):
        raise DataError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; expected .csv or .npy")
    problem = file_problem(path, max_bytes=MAX_ARRAY_BYTES)
    if problem == "file not found":
        raise DataError(f"{path}: no such file")
    if problem is not None:  # a folder, FIFO (which would block), device, bad link, unreadable, too big
        raise DataError(f"{path}: {problem}")
    try:
        if suffix == ".npy":
            return read_npy_points(path), None
        return read_csv_points(path, dtype)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _bandwidth(text: str) -> float | None:
    if text.strip().lower() == "auto":
        return None
    v = _number(text)
    if v is None or not math.isfinite(v) or v <= 0 or v > MAX_ABS_VALUE:
        limit = f" (at most {MAX_ABS_VALUE:g})" if v is not None and v > MAX_ABS_VALUE else ""
        raise DataError(f"--bandwidth: expected a number > 0 or 'auto', got {text!r}{limit}")
    return v


def _check_flags(args) -> None:
    """The device and the output files, before any work (MeanShift checks its own parameters)."""
    if args.device is not None:
        from .resources import check_device  # torch: imported when a command runs, not for --help

        args.device = check_device(args.device)
    if args.out:
        check_output_file(args.out, "--out", LABEL_SUFFIXES)
    if args.plot:
        check_output_file(args.plot, "--plot", PLOT_SUFFIXES)


def write_labels(path: Path, labels: np.ndarray, header: bool) -> None:
    """One label per line; a ``label`` header line when the input had a header, so lines align."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        if header:
            fh.write("label\n")
        fh.write("".join(f"{int(v)}\n" for v in labels))


def plot_clusters(path: Path, X: np.ndarray, labels: np.ndarray, centres: np.ndarray, title: str,
                  names: list[str] | None = None) -> None:
    """Scatter of X's first two columns coloured by label, centres as black crosses (matplotlib Agg);
    axes named by ``names`` (the CSV header) or "column 1", "column 2"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def xy(a):
        return (a[:, 0], a[:, 1]) if a.shape[1] > 1 else (a[:, 0], np.zeros(len(a)))

    fig = Figure(figsize=(8, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    noise = labels < 0
    if noise.any():
        ax.scatter(*xy(X[noise]), s=3, c="lightgrey", label="unclustered")
    ok = ~noise
    n_colours = 10 if len(centres) <= 10 else 20
    ax.scatter(*xy(X[ok]), s=3, c=labels[ok] % n_colours, cmap=f"tab{n_colours}", vmin=0,
               vmax=n_colours - 1)
    ax.scatter(*xy(centres), s=120, marker="x", c="black", linewidths=2.5, label="centres")
    ax.set_title(title)
    names = names or [f"column {i + 1}" for i in range(X.shape[1])]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1] if X.shape[1] > 1 else "")
    ax.legend(loc="best", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


class _ProgressBar:
    """``f(iteration, seeds_moving)`` for ``MeanShift.fit``: one tqdm bar of iterations, the
    seeds still moving as its postfix (stderr; silent where tqdm is missing)."""

    def __init__(self, max_iter: int):
        self.max_iter = max_iter
        self.bar = None

    def __call__(self, iteration: int, moving: int) -> None:
        if self.bar is None:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                return
            self.bar = tqdm(total=self.max_iter + 1, desc="mean shift", unit="it", file=sys.stderr,
                            leave=False)
        self.bar.update(1)
        self.bar.set_postfix_str(f"{moving} seeds moving", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def add_cluster_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``cluster`` subcommand to an argparse ``subparsers`` object; returns its parser."""
    p = subparsers.add_parser(
        "cluster", help="mean shift clustering of a .csv or .npy file",
        description="Cluster the rows of a .csv (header row optional) or .npy file with mean shift; "
                    "print the clusters and their sizes, optionally write the labels and a plot.")
    p.add_argument("data", help="a .csv or .npy file of numbers, one point per row")
    p.add_argument("--bandwidth", default="auto", metavar="X|auto",
                   help="kernel bandwidth in data units, or 'auto' to estimate it (default auto; "
                        "quadratic time in the number of points)")
    p.add_argument("--kernel", default="flat", choices=KERNELS, help="default flat (scikit-learn's)")
    p.add_argument("--mode", default="standard", choices=MODES,
                   help="standard: seeds climb over the data (scikit-learn); blurring: the data itself "
                        "moves (the fastai lessons); default standard")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="neighbor backend (default auto)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default cpu)")
    p.add_argument("--bin-seeding", action="store_true",
                   help="seed from bandwidth-sized bins instead of every point (faster)")
    p.add_argument("--min-bin-freq", type=int, default=1,
                   help="with --bin-seeding, fewest points for a bin to seed (default 1)")
    p.add_argument("--max-iter", type=int, default=300, help="iterations per seed (default 300)")
    p.add_argument("--no-cluster-all", action="store_true",
                   help="label points farther than the bandwidth from every centre -1")
    p.add_argument("--float64", action="store_true",
                   help="compute in float64 (default: a CSV is read as float32; a .npy keeps its dtype)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--out", default=None, metavar="labels.csv",
                   help="write one label per input row (after a 'label' header if the input had one)")
    p.add_argument("--plot", default=None, metavar="clusters.png",
                   help="scatter plot of the first two columns coloured by cluster (needs matplotlib)")
    p.set_defaults(func=run_cluster)
    return p


def run_cluster(args) -> int:
    """Run ``flocksim cluster`` with parsed ``args``; returns the exit status (0 ok, 2 bad input)."""
    def fail(message: str) -> int:
        print(f"flocksim cluster: {message}", file=sys.stderr)
        return 2

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return fail("--plot needs matplotlib, which is not installed: pip install matplotlib")
    try:
        _check_flags(args)
        bandwidth = _bandwidth(str(args.bandwidth))
        X, names = read_points(args.data, np.float64 if args.float64 else np.float32)
        if args.float64:
            X = X.astype(np.float64, copy=False)
    except (DataError, ScenarioError) as exc:
        return fail(str(exc))
    header = names is not None
    if header:
        print(f"{args.data}: first row read as a header (it has a cell that is not a number): "
              + ", ".join(names))
    from .meanshift import MeanShift  # torch: imported when a command runs, not for --help

    model = MeanShift(bandwidth=bandwidth, kernel=args.kernel, mode=args.mode, backend=args.backend,
                      device=args.device, bin_seeding=args.bin_seeding, min_bin_freq=args.min_bin_freq,
                      max_iter=args.max_iter,
                      cluster_all=not args.no_cluster_all)
    bar = None if args.no_progress else _ProgressBar(args.max_iter)
    start = time.perf_counter()
    try:
        model.fit(X, progress=bar)
    except ValueError as exc:
        return fail(f"{args.data}: {exc}")
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    labels = np.asarray(model.labels_)
    n_clusters = len(model.cluster_centers_)
    sizes = np.bincount(labels[labels >= 0], minlength=n_clusters)
    how = "estimated" if bandwidth is None else "given"
    print(f"{args.data}: {X.shape[0]} points, {X.shape[1]} features; bandwidth {model.bandwidth_:.6g} "
          f"({how}), kernel {args.kernel}, mode {args.mode}, backend {model.backend_}; "
          f"{seconds:.2f} s, {model.n_iter_} iterations")
    print(f"{n_clusters} cluster{'s' if n_clusters != 1 else ''}; sizes: "
          + ", ".join(str(int(s)) for s in sizes))
    unclustered = int((labels < 0).sum())
    if unclustered:
        print(f"{unclustered} points unclustered (label -1)")
    try:
        if args.out:
            write_labels(Path(args.out), labels, header)
            print(f"wrote {args.out}")
        if args.plot:
            title = f"{Path(args.data).name}: {n_clusters} clusters (mean shift, {args.kernel}, " \
                    f"bandwidth {model.bandwidth_:.3g})"
            plot_clusters(Path(args.plot), X, labels, np.asarray(model.cluster_centers_), title, names)
            print(f"wrote {args.plot}")
    except Exception as exc:  # noqa: BLE001  (matplotlib and the OS raise many kinds; the labels are reported)
        return fail(f"cannot write output: {type(exc).__name__}: {str(exc)[:300]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flock.cluster_cli DATA ...`` without the ``flocksim`` wrapper."""
    parser = argparse.ArgumentParser(prog="flocksim")
    add_cluster_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cluster", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
