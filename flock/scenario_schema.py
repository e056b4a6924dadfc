"""Scenario schema: the pydantic models a scenario file is validated into.

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

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .names import (BACKEND_NAMES, BOID_FORMULATIONS, BOUNDARY_NAMES, DTYPE_NAMES, MAX_ABS_VALUE, MAX_COUNT, MAX_FPS,
                    MAX_PIXELS, MAX_SEED, MAX_TRAIL, MEANSHIFT_KERNEL_NAMES)

# Every number in a scenario is finite and at most MAX_ABS_VALUE in size, so that squared
# distances and sums stay finite in float32 (3.4e38) and NaN/inf never reach a step.
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]
PositiveFloat = Annotated[Number, Field(gt=0)]
NonNegFloat = Annotated[Number, Field(ge=0)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


# ---------------------------------------------------------------- world


class WorldSpec(_Model):
    """The box [origin, origin + size) and its boundary."""

    dims: Literal[2, 3] = 2
    size: list[PositiveFloat]
    origin: list[Number] | None = None
    boundary: Literal[BOUNDARY_NAMES] = "wrap"
    wall_force: NonNegFloat = 1.0
    wall_margin: NonNegFloat = 0.0


# ---------------------------------------------------------------- initial state


class UniformInit(_Model):
    """Uniform in the box [low, high) (default: the whole world box)."""

    kind: Literal["uniform"]
    low: list[Number] | None = None
    high: list[Number] | None = None


class BlobsInit(_Model):
    """Gaussian blobs: ``centers`` given, or ``n_blobs`` drawn uniformly in [center_low, center_high]
    at least ``min_separation`` apart; ``per_blob`` points each with per-axis ``variance``."""

    kind: Literal["blobs"]
    centers: list[list[Number]] | None = None
    n_blobs: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None = None
    per_blob: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    variance: PositiveFloat = 5.0
    center_low: list[Number] | None = None
    center_high: list[Number] | None = None
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
    count: Count | None = None
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
    max_turn: Annotated[Number, Field(ge=0, le=180)] | None = None


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

    formulation: Literal[BOID_FORMULATIONS]
    cohesion: RuleSpec
    alignment: RuleSpec
    separation: RuleSpec
    field_of_view: Annotated[Number, Field(gt=0, le=360)] = 360.0
    wander: NonNegFloat | None = None
    avoidance: AvoidanceSpec | None = None


class MeanShiftRules(_Model):
    """Every point moves to the kernel-weighted mean of all points (one step = one iteration).

    ``radius`` truncates the Gaussian (so the grid backend applies) or is the support of the
    triangular/flat kernels (default: the bandwidth). ``truncate: true`` truncates the
    Gaussian at ``GAUSSIAN_CUT_BANDWIDTHS`` (3) x bandwidth unless a radius is given.
    """

    formulation: Literal["meanshift"]
    kernel: Literal[MEANSHIFT_KERNEL_NAMES] = "gaussian"
    bandwidth: PositiveFloat
    radius: PositiveFloat | None = None
    truncate: bool = False
    tol: NonNegFloat = 1e-6
    max_iter: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 100


class CirclesRules(_Model):
    """FLAME GPU 2's circles benchmark: each agent moves by the mean over neighbors at
    0 < d < radius of repulse * sin(-2 pi d / radius) (x_j - x_i) / d."""

    formulation: Literal["circles"]
    radius: PositiveFloat = 2.0
    repulse: Number = 0.05


# ---------------------------------------------------------------- neural steering (flock.neural)

ACTIVATIONS = ("relu", "tanh", "identity")


class NeuralModelSpec(_Model):
    """The network: a stack of ``nn.Linear`` with ``activation`` between them (``flock.neural.build_mlp``)."""

    weights: str
    hidden: list[Annotated[int, Field(ge=1)]] | None = None
    activation: Literal["relu", "tanh", "identity"] | None = None


class NeuralRules(_Model):
    """One trained network steers every agent from its observation (``flock.neural.observe``)."""

    formulation: Literal["neural"]
    model: NeuralModelSpec
    view_radius: PositiveFloat
    separation_radius: PositiveFloat
    field_of_view: Annotated[float, Field(gt=0, le=360)] = 360.0
    max_force: PositiveFloat | None = None
    wander: NonNegFloat | None = None
    avoidance: AvoidanceSpec | None = None

    # a module plugged in from Python (flock.NeuralSteering(module).attach(scenario)) or the one
    # loaded from the weights file, cached; never part of the scenario's data
    _module: object | None = PrivateAttr(default=None)



Rules = Annotated[Union[BoidRules, MeanShiftRules, CirclesRules, NeuralRules], Field(discriminator="formulation")]


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
    center: list[Number]
    radius: PositiveFloat


class SegmentObstacle(_Model):
    """A thin 2D wall from ``a`` to ``b`` that agents may not cross."""

    kind: Literal["segment"]
    a: list[Number]
    b: list[Number]


class PlaneObstacle(_Model):
    """A 3D wall: the half-space behind ``normal`` (dot(x - point, normal) < 0) is solid."""

    kind: Literal["plane"]
    point: list[Number]
    normal: list[Number]


Obstacle = Annotated[Union[SphereObstacle, SegmentObstacle, PlaneObstacle], Field(discriminator="kind")]


class AttractorSpec(_Model):
    """A point force (``flock.forces.PointForce``): fixed at ``position``, or moving at ``speed``
    along the closed polyline ``path``; ``strength`` < 0 repels; only within ``radius`` if given."""

    position: list[Number] | None = None
    path: list[list[Number]] | None = None
    speed: NonNegFloat = 1.0
    strength: Number
    radius: PositiveFloat | None = None


# ---------------------------------------------------------------- run, metrics, render


class RunSpec(_Model):
    steps: Count = 1000
    dt: PositiveFloat = 1.0
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    device: str = "auto"
    dtype: Literal[DTYPE_NAMES] = "float32"
    backend: Literal[BACKEND_NAMES] = "auto"
    threads: Annotated[int, Field(ge=1, le=4096)] | None = None   # CPU threads (torch, numba); None: flock.threads


class MetricsSpec(_Model):
    """Metrics are recorded every ``every`` steps; the nearest-neighbor distance is estimated
    from at most ``nn_sample`` agents."""

    every: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    nn_sample: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 2000


class RenderSpec(_Model):
    """Hints for the window and headless frames."""

    width: Annotated[int, Field(ge=64, le=MAX_PIXELS)] = 1000
    height: Annotated[int, Field(ge=64, le=MAX_PIXELS)] = 600
    fps: Annotated[int, Field(ge=1, le=MAX_FPS)] = 60
    steps_per_frame: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    # the window's pace in steps per second (None: steps_per_frame every frame, as fast as
    # the frame rate allows; a mean shift window then takes 2 a second so the collapse is seen)
    steps_per_second: PositiveFloat | None = None
    trail: Annotated[int, Field(ge=0, le=MAX_TRAIL)] = 0
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



    def base_dir(self) -> Path:
        return self._source.parent if self._source is not None else Path.cwd()

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``validate_scenario`` turns back into an equal scenario."""
        return self.model_dump(mode="python", exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


__all__ = ["AgentsSpec", "Count", "Number", "AttractorSpec", "AvoidanceSpec", "BlobsInit", "BoidRules", "ChaseSpec",
           "CirclesRules", "FileInit", "FleeSpec", "InteractionsSpec",
           "MeanShiftRules", "MetricsSpec", "NonNegFloat", "NormalInit", "Obstacle", "PlaneObstacle", "PositionInit",
           "PositiveFloat", "RandomDirectionInit", "RenderSpec", "RuleSpec", "Rules", "RunSpec", "Scenario",
           "SegmentObstacle", "SpeciesSpec", "SphereObstacle", "UniformInit", "VelocityInit", "WorldSpec", "ZeroInit"]
