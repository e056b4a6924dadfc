"""The live window: watch a flock and play with it.

The loop is the one DESIGN.md names: events, ``sim.step(k)``, one draw, flip, tick. The
window is the field (the world and its HUD) with the side panel beside it (``Layout``):
the pace slider, the legend, the parameter sliders (named with their species) and live
plots of the metrics. Tab collapses the panel and the field grows; the window can be
resized and everything is laid out again.

    mouse    left click          add 5 agents at the pointer (the seed's addFish)
             left drag / middle  pan                      wheel    zoom about the pointer
             right drag          a predator (or attractor, key A) follows the pointer while the
                                 button is held; it is removed on release (boids only)
             3D: right drag (or Shift + left drag) rotates; Shift + right drag places the force
             panel: drag a slider; the wheel scrolls the sliders
    keys     Space pause   Right step once   + / - pace (x2, /2)   C colours   G plots
             T trails   A attract/flee   R reset   S screenshot   P save scenario YAML
             F fit view   Tab panel   H help   Esc / Q quit

The pace: ``render.steps_per_second`` steps a second (the pace slider, + and -), or,
without it, ``render.steps_per_frame`` steps every frame ("max"). A mean shift run
starts paused ("Space to start") at 2 steps a second, so the collapse onto the modes
can be followed; ``paused`` (``flocksim run --paused``) starts any run paused.

``run_window`` opens the window and runs the loop until it is closed (or, with ``steps``,
until that many steps were taken or a mean shift run converged); on close it writes
``metrics.csv`` and ``final_state.npz`` to the run's folder as a headless run does.
``Window`` is the loop's body, for tests and scripts: post pygame events, call ``frame()``.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

import pygame
import torch

from flock.errors import ScenarioError
from flock.forces import PointForce
from flock.run_output import new_run_folder, run_summary, save_final_state

from .draw import PREDATOR_COLOR, ATTRACTOR_COLOR, Renderer, group_names, palette_colors
from .export import make_view
from .layout import Layout, draw_panel_frame, layout_key, panel_sections, window_size_for
from .panel import ROW_HEIGHT, Panel, RateSlider, format_rate
from .plots import PLOT_MAX_HEIGHT, Plots
from flock.formulations import converges, moves_boids

ADD_PER_CLICK = 5
CLICK_SLOP = 4          # px a press may move and still be a click
ZOOM_STEP = 1.15
ROTATE_PER_PX = 0.01    # radians
MAX_STEPS_PER_FRAME = 1024
DUMMY_DRIVERS = ("dummy", "offscreen")
MEANSHIFT_STEPS_PER_SECOND = 2.0   # a pace a person can follow (render.steps_per_second overrides it)
MAX_FRAME_GAP = 0.25    # s: a longer pause between frames (a drag, a slow step) does not pile up steps

HELP = [
    ("mouse", ""),
    ("left click", "add 5 agents at the pointer (addFish)"),
    ("left / middle drag", "pan"),
    ("wheel", "zoom about the pointer (over the panel: scroll)"),
    ("right drag", "a predator (A: an attractor) follows the pointer;"),
    ("", "it is removed when the button is released (boids)"),
    ("3D", "right drag or Shift + left drag rotates;"),
    ("", "Shift + right drag places the predator / attractor"),
    ("keys", ""),
    ("Space", "pause / run"),
    ("Right", "one step"),
    ("+  /  -", "pace x2  /  /2 (steps per second, or per frame at max)"),
    ("C", "colour by group, speed, heading (mean shift: mode)"),
    ("G", "show / hide the plots"),
    ("T", "trails"),
    ("A", "right drag: attractor / predator"),
    ("R", "reset the scenario"),
    ("S", "screenshot PNG into the run's folder"),
    ("P", "save the parameters as a scenario YAML"),
    ("F", "fit the view to the world"),
    ("Tab", "the side panel (sliders take effect on the next step)"),
    ("H", "this help"),
    ("Esc  /  Q", "quit"),
]


class WindowUnavailable(RuntimeError):
    """No window could be opened (the caller runs headless instead)."""


def window_available(allow_dummy: bool = False) -> tuple[bool, str | None]:
    """Whether a pygame window can be opened here, and if not why.

    SDL falls back to its offscreen driver when ``DISPLAY`` names no running X server; a
    window there is invisible and never ends, so after ``pygame.display.init()`` a dummy or
    offscreen driver counts as no display.

    Args:
        allow_dummy: count SDL's dummy/offscreen video drivers as a display (tests drive the
            window under ``SDL_VIDEODRIVER=dummy``).
    """
    driver = os.environ.get("SDL_VIDEODRIVER", "").lower()
    if driver in DUMMY_DRIVERS:
        if not allow_dummy:
            return False, f"SDL_VIDEODRIVER={driver} gives no visible window"
    elif sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    try:
        pygame.display.init()
    except pygame.error as exc:
        return False, f"pygame could not open a display ({exc})"
    opened = (pygame.display.get_driver() or "").lower()
    if opened in DUMMY_DRIVERS and not allow_dummy:
        pygame.display.quit()
        where = ", ".join(f"{k}={os.environ[k]}" for k in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(k))
        return False, (f"SDL fell back to its {opened} video driver: no display server answers at {where or 'the display'}"
                       " (a stale DISPLAY?)")
    return True, None


def _window_size(sim, size=None, panel: bool = True) -> tuple[int, int]:
    """``size``, or the scenario's render size with the panel beside it, shrunk to fit the desktop
    keeping the field's aspect."""
    rs = sim.scenario.render
    if size is not None:
        return tuple(size)
    width, height = rs.width, rs.height
    try:
        desktops = pygame.display.get_desktop_sizes()
    except pygame.error:
        desktops = []
    extra = window_size_for((0, 0), panel)[0]
    if desktops and desktops[0][0] > 0 and desktops[0][1] > 0:
        dw, dh = desktops[0][0] - 40 - extra, desktops[0][1] - 100
        shrink = min(1.0, dw / width, dh / height)
        if shrink > 0.2:
            width, height = int(width * shrink), int(height * shrink)
    return window_size_for((width, height), panel)


