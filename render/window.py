"""The live window: watch a flock and play with it.

The loop is the one DESIGN.md names: events, ``sim.step(k)``, one draw, flip, tick.

    mouse    left click          add 5 agents at the pointer (the seed's addFish)
             left drag / middle  pan                      wheel    zoom about the pointer
             right drag          a predator (or attractor, key A) follows the pointer while the
                                 button is held; it is removed on release (boids only)
             3D: right drag (or Shift + left drag) rotates; Shift + right drag places the force
    keys     Space pause   Right step once   + / - steps per frame (x2, /2)   C colours
             T trails   A attract/flee   R reset   S screenshot   P save scenario YAML
             F fit view   Tab parameter panel   H help   Esc / Q quit

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
from flock.run_output import run_summary, save_final_state
from flock.forces import PointForce

from .draw import Renderer
from .export import make_view
from .panel import Panel

ADD_PER_CLICK = 5
CLICK_SLOP = 4          # px a press may move and still be a click
ZOOM_STEP = 1.15
ROTATE_PER_PX = 0.01    # radians
MAX_STEPS_PER_FRAME = 1024
DUMMY_DRIVERS = ("dummy", "offscreen")

HELP = [
    ("mouse", ""),
    ("left click", "add 5 agents at the pointer (addFish)"),
    ("left / middle drag", "pan"),
    ("wheel", "zoom about the pointer"),
    ("right drag", "a predator (A: an attractor) follows the pointer;"),
    ("", "it is removed when the button is released (boids)"),
    ("3D", "right drag or Shift + left drag rotates;"),
    ("", "Shift + right drag places the predator / attractor"),
    ("keys", ""),
    ("Space", "pause / run"),
    ("Right", "one step"),
    ("+  /  -", "steps per frame x2  /  /2"),
    ("C", "colour by group, speed, heading (mean shift: mode)"),
    ("T", "trails"),
    ("A", "right drag: attractor / predator"),
    ("R", "reset the scenario"),
    ("S", "screenshot PNG into the run's folder"),
    ("P", "save the parameters as a scenario YAML"),
    ("F", "fit the view to the world"),
    ("Tab", "parameter sliders (take effect on the next step)"),
    ("H", "this help"),
    ("Esc  /  Q", "quit"),
]


class WindowUnavailable(RuntimeError):
    """No window could be opened (the caller runs headless instead)."""


def window_available(allow_dummy: bool = False) -> tuple[bool, str | None]:
    """Whether a pygame window can be opened here, and if not why.

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
    return True, None


def _window_size(sim, size=None) -> tuple[int, int]:
    """The scenario's render size (or ``size``), shrunk to fit the desktop keeping its aspect."""
    rs = sim.scenario.render
    width, height = size if size is not None else (rs.width, rs.height)
    try:
        desktops = pygame.display.get_desktop_sizes()
    except pygame.error:
        desktops = []
    if desktops and desktops[0][0] > 0 and desktops[0][1] > 0:
        dw, dh = desktops[0][0] - 40, desktops[0][1] - 100
        shrink = min(1.0, dw / width, dh / height)
        if shrink > 0.2:
            width, height = int(width * shrink), int(height * shrink)
    return width, height


