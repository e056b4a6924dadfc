"""The prepared GPU check of issue 13: everything a GPU must show, in one command.

    python tools/gpu_check.py                    # on a GPU machine (about 8 minutes at most)
    TRITON_INTERPRET=1 python tools/gpu_check.py --small --out tmp   # CPU dry run (a check, no timing)

Sections, run one after another, each in its own child process with its own time limit
(a crash, a CUDA error or a timeout in one never hides the others):

    env              Python, torch, Triton versions, the GPU's name, interpreter or compiled.
    triton_vs_dense  kernel sums of the triton backend against dense on the same device:
                     circles at 200k and 2D boids at 1M in float32 (dense on --dense-rows
                     random query rows against every agent), every kernel kind at 20k in
                     float64 (all rows); max error relative to each channel's largest sum.
    triton_vs_grid   triton against the torch grid backend row by row at 100k (circles).
    ensembles        reduce_triton_batched on E members against reduce_triton member by
                     member: max error and the time of each.
    host_syncs       host synchronisations per step (torch.cuda.set_sync_debug_mode) of the
                     triton and dense steps; CUDA only.
    steps            full steps (flock.Simulation, triton backend): circles 64k / 1M / 2M and
                     boids 1M / 10M, eagerly and in CUDA graphs (flock.cuda_graphs.GraphedStepper,
                     with the number of replays); the first step (JIT compile) timed apart; boids
                     with wander in graphs against eager steps (bit-identical, the graph replays).
    kernel_time      reduce_triton alone, timed by CUDA events (perf_counter on a CPU).
    meanshift        one fused (attention) Gaussian mean shift step at N = 100,000: ms/step,
                     the attention kernels the profiler saw, and the error of the float32
                     fused step against a float64 dense step from the same state.

With ``--small`` every size shrinks to a few hundred agents, so the whole check runs on a
CPU under ``TRITON_INTERPRET=1``: sections that need CUDA say 'skipped: no CUDA', and
CPU times are not timings (the interpreter runs Python per candidate step).

Writes ``gpu_check.json`` under ``--out`` (default ``$OUT``, else ./gpu_check_out) and prints
a summary table last, ending with the line ``gpu_check: <n> ok, <n> skipped, <n> failed``.
Exit status 0 when no section failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SECTIONS = ("env", "triton_vs_dense", "triton_vs_grid", "ensembles", "host_syncs", "steps", "kernel_time",
            "meanshift")
# seconds each section may take on a GPU (the whole check stays within --budget)
LIMITS = {"env": 30, "triton_vs_dense": 75, "triton_vs_grid": 45, "ensembles": 45, "host_syncs": 45,
          "steps": 150, "kernel_time": 40, "meanshift": 50}
FULL = {"dense_circles": 200_000, "dense_boids": 1_000_000, "kinds": 20_000, "dense_rows": 20_000,
        "grid": 100_000, "ensemble": (64, 1_000), "syncs": 100_000,
        "steps_circles": [64_000, 1_000_000, 2_000_000], "steps_boids": [1_000_000, 10_000_000],
        "kernel": [("circles", 1_000_000), ("boids", 1_000_000)], "meanshift": 100_000}
SMALL = {"dense_circles": 80, "dense_boids": 120, "kinds": 48, "dense_rows": 40,
         "grid": 80, "ensemble": (2, 50), "syncs": 200,
         "steps_circles": [60], "steps_boids": [100],
         "kernel": [("circles", 60), ("boids", 60)], "meanshift": 300}
TOL = {"float32": 2e-4, "float64": 1e-9}


class Skip(Exception):
    """A section (or row) that cannot run here; the message says why."""


# ------------------------------------------------------------------ helpers (child side)

def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _need_cuda(device) -> None:
    if device.type != "cuda":
        raise Skip("no CUDA")


def _need_triton(device) -> None:
    from flock.neighbors.triton_grid import triton_usable

    if not triton_usable(device):
        raise Skip("triton cannot run here (no CUDA and TRITON_INTERPRET=1 was not set before import)")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timer(device):
    """A function ``time_ms(fn) -> ms``: CUDA events on CUDA, perf_counter elsewhere."""
    import torch

    if device.type == "cuda":
        def time_ms(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        return time_ms, "cuda_events"

    def time_ms(fn):
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    return time_ms, "perf_counter"


def _median_ms(fn, device, repeats: int) -> float | None:
    """Median ms of ``repeats`` calls of ``fn`` (None for 0 repeats)."""
    time_ms, _ = _timer(device)
    return statistics.median(time_ms(fn) for _ in range(repeats)) if repeats > 0 else None


def _ms(x) -> str:
    return "untimed" if x is None else f"{x:.3g} ms"


def _rel_err(a, b) -> float:
    """max |a - b| relative to each channel's largest |b| (at least 1): [K, M, C] tensors."""
    scale = b.abs().amax(dim=(-1, -2), keepdim=True).clamp_min(1.0)
    return float(((a - b).abs() / scale).max()) if a.numel() else 0.0


