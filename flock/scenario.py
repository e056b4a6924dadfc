"""Scenarios: YAML files loaded with ``yaml.safe_load`` and validated into typed models.

A scenario says what world the agents live in, how many there are and where they
start, which rules move them, and how the run goes. Every problem is a
``ScenarioError`` naming the file, the key path, the value and what was expected;
unknown keys suggest the closest known key. Nothing runs on a half-valid file.

    world:   dims, size, origin, boundary (wrap | soft | reflect | open), wall_force
    agents:  name (group 0, "flock"), count, position / velocity initialisers, max_speed, min_speed, max_force
    species: more groups 1.. (name, count, initialisers, limits, optional own rules)
    interactions: flock_across_groups, flee [{prey, predator, radius, weight}],
             chase [{predator, prey, radius, weight, mode centre | nearest}]
    obstacles: [{kind circle | sphere: center, radius} | {kind segment (2D): a, b}
             | {kind plane (3D): point, normal}]
    attractors: [{position | path + speed, strength (< 0 repels), radius}]
    rules:   formulation seed | reynolds (cohesion/alignment/separation: weight, radius;
             wander; avoidance: weight, lookahead)
             or meanshift (kernel, bandwidth, radius, truncate, tol, max_iter)
             or circles (radius, repulse: FLAME GPU 2's circles benchmark)
    run:     steps, dt, seed, device, dtype, backend, threads
    metrics: every, nn_sample
    render:  hints for the window and frames
"""

from __future__ import annotations

import copy
import difflib
import os
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ScenarioError

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


# ---------------------------------------------------------------- world


class WorldSpec(_Model):
    """The box [origin, origin + size) and its boundary."""

    dims: Literal[2, 3] = 2
    size: list[PositiveFloat]
    origin: list[float] | None = None
    boundary: Literal["wrap", "soft", "reflect", "open"] = "wrap"
    wall_force: NonNegFloat = 1.0
    wall_margin: NonNegFloat = 0.0


# ---------------------------------------------------------------- initial state


class UniformInit(_Model):
    """Uniform in the box [low, high) (default: the whole world box)."""

    kind: Literal["uniform"]
    low: list[float] | None = None
    high: list[float] | None = None


class BlobsInit(_Model):
    """Gaussian blobs: ``centers`` given, or ``n_blobs`` drawn uniformly in [center_low, center_high]
    at least ``min_separation`` apart; ``per_blob`` points each with per-axis ``variance``."""

    kind: Literal["blobs"]
    centers: list[list[float]] | None = None
    n_blobs: Annotated[int, Field(ge=1)] | None = None
    per_blob: Annotated[int, Field(ge=1)]
    variance: PositiveFloat = 5.0
    center_low: list[float] | None = None
    center_high: list[float] | None = None
    min_separation: NonNegFloat = 0.0


class FileInit(_Model):
    """Read from a ``.npy`` or ``.csv`` file, one row per agent (path relative to the scenario)."""

    kind: Literal["file"]
    path: str


class ZeroInit(_Model):
    kind: Literal["zero"]


class NormalInit(_Model):
    """Each component normal with mean 0 and standard deviation ``std``."""

    kind: Literal["normal"]
    std: PositiveFloat = 1.0


class RandomDirectionInit(_Model):
    """Uniformly random direction, fixed ``speed``."""

    kind: Literal["random_direction"]
    speed: PositiveFloat = 1.0


PositionInit = Annotated[Union[UniformInit, BlobsInit, FileInit], Field(discriminator="kind")]
VelocityInit = Annotated[Union[ZeroInit, UniformInit, NormalInit, RandomDirectionInit, FileInit],
                         Field(discriminator="kind")]


class AgentsSpec(_Model):
    """How many agents, where they start, how fast they may go; ``name`` names group 0 ("flock")."""

    name: str | None = None
    count: Annotated[int, Field(ge=0)] | None = None
    position: PositionInit = Field(default_factory=lambda: UniformInit(kind="uniform"))
    velocity: VelocityInit = Field(default_factory=lambda: ZeroInit(kind="zero"))
    max_speed: PositiveFloat | None = None
    min_speed: NonNegFloat = 0.0
    max_force: PositiveFloat | None = None


