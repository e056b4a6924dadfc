"""Does the shipped network flock like its teacher? (issue 17: "flocks like its teacher")

    python tools/compare_teacher.py --steps 500 --seeds 7000,7001,7002,7003,7004

Runs ``scenarios/neural_boids.yaml`` (the network) and its reynolds teacher (the same scenario
with ``boids_torus.yaml``'s reynolds rules: same world, agents, limits and seeds) on seeds the
network was not trained on, as one ensemble each, and reports per seed and on average the
polarization and the mean nearest-neighbor distance (the mean over the last --tail steps,
sampled every --every steps), the relative differences, NaN agents, and whether a flock
collapsed (mean nearest-neighbor distance below --collapse world units).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import flock  # noqa: E402
from flock.metrics import mean_nearest_neighbor_distance, polarization  # noqa: E402

NEURAL = ROOT / "scenarios" / "neural_boids.yaml"
TEACHER = ROOT / "scenarios" / "boids_torus.yaml"


def run(sc: flock.Scenario, seeds: list[int], args) -> dict:
    sim = flock.Simulation(sc, seeds=seeds, device="cpu", dtype=torch.float32, backend=args.backend,
                           record_metrics=False)
    n, dim, b = sc.agents.count, sc.world.dims, len(seeds)
    period = torch.tensor(sc.world.size, dtype=torch.float32)
    pol = [[] for _ in seeds]
    nn = [[] for _ in seeds]
    t0 = time.perf_counter()
    for k in range(1, args.steps + 1):
        sim.step(1)
        if k > args.steps - args.tail and k % args.every == 0:
            pos, vel = sim.state.pos.view(b, n, dim), sim.state.vel.view(b, n, dim)
            for e in range(b):
                pol[e].append(polarization(vel[e]))
                nn[e].append(mean_nearest_neighbor_distance(pos[e], period))
    finite = bool(torch.isfinite(sim.state.pos).all() and torch.isfinite(sim.state.vel).all())
    return {"polarization": [statistics.fmean(p) for p in pol], "nn_distance": [statistics.fmean(d) for d in nn],
            "finite": finite, "seconds": time.perf_counter() - t0, "backend": sim.backend}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--seeds", default="7000,7001,7002,7003,7004", help="held-out seeds (training used 1000-1202 "
                                                                      "and 11000-11001)")
    p.add_argument("--tail", type=int, default=100, help="average the figures over the last TAIL steps")
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--collapse", type=float, default=0.5, help="mean nn distance below this is a collapse")
    p.add_argument("--backend", default="auto")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds: expected integers like 7000,7001, got {args.seeds!r}")
    if not seeds or args.steps < 1 or not 1 <= args.tail <= args.steps or args.every < 1:
        p.error("--seeds must be non-empty, --steps and --every >= 1, 1 <= --tail <= --steps")
    student = flock.load_scenario(NEURAL)
    data = student.to_dict()
    data["rules"] = flock.load_scenario(TEACHER).to_dict()["rules"]
    teacher = flock.validate_scenario(data, source=TEACHER)
    out = {"neural": run(student, seeds, args), "reynolds": run(teacher, seeds, args)}
    rel = {}
    for key in ("polarization", "nn_distance"):
        s, t = statistics.fmean(out["neural"][key]), statistics.fmean(out["reynolds"][key])
        rel[key] = (s - t) / t
        print(f"{key:13s} neural {s:.4f}  reynolds {t:.4f}  relative difference {rel[key]:+.1%}  "
              f"(per seed neural {[round(v, 3) for v in out['neural'][key]]}, "
              f"reynolds {[round(v, 3) for v in out['reynolds'][key]]})")
    collapsed = [min(out[k]["nn_distance"]) < args.collapse for k in ("neural", "reynolds")]
    print(f"finite: neural {out['neural']['finite']}, reynolds {out['reynolds']['finite']}; collapse: neural "
          f"{collapsed[0]}, reynolds {collapsed[1]}; seconds {out['neural']['seconds']:.0f} / "
          f"{out['reynolds']['seconds']:.0f} ({out['neural']['backend']})")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": seeds, "steps": args.steps, "tail": args.tail,
                                               "load_average": os.getloadavg(), "relative": rel, **out}, indent=1),
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
