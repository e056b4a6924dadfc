"""Sweep files: a base scenario, the parameters to vary, replicates, and what to keep.

A sweep file is YAML (``yaml.safe_load``), validated like a scenario, with the same
messages (``file: key.path: expected X, got Y; did you mean Z?``):

    name:        optional; names the default output folder runs/sweeps/<name>
    base:        a scenario file (relative to the sweep file) or an inline scenario mapping
    set:         {key.path: value} fixed overrides applied to the base before any parameter
    parameters:  {key.path: values}; values are
                   a list                      [0.5, 1.0, 2.0]
                   a range                     {from: 0.5, to: 2.0, step: 0.5}
                                               {from: 0.01, to: 1, num: 5, log: true}
                   a distribution (random/lhs) {sample: uniform, low: 0, high: 1}
                                               {sample: loguniform, low: 1e-3, high: 1}
                                               {sample: choice, values: [wrap, reflect]}
    method:      grid (every combination; the default) | random | lhs (n points)
    n:           the number of points for random / lhs
    replicates:  runs per point (default 1), each with its own seed
    seed:        the root seed (default 0)
    steps:       steps per run (default: the scenario's run.steps)
    metrics:     {metric: {final: true, mean_last: K, series: false}} (default: the final
                 value of every metric the scenario records)
    out:         the output folder (default runs/sweeps/<name>)
    run:         workers, threads, device, dtype, backend, batch_replicates,
                 ray_address, num_cpus, num_gpus (how runs are executed; see flock.sweep_run)

Parameter key paths are applied with ``flock.scenario.set_path`` (what ``--set`` does)
and every point's scenario is validated with ``validate_scenario``: a sweep never starts
with a point that would not run.

Runs are numbered point-major: run ``point * replicates + replicate``. Run r's seed is
``SeedSequence(seed).spawn(R)[r]``'s first 32-bit word, i.e. ``SeedSequence(seed,
spawn_key=(r,))``: it depends only on the root seed and the run's index, never on where
or in what order the run happens. random / lhs points are drawn from
``default_rng(SeedSequence(seed))``, so the same file gives the same points.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ScenarioError
from .scenario import Scenario, read_scenario_data, set_path, validate_scenario
from .scenario_errors import describe_value as _describe
from .scenario_errors import pydantic_message as _message
from .scenario_errors import raise_problems as _raise
from .scenario_io import read_yaml

METHODS = ("grid", "random", "lhs")
SAMPLE_KINDS = ("uniform", "loguniform", "choice")
RESERVED_PARAMETERS = {"run.seed": "seeds come from the sweep's seed and replicates; leave run.seed out "
                                   "of parameters (set seed: at the top of the sweep file)"}
RUN_COLUMNS = ("run_id", "point", "replicate", "seed")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class MetricKeep(_Model):
    """What to keep of one metric's time series: the final value, the mean over the last
    ``mean_last`` steps (the recorded rows with step > last step - mean_last), the whole series."""

    final: bool = True
    mean_last: Annotated[int, Field(ge=1)] | None = None
    series: bool = False


class SweepRunSpec(_Model):
    """How the runs are executed (flock.sweep_run); command-line flags win over these."""

    workers: Annotated[int, Field(ge=1)] | None = None
    threads: Annotated[int, Field(ge=1)] | None = None
    device: str | None = None
    dtype: Literal["float32", "float64"] | None = None
    backend: Literal["auto", "dense", "grid", "fused", "triton"] | None = None
    batch_replicates: bool = True
    ray_address: str | None = None
    num_cpus: Annotated[float, Field(gt=0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0)] | None = None


class SweepFile(_Model):
    """The top level of a sweep file (parameters are checked apart, one kind per key path)."""

    name: str | None = None
    description: str | None = None
    base: Any  # a path or an inline scenario mapping, checked in build_sweep
    set: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any]
    method: Literal["grid", "random", "lhs"] = "grid"
    n: Annotated[int, Field(ge=1)] | None = None
    replicates: Annotated[int, Field(ge=1)] = 1
    seed: Annotated[int, Field(ge=0)] = 0
    steps: Annotated[int, Field(ge=0)] | None = None
    metrics: dict[str, Any] | None = None  # {name: MetricKeep}, checked one by one
    out: str | None = None
    run: SweepRunSpec = Field(default_factory=SweepRunSpec)


class RangeSpec(_Model):
    """Evenly spaced values from ``from`` to ``to`` (inclusive): by ``step``, or ``num`` of them
    (``log: true``: evenly spaced logarithms)."""

    from_: float = Field(alias="from")
    to: float
    step: Annotated[float, Field(gt=0)] | None = None
    num: Annotated[int, Field(ge=1)] | None = None
    log: bool = False


class UniformSample(_Model):
    sample: Literal["uniform"]
    low: float
    high: float


class LogUniformSample(_Model):
    sample: Literal["loguniform"]
    low: Annotated[float, Field(gt=0)]
    high: Annotated[float, Field(gt=0)]


class ChoiceSample(_Model):
    sample: Literal["choice"]
    values: list


_SAMPLE_MODELS = {"uniform": UniformSample, "loguniform": LogUniformSample, "choice": ChoiceSample}


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Parameter:
    """One swept key path: its discrete ``values`` (list or range), or a ``distribution``."""

    key: str
    values: tuple | None = None
    distribution: BaseModel | None = None

    def from_unit(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1) (inverse CDF; discrete values by index)."""
        dist = self.distribution
        if self.values is not None or isinstance(dist, ChoiceSample):
            values = self.values if self.values is not None else tuple(dist.values)
            return values[min(int(u * len(values)), len(values) - 1)]
        if isinstance(dist, UniformSample):
            return float(dist.low + u * (dist.high - dist.low))
        lo, hi = math.log(dist.low), math.log(dist.high)
        return float(math.exp(lo + u * (hi - lo)))


