"""Drawing a flock onto a pygame Surface: the one drawing code of the window and of frame files.

Two paths put agents on the screen:

- shapes (at most ``LARGE_N`` boids): every agent is a small filled polygon pointing
  along its velocity, one ``pygame.draw.polygon`` per agent; the vertices of all agents
  come from one tensor expression. Group 0 are triangles; every other group (a species,
  such as predators) has its own shape (dart, diamond), is drawn ``SPECIES_SCALE`` times
  larger with a light outline, and on top, so a few predators stand out in a flock.
- pixels (above ``LARGE_N``, and always for mean shift points): positions become pixel
  indices in one tensor operation, are written into an RGB image tensor (a dot of
  ``dot`` x ``dot`` pixels per agent) and the image is blitted in one call. No Python
  loop runs over agents, so 10^5..10^6 agents stay interactive.

Both paths put an agent at screen position (sx, sy) on pixel (floor(sx), floor(sy)).
Colours: by group, by speed, by heading, or (mean shift) by the mode a point ends on,
with the modes marked by crosses as the fastai lesson's ``plot_data``. ``draw_legend``
says what the colours (and shapes) mean. In 3D the colour
is shaded by depth (far is darker) and near agents are drawn over far ones.
"""

from __future__ import annotations

import math
from collections import deque

import pygame
import torch

from flock.forces import PointForce
from flock.metrics import find_modes
from flock.obstacles import attractor_forces

from .view import View
from flock.formulations import converges

LARGE_N = 3000          # above this many agents no per-agent draw calls are made
TRAIL_POINTS = 400_000  # at most this many trail dots per frame
MODE_PREDICT_MAX = 20_000  # mean shift: above this many points, modes are only shown once converged
BACKGROUND = (14, 17, 26)
BOX_COLOR = (60, 66, 84)
OBSTACLE_FILL = (48, 54, 70)
OBSTACLE_EDGE = (125, 134, 158)
TEXT_COLOR = (225, 228, 235)
# group 1 (predators in the scenarios) is red, so it reads as the odd one out next to group 0
GROUP_PALETTE = [(255, 193, 7), (239, 83, 80), (79, 195, 247), (102, 187, 106), (186, 104, 200),
                 (255, 138, 101), (77, 208, 225), (212, 225, 87), (240, 98, 146), (161, 136, 127)]
SPEED_ANCHORS = [(60, 90, 220), (40, 180, 210), (110, 215, 110), (250, 215, 60), (250, 90, 60)]
COLOR_MODES = ("group", "speed", "heading", "mode")
# polygon templates in units of the agent size: (along the heading, across it); (0, 0) is inside each
TRIANGLE = ((0.6, 0.0), (-0.4, 0.35), (-0.4, -0.35))
DART = ((0.6, 0.0), (-0.4, 0.45), (-0.15, 0.0), (-0.4, -0.45))
DIAMOND = ((0.6, 0.0), (0.0, 0.3), (-0.4, 0.0), (0.0, -0.3))
SPECIES_SHAPES = (DART, DIAMOND)
SPECIES_SCALE = 2.2       # other groups are drawn this many times larger than group 0
SPECIES_MIN_SIZE = 11.0   # px: and at least this large
OUTLINE_COLOR = (235, 238, 245)
PREDATOR_COLOR = (240, 70, 70)
ATTRACTOR_COLOR = (90, 220, 120)


def group_names(scenario) -> list[str]:
    """The name of every group: ``agents.name`` (default "flock") then each species'."""
    return [scenario.agents.name or "flock"] + [sp.name for sp in scenario.species or []]


def group_shape(group: int) -> tuple[tuple[float, float], ...]:
    return TRIANGLE if group == 0 else SPECIES_SHAPES[(group - 1) % len(SPECIES_SHAPES)]


# ---------------------------------------------------------------- colours


def _lut(anchors: list[tuple[int, int, int]], n: int = 256) -> torch.Tensor:
    """[n, 3] uint8 colours interpolated linearly between ``anchors``."""
    a = torch.tensor(anchors, dtype=torch.float32)
    t = torch.linspace(0, len(anchors) - 1, n)
    lo = t.floor().long().clamp(max=len(anchors) - 2)
    frac = (t - lo)[:, None]
    return (a[lo] * (1 - frac) + a[lo + 1] * frac).round().to(torch.uint8)


