"""flock side by side with what it replaces, in one process: Mesa, numpy boids, the lesson's mean shift.

    python tools/compare_peers.py [--quick] [--json tools/results/compare_peers.json]

Three peers, each timed after a warm-up as the median of ``--repeats`` runs, next to
flock on the same model, N and density, with flock's defaults (backend auto, threads
chosen by flock, metrics recorded every step as a run records them):

1. Mesa 3.3.1's own ``BoidFlockers`` (``pip install -e ".[compare]"``) against
   ``scenarios/mesa_flockers.yaml``, N = 100, 1,000, 5,000, the torus scaled to keep
   Mesa's density (100 agents on 100 x 100). One ``model.step()`` against one
   ``sim.step()``.
2. A plain vectorised numpy O(N^2) boids with the JavaScript post's rules (view 100,
   too-near 20, 1000 x 500 field with soft walls, uniform start; the rules of
   ``flock.testing.reference_seed_step``) against flock's ``seed`` formulation with the
   same field and radii (``scenarios/boids_seed.yaml``, view 100, uniform start), N =
   1,000, 5,000, 20,000.
3. The fastai lesson's per-point numpy mean shift loop (``meanshift`` below, 5
   iterations over 1,500 points) against ``scenarios/meanshift_seed.yaml`` for 5 steps.

The machine, its load (``os.getloadavg``) and the versions go into the JSON.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MESA_DENSITY = 100 / (100 * 100)          # BoidFlockers' defaults: 100 agents on a 100 x 100 torus
SEED_FIELD = (1000.0, 500.0)
SEED_VIEW, SEED_NEAR = 100.0, 20.0


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in ms after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


# ------------------------------------------------------------------ peers

def numpy_seed_step(pos: np.ndarray, vel: np.ndarray, *, width: float, height: float, view: float,
                    near: float, cohesion: float = 1.0, alignment: float = 0.7, separation: float = 5.0,
                    max_force: float = 0.1, max_speed: float = 5.0, wall_force: float = 1.0,
                    rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """One step of the JavaScript post's Field, vectorised with numpy over all pairs (O(N^2)).

    The rules of ``flock.testing.reference_seed_step``, a block of ``rows`` fish at a time
    so that the [rows, N] distance matrix stays small. pos, vel: [N, 2] float64.
    """
    n = pos.shape[0]
    acc = np.zeros_like(pos)

    def unit(v):
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)

    for s in range(0, n, rows):
        p = pos[s:s + rows]
        d = np.sqrt(((pos[None, :, :] - p[:, None, :]) ** 2).sum(-1))         # [m, N]
        d[np.arange(p.shape[0]), np.arange(s, s + p.shape[0])] = np.inf
        seen = (d < view).astype(np.float64)
        close = (d < near).astype(np.float64)
        cnt, ccnt = seen.sum(1, keepdims=True), close.sum(1, keepdims=True)
        has = cnt[:, 0] > 0
        safe = np.maximum(cnt, 1)
        vdir = alignment * unit(seen @ vel / safe - vel[s:s + rows])
        pdir = cohesion * unit(seen @ pos / safe - p)
        away = separation * unit(close @ pos / np.maximum(ccnt, 1) - p) * (ccnt > 0)
        a = max_force * unit(pdir + vdir - away)
        acc[s:s + rows] = np.where(has[:, None], a, 0.0)
    acc[:, 0] += wall_force * ((pos[:, 0] < 0).astype(float) - (pos[:, 0] > width))
    acc[:, 1] += wall_force * ((pos[:, 1] < 0).astype(float) - (pos[:, 1] > height))
    vel = vel + acc
    speed = np.linalg.norm(vel, axis=1, keepdims=True)
    vel = np.where(speed > max_speed, vel * max_speed / np.maximum(speed, 1e-300), vel)
    return pos + vel, vel


def gaussian(d, bw):
    """The lesson's kernel: exp(-d^2 / (2 bw^2)) / (bw sqrt(2 pi))."""
    return np.exp(-0.5 * ((d / bw)) ** 2) / (bw * math.sqrt(2 * math.pi))


def meanshift(data: np.ndarray, bandwidth: float = 2.5, iterations: int = 5) -> np.ndarray:
    """The fastai lesson's mean shift, point by point (each point moves as soon as it is done)."""
    X = np.copy(data)
    for _ in range(iterations):
        for i, x in enumerate(X):
            dist = np.sqrt(((x - X) ** 2).sum(1))
            weight = gaussian(dist, bandwidth)
            X[i] = (np.expand_dims(weight, 1) * X).sum(0) / weight.sum()
    return X


