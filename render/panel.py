"""Panel: on-screen sliders bound to the scenario's numeric rule parameters.

Every number under ``scenario.rules`` (weights, radii, the mean shift bandwidth, ...) and
``agents.max_speed`` / ``agents.max_force`` gets a slider. Moving it assigns the value
to the scenario (a pydantic model validated on assignment); the simulation reads its
parameters from the scenario every step, so the change takes effect on the next step.
Slider ranges run from the field's lower bound (or a twentieth of the start value for
strictly positive fields) to four times the start value, or the field's upper bound
(``field_of_view`` <= 360 degrees) when that is lower.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import annotated_types
import pygame
from pydantic import BaseModel, ValidationError

SKIPPED = {"tol", "max_iter"}  # stopping criteria, not rule parameters one plays with
PANEL_WIDTH = 250
ROW_HEIGHT = 34
TRACK_HEIGHT = 6


def get_path(model: BaseModel, path: str):
    """``get_path(sc, "rules.separation.weight")`` -> sc.rules.separation.weight."""
    obj = model
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def set_path(model: BaseModel, path: str, value) -> None:
    """Assign through a dotted path (validated by pydantic on assignment)."""
    *parents, last = path.split(".")
    obj = model
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


_LOWER = ((annotated_types.Gt, "gt", True), (annotated_types.Ge, "ge", False))
_UPPER = ((annotated_types.Lt, "lt", True), (annotated_types.Le, "le", False))


def _bounds_in(metadata, kinds=_LOWER) -> tuple[float | None, bool]:
    for meta in metadata:
        for cls, attr, strict in kinds:
            if isinstance(meta, cls):
                return float(getattr(meta, attr)), strict
        inner = getattr(meta, "metadata", None)  # a pydantic FieldInfo inside Annotated
        if inner:
            found = _bounds_in(inner, kinds)
            if found[0] is not None:
                return found
    return None, False


def _lower_bound(field, kinds=_LOWER) -> tuple[float | None, bool]:
    """(bound, strict) from a pydantic field's ``gt``/``ge`` metadata, also inside ``X | None``;
    (None, False) when unbounded. ``kinds=_UPPER`` reads ``lt``/``le`` instead."""
    found = _bounds_in(field.metadata, kinds)
    if found[0] is not None:
        return found
    for arg in typing.get_args(field.annotation):
        found = _bounds_in(typing.get_args(arg)[1:], kinds)
        if found[0] is not None:
            return found
    return None, False


@dataclass
class Param:
    """One tunable number: its dotted path in the scenario and its slider range."""

    path: str
    lo: float
    hi: float
    integer: bool = False

    @property
    def label(self) -> str:
        parts = self.path.split(".")
        return " ".join(parts[1:]) if parts[0] == "rules" else ".".join(parts)


def _param(path: str, field, value) -> Param:
    integer = isinstance(value, int)
    bound, strict = _lower_bound(field)
    if bound is None:
        lo = 0.0 if value >= 0 else 4.0 * value
    elif strict:
        lo = bound + (abs(value) / 20 if value > bound else 1e-3)
    else:
        lo = bound
    if integer:
        lo = float(int(lo) + (1 if strict and int(lo) == bound else 0))
    hi = max(4.0 * abs(value), lo + (1.0 if integer else 1e-3), 1.0 if value == 0 else 0.0)
    top, _ = _lower_bound(field, _UPPER)
    if top is not None:
        hi = min(hi, top)   # e.g. field_of_view <= 360 degrees, max_turn <= 180
    return Param(path, lo, hi, integer)


def tunable_parameters(scenario) -> list[Param]:
    """The scenario's numeric rule parameters (and agents.max_speed / max_force when set)."""
    params: list[Param] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            path = f"{prefix}.{name}"
            if isinstance(value, BaseModel):
                walk(value, path)
            elif name == "field_of_view" and getattr(model, "formulation", None) == "netlogo":
                continue   # NetLogo's turtles see all around: not a parameter of that model
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and name not in SKIPPED:
                params.append(_param(path, field, value))

    walk(scenario.rules, "rules")
    for name in ("max_speed", "max_force"):
        value = getattr(scenario.agents, name)
        if value is not None:
            p = _param(f"agents.{name}", type(scenario.agents).model_fields[name], value)
            if name == "max_speed":  # the scenario must stay valid: min_speed <= max_speed
                p.lo = max(p.lo, scenario.agents.min_speed)
            params.append(p)
    return params