def _simulation(kind: str, n: int, device, dtype, backend: str):
    import torch

    from bench_gpu import SCENARIOS
    from flock import Simulation

    sc = SCENARIOS[kind](n)
    return Simulation(sc, device=str(device), dtype={"float32": torch.float32, "float64": torch.float64}[dtype],
                      backend=backend, record_metrics=False)


def _inputs(sim):
    pos = sim.state.pos
    return pos, sim.state.vel, sim.kernels(), sim.world.period(pos)


# ------------------------------------------------------------------ sections

def section_env(cfg):
    import torch

    from flock.neighbors.triton_grid import interpret_mode, triton_available

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "triton": None, "triton_interpret": False, "cpu": platform.processor() or platform.machine()}
    if triton_available():
        import triton

        out.update(triton=triton.__version__, triton_interpret=interpret_mode())
    out["figure"] = f"{out['gpu'] or 'no GPU'}, torch {out['torch']}, triton {out['triton']}"
    return out


def _compare_rows(kind, n, dtype, device, rows_cap, seed=0):
    """triton against dense on ``rows_cap`` random query rows (all rows when n <= rows_cap)."""
    import torch

    from flock.neighbors import reduce_neighbors

    sim = _simulation(kind, n, device, dtype, "triton")
    pos, vel, kernels, period = _inputs(sim)
    t0 = time.perf_counter()
    tri = reduce_neighbors(pos, vel, kernels, backend="triton", period=period)
    _sync(device)
    first_ms = (time.perf_counter() - t0) * 1e3
    if n > rows_cap:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:rows_cap].to(device)
        ref = reduce_neighbors(pos, vel, kernels, backend="dense", period=period, query_pos=pos[idx],
                               query_index=idx)
        tri = tri[:, idx]
    else:
        ref = reduce_neighbors(pos, vel, kernels, backend="dense", period=period)
    err = _rel_err(tri, ref)
    return {"case": f"{kind} {dtype}", "n_agents": n, "rows_compared": int(ref.shape[1]), "max_rel_err": err,
            "tol": TOL[dtype], "within_tol": err <= TOL[dtype], "first_call_ms": first_ms}


def _epilogue_row(n, device, rows_cap, seed=0):
    """The boid rule finished in the kernel (float32) against the torch rule on dense float64 sums."""
    import torch

    from flock.neighbors import reduce_neighbors
    from flock.neighbors.triton_grid import reduce_triton
    from flock.state import FlockState

    sim = _simulation("boids", n, device, "float32", "triton")
    pos, vel, kernels, period = _inputs(sim)
    params = sim.params
    got = reduce_triton(pos, vel, kernels, period=period, epilogue=params.rule.epilogue(params))
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:min(n, rows_cap)].to(device)
    p64, v64 = pos.double(), vel.double()
    ref_sums = reduce_neighbors(p64, v64, kernels, backend="dense", period=None if period is None else period.double(),
                                query_pos=p64[idx], query_index=idx)
    sub = FlockState(pos=p64[idx], vel=v64[idx], group=sim.state.group[idx])
    want = params.rule.update(sub, ref_sums, params).value
    err = float((got[idx].double() - want).abs().max() / want.abs().max().clamp_min(1.0))
    return {"case": f"boids epilogue ({params.rule.name}) float32 vs float64 dense", "n_agents": n,
            "rows_compared": int(idx.numel()), "max_rel_err": err, "tol": TOL["float32"],
            "within_tol": err <= TOL["float32"]}


