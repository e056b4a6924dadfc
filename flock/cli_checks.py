"""Checks of ``flocksim`` flags made before any work starts: ranges of numeric flags,
devices, seeds, picture sizes and every output location (``flock.output_paths``). Each
problem is a ``ScenarioError`` naming the flag and the value, which the CLI prints.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ScenarioError
from .names import MAX_COUNT, MAX_FPS, MAX_SEED, MAX_TRAIL
from .output_paths import (GIF_SUFFIXES, RECORD_SUFFIXES, VIDEO_SUFFIXES, check_output_dir, check_output_file,
                           check_size)
from .resources import check_device


def check_int(args, name: str, low: int, high: int, *, flag: str | None = None) -> None:
    """``args.<name>`` is None or an integer in [low, high]."""
    value = getattr(args, name, None)
    if value is None:
        return
    if not low <= value <= high:
        flag = flag or "--" + name.replace("_", "-")
        raise ScenarioError(f"{flag}: expected an integer from {low} to {high:,}, got {value}")


def check_run_flags(args) -> None:
    """Flags of ``flocksim run`` that can be checked before the scenario is read."""
    check_int(args, "steps", 0, MAX_COUNT)
    check_int(args, "seed", 0, MAX_SEED)
    check_int(args, "fps", 1, MAX_FPS)
    check_int(args, "trail", 0, MAX_TRAIL)
    check_int(args, "every", 1, MAX_COUNT)
    check_int(args, "ensemble", 1, 1_000_000)
    for name in ("record_every", "checkpoint_every", "checkpoint_keep"):
        check_int(args, name, 1, MAX_COUNT)
    if args.ensemble is not None and args.seed is not None and args.seed + args.ensemble - 1 > MAX_SEED:
        raise ScenarioError(f"--seed: seeds {args.seed}..{args.seed + args.ensemble - 1} of the ensemble go past "
                            f"{MAX_SEED}; give a smaller --seed")
    if args.device is not None:
        args.device = check_device(args.device)
    args.size = check_size(args.size)
    if args.record:
        check_output_file(args.record, "--record", RECORD_SUFFIXES)
    if args.gif:
        check_output_file(args.gif, "--gif", GIF_SUFFIXES)
    if args.video:
        check_output_file(args.video, "--video", VIDEO_SUFFIXES)
    for name in ("checkpoint", "frames"):
        if getattr(args, name):
            check_output_dir(getattr(args, name), f"--{name}")


def check_run_out(out: Path, flag: str = "--out") -> None:
    """The run folder and the files a run writes into it (metrics.csv, final_state.npz)."""
    check_output_dir(out, flag)
    for name in ("metrics.csv", "final_state.npz"):
        check_output_file(out / name, flag)


def check_resume_steps(args, step_count: int) -> None:
    """With --resume, --steps is the whole run's length: not below the checkpoint's step."""
    if args.resume is not None and args.steps is not None and args.steps < step_count:
        raise ScenarioError(f"--steps: the checkpoint is at step {step_count} and --steps is the whole run's "
                            f"length; expected at least {step_count}, got {args.steps}")


def check_replay_flags(args) -> None:
    """Flags of ``flocksim replay``."""
    if args.fps is not None and not 0 < args.fps <= MAX_FPS:
        raise ScenarioError(f"--fps: expected a number above 0 and at most {MAX_FPS}, got {args.fps}")
    check_size(args.size)
    if args.gif:
        check_output_file(args.gif, "--gif", GIF_SUFFIXES)
    if args.frames:
        check_output_dir(args.frames, "--frames")


__all__ = ["check_int", "check_replay_flags", "check_resume_steps", "check_run_flags", "check_run_out"]