def _round(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


class Slider:
    """A horizontal slider for one ``Param`` inside ``rect`` (track plus label above it)."""

    def __init__(self, param: Param, rect: pygame.Rect):
        self.param = param
        self.rect = rect
        self.track = pygame.Rect(rect.x + 8, rect.bottom - TRACK_HEIGHT - 6, rect.width - 16, TRACK_HEIGHT)

    def x_for(self, value: float) -> int:
        """The screen x of ``value`` on the track."""
        p = self.param
        t = (value - p.lo) / (p.hi - p.lo)
        return round(self.track.x + min(1.0, max(0.0, t)) * (self.track.width - 1))

    def value_at(self, x: float) -> float:
        """The value under screen x (clamped to the range; rounded to 3 significant digits)."""
        p = self.param
        t = min(1.0, max(0.0, (x - self.track.x) / max(1, self.track.width - 1)))
        value = p.lo + t * (p.hi - p.lo)
        return float(round(value)) if p.integer else min(p.hi, max(p.lo, _round(value)))

    def hit(self, pos) -> bool:
        """True when ``pos`` is on the track (with a few pixels of slack)."""
        return self.track.inflate(8, 16).collidepoint(pos)


class Panel:
    """The side panel: one slider per tunable parameter, at the right edge of the screen.

    ``press(pos)`` / ``drag(pos)`` / ``release()`` come from mouse events; they assign the
    value under the pointer to the scenario and return the path changed (or None).
    """

    def __init__(self, scenario, screen_size: tuple[int, int], visible: bool = True):
        self.scenario = scenario
        self.visible = visible
        self.params = tunable_parameters(scenario)
        self.active: Slider | None = None
        self.layout(screen_size)

    def layout(self, screen_size: tuple[int, int]) -> None:
        width, _ = screen_size
        self.rect = pygame.Rect(width - PANEL_WIDTH, 0, PANEL_WIDTH, 30 + ROW_HEIGHT * len(self.params) + 28)
        self.sliders = [Slider(p, pygame.Rect(self.rect.x, 26 + i * ROW_HEIGHT, PANEL_WIDTH, ROW_HEIGHT))
                        for i, p in enumerate(self.params)]

    def slider(self, path: str) -> Slider:
        return next(s for s in self.sliders if s.param.path == path)

    def contains(self, pos) -> bool:
        return self.visible and self.rect.collidepoint(pos)

    def set_value(self, slider: Slider, value: float) -> bool:
        value = int(value) if slider.param.integer else float(value)
        try:
            set_path(self.scenario, slider.param.path, value)
        except ValidationError:
            return False
        return True

    def press(self, pos) -> str | None:
        if not self.contains(pos):
            return None
        for s in self.sliders:
            if s.hit(pos):
                self.active = s
                return s.param.path if self.set_value(s, s.value_at(pos[0])) else None
        return None

    def drag(self, pos) -> str | None:
        if self.active is None:
            return None
        s = self.active
        return s.param.path if self.set_value(s, s.value_at(pos[0])) else None

    def release(self) -> None:
        self.active = None

    def draw(self, surface: pygame.Surface, font) -> None:
        if not self.visible:
            return
        shade = pygame.Surface(self.rect.size, pygame.SRCALPHA)
        shade.fill((0, 0, 0, 170))
        surface.blit(shade, self.rect.topleft)
        surface.blit(font.render("parameters (Tab hides)", True, (200, 205, 215)), (self.rect.x + 8, 6))
        for s in self.sliders:
            value = get_path(self.scenario, s.param.path)
            surface.blit(font.render(f"{s.param.label}: {value:.4g}", True, (225, 228, 235)), (s.rect.x + 8, s.rect.y + 2))
            pygame.draw.rect(surface, (80, 86, 104), s.track, border_radius=3)
            filled = s.track.copy()
            filled.width = max(1, s.x_for(value) - s.track.x)
            pygame.draw.rect(surface, (79, 195, 247) if s is not self.active else (255, 193, 7), filled,
                             border_radius=3)
            pygame.draw.circle(surface, (235, 238, 245), (s.x_for(value), s.track.centery), 6)
        foot = self.rect.bottom - 22
        surface.blit(font.render("P: save as scenario YAML", True, (170, 175, 190)), (self.rect.x + 8, foot))
