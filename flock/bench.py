"""``flocksim bench``: headless stepping throughput in agent-steps per second.

For each N and backend, one child process builds the simulation, warms up, then
times ``repeats`` runs of ``steps`` steps with the device synchronised around the
timer and reports the median (wall time, and the process's CPU time, which a
loaded machine inflates less); its peak memory is the child's high-water mark
(resident set on CPU, ``torch.cuda.max_memory_allocated`` on CUDA). The dense
backend is the baseline in the same run wherever its time is affordable.

The standard flock is Reynolds boids in a wrapped square at constant density,
sized so that each agent sees about ``--neighbors`` others within the view
radius (1 world unit), whatever N.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

STANDARD_VIEW_RADIUS = 1.0


def standard_flock(n_agents: int, *, dim: int = 2, neighbors: float = 20.0, seed: int = 0) -> dict:
    """Scenario data of the standard benchmark flock: N Reynolds boids in a wrapped box.

    The box side L gives density N / L^D such that the expected number of others within the
    view radius r = 1 is ``neighbors`` (pi r^2 N / L^2 in 2D, 4/3 pi r^3 N / L^3 in 3D).
    """
    ball = math.pi if dim == 2 else 4.0 / 3.0 * math.pi
    side = (max(n_agents, 1) * ball * STANDARD_VIEW_RADIUS ** dim / neighbors) ** (1.0 / dim)
    return {
        "name": f"standard_flock_{dim}d",
        "world": {"dims": dim, "size": [side] * dim, "boundary": "wrap"},
        "agents": {"count": n_agents, "position": {"kind": "uniform"},
                   "velocity": {"kind": "random_direction", "speed": 0.05},
                   "max_speed": 0.05, "min_speed": 0.01, "max_force": 0.005},
        "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": STANDARD_VIEW_RADIUS},
                  "alignment": {"weight": 1.0, "radius": STANDARD_VIEW_RADIUS},
                  "separation": {"weight": 1.5, "radius": STANDARD_VIEW_RADIUS / 2}},
        "run": {"seed": seed},
    }


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def measure_one(config: dict) -> dict:
    """Time one (scenario, N, backend) in this process; ``config`` as built by ``run_bench``."""
    import torch

    from .scenario import load_scenario, validate_scenario
    from .simulation import Simulation

    if config.get("scenario"):
        sc = load_scenario(config["scenario"])
        sc.agents.count = config["n_agents"]
    else:
        sc = validate_scenario(standard_flock(config["n_agents"], dim=config["dim"], neighbors=config["neighbors"]))
    from .threads import set_threads

    threads = set_threads(config.get("threads"), n_agents=config["n_agents"], backend=config["backend"])
    t0 = time.perf_counter()
    sim = Simulation.from_scenario(sc, device=config["device"], backend=config["backend"],
                                   record_metrics=config.get("metrics", "off") == "on")
    build_s = time.perf_counter() - t0
    compile_ms = None
    if sim.device.type == "cpu" and sim.backend == "numba":
        # compiled once per process (or loaded from numba's disk cache): not a step
        from .neighbors.numba_grid import warm_up

        compile_ms = warm_up(dims=(sc.world.dims,), dtypes=(sim.dtype,), kernels=sim.params.kernels,
                             n_features=0) * 1e3
    if sim.device.type == "cpu" and config.get("metrics") == "on":
        from .neighbors import numba_installed

        if numba_installed():
            # the metrics' nearest-neighbor kernel, compiled or loaded the same way
            from .neighbors.nearest_rings import warm_up as warm_up_metrics

            compile_ms = (compile_ms or 0.0) + warm_up_metrics(dtypes=(sim.dtype,)) * 1e3
    device = sim.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base_mem = _peak_memory_bytes(device)
    t0 = time.perf_counter()
    sim.step(config["warmup"])
    _sync(device)
    build_ms = (build_s + time.perf_counter() - t0) * 1e3
    times, cpu_times = [], []
    for _ in range(config["repeats"]):
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        sim.step(config["steps"])
        _sync(device)
        times.append((time.perf_counter() - t) / config["steps"])
        cpu_times.append((time.process_time() - c) / config["steps"])
    ms = statistics.median(times) * 1e3
    n = sim.state.n_agents
    return {
        "n_agents": n, "backend": sim.backend, "requested_backend": config["backend"], "device": str(device),
        "ms_per_step": ms, "cpu_ms_per_step": statistics.median(cpu_times) * 1e3, "agent_steps_per_s": n / (ms / 1e3) if ms > 0 else math.inf,
        "peak_mem_bytes": _peak_memory_bytes(device), "baseline_mem_bytes": base_mem,
        "build_ms": build_ms, "compile_ms": compile_ms, "metrics": config.get("metrics", "off"),
        "threads_torch": threads[0], "threads_numba": threads[1], "repeats": config["repeats"], "steps_per_repeat": config["steps"],
        "scenario": config.get("scenario") or f"standard_flock_{config['dim']}d",
        "neighbors_per_agent": config["neighbors"] if not config.get("scenario") else None,
    }


def _child(config: dict, timeout: float) -> dict:
    """Run ``measure_one`` in a fresh interpreter, so that peak memory is this configuration's own."""
    cmd = [sys.executable, "-c", "import json,sys; from flock.bench import measure_one; "
           "print('RESULT ' + json.dumps(measure_one(json.loads(sys.argv[1]))))", json.dumps(config)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0]}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def dense_affordable(n_agents: int, max_dense: int) -> bool:
    return n_agents <= max_dense