def _integral(values: list[float], *ends: float) -> list:
    """ints when the range's ends are integers and every value is one (agents.count ranges)."""
    if all(float(e).is_integer() for e in ends) and all(float(v).is_integer() for v in values):
        return [int(round(v)) for v in values]
    return values


def _range_values(spec: RangeSpec) -> tuple[list, list[tuple[str, str]]]:
    lo, hi = spec.from_, spec.to
    if (spec.step is None) == (spec.num is None):
        return [], [("", "expected exactly one of 'step' or 'num'")]
    if hi < lo:
        return [], [("to", f"expected a number >= from ({lo:g}), got {hi:g}")]
    if spec.log:
        if spec.num is None:
            return [], [("log", "a log range takes num, not step")]
        if lo <= 0:
            return [], [("from", f"a log range needs from > 0, got {lo:g}")]
        return _integral([float(v) for v in np.geomspace(lo, hi, spec.num)], lo, hi), []
    if spec.num is not None:
        return _integral([float(v) for v in np.linspace(lo, hi, spec.num)], lo, hi), []
    count = int(math.floor((hi - lo) / spec.step + 1e-9)) + 1
    if count > 1_000_000:
        return [], [("step", f"expected at most a million values, got {count}")]
    # k * step from `from` (no running sum), rounded to 12 digits: 0.1 + 2 * 0.1 is 0.3
    return _integral([round(lo + k * spec.step, 12) for k in range(count)], lo, hi, spec.step), []


