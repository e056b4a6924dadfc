"""GPU throughput of flock (issue 7): backends, CUDA graphs, ensembles, fused mean shift.

    python tools/bench_gpu.py                         # on a GPU: the full set, JSON in tools/results/
    python tools/bench_gpu.py --device cpu --small    # the same sections at small sizes (a check)

Sections (``--sections``, default all):

    circles    FLAME GPU 2's circles benchmark (scenarios/bench_circles3d.yaml, density 1,
               the box scaled as N^(1/3)) at 64k, 1M, 2M agents; backends dense (up to
               --max-dense), grid, triton. The published FLAME GPU 2 figures to compare
               with: 2.12 ms per step at 1M agents and ~0.26-0.30 ms at 64k (H100 PCIe).
    boids      the 2D standard flock of ``flocksim bench`` (flock.bench.standard_flock,
               ~20 neighbors per agent) at 100k, 1M, 10M agents; same backends.
    graphs     dense steps eagerly vs in CUDA graphs of --graph-steps steps
               (flock.cuda_graphs.GraphedStepper) at 1k, 10k, 64k agents, circles and boids.
    ensemble   --ensemble members of boids_torus at --ensemble-agents agents each:
               one EnsembleSimulation vs the members' Simulations one after another.
    meanshift  one Gaussian mean shift step (untruncated, scenarios/meanshift_seed.yaml's
               blobs) at 100k points: fused attention vs dense.
    resort     triton on the largest circles size with agent storage re-sorted by cell
               every R steps (--resort), to find the period that pays.

Every configuration runs in a child process (its own peak memory), warms up, then
times --repeats runs of --steps steps with the device synchronised around the timer
and reports the median. Records carry the keys of ``flocksim bench --json`` plus
``scenario``, ``gpu`` (``nvidia-smi --query-gpu=name``), ``section``,
``candidates_per_agent`` (agents scanned per agent: N for dense and fused, the
agents in the 3^D cells around its own for grid and triton), ``cuda_graphs``,
``ensemble``, ``mode`` and ``resort_every``.

On a CPU the triton backend runs only under Triton's interpreter, at N up to
--interpret-max (a check that the path works, not a timing).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flock.bench import _git_commit, _peak_memory_bytes, _sync, standard_flock  # noqa: E402

RESULTS = ROOT / "tools" / "results"
FULL = {"circles": [64_000, 1_000_000, 2_000_000], "boids": [100_000, 1_000_000, 10_000_000],
        "graphs": [1_000, 10_000, 64_000], "meanshift": [100_000]}
SMALL = {"circles": [300, 4_000], "boids": [300, 5_000], "graphs": [300, 2_000], "meanshift": [1_200]}


# ------------------------------------------------------------------ scenarios and simulations

def circles_scenario(n_agents: int):
    """bench_circles3d.yaml at N agents, density 1 (box side N^(1/3), centred on 0)."""
    from flock.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "bench_circles3d.yaml")
    side = float(n_agents) ** (1.0 / 3.0)
    sc.agents.count = n_agents
    sc.world.size = [side] * 3
    sc.world.origin = [-side / 2] * 3
    return sc


def boids_scenario(n_agents: int):
    from flock.scenario import validate_scenario

    return validate_scenario(standard_flock(n_agents, dim=2))


def meanshift_scenario(n_agents: int):
    """meanshift_seed.yaml's six blobs with N points in all, never converging (every step timed)."""
    from flock.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "meanshift_seed.yaml")
    sc.agents.position.per_blob = max(1, n_agents // sc.agents.position.n_blobs)
    sc.rules.tol = 1e-300
    sc.rules.max_iter = 10**9
    return sc


def ensemble_scenario(n_agents: int):
    from flock.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "boids_torus.yaml")
    sc.agents.count = n_agents
    return sc


SCENARIOS = {"circles": circles_scenario, "boids": boids_scenario, "meanshift": meanshift_scenario,
             "ensemble": ensemble_scenario}
SCENARIO_NAMES = {"circles": "bench_circles3d", "boids": "standard_flock_2d", "meanshift": "meanshift_seed",
                  "ensemble": "boids_torus"}


def make_simulation(sc, device: str, backend: str):
    """A Simulation on ``backend``; 'triton' works before flock.neighbors dispatches it.

    Until ``reduce_neighbors`` and ``Simulation`` accept backend='triton', the simulation
    is built on 'grid' and its ``sums`` replaced by the triton kernel for this instance.
    """
    import types

    from flock.errors import ScenarioError
    from flock.simulation import Simulation

    if backend != "triton":
        return Simulation.from_scenario(sc, device=device, backend=backend, record_metrics=False)
    try:
        sim = Simulation.from_scenario(sc, device=device, backend="triton", record_metrics=False)
        if sim.backend == "triton":
            return sim
    except (ScenarioError, ValueError):
        pass
    from flock.neighbors.triton_grid import reduce_triton

    sim = Simulation.from_scenario(sc, device=device, backend="grid", record_metrics=False)

    def sums(self, kernels=None):
        kernels = self.kernels() if kernels is None else kernels
        pos = self._state.pos
        return reduce_triton(pos, self._state.vel, kernels, period=self.world.period(pos))

    sim.sums = types.MethodType(sums, sim)
    sim.backend = "triton"
    return sim


