"""The seed's measurement (issue 17, item 3): one network over every agent, four ways, and the neural step.

    python tools/bench_neural.py --agents 10000,100000 --repeats 5 --json tools/results/bench_neural.json

For each N the observations are the real ones of ``scenarios/neural_boids.yaml`` scaled to
N agents at the shipped density (the box grows as sqrt(N)), and the network is the shipped
one (``neural_boids.safetensors``: 9 -> 32 -> 32 -> 2, ReLU). Timed, in one run:

    loop      a Python loop calling the module on one observation [1, F] at a time (the
              per-element way), on --loop-agents agents and extrapolated to N
    apply     ``numpy.apply_along_axis`` over a numpy port of the same network, on
              --apply-agents agents and extrapolated to N
    batched   one module call on all N observations [N, F] (``torch.inference_mode``)
    compiled  the same call under ``torch.compile`` (compile time reported apart; a compile
              that fails, or whose warm-up takes over --compile-budget seconds, is reported and
              skipped)
    step      ``Simulation.step`` of the neural scenario against the reynolds teacher
              (``boids_torus.yaml``, same N and box), backend --backend, no metrics

Every timing warms up, then takes the median of --repeats runs; ratios are against the loop
(the network ways) and against the reynolds step. The numpy port is checked against the
module (max abs difference reported) so the ways compute the same thing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import flock  # noqa: E402
from flock.neural import load_weights, observe  # noqa: E402
from flock.params import build_params  # noqa: E402
from flock.step import neighbor_sums  # noqa: E402

NEURAL = ROOT / "scenarios" / "neural_boids.yaml"
TEACHER = ROOT / "scenarios" / "boids_torus.yaml"


def scaled(path: Path, n: int, seed: int) -> flock.Scenario:
    """``path`` with N agents in a box grown so the density is the file's own."""
    sc = flock.load_scenario(path)
    side = [s * math.sqrt(n / sc.agents.count) for s in sc.world.size]
    return flock.load_scenario(path, overrides=[f"agents.count={n}", f"world.size={side}", f"run.seed={seed}"])


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_port(module: torch.nn.Sequential):
    """A numpy function of one observation [F] -> [D] computing what ``module`` computes (Linear, ReLU)."""
    layers = []
    for layer in module:
        if isinstance(layer, torch.nn.Linear):
            layers.append(("linear", layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()))
        elif isinstance(layer, torch.nn.ReLU):
            layers.append(("relu", None, None))
        else:
            raise ValueError(f"numpy port: unsupported layer {layer!r}")

    def forward(x: np.ndarray) -> np.ndarray:
        for kind, w, b in layers:
            x = w @ x + b if kind == "linear" else np.maximum(x, 0.0)
        return x

    return forward


