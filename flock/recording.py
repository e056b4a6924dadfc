"""Recording: a run's trajectory and metrics, written frame by frame to an HDF5 file in the H5MD layout.

A recording is what ``flocksim replay`` plays back and what analysis tools read: the
positions and velocities of every agent every ``every`` steps, the metrics time
series, the world box and the resolved scenario. The layout follows H5MD 1.1
(https://www.nongnu.org/h5md/), so generic H5MD readers understand it::

    h5md                     +-- version [1, 1]
        author               +-- name
        creator              +-- name "flock", +-- version
    particles/<group>        "all", or one group per species id (``group_names``)
        box                  +-- dimension D, +-- boundary ["periodic" | "none"] x D
            edges            [D] world size
        position             step [F] int64, time [F] float64, value [F, N, D]
        velocity             step, time (hard links to position's), value [F, N, D]
        n_agents             step, time (hard links), value [F] int64  (flock-specific)
    observables/<metric>     step [M] int64, time [M] float64, value [M] float64
    parameters               scenario_yaml (string dataset); world: size, origin, boundary attrs

A changing number of agents (``sim.add_agents`` during a run) is padded, as H5MD does
for a varying particle number: ``value`` has maxshape [None, None, D] and fill value
NaN, the slot axis grows when a group grows, earlier frames read NaN in the new slots,
and ``n_agents`` says how many slots each frame fills. ``add_agents`` appends, so an
agent keeps its slot for the whole run.

Crash safety: the file is flushed after every frame and every metrics row, so a run
killed at any point (even SIGKILL) leaves a file that opens with every frame flushed
before the kill. The default file format is HDF5 1.8 (H5MD's recommended "format
version 2"), which has no "open for writing" flag, so the file opens in any HDF5
tool. ``swmr=True`` writes the newest format in single-writer/multiple-reader mode
instead: its metadata writes are ordered so that even a kill in the middle of a flush
leaves a consistent file, and other processes can read it while the run goes on, but
after a crash it opens only with ``h5py.File(path, "r", swmr=True)`` (as
``read_recording`` does) or after ``h5clear -s``.
"""

from __future__ import annotations

import getpass
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import h5py
import numpy as np

from .errors import ScenarioError
from .input_files import file_problem

H5MD_VERSION = (1, 1)
CHUNK_BYTES = 1 << 20  # target size of one frame chunk of a value dataset


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _flock_version() -> str:
    from . import __version__  # noqa: PLC0415  (flock/__init__ imports this module's users)

    return __version__


def _growable(parent: h5py.Group, name: str, dtype) -> h5py.Dataset:
    """An empty 1-D dataset that grows one entry per frame."""
    return parent.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(1024,), dtype=dtype)


def _append(ds: h5py.Dataset, value) -> None:
    n = ds.shape[0]
    ds.resize(n + 1, axis=0)
    ds[n] = value


