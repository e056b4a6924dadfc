"""Scenario cross-field checks: what pydantic cannot see key by key (lengths against
``world.dims``, counts against initialisers, files, rules against the formulation), and
``validate_scenario``, which runs the schema and these checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .input_files import ArrayProblem, load_array
from .formulations import RULES, lookup_rule, rule_class
from .names import DEVICE_NAMES
from .scenario_errors import describe_value, pydantic_message, raise_problems
from .scenario_schema import (AgentsSpec, BlobsInit, BoidRules, FileInit, InteractionsSpec, MeanShiftRules, Scenario,
                              SegmentObstacle, SphereObstacle, UniformInit)


def _check_vector(problems, path: str, value, dim: int):
    if value is not None and len(value) != dim:
        problems.append((path, f"expected {dim} numbers (world.dims = {dim}), got {describe_value(value)}"))


def _check_file(problems, sc: Scenario, agents: AgentsSpec, init: FileInit, where: str, base_dir: Path) -> None:
    """Read an initial-state file as the run will (validate is a real promise) and check its
    kind, dtype, finiteness, range, columns against world.dims and rows against the count."""
    path = base_dir / init.path
    if path.suffix not in (".npy", ".csv"):
        problems.append((f"{where}.path", f"expected a .npy or .csv file, got {describe_value(init.path)}"))
        return
    try:
        arr = load_array(path, dtype=sc.run.dtype)
    except ArrayProblem as exc:
        problems.append((f"{where}.path", f"{exc} ({path})"))
        return
    dim = sc.world.dims
    if arr.shape[1] != dim:
        problems.append((f"{where}.path", f"expected {dim} columns (world.dims), got {arr.shape[1]} ({path})"))
    if where.endswith("position") and agents.count is not None and agents.count != arr.shape[0]:
        problems.append((where.rsplit(".", 1)[0] + ".count",
                         f"expected {arr.shape[0]} (the rows of {init.path}), got {agents.count}"))
    if where.endswith("velocity"):
        rows = agents.count
        if isinstance(agents.position, FileInit):
            try:
                rows = load_array(base_dir / agents.position.path).shape[0]
            except ArrayProblem:
                rows = None
        if rows is not None and rows != arr.shape[0]:
            problems.append((f"{where}.path", f"expected {rows} rows (one per agent), got {arr.shape[0]} ({path})"))


def _check_agents(problems, sc: Scenario, agents: AgentsSpec, prefix: str, base_dir: Path | None) -> None:
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
        elif isinstance(init, FileInit) and base_dir is not None:
            _check_file(problems, sc, agents, init, where, base_dir)
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
    form = sc.rules.formulation
    top = lookup_rule(form)
    if top.refuses_terms and (sc.obstacles is not None or sc.attractors is not None):
        key = "obstacles" if sc.obstacles is not None else "attractors"
        problems.append((key, f"the {form} formulation takes no extra forces (obstacles, attractors, walls); "
                              "remove this key"))
    names = [sc.agents.name or "flock"] + [sp.name for sp in sc.species or []]
    if sc.species is not None or sc.interactions is not None:
        if not getattr(top, "groups", False):
            names_ = [name for name, rule in RULES.items() if getattr(rule, "groups", False)]
            groups = ", ".join(names_[:-1]) + " and " + names_[-1] if len(names_) > 1 else "".join(names_)
            problems.append(("species" if sc.species is not None else "interactions",
                             f"groups run with the {groups} formulations, got {form}"))
            return problems
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
            if getattr(top, "needs_speed", False) and speed is None:
                problems.append((f"species[{k}].max_speed", f"required key is missing (the {form} rules need a speed)"))
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


def check_consistency(sc: Scenario, base_dir: Path | None) -> list[tuple[str, str]]:
    """Cross-key problems pydantic cannot see: lengths against dims, counts, files (not read when
    ``base_dir`` is None)."""
    problems: list[tuple[str, str]] = []
    dim = sc.world.dims
    _check_vector(problems, "world.size", sc.world.size, dim)
    _check_vector(problems, "world.origin", sc.world.origin, dim)
    _check_agents(problems, sc, sc.agents, "agents", base_dir)
    for k, sp in enumerate(sc.species or []):
        _check_agents(problems, sc, sp, f"species[{k}]", base_dir)
    # what only the formulation knows: its registry entry checks it
    problems.extend(rule_class(sc).check(sc))
    problems.extend(_check_world_features(sc))
    if sc.run.device not in DEVICE_NAMES and not sc.run.device.startswith("cuda:"):
        problems.append(("run.device", f"expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {describe_value(sc.run.device)}"))
    return problems


# ---------------------------------------------------------------- entry points


def validate_scenario(data: Any, *, source: str | Path | None = None, label: str | None = None,
                      read_files: bool = True) -> Scenario:
    """A ``Scenario`` from plain data (as YAML gives), or a ``ScenarioError`` listing every problem.

    Args:
        data: a mapping, as ``yaml.safe_load`` returns.
        source: the file the data came from; names it in errors and anchors relative paths.
        label: how errors name the origin, when not just ``source`` (e.g. with overrides).
        read_files: read and check the initial-state files (``kind: file``). False when the
            state comes from elsewhere (a checkpoint, a recording): the files may be gone.
    """
    origin = label or (str(source) if source is not None else "<scenario>")
    if not isinstance(data, dict):
        raise_problems(origin, [("(top level)", f"expected a mapping of keys (world, agents, rules, ...), got {describe_value(data)}")])
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        raise_problems(origin, [pydantic_message(e) for e in exc.errors()])
    if source is not None:
        sc._source = Path(source).resolve()
    problems = check_consistency(sc, sc.base_dir() if read_files else None)
    if problems:
        raise_problems(origin, problems)
    return sc


__all__ = ["check_consistency", "validate_scenario"]