# ------------------------------------------------------------------ flock side

def flock_sim(path: str, overrides: list[str]):
    import flock

    sc = flock.load_scenario(ROOT / path, overrides=overrides)
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    from flock.threads import set_threads

    set_threads(sc.run.threads, n_agents=sim.state.n_agents, backend=sim.backend)
    return sim


def compare_mesa(sizes, repeats) -> list[dict]:
    try:
        import mesa
        from mesa.examples.basic.boid_flockers.model import BoidFlockers
    except ImportError:
        print("Mesa is not installed (pip install -e '.[compare]'): skipping the Mesa rows", file=sys.stderr)
        return []
    rows = []
    for n in sizes:
        side = math.sqrt(n / MESA_DENSITY)
        model = BoidFlockers(population_size=n, width=side, height=side, seed=0)
        peer = median_ms(model.step, repeats)
        sim = flock_sim("scenarios/mesa_flockers.yaml", [f"agents.count={n}", f"world.size=[{side}, {side}]"])
        ours = median_ms(lambda: sim.step(1), repeats, warmup=2)
        rows.append({"workload": f"Mesa {mesa.__version__} BoidFlockers vs mesa_flockers.yaml", "n": n,
                     "peer_ms": peer, "flock_ms": ours, "flock_backend": sim.backend})
    return rows


def compare_numpy_boids(sizes, repeats) -> list[dict]:
    rows = []
    width, height = SEED_FIELD
    for n in sizes:
        rng = np.random.default_rng(0)
        pos = rng.uniform([0, 0], [width, height], size=(n, 2))
        vel = rng.uniform(0, 1, size=(n, 2))
        state = {"pos": pos, "vel": vel}

        def peer_step():
            state["pos"], state["vel"] = numpy_seed_step(state["pos"], state["vel"], width=width, height=height,
                                                         view=SEED_VIEW, near=SEED_NEAR)

        peer = median_ms(peer_step, repeats)
        sim = flock_sim("scenarios/boids_seed.yaml", [
            f"agents.count={n}", "agents.position.low=[0, 0]", f"agents.position.high=[{width}, {height}]",
            f"rules.cohesion.radius={SEED_VIEW}", f"rules.alignment.radius={SEED_VIEW}",
            f"rules.separation.radius={SEED_NEAR}"])
        ours = median_ms(lambda: sim.step(1), repeats, warmup=2)
        rows.append({"workload": "numpy O(N^2) boids, JavaScript rules, view 100, 1000 x 500", "n": n,
                     "peer_ms": peer, "flock_ms": ours, "flock_backend": sim.backend})
    return rows


def compare_meanshift(repeats) -> list[dict]:
    import torch

    sim = flock_sim("scenarios/meanshift_seed.yaml", ["rules.max_iter=5", "rules.tol=0"])
    data = sim.state.pos.to(torch.float64).numpy().copy()
    peer = median_ms(lambda: meanshift(data), repeats, warmup=0)

    def ours():
        sim.reset()
        sim.step(5)

    flock_ms = median_ms(ours, repeats)
    return [{"workload": "fastai lesson numpy mean shift loop, 5 iterations", "n": data.shape[0],
             "peer_ms": peer, "flock_ms": flock_ms, "flock_backend": sim.backend}]


def format_table(rows: list[dict]) -> str:
    lines = ["| workload | N | peer ms | flock ms | ratio | flock backend |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['n']:,} | {r['peer_ms']:,.1f} | {r['flock_ms']:,.2f} | "
                     f"{r['peer_ms'] / r['flock_ms']:,.0f}x | {r['flock_backend']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesa", default="100,1000,5000", help="Mesa sizes")
    parser.add_argument("--boids", default="1000,5000,20000", help="numpy boids sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--quick", action="store_true", help="3 repeats (a loaded machine)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: mesa,boids,meanshift")
    parser.add_argument("--json", default=None, help="write the rows and the machine to this JSON file")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    skip = set(args.skip.split(","))
    sizes = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    rows = []
    if "mesa" not in skip:
        rows += compare_mesa(sizes(args.mesa), repeats)
    if "boids" not in skip:
        rows += compare_numpy_boids(sizes(args.boids), repeats)
    if "meanshift" not in skip:
        rows += compare_meanshift(repeats)
    print(format_table(rows))
    if args.json:
        import torch

        meta = {"command": "python tools/compare_peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                "load_average": os.getloadavg(), "torch": torch.__version__, "numpy": np.__version__,
                "repeats": repeats}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
