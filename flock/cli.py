"""The ``flocksim`` command (also ``python -m flock``).

    flocksim run SCENARIO [--headless] [--steps N] [--out DIR] [--device D] [--seed S] [--backend B]
    flocksim validate SCENARIO...

Errors a user can cause print one clear message per problem and exit 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

from .errors import ScenarioError


class MetricsCsvWriter:
    """Writes each metrics row to ``path`` as it is recorded, flushed, so an interrupted run keeps it."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "w", newline="", encoding="utf-8")
        self._writer: csv.DictWriter | None = None

    def __call__(self, row: dict) -> None:
        if self._writer is None:
            self._writer = csv.DictWriter(self._fh, fieldnames=list(row))
            self._writer.writeheader()
        self._writer.writerow(row)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def save_final_state(sim, path: Path) -> None:
    """``pos`` and ``vel`` ([N, D]), ``group`` ([N]) and ``step`` of ``sim`` as a .npz file."""
    st = sim.state
    np.savez(path, pos=st.pos.cpu().numpy(), vel=st.vel.cpu().numpy(), group=st.group.cpu().numpy(),
             step=np.int64(sim.step_count))


def _summary(sim, seconds: float, interrupted: bool) -> str:
    n = sim.state.n_agents
    steps = sim.metrics.last().get("step", sim.step_count) if sim.metrics else sim.step_count
    rate = n * sim.step_count / seconds if seconds > 0 else math.inf
    name = sim.scenario.name or (sim.scenario.source.stem if sim.scenario.source else "scenario")
    head = "interrupted" if interrupted else "done"
    text = (f"{name}: {head} after {steps} steps of {n} agents in {seconds:.2f} s "
            f"({rate:,.0f} agent-steps/s) on {sim.device}, backend {sim.backend}")
    last = sim.metrics.last()
    if sim.scenario.is_meanshift:
        conv = "converged" if sim.done and sim.last_shift < sim.scenario.rules.tol else "not converged"
        text += f"; {last.get('n_modes', '?')} modes, {conv} (shift {sim.last_shift:.2e})"
    elif last and "polarization" in last:
        text += f"; polarization {last['polarization']:.3f}, mean speed {last['mean_speed']:.3f}"
    return text


def _open_window_runner(args):
    """The pygame window runner, or None (with the reason) when no window can be used."""
    try:
        from render.window import run_window, window_available  # noqa: PLC0415  (optional front end)
    except ImportError as exc:
        return None, f"the pygame front end is not available ({exc})"
    ok, why = window_available()
    return (run_window, None) if ok else (None, why)


def _frame_writer(sim, args):
    """A ``render.export.FrameWriter`` for --frames/--gif/--video, or None when none was asked for."""
    if not (args.frames or args.gif or args.video):
        return None
    from render.export import FrameWriter  # noqa: PLC0415  (pygame front end, loaded only when asked)

    return FrameWriter(sim, frames_dir=args.frames, gif=args.gif, video=args.video, size=args.size,
                       fps=args.fps or 10, trail=args.trail)


