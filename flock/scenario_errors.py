"""Scenario error messages: pydantic errors turned into one message shape, with did-you-mean.

``origin: key.path: what was expected, got value`` -- one line per problem, all raised at
once as a ``ScenarioError``.
"""

from __future__ import annotations

import difflib
import reprlib
import typing
from typing import Any

from pydantic import BaseModel

from .errors import ScenarioError
from .scenario_schema import Scenario


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple = 2, 6, 4, 6


def describe_value(value: Any) -> str:
    """A short repr of ``value`` for a message: never built in full (a huge string, list or
    alias-expanded tree is cut while it is being written), at most 80 characters."""
    text = _REPR.repr(value)
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


def _walk(loc: tuple, root: type[BaseModel] | None = None) -> tuple[list[str], type[BaseModel] | None]:
    """Display path of a pydantic error location (union tags dropped) and the model it ends in
    (``root``: the model the location starts from, default ``Scenario``)."""
    model: type[BaseModel] | None = Scenario if root is None else root
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


def pydantic_message(error: dict, root: type[BaseModel] | None = None) -> tuple[str, str]:
    """(key path, message) for one pydantic error of ``root`` (default ``Scenario``; the sweep
    file passes its own models)."""
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        path, parent = _walk(loc[:-1], root)
        key = str(loc[-1])
        known = list(parent.model_fields) if parent is not None else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; known keys: {', '.join(known)}" if known else "")
        return ".".join(path + [key]), f"unknown key '{key}'{hint}"
    path, _ = _walk(loc, root)
    where = ".".join(path) or "(top level)"
    if kind == "missing":
        return where, "required key is missing"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        bound = f"{bound:g}" if isinstance(bound, (int, float)) else bound
        return where, f"expected a number {op} {bound}, got {describe_value(value)}"
    if kind == "finite_number":
        return where, f"expected a finite number, got {describe_value(value)}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        what = "an integer" if kind.startswith("int") else "a number"
        return where, f"expected {what}, got {describe_value(value)}"
    if kind == "literal_error":
        return where, f"expected {ctx.get('expected')}, got {describe_value(value)}"
    if kind == "union_tag_invalid":
        return where, f"expected {ctx.get('discriminator')} to be one of {ctx.get('expected_tags')}, got {describe_value(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return where, f"missing the key {ctx.get('discriminator')} that says which kind this is"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type"):
        what = "a list" if kind == "list_type" else "a mapping of keys"
        return where, f"expected {what}, got {describe_value(value)}"
    if kind in ("string_type", "bool_type"):
        what = "a string" if kind == "string_type" else "true or false"
        return where, f"expected {what}, got {describe_value(value)}"
    return where, f"{error['msg']}, got {describe_value(value)}"


def raise_problems(origin: str, problems: list[tuple[str, str]]) -> typing.NoReturn:
    lines = [f"{origin}: {path}: {msg}" for path, msg in problems]
    raise ScenarioError("\n".join(lines), problems=lines)


__all__ = ["describe_value", "pydantic_message", "raise_problems"]
