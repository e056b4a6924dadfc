"""Lane efficiency of the Triton kernel per block size: a static proxy, computed on the CPU.

The kernel runs each strip's loop to the longest strip of its block, so lanes idle at the
end of shorter strips; ``triton_grid.lane_efficiency`` is the useful fraction of those
iterations (1: no lane idles), from the same cells and strips the kernel walks.

    python tools/lane_efficiency.py [--agents circles:64000,boids:100000] [--blocks 32,64,128] [--steps 50]

Boids step ``--steps`` times first (numba backend) so the flock has clumped a little.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", default="circles:64000,boids:100000", help="kind:N,... (kinds of bench_gpu)")
    ap.add_argument("--blocks", default="32,64,128", help="queries per program")
    ap.add_argument("--steps", type=int, default=50, help="boid steps before measuring")
    args = ap.parse_args(argv)

    import torch

    from bench_gpu import SCENARIOS
    from flock import Simulation
    from flock.neighbors.triton_grid import lane_efficiency

    blocks = [int(b) for b in args.blocks.split(",")]
    print("kind      agents  " + "  ".join(f"block {b:>3}" for b in blocks))
    for item in args.agents.split(","):
        kind, n = item.split(":")
        sim = Simulation(SCENARIOS[kind](int(n)), device="cpu", dtype=torch.float32, backend="numba",
                         record_metrics=False)
        if kind == "boids":
            sim.step(args.steps)
        pos = sim.state.pos
        eff = [lane_efficiency(pos, sim.kernels(), period=sim.world.period(pos), block=b) for b in blocks]
        print(f"{kind:8s} {int(n):>8,}  " + "  ".join(f"{e:9.3f}" for e in eff), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