def observations(sc: flock.Scenario, backend: str) -> torch.Tensor:
    """[N, F] float32 observations of the scenario's initial state."""
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype=torch.float32, backend=backend,
                                         record_metrics=False)
    params = build_params(sc, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        return observe(sim.state, neighbor_sums(sim.state, params, sim.backend), params)


def bench_network(n: int, args) -> dict:
    sc = scaled(NEURAL, n, args.seed)
    module = load_weights(NEURAL.parent / sc.rules.model.weights, sc).float()
    obs = observations(sc, args.backend)
    rec: dict = {"agents": n, "features": obs.shape[1]}

    m_loop = min(n, args.loop_agents)

    def loop():
        with torch.inference_mode():
            for i in range(m_loop):
                module(obs[i:i + 1])

    rec["loop_subset"] = m_loop
    rec["loop_s"] = median_time(loop, args.repeats) * n / m_loop

    forward = numpy_port(module)
    m_apply = min(n, args.apply_agents)
    obs_np = obs[:m_apply].double().numpy()
    rec["apply_subset"] = m_apply
    rec["apply_s"] = median_time(lambda: np.apply_along_axis(forward, 1, obs_np), args.repeats) * n / m_apply
    with torch.inference_mode():
        ref = module(obs[:m_apply]).double().numpy()
    rec["apply_max_abs_diff"] = float(np.abs(np.apply_along_axis(forward, 1, obs_np) - ref).max())

    def batched():
        with torch.inference_mode():
            module(obs)

    rec["batched_s"] = median_time(batched, args.repeats, warmup=2)
    rec.update(bench_compiled(module, obs, args))
    rec["loop_over_batched"] = rec["loop_s"] / rec["batched_s"]
    rec["apply_over_batched"] = rec["apply_s"] / rec["batched_s"]
    if rec.get("compiled_s"):
        rec["loop_over_compiled"] = rec["loop_s"] / rec["compiled_s"]
        rec["batched_over_compiled"] = rec["batched_s"] / rec["compiled_s"]
    return rec


def bench_compiled(module, obs, args) -> dict:
    """Compile time and median call time under ``torch.compile``, or why there is none."""
    if args.no_compile:
        return {"compiled_s": None, "compile_note": "skipped (--no-compile)"}
    try:
        compiled = torch.compile(module, dynamic=False)
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(obs)
        compile_s = time.perf_counter() - t0
        if compile_s > args.compile_budget:
            return {"compiled_s": None, "compile_s": compile_s,
                    "compile_note": f"warm-up took {compile_s:.1f} s > --compile-budget {args.compile_budget} s"}

        def call():
            with torch.inference_mode():
                compiled(obs)

        return {"compile_s": compile_s, "compiled_s": median_time(call, args.repeats, warmup=2)}
    except Exception as exc:  # noqa: BLE001  (any backend failure: report it and go on)
        return {"compiled_s": None, "compile_note": f"torch.compile failed: {type(exc).__name__}: {exc}"[:300]}


def bench_steps(n: int, args) -> dict:
    """Median seconds per step of the neural scenario and of its reynolds teacher at N agents."""
    out = {}
    for label, path in (("neural", NEURAL), ("reynolds", TEACHER)):
        sc = scaled(path, n, args.seed)
        sim = flock.Simulation.from_scenario(sc, device="cpu", dtype=torch.float32, backend=args.backend,
                                             record_metrics=False)
        out[f"{label}_backend"] = sim.backend
        out[f"{label}_step_s"] = median_time(lambda: sim.step(args.steps), args.repeats) / args.steps
    out["neural_over_reynolds"] = out["neural_step_s"] / out["reynolds_step_s"]
    return out


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def table(records: list[dict]) -> str:
    head = ("| N | loop (extrap.) | apply_along_axis (extrap.) | batched | compiled (compile) | loop / batched "
            "| neural step | reynolds step | neural / reynolds |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in records:
        comp = fmt(r.get("compiled_s"))
        if r.get("compile_s") is not None:
            comp += f" ({r['compile_s']:.1f} s)"
        ratio = f"{r['neural_over_reynolds']:.2f}x" if "neural_over_reynolds" in r else "-"
        lines.append(f"| {r['agents']:,} | {fmt(r['loop_s'])} | {fmt(r['apply_s'])} | {fmt(r['batched_s'])} | {comp} "
                     f"| {r['loop_over_batched']:,.0f}x | {fmt(r.get('neural_step_s'))} "
                     f"| {fmt(r.get('reynolds_step_s'))} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="10000,1000000", help="comma-separated N")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loop-agents", type=int, default=2000, help="agents the per-agent loop runs on")
    p.add_argument("--apply-agents", type=int, default=20000, help="agents apply_along_axis runs on")
    p.add_argument("--steps", type=int, default=3, help="steps per timed step run")
    p.add_argument("--backend", default="grid", help="neighbor backend of the step timings (grid, auto, ...)")
    p.add_argument("--no-steps", action="store_true", help="skip the neural / reynolds step timings")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--compile-budget", type=float, default=120.0, help="seconds a compile warm-up may take")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the records here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        sizes = [int(a) for a in args.agents.split(",") if a.strip()]
    except ValueError:
        p.error(f"--agents: expected integers like 10000,1000000, got {args.agents!r}")
    if not sizes or min(sizes) < 2 or args.repeats < 1 or args.loop_agents < 1 or args.apply_agents < 1:
        p.error("--agents (>= 2 each), --repeats, --loop-agents and --apply-agents must be positive")
    records = []
    for n in sizes:
        rec = bench_network(n, args)
        if not args.no_steps:
            rec.update(bench_steps(n, args))
        records.append(rec)
        print(json.dumps(rec), flush=True)
    print(table(records))
    if args.json:
        meta = {"command": "python tools/bench_neural.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "machine": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                "load_average": os.getloadavg(), "torch": torch.__version__}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "records": records}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
