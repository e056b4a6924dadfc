"""Checkpoints: a running simulation saved to a directory and resumed later, bit for bit.

A checkpoint is a directory ``ckpt_<step:08d>/`` holding

    state.safetensors   pos [N, D], vel [N, D], group [N] int64, noise [1] int64 (the noise
                        stream's draw counter, ``sim.noise.get_state()``), metrics/<column> [M]
                        (the log so far)
    meta.json           step, seed, device, dtype, backends, versions, mean shift done and
                        last_shift, point forces, metrics columns, sha256 of state.safetensors
    scenario.yaml       the resolved scenario (``sim.scenario.to_yaml()``)

No pickle anywhere: tensors go through safetensors, the rest is JSON and YAML.

Saving is atomic: everything is written into a hidden temporary sibling
(``.ckpt_<step>.tmp-<pid>-<random>``), each file fsynced, then the directory is
renamed into place and its parent fsynced. A crash while saving leaves the earlier
checkpoints as they were, and at worst a hidden temporary directory that
``latest_checkpoint`` never takes for a checkpoint.

Resuming on the device and dtype the checkpoint was saved from continues the run
exactly as if it had never stopped (same state, step count, noise counter, metrics log).
The noise stream is counter-based (``flock.noise``), so it continues on any device.
A format-1 checkpoint (from before the counter, holding a ``torch.Generator`` state)
still resumes, with the counter at its step: the numbers a run that had drawn once per
step from the start would draw next, not those of the old generator.
The initial-state files a scenario names (``agents.position: {kind: file}``) are not
needed to resume: the state comes from the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .checkpoint_checks import check_checksums, check_meta, check_tensors, clean_stale
from .checkpoint_checks import sha256_file as _sha256
from .errors import CheckpointError, ScenarioError
from .metrics import MetricsLog
from .scenario import validate_scenario
from .state import FlockState

FORMAT = "flock-checkpoint"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)          # 1: a torch.Generator state instead of the noise counter
STATE_FILE, META_FILE, SCENARIO_FILE = "state.safetensors", "meta.json", "scenario.yaml"
FILES = (STATE_FILE, META_FILE, SCENARIO_FILE)
_NAME = re.compile(r"ckpt_(\d{8,})")


# ---------------------------------------------------------------- helpers


def _float_out(x: float):
    """JSON has no NaN or inf: those are written as the strings "nan", "inf", "-inf"."""
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _metrics_tensors(log: MetricsLog) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The metrics log as one tensor per column: int64 when every value is an int, else float64."""
    columns = []
    for row in log.rows:
        columns += [c for c in row if c not in columns]
    tensors = {}
    for c in columns:
        values = [row.get(c) for row in log.rows]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            tensors[f"metrics/{c}"] = torch.tensor(values, dtype=torch.int64)
        else:
            tensors[f"metrics/{c}"] = torch.tensor([math.nan if v is None else float(v) for v in values],
                                                   dtype=torch.float64)
    return tensors, columns


def _metrics_log(tensors: dict[str, torch.Tensor], columns: list[str], n_rows: int) -> MetricsLog:
    log = MetricsLog()
    lists = {c: tensors[f"metrics/{c}"].tolist() for c in columns}
    log.rows = [{c: lists[c][i] for c in columns} for i in range(n_rows)]
    return log


# ---------------------------------------------------------------- saving


