"""Replay a recording (``flocksim run --record``) in the window, or to a GIF / PNG frames.

The recording's own resolved scenario rebuilds a simulation shell (for the world box,
colours and render hints); each recorded frame is then put into its state and drawn
with the same ``Renderer`` as a live run. The replay window has the live window's layout
(field, side panel with the legend and the recorded metrics' plots, a cursor at the
frame shown) and a scrub bar below the field:

    Space play / pause     Left / Right one frame back / on     Home / End first / last
    scrub bar: click or drag to a frame     + / - frames per second x2 / /2 (panel slider)
    L loop at the end      C colours   Tab panel   G plots   H help   Esc / Q quit
    mouse: left drag pans, the wheel zooms about the pointer (3D: right drag rotates)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pygame
import torch
import yaml

from flock.errors import ScenarioError
from flock.scenario import validate_scenario
from flock.simulation import Simulation
from flock.state import FlockState

from .draw import Renderer, group_names, palette_colors
from .export import FrameWriter, make_view, parse_size
from .layout import Layout, draw_panel_frame, layout_key, panel_sections
from .panel import RateSlider, format_rate
from .plots import PLOT_MAX_HEIGHT, Plots
from .window import MAX_FRAME_GAP, ROTATE_PER_PX, ZOOM_STEP, _window_size, window_available

REPLAY_HELP = [
    ("Space", "play / pause"),
    ("Left  /  Right", "one frame back / on (pauses)"),
    ("Home  /  End", "first / last frame"),
    ("scrub bar", "click or drag to a frame"),
    ("+  /  -", "frames per second x2  /  /2 (or the panel's slider)"),
    ("L", "loop at the end on / off"),
    ("C", "colour by group, speed, heading"),
    ("left drag  /  wheel", "pan  /  zoom (3D: right drag rotates)"),
    ("Tab  /  G", "side panel  /  plots"),
    ("H", "this help"),
    ("Esc  /  Q", "quit"),
]
FPS_RANGE = (0.25, 240.0)


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


class ReplayWindow:
    """The replay's loop body, for ``run_replay`` and tests: post pygame events, call ``frame()``.

    Args:
        rec: a ``Recording`` (``flock.recording.read_recording``).
        size: window size px (None: the scenario's render size plus the panel).
        fps: recorded frames shown per second (None: every display frame, "max").
        loop: start again at the end (else stop on the last frame).
        surface: draw here instead of opening a display surface.
        clock: seconds now (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, rec, *, size=None, fps: float | None = 10.0, loop: bool = False,
                 surface: pygame.Surface | None = None, clock=time.perf_counter):
        self.rec = rec
        self.sim = simulation_for(rec)
        if surface is None:
            surface = pygame.display.set_mode(_window_size(self.sim, size), pygame.RESIZABLE)
            pygame.display.set_caption(f"flocksim replay {Path(str(rec.path)).name}")
            pygame.key.set_repeat(300, 40)
        self.surface = surface
        self.panel_wanted = True
        self.layout = Layout(surface.get_size(), panel=True, bar=True)
        rs = self.sim.scenario.render
        self.view = make_view(self.sim, self.layout.field.width, self.layout.field.height)
        self.renderer = Renderer(self.view, color_by=rs.color_by if rs.color_by != "mode" else "group",
                                 agent_size=rs.agent_size)
        names = group_names(self.sim.scenario)
        colors = [tuple(c) for c in palette_colors(torch.arange(len(names))).tolist()] if len(names) > 1 else None
        self.plots = Plots(self.sim.scenario, colors)
        self.plots.set_columns(rec.metrics)
        if colors:
            for i in range(rec.n_frames):
                alive = ~torch.isnan(torch.as_tensor(rec.positions[i])).any(dim=1)
                counts = torch.bincount(torch.as_tensor(rec.group)[alive].long(), minlength=len(names))
                self.plots.add_counts(int(rec.steps[i]), counts.tolist())
        self.fps = fps
        self.loop = loop
        self.playing = rec.n_frames > 1
        self.show_help = False
        self.running = True
        self.index = -1
        self._clock = clock
        self._last = clock()
        self._budget = 0.0
        self._drag: dict | None = None
        self.pointer = (0, 0)
        self.relayout()
        self.seek(0)

    # ------------------------------------------------------------ frames

    @property
    def n_frames(self) -> int:
        return self.rec.n_frames

    def seek(self, i: int) -> None:
        """Show frame ``i`` (clamped to the recording)."""
        i = min(max(int(i), 0), max(self.n_frames - 1, 0))
        if self.n_frames and i != self.index:
            show_frame(self.sim, self.rec, i)
            self.renderer.clear_trails()
        self.index = i

    def step(self, k: int) -> None:
        self.playing = False
        self.seek(self.index + k)

    def advance(self) -> None:
        """Move on as many frames as the frame rate allows since the last call (while playing)."""
        now = self._clock()
        dt = min(max(now - self._last, 0.0), MAX_FRAME_GAP)
        self._last = now
        if not self.playing:
            self._budget = 0.0
            return
        if self.fps is None:
            k = 1
        else:
            self._budget += self.fps * dt
            k = int(self._budget)
            self._budget -= k
        if k <= 0:
            return
        last = self.n_frames - 1
        target = self.index + k
        if target > last:
            if self.loop:
                target %= max(self.n_frames, 1)
            else:
                target, self.playing = last, False
        self.seek(target)

    def frame_at(self, x: float) -> int:
        """The frame under window x on the scrub bar."""
        track = self.track
        t = min(1.0, max(0.0, (x - track.x) / max(1, track.width - 1)))
        return round(t * max(self.n_frames - 1, 0))

    def x_of(self, i: int) -> int:
        track = self.track
        return track.x + round(i / max(self.n_frames - 1, 1) * (track.width - 1))

    # ------------------------------------------------------------ layout and drawing

    def relayout(self, size=None) -> None:
        old = self.layout.field.size
        self.layout = Layout(size or self.surface.get_size(), panel=self.panel_wanted, bar=True)
        field = self.layout.field
        if field.size != old:
            self.view.resize(field.width, field.height, keep_zoom=True)
        step = self.renderer.font().get_linesize() + 4
        legend_h = step * len(self.renderer.legend_rows(self.sim)) + step + 4
        self.sections = panel_sections(self.layout.panel_rect, legend_height=legend_h, slider_height=0,
                                       charts=(self.plots.height_for(), self.plots.height_for(PLOT_MAX_HEIGHT)))
        self.rate_slider = RateSlider(self.sections["rate"], FPS_RANGE)
        bar = self.layout.bar_rect
        self.track = pygame.Rect(bar.x + 12, bar.y + bar.height - 12, max(1, bar.width - 24), 6)

    def time_of(self, i: int) -> float:
        return float(self.rec.times[i]) if self.n_frames else 0.0

    def draw(self) -> None:
        rec, sim, font = self.rec, self.sim, self.renderer.font()
        field = self.surface.subsurface(self.layout.field)
        state = "playing" if self.playing else "paused"
        hud = [f"replay {Path(str(rec.path)).name}   frame {self.index + 1}/{self.n_frames}   step {sim.step_count}"
               f"   t = {self.time_of(self.index):.4g}",
               f"{state} | {self._fps_text()} | loop {'on' if self.loop else 'off'} | colour {self.renderer.color_by}",
               "H: help   Space: play/pause   Left/Right: step   drag the bar: scrub"]
        self.renderer.draw(field, sim, hud=hud)
        self.draw_bar()
        if self.layout.panel_shown:
            box, sec = self.layout.panel_rect, self.sections
            draw_panel_frame(self.surface, box, font, "replay   (Tab hides)", "L: loop   G: plots   H: help")
            self.rate_slider.draw(self.surface, font, self.fps, f"speed: {self._fps_text()}",
                                  self._drag is not None and self._drag["kind"] == "rate")
            self.renderer.draw_legend(self.surface, sec["legend"], sim)
            self.plots.draw(self.surface, sec["plots"], font, cursor=float(sim.step_count))
        if self.show_help:
            w, h = field.get_size()
            self.renderer.draw_table(field, REPLAY_HELP, (max(10, w // 2 - 200), max(70, h // 2 - 140)))

    def _fps_text(self) -> str:
        return "max" if self.fps is None else format_rate(self.fps).replace("steps", "frames")

    def draw_bar(self) -> None:
        bar, track, font = self.layout.bar_rect, self.track, self.renderer.font()
        self.surface.fill((20, 23, 33), bar)
        text = f"frame {self.index + 1}/{self.n_frames}   step {self.sim.step_count}   t = {self.time_of(self.index):.4g}"
        self.surface.blit(font.render(text, True, (225, 228, 235)), (bar.x + 12, bar.y + 3))
        pygame.draw.rect(self.surface, (80, 86, 104), track, border_radius=3)
        x = self.x_of(self.index)
        done = track.copy()
        done.width = max(1, x - track.x)
        pygame.draw.rect(self.surface, (79, 195, 247), done, border_radius=3)
        pygame.draw.circle(self.surface, (235, 238, 245), (x, track.centery), 7)

    # ------------------------------------------------------------ events

    def frame(self) -> bool:
        """Handle events, move on, draw, flip. Returns False when the window should close."""
        for event in pygame.event.get():
            self.handle(event)
        if self.running:
            self.advance()
            self.draw()
            if self.surface is pygame.display.get_surface():
                pygame.display.flip()
        return self.running

    def handle(self, event) -> None:
        kind = event.type
        if kind == pygame.QUIT:
            self.running = False
        elif kind == pygame.KEYDOWN:
            self.key(event.key)
        elif kind == pygame.MOUSEBUTTONDOWN:
            self.mouse_down(event.pos, event.button)
        elif kind == pygame.MOUSEMOTION:
            self.mouse_move(event.pos)
        elif kind == pygame.MOUSEBUTTONUP:
            self._drag = None
        elif kind == pygame.MOUSEWHEEL and self.layout.field.collidepoint(self.pointer):
            self.view.zoom_at(ZOOM_STEP ** event.y, self.pointer)
        elif kind == pygame.VIDEORESIZE:
            size = (max(1, event.w), max(1, event.h))
            if self.surface is pygame.display.get_surface():
                self.surface = pygame.display.set_mode(size, pygame.RESIZABLE)
            self.relayout(size)

    def key(self, key: int) -> None:
        if key in (pygame.K_ESCAPE, pygame.K_q):
            self.running = False
        elif key == pygame.K_SPACE:
            if not self.playing and self.index >= self.n_frames - 1 and not self.loop:
                self.seek(0)   # at the end, Space plays again from the start
            self.playing = not self.playing
            self._last = self._clock()
        elif key == pygame.K_RIGHT:
            self.step(1)
        elif key == pygame.K_LEFT:
            self.step(-1)
        elif key == pygame.K_HOME:
            self.step(-self.n_frames)
        elif key == pygame.K_END:
            self.step(self.n_frames)
        elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS, pygame.K_MINUS, pygame.K_KP_MINUS):
            faster = key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS)
            fps = self.fps if self.fps is not None else 60.0
            self.fps = min(FPS_RANGE[1], max(FPS_RANGE[0], fps * 2 if faster else fps / 2))
        elif key == pygame.K_l:
            self.loop = not self.loop
        elif key == pygame.K_c:
            self.renderer.cycle_color(self.sim)
            self.relayout()
        else:
            layout_key(self, key)

    def mouse_down(self, pos, button: int) -> None:
        self.pointer = tuple(pos)
        if button == 1 and self.layout.bar_rect.collidepoint(pos):
            self._drag = {"kind": "scrub"}
            self.playing = False
            self.seek(self.frame_at(pos[0]))
        elif button == 1 and self.layout.panel_shown and self.rate_slider.hit(pos):
            self._drag = {"kind": "rate"}
            self.fps = self.rate_slider.value_at(pos[0])
        elif self.layout.field.collidepoint(pos):
            rotate = button == 3 and self.view.dims == 3
            self._drag = {"kind": "rotate" if rotate else "pan", "last": tuple(pos)}

    def mouse_move(self, pos) -> None:
        self.pointer = tuple(pos)
        drag = self._drag
        if drag is None:
            return
        if drag["kind"] == "scrub":
            self.seek(self.frame_at(pos[0]))
        elif drag["kind"] == "rate":
            self.fps = self.rate_slider.value_at(pos[0])
        else:
            lx, ly = drag["last"]
            if drag["kind"] == "pan":
                self.view.pan(pos[0] - lx, pos[1] - ly)
            else:
                self.view.rotate((pos[0] - lx) * ROTATE_PER_PX, (pos[1] - ly) * ROTATE_PER_PX)
            drag["last"] = tuple(pos)
            self.renderer.clear_trails()


def run_replay(rec, args) -> int:
    """``flocksim replay``: to files with --gif/--frames, else in a ``ReplayWindow`` until closed."""
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
    clock = pygame.time.Clock()
    try:
        window = ReplayWindow(rec, size=size, fps=fps, loop=bool(getattr(args, "loop", False)))
        while window.frame():
            clock.tick(60)
    except KeyboardInterrupt:
        return 130
    finally:
        pygame.display.quit()
    return 0
