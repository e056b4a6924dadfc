"""Scenario YAML I/O: read a file (``yaml.safe_load``), resolve ``extends:``, apply
``--set`` overrides through the one dotted-path helper ``set_path``, and load.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import ScenarioError
from .input_files import file_problem, read_bytes
from .scenario_checks import validate_scenario
from .scenario_errors import describe_value
from .scenario_schema import Scenario


# Limits on a scenario file, so that a hostile one fails fast instead of taking minutes of
# CPU, gigabytes of memory or the interpreter's stack.
MAX_YAML_BYTES = 4 * 2**20
MAX_YAML_NODES = 200_000      # values after aliases are expanded (a 1 KB alias bomb is billions)
MAX_YAML_DEPTH = 64
MAX_EXTENDS = 32


def _bracket_depth(text: str) -> int:
    """The deepest flow nesting ([ and {) of ``text``, an upper bound that ignores quoting;
    block nesting cannot go deep within MAX_YAML_BYTES (each level costs indentation)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_nodes(root: yaml.Node, path: Path) -> None:
    """Refuse duplicate keys, nesting deeper than MAX_YAML_DEPTH, recursive aliases and more
    than MAX_YAML_NODES values once aliases are expanded, without expanding anything."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise ScenarioError(f"{path}: line {node.start_mark.line + 1}: more than {MAX_YAML_NODES:,} values "
                                    "once aliases are expanded; a scenario is far smaller (an alias bomb?)")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ScenarioError(f"{path}: line {node.start_mark.line + 1}: an alias refers to the value it is in")
        if depth > MAX_YAML_DEPTH:
            raise ScenarioError(f"{path}: line {node.start_mark.line + 1}: nested more than {MAX_YAML_DEPTH} "
                                "levels deep; a scenario is far flatter")
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        raise ScenarioError(f"{path}: line {k.start_mark.line + 1}: duplicate key {k.value!r} "
                                            f"(first on line {seen[k.value]}); keep one")
                    seen[k.value] = k.start_mark.line + 1
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def read_yaml(path: Path) -> Any:
    """The data of one YAML file, read with ``yaml.safe_load`` after the checks above."""
    raw = read_bytes(path, max_bytes=MAX_YAML_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    if _bracket_depth(text) > MAX_YAML_DEPTH:
        raise ScenarioError(f"{path}: nested more than {MAX_YAML_DEPTH} levels deep; a scenario is far flatter")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_nodes(root, path)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(parse)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}: {where}: not valid YAML: {problem}") from None
    except ScenarioError:
        raise
    except RecursionError:
        raise ScenarioError(f"{path}: nested too deep to read; a scenario is far flatter") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ScenarioError(f"{path}: a value cannot be read: {describe_value(str(exc))}") from None


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
    problem = file_problem(path, max_bytes=MAX_YAML_BYTES)
    if problem is not None:  # before resolve(), which raises on a symlink loop
        raise ScenarioError(f"{path}: {problem}")
    real = path.resolve()
    if len(_chain) >= MAX_EXTENDS:
        raise ScenarioError(f"{path}: extends: a chain of more than {MAX_EXTENDS} files; flatten it")
    if real in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, real))
        raise ScenarioError(f"{path}: extends: cycle: {cycle}")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: (top level): expected a mapping of keys (world, agents, rules, ...), "
                            f"got {describe_value(data)}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ScenarioError(f"{path}: extends: expected the path of a scenario file, got {describe_value(parent)}")
    base_path = path.parent / parent
    problem = file_problem(base_path)
    if problem is not None:
        raise ScenarioError(f"{path}: extends: {problem}: {base_path}")
    base = read_scenario_data(base_path, (*_chain, real))
    base = _fix_relative_paths(base, base_path, path.parent)
    return deep_merge(base, data)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ScenarioError(f"--set: expected key.path=value, got {describe_value(item)}")
    key, text = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ScenarioError(f"--set: expected key.path=value, got {describe_value(item)}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return parts, value


def set_path(data: Any, path: str | list[str], value: Any, *, origin: str = "set") -> Any:
    """A copy of ``data`` with the value at dotted ``path`` replaced (``"a.b.0.c"``: list items
    by index); ``data`` itself is left as it was. Missing or null mappings on the way are created.

    Args:
        data: plain scenario data (mappings, lists, scalars), as ``yaml.safe_load`` gives.
        path: dotted key path, or its parts.
        value: the new value (plain data).
        origin: how errors name the source of the path (``"--set key=value"``, ``"ensemble params"``).

    Raises:
        ScenarioError: an empty part, an index not below the list's length, or a path that
        walks into a number or string.
    """
    parts = path.split(".") if isinstance(path, str) else list(path)
    if not parts or any(not p for p in parts):
        raise ScenarioError(f"{origin}: expected a dotted key path like rules.separation.weight, "
                            f"got {describe_value('.'.join(parts))}")
    data = copy.deepcopy(data)
    holder = [data]  # so that an empty walk still has a parent to assign into
    node: Any = holder
    key: Any = 0
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth + 1])
        child = node[key]
        if isinstance(child, list):
            if not part.isdigit() or int(part) >= len(child):
                raise ScenarioError(f"{origin}: {where}: expected an index below {len(child)}, got {part!r}")
            node, key = child, int(part)
        elif isinstance(child, dict):
            if depth < len(parts) - 1:
                if child.get(part) is None:
                    child[part] = {}
                elif not isinstance(child[part], (dict, list)):
                    raise ScenarioError(f"{origin}: {where}: is a value, not a mapping")
            node, key = child, part
        else:
            raise ScenarioError(f"{origin}: {'.'.join(parts[:depth])}: is a value, not a mapping")
    node[key] = value
    return holder[0]


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``data`` with each ``key.path=value`` applied (values parsed as YAML; list items by index).

    Raises:
        ScenarioError: a malformed override or one that walks into a number or string.
    """
    for item in overrides:
        parts, value = _parse_override(item)
        data = set_path(data, parts, value, origin=f"--set {item}")
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


__all__ = ["apply_overrides", "deep_merge", "load_scenario", "read_scenario_data", "set_path"]