class Window:
    """One window on one simulation: events in, steps, a frame out.

    Args:
        sim: the ``Simulation`` to show and play with.
        out: folder for screenshots, saved scenarios, metrics.csv and final_state.npz.
        steps: close after this many steps (None: when the user closes the window).
        size: window size px (None: the scenario's render hints, fitted to the desktop).
        panel: show the parameter sliders at the start.
        surface: draw here instead of opening a display surface.
        quiet: do not print what keys did (it still shows in the HUD).
        trail: trail length (None: ``scenario.render.trail``; T toggles trails either way).
    """

    def __init__(self, sim, *, out=None, steps: int | None = None, size=None, panel: bool = True,
                 surface: pygame.Surface | None = None, quiet: bool = False, trail: int | None = None):
        self.sim = sim
        self.name = sim.scenario.name or (sim.scenario.source.stem if sim.scenario.source else "scenario")
        self.out = Path(out) if out is not None else Path("runs") / self.name
        self.max_steps = steps
        self.quiet = quiet
        if surface is None:
            if not pygame.display.get_init():
                pygame.display.init()
            surface = pygame.display.set_mode(_window_size(sim, size), pygame.RESIZABLE)
            pygame.display.set_caption(f"flocksim - {self.name}")
            pygame.key.set_repeat(300, 40)
        self.surface = surface
        width, height = surface.get_size()
        rs = sim.scenario.render
        self.view = make_view(sim, width, height)
        self.renderer = Renderer(self.view, color_by=rs.color_by, agent_size=rs.agent_size,
                                 trail=rs.trail if trail is None else trail)
        self.panel = Panel(sim.scenario, (width, height), visible=panel)
        self.paused = False
        self.steps_per_frame = rs.steps_per_frame
        self.steps_done = 0
        self.pending_steps = 0
        self.attract = False            # right drag places a predator until A is pressed
        self.show_help = False
        self.running = True
        self.pointer = (width // 2, height // 2)
        self._drag: dict | None = None
        self._force: PointForce | None = None
        self._rng = torch.Generator().manual_seed(sim.seed + 1)
        self._messages: deque[tuple[str, float]] = deque(maxlen=4)
        self._last_time = time.perf_counter()
        self.fps = 0.0
        self.steps_per_second = 0.0

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

    def update(self) -> int:
        """Take this frame's steps; returns how many were taken."""
        sim = self.sim
        n = (0 if self.paused else self.steps_per_frame) + self.pending_steps
        self.pending_steps = 0
        if self.max_steps is not None:
            n = min(n, self.max_steps - self.steps_done)
        moved = 0
        if n > 0 and not sim.done:
            before = sim.step_count
            sim.step(n)
            moved = sim.step_count - before
            self.steps_done += moved
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

    # ------------------------------------------------------------ drawing

    def hud_lines(self) -> list[str]:
        sim = self.sim
        first = (f"{self.name}   step {sim.step_count}   {sim.state.n_agents:,} agents   "
                 f"{self.fps:.0f} fps   {self.steps_per_second:.0f} steps/s")
        second = (f"{sim.device.type} | {sim.backend} | {self.steps_per_frame} steps/frame | "
                  f"colour {self.renderer.color_by}")
        if sim.scenario.is_meanshift:
            modes = self.renderer.modes.centers
            second += f" | {'?' if modes is None else modes.shape[0]} modes, shift {sim.last_shift:.1e}"
            second += " | converged" if sim.done else ""
        else:
            second += f" | right drag: {'attractor' if self.attract else 'predator'}"
        if self.paused:
            second += " | PAUSED"
        lines = [first, second, "H: help"]
        now = time.perf_counter()
        lines += [text for text, until in self._messages if until > now]
        return lines

    def draw(self) -> None:
        self.renderer.draw(self.surface, self.sim, hud=self.hud_lines(),
                           allow_mode_predict=self.panel.active is None)
        font = self.renderer.font()
        self.panel.draw(self.surface, font)
        if self.show_help:
            w, h = self.surface.get_size()
            self.renderer.draw_table(self.surface, HELP, (max(10, w // 2 - 230), max(70, h // 2 - 190)))

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
            self.view.zoom_at(ZOOM_STEP ** event.y, self.pointer)
        elif kind == pygame.VIDEORESIZE:
            self.surface = pygame.display.set_mode((event.w, event.h), pygame.RESIZABLE)
            self.view.resize(event.w, event.h)
            self.panel.layout((event.w, event.h))
            self.renderer.clear_trails()

    def key(self, key: int, mod: int = 0) -> None:
        sim = self.sim
        if key in (pygame.K_ESCAPE, pygame.K_q):
            self.running = False
        elif key == pygame.K_SPACE:
            self.paused = not self.paused
        elif key == pygame.K_RIGHT:
            self.pending_steps += 1
        elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
            self.steps_per_frame = min(MAX_STEPS_PER_FRAME, self.steps_per_frame * 2)
        elif key in (pygame.K_MINUS, pygame.K_KP_MINUS):
            self.steps_per_frame = max(1, self.steps_per_frame // 2)
        elif key == pygame.K_c:
            self.say(f"colour by {self.renderer.cycle_color(sim)}")
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
        elif key == pygame.K_TAB:
            self.panel.visible = not self.panel.visible
        elif key == pygame.K_h:
            self.show_help = not self.show_help

    def mouse_down(self, pos, button: int) -> None:
        self.pointer = tuple(pos)
        shift = bool(pygame.key.get_mods() & pygame.KMOD_SHIFT)
        three_d = self.view.dims == 3
        if button == 1 and self.panel.contains(pos):
            self.panel.press(pos)
            self._drag = {"kind": "slider"}
        elif button == 1:
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
        if sim.scenario.is_meanshift:
            new_vel = torch.zeros(count, dim, dtype=torch.float64)
        else:
            speed = sim.scenario.agents.max_speed or 1.0
            new_vel = 0.1 * speed * torch.randn(count, dim, generator=self._rng, dtype=torch.float64)
        sim.add_agents(new_pos, new_vel)
        self.renderer.clear_trails()
        if sim.scenario.is_meanshift:
            sim.done = False  # a converged run stops stepping; the new points still have somewhere to go
        self.say(f"added {count} agents ({sim.state.n_agents:,} now)")

    def _place_force(self, pos) -> None:
        sim = self.sim
        if sim.scenario.is_meanshift:
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
               allow_dummy: bool = False) -> int:
    """Open a window on ``sim`` and run it live until closed (or ``steps`` steps, or convergence).

    Args:
        sim: the ``Simulation``.
        steps: close by itself after this many steps (None: when the user closes it).
        out: the run's folder (screenshots, saved scenarios, metrics.csv, final_state.npz).
        args: the CLI's parsed arguments (``size``, ``fps``, ``trail``, ``quiet`` are read when present).
        allow_dummy: run under SDL's dummy video driver too (tests).
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
    try:
        window = Window(sim, out=out, steps=steps, size=size, quiet=quiet, trail=getattr(args, "trail", None))
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
