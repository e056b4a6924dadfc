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
from .scenario_checks import validate_scenario
from .scenario_errors import describe_value
from .scenario_schema import Scenario


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
                            f"got {describe_value(data)}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ScenarioError(f"{path}: extends: expected the path of a scenario file, got {describe_value(parent)}")
    base_path = path.parent / parent
    if not base_path.is_file():
        raise ScenarioError(f"{path}: extends: file not found: {base_path}")
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