def _kind_rows(n, device):
    import torch

    from flock.kernels import KERNEL_KINDS, Kernel
    from flock.neighbors import reduce_neighbors

    examples = {"flat": Kernel("flat", radius=2.0), "triangular": Kernel("triangular", radius=1.5, exclude_self=False),
                "gaussian": Kernel("gaussian", bandwidth=0.7, radius=2.0),
                "inverse_square": Kernel("inverse_square", radius=1.0), "inverse": Kernel("inverse", radius=1.7),
                "circles": Kernel("circles", radius=2.0, strength=0.05)}
    missing = [k for k in KERNEL_KINDS if k not in examples]
    rows = []
    for dim, periodic in ((2, False), (3, True)):
        side = (n / 2.0) ** (1.0 / dim)  # about 2 agents per unit volume
        gen = torch.Generator().manual_seed(dim)
        pos = (torch.rand(n, dim, generator=gen, dtype=torch.float64) * side).to(device)
        vel = torch.randn(n, dim, generator=gen, dtype=torch.float64).to(device)
        period = torch.full((dim,), side, dtype=torch.float64, device=device) if periodic else None
        kernels = [examples[k] for k in KERNEL_KINDS if k in examples]
        tri = reduce_neighbors(pos, vel, kernels, backend="triton", period=period)
        ref = reduce_neighbors(pos, vel, kernels, backend="dense", period=period)
        for i, k in enumerate(kernels):
            err = _rel_err(tri[i:i + 1], ref[i:i + 1])
            rows.append({"case": f"{k.kind} {dim}d {'wrap' if periodic else 'open'} float64", "n_agents": n,
                         "rows_compared": n, "max_rel_err": err, "tol": TOL["float64"],
                         "within_tol": err <= TOL["float64"]})
    return rows, missing


def section_triton_vs_dense(cfg):
    device = _device()
    _need_triton(device)
    s = cfg["sizes"]
    rows = [_compare_rows("circles", s["dense_circles"], "float32", device, s["dense_rows"]),
            _compare_rows("boids", s["dense_boids"], "float32", device, s["dense_rows"]),
            _epilogue_row(s["dense_boids"], device, s["dense_rows"])]
    kinds, missing = _kind_rows(s["kinds"], device)
    rows += kinds
    worst = max(r["max_rel_err"] / r["tol"] for r in rows)
    out = {"device": str(device), "rows": rows, "figure": f"worst error {worst:.2g} x tolerance"}
    if missing:
        out["error"] = f"kernel kinds not covered: {missing}"
    elif not all(r["within_tol"] for r in rows):
        out["error"] = "triton differs from dense beyond tolerance: " + ", ".join(
            r["case"] for r in rows if not r["within_tol"])
    return out


def section_triton_vs_grid(cfg):
    from flock.neighbors import reduce_neighbors

    device = _device()
    _need_triton(device)
    n = cfg["sizes"]["grid"]
    sim = _simulation("circles", n, device, "float32", "triton")
    pos, vel, kernels, period = _inputs(sim)
    tri = reduce_neighbors(pos, vel, kernels, backend="triton", period=period)
    grid = reduce_neighbors(pos, vel, kernels, backend="grid", period=period)
    scale = grid.abs().amax(dim=(-1, -2), keepdim=True).clamp_min(1.0)
    per_row = ((tri - grid).abs() / scale).amax(dim=(0, 2))  # [N]: worst channel and column per row
    tol = TOL["float32"]
    bad = int((per_row > tol).sum())
    out = {"device": str(device), "n_agents": n, "max_rel_err": float(per_row.max()), "tol": tol,
           "rows_beyond_tol": bad, "rows": n,
           "figure": f"N={n}: max err {float(per_row.max()):.2g}, {bad} of {n} rows beyond {tol:g}"}
    if bad:
        out["error"] = f"{bad} rows differ from the torch grid beyond {tol:g}"
    return out


def section_ensembles(cfg):
    import torch

    from flock.neighbors.triton_grid import reduce_triton, reduce_triton_batched

    device = _device()
    _need_triton(device)
    e, n = cfg["sizes"]["ensemble"]
    sim = _simulation("ensemble", n, device, "float32", "triton")
    _, _, kernels, _ = _inputs(sim)
    size = torch.tensor(sim.scenario.world.size, dtype=torch.float32)
    dim = size.numel()
    gen = torch.Generator().manual_seed(1)
    pos = (torch.rand(e, n, dim, generator=gen) * size).to(device)
    vel = torch.randn(e, n, dim, generator=gen).to(device)
    period = size.to(device) if sim.world.periodic else None
    reps = cfg["repeats"]
    batched = reduce_triton_batched(pos, vel, kernels, period=period)
    members = torch.stack([reduce_triton(pos[i], vel[i], kernels, period=period) for i in range(e)])
    err = _rel_err(batched, members)
    if device.type != "cuda":
        reps = 0  # the interpreter: the comparison above is the check, no timing
    batched_ms = _median_ms(lambda: reduce_triton_batched(pos, vel, kernels, period=period), device, reps)
    member_ms = _median_ms(lambda: [reduce_triton(pos[i], vel[i], kernels, period=period) for i in range(e)],
                           device, reps)
    out = {"device": str(device), "ensemble": e, "n_agents": n, "max_rel_err": err, "tol": TOL["float32"],
           "batched_ms": batched_ms, "member_by_member_ms": member_ms,
           "figure": f"E={e} N={n}: err {err:.2g}, batched {_ms(batched_ms)}, one by one {_ms(member_ms)}"}
    if err > TOL["float32"]:
        out["error"] = f"batched differs from member by member: {err:.3g} > {TOL['float32']:g}"
    return out


