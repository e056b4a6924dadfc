"""Dispatch overhead of ``flocksim sweep`` per run: local (in-process, a process pool) and Ray.

A sweep of R runs of 1 step of a 100-agent scenario (boids_torus.yaml scaled down), and of
2R runs; the per-run overhead is ``(T(2R) - T(R)) / R - bare``, where ``bare`` is the time of
one run as a plain ``Simulation.from_scenario(...); sim.step(1)`` loop measured in the same
process (the baseline), so start-up (spawning workers, connecting to Ray) cancels out.
Each figure is the median of ``--repeats`` measurements after a warm-up.

    python tools/bench_sweep.py --runs 200 --engines serial,pool,ray --json tools/results/bench_sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import flock  # noqa: E402
from flock.sweep_run import run_sweep  # noqa: E402
from flock.sweep_spec import build_sweep  # noqa: E402


def _sweep(runs: int):
    return build_sweep({"base": str(ROOT / "scenarios/boids_torus.yaml"),
                        "set": {"agents.count": 100, "world.size": [73, 73], "run.device": "cpu"},
                        "parameters": {"rules.alignment.weight": [round(k / runs, 6) for k in range(runs)]},
                        "steps": 1, "metrics": {"polarization": {}}, "run": {"batch_replicates": False}})


def _bare(sweep) -> float:
    """Seconds per run of a plain loop over the same runs (no sweep machinery)."""
    start = time.perf_counter()
    for point in sweep.points:
        for run in point.runs:
            sim = flock.Simulation.from_scenario(point.scenario, seed=run.seed)
            sim.step(1)
            _ = sim.metrics.rows
    return (time.perf_counter() - start) / len(sweep.runs)


def _timed(sweep, engine: str, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        kw = {"ray_address": "auto"} if engine == "ray" else {"workers": 1 if engine == "serial" else workers}
        outcome = run_sweep(sweep, out=out, threads=1, progress=False, **kw)
        assert outcome.failed == 0 and outcome.ran == len(sweep.runs)
        return outcome.seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--engines", default="serial,pool,ray")
    ap.add_argument("--workers", type=int, default=2, help="pool workers and Ray CPUs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    small, big = _sweep(args.runs), _sweep(2 * args.runs)
    _bare(small)  # warm-up
    bare = statistics.median(_bare(small) for _ in range(args.repeats))
    print(f"bare loop: {bare * 1e3:.2f} ms per run (baseline)")
    results = {"bare_ms_per_run": bare * 1e3, "engines": {}}
    engines = args.engines.split(",")
    ray = None
    if "ray" in engines:
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    try:
        for engine in engines:
            _timed(_sweep(8), engine, args.workers)  # warm-up (Ray: workers started, code shipped)
            per_run = []
            for _ in range(args.repeats):
                t_small, t_big = _timed(small, engine, args.workers), _timed(big, engine, args.workers)
                per_run.append((t_big - t_small) / args.runs)
            wall = statistics.median(per_run)
            results["engines"][engine] = {"wall_ms_per_run": wall * 1e3, "overhead_ms_per_run": (wall - bare) * 1e3,
                                          "samples_ms": [p * 1e3 for p in per_run]}
            print(f"{engine:>6}: {wall * 1e3:.2f} ms per run, overhead {(wall - bare) * 1e3:+.2f} ms per run "
                  f"(samples {', '.join(f'{p * 1e3:.1f}' for p in per_run)})")
    finally:
        if ray is not None:
            ray.shutdown()
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        results.update(command=" ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), commit=commit,
                       torch=torch.__version__, machine=platform.platform(), cpus=os.cpu_count(),
                       load=os.getloadavg()[0], runs=args.runs, workers=args.workers)
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
