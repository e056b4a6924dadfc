"""The ``flocksim`` command (also ``python -m flock``).

    flocksim run SCENARIO [--headless] [--steps N] [--out DIR] [--device D] [--seed S] [--backend B]
                 [--record F.h5 [--record-every K]] [--checkpoint DIR [--checkpoint-every K]]
    flocksim run --resume DIR/ckpt_<step> [--steps N] [--record F.h5] [--checkpoint DIR] ...
    flocksim validate SCENARIO...
    flocksim replay F.h5 [--info]
    flocksim sweep SWEEP.yaml [--workers N] [--ray-address ADDR] [--resume] [--dry-run] [--shard i/n]  (flock.sweep)

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
from .names import BACKEND_NAMES
from .cli_checks import check_replay_flags, check_resume_steps, check_run_flags, check_run_out
from .resources import check_run_memory
from .run_output import MetricsCsvWriter, finish_outputs, holds_a_run, new_run_folder, run_summary, save_final_state


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


def _check_run_args(args) -> str | None:
    """The problem with the recording/checkpoint/resume flags, if any."""
    for flag in ("record_every", "checkpoint_every", "checkpoint_keep"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            return f"--{flag.replace('_', '-')}: expected an integer >= 1, got {value}"
    if args.resume is None and args.scenario is None:
        return "run: give a SCENARIO file, or --resume DIR/ckpt_<step>"
    if args.resume is not None:
        clash = [f for f, v in (("SCENARIO", args.scenario), ("--seed", args.seed), ("--dtype", args.dtype),
                                ("--backend", args.backend), ("--set", args.set or None)) if v is not None]
        if clash:
            return (f"--resume: continues the checkpoint's own scenario, seed, dtype and backend; "
                    f"leave out {', '.join(clash)}")
    return None


def _out_folder(args, name: str) -> Path | None:
    """--out (None, said why, when it holds an earlier run and --overwrite is not given), or a
    new runs/<name>-<k> so that runs never overwrite each other."""
    if not args.out:
        return new_run_folder(name)
    out = Path(args.out)
    if holds_a_run(out) and not args.overwrite:
        print(f"--out {out}: the folder holds an earlier run (metrics.csv / final_state.npz); pass --overwrite "
              "to replace it, or leave out --out for a new runs/<scenario>-<k> folder", file=sys.stderr)
        return None
    return out


def _apply_threads(args, scenario, n_agents: int, backend: str) -> bool:
    """Set torch's and numba's threads from --threads, else run.threads, else the default; False on bad input."""
    from .threads import set_threads

    threads = args.threads if getattr(args, "threads", None) is not None else scenario.run.threads
    try:
        set_threads(threads, n_agents=n_agents, backend=backend)
    except ValueError as exc:
        print(f"--threads: {exc}; pass an integer >= 1", file=sys.stderr)
        return False
    return True


def cmd_run(args) -> int:
    from .checkpoint import CheckpointError, CheckpointEvery, load_checkpoint
    from .recording import step_with_hooks
    from .scenario import load_scenario

    check_run_flags(args)
    if args.ensemble is not None:
        return cmd_run_ensemble(args)
    from .simulation import Simulation

    exporting = bool(args.frames or args.gif or args.video)
    problem = _check_run_args(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.video:
        from render.export import video_support  # noqa: PLC0415

        missing = video_support()
        if missing:
            print(missing, file=sys.stderr)
            return 2
    try:
        if args.resume is not None:
            sim = load_checkpoint(args.resume, device=args.device)
        else:
            scenario = load_scenario(args.scenario, overrides=args.set or None)
            check_run_memory(scenario, args.backend, args.device, origin=str(args.scenario))
            sim = Simulation.from_scenario(scenario, device=args.device, dtype=args.dtype,
                                           backend=args.backend, seed=args.seed)
        check_resume_steps(args, sim.step_count)
    except (ScenarioError, CheckpointError) as exc:
        print(exc, file=sys.stderr)
        return 2
    if not _apply_threads(args, sim.scenario, sim.state.n_agents, sim.backend):
        return 2
    # --steps (or run.steps) is the length of the whole run: a resumed run does what is left
    steps = args.steps if args.steps is not None else sim.scenario.run.steps
    steps = max(0, steps - sim.step_count)
    name = sim.scenario.name or (Path(args.scenario).stem if args.scenario else "resumed")
    out = _out_folder(args, name)
    if out is None:
        return 2
    check_run_out(out)
    if steps > 0:
        from .clumping import neighborhood_report

        _, crowded = neighborhood_report(sim.state, sim.params)
        if crowded:
            print(crowded, file=sys.stderr)
    if (args.record or args.checkpoint) and not args.headless:
        # the window runner steps the simulation itself and does not call these hooks (yet)
        print("--record/--checkpoint: running headless", file=sys.stderr)
        args.headless = True
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
    hooks, recorder, checkpoints = [], None, None
    if args.record:
        from .recording import H5Recorder

        # resuming into the same file continues it (its frames after the checkpoint are replaced)
        sc = sim.scenario
        names = [sc.agents.name or "flock"] + [s.name for s in (getattr(sc, "species", None) or [])]
        recorder = H5Recorder(args.record, every=args.record_every or 1, append=args.resume is not None,
                              group_names=names if len(names) > 1 else None)
        recorder.attach(sim)
        hooks.append(recorder)
    if args.checkpoint:
        every = args.checkpoint_every or max(1, (sim.step_count + steps) // 10)
        checkpoints = CheckpointEvery(every, args.checkpoint, keep=args.checkpoint_keep)
        hooks.append(checkpoints)
    frames, pass_bar = None, None
    written: list[str] = []
    interrupted, step_error = False, None
    first_step = sim.step_count
    start = time.perf_counter()
    try:
        frames = _frame_writer(sim, args)
        if frames is not None:
            frames.capture(sim)
        from tqdm import tqdm

        from .neighbors.progress import report_progress
        from .run_progress import StepProgressBar

        # a neighbor pass of a clumped flock goes in chunks: a bar within the step, and a
        # Ctrl-C between two chunks instead of after the whole step (flock.neighbors.progress)
        pass_bar = StepProgressBar(sim, disable=args.quiet)
        with tqdm(total=steps, unit="step", disable=args.quiet, file=sys.stderr, leave=False) as bar, \
                report_progress(pass_bar):
            done = 0
            # frames are drawn every --every steps, so the run goes in chunks of that size
            chunk = args.every if frames is not None else max(1, steps // 200)
            while done < steps and not sim.done:
                k = min(chunk, steps - done)
                moved = step_with_hooks(sim, k, hooks)  # stops at each hook's multiples
                done += moved
                bar.update(moved)
                if frames is not None and moved and (done % args.every == 0 or sim.done or done >= steps):
                    frames.capture(sim)
                if moved < k:
                    break
    except KeyboardInterrupt:
        interrupted = True
    except ScenarioError as exc:  # a problem found while stepping: keep what the run made so far
        step_error = exc
    finally:
        seconds = time.perf_counter() - start
        if pass_bar is not None:
            pass_bar.close()
        # every output is written as far as it can be, each failure reported on its own line;
        # finish_outputs never raises, so nothing is re-raised from this finally
        failed = finish_outputs([
            ("metrics.csv", writer.close),
            ("final_state.npz", lambda: save_final_state(sim, out / "final_state.npz")),
            ("--frames/--gif/--video", lambda: written.extend(frames.close() if frames is not None else [])),
            ("--record", lambda: recorder is not None and (recorder.record(sim, force=True), recorder.close())),
            # Ctrl-C may land inside a step: no checkpoint of a half-made state
            ("--checkpoint", lambda: checkpoints is not None and not interrupted and checkpoints(sim, force=True)),
        ])
    if step_error is not None:
        print(step_error, file=sys.stderr)
        return 2
    print(run_summary(sim, seconds, interrupted, steps_done=sim.step_count - first_step))
    print(f"wrote {out / 'metrics.csv'} and {out / 'final_state.npz'}")
    for line in written:
        print(line)
    if recorder is not None:
        print(f"recorded {recorder.n_frames} frames to {recorder.path}")
    if checkpoints is not None and checkpoints.last is not None:
        print(f"checkpoints in {checkpoints.directory} (last: {checkpoints.last.name})")
    return 130 if interrupted else (1 if failed else 0)


def cmd_run_ensemble(args) -> int:
    """``flocksim run SCENARIO --ensemble E``: E members stepped as one batch, headless; metrics
    per member in one CSV with a ``member`` column."""
    from .ensemble import EnsembleSimulation
    from .scenario import load_scenario

    if args.ensemble < 1:
        print(f"--ensemble: expected an integer >= 1, got {args.ensemble}", file=sys.stderr)
        return 2
    if args.resume or args.record or args.checkpoint or args.frames or args.gif or args.video:
        print("--ensemble: runs headless and writes metrics only; leave out --resume/--record/"
              "--checkpoint/--frames/--gif/--video", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario, overrides=args.set or None)
        check_run_memory(scenario, args.backend, args.device, origin=str(args.scenario), members=args.ensemble)
        seeds = None
        if args.seed is not None:
            seeds = list(range(args.seed, args.seed + args.ensemble))
        ens = EnsembleSimulation.from_scenario(scenario, ensemble=args.ensemble, seeds=seeds, device=args.device,
                                               dtype=args.dtype, backend=args.backend)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not _apply_threads(args, scenario, ens.pos.shape[0] * ens.pos.shape[1], ens.backend):
        return 2
    steps = args.steps if args.steps is not None else scenario.run.steps
    out = _out_folder(args, f"{scenario.name or Path(args.scenario).stem}_ensemble")
    if out is None:
        return 2
    check_run_out(out)
    out.mkdir(parents=True, exist_ok=True)
    interrupted = False
    start = time.perf_counter()
    try:
        ens.step(steps)
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.perf_counter() - start
    failed = finish_outputs([("metrics.csv", lambda: _write_ensemble_metrics(ens, out / "metrics.csv")),
                             ("final_state.npz", lambda: np.savez(out / "final_state.npz", pos=ens.pos.cpu().numpy(),
                                                                  vel=ens.vel.cpu().numpy(),
                                                                  seeds=np.asarray(ens.seeds)))])
    n = ens.pos.shape[1]
    rate = ens.n_members * n * ens.step_count / seconds if seconds > 0 else math.inf
    head = "interrupted" if interrupted else "done"
    print(f"{scenario.name or 'scenario'}: ensemble of {ens.n_members} x {n} agents {head} after {ens.step_count} "
          f"steps in {seconds:.2f} s ({rate:,.0f} agent-steps/s) on {ens.device}, backend {ens.backend}")
    print(f"wrote {out / 'metrics.csv'} and {out / 'final_state.npz'}")
    return 130 if interrupted else (1 if failed else 0)


def _write_ensemble_metrics(ens, path: Path) -> None:
    """Every member's metrics rows in one CSV with ``member`` and ``seed`` columns."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = None
        for e in range(ens.n_members):
            for row in ens.member_metrics(e).rows:
                row = {"member": e, "seed": ens.seeds[e], **row}
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)


