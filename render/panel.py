"""Panel: on-screen sliders bound to the scenario's numeric rule parameters.

Every number under ``scenario.rules`` (weights, radii, the mean shift bandwidth, ...),
``agents.max_speed`` / ``agents.max_force``, and with species each species' own rules and
limits and the flee / chase interactions, gets a slider named with the species it belongs
to ("predator: max speed"). Moving it assigns the value
to the scenario (a pydantic model validated on assignment); the simulation reads its
parameters from the scenario every step, so the change takes effect on the next step.
Slider ranges run from the field's lower bound (or a twentieth of the start value for
strictly positive fields) to four times the start value, or the field's upper bound
(``field_of_view`` <= 360 degrees) when that is lower.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass

import annotated_types
import pygame
from pydantic import BaseModel, ValidationError

from .layout import SLIDER_ROW as ROW_HEIGHT
from flock.formulations import RULES

SKIPPED = {"tol", "max_iter"}  # stopping criteria, not rule parameters one plays with
TRACK_HEIGHT = 6
RATE_RANGE = (0.5, 1000.0)   # steps per second of the speed slider (log scale); its right end is "max"
RATE_MAX_AT = 0.97           # slider fraction above which the pace is "max" (no limit)
PANEL_BG = (20, 23, 33)
LABEL_COLOR = (225, 228, 235)
DIM_COLOR = (170, 175, 190)
TRACK_COLOR = (80, 86, 104)
FILL_COLOR = (79, 195, 247)
ACTIVE_COLOR = (255, 193, 7)


def _child(obj, part: str):
    return obj[int(part)] if part.isdigit() else getattr(obj, part)


def get_path(model: BaseModel, path: str):
    """``get_path(sc, "rules.separation.weight")`` -> sc.rules.separation.weight; a number is a
    list index (``species.0.max_speed``)."""
    obj = model
    for part in path.split("."):
        obj = _child(obj, part)
    return obj


def set_path(model: BaseModel, path: str, value) -> None:
    """Assign through a dotted path (validated by pydantic on assignment)."""
    *parents, last = path.split(".")
    obj = model
    for part in parents:
        obj = _child(obj, part)
    setattr(obj, last, value)


_LOWER = ((annotated_types.Gt, "gt", True), (annotated_types.Ge, "ge", False))
_UPPER = ((annotated_types.Lt, "lt", True), (annotated_types.Le, "le", False))


def _all_bounds(metadata, kinds) -> list[tuple[float, bool]]:
    found = []
    for meta in metadata:
        for cls, attr, strict in kinds:
            if isinstance(meta, cls):
                found.append((float(getattr(meta, attr)), strict))
        inner = getattr(meta, "metadata", None)  # a pydantic FieldInfo inside Annotated
        if inner:
            found.extend(_all_bounds(inner, kinds))
    return found


def _bounds_in(metadata, kinds=_LOWER) -> tuple[float | None, bool]:
    """The tightest bound of ``kinds`` in ``metadata`` (a field may carry the schema's general
    finite range and its own, e.g. ge=-1e15 and ge=0: the slider takes 0)."""
    found = _all_bounds(metadata, kinds)
    if not found:
        return None, False
    return max(found) if kinds is _LOWER else min(found)


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
    """One tunable number: its dotted path in the scenario, its slider range, and the species
    it belongs to (None when the scenario has no species)."""

    path: str
    lo: float
    hi: float
    integer: bool = False
    owner: str | None = None

    @property
    def label(self) -> str:
        parts = [p for p in self.path.split(".") if not p.isdigit()]
        if parts[0] == "species":
            parts = parts[1:]
        if parts[0] == "interactions":   # the owner ("prey flees predator") says which
            parts = parts[2:]
        elif parts[0] in ("rules", "agents"):
            parts = parts[1:]
        text = " ".join(parts).replace("_", " ")
        return f"{self.owner}: {text}" if self.owner else text


def _param(path: str, field, value, owner: str | None = None) -> Param:
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
    return Param(path, lo, hi, integer, owner)


def _walk_rules(params: list[Param], model: BaseModel, prefix: str, owner: str | None) -> None:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}.{name}"
        if isinstance(value, BaseModel):
            _walk_rules(params, value, path, owner)
        elif name in getattr(RULES.get(getattr(model, "formulation", None), None), "fixed_fields", ()):
            continue   # e.g. NetLogo's turtles see all around: not a parameter of that model
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and name not in SKIPPED:
            params.append(_param(path, field, value, owner))


def _limits(params: list[Param], spec, prefix: str, owner: str | None) -> None:
    for name in ("max_speed", "max_force"):
        value = getattr(spec, name)
        if value is not None:
            p = _param(f"{prefix}.{name}", type(spec).model_fields[name], value, owner)
            if name == "max_speed":  # the scenario must stay valid: min_speed <= max_speed
                p.lo = max(p.lo, spec.min_speed)
            params.append(p)


def tunable_parameters(scenario) -> list[Param]:
    """The scenario's numeric rule parameters (and agents.max_speed / max_force when set); with
    species, each species' own rules and limits and the interactions' radii and weights too."""
    params: list[Param] = []
    species = scenario.species or []
    base = (scenario.agents.name or "flock") if species else None
    _walk_rules(params, scenario.rules, "rules", base)
    _limits(params, scenario.agents, "agents", base)
    for k, sp in enumerate(species):
        if sp.rules is not None:
            _walk_rules(params, sp.rules, f"species.{k}.rules", sp.name)
        _limits(params, sp, f"species.{k}", sp.name)
    inter = scenario.interactions
    for kind, verb in (("flee", "flees"), ("chase", "chases")):
        for k, item in enumerate(getattr(inter, kind, None) or []):
            owner = f"{item.prey} {verb} {item.predator}" if kind == "flee" else f"{item.predator} {verb} {item.prey}"
            for name in ("radius", "weight"):
                params.append(_param(f"interactions.{kind}.{k}.{name}", type(item).model_fields[name],
                                     getattr(item, name), owner))
    return params


def _round(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


class Slider:
    """A horizontal slider for one ``Param`` inside ``rect`` (track plus label above it)."""

    def __init__(self, param: Param, rect: pygame.Rect):
        self.param = param
        self.rect = rect
        self.track = pygame.Rect(rect.x + 8, rect.bottom - TRACK_HEIGHT - 6, rect.width - 16, TRACK_HEIGHT)

    def fraction(self, value: float) -> float:
        p = self.param
        return (value - p.lo) / (p.hi - p.lo)

    def x_for(self, value: float) -> int:
        """The screen x of ``value`` on the track."""
        t = self.fraction(value)
        return round(self.track.x + min(1.0, max(0.0, t)) * (self.track.width - 1))

    def _t_at(self, x: float) -> float:
        return min(1.0, max(0.0, (x - self.track.x) / max(1, self.track.width - 1)))

    def value_at(self, x: float) -> float:
        """The value under screen x (clamped to the range; rounded to 3 significant digits)."""
        p = self.param
        value = p.lo + self._t_at(x) * (p.hi - p.lo)
        return float(round(value)) if p.integer else min(p.hi, max(p.lo, _round(value)))

    def hit(self, pos) -> bool:
        """True when ``pos`` is on the track (with a few pixels of slack)."""
        return self.track.inflate(8, 16).collidepoint(pos)

    def draw(self, surface: pygame.Surface, font, value: float, text: str, active: bool = False) -> None:
        surface.blit(font.render(text, True, LABEL_COLOR), (self.rect.x + 8, self.rect.y + 2))
        pygame.draw.rect(surface, TRACK_COLOR, self.track, border_radius=3)
        x = self.x_for(value)
        filled = self.track.copy()
        filled.width = max(1, x - self.track.x)
        pygame.draw.rect(surface, ACTIVE_COLOR if active else FILL_COLOR, filled, border_radius=3)
        pygame.draw.circle(surface, (235, 238, 245), (x, self.track.centery), 6)


def format_rate(rate: float | None) -> str:
    """'2 steps/s', or 'max' for an unlimited pace."""
    return "max" if rate is None else f"{rate:.3g} steps/s"


class RateSlider(Slider):
    """A pace (steps, or recorded frames, per second) on a log scale over ``value_range``; the
    right end is "max" (None: no limit). ``value_at`` returns a rate or None."""

    def __init__(self, rect: pygame.Rect, value_range: tuple[float, float] = RATE_RANGE):
        super().__init__(Param("render.steps_per_second", *value_range), rect)

    def _logs(self) -> tuple[float, float]:
        return math.log(self.param.lo), math.log(self.param.hi)

    def fraction(self, value: float | None) -> float:
        if value is None:
            return 1.0
        lo, hi = self._logs()
        value = min(max(value, self.param.lo), self.param.hi)
        return (math.log(value) - lo) / (hi - lo) * RATE_MAX_AT

    def value_at(self, x: float) -> float | None:
        t = self._t_at(x)
        if t >= RATE_MAX_AT:
            return None
        lo, hi = self._logs()
        return _round(math.exp(lo + t / RATE_MAX_AT * (hi - lo)), 2)


class Panel:
    """The parameter sliders in the side panel, one per tunable parameter, in a list that
    scrolls (mouse wheel) when it is taller than its area.

    ``press(pos)`` / ``drag(pos)`` / ``release()`` come from mouse events; they assign the
    value under the pointer to the scenario and return the path changed (or None).
    """

    def __init__(self, scenario, area: pygame.Rect | None = None, visible: bool = True):
        self.scenario = scenario
        self.visible = visible
        self.params = tunable_parameters(scenario)
        self.active: Slider | None = None
        self.scroll = 0
        self.layout(area if area is not None else pygame.Rect(0, 0, 0, 0))

    @property
    def content_height(self) -> int:
        return ROW_HEIGHT * len(self.params)

    def layout(self, area: pygame.Rect | None) -> None:
        """Place the sliders in ``area`` (None: the panel is not shown)."""
        self.area = pygame.Rect(area) if area is not None else pygame.Rect(0, 0, 0, 0)
        self.scroll = max(0, min(self.scroll, self.content_height - self.area.height))
        top = self.area.y - self.scroll
        self.sliders = [Slider(p, pygame.Rect(self.area.x, top + i * ROW_HEIGHT, self.area.width, ROW_HEIGHT))
                        for i, p in enumerate(self.params)]

    def scroll_by(self, pixels: int) -> None:
        self.scroll += pixels
        self.layout(self.area)

    def slider(self, path: str) -> Slider:
        return next(s for s in self.sliders if s.param.path == path)

    def reveal(self, path: str) -> Slider:
        """Scroll the list so the slider of ``path`` is in view; returns it."""
        i = next(k for k, p in enumerate(self.params) if p.path == path)
        top, bottom = i * ROW_HEIGHT, (i + 1) * ROW_HEIGHT
        if top < self.scroll:
            self.scroll = top
        elif bottom > self.scroll + self.area.height:
            self.scroll = bottom - self.area.height
        self.layout(self.area)
        return self.slider(path)

    def contains(self, pos) -> bool:
        return self.visible and self.area.collidepoint(pos)

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
            if self.area.contains(s.rect) and s.hit(pos):
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
        """The sliders that lie wholly inside the area (the list is clipped to it)."""
        if not self.visible or self.area.height <= 0:
            return
        for s in self.sliders:
            if self.area.contains(s.rect):
                value = get_path(self.scenario, s.param.path)
                s.draw(surface, font, value, f"{s.param.label}: {value:.4g}", s is self.active)
        if self.content_height > self.area.height:
            self._draw_scrollbar(surface)

    def _draw_scrollbar(self, surface: pygame.Surface) -> None:
        area, total = self.area, self.content_height
        knob_h = max(12, area.height * area.height // total)
        y = area.y + (area.height - knob_h) * self.scroll // max(1, total - area.height)
        pygame.draw.rect(surface, TRACK_COLOR, (area.right - 4, y, 3, knob_h), border_radius=1)