def run_bench(args) -> list[dict]:
    import torch

    from .simulation import resolve_device

    device = str(resolve_device(args.device))
    sizes = [int(s) for s in str(args.agents).split(",") if s]
    backends = [b for b in args.backend.split(",") if b]
    if "dense" not in backends and not args.no_baseline:
        backends = ["dense"] + backends
    meta = {"torch": torch.__version__, "device": device, "device_name": _device_name(device),
            "command": "flocksim bench " + " ".join(args.argv), "commit": _git_commit(),
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    metrics = [m for m in str(args.metrics).split(",") if m]
    threads = [None if t == "default" else int(t) for t in str(args.threads).split(",") if t]
    records = []
    for n in sizes:
        for backend, metric, thread in ((b, m, t) for b in backends for m in metrics for t in threads):
            if backend == "dense" and not dense_affordable(n, args.max_dense):
                rec = {"n_agents": n, "backend": "dense", "requested_backend": "dense", "device": device,
                       "skipped": f"dense above --max-dense {args.max_dense}"}
            else:
                heavy = backend == "dense" and n >= args.heavy_dense
                config = {"n_agents": n, "backend": backend, "device": device, "dim": args.dim,
                          "neighbors": args.neighbors, "scenario": args.scenario,
                          "warmup": 0 if heavy else args.warmup, "repeats": 1 if heavy else args.repeats,
                          "steps": 1 if heavy else args.steps, "metrics": metric, "threads": thread}
                rec = _child(config, args.timeout)
                rec.setdefault("n_agents", n)
                rec.setdefault("requested_backend", backend)
                rec.setdefault("backend", backend)
                rec.setdefault("device", device)
            rec.setdefault("metrics", metric)
            rec.setdefault("threads_requested", "default" if thread is None else thread)
            rec.update(meta)
            records.append(rec)
            print(format_row(rec, records), flush=True)
    for line in metrics_cost_lines(records):
        print(line)
    return records


def metrics_cost_lines(records: list[dict]) -> list[str]:
    """What recording the metrics every step adds to a step, for every N / backend / threads
    measured both with metrics on and off (``on / off - 1``; also stored as ``metrics_cost``
    in the 'on' record)."""
    lines = []
    for on in records:
        if on.get("metrics") != "on" or "ms_per_step" not in on:
            continue
        for off in records:
            if (off.get("metrics") == "off" and "ms_per_step" in off and off["n_agents"] == on["n_agents"]
                    and off.get("requested_backend") == on.get("requested_backend")
                    and off.get("threads_requested") == on.get("threads_requested")):
                on["metrics_cost"] = on["ms_per_step"] / off["ms_per_step"] - 1.0
                lines.append(f"metrics cost: N = {on['n_agents']:,} {on.get('requested_backend')} threads "
                             f"{on.get('threads_requested')}: {on['ms_per_step']:.3f} ms/step on, "
                             f"{off['ms_per_step']:.3f} off: {100 * on['metrics_cost']:+.0f}%")
                break
    return lines


def _dense_ms(rec: dict, records: list[dict]) -> float | None:
    """The dense baseline's ms/step at the same N, metrics and threads setting."""
    for r in records:
        if (r["n_agents"] == rec["n_agents"] and r.get("requested_backend") == "dense" and "ms_per_step" in r
                and r.get("metrics") == rec.get("metrics") and r.get("threads_requested") == rec.get("threads_requested")):
            return r["ms_per_step"]
    return None


HEADER = (f"{'N':>10} {'backend':>12} {'metrics':>7} {'threads':>7} {'ms/step':>12} {'cpu ms':>10} {'agent-steps/s':>15} "
          f"{'vs dense':>9} {'peak MiB':>9} {'build ms':>9} {'compile ms':>10}")


def format_row(rec: dict, records: list[dict]) -> str:
    name = rec.get("requested_backend", rec["backend"])
    if rec.get("backend") and rec.get("backend") != name:
        name = f"{name}->{rec['backend']}"
    threads = f"{rec['threads_torch']}/{rec['threads_numba']}" if "threads_torch" in rec else "-"
    head = f"{rec['n_agents']:>10,} {name:>12} {rec.get('metrics', '-'):>7} {threads:>7}"
    if "ms_per_step" not in rec:
        return f"{head} {'-':>12} {'-':>15}  ({rec.get('skipped') or rec.get('error')})"
    dense = _dense_ms(rec, records)
    ratio = f"{dense / rec['ms_per_step']:.1f}x" if dense else "-"
    compile_ms = "-" if rec.get("compile_ms") is None else f"{rec['compile_ms']:.0f}"
    cpu = f"{rec['cpu_ms_per_step']:.3f}" if "cpu_ms_per_step" in rec else "-"
    return (f"{head} {rec['ms_per_step']:>12.3f} {cpu:>10} {rec['agent_steps_per_s']:>15,.0f} "
            f"{ratio:>9} {rec['peak_mem_bytes'] / 2**20:>9.0f} {rec['build_ms']:>9.0f} {compile_ms:>10}")


def plot(records: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in sorted({r["requested_backend"] for r in records}):
        pts = sorted((r["n_agents"], r["ms_per_step"]) for r in records
                     if r["requested_backend"] == backend and "ms_per_step" in r)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=backend)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("agents N")
    ax.set_ylabel("ms per step")
    ax.set_title(f"flocksim bench ({records[0]['device_name']})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="agent-steps per second of headless stepping, per N and backend",
                       description="Time headless stepping: for each N and backend, warm-up steps, then the "
                                   "median of --repeats timed runs (device synchronised), as agent-steps per "
                                   "second, with the dense backend as the baseline in the same run.")
    p.add_argument("--agents", default="1000,10000,100000", help="comma-separated N (default 1000,10000,100000)")
    p.add_argument("--backend", default="grid,auto", help="comma-separated backends (dense is added as the baseline)")
    p.add_argument("--scenario", default=None, help="a scenario file instead of the standard flock (its count is set to N)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: CUDA when present)")
    p.add_argument("--dim", type=int, default=2, choices=[2, 3], help="dimension of the standard flock")
    p.add_argument("--neighbors", type=float, default=20.0, help="mean neighbors per agent of the standard flock")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    p.add_argument("--steps", type=int, default=5, help="steps per timed run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--max-dense", type=int, default=100_000, help="largest N the dense baseline runs at")
    p.add_argument("--heavy-dense", type=int, default=50_000, help="from this N the dense baseline is timed on one step")
    p.add_argument("--metrics", default="off", help="comma-separated on/off: record the metrics every step "
                   "(on) or not (off); 'on,off' measures both")
    p.add_argument("--threads", default="default", help="comma-separated CPU thread counts for torch and numba, "
                   "or 'default' (flock.threads chooses by N)")
    p.add_argument("--no-baseline", action="store_true", help="do not add the dense baseline")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one configuration may take")
    p.add_argument("--json", default=None, help="write the records to this JSON file")
    p.add_argument("--plot", default=None, help="draw ms/step against N (log-log) to this PNG (needs matplotlib)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    args.argv = sys.argv[2:] if len(sys.argv) > 2 else []
    bad = [m for m in str(args.metrics).split(",") if m not in ("on", "off")]
    bad += [t for t in str(args.threads).split(",") if t != "default" and not (t.isdigit() and int(t) >= 1)]
    if bad:
        print(f"flocksim bench: --metrics takes on/off and --threads integers >= 1 or 'default'; got {bad}",
              file=sys.stderr)
        return 2
    print(HEADER)
    records = run_bench(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records, indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        plot(records, args.plot)
        print(f"wrote {args.plot}")
    return 1 if any("error" in r for r in records) else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="flocksim")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)