def cmd_run(args) -> int:
    from .simulation import Simulation

    exporting = bool(args.frames or args.gif or args.video)
    if args.every < 1:
        print(f"--every: expected an integer >= 1, got {args.every}", file=sys.stderr)
        return 2
    if args.size is not None:
        try:
            from render.export import parse_size  # noqa: PLC0415

            args.size = parse_size(args.size)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    if args.video:
        from render.export import video_support  # noqa: PLC0415

        missing = video_support()
        if missing:
            print(missing, file=sys.stderr)
            return 2
    try:
        sim = Simulation.from_scenario(args.scenario, device=args.device, dtype=args.dtype,
                                       backend=args.backend, seed=args.seed)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    steps = args.steps if args.steps is not None else sim.scenario.run.steps
    name = sim.scenario.name or Path(args.scenario).stem
    out = Path(args.out) if args.out else Path("runs") / name
    if not args.headless and not exporting:
        runner, why = _open_window_runner(args)
        if runner is not None:
            from render.window import WindowUnavailable  # noqa: PLC0415

            try:
                # in the window, no --steps means: run until the window is closed
                return runner(sim, steps=args.steps, out=out, args=args)
            except WindowUnavailable as exc:
                why = str(exc)
        print(f"no window: {why}; running headless", file=sys.stderr)
    elif exporting and not args.headless:
        print("--frames/--gif/--video draw off-screen: running headless", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    writer = MetricsCsvWriter(out / "metrics.csv")
    for row in sim.metrics.rows:
        writer(row)
    sim.metrics.add_listener(writer)
    frames = None
    interrupted = False
    start = time.perf_counter()
    try:
        frames = _frame_writer(sim, args)
        if frames is not None:
            frames.capture(sim)
        from tqdm import tqdm

        with tqdm(total=steps, unit="step", disable=args.quiet, file=sys.stderr, leave=False) as bar:
            done = 0
            # frames are drawn every --every steps, so the run goes in chunks of that size
            chunk = args.every if frames is not None else max(1, steps // 200)
            while done < steps and not sim.done:
                k = min(chunk, steps - done)
                before = sim.step_count
                sim.step(k)
                moved = sim.step_count - before
                done += moved
                bar.update(moved)
                if frames is not None and moved and (done % args.every == 0 or sim.done or done >= steps):
                    frames.capture(sim)
                if moved < k:
                    break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        seconds = time.perf_counter() - start
        writer.close()
        save_final_state(sim, out / "final_state.npz")
        written = frames.close() if frames is not None else []
    print(_summary(sim, seconds, interrupted))
    print(f"wrote {out / 'metrics.csv'} and {out / 'final_state.npz'}")
    for line in written:
        print(line)
    return 130 if interrupted else 0


def cmd_validate(args) -> int:
    from .scenario import load_scenario

    bad = 0
    for path in args.scenarios:
        try:
            load_scenario(path)
        except ScenarioError as exc:
            bad += 1
            print(exc, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flocksim", description="GPU-first flocking and mean shift.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario (a window when a display is available)",
                         description="Run a scenario: in a pygame window when a display is available "
                                     "(until closed, or --steps N), else headless (--steps N, default "
                                     "the scenario's run.steps).")
    run.add_argument("scenario", help="a scenario YAML file")
    run.add_argument("--headless", action="store_true", help="no window: write metrics and the final state")
    run.add_argument("--steps", type=int, default=None,
                     help="steps to run (headless default: the scenario's run.steps; a window without "
                          "--steps runs until closed)")
    run.add_argument("--out", default=None, help="output folder (default: runs/<scenario name>)")
    run.add_argument("--device", default=None, help="auto | cpu | cuda (default: the scenario's)")
    run.add_argument("--dtype", default=None, choices=["float32", "float64"])
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--backend", default=None, choices=["auto", "dense", "grid", "fused", "triton"])
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    pics = run.add_argument_group("pictures and window (--frames/--gif/--video draw off-screen: the run is headless)")
    pics.add_argument("--frames", default=None, metavar="DIR", help="write PNG frames DIR/frame_00000.png, ...")
    pics.add_argument("--every", type=int, default=1, metavar="K",
                      help="draw a frame every K steps (and the first and last state); default 1")
    pics.add_argument("--gif", default=None, metavar="FILE", help="write an animated GIF of the run")
    pics.add_argument("--video", default=None, metavar="FILE.mp4",
                      help="write a video (needs the optional imageio-ffmpeg: pip install imageio-ffmpeg)")
    pics.add_argument("--size", default=None, metavar="WxH",
                      help="picture / window size in pixels (default: the scenario's render width x height)")
    pics.add_argument("--trail", type=int, default=None, metavar="K",
                      help="draw each agent's last K positions (default: the scenario's render.trail)")
    pics.add_argument("--fps", type=int, default=None,
                      help="frames per second of the GIF / video (default 10) and the window's cap")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check scenario files; print every problem")
    val.add_argument("scenarios", nargs="+")
    val.set_defaults(func=cmd_validate)

    from .bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
