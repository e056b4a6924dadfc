"""Frame time of the renderer's drawing alone (no simulation steps), for both drawing paths.

    python tools/bench_render.py --agents 1000,10000,100000,1000000 --repeats 5

For every agent count, a 2D flock of uniformly placed agents with random velocities is
drawn onto an off-screen pygame Surface by ``render.draw.Renderer``:

- pixels:    positions -> pixel indices in one tensor operation, written into an image
             tensor, blitted in one call (the path used above ``render.draw.LARGE_N``);
- triangles: one ``pygame.draw.polygon`` per agent (the path used up to ``LARGE_N``),
             measured up to ``--max-triangles`` agents.

Each figure is the median of ``--repeats`` frames after one warm-up frame, with the device
synchronised around the timer. No display is needed (SDL's dummy driver is used).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402
import torch  # noqa: E402

import flock  # noqa: E402
from render.draw import LARGE_N, Renderer  # noqa: E402
from render.export import make_view  # noqa: E402


def make_sim(n_agents: int, width: float, height: float, device: str) -> flock.Simulation:
    data = {"name": f"bench_{n_agents}",
            "world": {"dims": 2, "size": [width, height], "boundary": "wrap"},
            "agents": {"count": n_agents, "velocity": {"kind": "random_direction", "speed": 1.0}, "max_speed": 2.0},
            "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 10.0},
                      "alignment": {"weight": 1.0, "radius": 10.0}, "separation": {"weight": 1.5, "radius": 5.0}},
            "run": {"device": device}}
    return flock.Simulation(flock.validate_scenario(data), device=device, record_metrics=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_frames(renderer: Renderer, surface: pygame.Surface, sim, repeats: int) -> float:
    """Median seconds per drawn frame after one warm-up frame."""
    renderer.draw(surface, sim, show_box=False)
    times = []
    for _ in range(repeats):
        sync(sim.device)
        start = time.perf_counter()
        renderer.draw(surface, sim, show_box=False)
        sync(sim.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="1000,10000,100000,1000000", help="comma-separated agent counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="1000x600", help="surface WIDTHxHEIGHT in pixels")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--max-triangles", type=int, default=100_000,
                        help="measure the per-agent triangle path up to this many agents")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    counts = [int(v) for v in args.agents.split(",") if v.strip()]
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = flock.simulation.resolve_device(args.device)
    surface = pygame.Surface((width, height))
    rows = []
    print(f"drawing only, {width}x{height} surface, device {device}, torch {torch.__version__}, "
          f"pygame {pygame.version.ver}, {torch.get_num_threads()} torch threads; median of {args.repeats}")
    print(f"{'agents':>10}  {'pixels ms':>10}  {'pixels fps':>10}  {'triangles ms':>12}  {'triangles fps':>13}")
    for n in counts:
        sim = make_sim(n, float(width), float(height), str(device))
        view = make_view(sim, width, height)
        pixels = time_frames(Renderer(view, large_n=0), surface, sim, args.repeats)
        triangles = None
        if n <= args.max_triangles:
            triangles = time_frames(Renderer(view, large_n=max(n, LARGE_N)), surface, sim, args.repeats)
        rows.append({"agents": n, "pixels_s": pixels, "triangles_s": triangles})
        tri_ms = f"{triangles * 1e3:12.2f}" if triangles is not None else f"{'-':>12}"
        tri_fps = f"{1 / triangles:13.1f}" if triangles is not None else f"{'-':>13}"
        print(f"{n:>10,}  {pixels * 1e3:10.2f}  {1 / pixels:10.1f}  {tri_ms}  {tri_fps}", flush=True)
        del sim
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"command": " ".join(["python", "tools/bench_render.py", *(argv or sys.argv[1:])]),
                       "device": str(device), "torch": torch.__version__, "pygame": pygame.version.ver,
                       "python": platform.python_version(), "threads": torch.get_num_threads(),
                       "size": [width, height], "repeats": args.repeats, "results": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
