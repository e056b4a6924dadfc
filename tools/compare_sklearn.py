"""flock.MeanShift against sklearn.cluster.MeanShift on the fastai lesson's blobs.

    python tools/compare_sklearn.py --sizes 1500,20000 --json runs/compare_sklearn.json

The data are the 2022 fastai notebook's: 6 centroids uniform in [-35, 35]^2
(``torch.manual_seed(42)``), points drawn around each with covariance diag(5, 5),
float32; 1,500 points are exactly the lesson's 6 x 250, larger sizes draw more
points around the same 6 centres. For every size and variant, scikit-learn's
``MeanShift(bandwidth=2.5, n_jobs=-1)`` and ``flock.MeanShift(bandwidth=2.5)``
are fitted in the same run, back to back, and the table gives the clusters
found, the adjusted Rand index (ARI) of flock's labels against scikit-learn's
and of both against the true blobs, the seconds of each ``fit`` and the ratio.

Variants (``--variants``):
    flat            standard mode, flat kernel, every point a seed (scikit-learn's default)
    flat+bins       the same with ``bin_seeding=True``
    gaussian        flock's Gaussian kernel (fused attention), every point a seed;
                    compared with scikit-learn's flat kernel, every point a seed
    gaussian+bins   the same with ``bin_seeding=True``

scikit-learn runs in a child process (``--sklearn-timeout`` seconds at most,
then "not run"); without bin seeding it is skipped above ``--skip-sklearn-above``
points (it takes minutes there). Timings are of ``fit`` alone, wall clock, after
one untimed warm-up fit of each implementation; a fit shorter than
``--repeat-below`` seconds is repeated ``--repeats`` times and the median taken,
for both implementations alike (shared machines are noisy).

``--sklearn-tests`` runs scikit-learn's own ``cluster/tests/test_mean_shift.py``
(from the installed scikit-learn) with only its import swapped to flock's, under
scikit-learn's conftest with its float32 tests on, and prints pytest's summary;
``--check-estimator`` runs ``sklearn.utils.estimator_checks.check_estimator`` on
``flock.MeanShift()`` and prints every failed check (both add to the JSON):

    python tools/compare_sklearn.py --sklearn-tests --check-estimator --sizes 1000000 --variants flat+bins

``--backend-steps`` instead times one mean shift step per neighbor backend (the
measurement behind ``backend="auto"``, see ``flock.meanshift.choose_meanshift_backend``):

    python tools/compare_sklearn.py --backend-steps --sizes 2000,20000,100000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import flock  # noqa: E402
from flock.meanshift import MeanShift  # noqa: E402
from flock.testing import adjusted_rand_index  # noqa: E402

VARIANTS = {
    "flat": dict(kernel="flat", bin_seeding=False),
    "flat+bins": dict(kernel="flat", bin_seeding=True),
    "gaussian": dict(kernel="gaussian", bin_seeding=False),
    "gaussian+bins": dict(kernel="gaussian", bin_seeding=True),
}


def lesson_blobs(n_points: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """[n, 2] float32 points around the lesson's 6 centroids, and their true blob index."""
    from torch.distributions.multivariate_normal import MultivariateNormal

    sizes = [n_points // 6 + (1 if i < n_points % 6 else 0) for i in range(6)]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        centroids = torch.rand(6, 2) * 70 - 35
        cov = torch.diag(torch.tensor([5.0, 5.0]))
        data = torch.cat([MultivariateNormal(c, cov).sample((k,)) for c, k in zip(centroids, sizes)])
    return data.numpy(), np.repeat(np.arange(6), sizes)


# ------------------------------------------------------------------ scikit-learn, in a child

def _sklearn_child(X, params, queue):
    try:
        from sklearn.cluster import MeanShift as SkMeanShift

        # untimed: start joblib's worker pool (n_jobs=-1), as a long-lived process would have it
        SkMeanShift(**params).fit(X[:: max(1, len(X) // 60)])
        start = time.perf_counter()
        model = SkMeanShift(**params).fit(X)
        queue.put(("ok", time.perf_counter() - start, model.labels_, len(model.cluster_centers_)))
        try:    # stop joblib's workers so that this process exits by itself
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(wait=True)
        except Exception:  # noqa: BLE001  (an older joblib: the parent terminates the child)
            pass
    except Exception as exc:  # reported in the table, not raised
        queue.put(("error", 0.0, None, f"{type(exc).__name__}: {exc}"))


def _median_of(runs: list[dict]) -> dict:
    runs = sorted(runs, key=lambda r: r["seconds"])
    best = dict(runs[len(runs) // 2])
    best["repeats"] = len(runs)
    return best


def run_sklearn_repeated(X, params, timeout, repeats, repeat_below) -> dict:
    first = run_sklearn(X, params, timeout)
    if first["status"] != "ok" or first["seconds"] >= repeat_below or repeats <= 1:
        return first
    runs = [first] + [run_sklearn(X, params, timeout) for _ in range(repeats - 1)]
    return _median_of([r for r in runs if r["status"] == "ok"])


def run_flock_repeated(X, params, repeats, repeat_below) -> dict:
    first = run_flock(X, params)
    if first["seconds"] >= repeat_below or repeats <= 1:
        return first
    return _median_of([first] + [run_flock(X, params) for _ in range(repeats - 1)])


def run_sklearn(X, params: dict, timeout: float) -> dict:
    """Fit scikit-learn's MeanShift in a spawned process; {"status", "seconds", "labels", "n_clusters"}."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    # not a daemon: joblib runs n_jobs=-1 in parallel only outside daemonic processes
    proc = ctx.Process(target=_sklearn_child, args=(X, params, queue), daemon=False)
    proc.start()
    try:
        status, seconds, labels, extra = queue.get(timeout=timeout)
    except Exception:  # queue.Empty: timed out
        proc.terminate()
        proc.join(5)
        return {"status": f"timeout {timeout:g}s"}
    proc.join(30)
    if proc.is_alive():   # joblib's worker pool can keep the child from exiting: the result is in
        proc.terminate()
        proc.join(5)
    if status != "ok":
        return {"status": extra}
    return {"status": "ok", "seconds": seconds, "labels": labels, "n_clusters": extra}


def sklearn_version() -> str | None:
    try:
        import sklearn
    except ImportError:
        return None
    return sklearn.__version__


# ------------------------------------------------------------------ scikit-learn's own checks

SKLEARN_IMPORT = "from sklearn.cluster import MeanShift, estimate_bandwidth, get_bin_seeds, mean_shift"
FLOCK_IMPORT = "from flock.meanshift import MeanShift, estimate_bandwidth, get_bin_seeds, mean_shift"


def swapped_sklearn_test_file(dest: Path) -> Path:
    """scikit-learn's installed ``cluster/tests/test_mean_shift.py``, import swapped to flock's, in ``dest``.

    Raises:
        FileNotFoundError: scikit-learn's tests are not installed.
        ValueError: the file no longer has the one import line this swaps.
    """
    import sklearn

    src = Path(sklearn.__file__).parent / "cluster" / "tests" / "test_mean_shift.py"
    if not src.is_file():
        raise FileNotFoundError(f"{src}: scikit-learn's tests are not installed")
    text = src.read_text()
    if text.count(SKLEARN_IMPORT) != 1:
        raise ValueError(f"{src}: expected the line {SKLEARN_IMPORT!r} once; update SKLEARN_IMPORT")
    out = Path(dest) / "test_mean_shift_flock.py"
    out.write_text(text.replace(SKLEARN_IMPORT, FLOCK_IMPORT))
    return out


def run_sklearn_tests(dest: Path, timeout: float = 600) -> dict:
    """Run the swapped file with pytest in a child (scikit-learn's conftest, float32 on, its warnings as errors).

    Returns:
        {"returncode", "summary" (pytest's last line), "output" (its tail)}.
    """
    path = swapped_sklearn_test_file(dest)
    env = dict(os.environ, SKLEARN_RUN_FLOAT32_TESTS="1", SKLEARN_WARNINGS_AS_ERRORS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "sklearn.conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(dest), str(path)],
                          cwd=dest, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return {"returncode": proc.returncode, "summary": lines[-1] if lines else proc.stderr[-500:],
            "output": proc.stdout[-4000:] + proc.stderr[-2000:]}


def run_check_estimator() -> dict:
    """``check_estimator(flock.MeanShift(), on_fail=None)``: {"checks", "passed", "skipped", "failed": [...]}."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # SkipTestWarning for the array API check
        results = check_estimator(MeanShift(), on_fail=None)
    failed = [{"check": r["check_name"], "error": repr(r["exception"])[:500]}
              for r in results if r["status"] == "failed"]
    return {"checks": len(results), "passed": sum(r["status"] == "passed" for r in results),
            "skipped": sum(r["status"] == "skipped" for r in results), "failed": failed}


# ------------------------------------------------------------------ flock

def run_flock(X, params: dict) -> dict:
    start = time.perf_counter()
    model = MeanShift(**params).fit(X)
    seconds = time.perf_counter() - start
    return {"status": "ok", "seconds": seconds, "labels": np.asarray(model.labels_),
            "n_clusters": len(model.cluster_centers_), "backend": model.backend_, "n_iter": model.n_iter_}


# ------------------------------------------------------------------ backend steps

def _best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after one untimed call (min: the least disturbed run)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def backend_steps(sizes, bandwidths, max_plain: int, repeats: int) -> list[dict]:
    """Seconds of one mean shift step (every point a seed over every point) per backend.

    flat: ``dense`` = the estimator's spatially batched matrix-product calls,
    ``dense-plain`` = one matrix-product call over all pairs (``reduce_gemm``),
    ``grid`` = the cell list. gaussian: ``fused`` = ``fused_mean_shift_step``,
    ``dense-plain`` untruncated over all pairs (the estimator's ``backend="dense"``),
    ``grid`` and ``dense`` (batched) truncated at 3 bandwidths.
    """
    from flock.meanshift import GAUSSIAN_TRUNCATE, _Sums
    from flock.neighbors import reduce_neighbors
    from flock.neighbors.fused import fused_mean_shift_step
    from flock.neighbors.gemm import reduce_gemm

    rows = []
    for n in sizes:
        X = torch.from_numpy(lesson_blobs(n)[0])
        extent = float((X.max(0).values - X.min(0).values).max())

        def grid(k, X=X):
            return reduce_neighbors(X, X, [k], backend="grid", query_pos=X)

        def plain(k, X=X):
            return reduce_gemm(X, X, k)

        for h in bandwidths:
            flat = flock.Kernel("flat", radius=h, exclude_self=False)
            cut = flock.Kernel("gaussian", bandwidth=h, radius=GAUSSIAN_TRUNCATE * h, exclude_self=False)
            full = flock.Kernel("gaussian", bandwidth=h, exclude_self=False)
            cases = {   # (kernel, backend): (step, support)
                ("flat", "dense"): (lambda: _Sums(flat, "dense")(X, X), h),
                ("flat", "grid"): (lambda: grid(flat), h),
                ("gaussian", "fused"): (lambda: fused_mean_shift_step(X, h), float("inf")),
                ("gaussian", "dense-cut"): (lambda: _Sums(cut, "dense")(X, X), cut.support),
                ("gaussian", "grid-cut"): (lambda: grid(cut), cut.support),
            }
            if n <= max_plain:
                cases[("flat", "dense-plain")] = (lambda: plain(flat), h)
                cases[("gaussian", "dense-plain")] = (lambda: plain(full), float("inf"))
            for (kernel, backend), (fn, support) in cases.items():
                seconds = _best_time(fn, repeats if n <= 20_000 else 1)
                rows.append({"n_points": n, "bandwidth": h, "support_over_extent": support / extent,
                             "kernel": kernel, "backend": backend, "seconds": seconds})
                print(f"{n:>7} h={h:<6g} {kernel:<9} {backend:<12} {seconds:8.3f} s", flush=True)
    return rows


# ------------------------------------------------------------------ table

def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(records: list[dict]) -> None:
    head = (f"{'points':>7} {'variant':<14} {'sk n':>4} {'fl n':>4} {'ARI fl/sk':>9} {'ARI sk/true':>11} "
            f"{'ARI fl/true':>11} {'sklearn s':>10} {'flock s':>8} {'speedup':>8}  notes")
    print(head)
    print("-" * len(head))
    for r in records:
        sk_s = r["sklearn_seconds"] if r["sklearn_status"] == "ok" else None
        speed = f"{r['speedup']:.1f}x" if r["speedup"] is not None else "-"
        notes = [f"flock {r['flock_backend']}"]
        if r["sklearn_status"] != "ok":
            notes.append(f"sklearn {r['sklearn_status']}")
        if r["sklearn_kernel"] != r["kernel"]:
            notes.append("vs sklearn flat")
        print(f"{r['n_points']:>7} {r['variant']:<14} {_fmt(r['sklearn_clusters'], 'd'):>4} "
              f"{r['flock_clusters']:>4} {_fmt(r['ari_flock_sklearn'], '.4f'):>9} "
              f"{_fmt(r['ari_sklearn_truth'], '.4f'):>11} {r['ari_flock_truth']:>11.4f} "
              f"{_fmt(sk_s, '.2f') if sk_s is not None else 'not run':>10} {r['flock_seconds']:>8.2f} "
              f"{speed:>8}  {'; '.join(notes)}")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1500,20000,100000", help="comma-separated point counts")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--bandwidth", type=float, default=2.5)
    parser.add_argument("--skip-sklearn-above", type=int, default=20_000,
                        help="do not run scikit-learn without bin seeding above this many points "
                             "(default 20000; it takes ~2 min at 20k and > 5 min at 100k)")
    parser.add_argument("--sklearn-timeout", type=float, default=900,
                        help="seconds one scikit-learn fit may take before it is stopped (default 900)")
    parser.add_argument("--skip-gaussian-above", type=int, default=20_000,
                        help="run flock's Gaussian without bin seeding only up to this many points "
                             "(every point a seed over every point: quadratic per iteration)")
    parser.add_argument("--no-sklearn", action="store_true", help="run flock only")
    parser.add_argument("--device", default=None, help="flock's device (default cpu)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fits shorter than --repeat-below seconds are repeated this many times "
                             "and the median is reported (both implementations alike; default 3)")
    parser.add_argument("--repeat-below", type=float, default=10.0)
    parser.add_argument("--backend-steps", action="store_true",
                        help="instead of the comparison, time one mean shift step per backend "
                             "(the measurement behind backend='auto')")
    parser.add_argument("--step-bandwidths", default="0.25,2.5,10",
                        help="bandwidths for --backend-steps (default 0.25,2.5,10)")
    parser.add_argument("--max-plain", type=int, default=20_000,
                        help="largest N for the unbatched dense step in --backend-steps")
    parser.add_argument("--sklearn-tests", action="store_true",
                        help="also run scikit-learn's test_mean_shift.py with the import swapped to flock's")
    parser.add_argument("--check-estimator", action="store_true",
                        help="also run sklearn's check_estimator on flock.MeanShift()")
    parser.add_argument("--json", default=None, help="write the records and the setup to this JSON file")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    have_sklearn = sklearn_version() is not None and not args.no_sklearn
    if sklearn_version() is None and not args.no_sklearn:
        print("scikit-learn is not installed (pip install scikit-learn): running flock only")

    bw = args.bandwidth
    meta = {"command": "python tools/compare_sklearn.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "torch": torch.__version__, "sklearn": sklearn_version(), "numpy": np.__version__,
            "flock": flock.__version__, "commit": _git_commit(), "python": platform.python_version(),
            "machine": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "bandwidth": bw, "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}
    print(f"torch {meta['torch']}, scikit-learn {meta['sklearn']}, {meta['cpus']} CPUs, "
          f"torch threads {meta['torch_threads']}, bandwidth {bw}")
    if args.backend_steps:
        hs = [float(h) for h in args.step_bandwidths.split(",") if h.strip()]
        rows = backend_steps(sizes, hs, args.max_plain, args.repeats)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"meta": meta, "steps": rows}, indent=2))
            print(f"wrote {args.json}")
        return 0

    checks = {}
    if args.sklearn_tests:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            checks["sklearn_tests"] = run_sklearn_tests(Path(tmp))
        print(f"scikit-learn's test_mean_shift.py, import swapped to flock's: "
              f"{checks['sklearn_tests']['summary']}")
        if checks["sklearn_tests"]["returncode"] != 0:
            print(checks["sklearn_tests"]["output"])
    if args.check_estimator:
        checks["check_estimator"] = ce = run_check_estimator()
        print(f"check_estimator(flock.MeanShift()): {ce['passed']} passed, {len(ce['failed'])} failed, "
              f"{ce['skipped']} skipped of {ce['checks']}")
        for f in ce["failed"]:
            print(f"  FAILED {f['check']}: {f['error']}")
    if not sizes:
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"meta": meta, "checks": checks, "records": []}, indent=2))
        return 0

    # warm-up: first calls pay for imports, thread pools, kernel probes
    Xw, _ = lesson_blobs(300)
    Xc, _ = lesson_blobs(30_000)     # large enough for the cell-list climb and grid labels (numba's cache)
    for v in variants:
        run_flock(Xw, dict(bandwidth=bw, device=args.device, **VARIANTS[v]))
        run_flock(Xc, dict(bandwidth=bw, device=args.device, **dict(VARIANTS[v], bin_seeding=True)))
    if have_sklearn:
        run_sklearn(Xw, dict(bandwidth=bw, bin_seeding=True, n_jobs=-1), args.sklearn_timeout)

    records = []
    for n in sizes:
        X, truth = lesson_blobs(n)
        sk_cache: dict[bool, dict] = {}
        for v in variants:
            params = VARIANTS[v]
            bins = params["bin_seeding"]
            if params["kernel"] == "gaussian" and not bins and n > args.skip_gaussian_above:
                print(f"{n:>7} {v:<14} skipped (--skip-gaussian-above {args.skip_gaussian_above})")
                continue
            if bins not in sk_cache:
                if not have_sklearn:
                    sk_cache[bins] = {"status": "not installed" if not args.no_sklearn else "--no-sklearn"}
                elif not bins and n > args.skip_sklearn_above:
                    sk_cache[bins] = {"status": f"skipped above {args.skip_sklearn_above}"}
                else:
                    sk_cache[bins] = run_sklearn_repeated(
                        X, dict(bandwidth=bw, bin_seeding=bins, n_jobs=-1), args.sklearn_timeout,
                        args.repeats, args.repeat_below)
            sk = sk_cache[bins]
            fl = run_flock_repeated(X, dict(bandwidth=bw, device=args.device, **params), args.repeats,
                                    args.repeat_below)
            ok = sk["status"] == "ok"
            rec = {
                "n_points": n, "variant": v, "kernel": params["kernel"], "bin_seeding": bins,
                "sklearn_kernel": "flat", "sklearn_status": sk["status"],
                "sklearn_clusters": sk.get("n_clusters") if ok else None,
                "sklearn_seconds": sk.get("seconds") if ok else None,
                "flock_clusters": fl["n_clusters"], "flock_seconds": fl["seconds"],
                "flock_backend": fl["backend"], "flock_n_iter": fl["n_iter"],
                "ari_flock_sklearn": adjusted_rand_index(fl["labels"], sk["labels"]) if ok else None,
                "ari_sklearn_truth": adjusted_rand_index(sk["labels"], truth) if ok else None,
                "ari_flock_truth": adjusted_rand_index(fl["labels"], truth),
                "speedup": sk["seconds"] / fl["seconds"] if ok and fl["seconds"] > 0 else None,
            }
            records.append(rec)
            print(f"{n:>7} {v:<14} sklearn: {sk['status']}"
                  + (f" {sk['seconds']:.2f} s" if ok else "") + f"; flock {fl['seconds']:.2f} s", flush=True)
    print()
    print_table(records)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "checks": checks, "records": records}, indent=2))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
