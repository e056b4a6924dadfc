"""What wander's counter-based noise costs: ``NoiseStream.normal`` against ``torch.randn``.

    OMP_NUM_THREADS=1 python tools/bench_noise.py --agents 10000,100000,1000000 --device cpu

Per size and engine (``NoiseStream(engine=...)``: 'torch' tensor ops, 'numba' on a CPU): the
median time of one draw of [N, D] normals (after warm-up, same run, ``torch.randn`` the baseline),
and the number of aten operations one draw dispatches (each is one kernel launch on a GPU,
the figure that matters there inside a CUDA graph). Prints a table; ``--json`` writes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flock.noise import NoiseStream  # noqa: E402


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, device, repeats):
    fn()
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", default="10000,100000,1000000")
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--engines", default="torch,numba", help="comma-separated NoiseStream engines")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    gen = torch.Generator(device=device).manual_seed(1)
    rows = []
    for n in (int(x) for x in args.agents.split(",")):
        shape = (n, args.dim)
        randn = _median_ms(lambda: torch.randn(shape, generator=gen, device=device, dtype=dtype), device,
                           args.repeats)
        for engine in args.engines.split(","):
            stream = NoiseStream([1], device, engine=engine)
            counter = OpCounter()
            with counter:
                stream.normal(shape, dtype)
            philox = _median_ms(lambda: stream.normal(shape, dtype), device, args.repeats)
            rows.append({"n_agents": n, "dim": args.dim, "dtype": args.dtype, "engine": engine, "noise_ms": philox,
                         "randn_ms": randn, "ratio": philox / randn, "aten_ops_per_draw": counter.ops})
    print(f"# {' '.join(sys.argv)}  (device {device}, torch {torch.__version__})")
    print(f"{'N':>10} {'engine':>7} {'NoiseStream ms':>15} {'torch.randn ms':>15} {'ratio':>7} {'aten ops':>9}")
    for r in rows:
        print(f"{r['n_agents']:>10,} {r['engine']:>7} {r['noise_ms']:>15.3f} {r['randn_ms']:>15.3f} "
              f"{r['ratio']:>7.1f} {r['aten_ops_per_draw']:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