def default_pace(scenario) -> float | None:
    """Steps per second of a window on ``scenario`` (None: steps_per_frame every frame)."""
    rate = scenario.render.steps_per_second
    if rate is None and converges(scenario):
        rate = MEANSHIFT_STEPS_PER_SECOND
    return rate


def pace_text(rate: float | None, steps_per_frame: int) -> str:
    return format_rate(rate) if rate is not None else f"max, {steps_per_frame} step{'s' * (steps_per_frame > 1)}/frame"


class Window:
    """One window on one simulation: events in, steps, a frame out.

    Args:
        sim: the ``Simulation`` to show and play with.
        out: folder for screenshots, saved scenarios, metrics.csv and final_state.npz (None:
            a new ``runs/<name>-<k>`` made at the first write).
        steps: close after this many steps (None: when the user closes the window).
        size: window size px (None: the scenario's render hints plus the panel, fitted to the desktop).
        panel: show the side panel at the start.
        surface: draw here instead of opening a display surface.
        quiet: do not print what keys did (it still shows in the HUD).
        trail: trail length (None: ``scenario.render.trail``; T toggles trails either way).
        paused: start paused (None: mean shift runs start paused, others run).
        steps_per_second: the pace ("default": ``default_pace``; None: steps_per_frame every frame).
        clock: seconds now (``time.perf_counter``; tests pass a fake clock to check the pace).
    """

    def __init__(self, sim, *, out=None, steps: int | None = None, size=None, panel: bool = True,
                 surface: pygame.Surface | None = None, quiet: bool = False, trail: int | None = None,
                 paused: bool | None = None, steps_per_second="default", clock=time.perf_counter):
        self.sim = sim
        self.name = sim.scenario.name or (sim.scenario.source.stem if sim.scenario.source else "scenario")
        self._out = Path(out) if out is not None else None
        self.max_steps = steps
        self.quiet = quiet
        if surface is None:
            if not pygame.display.get_init():
                pygame.display.init()
            surface = pygame.display.set_mode(_window_size(sim, size, panel), pygame.RESIZABLE)
            pygame.display.set_caption(f"flocksim - {self.name}")
            pygame.key.set_repeat(300, 40)
        self.surface = surface
        self.panel_wanted = panel
        self.layout = Layout(surface.get_size(), panel=panel)
        rs = sim.scenario.render
        self.view = make_view(sim, self.layout.field.width, self.layout.field.height)
        self.renderer = Renderer(self.view, color_by=rs.color_by, agent_size=rs.agent_size,
                                 trail=rs.trail if trail is None else trail)
        n_groups = len(group_names(sim.scenario))
        colors = [tuple(c) for c in palette_colors(torch.arange(n_groups)).tolist()] if n_groups > 1 else None
        self.plots = Plots(sim.scenario, colors)
        self.panel = Panel(sim.scenario, visible=self.layout.panel_shown)
        self.rate_slider = RateSlider(pygame.Rect(0, 0, 1, 1))
        self.rate = default_pace(sim.scenario) if steps_per_second == "default" else steps_per_second
        self.paused = converges(sim.scenario) if paused is None else bool(paused)
        self.started = not self.paused   # "Space to start" shows until the first step
        self.steps_per_frame = rs.steps_per_frame
        self.steps_done = 0
        self.pending_steps = 0
        self.attract = False            # right drag places a predator until A is pressed
        self.show_help = False
        self.running = True
        self.pointer = (self.layout.field.width // 2, self.layout.field.height // 2)
        self._drag: dict | None = None
        self._force: PointForce | None = None
        self._rng = torch.Generator().manual_seed(sim.seed + 1)
        self._messages: deque[tuple[str, float]] = deque(maxlen=4)
        self._clock = clock
        self._last_update = clock()
        self._budget = 0.0
        self._last_time = time.perf_counter()
        self.fps = 0.0
        self.steps_per_second = 0.0
        self.relayout()

    @property
    def out(self) -> Path:
        """The run's folder (made on first use)."""
        if self._out is None:
            self._out = new_run_folder(self.name)
        return self._out

    # ------------------------------------------------------------ layout

    def relayout(self, size=None) -> None:
        """Lay the field, the panel and its sections out for ``size`` (None: the surface's)."""
        old = self.layout.field.size
        self.layout = Layout(size or self.surface.get_size(), panel=self.panel_wanted)
        field = self.layout.field
        if field.size != old:
            self.view.resize(field.width, field.height, keep_zoom=True)
            self.renderer.clear_trails()
        self.panel.visible = self.layout.panel_shown
        self.sections = self._sections()
        self.rate_slider = RateSlider(self.sections["rate"])
        self.panel.layout(self.sections["sliders"])

    def _sections(self) -> dict[str, pygame.Rect]:
        font_step = self.renderer.font().get_linesize() + 4
        rows = self.renderer.legend_rows(self.sim) + self.legend_extra()
        legend_h = font_step * (len(rows) + sum(kind == "bar" for kind, _, _ in rows)) + 4
        return panel_sections(self.layout.panel_rect, legend_height=legend_h, slider_height=self.panel.content_height,
                              charts=(self.plots.height_for(), self.plots.height_for(PLOT_MAX_HEIGHT)))

    # ------------------------------------------------------------ the loop body

    def frame(self) -> bool:
        """Handle pending events, step, draw and flip once. Returns False when the window should close."""
        for event in pygame.event.get():
            self.handle(event)
        if self.running:
            moved = self.update()
            self._measure(moved)
            self.draw()
            if self.surface is pygame.display.get_surface():
                pygame.display.flip()
        return self.running

    def steps_due(self) -> int:
        """How many steps the pace allows now (0 while paused)."""
        now = self._clock()
        dt = min(max(now - self._last_update, 0.0), MAX_FRAME_GAP)
        self._last_update = now
        if self.paused:
            self._budget = 0.0
            return 0
        if self.rate is None:
            return self.steps_per_frame
        self._budget += self.rate * dt
        n = min(int(self._budget), MAX_STEPS_PER_FRAME)
        self._budget -= n
        return n

    def update(self) -> int:
        """Take this frame's steps; returns how many were taken."""
        sim = self.sim
        n = self.steps_due() + self.pending_steps
        self.pending_steps = 0
        if self.max_steps is not None:
            n = min(n, self.max_steps - self.steps_done)
        moved = 0
        if n > 0 and not sim.done:
            before = sim.step_count
            sim.step(n)
            moved = sim.step_count - before
            self.steps_done += moved
            self.started = True
        if self.max_steps is not None and (self.steps_done >= self.max_steps or sim.done):
            self.running = False
        return moved

    def _measure(self, moved: int) -> None:
        now = time.perf_counter()
        dt = max(now - self._last_time, 1e-6)
        self._last_time = now
        a = 0.1 if self.fps else 1.0
        self.fps = (1 - a) * self.fps + a / dt
        self.steps_per_second = (1 - a) * self.steps_per_second + a * moved / dt

    def set_pace(self, rate: float | None) -> None:
        self.rate = rate
        self._budget = 0.0

    # ------------------------------------------------------------ drawing

    def force_hint(self) -> str:
        what = "attractor" if self.attract else "predator"
        return f"Shift+right drag: {what}, right drag: rotate" if self.view.dims == 3 else f"right drag: {what}"

    def legend_extra(self) -> list[tuple]:
        """The legend's row for the force the right button places (boids)."""
        if not moves_boids(self.sim.scenario):
            return []
        return [("ring", ATTRACTOR_COLOR if self.attract else PREDATOR_COLOR, self.force_hint())]

    def hud_lines(self) -> list[str]:
        sim = self.sim
        first = (f"{self.name}   step {sim.step_count}   {sim.state.n_agents:,} agents   "
                 f"{self.fps:.0f} fps   {self.steps_per_second:.0f} steps/s")
        second = (f"{sim.device.type} | {sim.backend} | pace {pace_text(self.rate, self.steps_per_frame)} | "
                  f"colour {self.renderer.color_by}")
        if converges(sim.scenario):
            modes = self.renderer.modes.centers
            second += f" | {'?' if modes is None else modes.shape[0]} modes, shift {sim.last_shift:.1e}"
            second += " | converged" if sim.done else ""
        else:
            second += f" | {self.force_hint()}"
        if self.paused:
            second += " | PAUSED (Space runs)"
        lines = [first, second, "H: help   Tab: panel   G: plots"]
        now = time.perf_counter()
        lines += [text for text, until in self._messages if until > now]
        return lines

    def draw(self) -> None:
        field = self.surface.subsurface(self.layout.field)
        self.renderer.draw(field, self.sim, hud=self.hud_lines(), allow_mode_predict=self.panel.active is None)
        if not self.started:
            self._banner(field, "Space to start   (Right: one step, H: help)")
        if self.layout.panel_shown:
            self.draw_panel()
        if self.show_help:
            w, h = field.get_size()
            self.renderer.draw_table(field, HELP, (max(10, w // 2 - 230), max(70, h // 2 - 210)))

    def _banner(self, surface: pygame.Surface, text: str) -> None:
        font = self.renderer.font()
        w, h = surface.get_size()
        self.renderer.draw_text(surface, [text], (max(8, w // 2 - font.size(text)[0] // 2), h // 2 + 40))

    def draw_panel(self) -> None:
        """The side panel: title, pace slider, legend, sliders, plots, footer."""
        box, sec, font = self.layout.panel_rect, self.sections, self.renderer.font()
        sim = self.sim
        draw_panel_frame(self.surface, box, font, "controls   (Tab hides)", "P: save as scenario YAML   G: plots")
        self.rate_slider.draw(self.surface, font, self.rate, f"pace: {pace_text(self.rate, self.steps_per_frame)}",
                              self._drag is not None and self._drag.get("kind") == "rate")
        self.renderer.draw_legend(self.surface, sec["legend"], sim, self.legend_extra())
        self.panel.draw(self.surface, font)
        self.plots.sync(sim.metrics)
        if sim.scenario.species:
            self.plots.add_counts(sim.step_count, torch.bincount(sim.state.group.long()).tolist())
        self.plots.draw(self.surface, sec["plots"], font)

    def say(self, text: str) -> None:
        """Print ``text`` and show it in the HUD for a few seconds."""
        if not self.quiet:
            print(text)
        self._messages.append((text, time.perf_counter() + 4.0))

    # ------------------------------------------------------------ events

    def handle(self, event) -> None:
        kind = event.type
        if kind == pygame.QUIT:
            self.running = False
        elif kind == pygame.KEYDOWN:
            self.key(event.key, getattr(event, "mod", 0))
        elif kind == pygame.MOUSEBUTTONDOWN:
            self.mouse_down(event.pos, event.button)
        elif kind == pygame.MOUSEMOTION:
            self.mouse_move(event.pos)
        elif kind == pygame.MOUSEBUTTONUP:
            self.mouse_up(event.pos, event.button)
        elif kind == pygame.MOUSEWHEEL:
            if self.layout.panel_rect is not None and self.layout.panel_rect.collidepoint(self.pointer):
                self.panel.scroll_by(-event.y * ROW_HEIGHT)
            elif self.layout.field.collidepoint(self.pointer):
                self.view.zoom_at(ZOOM_STEP ** event.y, self.pointer)
        elif kind == pygame.VIDEORESIZE:
            self.resize((event.w, event.h))

    def resize(self, size) -> None:
        """The window got ``size`` px: a new display surface (when it is the display's), laid out again."""
        size = (max(1, int(size[0])), max(1, int(size[1])))
        if self.surface is pygame.display.get_surface():
            self.surface = pygame.display.set_mode(size, pygame.RESIZABLE)
        elif self.surface.get_size() != size:
            self.surface = pygame.Surface(size)
        self.relayout(size)

    def key(self, key: int, mod: int = 0) -> None:
        sim = self.sim
        if key in (pygame.K_ESCAPE, pygame.K_q):
            self.running = False
        elif key == pygame.K_SPACE:
            self.paused = not self.paused
            self._last_update = self._clock()
        elif key == pygame.K_RIGHT:
            self.pending_steps += 1
        elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS, pygame.K_MINUS, pygame.K_KP_MINUS):
            faster = key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS)
            if self.rate is None:
                spf = self.steps_per_frame * 2 if faster else self.steps_per_frame // 2
                self.steps_per_frame = min(MAX_STEPS_PER_FRAME, max(1, spf))
            else:
                lo, hi = self.rate_slider.param.lo, self.rate_slider.param.hi
                self.set_pace(min(hi, max(lo, self.rate * 2 if faster else self.rate / 2)))
        elif key == pygame.K_c:
            self.say(f"colour by {self.renderer.cycle_color(sim)}")
            self.relayout()   # the legend changes
        elif key == pygame.K_t:
            self.say(f"trails {'on' if self.renderer.toggle_trails() else 'off'}")
        elif key == pygame.K_a:
            self.attract = not self.attract
            if self._force is not None:
                self._force.strength = abs(self._force.strength) * (1 if self.attract else -1)
            self.say(f"right drag places {'an attractor' if self.attract else 'a predator'}")
        elif key == pygame.K_r:
            sim.reset()
            self._force = None
            sim.point_forces.clear()
            self.renderer.clear_trails()
            self.renderer.modes.invalidate()
            self.say("reset")
        elif key == pygame.K_s:
            self.screenshot()
        elif key == pygame.K_p:
            self.save_scenario()
        elif key == pygame.K_f:
            self.view.fit()
            self.renderer.clear_trails()
        else:
            layout_key(self, key)   # Tab, G, H

    def mouse_down(self, pos, button: int) -> None:
        self.pointer = tuple(pos)
        shift = bool(pygame.key.get_mods() & pygame.KMOD_SHIFT)
        three_d = self.view.dims == 3
        panel = self.layout.panel_rect
        if panel is not None and panel.collidepoint(pos):
            if button == 1 and self.rate_slider.hit(pos):
                self._drag = {"kind": "rate"}
                self.set_pace(self.rate_slider.value_at(pos[0]))
            elif button == 1 and self.panel.contains(pos):
                self.panel.press(pos)
                self._drag = {"kind": "slider"}
            return
        if not self.layout.field.collidepoint(pos):
            return
        if button == 1:
            self._drag = {"kind": "rotate" if (three_d and shift) else "click", "start": tuple(pos), "last": tuple(pos)}
        elif button == 2:
            self._drag = {"kind": "pan", "last": tuple(pos)}
        elif button == 3:
            if three_d and not shift:
                self._drag = {"kind": "rotate", "last": tuple(pos)}
            else:
                self._drag = {"kind": "force"}
                self._place_force(pos)

    def mouse_move(self, pos) -> None:
        self.pointer = tuple(pos)
        drag = self._drag
        if drag is None:
            return
        kind = drag["kind"]
        if kind == "slider":
            self.panel.drag(pos)
        elif kind == "rate":
            self.set_pace(self.rate_slider.value_at(pos[0]))
        elif kind == "force":
            if self._force is not None:
                self._force.center = self._world_point(pos)
        elif kind == "click":
            sx, sy = drag["start"]
            if abs(pos[0] - sx) > CLICK_SLOP or abs(pos[1] - sy) > CLICK_SLOP:
                drag["kind"] = "pan"
                self._pan_to(pos)
        elif kind == "pan":
            self._pan_to(pos)
        elif kind == "rotate":
            lx, ly = drag["last"]
            self.view.rotate((pos[0] - lx) * ROTATE_PER_PX, (pos[1] - ly) * ROTATE_PER_PX)
            drag["last"] = tuple(pos)
            self.renderer.clear_trails()

    def _pan_to(self, pos) -> None:
        lx, ly = self._drag["last"]
        self.view.pan(pos[0] - lx, pos[1] - ly)
        self._drag["last"] = tuple(pos)
        self.renderer.clear_trails()

    def mouse_up(self, pos, button: int) -> None:
        self.pointer = tuple(pos)
        drag, self._drag = self._drag, None
        if drag is None:
            return
        kind = drag["kind"]
        if kind == "slider":
            self.panel.release()
        elif kind == "click" and button == 1:
            self.add_agents_at(pos)
        elif kind == "force" and self._force is not None:
            if self._force in self.sim.point_forces:
                self.sim.point_forces.remove(self._force)
            self._force = None

    # ------------------------------------------------------------ actions

    def _world_point(self, pos) -> tuple[float, ...]:
        return tuple(float(v) for v in self.view.screen_to_world(torch.tensor([pos], dtype=torch.float64))[0])

    def add_agents_at(self, pos, count: int = ADD_PER_CLICK) -> None:
        """The seed's addFish: ``count`` agents a few pixels around screen ``pos``, small random velocities."""
        sim = self.sim
        dim = sim.scenario.world.dims
        centre = torch.tensor(self._world_point(pos), dtype=torch.float64)
        spread = 3.0 / self.view.scale
        new_pos = centre + spread * torch.randn(count, dim, generator=self._rng, dtype=torch.float64)
        if converges(sim.scenario):
            new_vel = torch.zeros(count, dim, dtype=torch.float64)
        else:
            speed = sim.scenario.agents.max_speed or 1.0
            new_vel = 0.1 * speed * torch.randn(count, dim, generator=self._rng, dtype=torch.float64)
        sim.add_agents(new_pos, new_vel)
        self.renderer.clear_trails()
        if converges(sim.scenario):
            sim.done = False  # a converged run stops stepping; the new points still have somewhere to go
        self.say(f"added {count} agents ({sim.state.n_agents:,} now)")

    def _place_force(self, pos) -> None:
        sim = self.sim
        if converges(sim.scenario):
            self.say("point forces act on boids only")
            self._force = None
            return
        agents = sim.scenario.agents
        scale = 3 * agents.max_force if agents.max_force else 0.1 * (agents.max_speed or 1.0)
        radius = 0.3 * min(sim.scenario.world.size)
        self._force = PointForce(center=self._world_point(pos), strength=scale if self.attract else -scale,
                                 radius=radius)
        sim.point_forces.append(self._force)

    def _unique(self, stem: str, suffix: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{stem}{suffix}"
        k = 1
        while path.exists():
            path = self.out / f"{stem}_{k}{suffix}"
            k += 1
        return path

    def screenshot(self) -> Path:
        """Save what the window shows as a PNG in the run's folder."""
        path = self._unique(f"screenshot_{self.sim.step_count:06d}", ".png")
        pygame.image.save(self.surface, str(path))
        self.say(f"saved {path}")
        return path

    def save_scenario(self) -> Path:
        """Write the current parameters as a scenario YAML (file paths made absolute) and check it loads."""
        from flock.scenario import load_scenario  # noqa: PLC0415

        sim = self.sim
        sc = sim.scenario.model_copy(deep=True)
        for which in ("position", "velocity"):
            init = getattr(sc.agents, which)
            if getattr(init, "kind", None) == "file":
                init.path = str((sim.scenario.base_dir() / init.path).resolve())
        path = self._unique(f"{self.name}_step{sim.step_count:06d}", ".yaml")
        source = sim.scenario.source or "a scenario built in code"
        path.write_text(f"# written by the flocksim window at step {sim.step_count} from {source}\n"
                        + sc.to_yaml(), encoding="utf-8")
        try:
            load_scenario(path)
        except ScenarioError as exc:
            self.say(f"wrote {path}, but it does not validate: {exc}")
        else:
            self.say(f"wrote scenario {path}")
        return path

    # ------------------------------------------------------------ the end

    def close(self) -> list[Path]:
        """Write metrics.csv and final_state.npz into the run's folder; returns their paths."""

        self.out.mkdir(parents=True, exist_ok=True)
        metrics, final = self.out / "metrics.csv", self.out / "final_state.npz"
        if len(self.sim.metrics):
            self.sim.metrics.to_csv(metrics)
        save_final_state(self.sim, final)
        return [metrics, final]


def run_window(sim, steps: int | None = None, out=None, args=None, *, size=None, fps: int | None = None,
               allow_dummy: bool = False, paused: bool | None = None, steps_per_second="default") -> int:
    """Open a window on ``sim`` and run it live until closed (or ``steps`` steps, or convergence).

    Args:
        sim: the ``Simulation``.
        steps: close by itself after this many steps (None: when the user closes it).
        out: the run's folder (screenshots, saved scenarios, metrics.csv, final_state.npz).
        args: the CLI's parsed arguments (``size``, ``fps``, ``trail``, ``quiet``, ``paused`` are read
            when present).
        fps: frame cap (None: ``--fps``, else the scenario's ``render.fps``).
        allow_dummy: run under SDL's dummy video driver too (tests).
        paused, steps_per_second: as ``Window`` (``paused`` None: ``--paused``, else mean shift only).
    Returns:
        0, or 130 when interrupted by Ctrl-C.
    Raises:
        WindowUnavailable: no display could be opened.
    """

    ok, why = window_available(allow_dummy=allow_dummy)
    if not ok:
        raise WindowUnavailable(why)
    quiet = bool(getattr(args, "quiet", False))
    size = size or getattr(args, "size", None)
    fps = fps or getattr(args, "fps", None) or sim.scenario.render.fps
    if paused is None:
        paused = getattr(args, "paused", None)
    try:
        window = Window(sim, out=out, steps=steps, size=size, quiet=quiet, trail=getattr(args, "trail", None),
                        paused=paused, steps_per_second=steps_per_second)
    except pygame.error as exc:
        pygame.display.quit()
        raise WindowUnavailable(f"pygame could not open a window ({exc})") from None
    clock = pygame.time.Clock()
    interrupted = False
    start = time.perf_counter()
    try:
        while window.frame():
            clock.tick(fps)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        seconds = time.perf_counter() - start
        written = window.close()
        pygame.display.quit()
    print(run_summary(sim, seconds, interrupted))
    print(f"wrote {' and '.join(str(p) for p in written if p.exists())}")
    return 130 if interrupted else 0
