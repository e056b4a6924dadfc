"""Frame rate of the live window: the real ``render.window.Window`` loop, steps and drawing together.

    python tools/bench_window.py scenarios/boids_seed.yaml scenarios/murmuration_3d.yaml --frames 200

Each scenario is opened as ``flocksim run`` opens it (default device, backend and thread
count, the scenario's own pace, trails and panel), and ``Window.frame()`` (events, the
frame's steps, drawing field and panel, flip) runs uncapped: no ``clock.tick``, so the figure
is the frame rate the machine can reach, which the window then caps at ``render.fps``. After
``--warmup`` frames (JIT compiles, first allocations), every frame is timed on its own; the
median frame time gives the fps, with the share of it spent stepping.

The display is SDL's dummy driver unless ``--display`` is given (then ``$DISPLAY``, e.g. an
Xvfb server: ``xvfb-run -s '-screen 0 1600x1000x24' python tools/bench_window.py --display ...``),
in which case the flip goes to a real X server too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="+", help="scenario files")
    p.add_argument("--frames", type=int, default=200, help="timed frames per scenario")
    p.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    p.add_argument("--display", action="store_true", help="use $DISPLAY instead of SDL's dummy driver")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and numba (default: the scenario's run.threads, else flock's choice)")
    p.add_argument("--json", help="write the records to this JSON file")
    return p.parse_args(argv)


def measure(path: str, frames: int, warmup: int, threads: int | None = None) -> dict:
    """Median frame time of one scenario's window; returns a record (ms, fps, step share)."""
    import torch

    import flock
    from flock.threads import set_threads
    from render.window import Window

    scenario = flock.load_scenario(path)
    sim = flock.Simulation.from_scenario(scenario)
    threads = set_threads(threads if threads is not None else scenario.run.threads, n_agents=sim.state.n_agents, backend=sim.backend)
    window = Window(sim, out=Path("/tmp") / f"bench_window_{os.getpid()}", quiet=True, paused=False)
    step_times: list[float] = []
    real_update = window.update

    def timed_update():
        t0 = time.perf_counter()
        moved = real_update()
        if sim.device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)
        return moved

    window.update = timed_update
    frame_times = []
    for k in range(warmup + frames):
        t0 = time.perf_counter()
        if not window.frame():
            break
        if k >= warmup:
            frame_times.append(time.perf_counter() - t0)
    step_times = step_times[warmup:]
    frame_ms = 1e3 * statistics.median(frame_times)
    step_ms = 1e3 * statistics.median(step_times)
    return {"scenario": path, "agents": sim.state.n_agents, "dims": sim.state.dim, "backend": sim.backend,
            "device": str(sim.device), "threads": list(threads), "steps_per_frame": scenario.render.steps_per_frame,
            "frames": len(frame_times), "frame_ms": frame_ms, "fps": 1e3 / frame_ms, "step_ms": step_ms,
            "target_fps": scenario.render.fps}


def main(argv=None) -> int:
    args = _parse(argv)
    if not args.display:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    pygame.display.init()
    records = []
    print(f"{'scenario':32} {'N':>7} {'D':>2} {'backend':>8} {'frame ms':>9} {'step ms':>8} {'fps':>6} {'cap':>4}")
    for path in args.scenarios:
        r = measure(path, args.frames, args.warmup, args.threads)
        records.append(r)
        print(f"{Path(path).name:32} {r['agents']:>7} {r['dims']:>2} {r['backend']:>8} {r['frame_ms']:>9.2f} "
              f"{r['step_ms']:>8.2f} {r['fps']:>6.1f} {r['target_fps']:>4}", flush=True)
    pygame.display.quit()
    if args.json:
        meta = {"machine": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                "load": os.getloadavg(), "display": os.environ.get("SDL_VIDEODRIVER", os.environ.get("DISPLAY")),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
        Path(args.json).write_text(json.dumps({"meta": meta, "records": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