def save_checkpoint(sim, directory: str | Path, *, keep: int | None = None) -> Path:
    """Save ``sim`` as ``directory/ckpt_<step:08d>/`` atomically and return that path.

    A checkpoint of the same step that already exists is replaced.

    Args:
        sim: the ``Simulation``.
        directory: where checkpoints live (created if missing).
        keep: keep only the newest ``keep`` checkpoints in ``directory`` (None: keep all).
    """
    from . import __version__  # noqa: PLC0415  (flock/__init__ may import this module)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clean_stale(directory)
    step = int(sim.step_count)
    final = directory / f"ckpt_{step:08d}"
    tmp = directory / f".ckpt_{step:08d}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    saved = sim.state_dict()
    tensors = {
        "pos": saved["pos"].detach().cpu().contiguous(),
        "vel": saved["vel"].detach().cpu().contiguous(),
        "group": saved["group"].detach().cpu().contiguous(),
        "noise": saved["noise"].cpu().contiguous(),
    }
    metric_tensors, columns = _metrics_tensors(saved["metrics"])
    tensors.update(metric_tensors)
    sc = sim.scenario
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "time": _float_out(sim.time),
        "seed": int(sim.seed),
        "device": str(sim.device),
        "dtype": str(sim.dtype).removeprefix("torch."),
        "backend_requested": sim.requested_backend,
        "backend": sim.backend,
        "n_agents": int(saved["pos"].shape[0]),
        "dim": int(saved["pos"].shape[1]),
        "done": bool(saved["done"]),
        "last_shift": _float_out(saved["member_shift"][0]),
        "record_metrics": bool(getattr(sim, "record_metrics", True)),
        "metrics_columns": columns,
        "metrics_rows": len(saved["metrics"]),
        "point_forces": [{"center": [float(c) for c in f["center"]], "strength": float(f["strength"]),
                          "radius": _float_out(f["radius"])} for f in saved["point_forces"]],
        "scenario_name": sc.name,
        "scenario_source": str(sc.source) if sc.source is not None else None,
        "flock_version": __version__,
        "torch_version": torch.__version__,
    }
    tmp.mkdir()
    try:
        save_file(tensors, str(tmp / STATE_FILE), metadata={"format": FORMAT, "step": str(step)})
        _fsync_file(tmp / STATE_FILE)
        _write_text(tmp / SCENARIO_FILE, sc.to_yaml())
        meta["sha256"] = {name: _sha256(tmp / name) for name in (STATE_FILE, SCENARIO_FILE)}
        _write_text(tmp / META_FILE, json.dumps(meta, indent=2) + "\n")
        _fsync_dir(tmp)
        if final.exists():
            # rename() cannot replace a non-empty directory: move the old one aside first
            old = directory / f".ckpt_{step:08d}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep is not None:
        prune_checkpoints(directory, keep)
    return final


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints in ``directory`` (named ``ckpt_<step>``, all three files present), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = _NAME.fullmatch(path.name)
        if m and path.is_dir() and all((path / f).is_file() for f in FILES):
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint in ``directory`` whose meta.json reads, or None."""
    for path in reversed(list_checkpoints(directory)):
        try:
            _read_meta(path)
        except CheckpointError:
            continue
        return path
    return None


def prune_checkpoints(directory: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (each renamed aside first, so none is ever half there)."""
    if keep < 1:
        raise ValueError(f"keep: expected an integer >= 1, got {keep!r}")
    for path in list_checkpoints(directory)[:-keep]:
        trash = path.with_name(f".{path.name}.del-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)


class CheckpointEvery:
    """Save a checkpoint whenever the step count reaches a multiple of ``every``.

    A step hook: call it after each chunk of steps (``flock.recording.step_with_hooks``
    steps in chunks that stop at those multiples).

    Args:
        every: steps between checkpoints.
        directory: where they go.
        keep: keep only the newest ``keep`` (None: all).
    """

    def __init__(self, every: int, directory: str | Path, *, keep: int | None = None):
        if int(every) < 1:
            raise ScenarioError(f"checkpoint every: expected an integer >= 1, got {every!r}")
        if keep is not None and int(keep) < 1:
            raise ScenarioError(f"checkpoint keep: expected an integer >= 1, got {keep!r}")
        self.every = int(every)
        self.directory = Path(directory)
        self.keep = keep
        self.last: Path | None = None
        self._last_step: int | None = None

    def __call__(self, sim, *, force: bool = False) -> Path | None:
        """Save if ``sim.step_count`` is a multiple of ``every`` (or ``force``) and not saved yet; the path or None."""
        step = int(sim.step_count)
        if (not force and step % self.every != 0) or step == self._last_step:
            return None
        self.last = save_checkpoint(sim, self.directory, keep=self.keep)
        self._last_step = step
        return self.last

    def __repr__(self) -> str:
        return f"CheckpointEvery({self.every}, {str(self.directory)!r}, keep={self.keep})"


# ---------------------------------------------------------------- loading


def _read_meta(path: Path) -> dict:
    file = path / META_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; {path} is not a complete checkpoint")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{file}: unreadable ({exc}); the checkpoint is corrupt") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a flock checkpoint (expected format {FORMAT!r})")
    if meta.get("format_version") not in READS_VERSIONS:
        raise CheckpointError(f"{file}: checkpoint format version {meta.get('format_version')!r}; "
                              f"this flock reads versions {', '.join(map(str, READS_VERSIONS))}")
    missing = [k for k in ("step", "seed", "device", "dtype", "backend_requested", "done", "last_shift",
                           "metrics_columns", "metrics_rows") if k not in meta]
    if missing:
        raise CheckpointError(f"{file}: missing keys {missing}; the checkpoint is corrupt")
    return check_meta(file, meta)


