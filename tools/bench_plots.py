"""Cost of the window's live plots per frame at a long history (render.plots).

Each timed frame appends one metrics row and draws the charts of a boids run: polarization,
mean speed, nearest-neighbor distance. Three figures, in one run:

- redraw: every chart drawn again each frame (the redraw throttle off), median;
- live at --fps: frames paced at --fps with the throttle on (a chart is redrawn for new data
  at most every render.plots.REDRAW_INTERVAL s), mean over the frames (the amortised cost);
- baseline: no new row, every chart blitted from its cache, median.

    python tools/bench_plots.py --history 10000 --repeats 200
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402

import flock  # noqa: E402
from flock.metrics import MetricsLog  # noqa: E402
from render.plots import REDRAW_INTERVAL, Plots  # noqa: E402


def row(step: int) -> dict:
    return {"step": step, "polarization": 0.5 + 0.4 * math.sin(step / 50), "mean_speed": 1.0 + 0.001 * step,
            "mean_nn_distance": 3.0 + math.cos(step / 70)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000, help="metrics rows already in the log")
    parser.add_argument("--repeats", type=int, default=200, help="timed frames; the median is reported")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    parser.add_argument("--width", type=int, default=288, help="chart width px (the panel's)")
    parser.add_argument("--fps", type=float, default=60.0, help="frame rate of the live figure")
    args = parser.parse_args(argv)
    pygame.font.init()
    font = pygame.font.Font(None, 18)
    surface = pygame.Surface((args.width, 400))
    rect = surface.get_rect()
    plots = Plots(flock.load_scenario("scenarios/boids_seed.yaml"))
    log = MetricsLog()
    for step in range(args.history):
        log.append(row(step))
    step = args.history

    def frame(new_row: bool) -> float:
        nonlocal step
        if new_row:
            log.append(row(step))
            step += 1
        t0 = time.perf_counter()
        plots.sync(log)
        plots.draw(surface, rect, font)
        return time.perf_counter() - t0

    def throttle(seconds: float) -> None:
        for plot in plots.plots.values():
            plot.redraw_interval = seconds

    throttle(0.0)
    for _ in range(args.warmup):
        frame(True)
    fresh = [frame(True) for _ in range(args.repeats)]
    throttle(REDRAW_INTERVAL)
    live = []
    for _ in range(args.repeats):
        live.append(frame(True))
        time.sleep(max(0.0, 1 / args.fps - live[-1]))
    cached = [frame(False) for _ in range(args.repeats)]
    print(f"history {args.history:,} -> {len(log):,} rows, charts {len(plots.plots)}, width {args.width} px")
    print(f"redraw every frame:            median {1e3 * statistics.median(fresh):.3f} ms/frame")
    print(f"live at {args.fps:g} fps (throttled):  mean   {1e3 * statistics.mean(live):.3f} ms/frame")
    print(f"baseline, cached charts:       median {1e3 * statistics.median(cached):.3f} ms/frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