def _parse_parameter(key: str, value: Any, method: str) -> tuple[Parameter | None, list[tuple[str, str]]]:
    where = f"parameters.{key}"
    if key in RESERVED_PARAMETERS:
        return None, [(where, RESERVED_PARAMETERS[key])]
    if not key or any(not part for part in key.split(".")):
        return None, [(where, "expected a key path like rules.alignment.weight")]
    if isinstance(value, list):
        if not value:
            return None, [(where, "expected at least one value, got []")]
        return Parameter(key, values=tuple(value)), []
    if not isinstance(value, dict):
        return None, [(where, f"expected a list of values, a range {{from, to, step | num}} or "
                              f"{{sample: ...}}, got {_describe(value)}")]
    if "sample" in value:
        kind = value["sample"]
        if kind not in _SAMPLE_MODELS:
            close = difflib.get_close_matches(str(kind), SAMPLE_KINDS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return None, [(f"{where}.sample", f"expected one of {', '.join(SAMPLE_KINDS)}, got "
                                              f"{_describe(kind)}{hint}")]
        model = _SAMPLE_MODELS[kind]
        try:
            dist = model.model_validate(value)
        except ValidationError as exc:
            return None, [_prefixed(where, _message(e, model)) for e in exc.errors()]
        if isinstance(dist, ChoiceSample) and not dist.values:
            return None, [(f"{where}.values", "expected at least one value, got []")]
        if not isinstance(dist, ChoiceSample) and dist.high <= dist.low:
            return None, [(f"{where}.high", f"expected a number > low ({dist.low:g}), got {dist.high:g}")]
        if method == "grid":
            if isinstance(dist, ChoiceSample):
                return Parameter(key, values=tuple(dist.values)), []
            return None, [(where, f"a {kind} distribution is sampled: it needs method random or lhs "
                                  "(got grid); or give a list or a range")]
        return Parameter(key, distribution=dist), []
    try:
        spec = RangeSpec.model_validate(value)
    except ValidationError as exc:
        return None, [_prefixed(where, _message(e, RangeSpec)) for e in exc.errors()]
    values, problems = _range_values(spec)
    if problems:
        return None, [_prefixed(where, p) for p in problems]
    return Parameter(key, values=tuple(values)), []


def _prefixed(prefix: str, problem: tuple[str, str]) -> tuple[str, str]:
    path, msg = problem
    path = path.replace("from_", "from")
    return (f"{prefix}.{path}" if path and path != "(top level)" else prefix), msg


# ---------------------------------------------------------------- points and runs


def expand_points(params: list[Parameter], method: str, n: int | None, seed: int) -> list[dict[str, Any]]:
    """The parameter points, in order: {key path: value} each.

    grid: the Cartesian product (the first parameter varies slowest). random: ``n`` points,
    each parameter drawn independently. lhs: ``n`` points of a Latin hypercube
    (scipy.stats.qmc.LatinHypercube), each axis mapped through the parameter's inverse CDF.
    random and lhs draw from ``default_rng(SeedSequence(seed))``: deterministic for a root seed.
    """
    if not params:
        return [{}]
    keys = [p.key for p in params]
    if method == "grid":
        return [dict(zip(keys, combo)) for combo in itertools.product(*(p.values for p in params))]
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if method == "random":
        units = rng.random((n, len(params)))
    else:
        from scipy.stats import qmc  # noqa: PLC0415  (only lhs needs it)

        units = qmc.LatinHypercube(d=len(params), rng=rng).random(n)
    return [{p.key: p.from_unit(float(u[j])) for j, p in enumerate(params)} for u in units]


def run_seed(root: int, run_id: int) -> int:
    """Run ``run_id``'s seed: the first 32-bit word of ``SeedSequence(root, spawn_key=(run_id,))``
    (= ``SeedSequence(root).spawn(R)[run_id]``); independent of order, worker and engine."""
    return int(np.random.SeedSequence(root, spawn_key=(run_id,)).generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class Run:
    run_id: int
    point: int
    replicate: int
    seed: int


@dataclass
class Point:
    """One parameter point: its values, its validated scenario data, and its replicate runs."""

    index: int
    values: dict[str, Any]
    scenario: Scenario
    runs: list[Run] = field(default_factory=list)


@dataclass
class Sweep:
    """A validated, expanded sweep.

    Attributes:
        spec: the validated file. source: the sweep file (None when built from data).
        parameters: the swept key paths, in file order. points: every point with its runs.
        metrics: what to keep of each metric (None: the final value of every metric).
    """

    spec: SweepFile
    source: Path | None
    parameters: list[Parameter]
    points: list[Point]
    metrics: dict[str, MetricKeep] | None = None

    @property
    def name(self) -> str:
        if self.spec.name:
            return self.spec.name
        return self.source.stem if self.source is not None else "sweep"

    @property
    def runs(self) -> list[Run]:
        return [run for point in self.points for run in point.runs]

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.parameters]

    def default_out(self) -> Path:
        return Path(self.spec.out) if self.spec.out else Path("runs") / "sweeps" / self.name

    def steps_of(self, point: Point) -> int:
        return self.spec.steps if self.spec.steps is not None else point.scenario.run.steps

    def manifest_rows(self) -> list[dict[str, Any]]:
        """One row per run: run_id, point, replicate, seed, then the parameter values."""
        return [{"run_id": r.run_id, "point": r.point, "replicate": r.replicate, "seed": r.seed,
                 **p.values} for p in self.points for r in p.runs]

    def fingerprint(self) -> str:
        """A hash of what decides the results (the manifest, the point scenarios, steps, metrics
        and how replicates are batched); ``--resume`` refuses a folder made by a different sweep."""
        payload = {"manifest": self.manifest_rows(), "steps": [self.steps_of(p) for p in self.points],
                   "scenarios": [p.scenario.to_dict() for p in self.points],
                   "metrics": None if self.metrics is None else
                   {k: v.model_dump() for k, v in self.metrics.items()},
                   "run": self.spec.run.model_dump(include={"device", "dtype", "backend", "batch_replicates"})}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _base_data(spec: SweepFile, origin: str, source: Path | None) -> tuple[dict, Path | None]:
    """The base scenario's data (extends resolved) and the file relative paths are anchored to."""
    anchor = source.parent if source is not None else Path.cwd()
    if isinstance(spec.base, dict):
        return copy.deepcopy(spec.base), (source if source is not None else None)
    path = anchor / spec.base
    if not path.is_file():
        _raise(origin, [("base", f"file not found: {path}")])
    return read_scenario_data(path), path


def build_sweep(data: Any, *, source: str | Path | None = None) -> Sweep:
    """A ``Sweep`` from plain data (as YAML gives), or a ``ScenarioError`` listing the problems.

    Every parameter key path and value is checked; then every point's scenario is built
    (base, ``set``, the point's values, via ``set_path`` as ``--set`` does) and validated
    with ``validate_scenario``; the first point that fails is reported with its values.
    """
    source = Path(source) if source is not None else None
    origin = str(source) if source is not None else "<sweep>"
    if not isinstance(data, dict):
        _raise(origin, [("(top level)", f"expected a mapping of keys (base, parameters, ...), got {_describe(data)}")])
    try:
        spec = SweepFile.model_validate(data)
    except ValidationError as exc:
        _raise(origin, [_message(e, SweepFile) for e in exc.errors()])
    problems: list[tuple[str, str]] = []
    if not isinstance(spec.base, (str, dict)):
        problems.append(("base", f"expected the path of a scenario file or an inline scenario mapping, "
                                 f"got {_describe(spec.base)}"))
    params = []
    for key, value in spec.parameters.items():
        param, found = _parse_parameter(key, value, spec.method)
        problems.extend(found)
        if param is not None:
            params.append(param)
    if spec.method == "grid" and spec.n is not None:
        problems.append(("n", f"n is the number of points of method random or lhs; grid takes every "
                              f"combination: leave n out, got {spec.n}"))
    if spec.method != "grid" and spec.n is None:
        problems.append(("n", f"required key is missing (method {spec.method} draws n points)"))
    for key in spec.set:
        if key in spec.parameters:
            problems.append((f"set.{key}", "is also a swept parameter; keep it in one place"))
    keep = _parse_metrics(spec.metrics, problems)
    if problems:
        _raise(origin, problems)
    base, base_file = _base_data(spec, origin, source)
    for key, value in spec.set.items():
        base = set_path(base, key, value, origin=f"{origin}: set.{key}")
    values = expand_points(params, spec.method, spec.n, spec.seed)
    points = []
    scenario_source = base_file if base_file is not None else source
    for index, point_values in enumerate(values):
        data_i = base
        for key, value in point_values.items():
            data_i = set_path(data_i, key, value, origin=f"{origin}: parameters.{key}")
        shown = ", ".join(f"{k}={v!r}" for k, v in point_values.items())
        label = f"{origin} (point {index}: {shown})" if shown else f"{origin} (base scenario)"
        scenario = validate_scenario(data_i, source=scenario_source, label=label)
        runs = [Run(index * spec.replicates + r, index, r, run_seed(spec.seed, index * spec.replicates + r))
                for r in range(spec.replicates)]
        points.append(Point(index, point_values, scenario, runs))
    return Sweep(spec, source, params, points, keep)


def _parse_metrics(metrics: dict | None, problems: list) -> dict[str, MetricKeep] | None:
    if metrics is None:
        return None
    keep = {}
    for name, value in metrics.items():
        where = f"metrics.{name}"
        try:
            keep[name] = k = MetricKeep.model_validate(value)
        except ValidationError as exc:
            problems.extend(_prefixed(where, _message(e, MetricKeep)) for e in exc.errors())
            continue
        if not (k.final or k.series or k.mean_last is not None):
            problems.append((where, "keeps nothing: set final: true, mean_last: K or series: true"))
    return keep


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (``yaml.safe_load``), expanded into points and runs.

    Raises:
        ScenarioError: a missing or unreadable file, an invalid key or value, or a point whose
        scenario is invalid (the message names the file, the key path, the point).
    """
    path = Path(path)
    return build_sweep(read_yaml(path), source=path)


__all__ = ["METHODS", "MetricKeep", "Parameter", "Point", "Run", "SAMPLE_KINDS", "Sweep", "SweepFile",
           "SweepRunSpec", "build_sweep", "expand_points", "load_sweep", "run_seed"]
