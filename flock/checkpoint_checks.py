"""Checks of a checkpoint read back from disk: nothing in it is trusted.

``meta.json`` is validated with a typed model (a string step, a negative or 1e300 step,
``"done": "false"``, a point force without a strength are errors, not a silently wrong
resume); every tensor of ``state.safetensors`` is checked for shape, dtype and finiteness
against the metadata; every file the metadata has a checksum for is verified. Each
message names the file. ``clean_stale`` removes the temporary folders a killed save left.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Annotated, Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import CheckpointError
from .names import BACKEND_NAMES, DTYPE_NAMES, MAX_ABS_VALUE, MAX_COUNT, MAX_SEED
from .scenario_errors import describe_value


def _error_class():
    return CheckpointError


# a float saved by checkpoint._float_out: a JSON number, or "nan" / "inf" / "-inf"
SavedFloat = Union[Annotated[float, Field(allow_inf_nan=False)], Literal["nan", "inf", "-inf"]]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class PointForceMeta(_Strict):
    center: list[Finite]
    strength: Finite
    radius: SavedFloat


class CheckpointMeta(_Strict):
    """The keys of ``meta.json`` a resume reads, typed (extra keys are ignored)."""

    step: Annotated[int, Field(ge=0, le=MAX_COUNT)]
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)]
    device: str
    dtype: Literal[DTYPE_NAMES]
    backend_requested: Literal[BACKEND_NAMES]
    done: bool
    last_shift: SavedFloat
    metrics_columns: list[str]
    metrics_rows: Annotated[int, Field(ge=0, le=MAX_COUNT)]
    n_agents: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = None
    dim: Literal[2, 3] | None = None
    record_metrics: bool = True
    point_forces: list[PointForceMeta] = Field(default_factory=list)
    sha256: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=dict)
    time: SavedFloat | None = None


def check_meta(file: Path, meta: dict) -> dict:
    """``meta`` when every key a resume reads has the right type and range, else a
    ``CheckpointError`` naming ``file``, the key and the value."""
    try:
        CheckpointMeta.model_validate(meta)
    except ValidationError as exc:
        lines = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("float", "literal", "constrained")))
            lines.append(f"{file}: {where}: {e['msg'].lower()}, got {describe_value(e.get('input'))}; "
                         "the checkpoint is corrupt")
        raise _error_class()("\n".join(lines)) from None
    return meta


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_checksums(path: Path, meta: dict, names: tuple[str, ...] | None = None) -> None:
    """Every file ``meta['sha256']`` names (or those of them in ``names``) has that checksum."""
    for name, expected in (meta.get("sha256") or {}).items():
        if names is not None and name not in names:
            continue
        file = path / name
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise _error_class()(f"{path / 'meta.json'}: sha256: names {name!r}, not a file of a checkpoint")
        if not file.is_file():
            raise _error_class()(f"{file}: missing; {path} is not a complete checkpoint")
        if sha256_file(file) != expected:
            raise _error_class()(f"{file}: checksum mismatch (sha256 recorded in meta.json); "
                                 "the file is corrupt or was changed")


def check_tensors(state_file: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Shapes, dtypes and finiteness of the saved state against ``meta``."""
    err = _error_class()
    pos, vel, group = tensors["pos"], tensors["vel"], tensors["group"]
    dtype = getattr(torch, meta["dtype"])
    n = meta.get("n_agents", pos.shape[0] if pos.ndim == 2 else None)
    dim = meta.get("dim", pos.shape[1] if pos.ndim == 2 else None)
    for name, t in (("pos", pos), ("vel", vel)):
        if t.ndim != 2 or tuple(t.shape) != (n, dim):
            raise err(f"{state_file}: {name}: expected shape [{n}, {dim}] (meta.json n_agents, dim), "
                      f"got {list(t.shape)}; the checkpoint is corrupt")
        if t.dtype != dtype:
            raise err(f"{state_file}: {name}: expected dtype {meta['dtype']} (meta.json), got "
                      f"{str(t.dtype).removeprefix('torch.')}; the checkpoint is corrupt")
        if not bool(torch.isfinite(t).all()):
            raise err(f"{state_file}: {name}: holds NaN or inf values; the checkpoint is corrupt")
    if group.ndim != 1 or group.shape[0] != n or group.dtype.is_floating_point or group.dtype == torch.bool:
        raise err(f"{state_file}: group: expected an integer tensor of shape [{n}], got "
                  f"{str(group.dtype).removeprefix('torch.')} {list(group.shape)}; the checkpoint is corrupt")
    if "noise" in tensors:
        noise = tensors["noise"]
        if noise.dtype != torch.int64 or tuple(noise.shape) != (1,) or int(noise[0]) < 0:
            raise err(f"{state_file}: noise: expected the noise counter, one int64 >= 0, got "
                      f"{str(noise.dtype).removeprefix('torch.')} {list(noise.shape)}"
                      f"{' = ' + str(noise.tolist()) if noise.numel() <= 4 else ''}; the checkpoint is corrupt")
    rows = meta["metrics_rows"]
    for c in meta["metrics_columns"]:
        t = tensors[f"metrics/{c}"]
        if t.ndim != 1 or t.shape[0] != rows:
            raise err(f"{state_file}: metrics/{c}: expected {rows} rows (meta.json metrics_rows), "
                      f"got shape {list(t.shape)}; the checkpoint is corrupt")


STALE_SECONDS = 3600.0


def clean_stale(directory: Path) -> None:
    """Remove ``.ckpt_*.tmp-<pid>-*`` / ``.old-<pid>-*`` folders a killed save left behind: those
    of a process that is no longer running, or older than an hour."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        m = re.fullmatch(r"\.ckpt_\d+\.(?:tmp|old)-(\d+)-[0-9a-f]+", entry.name)
        if m is None or not entry.is_dir():
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue  # this process's own save in progress
        try:
            old = time.time() - entry.stat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if old or not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["CheckpointMeta", "check_checksums", "check_meta", "check_tensors",
           "clean_stale", "sha256_file"]
