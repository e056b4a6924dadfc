"""The numba backend's two loops side by side: the generic ``_cell_sums`` and the one unrolled for the call's shape.

    python tools/bench_numba_unrolled.py --agents 20000,100000 --dim 2 --threads 1

The standard flock (``flock.bench.standard_flock``: three Reynolds channels, ~20 neighbors
each, a wrapped box) is reduced with ``reduce_numba(..., unrolled=False)`` and
``unrolled=True`` alternately in one process, after a warm-up call of each (compile or
cache load); the median of ``--repeats`` calls of each is printed with the ratio, and the
two results are checked to be equal bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="20000,100000", help="comma-separated N")
    p.add_argument("--dim", type=int, default=2, choices=(2, 3))
    p.add_argument("--threads", type=int, default=1, help="numba threads")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)

    import numba
    import torch

    from flock import Simulation
    from flock.bench import standard_flock
    from flock.neighbors.numba_grid import reduce_numba
    from flock.scenario import validate_scenario

    numba.set_num_threads(args.threads)
    print(f"{'N':>9} {'D':>2} {'generic ms':>11} {'unrolled ms':>12} {'ratio':>6}")
    for n in (int(a) for a in args.agents.split(",")):
        sim = Simulation.from_scenario(validate_scenario(standard_flock(n, dim=args.dim)), backend="numba")
        pos, vel, kernels = sim.state.pos, sim.state.vel, list(sim.params.kernels)
        period = torch.tensor([float(s) for s in sim.scenario.world.size], dtype=pos.dtype)
        results, times = {}, {False: [], True: []}
        for unrolled in (False, True):
            results[unrolled] = reduce_numba(pos, vel, kernels, period=period, unrolled=unrolled)
        if not torch.equal(results[False], results[True]):
            print(f"N = {n}: the two loops differ", file=sys.stderr)
            return 1
        for _ in range(args.repeats):
            for unrolled in (False, True):
                t0 = time.perf_counter()
                reduce_numba(pos, vel, kernels, period=period, unrolled=unrolled)
                times[unrolled].append(time.perf_counter() - t0)
        g, u = (1e3 * statistics.median(times[k]) for k in (False, True))
        print(f"{n:>9,} {args.dim:>2} {g:>11.2f} {u:>12.2f} {g / u:>5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