def _hue_lut(n: int = 256, saturation: float = 0.7) -> torch.Tensor:
    """[n, 3] uint8 colours around the hue circle (value 1)."""
    h = torch.arange(n, dtype=torch.float32) / n * 6
    channels = []
    for shift in (5.0, 3.0, 1.0):  # R, G, B of the standard HSV -> RGB formula
        k = (shift + h) % 6
        channels.append(1 - saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return (torch.stack(channels, 1) * 255).round().to(torch.uint8)


_LUTS: dict[tuple[str, str], torch.Tensor] = {}


def _cached_lut(name: str, device: torch.device) -> torch.Tensor:
    key = (name, str(device))
    if key not in _LUTS:
        lut = {"group": lambda: torch.tensor(GROUP_PALETTE, dtype=torch.uint8),
               "speed": lambda: _lut(SPEED_ANCHORS),
               "heading": _hue_lut}[name]()
        _LUTS[key] = lut.to(device)
    return _LUTS[key]


def palette_colors(ids: torch.Tensor) -> torch.Tensor:
    """[N] int ids (groups, modes) -> [N, 3] uint8 colours of ``GROUP_PALETTE`` (cycled)."""
    lut = _cached_lut("group", ids.device)
    return lut[ids.long() % len(lut)]


def speed_colors(vel: torch.Tensor, max_speed: float | None = None) -> torch.Tensor:
    """[N, D] velocities -> [N, 3] uint8, slow blue to fast red (scaled by ``max_speed``, or the fastest)."""
    speed = torch.linalg.vector_norm(vel, dim=1)
    top = float(max_speed) if max_speed else (float(speed.max()) if speed.numel() else 1.0)
    idx = (speed / max(top, 1e-12) * 255).clamp(0, 255).long()
    return _cached_lut("speed", vel.device)[idx]


def heading_colors(screen_dir: torch.Tensor) -> torch.Tensor:
    """[N, 2] screen directions -> [N, 3] uint8 hues (the angle on screen, so 3D views agree)."""
    angle = torch.atan2(-screen_dir[:, 1], screen_dir[:, 0])  # screen y points down
    idx = ((angle / (2 * math.pi)) % 1.0 * 256).long().clamp(0, 255)
    return _cached_lut("heading", screen_dir.device)[idx]


def shade_by_depth(colors: torch.Tensor, depth: torch.Tensor, extent: float, darkest: float = 0.35) -> torch.Tensor:
    """Darken [N, 3] uint8 colours with depth: nearest (depth = +extent) full, farthest ``darkest``."""
    t = ((depth / max(extent, 1e-12)) * 0.5 + 0.5).clamp(0, 1)
    factor = darkest + (1 - darkest) * t
    return (colors.float() * factor[:, None]).round().to(torch.uint8)


# ---------------------------------------------------------------- geometry and pixels


def shape_vertices(screen: torch.Tensor, direction: torch.Tensor, size: float,
                   template=TRIANGLE) -> torch.Tensor:
    """[N, V, 2] vertices of ``template`` polygons of length ``size`` px at ``screen``, tip along ``direction``.

    The agent's point is the template's (0, 0), inside the polygon (for the triangle: 0.6 x
    size behind the tip, 0.4 x size in front of the base), so the pixel under it is covered,
    as in the pixel path.

    Args:
        screen: [N, 2] screen positions, px. direction: [N, 2] screen directions (any length; 0 -> up).
        template: V (along, across) vertices in units of ``size``.
    """
    norm = torch.linalg.vector_norm(direction, dim=1, keepdim=True)
    up = torch.tensor([0.0, -1.0], device=screen.device, dtype=screen.dtype).expand_as(direction)
    h = torch.where(norm > 0, direction / torch.where(norm > 0, norm, torch.ones_like(norm)), up)
    n = torch.stack([-h[:, 1], h[:, 0]], dim=1)
    t = torch.as_tensor(template, device=screen.device, dtype=screen.dtype) * size
    return screen[:, None, :] + t[None, :, 0:1] * h[:, None, :] + t[None, :, 1:2] * n[:, None, :]


def triangle_vertices(screen: torch.Tensor, direction: torch.Tensor, size: float) -> torch.Tensor:
    """[N, 3, 2] triangles (``shape_vertices`` with ``TRIANGLE``)."""
    return shape_vertices(screen, direction, size, TRIANGLE)


def pixel_indices(screen: torch.Tensor, width: int, height: int, dot: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices into a [height, width] image of ``dot`` x ``dot`` blocks around each screen point.

    The block of a point at (sx, sy) always contains pixel (floor(sx), floor(sy)).

    Args:
        screen: [N, 2] screen positions, px.
    Returns:
        (flat [M] int64 indices y * width + x of the visible block pixels, agent [M] int64 the
        agent each belongs to).
    """
    base = screen.floor().long()
    if dot == 1:  # the common large-N case: no block offsets to expand
        x, y = base[:, 0], base[:, 1]
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        agent = inside.nonzero().squeeze(1)
        return y[agent] * width + x[agent], agent
    offsets = torch.arange(-((dot - 1) // 2), dot // 2 + 1, device=screen.device)
    ox, oy = torch.meshgrid(offsets, offsets, indexing="ij")
    x = (base[:, None, 0] + ox.reshape(1, -1)).reshape(-1)
    y = (base[:, None, 1] + oy.reshape(1, -1)).reshape(-1)
    agent = torch.arange(screen.shape[0], device=screen.device).repeat_interleave(offsets.numel() ** 2)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return (y * width + x)[inside], agent[inside]


def splat(image: torch.Tensor, screen: torch.Tensor, colors: torch.Tensor, dot: int = 1) -> None:
    """Write agents into ``image`` in place (where blocks overlap, one of them wins; on CPU the later).

    Args:
        image: [H, W, 3] uint8 RGB image, row-major (contiguous).
        screen: [N, 2] screen positions, px. colors: [N, 3] uint8.
    """
    height, width = image.shape[:2]
    flat, agent = pixel_indices(screen, width, height, dot)
    image.view(-1, 3)[flat] = colors[agent]


def blit_image(surface: pygame.Surface, image: torch.Tensor) -> None:
    """Copy an [H, W, 3] uint8 image tensor (any device) onto ``surface`` with one blit."""
    array = image.cpu().contiguous().numpy()
    height, width = array.shape[:2]
    surface.blit(pygame.image.frombuffer(array, (width, height), "RGB"), (0, 0))


def draw_triangles(surface: pygame.Surface, vertices: torch.Tensor, colors: torch.Tensor,
                   outline=None) -> None:
    """One filled polygon per agent (and a 1 px ``outline`` colour around it, if given).

    vertices: [N, V, 2] px; colors: [N, 3] uint8.
    """
    polygon = pygame.draw.polygon
    for verts, color in zip(vertices.cpu().tolist(), colors.cpu().tolist()):
        polygon(surface, color, verts)
        if outline is not None:
            polygon(surface, outline, verts, 1)


def draw_cross(surface: pygame.Surface, xy, size: float = 9.0, gap: float = 3.0) -> None:
    """A mode marker as in the lesson's ``plot_data``: a thick dark X under a thin magenta X.

    The arms start ``gap`` px from the centre, so the points gathered on the mode stay visible.
    """
    x, y = xy
    for color, width, s in (((0, 0, 0), 5, size), ((255, 0, 255), 2, size - 1)):
        for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            pygame.draw.line(surface, color, (x + dx * gap, y + dy * gap), (x + dx * s, y + dy * s), width)


# ---------------------------------------------------------------- mean shift modes


def plane_in_box(point, normal, origin, size) -> list[list[float]]:
    """Corners of the polygon where the plane through ``point`` with ``normal`` cuts the box.

    Args:
        point, normal: [3] the plane. origin, size: [3] the box's low corner and side lengths.

    Returns:
        The crossing points of the plane with the box's 12 edges, in order around
        their centre (3 to 6 of them), or [] when the plane misses the box.
    """
    n = torch.as_tensor(normal, dtype=torch.float64)
    p0 = torch.as_tensor(point, dtype=torch.float64)
    corners = torch.tensor([[origin[k] + size[k] * ((i >> k) & 1) for k in range(3)] for i in range(8)],
                           dtype=torch.float64)
    side = (corners - p0) @ n
    hits = []
    for i in range(8):
        for k in range(3):
            j = i | (1 << k)
            if j != i and (side[i] < 0) != (side[j] < 0):
                t = side[i] / (side[i] - side[j])
                hits.append(corners[i] + t * (corners[j] - corners[i]))
    if len(hits) < 3:
        return []
    pts = torch.stack(hits)
    centre = pts.mean(0)
    # order around the centre by the angle in a basis of the plane
    u = torch.linalg.cross(n, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    if float(torch.linalg.vector_norm(u)) < 1e-9 * float(torch.linalg.vector_norm(n)):
        u = torch.linalg.cross(n, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    v = torch.linalg.cross(n, u)
    rel = pts - centre
    order = torch.argsort(torch.atan2(rel @ v, rel @ u))
    return pts[order].tolist()


class ModeTracker:
    """Where every point of a mean shift run ends, for colouring points by their final mode.

    The dynamics are deterministic, so the end is found once by running a copy of the
    simulation to convergence (``find_modes`` on the converged points, merge radius = the
    bandwidth); it is found again when the number of points or a rule parameter changes.
    Above ``MODE_PREDICT_MAX`` points no copy is run: labels appear once the run converges.
    """

    def __init__(self, max_predict: int = MODE_PREDICT_MAX):
        self.max_predict = max_predict
        self._key = None
        self.centers: torch.Tensor | None = None   # [M, D] final modes, world units
        self.labels: torch.Tensor | None = None    # [N] int64 mode of each point

    def invalidate(self) -> None:
        self._key = None

    def update(self, sim, allow_predict: bool = True) -> None:
        rules = sim.scenario.rules
        key = (sim.state.n_agents, repr(rules.model_dump()))
        if key == self._key:
            return
        if sim.done:
            end = sim.state.pos
        elif allow_predict and sim.state.n_agents <= self.max_predict:
            end = self._predict(sim)
        else:
            self.centers = self.labels = None
            return
        self.centers, self.labels = find_modes(end, rules.bandwidth)
        self._key = key

    @staticmethod
    def _predict(sim) -> torch.Tensor:
        from flock.simulation import Simulation  # noqa: PLC0415  (only needed for mean shift)

        ghost = Simulation.from_scenario(sim.scenario, device=sim.device, dtype=sim.dtype, backend=sim.backend,
                                         seed=sim.seed, state=sim.state.clone(), record_metrics=False)
        ghost.load_state_dict({"step_count": sim.step_count})
        ghost.step(max(0, sim.scenario.rules.max_iter - sim.step_count))
        return ghost.state.pos


# ---------------------------------------------------------------- the renderer


class Renderer:
    """Draws a simulation onto a Surface through a ``View``; keeps what drawing remembers
    between frames (trails, the mean shift modes, fonts).

    Args:
        view: the world -> screen mapping.
        color_by: 'group' | 'speed' | 'heading' | 'mode' (mode: mean shift only; else group).
        agent_size: triangle length, px.
        trail: number of past positions shown as fading dots (0: trails off, ``toggle_trails``
            then shows 20).
        large_n: above this many agents, the pixel path is used.
    """

    def __init__(self, view: View, *, color_by: str = "group", agent_size: float = 6.0, trail: int = 0,
                 large_n: int = LARGE_N, background=BACKGROUND, font_size: int = 18):
        if color_by not in COLOR_MODES:
            raise ValueError(f"color_by: expected one of {COLOR_MODES}, got {color_by!r}")
        self.view = view
        self.color_by = color_by
        self.agent_size = float(agent_size)
        self.large_n = int(large_n)
        self.background = tuple(background)
        self.trail_length = int(trail) if trail > 0 else 20
        self.trails_on = trail > 0
        self._trail: deque[torch.Tensor] = deque(maxlen=self.trail_length)
        self.modes = ModeTracker()
        self.font_size = font_size
        self._font = None
        self._bg_image: torch.Tensor | None = None

    # ------------------------------------------------------------ settings

    def color_modes(self, sim) -> tuple[str, ...]:
        return COLOR_MODES if converges(sim.scenario) else COLOR_MODES[:3]

    def cycle_color(self, sim) -> str:
        modes = self.color_modes(sim)
        current = self.color_by if self.color_by in modes else modes[0]
        self.color_by = modes[(modes.index(current) + 1) % len(modes)]
        return self.color_by

    def toggle_trails(self) -> bool:
        self.trails_on = not self.trails_on
        self._trail.clear()
        return self.trails_on

    def clear_trails(self) -> None:
        self._trail.clear()

    def uses_pixels(self, sim) -> bool:
        """True when agents are drawn by the pixel path (large N, or mean shift points)."""
        return converges(sim.scenario) or sim.state.n_agents > self.large_n

    def dot_size(self, sim) -> int:
        n = sim.state.n_agents
        if n <= self.large_n:
            return 3
        return 2 if n <= 200_000 else 1

    # ------------------------------------------------------------ pieces

    def colors(self, sim, screen_dir: torch.Tensor) -> torch.Tensor:
        """[N, 3] uint8 colours of the agents for the current ``color_by``."""
        state = sim.state
        mode = self.color_by
        if mode == "speed":
            return speed_colors(state.vel, sim.scenario.agents.max_speed if not converges(sim.scenario) else None)
        if mode == "heading":
            return heading_colors(screen_dir)
        if mode == "mode" and converges(sim.scenario) and self.modes.labels is not None \
                and self.modes.labels.shape[0] == state.n_agents:
            return palette_colors(self.modes.labels)
        return palette_colors(state.group)

    def font(self) -> "pygame.font.Font":
        """The HUD font (pygame's default font; works without a display)."""
        if self._font is None:
            if not pygame.font.get_init():
                pygame.font.init()
            self._font = pygame.font.Font(None, self.font_size)
        return self._font

    def background_image(self, device: torch.device) -> torch.Tensor:
        """[H, W, 3] uint8 image filled with the background colour (cached per size and device)."""
        v = self.view
        img = self._bg_image
        if img is None or img.shape[:2] != (v.height, v.width) or img.device != device:
            img = torch.tensor(self.background, dtype=torch.uint8, device=device).expand(v.height, v.width, 3)
            self._bg_image = img = img.contiguous()
        return img

    # ------------------------------------------------------------ the frame

    def draw(self, surface: pygame.Surface, sim, *, hud: list[str] | None = None, show_box: bool = True,
             allow_mode_predict: bool = True) -> None:
        """Draw ``sim``'s current state (and trails, modes, point forces, HUD) onto ``surface``."""
        view = self.view
        if (view.width, view.height) != surface.get_size():
            view.resize(*surface.get_size())
        state = sim.state
        pos, vel = state.pos, state.vel
        n = state.n_agents
        plane, depth = view.project(pos)
        screen = view.plane_to_screen(plane)
        screen_dir = view.direction_to_screen(vel)
        if converges(sim.scenario) and self.color_by == "mode":
            self.modes.update(sim, allow_predict=allow_mode_predict)
        colors = self.colors(sim, screen_dir)
        trail_colors = colors
        groups = state.group
        if depth is not None and n:
            extent = 0.5 * math.sqrt(sum(s * s for s in view.box_size))
            colors = shade_by_depth(colors, depth, extent)
            order = torch.argsort(depth)  # far first, so near agents are drawn over them
            screen, screen_dir, colors, groups = screen[order], screen_dir[order], colors[order], groups[order]

        pixels = self.uses_pixels(sim)
        if self.trails_on:
            if self._trail and self._trail[-1].shape != pos.shape:
                self._trail.clear()
            self._trail.append(pos)
        if pixels or (self.trails_on and len(self._trail) > 1):
            image = self.background_image(pos.device).clone()
            if self.trails_on:
                self._splat_trails(image, trail_colors)
            if pixels and n:
                splat(image, screen, colors, self.dot_size(sim))
            blit_image(surface, image)
        else:
            surface.fill(self.background)
        if show_box:
            for a, b in view.box_edges():
                pygame.draw.line(surface, BOX_COLOR, a.tolist(), b.tolist(), 1)
        self._draw_obstacles(surface, sim.scenario.obstacles or [], pos)
        if n:
            self._draw_shapes(surface, sim, screen, screen_dir, colors, groups, pixels)
        if converges(sim.scenario) and self.color_by == "mode" and self.modes.centers is not None:
            for xy in view.world_to_screen(self.modes.centers.to(pos.dtype)).cpu().tolist():
                draw_cross(surface, xy)
        forces = attractor_forces(sim.scenario, sim.time) if sim.scenario.attractors else []
        for force in forces + list(getattr(sim, "point_forces", [])):
            self._draw_point_force(surface, force, pos)
        if hud:
            self.draw_text(surface, hud, (8, 6))

    def species_size(self) -> float:
        """Length px of the agents of groups other than 0."""
        return max(SPECIES_SCALE * self.agent_size, SPECIES_MIN_SIZE)

    def _draw_shapes(self, surface, sim, screen, screen_dir, colors, groups, pixels: bool) -> None:
        """Group 0 as triangles (unless drawn as pixels), then each other group in its own
        shape, larger and outlined (also over the pixel path, while that group is small)."""
        if not sim.scenario.species:
            if not pixels:
                draw_triangles(surface, triangle_vertices(screen, screen_dir, self.agent_size), colors)
            return
        present = torch.unique(groups).tolist()
        for g in sorted(present):
            mask = groups == g
            if g == 0:
                if not pixels:
                    draw_triangles(surface, triangle_vertices(screen[mask], screen_dir[mask], self.agent_size),
                                   colors[mask])
                continue
            if pixels and int(mask.sum()) > self.large_n:
                continue
            verts = shape_vertices(screen[mask], screen_dir[mask], self.species_size(), group_shape(g))
            draw_triangles(surface, verts, colors[mask], outline=OUTLINE_COLOR)

    def legend_rows(self, sim) -> list[tuple[str, object, str]]:
        """What the picture's colours and shapes mean: (kind, what to draw, text) rows, kind one of
        'group' (a group id), 'bar' (a [256, 3] colour table and its end labels), 'cross', 'text'."""
        sc = sim.scenario
        mode = self.color_by if self.color_by in self.color_modes(sim) else "group"
        if mode == "speed":
            top = sc.agents.max_speed if not converges(sc) else None
            if not top:  # speed_colors scales by the fastest agent then
                top = float(torch.linalg.vector_norm(sim.state.vel, dim=1).max()) if sim.state.n_agents else 1.0
            return [("text", None, "colour: speed"), ("bar", ("speed", "0", f"{top:.3g}"), "")]
        if mode == "heading":
            return [("text", None, "colour: heading on screen"), ("bar", ("heading", "E   N   W   S", "E"), "")]
        if mode == "mode" and converges(sc):
            found = self.modes.centers
            return [("text", None, "colour: the mode each point ends on"),
                    ("cross", None, f"a mode ({'?' if found is None else found.shape[0]} found)")]
        names = group_names(sc)
        counts = torch.bincount(sim.state.group.long(), minlength=len(names)).tolist() if sim.state.n_agents \
            else [0] * len(names)
        return [("group", g, f"{names[g] if g < len(names) else f'group {g}'}: {counts[g]:,}")
                for g in range(len(counts))]

    def draw_legend(self, surface: pygame.Surface, rect: pygame.Rect, sim, extra=()) -> int:
        """The legend rows (and ``extra`` rows, same form) from ``rect``'s top left; returns the height used."""
        font = self.font()
        step = font.get_linesize() + 4
        y = rect.y
        for kind, what, text in list(self.legend_rows(sim)) + list(extra):
            if y + step > rect.bottom:
                break
            cx, cy = rect.x + 12, y + step // 2
            if kind == "group":
                size = self.agent_size * 2 if what == 0 else self.species_size()
                verts = shape_vertices(torch.tensor([[cx, cy]], dtype=torch.float32), torch.tensor([[1.0, 0.0]]),
                                       min(size, step + 4), group_shape(what))
                color = palette_colors(torch.tensor([what]))
                draw_triangles(surface, verts, color, outline=OUTLINE_COLOR if what else None)
            elif kind == "bar":
                name, left, right = what
                bar = pygame.Rect(rect.x + 4, y + 2, rect.width - 8, step - 8)
                lut = _cached_lut(name, torch.device("cpu"))
                for i in range(bar.width):
                    color = lut[i * (len(lut) - 1) // max(1, bar.width - 1)].tolist()
                    pygame.draw.line(surface, color, (bar.x + i, bar.y), (bar.x + i, bar.bottom - 1))
                y += step
                surface.blit(font.render(left, True, TEXT_COLOR), (bar.x, y))
                label = font.render(right, True, TEXT_COLOR)
                surface.blit(label, (bar.right - label.get_width(), y))
            elif kind == "cross":
                draw_cross(surface, (cx, cy), size=7.0, gap=2.0)
            elif kind == "ring":
                pygame.draw.circle(surface, what, (cx, cy), 6, 2)
            if text:
                surface.blit(font.render(text, True, TEXT_COLOR), (rect.x + 28 if kind != "text" else rect.x + 4,
                                                                   y + 2))
            y += step
        return y - rect.y

    def _splat_trails(self, image: torch.Tensor, colors: torch.Tensor) -> None:
        """Past positions as 1-px dots in the agents' colours, fading into the background with age."""
        history = list(self._trail)[:-1]  # the current positions are the agents themselves
        if not history:
            return
        k, n = len(history), history[0].shape[0]
        # a large flock shows the trails of every stride-th agent only, so a frame stays cheap
        stride = max(1, math.ceil(k * n / TRAIL_POINTS))
        if stride > 1:
            history = [h[::stride] for h in history]
            colors = colors[::stride]
            n = history[0].shape[0]
        screen = self.view.world_to_screen(torch.cat(history))
        fade = ((torch.arange(k, device=screen.device) + 1).float() / k * 0.6).repeat_interleave(n)[:, None]
        bg = torch.tensor(self.background, dtype=torch.float32, device=screen.device)
        tint = bg + (colors.to(screen.device).float().repeat(k, 1) - bg) * fade
        splat(image, screen, tint.round().to(torch.uint8), 1)

    def _draw_obstacles(self, surface: pygame.Surface, obstacles, like: torch.Tensor) -> None:
        """Circles / spheres filled with an outline, segments as thick lines, planes as their
        outline inside the world box (a sphere's orthographic projection is a circle)."""
        view = self.view
        for ob in obstacles:
            if ob.kind in ("circle", "sphere"):
                xy = view.world_to_screen(torch.as_tensor([ob.center], dtype=like.dtype))[0].tolist()
                r = max(1.0, ob.radius * view.scale)
                pygame.draw.circle(surface, OBSTACLE_FILL, xy, r)
                pygame.draw.circle(surface, OBSTACLE_EDGE, xy, r, 2)
            elif ob.kind == "segment":
                a, b = view.world_to_screen(torch.as_tensor([ob.a, ob.b], dtype=like.dtype)).tolist()
                pygame.draw.line(surface, OBSTACLE_EDGE, a, b, 3)
            else:
                corners = plane_in_box(ob.point, ob.normal, view.box_origin, view.box_size)
                if len(corners) >= 3:
                    pts = view.world_to_screen(torch.as_tensor(corners, dtype=like.dtype)).tolist()
                    pygame.draw.polygon(surface, OBSTACLE_EDGE, pts, 2)

    def _draw_point_force(self, surface: pygame.Surface, force: PointForce, like: torch.Tensor) -> None:
        centre = torch.as_tensor([force.center], dtype=like.dtype, device=like.device)
        xy = self.view.world_to_screen(centre)[0].tolist()
        color = ATTRACTOR_COLOR if force.strength > 0 else PREDATOR_COLOR
        radius_px = force.radius * self.view.scale if math.isfinite(force.radius) else 0
        if 2 < radius_px < 4 * max(surface.get_size()):
            pygame.draw.circle(surface, color, xy, radius_px, 1)
        pygame.draw.circle(surface, color, xy, 6, 0 if force.strength > 0 else 2)

    def draw_text(self, surface: pygame.Surface, lines: list[str], topleft, *, panel: bool = True) -> pygame.Rect:
        """Lines of text with a translucent dark box behind them; returns the box."""
        font = self.font()
        rendered = [font.render(line, True, TEXT_COLOR) for line in lines]
        width = max((r.get_width() for r in rendered), default=0) + 10
        step = font.get_linesize()
        box = pygame.Rect(topleft[0] - 5, topleft[1] - 3, width, step * len(rendered) + 6)
        if panel:
            shade = pygame.Surface(box.size, pygame.SRCALPHA)
            shade.fill((0, 0, 0, 150))
            surface.blit(shade, box.topleft)
        for i, r in enumerate(rendered):
            surface.blit(r, (topleft[0], topleft[1] + i * step))
        return box

    def draw_table(self, surface: pygame.Surface, rows: list[tuple[str, str]], topleft) -> pygame.Rect:
        """Two columns of text (key, what it does) on a translucent dark box; returns the box."""
        font = self.font()
        left = [font.render(a, True, (255, 193, 7)) for a, _ in rows]
        right = [font.render(b, True, TEXT_COLOR) for _, b in rows]
        col = max((r.get_width() for r in left), default=0) + 16
        width = col + max((r.get_width() for r in right), default=0) + 10
        step = font.get_linesize()
        box = pygame.Rect(topleft[0] - 8, topleft[1] - 6, width + 6, step * len(rows) + 12)
        shade = pygame.Surface(box.size, pygame.SRCALPHA)
        shade.fill((0, 0, 0, 200))
        surface.blit(shade, box.topleft)
        for i, (a, b) in enumerate(zip(left, right)):
            y = topleft[1] + i * step
            surface.blit(a, (topleft[0], y))
            surface.blit(b, (topleft[0] + col, y))
        return box