def _scenario_for_resume(path: Path, meta: dict):
    """The checkpoint's scenario, validated without reading its initial-state files (the state
    comes from the checkpoint; the files the run started from may be gone). Relative paths
    stay anchored at the original scenario's folder."""
    file = path / SCENARIO_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; {path} is not a complete checkpoint")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CheckpointError(f"{file}: unreadable ({exc}); the checkpoint is corrupt") from None
    source = meta.get("scenario_source")
    return validate_scenario(data, source=source or None, label=str(file), read_files=False)


def _float_in(x) -> float:
    return float(x)  # "nan" / "inf" strings included


def load_checkpoint(path: str | Path, device=None):
    """Rebuild the ``Simulation`` saved in checkpoint ``path`` and return it, ready to continue.

    Args:
        path: a ``ckpt_<step>`` directory, or a directory of checkpoints (the newest complete one is taken).
        device: None (the device it was saved from), 'auto', 'cpu' or 'cuda'. On another device
            type the run continues too (the noise stream is counter-based), equal up to the
            devices' float rounding.
    Raises:
        CheckpointError: a missing, incomplete or corrupt file (the message names it).
        ScenarioError: the checkpoint's scenario.yaml does not validate.
    """
    from .simulation import Simulation  # noqa: PLC0415  (simulation imports much of flock)

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found")
    if not (path / META_FILE).exists() and not _NAME.fullmatch(path.name):
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no complete checkpoint (ckpt_<step>/ with {', '.join(FILES)}) in here")
        path = latest
    meta = _read_meta(path)
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"{state_file}: missing; {path} is not a complete checkpoint")
    check_checksums(path, meta, (STATE_FILE,))
    try:
        tensors = load_file(str(state_file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{state_file}: unreadable ({exc}); the checkpoint is corrupt") from None
    noise_key = "noise" if meta["format_version"] >= 2 else "generator"
    needed = ["pos", "vel", "group", noise_key] + [f"metrics/{c}" for c in meta["metrics_columns"]]
    missing = [k for k in needed if k not in tensors]
    if missing:
        raise CheckpointError(f"{state_file}: missing tensors {missing}; the checkpoint is corrupt")
    check_tensors(state_file, tensors, meta)
    sc = _scenario_for_resume(path, meta)
    check_checksums(path, meta)  # the rest (scenario.yaml) once it is known to read
    try:
        state = FlockState(pos=tensors["pos"], vel=tensors["vel"], group=tensors["group"])
        sim = Simulation(sc, device=meta["device"] if device is None else device, dtype=meta["dtype"],
                         backend=meta["backend_requested"], seed=meta["seed"], state=state, record_metrics=False)
    except ScenarioError as exc:
        raise CheckpointError(f"{state_file}: {exc}") from None
    restored = {
        "step_count": int(meta["step"]),
        "done": bool(meta["done"]),
        "member_shift": [_float_in(meta["last_shift"])],
        "member_done": [bool(meta["done"])],
        "point_forces": [{"center": f["center"], "strength": f["strength"], "radius": _float_in(f["radius"])}
                         for f in meta.get("point_forces", [])],
        "metrics": _metrics_log(tensors, meta["metrics_columns"], int(meta["metrics_rows"])),
        "noise": tensors["noise"] if noise_key == "noise" else torch.tensor([int(meta["step"])]),
    }
    sim.load_state_dict(restored)
    sim.record_metrics = bool(meta.get("record_metrics", True))
    return sim
