"""What a metrics row costs next to a step, measured in one process, interleaved (robust to a busy machine).

    PYTHONPATH=$PWD python tools/metrics_cost.py [--agents 1000,10000,100000,1000000] [--repeats 15]

``flocksim bench --metrics on,off`` times the two settings in separate runs; on a shared
machine whose load drifts between them the difference is noise. Here one simulation of
the standard flock (``flock.bench.standard_flock``, CPU, one thread) alternates a step
without metrics and one ``Simulation.measure()`` (the row a step with metrics on adds),
``--repeats`` times after a warm-up, and reports the medians of both (process CPU time
and wall time) and their ratio. The flock package is whatever ``PYTHONPATH`` points at,
so two checkouts can be compared back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def measure_cost(n_agents: int, repeats: int, scenario: str | None = None) -> dict:
    import flock
    from flock.bench import standard_flock
    from flock.scenario import load_scenario, validate_scenario
    from flock.threads import set_threads

    set_threads(1)
    if scenario:
        sc = load_scenario(scenario, overrides=[f"agents.count={n_agents}"])
    else:
        sc = validate_scenario(standard_flock(n_agents, dim=2, neighbors=20))
    sim = flock.Simulation.from_scenario(sc, device="cpu", record_metrics=False)
    sim.step(1)
    sim.measure()
    step, row = {"cpu": [], "wall": []}, {"cpu": [], "wall": []}
    for _ in range(repeats):
        for kind, fn in ((step, lambda: sim.step(1)), (row, sim.measure)):
            c, w = time.process_time(), time.perf_counter()
            fn()
            kind["cpu"].append(time.process_time() - c)
            kind["wall"].append(time.perf_counter() - w)
    out = {"n_agents": n_agents, "backend": sim.backend, "repeats": repeats}
    for clock in ("cpu", "wall"):
        s, m = statistics.median(step[clock]) * 1e3, statistics.median(row[clock]) * 1e3
        out[f"step_{clock}_ms"], out[f"row_{clock}_ms"], out[f"cost_{clock}"] = s, m, m / s
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="1000,10000,100000,1000000", help="comma-separated N")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved pairs; medians are reported")
    parser.add_argument("--scenario", default=None, help="a scenario file instead of the standard flock")
    parser.add_argument("--json", default=None, help="write the rows (and the load average) here")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'N':>10} {'backend':>8} {'step cpu ms':>12} {'row cpu ms':>11} {'cost':>6} {'step wall':>10} "
          f"{'row wall':>9} {'cost':>6}")
    for n in (int(v) for v in args.agents.split(",") if v):
        r = measure_cost(n, max(1, args.repeats if n < 1_000_000 else min(args.repeats, 3)), args.scenario)
        rows.append(r)
        print(f"{n:>10,} {r['backend']:>8} {r['step_cpu_ms']:>12.3f} {r['row_cpu_ms']:>11.3f} "
              f"{100 * r['cost_cpu']:>5.0f}% {r['step_wall_ms']:>10.3f} {r['row_wall_ms']:>9.3f} "
              f"{100 * r['cost_wall']:>5.0f}%", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"load_average": os.getloadavg(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
