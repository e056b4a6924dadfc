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
from flock.state import FlockState

from .export import FrameWriter, parse_size
from .window import _window_size, window_available


def simulation_for(rec) -> Simulation:
    """A CPU simulation of ``rec``'s scenario, holding the recording's first frame (its
    initial-state files are not read: the frames are the state)."""
    if not rec.scenario_yaml:
        raise ScenarioError(f"{rec.path}: the recording holds no scenario (parameters/scenario_yaml)")
    data = yaml.safe_load(rec.scenario_yaml)
    if isinstance(data, dict):
        data.setdefault("run", {})["device"] = "cpu"
    scenario = validate_scenario(data, label=f"{rec.path} (scenario)", read_files=False)
    return Simulation(scenario, device="cpu", state=frame_state(rec, 0, scenario), record_metrics=False)


def frame_state(rec, i: int, scenario) -> FlockState:
    """Frame ``i`` of ``rec`` as a ``FlockState`` (an empty one for a recording with no frames)."""
    dtype = torch.float64 if scenario.run.dtype == "float64" else torch.float32
    if not rec.n_frames:
        return FlockState(pos=torch.zeros(0, scenario.world.dims, dtype=dtype))
    pos, vel = rec.frame(i)
    pos_t = torch.as_tensor(pos, dtype=dtype)
    vel_t = torch.as_tensor(vel, dtype=dtype) if vel is not None else torch.zeros_like(pos_t)
    keep = ~torch.isnan(torch.as_tensor(rec.positions[i])).any(dim=1)
    return FlockState(pos=pos_t, vel=vel_t, group=torch.as_tensor(rec.group)[keep])


def show_frame(sim: Simulation, rec, i: int) -> None:
    """Put frame ``i`` of ``rec`` into ``sim``'s state and step counter."""
    st = frame_state(rec, i, sim.scenario)
    sim.load_state_dict({"pos": st.pos, "vel": st.vel, "group": st.group, "step_count": int(rec.steps[i])})


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