def candidates_per_agent(sim_like, backend: str, n_members: int = 1) -> float | None:
    """Agents one agent scans: N for dense/fused, its 3^D cells' agents for grid/triton."""
    import math as _m

    from flock.kernels import max_support
    from flock.neighbors.triton_grid import mean_candidates

    pos = sim_like.state.pos
    n = pos.shape[0] // n_members
    kernels = sim_like.kernels()
    if backend in ("dense", "fused") or not _m.isfinite(max_support(kernels)):
        return float(n)
    return mean_candidates(pos, kernels, period=sim_like.world.period(pos), n_members=n_members)


# ------------------------------------------------------------------ one configuration (child)

def _time(step, device, warmup: int, repeats: int, steps: int) -> tuple[float, float]:
    """(build-free warm-up ms, median ms per step) of ``step(k)``."""
    t0 = time.perf_counter()
    if warmup:
        step(warmup)
    _sync(device)
    warm_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        step(steps)
        _sync(device)
        times.append((time.perf_counter() - t) / steps)
    return warm_ms, statistics.median(times) * 1e3


def measure(config: dict) -> dict:
    """Time one configuration in this process."""
    import torch

    from flock.simulation import resolve_device

    device = resolve_device(config["device"])
    section, n, backend = config["section"], config["n_agents"], config["backend"]
    kind = config.get("scenario_kind", section)
    sc = SCENARIOS[kind](n)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base_mem = _peak_memory_bytes(device)
    t0 = time.perf_counter()
    extra: dict = {"cuda_graphs": False, "ensemble": None, "mode": "single", "resort_every": None}
    n_total = n
    if section == "ensemble":
        e = config["ensemble"]
        extra.update(ensemble=e, mode=config["mode"])
        n_total = n * e
        if config["mode"] == "batched":
            from flock.ensemble import EnsembleSimulation

            ens = EnsembleSimulation(sc, ensemble=e, device=str(device), backend=backend, record_metrics=False)
            step = ens.step
            probe, members = ens.batches[0], e
        else:
            sims = [make_simulation(sc.model_copy(deep=True), str(device), backend) for _ in range(e)]
            for i, s in enumerate(sims):
                s.seed = sc.run.seed + i
                s.reset()

            def step(k):
                for s in sims:
                    s.step(k)
            probe, members = sims[0], 1
    else:
        sim = make_simulation(sc, str(device), backend)
        probe, members = sim, 1
        if config.get("graphs"):
            from flock.cuda_graphs import GraphedStepper

            stepper = GraphedStepper(sim, steps_per_graph=config["graph_steps"])
            step = stepper.step
            extra["cuda_graphs"] = True
        elif config.get("resort_every"):
            from flock.kernels import max_support
            from flock.neighbors.triton_grid import sort_state_by_cell

            every = config["resort_every"]
            extra["resort_every"] = every

            def step(k):
                for _ in range(k):
                    if sim.step_count % every == 0:
                        sim.state, _ = sort_state_by_cell(sim.state, max_support(sim.kernels()),
                                                          period=sim.world.period(sim.state.pos))
                    sim.step(1)
        else:
            step = sim.step
    build_ms = (time.perf_counter() - t0) * 1e3
    cands = candidates_per_agent(probe, backend if backend != "auto" else probe.backend, members)
    warm_ms, ms = _time(step, device, config["warmup"], config["repeats"], config["steps"])
    if config.get("graphs"):
        extra.update(graph_mode=stepper.mode, fallback_reason=stepper.fallback_reason,
                     graph_replays=stepper.replays)
    rec = {
        "section": section, "n_agents": n, "n_agents_total": n_total, "backend": getattr(probe, "backend", backend),
        "requested_backend": backend, "device": str(device), "ms_per_step": ms,
        "agent_steps_per_s": n_total / (ms / 1e3) if ms > 0 else math.inf,
        "candidates_per_agent": cands, "peak_mem_bytes": _peak_memory_bytes(device), "baseline_mem_bytes": base_mem,
        "build_ms": build_ms, "warmup_ms": warm_ms, "repeats": config["repeats"],
        "steps_per_repeat": config["steps"], "scenario": SCENARIO_NAMES[kind],
        "neighbors_per_agent": 20.0 if kind == "boids" else None,
    }
    rec.update(extra)
    return rec