# ---------------------------------------------------------------- rules


class AvoidanceSpec(_Model):
    """Obstacle look-ahead: agents look ``lookahead`` world units along their velocity and steer
    laterally away from an obstacle the path would hit (Reynolds steering, times ``weight``)."""

    weight: NonNegFloat = 1.0
    lookahead: PositiveFloat = 10.0


class RuleSpec(_Model):
    """One boid rule: its weight, the radius within which it sees neighbors, and (netlogo
    formulation) the most it may turn the heading per step, in degrees."""

    weight: NonNegFloat = 1.0
    radius: PositiveFloat
    max_turn: Annotated[float, Field(ge=0, le=180)] | None = None


class BoidRules(_Model):
    """seed: the JavaScript boids post exactly; reynolds: Reynolds/OpenSteer steering forces;
    mesa: Mesa 3's boid_flockers example; netlogo: NetLogo's Flocking model (2D).

    mesa and netlogo move at the constant speed ``agents.max_speed`` and see neighbors within
    ``cohesion.radius`` (their single vision); ``separation.radius`` is the minimum separation.
    mesa reads the weights as cohere / match / separate factors; netlogo reads ``max_turn``.

    ``field_of_view`` (degrees, default 360: all around) blinds cohesion, alignment and
    separation behind the agent: a neighbor counts only within field_of_view / 2 of the
    agent's velocity (flee and chase still see all around).
    """

    formulation: Literal["seed", "reynolds", "mesa", "netlogo"]
    cohesion: RuleSpec
    alignment: RuleSpec
    separation: RuleSpec
    field_of_view: Annotated[float, Field(gt=0, le=360)] = 360.0
    wander: NonNegFloat | None = None
    avoidance: AvoidanceSpec | None = None


class MeanShiftRules(_Model):
    """Every point moves to the kernel-weighted mean of all points (one step = one iteration).

    ``radius`` truncates the Gaussian (so the grid backend applies) or is the support of the
    triangular/flat kernels (default: the bandwidth). ``truncate: true`` truncates the
    Gaussian at 3 x bandwidth unless a radius is given.
    """

    formulation: Literal["meanshift"]
    kernel: Literal["gaussian", "triangular", "flat"] = "gaussian"
    bandwidth: PositiveFloat
    radius: PositiveFloat | None = None
    truncate: bool = False
    tol: NonNegFloat = 1e-6
    max_iter: Annotated[int, Field(ge=1)] = 100


class CirclesRules(_Model):
    """FLAME GPU 2's circles benchmark: each agent moves by the mean over neighbors at
    0 < d < radius of repulse * sin(-2 pi d / radius) (x_j - x_i) / d."""

    formulation: Literal["circles"]
    radius: PositiveFloat = 2.0
    repulse: float = 0.05


Rules = Annotated[Union[BoidRules, MeanShiftRules, CirclesRules], Field(discriminator="formulation")]
CONSTANT_SPEED_FORMULATIONS = ("mesa", "netlogo")


# ---------------------------------------------------------------- species, interactions, world features


class SpeciesSpec(AgentsSpec):
    """One more group (species) of agents, after the base ``agents`` group 0. Limits left out are
    the base group's; ``rules`` (same formulation as the top-level rules) defaults to those."""

    name: str
    rules: BoidRules | None = None


class FleeSpec(_Model):
    """Prey steer away from the predators they see within ``radius``."""

    prey: str
    predator: str
    radius: PositiveFloat
    weight: NonNegFloat = 1.0


class ChaseSpec(_Model):
    """Predators steer toward the centre of (or the nearest of) the prey they see within ``radius``."""

    predator: str
    prey: str
    radius: PositiveFloat
    weight: NonNegFloat = 1.0
    mode: Literal["centre", "nearest"] = "centre"


