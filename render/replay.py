"""Replay a recording (``flocksim run --record``) in the window, or to a GIF / PNG frames.

The recording's own resolved scenario rebuilds a simulation shell (for the world box,
colours and render hints); each recorded frame is then put into its state and drawn
with the same ``Renderer`` as a live run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pygame
import torch
import yaml

from flock.errors import ScenarioError
from flock.scenario import validate_scenario
from flock.simulation import Simulation

from .export import FrameWriter, parse_size
from .window import _window_size, window_available


def simulation_for(rec) -> Simulation:
    """A CPU simulation shell for ``rec``'s scenario (initial-state files are not needed)."""
    if not rec.scenario_yaml:
        raise ScenarioError(f"{rec.path}: the recording holds no scenario (parameters/scenario_yaml)")
    data = yaml.safe_load(rec.scenario_yaml)
    agents = data.setdefault("agents", {})
    n = int(rec.n_agents.max(initial=0)) if rec.n_frames else 0
    if isinstance(agents.get("position"), dict) and agents["position"].get("kind") in ("file", "blobs"):
        agents["position"] = {"kind": "uniform"}
        agents["count"] = n
    if isinstance(agents.get("velocity"), dict) and agents["velocity"].get("kind") == "file":
        agents["velocity"] = {"kind": "zero"}
    data.setdefault("run", {})["device"] = "cpu"
    return Simulation(validate_scenario(data, label=f"{rec.path} (scenario)"), device="cpu", record_metrics=False)


def show_frame(sim: Simulation, rec, i: int) -> None:
    """Put frame ``i`` of ``rec`` into ``sim``'s state and step counter."""
    pos, vel = rec.frame(i)
    pos_t = torch.as_tensor(pos, dtype=sim.dtype)
    vel_t = torch.as_tensor(vel, dtype=sim.dtype) if vel is not None else torch.zeros_like(pos_t)
    keep = ~torch.isnan(torch.as_tensor(rec.positions[i])).any(dim=1)
    group = torch.as_tensor(rec.group)[keep]
    sim.load_state_dict({"pos": pos_t, "vel": vel_t, "group": group, "step_count": int(rec.steps[i])})


def replay_to_files(rec, *, gif=None, frames_dir=None, size=None, fps: float = 10.0) -> list[str]:
    sim = simulation_for(rec)
    writer = FrameWriter(sim, gif=gif, frames_dir=frames_dir, size=size, fps=fps)
    try:
        for i in range(rec.n_frames):
            show_frame(sim, rec, i)
            writer.capture(sim)
    finally:
        done = writer.close()
    return done


def run_replay(rec, args) -> int:
    """``flocksim replay``: to files with --gif/--frames, else in a window (Space pauses, Esc quits)."""
    size = parse_size(args.size) if getattr(args, "size", None) else None
    fps = float(getattr(args, "fps", None) or 10)
    if getattr(args, "gif", None) or getattr(args, "frames", None):
        for line in replay_to_files(rec, gif=args.gif, frames_dir=args.frames, size=size, fps=fps):
            print(line)
        return 0
    ok, why = window_available()
    if not ok:
        print(f"no window: {why}; use --gif FILE or --frames DIR to replay to files", file=sys.stderr)
        return 1
    sim = simulation_for(rec)
    writer = FrameWriter(sim, size=size or _window_size(sim))
    screen = pygame.display.set_mode(writer.size)
    pygame.display.set_caption(f"flocksim replay {Path(str(rec.path)).name}")
    clock = pygame.time.Clock()
    i, paused = 0, False
    try:
        while True:
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)):
                    return 0
                if event.type == pygame.KEYDOWN and event.key == pygame.K_SPACE:
                    paused = not paused
            show_frame(sim, rec, i)
            writer.renderer.draw(screen, sim)
            writer.renderer.draw_text(screen, [f"replay step {sim.step_count}  frame {i + 1}/{rec.n_frames}"], (8, 6))
            pygame.display.flip()
            if not paused:
                i = (i + 1) % max(rec.n_frames, 1)
            clock.tick(fps)
    except KeyboardInterrupt:
        return 130
    finally:
        pygame.display.quit()