def cmd_validate(args) -> int:
    from .scenario import load_scenario

    bad = 0
    for path in args.scenarios:
        try:
            # what run would refuse, validate refuses: the memory the run needs on its device
            sc = load_scenario(path, overrides=args.set or None)
            check_run_memory(sc, origin=str(path))
        except ScenarioError as exc:
            bad += 1
            print(exc, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return 1 if bad else 0


def cmd_replay(args) -> int:
    from .recording import read_recording

    try:
        rec = read_recording(args.recording)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    span = f"steps {rec.steps[0]}..{rec.steps[-1]}" if rec.n_frames else "no frames"
    columns = [c for c in rec.metrics if c not in ("step", "time")]
    print(f"{rec.path}: {rec.n_frames} frames ({span}), up to {int(rec.n_agents.max(initial=0))} agents in "
          f"{rec.dim}D, groups {', '.join(rec.group_names)}; metrics: {', '.join(columns) or 'none'}")
    if args.info:
        return 0
    check_replay_flags(args)
    try:
        from render.replay import run_replay  # noqa: PLC0415  (optional front end)
    except ImportError as exc:
        print(f"no replay window: {exc}", file=sys.stderr)
        return 1
    return run_replay(rec, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flocksim", description="GPU-first flocking and mean shift.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario (a window when a display is available)",
                         description="Run a scenario: in a pygame window when a display is available "
                                     "(until closed, or --steps N), else headless (--steps N, default "
                                     "the scenario's run.steps).")
    run.add_argument("scenario", nargs="?", default=None, help="a scenario YAML file (left out with --resume)")
    run.add_argument("--headless", action="store_true", help="no window: write metrics and the final state")
    run.add_argument("--steps", type=int, default=None,
                     help="steps to run (headless default: the scenario's run.steps; a window without "
                          "--steps runs until closed)")
    run.add_argument("--out", default=None,
                     help="output folder (default: a new runs/<scenario name>-<k>, k = 1, 2, ...; a folder "
                          "holding an earlier run needs --overwrite)")
    run.add_argument("--overwrite", action="store_true", help="let --out replace an earlier run's files")
    run.add_argument("--device", default=None,
                     help="auto | cpu | cuda | cuda:K (default: the scenario's run.device, auto: CUDA when present)")
    run.add_argument("--dtype", default=None, choices=["float32", "float64"],
                     help="floating-point type of positions and velocities (default: the scenario's run.dtype, "
                          "float32)")
    run.add_argument("--seed", type=int, default=None,
                     help="random seed of the initial state and the noise (default: the scenario's run.seed); "
                          "same seed, same device: same trajectory")
    run.add_argument("--backend", default=None, choices=BACKEND_NAMES,
                     help="neighbor backend (default: the scenario's run.backend, auto: picked by N and device)")
    run.add_argument("--paused", action="store_true", default=None,
                     help="window: start paused (Space runs); mean shift windows always start paused")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help="CPU threads for torch and numba (default: the scenario's run.threads, else "
                          "flock.threads chooses by N)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a scenario value (repeatable), validated like the file")
    run.add_argument("--ensemble", type=int, default=None, metavar="E",
                     help="step E copies with seeds seed..seed+E-1 together as one batch (headless)")
    keep = run.add_argument_group("recording and checkpoints (they make the run headless)")
    keep.add_argument("--record", default=None, metavar="FILE.h5",
                      help="record positions, velocities and metrics to an H5MD file, flushed every frame")
    keep.add_argument("--record-every", type=int, default=None, metavar="K",
                      help="steps between recorded frames (default 1)")
    keep.add_argument("--checkpoint", default=None, metavar="DIR", help="save DIR/ckpt_<step>/ as the run goes")
    keep.add_argument("--checkpoint-every", type=int, default=None, metavar="K",
                      help="steps between checkpoints (default: a tenth of the run)")
    keep.add_argument("--checkpoint-keep", type=int, default=None, metavar="N",
                      help="keep only the newest N checkpoints")
    keep.add_argument("--resume", default=None, metavar="DIR/ckpt_<step>",
                      help="continue a run from a checkpoint (or the newest in DIR); --steps is the whole run's length")
    pics = run.add_argument_group("pictures (drawn off-screen; they make the run headless)")
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
                      help="frames per second of the GIF / video (default 10); in a window, the frame-rate cap "
                           "(default: the scenario's render.fps, 60); the window's steps per second are "
                           "render.steps_per_second (its pace slider)")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check scenario files; print every problem",
                         description="Load and validate scenario files without running them: every problem is "
                                     "printed with its file, key path, value and the fix. Exit 0 when all are valid, "
                                     "1 when one is not.")
    val.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML files")
    val.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a scenario value (repeatable)")
    val.set_defaults(func=cmd_validate)

    rep = sub.add_parser("replay", help="play back a recording made with run --record",
                         description="Play back a recording (flocksim run --record F.h5) in a window with the "
                                     "live run's panel and plots: Space play/pause, Left/Right step, Home/End, "
                                     "drag the scrub bar, +/- speed, L loop, H help. Or to files with --gif / "
                                     "--frames; --info only describes the file.")
    rep.add_argument("recording", help="an .h5 file written by flocksim run --record")
    rep.add_argument("--info", action="store_true", help="print what the file holds and exit")
    rep.add_argument("--gif", default=None, help="write the replay as an animated GIF instead of a window")
    rep.add_argument("--frames", default=None, help="write the replay as PNG frames into this folder")
    rep.add_argument("--size", default=None, help="picture / window size WxH in pixels (default: the scenario's "
                                                  "render size, plus the panel in a window)")
    rep.add_argument("--fps", type=float, default=None,
                     help="recorded frames shown per second (default 10; the window's +/- change it)")
    rep.add_argument("--loop", action="store_true", help="window: start again at the end (L toggles)")
    rep.set_defaults(func=cmd_replay)

    from .bench import add_bench_parser
    from .cluster_cli import add_cluster_parser
    from .train import add_train_parser

    add_bench_parser(sub)
    add_cluster_parser(sub)
    add_train_parser(sub)
    from .sweep import add_sweep_parser

    add_sweep_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as exc:  # a flag, file or value found wrong on the way: one message, no traceback
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