class InteractionsSpec(_Model):
    """Between groups: cohesion/alignment only within a group unless ``flock_across_groups``;
    separation always from everyone."""

    flock_across_groups: bool = False
    flee: list[FleeSpec] = Field(default_factory=list)
    chase: list[ChaseSpec] = Field(default_factory=list)


class SphereObstacle(_Model):
    """A solid circle (2D) or sphere (3D)."""

    kind: Literal["circle", "sphere"]
    center: list[float]
    radius: PositiveFloat


class SegmentObstacle(_Model):
    """A thin 2D wall from ``a`` to ``b`` that agents may not cross."""

    kind: Literal["segment"]
    a: list[float]
    b: list[float]


class PlaneObstacle(_Model):
    """A 3D wall: the half-space behind ``normal`` (dot(x - point, normal) < 0) is solid."""

    kind: Literal["plane"]
    point: list[float]
    normal: list[float]


Obstacle = Annotated[Union[SphereObstacle, SegmentObstacle, PlaneObstacle], Field(discriminator="kind")]


class AttractorSpec(_Model):
    """A point force (``flock.forces.PointForce``): fixed at ``position``, or moving at ``speed``
    along the closed polyline ``path``; ``strength`` < 0 repels; only within ``radius`` if given."""

    position: list[float] | None = None
    path: list[list[float]] | None = None
    speed: NonNegFloat = 1.0
    strength: float
    radius: PositiveFloat | None = None


# ---------------------------------------------------------------- run, metrics, render


class RunSpec(_Model):
    steps: Annotated[int, Field(ge=0)] = 1000
    dt: PositiveFloat = 1.0
    seed: Annotated[int, Field(ge=0)] = 0
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    backend: Literal["auto", "dense", "grid", "fused", "triton", "numba"] = "auto"
    threads: Annotated[int, Field(ge=1)] | None = None   # CPU threads (torch, numba); None: flock.threads


class MetricsSpec(_Model):
    """Metrics are recorded every ``every`` steps; the nearest-neighbor distance is estimated
    from at most ``nn_sample`` agents."""

    every: Annotated[int, Field(ge=1)] = 1
    nn_sample: Annotated[int, Field(ge=1)] = 2000


class RenderSpec(_Model):
    """Hints for the window and headless frames."""

    width: Annotated[int, Field(ge=64)] = 1000
    height: Annotated[int, Field(ge=64)] = 600
    fps: Annotated[int, Field(ge=1)] = 60
    steps_per_frame: Annotated[int, Field(ge=1)] = 1
    trail: Annotated[int, Field(ge=0)] = 0
    color_by: Literal["group", "speed", "heading", "mode"] = "group"
    agent_size: PositiveFloat = 6.0