def section_host_syncs(cfg):
    import warnings

    import torch

    device = _device()
    _need_cuda(device)
    n, steps = cfg["sizes"]["syncs"], 10
    rows = []
    for kind, backend in (("circles", "triton"), ("boids", "triton"), ("boids", "dense")):
        if backend == "dense" and n > 20_000:
            n_run = 20_000
        else:
            n_run = n
        sim = _simulation(kind, n_run, device, "float32", backend)
        sim.step(2)  # compile and allocate outside the count
        _sync(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                sim.step(steps)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
        rows.append({"case": f"{kind} {backend}", "n_agents": n_run, "steps": steps, "syncs": len(syncs),
                     "syncs_per_step": len(syncs) / steps, "first": syncs[:3]})
    return {"device": str(device), "rows": rows,
            "figure": ", ".join(f"{r['case']} {r['syncs_per_step']:.2g}/step" for r in rows)}


def _time_steps(step, device, warmup, repeats, steps):
    t = time.perf_counter()
    step(1)
    _sync(device)
    first_ms = (time.perf_counter() - t) * 1e3
    if warmup:
        step(warmup)
    ms = _median_ms(lambda: step(steps), device, repeats)
    return first_ms, (ms / steps if ms is not None else None)


def _wander_graph_row(n: int, device, steps: int) -> dict:
    """Boids with wander (the counter-based noise, flock.noise) stepped in CUDA graphs and eagerly
    from one start: the graph must replay (no fallback) and land on the same state."""
    import torch

    from flock.cuda_graphs import GraphedStepper

    row = {"case": "boids+wander triton graphs == eager", "n_agents": n}
    if device.type != "cuda":
        row["skipped"] = "no CUDA"
        return row
    try:
        sims = [_simulation("boids", n, device, "float32", "triton") for _ in range(2)]
        for sim in sims:
            sim.scenario.rules.wander = 0.05
        stepper = GraphedStepper(sims[1], steps_per_graph=steps)
        sims[0].step(3 * steps)
        stepper.step(3 * steps)
        same = bool(torch.equal(sims[0].state.pos, sims[1].state.pos))
        counters = [int(sim.noise.counter) for sim in sims]
        row.update(graph_mode=stepper.mode, fallback_reason=stepper.fallback_reason, graph_replays=stepper.replays,
                   bit_identical=same, noise_counters=counters)
        if stepper.mode != "graph" or not same or counters != [3 * steps] * 2:
            row["error"] = f"mode {stepper.mode}, bit_identical {same}, counters {counters}"
    except Exception as exc:  # noqa: BLE001 - reported in the row
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def section_steps(cfg):
    from flock.cuda_graphs import GraphedStepper

    device = _device()
    _need_triton(device)
    s = cfg["sizes"]
    cuda = device.type == "cuda"
    warmup, reps, steps = (2, cfg["repeats"], 10) if cuda else (0, 0, 1)
    rows = []
    for kind, sizes in (("circles", s["steps_circles"]), ("boids", s["steps_boids"])):
        for n in sizes:
            for graphs in (False, True):
                row = {"case": f"{kind} triton {'graphs' if graphs else 'eager'}", "n_agents": n}
                rows.append(row)
                if graphs and not cuda:
                    row["skipped"] = "no CUDA"
                    continue
                sim = stepper = None
                try:
                    sim = _simulation(kind, n, device, "float32", "triton")
                    stepper = GraphedStepper(sim, steps_per_graph=steps) if graphs else None
                    first, ms = _time_steps(stepper.step if graphs else sim.step, device, warmup, reps, steps)
                    row.update(first_step_ms=first, ms_per_step=ms,
                               agent_steps_per_s=n / ms * 1e3 if ms else None)
                    if graphs:
                        row.update(graph_mode=stepper.mode, fallback_reason=stepper.fallback_reason,
                                   graph_replays=stepper.replays)
                except Exception as exc:  # one size failing (out of memory...) keeps the others
                    row["error"] = f"{type(exc).__name__}: {exc}"
                del sim, stepper  # free the device memory before the next size
    rows.append(_wander_graph_row(min(s["steps_boids"][0], 100_000), device, steps))
    timed = [dict(r, ms_per_step=r["ms_per_step"] or r["first_step_ms"]) for r in rows if "ms_per_step" in r]
    out = {"device": str(device), "timer": _timer(device)[1], "interpreted": not cuda, "rows": rows,
           "figure": ", ".join(f"{r['case'].split()[0]} {r['n_agents']:,}"
                               f"{' g' if 'graphs' in r['case'] else ''} {r['ms_per_step']:.3g} ms"
                               for r in timed)}
    errors = [r["case"] + f" {r['n_agents']}" for r in rows if "error" in r]
    if errors:
        out["error"] = "failed: " + ", ".join(errors)
    return out


def section_kernel_time(cfg):
    from flock.neighbors.triton_grid import reduce_triton

    device = _device()
    _need_triton(device)
    rows = []
    reps = cfg["repeats"] if device.type == "cuda" else 0
    for kind, n in cfg["sizes"]["kernel"]:
        sim = _simulation(kind, n, device, "float32", "triton")
        pos, vel, kernels, period = _inputs(sim)
        columns = "positions" if kind == "circles" else "all"
        first = _median_ms(lambda: reduce_triton(pos, vel, kernels, period=period, columns=columns), device, 1)
        ms = _median_ms(lambda: reduce_triton(pos, vel, kernels, period=period, columns=columns), device, reps)
        rows.append({"case": f"{kind} reduce_triton columns={columns}", "n_agents": n, "first_call_ms": first,
                     "ms": first if ms is None else ms})
        # one-warp blocks: fewer idle lanes (tools/lane_efficiency.py), to be timed against the default 64
        one_warp = lambda: reduce_triton(pos, vel, kernels, period=period, columns=columns, chunk_rows=32)  # noqa: E731
        first = _median_ms(one_warp, device, 1)
        ms = _median_ms(one_warp, device, reps)
        rows.append({"case": f"{kind} reduce_triton block=32", "n_agents": n, "first_call_ms": first,
                     "ms": first if ms is None else ms})
        epilogue = sim.params.rule.epilogue(sim.params)
        if epilogue is not None:
            # the sums and the torch rule after them, against the rule finished in the kernel
            def unfused():
                sums = reduce_triton(pos, vel, kernels, period=period)
                return sim.params.rule.update(sim.state, sums, sim.params)

            for case, fn in (("sums + torch rule", unfused),
                             (f"epilogue ({epilogue.rule})",
                              lambda: reduce_triton(pos, vel, kernels, period=period, epilogue=epilogue))):
                first = _median_ms(fn, device, 1)
                ms = _median_ms(fn, device, reps)
                rows.append({"case": f"{kind} {case}", "n_agents": n, "first_call_ms": first,
                             "ms": first if ms is None else ms})
    timer = _timer(device)[1]
    return {"device": str(device), "timer": timer, "interpreted": device.type != "cuda", "rows": rows,
            "figure": ", ".join(f"{r['case'].replace(' reduce_triton', '')} {r['n_agents']:,} {r['ms']:.3g} ms"
                                for r in rows)
            + f" ({timer})"}


def section_meanshift(cfg):
    import torch

    from bench_gpu import meanshift_scenario
    from flock import Simulation
    from flock.state import FlockState

    device = _device()
    n = cfg["sizes"]["meanshift"]
    sc = meanshift_scenario(n)
    fused = Simulation(sc, device=str(device), dtype=torch.float32, backend="fused", record_metrics=False)
    start = FlockState(pos=fused.state.pos.clone(), vel=fused.state.vel.clone(), group=fused.state.group.clone())
    dense = Simulation(sc.model_copy(deep=True), device=str(device), dtype=torch.float64, backend="dense",
                       record_metrics=False,
                       state=FlockState(pos=start.pos.double(), vel=start.vel.double(), group=start.group))
    fused.step(1)
    dense.step(1)
    err = float((fused.state.pos.double() - dense.state.pos).abs().max())
    span = float((dense.state.pos.amax(0) - dense.state.pos.amin(0)).max())
    # the kernels that ran, from the profiler (the SDPA backend chosen)
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fused.step(1)
        _sync(device)
    names = sorted({e.key for e in prof.key_averages()
                    if any(w in e.key.lower() for w in ("attention", "flash", "fmha", "efficient", "sdpa", "cudnn"))})
    reps = cfg["repeats"] if device.type == "cuda" else 1
    ms = _median_ms(lambda: fused.step(1), device, reps)
    return {"device": str(device), "n_points": int(fused.state.pos.shape[0]), "ms_per_step": ms,
            "timer": _timer(device)[1], "max_abs_err_vs_float64_dense": err, "extent": span,
            "attention_kernels": names,
            "figure": f"N={int(fused.state.pos.shape[0]):,}: {ms:.3g} ms/step, err {err:.2g} "
                      f"(extent {span:.3g}), {names[-1] if names else 'no attention kernel seen'}"}


FUNCS = {name: globals()[f"section_{name}"] for name in SECTIONS}


def run_section(name: str, cfg: dict) -> dict:
    """One section in this process: a dict with 'status' ok / skipped / failed."""
    t = time.perf_counter()
    try:
        res = FUNCS[name](cfg)
        res["status"] = "failed" if res.get("error") else "ok"
    except Skip as exc:
        res = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # reported, never raised: the other sections run on
        res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    res["seconds"] = time.perf_counter() - t
    return res


# ------------------------------------------------------------------ parent side

def run_child(name: str, cfg: dict, limit: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--config", json.dumps(cfg)]
    t = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {limit:.0f} s", "seconds": time.perf_counter() - t}
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (res.stderr or res.stdout).strip().splitlines()[-3:] or ["no output"]
    return {"status": "failed", "error": f"exit {res.returncode}: " + " | ".join(tail),
            "seconds": time.perf_counter() - t}


def summary_lines(results: dict) -> list[str]:
    lines = [f"{'section':<16} {'status':<8} {'s':>6}  figure / reason"]
    for name, res in results.items():
        what = res.get("error") or res.get("reason") or res.get("figure") or ""
        if res["status"] == "failed" and res.get("figure"):
            what = f"{res['figure']}; {what}"
        lines.append(f"{name:<16} {res['status']:<8} {res.get('seconds', 0):>6.1f}  {what[:160]}")
    counts = {s: sum(r["status"] == s for r in results.values()) for s in ("ok", "skipped", "failed")}
    lines.append(f"gpu_check: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true",
                   help="a few hundred agents everywhere: a CPU dry run under TRITON_INTERPRET=1")
    p.add_argument("--out", default=None, help="folder for gpu_check.json (default $OUT, else ./gpu_check_out)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 8 minutes)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure; the median is reported")
    p.add_argument("--in-process", action="store_true",
                   help="run the sections in this process (faster start; a CUDA crash then ends the check)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(run_section(args.child, json.loads(args.config))), flush=True)
        return 0
    names = [s for s in args.sections.split(",") if s]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        p.error(f"--sections: unknown {unknown}; expected some of {', '.join(SECTIONS)}")
    out_dir = Path(args.out or os.environ.get("OUT") or "gpu_check_out")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"sizes": SMALL if args.small else FULL, "repeats": args.repeats, "small": args.small}
    command = "python tools/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# {command}  (TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '')})", flush=True)
    results: dict = {}
    t0 = time.perf_counter()
    for name in names:
        left = args.budget - (time.perf_counter() - t0)
        limit = min(LIMITS[name], left) if not args.small else max(LIMITS[name], 120)
        if limit < 5:
            results[name] = {"status": "skipped", "reason": f"the {args.budget:.0f} s budget is spent", "seconds": 0}
        elif args.in_process:
            results[name] = run_section(name, cfg)
        else:
            results[name] = run_child(name, cfg, limit)
        res = results[name]
        print(f"=== {name}: {res['status']} ({res.get('seconds', 0):.1f} s) "
              f"{res.get('error') or res.get('reason') or res.get('figure') or ''}", flush=True)
    lines = summary_lines(results)
    doc = {"command": command, "small": args.small, "triton_interpret": os.environ.get("TRITON_INTERPRET"),
           "seconds": time.perf_counter() - t0, "sections": results, "summary": lines}
    path = out_dir / "gpu_check.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    print(f"wrote {path}")
    print("\n".join(lines))
    return 1 if any(r["status"] == "failed" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