class H5Recorder:
    """Write a simulation's frames and metrics to an H5MD file as the run goes.

    Usage::

        with H5Recorder("run.h5", every=10) as rec:
            rec.attach(sim)          # metrics rows so far + a listener for new ones + frame 0
            for _ in range(100):
                sim.step(10)
                rec.record(sim)      # writes a frame when sim.step_count % every == 0
            rec.record(sim, force=True)   # the last state, whatever its step

    ``step_with_hooks(sim, n, [rec])`` steps in chunks that land on every multiple of
    ``every``, so no frame is missed.

    Args:
        path: the .h5 file to create (replaced if it exists).
        every: ``record(sim)`` writes a frame only when ``sim.step_count`` is a multiple of this.
        group_names: names of the species ids (``group_names[id]``): one particle group per id.
            None: one group "all", unless the first recorded state holds several group ids
            (then ``group_<id>``). Ids that first appear later get their group then (earlier
            frames are empty); in "all" mode they are recorded into "all".
        velocity: also record velocities.
        swmr: newest HDF5 format in SWMR mode (see the module docstring).
        compression: None or an h5py filter name ("gzip", "lzf") for the frame datasets.
        author: H5MD author name (default: the login name).
        append: continue the recording already in ``path`` (a resumed run): at the first
            frame or ``attach``, frames and metrics rows after the simulation's step are
            dropped (they belong to the run that was cut off), then recording goes on. The
            file's groups, velocity choice and parameters are kept. Without a file at
            ``path`` a new one is started.
    """

    def __init__(self, path: str | Path, *, every: int = 1, group_names: Iterable[str] | None = None,
                 velocity: bool = True, swmr: bool = False, compression: str | None = None,
                 author: str | None = None, append: bool = False):
        if int(every) < 1:
            raise ScenarioError(f"record every: expected an integer >= 1, got {every!r}")
        self.path = Path(path)
        self.every = int(every)
        self.group_names = list(group_names) if group_names is not None else None
        self.velocity = velocity
        self.swmr = swmr
        self.compression = compression
        self.n_frames = 0
        self.closed = False
        self._frame_steps: list[int] = []
        self._frame_times: list[float] = []
        self._per_group: bool | None = None
        self._groups: dict[str, dict] = {}       # name -> {"id": int | None, "capacity": int}
        self._observables: dict[str, str] = {}   # column -> the column whose step/time it shares
        self._last_metric_step: int | None = None
        self._swmr_on = False
        self._handles: dict[str, h5py.Dataset] = {}
        self._sim_written = False
        self._truncate_pending = False
        libver = "latest" if swmr else ("v108", "v108")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if append and self.path.exists():
            try:
                self._file = h5py.File(self.path, "a", libver=libver)
            except OSError as exc:
                hint = ("; a SWMR file whose writer was killed needs `h5clear -s FILE` first"
                        if "already open for write" in str(exc) else "")
                raise ScenarioError(f"{self.path}: cannot append to this recording ({exc}){hint}") from None
            self._load_existing()
            return
        self._file = h5py.File(self.path, "w", libver=libver)
        h5md = self._file.create_group("h5md")
        h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
        h5md.create_group("author").attrs["name"] = author if author is not None else _default_author()
        creator = h5md.create_group("creator")
        creator.attrs["name"] = "flock"
        creator.attrs["version"] = _flock_version()
        self._file.create_group("particles", track_order=True)
        self._file.create_group("observables", track_order=True)
        self._file.create_group("parameters")
        self._file.flush()

    def _load_existing(self) -> None:
        """Pick up the structure of a recording being appended to; cut a crash-torn last frame."""
        fh = self._file
        for required in ("h5md", "particles", "observables", "parameters"):
            if required not in fh:
                raise ScenarioError(f"{self.path}: cannot append: no '{required}' group; not a flock recording")
        self._sim_written = "scenario_yaml" in fh["parameters"]
        names = [n for n in fh["particles"] if "position" in fh["particles"][n]]
        if names:
            self._per_group = names != ["all"]
            self.velocity = all("velocity" in fh["particles"][n] for n in names)
        for name in names:
            g = fh["particles"][name]
            gid = g.attrs.get("group_id")
            self._groups[name] = {"id": None if gid is None else int(gid), "capacity": g["position/value"].shape[1]}
        obs = fh["observables"]
        owners: list[str] = []
        for name in obs:
            owner = next((o for o in owners if obs[o]["step"] == obs[name]["step"]), None)
            if owner is None:
                owners.append(name)
                owner = name
            self._observables[name] = owner
        self._truncate_pending = True
        self._truncate_after(None)

    def _frame_datasets(self, name: str) -> list[h5py.Dataset]:
        g = self._file["particles"][name]
        elements = ["position", "velocity"] if self.velocity else ["position"]
        return ([g[f"{e}/value"] for e in elements] + [g["n_agents/value"], g["position/step"], g["position/time"]])

    def _truncate_after(self, step: int | None) -> None:
        """Drop frames and metrics rows after ``step`` (None: only a crash-torn tail)."""
        groups = list(self._groups)
        if groups:
            n = min(ds.shape[0] for name in groups for ds in self._frame_datasets(name))
            steps = self._file["particles"][groups[0]]["position/step"][:n]
            if step is not None:
                n = int(np.searchsorted(steps, step, side="right"))
            for name in groups:
                for ds in self._frame_datasets(name):
                    ds.resize(n, axis=0)
            self._frame_steps = [int(x) for x in steps[:n]]
            self._frame_times = [float(x) for x in self._file["particles"][groups[0]]["position/time"][:n]]
            self.n_frames = n
        obs = self._file["observables"]
        self._last_metric_step = None
        for owner in set(self._observables.values()):
            members = [c for c, o in self._observables.items() if o == owner]
            datasets = [obs[owner]["step"], obs[owner]["time"]] + [obs[c]["value"] for c in members]
            m = min(ds.shape[0] for ds in datasets)
            steps = obs[owner]["step"][:m]
            if step is not None:
                m = int(np.searchsorted(steps, step, side="right"))
            for ds in datasets:
                ds.resize(m, axis=0)
            if m:
                last = int(steps[m - 1])
                self._last_metric_step = last if self._last_metric_step is None else max(last, self._last_metric_step)
        self._handles.clear()
        self._file.flush()

    # ------------------------------------------------------------ structure (SWMR-aware)

    def _ds(self, path: str) -> h5py.Dataset:
        ds = self._handles.get(path)
        if ds is None:
            ds = self._handles[path] = self._file[path]
        return ds

    def _open_structure(self) -> None:
        """Make new objects creatable: a file in SWMR mode is closed and reopened without it."""
        if self._swmr_on:
            self._handles.clear()
            self._file.close()
            self._file = h5py.File(self.path, "a", libver="latest")
            self._swmr_on = False

    def _close_structure(self) -> None:
        if self.swmr and not self._swmr_on:
            self._handles.clear()
            self._file.swmr_mode = True
            self._swmr_on = True

    def _setup(self, sim) -> None:
        """World box and parameters, written once from the first simulation seen."""
        self._open_structure()
        sc = sim.scenario
        params = self._file["parameters"]
        params.create_dataset("scenario_yaml", data=sc.to_yaml(), dtype=h5py.string_dtype())
        world = params.create_group("world")
        world.attrs["size"] = np.asarray(sc.world.size, dtype=np.float64)
        world.attrs["origin"] = np.asarray(sc.world.origin if sc.world.origin is not None
                                           else [0.0] * sc.world.dims, dtype=np.float64)
        world.attrs["boundary"] = sc.world.boundary
        for key, value in (("seed", sim.seed), ("dt", sc.run.dt), ("device", str(sim.device)),
                           ("dtype", str(sim.dtype).removeprefix("torch.")), ("backend", sim.backend),
                           ("flock_version", _flock_version())):
            params.attrs[key] = value
        if sc.name:
            params.attrs["scenario_name"] = sc.name
        if sc.source is not None:
            params.attrs["scenario_source"] = str(sc.source)
        self._sim_written = True

    def _group_name(self, gid: int) -> str:
        if self.group_names is not None and 0 <= gid < len(self.group_names):
            return self.group_names[gid]
        return f"group_{gid}"

    def _add_particle_group(self, name: str, gid: int | None, n: int, sim) -> None:
        dim, dtype = sim.state.dim, np.dtype(str(sim.dtype).removeprefix("torch."))
        sc = sim.scenario
        grp = self._file["particles"].create_group(name)
        if gid is not None:
            grp.attrs["group_id"] = gid
        box = grp.create_group("box")
        box.attrs["dimension"] = np.int32(dim)
        periodic = "periodic" if sc.world.boundary == "wrap" else "none"
        box.attrs["boundary"] = np.array([periodic] * dim, dtype=h5py.string_dtype())
        box.create_dataset("edges", data=np.asarray(sc.world.size, dtype=np.float64))
        rows = max(1, min(max(n, 256), CHUNK_BYTES // (dim * dtype.itemsize)))
        pos = grp.create_group("position")
        step = _growable(pos, "step", np.int64)
        time = _growable(pos, "time", np.float64)
        elements = ["position", "velocity"] if self.velocity else ["position"]
        for element in elements:
            g = grp.require_group(element)
            g.create_dataset("value", shape=(0, n, dim), maxshape=(None, None, dim), chunks=(1, rows, dim),
                             dtype=dtype, fillvalue=np.nan, compression=self.compression)
            if element != "position":
                g["step"], g["time"] = step, time
        counts = grp.create_group("n_agents")
        counts["step"], counts["time"] = step, time
        _growable(counts, "value", np.int64)
        # a group born mid-run: its earlier frames exist and are empty
        f = self.n_frames
        if f:
            step.resize(f, axis=0)
            step[:] = self._frame_steps
            time.resize(f, axis=0)
            time[:] = self._frame_times
            for element in elements:
                grp[element]["value"].resize(f, axis=0)
            counts["value"].resize(f, axis=0)
            counts["value"][:] = 0
        self._groups[name] = {"id": gid, "capacity": n}

    def _ensure_observables(self, columns: list[str]) -> None:
        """``observables/<column>`` for each new column; columns created together share one step/time."""
        new = [c for c in columns if c not in ("step", "time") and c not in self._observables]
        if not new:
            return
        self._open_structure()
        obs = self._file["observables"]
        shared = None
        for c in new:
            g = obs.create_group(c)
            if shared is None:
                shared = (_growable(g, "step", np.int64), _growable(g, "time", np.float64))
            else:
                g["step"], g["time"] = shared
            _growable(g, "value", np.float64)
            self._observables[c] = new[0]

    def _split(self, group: np.ndarray) -> dict[str, np.ndarray | slice]:
        """Particle group name -> the rows of the state it holds."""
        if not self._per_group:
            return {"all": slice(None)}
        return {self._group_name(int(gid)): np.flatnonzero(group == gid) for gid in np.unique(group)}

    # ------------------------------------------------------------ writing

    def _truncate(self, step: int) -> None:
        if self._truncate_pending:
            self._truncate_pending = False
            self._open_structure()
            self._truncate_after(step)

    def attach(self, sim) -> "H5Recorder":
        """Record the current frame (if its step is due) and ``sim``'s metrics rows so far, and listen for new rows.

        Frames and rows at steps already in the file are not written again.
        """
        self._truncate(int(sim.step_count))
        if not self._sim_written:
            self._setup(sim)
        # create what is known now: a file in SWMR mode is reopened for every object created later
        self._ensure_observables(sim.metrics.columns)
        self.record(sim)
        for row in sim.metrics.rows:
            self.record_metrics(row)
        sim.metrics.add_listener(self.record_metrics)
        return self

    def __call__(self, sim) -> None:
        """A step hook (see ``step_with_hooks``): ``record(sim)``."""
        self.record(sim)

    def record(self, sim, *, force: bool = False) -> bool:
        """Write ``sim``'s current state as a frame if its step is a multiple of ``every`` (or ``force``).

        Frames go forward in steps (as H5MD asks): a step at or before the last frame's is
        not written. Returns whether a frame was written.
        """
        if self.closed:
            raise ValueError(f"{self.path}: the recorder is closed")
        step = int(sim.step_count)
        if not force and step % self.every != 0:
            return False
        self._truncate(step)
        if self._frame_steps and step <= self._frame_steps[-1]:
            return False
        state = sim.state
        pos = state.pos.detach().cpu().numpy()
        vel = state.vel.detach().cpu().numpy() if self.velocity else None
        group = state.group.detach().cpu().numpy()
        if self._per_group is None:
            self._per_group = self.group_names is not None or len(np.unique(group)) > 1
        parts = self._split(group)
        new = [name for name in parts if name not in self._groups]
        if not self._sim_written or new:
            self._open_structure()
            if not self._sim_written:
                self._setup(sim)
            for name in new:
                rows = parts[name]
                n = pos.shape[0] if isinstance(rows, slice) else len(rows)
                gid = None if name == "all" else int(group[rows[0]])
                self._add_particle_group(name, gid, n, sim)
        self._close_structure()
        f = self.n_frames
        time = float(sim.time)
        for name, info in self._groups.items():
            rows = parts.get(name)
            n = 0 if rows is None else (pos.shape[0] if isinstance(rows, slice) else len(rows))
            base = f"particles/{name}"
            arrays = [("position", pos)] + ([("velocity", vel)] if self.velocity else [])
            if n > info["capacity"]:
                for element, _ in arrays:
                    self._ds(f"{base}/{element}/value").resize(n, axis=1)
                info["capacity"] = n
            for element, data in arrays:
                ds = self._ds(f"{base}/{element}/value")
                ds.resize(f + 1, axis=0)
                if n:
                    ds[f, :n] = data[rows]
            _append(self._ds(f"{base}/n_agents/value"), n)
            # step and time last: a reader takes the shortest element as the frame count
            _append(self._ds(f"{base}/position/step"), step)
            _append(self._ds(f"{base}/position/time"), time)
        self._frame_steps.append(step)
        self._frame_times.append(time)
        self.n_frames += 1
        self._file.flush()
        return True

    def record_metrics(self, row: dict[str, float]) -> None:
        """Append one metrics row (a ``MetricsLog`` row: ``step``, ``time`` and metric columns).

        Every column but step and time becomes ``observables/<column>``. Rows go forward
        in steps: a row at or before the last row's step is skipped. Usable as
        ``sim.metrics.add_listener(recorder.record_metrics)``; rows arriving after
        ``close()`` are ignored, so a listener left on a simulation does no harm.
        """
        if self.closed:
            return
        step = int(row["step"])
        self._truncate(step - 1)  # appending: the old run's rows from this step on are replaced
        if self._last_metric_step is not None and step <= self._last_metric_step:
            return
        time = float(row.get("time", math.nan))
        columns = [c for c in row if c not in ("step", "time")]
        self._ensure_observables(columns)
        self._close_structure()
        owners: set[str] = set()
        for c in columns:
            value = row[c]
            _append(self._ds(f"observables/{c}/value"), math.nan if value is None else float(value))
            owners.add(self._observables[c])
        for owner in sorted(owners):
            _append(self._ds(f"observables/{owner}/step"), step)
            _append(self._ds(f"observables/{owner}/time"), time)
        self._last_metric_step = step
        self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._handles.clear()
            self._file.close()

    def __enter__(self) -> "H5Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"H5Recorder({str(self.path)!r}, every={self.every}, frames={self.n_frames})"


# ---------------------------------------------------------------- stepping with hooks


def step_with_hooks(sim, n: int, hooks: Iterable[Callable]) -> int:
    """Advance ``sim`` by ``n`` steps, calling each hook whenever the step count reaches a multiple of its ``every``.

    A hook is a callable ``hook(sim)`` with an ``every`` attribute (``H5Recorder``,
    ``flock.checkpoint.CheckpointEvery``). The simulation is stepped in chunks that stop
    at every such multiple. Stops early when the simulation is done (converged mean
    shift). Returns the steps taken.
    """
    hooks = list(hooks)
    taken = 0
    while taken < n and not sim.done:
        k = n - taken
        for hook in hooks:
            k = min(k, hook.every - sim.step_count % hook.every)
        before = sim.step_count
        sim.step(k)
        moved = sim.step_count - before
        taken += moved
        for hook in hooks:
            if sim.step_count % hook.every == 0:
                hook(sim)
        if moved < k:
            break
    return taken


# ---------------------------------------------------------------- reading


@dataclass
class Recording:
    """A recording read back (``read_recording``).

    Attributes:
        positions: [F, N, D] float, world units; NaN in slots empty in a frame.
        velocities: [F, N, D] float, or None when velocities were not recorded.
        steps: [F] int64 step of each frame. times: [F] float64 simulated time.
        n_agents: [F] int64 agents in each frame.
        group: [N] int64 group (species) id of each slot (0 in an "all" recording).
        group_names: the particle groups, in slot order; ``group_slices[name]`` their slots.
        metrics: "step", "time" and one [M] float64 array per metric column, aligned
            (NaN where a column has no value at a step).
        scenario_yaml: the resolved scenario (``Scenario.to_yaml()``), or None.
        world_size, world_origin: [D] world box, world units. boundary: flock's world boundary
            ("wrap", "soft", "reflect", "open"). periodic: per axis, from the H5MD box.
        path: the file read.
    """

    positions: np.ndarray
    velocities: np.ndarray | None
    steps: np.ndarray
    times: np.ndarray
    n_agents: np.ndarray
    group: np.ndarray
    group_names: list[str]
    group_slices: dict[str, slice]
    metrics: dict[str, np.ndarray]
    scenario_yaml: str | None
    world_size: tuple[float, ...]
    world_origin: tuple[float, ...]
    boundary: str | None
    periodic: tuple[bool, ...]
    path: Path | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.steps.shape[0])

    @property
    def dim(self) -> int:
        return int(self.positions.shape[2])

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(positions [n, D], velocities [n, D] or None) of frame ``i`` with its empty slots dropped."""
        keep = ~np.isnan(self.positions[i]).any(axis=1)
        vel = self.velocities[i][keep] if self.velocities is not None else None
        return self.positions[i][keep], vel


def _open_for_reading(path: Path) -> h5py.File:
    problem = file_problem(path)
    if problem == "file not found":
        raise ScenarioError(f"{path}: recording not found")
    if problem is not None:  # a FIFO would block h5py, a folder or device is no recording
        raise ScenarioError(f"{path}: {problem}")
    try:
        return h5py.File(path, "r")
    except OSError as first:
        try:  # a SWMR file whose writer was killed still says "open for writing"
            return h5py.File(path, "r", swmr=True)
        except OSError:
            raise ScenarioError(f"{path}: not a readable HDF5 recording ({first})") from None


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_metrics(obs: h5py.Group) -> dict[str, np.ndarray]:
    columns: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, g in obs.items():
        m = min(g["step"].shape[0], g["time"].shape[0], g["value"].shape[0])
        columns[name] = (g["step"][:m], g["time"][:m], g["value"][:m])
    if not columns:
        return {}
    steps = np.unique(np.concatenate([c[0] for c in columns.values()]))
    times = np.full(steps.shape, np.nan)
    out: dict[str, np.ndarray] = {"step": steps.astype(np.int64), "time": times}
    for name, (s, t, v) in columns.items():
        idx = np.searchsorted(steps, s)
        times[idx] = t
        col = np.full(steps.shape, np.nan)
        col[idx] = v
        out[name] = col
    return out


def read_recording(path: str | Path, *, frames: slice | None = None) -> Recording:
    """Read a recording written by ``H5Recorder`` (or any H5MD file with position data).

    A file cut short by a crash is read up to its last complete frame: the frame
    count is the shortest of the particle groups' step, time and value datasets.

    Args:
        path: the .h5 file.
        frames: a slice of frames to read (default: all).
    Raises:
        ScenarioError: missing file, not HDF5, or no ``particles`` group with positions.
    """
    path = Path(path)
    with _open_for_reading(path) as fh:
        parts = fh.get("particles")
        names = [n for n in (parts.keys() if parts is not None else []) if "position" in parts[n]]
        if not names:
            raise ScenarioError(f"{path}: no particles/<group>/position in this file; not a flock recording")
        groups = [parts[n] for n in names]
        has_vel = all("velocity" in g for g in groups)
        lengths = []
        for g in groups:
            lengths += [g["position/step"].shape[0], g["position/value"].shape[0]]
            if "time" in g["position"]:
                lengths.append(g["position/time"].shape[0])
            if has_vel:
                lengths.append(g["velocity/value"].shape[0])
            if "n_agents" in g:
                lengths.append(g["n_agents/value"].shape[0])
        n_total = min(lengths)
        start, stop, stride = (frames if frames is not None else slice(None)).indices(n_total)
        if stride > 0:
            sel, post = slice(start, stop, stride), slice(None)
        else:  # h5py reads forward only
            sel, post = slice(0, n_total), frames

        def read(ds):
            return ds[sel][post]

        first = groups[0]
        steps = read(first["position/step"]).astype(np.int64)
        times = (read(first["position/time"]).astype(np.float64) if "time" in first["position"]
                 else steps.astype(np.float64))
        pos_parts, vel_parts, counts, gids, slices = [], [], [], [], {}
        start = 0
        for name, g in zip(names, groups):
            p = read(g["position/value"])
            pos_parts.append(p)
            if has_vel:
                vel_parts.append(read(g["velocity/value"]))
            if "n_agents" in g:
                counts.append(read(g["n_agents/value"]).astype(np.int64))
            else:
                counts.append((~np.isnan(p).any(axis=2)).sum(axis=1).astype(np.int64))
            gids.append(np.full(p.shape[1], int(g.attrs.get("group_id", 0)), dtype=np.int64))
            slices[name] = slice(start, start + p.shape[1])
            start += p.shape[1]
        box = first.get("box")
        periodic = tuple(_text(b) == "periodic" for b in box.attrs["boundary"]) if box is not None else ()
        edges = tuple(float(x) for x in box["edges"][()]) if box is not None and "edges" in box else ()
        params = fh.get("parameters")
        yaml_text = _text(params["scenario_yaml"][()]) if params is not None and "scenario_yaml" in params else None
        world = params.get("world") if params is not None else None
        size = tuple(float(x) for x in world.attrs["size"]) if world is not None else edges
        origin = (tuple(float(x) for x in world.attrs["origin"]) if world is not None
                  else (0.0,) * len(size))
        boundary = _text(world.attrs["boundary"]) if world is not None else None
        attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v.item() if hasattr(v, "item") else v)
                 for k, v in (params.attrs.items() if params is not None else [])}
        metrics = _read_metrics(fh["observables"]) if "observables" in fh else {}
    positions = np.concatenate(pos_parts, axis=1)
    velocities = np.concatenate(vel_parts, axis=1) if has_vel else None
    return Recording(positions=positions, velocities=velocities, steps=steps, times=times,
                     n_agents=np.sum(counts, axis=0), group=np.concatenate(gids), group_names=names,
                     group_slices=slices, metrics=metrics, scenario_yaml=yaml_text, world_size=size,
                     world_origin=origin, boundary=boundary, periodic=periodic, path=path, attrs=attrs)