class Scenario(_Model):
    """A whole validated scenario. ``source`` is the file it came from (None if built in code)."""

    name: str | None = None
    description: str | None = None
    world: WorldSpec
    agents: AgentsSpec
    rules: Rules
    species: list[SpeciesSpec] | None = None
    interactions: InteractionsSpec | None = None
    obstacles: list[Obstacle] | None = None
    attractors: list[AttractorSpec] | None = None
    run: RunSpec = Field(default_factory=RunSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    render: RenderSpec = Field(default_factory=RenderSpec)

    _source: Path | None = None

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def is_meanshift(self) -> bool:
        return self.rules.formulation == "meanshift"

    @property
    def is_boids(self) -> bool:
        return self.rules.formulation not in ("meanshift", "circles")

    def base_dir(self) -> Path:
        return self._source.parent if self._source is not None else Path.cwd()

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``validate_scenario`` turns back into an equal scenario."""
        return self.model_dump(mode="python", exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------- errors


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tagged_union(field) -> dict[str, type] | None:
    """{tag: model} when ``field`` is a discriminated union of models, else None."""
    if not field.discriminator:
        return None
    variants = {}
    for model in typing.get_args(field.annotation):
        tag_field = model.model_fields[field.discriminator]
        for tag in typing.get_args(tag_field.annotation):
            variants[str(tag)] = model
    return variants


def _model_of(annotation) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (through Optional/Annotated), if exactly one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [m for a in typing.get_args(annotation) if (m := _model_of(a)) is not None]
    return models[0] if len(models) == 1 else None


def _walk(loc: tuple) -> tuple[list[str], type[BaseModel] | None]:
    """Display path of a pydantic error location (union tags dropped) and the model it ends in."""
    model: type[BaseModel] | None = Scenario
    path: list[str] = []
    items = list(loc)
    i = 0
    while i < len(items):
        key = items[i]
        path.append(str(key))
        i += 1
        if model is None or key not in model.model_fields:
            model = None
            continue
        field = model.model_fields[key]
        annotation = field.annotation
        variants = _tagged_union(field)
        if variants is not None and i < len(items) and str(items[i]) in variants:
            model = variants[str(items[i])]
            i += 1
        else:
            model = _model_of(annotation)
    return path, model


def _message(error: dict) -> tuple[str, str]:
    """(key path, message) for one pydantic error."""
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        path, parent = _walk(loc[:-1])
        key = str(loc[-1])
        known = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; known keys: {', '.join(known)}" if known else "")
        return ".".join(path + [key]), f"unknown key '{key}'{hint}"
    path, _ = _walk(loc)
    where = ".".join(path) or "(top level)"
    if kind == "missing":
        return where, "required key is missing"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        bound = f"{bound:g}" if isinstance(bound, (int, float)) else bound
        return where, f"expected a number {op} {bound}, got {_describe(value)}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        what = "an integer" if kind.startswith("int") else "a number"
        return where, f"expected {what}, got {_describe(value)}"
    if kind == "literal_error":
        return where, f"expected {ctx.get('expected')}, got {_describe(value)}"
    if kind == "union_tag_invalid":
        return where, f"expected {ctx.get('discriminator')} to be one of {ctx.get('expected_tags')}, got {_describe(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return where, f"missing the key {ctx.get('discriminator')} that says which kind this is"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        what = "a list" if kind == "list_type" else "a mapping of keys"
        return where, f"expected {what}, got {_describe(value)}"
    if kind in ("string_type", "bool_type"):
        what = "a string" if kind == "string_type" else "true or false"
        return where, f"expected {what}, got {_describe(value)}"
    return where, f"{error['msg']}, got {_describe(value)}"


def _raise(origin: str, problems: list[tuple[str, str]]) -> typing.NoReturn:
    lines = [f"{origin}: {path}: {msg}" for path, msg in problems]
    raise ScenarioError("\n".join(lines), problems=lines)


# ---------------------------------------------------------------- consistency


def _check_vector(problems, path: str, value, dim: int):
    if value is not None and len(value) != dim:
        problems.append((path, f"expected {dim} numbers (world.dims = {dim}), got {_describe(value)}"))


def _check_agents(problems, sc: Scenario, agents: AgentsSpec, prefix: str, base_dir: Path) -> None:
    dim = sc.world.dims
    for which in ("position", "velocity"):
        init = getattr(agents, which)
        where = f"{prefix}.{which}"
        if isinstance(init, UniformInit):
            _check_vector(problems, f"{where}.low", init.low, dim)
            _check_vector(problems, f"{where}.high", init.high, dim)
            if init.low is not None and init.high is not None and len(init.low) == len(init.high):
                if any(lo >= hi for lo, hi in zip(init.low, init.high)):
                    problems.append((f"{where}.high", f"expected every high > low ({init.low}), got {init.high}"))
            if which == "velocity" and (init.low is None or init.high is None):
                problems.append((where, "a uniform velocity needs both low and high"))
        elif isinstance(init, BlobsInit):
            if init.centers is None and init.n_blobs is None:
                problems.append((where, "blobs need either 'centers' or 'n_blobs'"))
            if init.centers is not None:
                for k, c in enumerate(init.centers):
                    _check_vector(problems, f"{where}.centers[{k}]", c, dim)
                if init.n_blobs is not None and init.n_blobs != len(init.centers):
                    problems.append((f"{where}.n_blobs", f"expected {len(init.centers)} (the number of centers), got {init.n_blobs}"))
            _check_vector(problems, f"{where}.center_low", init.center_low, dim)
            _check_vector(problems, f"{where}.center_high", init.center_high, dim)
            n_blobs = len(init.centers) if init.centers is not None else (init.n_blobs or 0)
            total = n_blobs * init.per_blob
            if agents.count is not None and agents.count != total:
                problems.append((f"{prefix}.count", f"expected {total} (n_blobs x per_blob), got {agents.count}"))
        elif isinstance(init, FileInit):
            path = base_dir / init.path
            if path.suffix not in (".npy", ".csv"):
                problems.append((f"{where}.path", f"expected a .npy or .csv file, got {_describe(init.path)}"))
            elif not path.is_file():
                problems.append((f"{where}.path", f"file not found: {path}"))
    if isinstance(agents.position, (UniformInit,)) and agents.count is None:
        problems.append((f"{prefix}.count", "required key is missing (a uniform placement needs a count)"))
    max_speed = agents.max_speed if agents.max_speed is not None else sc.agents.max_speed
    if max_speed is not None and agents.min_speed > max_speed:
        problems.append((f"{prefix}.min_speed", f"expected at most max_speed ({max_speed}), got {agents.min_speed}"))


def _check_world_features(sc: Scenario) -> list[tuple[str, str]]:
    """Species, interactions, obstacles, attractors and wander against the rest of the scenario."""
    problems: list[tuple[str, str]] = []
    dim = sc.world.dims
    extended = [key for key in ("species", "interactions", "obstacles", "attractors")
                if getattr(sc, key) is not None]
    if isinstance(sc.rules, BoidRules) and (sc.rules.wander is not None or sc.rules.avoidance is not None):
        extended.append("rules.wander/avoidance")
    if not extended:
        return problems
    if not isinstance(sc.rules, BoidRules):
        problems.append((extended[0], f"needs boid rules (seed, reynolds, mesa, netlogo), got the "
                                      f"{sc.rules.formulation} formulation"))
        return problems
    form = sc.rules.formulation
    names = [sc.agents.name or "flock"] + [sp.name for sp in sc.species or []]
    if sc.species is not None or sc.interactions is not None:
        if form not in ("seed", "reynolds"):
            problems.append(("species" if sc.species is not None else "interactions",
                             f"groups run with the seed and reynolds formulations, got {form}"))
        for k, name in enumerate(names):
            if name in names[:k]:
                problems.append((f"species[{k - 1}].name", f"expected a name not used yet ({names[:k]}), got {name!r}"))
        all_rules = [("rules", sc.rules)]
        for k, sp in enumerate(sc.species or []):
            if sp.rules is not None:
                all_rules.append((f"species[{k}].rules", sp.rules))
                if sp.rules.formulation != form:
                    problems.append((f"species[{k}].rules.formulation",
                                     f"expected {form!r} (the top-level formulation), got {sp.rules.formulation!r}"))
            speed = sp.max_speed if sp.max_speed is not None else sc.agents.max_speed
            if form == "reynolds" and speed is None:
                problems.append((f"species[{k}].max_speed", "required key is missing (the reynolds rules need a speed)"))
        inter = sc.interactions or InteractionsSpec()
        for kind, items in (("flee", inter.flee), ("chase", inter.chase)):
            for k, item in enumerate(items):
                for role in ("prey", "predator"):
                    if getattr(item, role) not in names:
                        problems.append((f"interactions.{kind}[{k}].{role}",
                                         f"expected a group name ({', '.join(names)}), got {getattr(item, role)!r}"))
        if sc.world.boundary == "wrap" and sc.species:
            quarter = min(sc.world.size) / 4
            for where, rules in all_rules:
                for rule in ("cohesion", "alignment", "separation"):
                    r = getattr(rules, rule).radius
                    if r > quarter:
                        problems.append((f"{where}.{rule}.radius", f"groups in a wrapped world see at most a quarter "
                                                                   f"of the world: expected <= {quarter:g}, got {r}"))
            for kind, items in (("flee", inter.flee), ("chase", inter.chase)):
                for k, item in enumerate(items):
                    if item.radius > quarter:
                        problems.append((f"interactions.{kind}[{k}].radius",
                                         f"expected <= {quarter:g} (a quarter of the wrapped world), got {item.radius}"))
    for k, ob in enumerate(sc.obstacles or []):
        where = f"obstacles[{k}]"
        if isinstance(ob, SphereObstacle):
            _check_vector(problems, f"{where}.center", ob.center, dim)
        elif isinstance(ob, SegmentObstacle):
            if dim != 2:
                problems.append((f"{where}.kind", "segment walls are 2D; use a plane in 3D"))
            _check_vector(problems, f"{where}.a", ob.a, dim)
            _check_vector(problems, f"{where}.b", ob.b, dim)
            if ob.a == ob.b:
                problems.append((f"{where}.b", f"expected an end different from a ({ob.a}), got {ob.b}"))
        else:
            if dim != 3:
                problems.append((f"{where}.kind", "plane walls are 3D; use a segment in 2D"))
            _check_vector(problems, f"{where}.point", ob.point, dim)
            _check_vector(problems, f"{where}.normal", ob.normal, dim)
            if not any(ob.normal):
                problems.append((f"{where}.normal", "expected a non-zero vector, got all zeros"))
    for k, at in enumerate(sc.attractors or []):
        where = f"attractors[{k}]"
        if (at.position is None) == (at.path is None):
            problems.append((where, "expected exactly one of 'position' or 'path'"))
        _check_vector(problems, f"{where}.position", at.position, dim)
        for j, point in enumerate(at.path or []):
            _check_vector(problems, f"{where}.path[{j}]", point, dim)
        if at.path is not None and len(at.path) < 2:
            problems.append((f"{where}.path", f"expected at least 2 points, got {len(at.path)}"))
    return problems


def _check_consistency(sc: Scenario, base_dir: Path) -> list[tuple[str, str]]:
    """Cross-key problems pydantic cannot see: lengths against dims, counts, files."""
    problems: list[tuple[str, str]] = []
    dim = sc.world.dims
    _check_vector(problems, "world.size", sc.world.size, dim)
    _check_vector(problems, "world.origin", sc.world.origin, dim)
    _check_agents(problems, sc, sc.agents, "agents", base_dir)
    for k, sp in enumerate(sc.species or []):
        _check_agents(problems, sc, sp, f"species[{k}]", base_dir)
    if isinstance(sc.rules, BoidRules):
        form = sc.rules.formulation
        if form in ("reynolds", "mesa", "netlogo") and sc.agents.max_speed is None:
            problems.append(("agents.max_speed", f"required key is missing (the {form} rules need a speed)"))
        if form in CONSTANT_SPEED_FORMULATIONS and sc.rules.alignment.radius != sc.rules.cohesion.radius:
            problems.append(("rules.alignment.radius", f"{form} has one vision radius: expected "
                             f"{sc.rules.cohesion.radius} (rules.cohesion.radius), got {sc.rules.alignment.radius}"))
        if form == "netlogo":
            if sc.rules.field_of_view != 360:
                problems.append(("rules.field_of_view", "NetLogo's Flocking turtles see all around: expected "
                                 f"360 with the netlogo formulation, got {sc.rules.field_of_view:g}"))
            if sc.world.dims != 2:
                problems.append(("world.dims", "the netlogo formulation is 2D: expected 2, got 3"))
            for rule in ("cohesion", "alignment", "separation"):
                if getattr(sc.rules, rule).max_turn is None:
                    problems.append((f"rules.{rule}.max_turn", "required key is missing (netlogo turns by at most "
                                     "max_turn degrees per rule)"))
    elif isinstance(sc.rules, MeanShiftRules):
        if sc.rules.kernel != "gaussian" and sc.rules.radius is not None and sc.rules.radius != sc.rules.bandwidth:
            problems.append(("rules.radius", f"the {sc.rules.kernel} kernel's support is the bandwidth; "
                                             f"leave radius out or equal to {sc.rules.bandwidth}, got {sc.rules.radius}"))
    problems.extend(_check_world_features(sc))
    if sc.run.device not in ("auto", "cpu", "cuda") and not sc.run.device.startswith("cuda:"):
        problems.append(("run.device", f"expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {_describe(sc.run.device)}"))
    return problems


# ---------------------------------------------------------------- entry points


def validate_scenario(data: Any, *, source: str | Path | None = None, label: str | None = None) -> Scenario:
    """A ``Scenario`` from plain data (as YAML gives), or a ``ScenarioError`` listing every problem.

    Args:
        data: a mapping, as ``yaml.safe_load`` returns.
        source: the file the data came from; names it in errors and anchors relative paths.
        label: how errors name the origin, when not just ``source`` (e.g. with overrides).
    """
    origin = label or (str(source) if source is not None else "<scenario>")
    if not isinstance(data, dict):
        _raise(origin, [("(top level)", f"expected a mapping of keys (world, agents, rules, ...), got {_describe(data)}")])
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        _raise(origin, [_message(e) for e in exc.errors()])
    if source is not None:
        sc._source = Path(source).resolve()
    problems = _check_consistency(sc, sc.base_dir())
    if problems:
        _raise(origin, problems)
    return sc


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ScenarioError(f"{path}: file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(parse)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}: {where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not a UTF-8 text file ({exc.reason})") from None


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` laid over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _fix_relative_paths(data: dict, base_file: Path, child_dir: Path) -> dict:
    """Rewrite a base file's relative initialiser paths so they stay right from the child's folder."""
    groups = [data.get("agents")] + (data["species"] if isinstance(data.get("species"), list) else [])
    for agents in groups:
        if not isinstance(agents, dict):
            continue
        for which in ("position", "velocity"):
            init = agents.get(which)
            if isinstance(init, dict) and init.get("kind") == "file" and isinstance(init.get("path"), str):
                target = (base_file.parent / init["path"]).resolve()
                init["path"] = os.path.relpath(target, child_dir)
    return data


def read_scenario_data(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The YAML mapping of ``path`` with its ``extends:`` chain resolved (child keys win).

    Raises:
        ScenarioError: missing file, bad YAML, a non-mapping, or an ``extends`` cycle.
    """
    path = Path(path)
    real = path.resolve()
    if real in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, real))
        raise ScenarioError(f"{path}: extends: cycle: {cycle}")
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: (top level): expected a mapping of keys (world, agents, rules, ...), "
                            f"got {_describe(data)}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ScenarioError(f"{path}: extends: expected the path of a scenario file, got {_describe(parent)}")
    base_path = path.parent / parent
    if not base_path.is_file():
        raise ScenarioError(f"{path}: extends: file not found: {base_path}")
    base = read_scenario_data(base_path, (*_chain, real))
    base = _fix_relative_paths(base, base_path, path.parent)
    return deep_merge(base, data)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ScenarioError(f"--set: expected key.path=value, got {_describe(item)}")
    key, text = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ScenarioError(f"--set: expected key.path=value, got {_describe(item)}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``data`` with each ``key.path=value`` applied (values parsed as YAML; list items by index).

    Raises:
        ScenarioError: a malformed override or one that walks into a number or string.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        parts, value = _parse_override(item)
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError(f"--set {item}: {where}: expected an index below {len(node)}, got {part!r}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    elif not isinstance(node[part], (dict, list)):
                        raise ScenarioError(f"--set {item}: {where}: is a value, not a mapping")
                    node = node[part]
            else:
                raise ScenarioError(f"--set {item}: {'.'.join(parts[:depth])}: is a value, not a mapping")
    return data


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read a YAML scenario file with ``yaml.safe_load``, resolve ``extends:``, apply
    ``--set``-style overrides, and validate.

    Raises:
        ScenarioError: missing file, unreadable YAML, an extends cycle, or any invalid key/value
        (overrides are validated exactly like the file, with the same key paths).
    """
    path = Path(path)
    data = read_scenario_data(path)
    label = None
    if overrides:
        data = apply_overrides(data, overrides)
        label = f"{path} (with --set {' '.join(overrides)})"
    return validate_scenario(data, source=path, label=label)