def _child(config: dict, timeout: float) -> dict:
    env = dict(os.environ)
    if config.get("interpret"):
        env["TRITON_INTERPRET"] = "1"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0]}


# ------------------------------------------------------------------ the plan

def gpu_name(device: str) -> str | None:
    """``nvidia-smi --query-gpu=name`` (first GPU), else torch's name, None on CPU."""
    if not device.startswith("cuda"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
        names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        if names:
            return names[0]
    except (OSError, subprocess.SubprocessError):
        pass
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def plan(args, device: str) -> list[dict]:
    """Every configuration to run, in order."""
    sizes = SMALL if args.small else FULL
    cpu = not device.startswith("cuda")
    base = {"device": device, "warmup": args.warmup, "repeats": args.repeats, "steps": args.steps}
    out = []

    def add(**cfg):
        cfg = {**base, **cfg}
        n, backend = cfg["n_agents"], cfg["backend"]
        if backend == "dense" and n > args.max_dense and cfg["section"] != "meanshift":
            cfg["skipped"] = f"dense above --max-dense {args.max_dense}"
        if backend == "grid" and not cpu and n > args.max_grid:
            cfg["skipped"] = f"torch grid on CUDA above --max-grid {args.max_grid}"
        if backend == "triton" and cpu:
            if n > args.interpret_max:
                cfg["skipped"] = ("triton on CPU runs only under the interpreter, up to "
                                  f"--interpret-max {args.interpret_max}")
            else:
                cfg.update(interpret=True, warmup=0, repeats=1, steps=1)
        if backend == "dense" and n >= args.heavy_dense and cfg["section"] in ("circles", "boids", "meanshift"):
            cfg.update(warmup=min(cfg["warmup"], 1), repeats=1, steps=1)
        out.append(cfg)

    for section in ("circles", "boids"):
        if section in args.sections:
            for n in sizes[section]:
                for backend in ("dense", "grid", "triton"):
                    add(section=section, n_agents=n, backend=backend)
    if "graphs" in args.sections:
        for kind in ("circles", "boids"):
            for n in sizes["graphs"]:
                for graphs in (False, True):
                    add(section="graphs", scenario_kind=kind, n_agents=n, backend="dense", graphs=graphs,
                        graph_steps=args.graph_steps)
    if "ensemble" in args.sections:
        e = args.ensemble if args.ensemble else (8 if args.small else 64)
        n = args.ensemble_agents if args.ensemble_agents else (100 if args.small else 1000)
        backends = ["dense"] + ([] if cpu else ["triton"])
        for backend in backends:
            for mode in ("batched", "sequential"):
                add(section="ensemble", n_agents=n, backend=backend, ensemble=e, mode=mode)
    if "meanshift" in args.sections:
        for n in sizes["meanshift"]:
            for backend in ("dense", "fused"):
                add(section="meanshift", n_agents=n, backend=backend)
    if "resort" in args.sections:
        n = sizes["circles"][-1] if not cpu else min(sizes["circles"][0], args.interpret_max)
        for every in [int(r) for r in str(args.resort).split(",") if r]:
            cfg = dict(section="resort", scenario_kind="circles", n_agents=n, backend="triton")
            if every:
                cfg["resort_every"] = every
            add(**cfg)
    return out


HEADER = (f"{'section':>9} {'scenario':>17} {'N':>10} {'backend':>8} {'mode':>18} {'ms/step':>10} "
          f"{'agent-steps/s':>14} {'cand/agent':>10} {'peak MiB':>9}")


def format_row(rec: dict) -> str:
    mode = rec.get("mode") or "single"
    if rec.get("cuda_graphs"):
        mode = f"graphs:{rec.get('graph_mode')}"
    if rec.get("ensemble"):
        mode = f"{mode} E={rec['ensemble']}"
    if rec.get("resort_every"):
        mode = f"resort/{rec['resort_every']}"
    head = (f"{rec['section']:>9} {rec.get('scenario') or '':>17} {rec['n_agents']:>10,} "
            f"{rec.get('requested_backend', rec.get('backend')):>8} {mode:>18}")
    if "ms_per_step" not in rec:
        return f"{head} {'-':>10} {'-':>14} {'':>10} {'':>9}  ({rec.get('skipped') or rec.get('error')})"
    cand = rec.get("candidates_per_agent")
    cand = f"{cand:>10.1f}" if cand is not None else f"{'-':>10}"
    return (f"{head} {rec['ms_per_step']:>10.3f} {rec['agent_steps_per_s']:>14,.0f} {cand} "
            f"{rec['peak_mem_bytes'] / 2**20:>9.0f}")


def summarise(records: list[dict]) -> list[str]:
    """Ratios worth reading off: graphs vs eager, batched vs sequential, fused vs dense."""
    lines = []

    def find(**kw):
        for r in records:
            if "ms_per_step" in r and all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    for r in records:
        if r.get("section") == "graphs" and r.get("cuda_graphs") and "ms_per_step" in r:
            eager = find(section="graphs", scenario=r["scenario"], n_agents=r["n_agents"], cuda_graphs=False)
            if eager:
                lines.append(f"graphs {r['scenario']} N={r['n_agents']}: eager/graphed = "
                             f"{eager['ms_per_step'] / r['ms_per_step']:.2f}x (graph mode: {r.get('graph_mode')}"
                             + (f", fallback: {r.get('fallback_reason')}" if r.get("fallback_reason") else "") + ")")
        if r.get("section") == "ensemble" and r.get("mode") == "batched" and "ms_per_step" in r:
            seq = find(section="ensemble", mode="sequential", requested_backend=r["requested_backend"],
                       n_agents=r["n_agents"])
            if seq:
                lines.append(f"ensemble {r['requested_backend']} E={r['ensemble']} N={r['n_agents']}: "
                             f"sequential/batched = {seq['ms_per_step'] / r['ms_per_step']:.2f}x")
        if r.get("section") == "meanshift" and r.get("requested_backend") == "fused" and "ms_per_step" in r:
            dense = find(section="meanshift", requested_backend="dense", n_agents=r["n_agents"])
            if dense:
                ratio = dense["ms_per_step"] / r["ms_per_step"]
                lines.append(f"meanshift N={r['n_agents']}: dense/fused = {ratio:.2f}x")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--small", action="store_true", help="small sizes (a CPU check of every section)")
    p.add_argument("--sections", default="circles,boids,graphs,ensemble,meanshift,resort",
                   help="comma-separated sections to run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    p.add_argument("--steps", type=int, default=10, help="steps per timed run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--max-dense", type=int, default=100_000, help="largest N the dense backend runs at")
    p.add_argument("--max-grid", type=int, default=200_000,
                   help="largest N the torch grid backend runs at on CUDA (it takes minutes at 2M/10M "
                        "for a figure nobody needs)")
    p.add_argument("--heavy-dense", type=int, default=50_000, help="from this N dense is timed on one step")
    p.add_argument("--graph-steps", type=int, default=10, help="steps per CUDA graph")
    p.add_argument("--ensemble", type=int, default=None, help="members (default 64; --small 8)")
    p.add_argument("--ensemble-agents", type=int, default=None, help="agents per member (default 1000; --small 100)")
    p.add_argument("--resort", default="0,1,10,100", help="re-sort periods for the resort section (0: never)")
    p.add_argument("--interpret-max", type=int, default=300, help="largest N triton runs at on a CPU (interpreter)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one configuration may take")
    p.add_argument("--json", default=None,
                   help="output file (default tools/results/bench_gpu-<gpu or cpu>[-small].json)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(measure(json.loads(args.child))), flush=True)
        return 0

    import torch

    from flock.simulation import resolve_device

    args.sections = [s for s in args.sections.split(",") if s]
    device = str(resolve_device(args.device))
    gpu = gpu_name(device)
    meta = {"torch": torch.__version__, "device_name": gpu or platform.processor() or platform.machine(),
            "gpu": gpu, "command": "python tools/bench_gpu.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "commit": _git_commit(), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    print(f"# {meta['device_name']} ({device}), torch {torch.__version__}, commit {meta['commit']}")
    print(HEADER, flush=True)
    records = []
    for cfg in plan(args, device):
        if "skipped" in cfg:
            rec = {k: cfg[k] for k in ("section", "n_agents", "backend", "device") if k in cfg}
            rec.update(requested_backend=cfg["backend"], skipped=cfg["skipped"],
                       scenario=SCENARIO_NAMES[cfg.get("scenario_kind", cfg["section"])])
        else:
            rec = _child(cfg, args.timeout)
            for key in ("section", "n_agents", "device"):
                rec.setdefault(key, cfg[key])
            rec.setdefault("requested_backend", cfg["backend"])
            rec.setdefault("backend", cfg["backend"])
            rec.setdefault("scenario", SCENARIO_NAMES[cfg.get("scenario_kind", cfg["section"])])
            if rec.get("error"):
                rec.update({k: cfg[k] for k in ("ensemble", "mode") if k in cfg})
        rec.update(meta)
        records.append(rec)
        print(format_row(rec), flush=True)
    for line in summarise(records):
        print(line)
    slug = (gpu or "cpu").lower().replace(" ", "-")
    path = Path(args.json) if args.json else RESULTS / f"bench_gpu-{slug}{'-small' if args.small else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2))
    print(f"wrote {path}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
