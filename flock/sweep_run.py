"""Running a sweep: tasks, engines (in-process, a local process pool, Ray tasks), results.

The unit of work is a *task*: one parameter point's replicates batched as one
``EnsembleSimulation`` (a seed ensemble) where the scenario allows it, else one run.
Tasks are fixed by the sweep alone (never by the engine or the number of workers), and
each run's seed by its index, so a run's values are the same wherever it runs; resuming
re-runs a whole task and keeps only the runs that were missing.

Engines never write results: they hand each finished task's rows back to the driver,
which appends them to the results table as they come:

    out/manifest.csv         run_id, point, replicate, seed, one column per parameter
    out/results.parts/*.parquet   one small file per finished task, written atomically
    out/results.csv          one line per finished run, flushed as it finishes
    out/results.parquet      the whole table (the parts merged), written when the sweep ends
                             and at the start of --resume; same rows as results.csv
    out/timings.csv          wall seconds per run (kept out of the results: they vary)
    out/sweep.json           what the folder holds (a fingerprint --resume checks)

A killed sweep keeps every task whose part was written; ``--resume`` reads the parts and
the table, rewrites results.csv to match, and runs only the runs that are missing.

Local engine: ``workers == 1`` runs tasks in this process; more workers are a
``ProcessPoolExecutor`` (spawned, each with ``threads`` torch threads, default
cores // workers). Ray: each task is a ``ray.remote`` call with ``num_cpus`` and
``num_gpus`` (fractions let small runs share a GPU); results stream back with
``ray.wait``. Ray is imported only when asked for (``pip install flocksim[ray]``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import ScenarioError
from .scenario import Scenario
from .sweep_spec import RUN_COLUMNS, MetricKeep, Run, Sweep

PARTS = "results.parts"
NOT_KEPT = ("step", "time", "n_agents")  # kept only when asked for by name


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """What one engine call runs: ``runs`` of one point, as one ensemble when ``batch``."""

    index: int
    point: int
    runs: tuple[Run, ...]
    scenario: Scenario
    steps: int
    keep: dict[str, MetricKeep]
    batch: bool
    device: str | None = None
    dtype: str | None = None
    backend: str | None = None
    threads: int | None = None


def metric_columns(keep: dict[str, MetricKeep]) -> list[tuple[str, str]]:
    """(column, kind) of the results table for a keep spec; kind: scalar or series."""
    cols = []
    for name, k in keep.items():
        if k.final:
            cols.append((f"{name}_final", "scalar"))
        if k.mean_last is not None:
            cols.append((f"{name}_mean_last_{k.mean_last}", "scalar"))
        if k.series:
            cols.append((f"{name}_series", "series"))
    return cols


def reduce_metrics(rows: list[dict[str, Any]], keep: dict[str, MetricKeep]) -> dict[str, Any]:
    """The kept values of one run's metrics rows (``MetricsLog.rows``).

    ``mean_last: K`` is the mean over the recorded rows with step > last step - K
    (``math.fsum``: exact, order-independent). Raises ScenarioError for a metric the
    run did not record.
    """
    if not rows:
        raise ScenarioError("the run recorded no metrics")
    out: dict[str, Any] = {}
    last_step = rows[-1]["step"]
    for name, k in keep.items():
        if name not in rows[-1]:
            raise ScenarioError(f"metrics.{name}: not recorded by this scenario; it records "
                                f"{', '.join(rows[-1])}")
        if k.final:
            out[f"{name}_final"] = float(rows[-1][name])
        if k.mean_last is not None:
            tail = [float(r[name]) for r in rows if r["step"] > last_step - k.mean_last]
            out[f"{name}_mean_last_{k.mean_last}"] = math.fsum(tail) / len(tail)
        if k.series:
            out[f"{name}_series"] = [float(r[name]) for r in rows]
    return out


def _failed(run: Run, exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip().replace("\n", " | ")
    return {"run_id": run.run_id, "status": "failed", "error": f"{type(exc).__name__}: {text}"[:2000], "steps": None}


def _ok(run: Run, rows: list[dict], keep) -> dict[str, Any]:
    return {"run_id": run.run_id, "status": "ok", "error": "", "steps": int(rows[-1]["step"]),
            **reduce_metrics(rows, keep)}


def _run_single(task: Task, run: Run) -> dict[str, Any]:
    from .simulation import Simulation

    try:
        sim = Simulation.from_scenario(task.scenario, device=task.device, dtype=task.dtype,
                                       backend=task.backend, seed=run.seed)
        sim.step(task.steps)
        return _ok(run, sim.metrics.rows, task.keep)
    except Exception as exc:  # noqa: BLE001  (a failed run is recorded; the sweep goes on)
        return _failed(run, exc)


def execute_task(task: Task) -> tuple[list[dict[str, Any]], float]:
    """Run one task; (one outcome row per run, wall seconds). Never raises for a failing run."""
    start = time.perf_counter()
    if task.batch and len(task.runs) > 1:
        from .ensemble import EnsembleSimulation

        try:
            ens = EnsembleSimulation.from_scenario(task.scenario, seeds=[r.seed for r in task.runs],
                                                   device=task.device, dtype=task.dtype, backend=task.backend)
        except ScenarioError:
            ens = None  # this scenario cannot be batched: one run at a time
        if ens is not None:
            try:
                ens.step(task.steps)
                rows = []
                for e, run in enumerate(task.runs):
                    try:
                        rows.append(_ok(run, ens.member_metrics(e).rows, task.keep))
                    except Exception as exc:  # noqa: BLE001
                        rows.append(_failed(run, exc))
            except Exception as exc:  # noqa: BLE001
                rows = [_failed(run, exc) for run in task.runs]
            return rows, time.perf_counter() - start
    return [_run_single(task, run) for run in task.runs], time.perf_counter() - start


def _set_threads(threads: int | None) -> None:
    """torch's (and numba's, when loaded) threads for the runs of this process."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
        numba = sys.modules.get("numba")
        if numba is not None:
            numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))


def _execute_in_worker(task: Task) -> tuple[list[dict[str, Any]], float]:
    _set_threads(task.threads)
    return execute_task(task)


def probe(sweep: Sweep, backend: str | None) -> tuple[list[str], bool]:
    """(metric columns a run records, whether replicates batch as an ensemble), from the first
    point's scenario built on the CPU (no step is taken)."""
    from .ensemble import EnsembleSimulation
    from .simulation import Simulation

    scenario = sweep.points[0].scenario
    probe_backend = "dense" if backend in (None, "triton") or scenario.run.backend == "triton" else backend
    try:
        ens = EnsembleSimulation.from_scenario(scenario, seeds=[0], device="cpu", backend=probe_backend)
        return ens.member_metrics(0).columns, True
    except ScenarioError:
        sim = Simulation.from_scenario(scenario, device="cpu", backend=probe_backend)
        return sim.metrics.columns, False


def plan_tasks(sweep: Sweep, keep: dict[str, MetricKeep], *, batch: bool, device=None, dtype=None,
               backend=None, threads=None) -> list[Task]:
    """The sweep's tasks in a fixed order: one per point when batching, else one per run."""
    tasks: list[Task] = []
    for point in sweep.points:
        groups = [tuple(point.runs)] if batch and len(point.runs) > 1 else [(r,) for r in point.runs]
        for runs in groups:
            tasks.append(Task(len(tasks), point.index, runs, point.scenario, sweep.steps_of(point), keep,
                              batch and len(runs) > 1, device, dtype, backend, threads))
    return tasks


# ---------------------------------------------------------------- engines


def _local_engine(tasks: list[Task], workers: int) -> Iterator[tuple[Task, list[dict], float]]:
    if workers <= 1:
        import torch

        before = torch.get_num_threads()
        try:
            for task in tasks:
                _set_threads(task.threads)
                yield (task, *execute_task(task))
        finally:
            torch.set_num_threads(before)
        return
    import multiprocessing

    # spawn, not fork: forked torch (and CUDA) state is not safe in a child
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        todo = iter(tasks)
        pending = {}
        for task in todo:
            pending[pool.submit(_execute_in_worker, task)] = task
            if len(pending) >= 4 * workers:
                break
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    try:
                        rows, seconds = fut.result()
                    except Exception as exc:  # noqa: BLE001  (a worker that died: its runs fail)
                        rows, seconds = [_failed(r, exc) for r in task.runs], math.nan
                    yield task, rows, seconds
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending[pool.submit(_execute_in_worker, nxt)] = nxt
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # stopped early: queued tasks never start


def import_ray():
    """``ray``, or a ScenarioError saying how to install it."""
    try:
        import ray  # noqa: PLC0415  (optional: pip install flocksim[ray])
    except ImportError as exc:
        raise ScenarioError(f"--ray-address: Ray is not installed ({exc}); pip install 'flocksim[ray]'") from None
    return ray


def _ray_engine(tasks: list[Task], address: str, num_cpus: float, num_gpus: float | None) -> Iterator:
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001
            raise ScenarioError(f"--ray-address {address}: cannot connect to a Ray cluster ({exc})") from None
    if num_gpus is None:
        on_gpu = any((t.device or t.scenario.run.device).startswith("cuda") for t in tasks[:1])
        auto = any((t.device or t.scenario.run.device) == "auto" for t in tasks[:1])
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        num_gpus = 0.25 if on_gpu or (auto and has_gpu) else 0.0
    remote = ray.remote(_execute_in_worker).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
    window = max(16, 4 * int(ray.cluster_resources().get("CPU", 1)))
    todo = iter(tasks)
    pending = {}
    for task in todo:
        pending[remote.remote(task)] = task
        if len(pending) >= window:
            break
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    rows, seconds = ray.get(ref)
                except Exception as exc:  # noqa: BLE001  (a task that died on its node: its runs fail)
                    rows, seconds = [_failed(r, exc) for r in task.runs], math.nan
                yield task, rows, seconds
                nxt = next(todo, None)
                if nxt is not None:
                    pending[remote.remote(nxt)] = nxt
    finally:
        for ref in pending:  # stopped early: what has not run is not run
            ray.cancel(ref)


# ---------------------------------------------------------------- the results table


def _pa():
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    return pa, pq


def results_schema(sweep: Sweep, columns: list[tuple[str, str]]):
    """The pyarrow schema: run columns, parameters (types from their values), outcome, metrics."""
    pa, _ = _pa()
    fields = [pa.field(c, pa.int64()) for c in RUN_COLUMNS]
    for key in sweep.keys:
        values = [p.values[key] for p in sweep.points]
        try:
            typ = pa.array(values).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            typ = pa.string()
        fields.append(pa.field(key, typ))
    fields += [pa.field("status", pa.string()), pa.field("error", pa.string()), pa.field("steps", pa.int64())]
    for name, kind in columns:
        fields.append(pa.field(name, pa.float64() if kind == "scalar" else pa.list_(pa.float64())))
    return pa.schema(fields)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value)
    return value


def _atomic_write_table(table, path: Path) -> None:
    _, pq = _pa()
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_csv(path: Path, rows: Iterable[dict], names: list[str], mode: str) -> None:
    with open(path, mode, newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        if mode == "w":
            writer.writeheader()
        writer.writerows({k: _cell(r.get(k)) for k in names} for r in rows)


def read_results(out: Path):
    """The results table of a sweep folder: results.parquet and any parts not merged yet,
    one row per run id (a part wins over the table), sorted by run id; None if there is none."""
    pa, pq = _pa()
    tables = []
    parts = sorted((out / PARTS).glob("*.parquet")) if (out / PARTS).is_dir() else []
    for part in parts:
        tables.append(pq.read_table(part))
    if (out / "results.parquet").is_file():
        tables.append(pq.read_table(out / "results.parquet"))
    if not tables:
        return None
    schema = tables[0].schema
    table = pa.concat_tables([t.cast(schema) for t in tables])
    ids = table.column("run_id").to_pylist()
    seen, keep = set(), []
    for i, rid in enumerate(ids):
        if rid not in seen:
            seen.add(rid)
            keep.append(i)
    table = table.take(pa.array(keep, pa.int64()))
    import pyarrow.compute as pc  # noqa: PLC0415

    return table.take(pc.sort_indices(table, [("run_id", "ascending")]))


class ResultsWriter:
    """Appends finished runs: a Parquet part per task (atomic), then their results.csv lines
    (flushed); ``consolidate`` merges everything into results.parquet and rewrites results.csv."""

    def __init__(self, out: Path, schema):
        self.out = out
        self.schema = schema
        self.names = schema.names
        (out / PARTS).mkdir(parents=True, exist_ok=True)

    def append(self, task_index: int, rows: list[dict]) -> None:
        """Write one finished task's full rows (run columns, parameters, outcome, metrics)."""
        pa, _ = _pa()
        table = pa.Table.from_pylist([{k: r.get(k) for k in self.names} for r in rows], schema=self.schema)
        first = rows[0]["run_id"]
        _atomic_write_table(table, self.out / PARTS / f"task-{task_index:08d}-run-{first:08d}.parquet")
        _write_csv(self.out / "results.csv", rows, self.names, "a")

    def consolidate(self, drop_failed: bool = False):
        """Merge parts and table into results.parquet, rewrite results.csv from it; the table."""
        table = read_results(self.out)
        pa, _ = _pa()
        if table is None:
            table = pa.Table.from_pylist([], schema=self.schema)
        table = table.cast(self.schema)
        if drop_failed:
            import pyarrow.compute as pc  # noqa: PLC0415

            table = table.filter(pc.equal(table.column("status"), "ok"))
        _atomic_write_table(table, self.out / "results.parquet")
        for part in (self.out / PARTS).glob("*"):
            part.unlink()
        tmp = self.out / "results.csv.tmp"
        _write_csv(tmp, table.to_pylist(), self.names, "w")
        os.replace(tmp, self.out / "results.csv")
        return table


# ---------------------------------------------------------------- the driver


@dataclass
class SweepOutcome:
    """What ``run_sweep`` did: runs in the sweep (or shard), done before, run now, failed now."""

    out: Path
    total: int
    skipped: int
    ran: int = 0
    failed: int = 0
    seconds: float = 0.0
    engine: str = "local"
    table: Any = None
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False


def default_workers(n_tasks: int, device: str) -> int:
    """One worker per core (CPU runs) or one (a GPU: the batch fills it), at most one per task."""
    if device.startswith("cuda") or (device == "auto" and _cuda_available()):
        return 1
    return max(1, min(_cores(), n_tasks))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _write_manifest(path: Path, sweep: Sweep, runs: set[int] | None = None) -> None:
    rows = [r for r in sweep.manifest_rows() if runs is None or r["run_id"] in runs]
    tmp = path.with_name(path.name + ".tmp")
    _write_csv(tmp, rows, list(RUN_COLUMNS) + sweep.keys, "w")
    os.replace(tmp, path)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (1 <= i <= n) as (i, n); ScenarioError otherwise."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ScenarioError(f"--shard: expected i/n with 1 <= i <= n (e.g. 1/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise ScenarioError(f"--shard: expected i/n with 1 <= i <= n (e.g. 1/4), got {text!r}")
    return i, n


def prepare(sweep: Sweep, *, out: str | Path | None = None, workers: int | None = None,
            ray_address: str | None = None, shard: tuple[int, int] | None = None, threads: int | None = None):
    """Resolve the engine, the metrics to keep, batching and the tasks (the shard's); no files written.

    Returns a dict: out, tasks, keep, columns, batch, engine, workers, threads, ray_address.
    """
    rs = sweep.spec.run
    recorded, batchable = probe(sweep, rs.backend)
    if sweep.metrics is None:
        keep = {name: MetricKeep() for name in recorded if name not in NOT_KEPT}
    else:
        keep = dict(sweep.metrics)
        missing = [n for n in keep if n not in recorded]
        if missing:
            origin = sweep.source or "<sweep>"
            raise ScenarioError("\n".join(f"{origin}: metrics.{n}: not recorded by this scenario; expected one "
                                          f"of {', '.join(recorded)}" for n in missing))
    batch = rs.batch_replicates and batchable and sweep.spec.replicates > 1
    ray_address = ray_address or rs.ray_address
    device = rs.device or sweep.points[0].scenario.run.device
    out = Path(out) if out is not None else sweep.default_out()
    if shard is not None:
        out = out / f"shard-{shard[0]}-of-{shard[1]}"
    n_tasks = len(sweep.points) if batch else len(sweep.runs)
    if ray_address:
        engine, n_workers = "ray", None
        threads = threads or rs.threads or max(1, int(rs.num_cpus))
    else:
        engine = "local"
        n_workers = workers or rs.workers or default_workers(n_tasks, device)
        threads = threads or rs.threads or max(1, _cores() // n_workers)
    tasks = plan_tasks(sweep, keep, batch=batch, device=rs.device, dtype=rs.dtype, backend=rs.backend,
                       threads=threads)
    if shard is not None:
        tasks = [t for t in tasks if t.index % shard[1] == shard[0] - 1]
    return {"out": out, "tasks": tasks, "keep": keep, "columns": metric_columns(keep), "batch": batch,
            "engine": engine, "workers": n_workers, "threads": threads, "ray_address": ray_address}


def run_sweep(sweep: Sweep, *, out: str | Path | None = None, workers: int | None = None,
              ray_address: str | None = None, resume: bool = False, shard: tuple[int, int] | None = None,
              threads: int | None = None, retry_failed: bool = False, progress: bool = True,
              on_task: Callable[[Task, list[dict]], None] | None = None) -> SweepOutcome:
    """Run ``sweep`` (or one shard of it), writing the folder described in the module docstring.

    Args:
        out: the output folder (default: the sweep's ``out``, else runs/sweeps/<name>); a shard
            writes to out/shard-<i>-of-<n>.
        workers: local processes (default: the sweep's run.workers, else one per core).
        ray_address: run on this Ray cluster ('auto', 'HOST:PORT'); an initialised Ray is used as is.
        resume: continue the runs missing from ``out`` (made by the same sweep).
        retry_failed: with resume, run the failed runs again too.
        progress: a tqdm bar on stderr (runs done, failed, ETA).
        on_task: called with each finished task and its rows, after they are written.

    Raises:
        ScenarioError: the folder holds another sweep, or holds results and ``resume`` is off.
    """
    plan = prepare(sweep, out=out, workers=workers, ray_address=ray_address, shard=shard, threads=threads)
    out, tasks = plan["out"], plan["tasks"]
    schema = results_schema(sweep, plan["columns"])
    meta = {"name": sweep.name, "source": str(sweep.source) if sweep.source else None,
            "fingerprint": sweep.fingerprint(), "runs": len(sweep.runs), "parameters": sweep.keys,
            "shard": list(shard) if shard else None, "columns": schema.names}
    meta_path = out / "sweep.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        if not resume:
            raise ScenarioError(f"{out}: already holds the results of a sweep; add --resume to run what is "
                                "missing, or give another --out")
        if old.get("fingerprint") != meta["fingerprint"] or old.get("shard") != meta["shard"]:
            raise ScenarioError(f"{out}: --resume: this folder holds a different sweep (its manifest, scenarios, "
                                "steps, metrics or shard changed); give another --out")
    elif any((out / name).exists() for name in ("results.csv", "results.parquet", PARTS)):
        raise ScenarioError(f"{out}: holds results that no sweep.json describes; give another --out")
    out.mkdir(parents=True, exist_ok=True)
    writer = ResultsWriter(out, schema)
    table = writer.consolidate(drop_failed=retry_failed)
    done_ids = set(table.column("run_id").to_pylist())
    shard_runs = {r.run_id for t in tasks for r in t.runs}
    _write_manifest(out / "manifest.csv", sweep, shard_runs if shard else None)
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    todo = [t for t in tasks if any(r.run_id not in done_ids for r in t.runs)]
    outcome = SweepOutcome(out, total=len(shard_runs), skipped=len(shard_runs & done_ids), engine=plan["engine"])
    n_todo = sum(1 for t in todo for r in t.runs if r.run_id not in done_ids)
    from tqdm import tqdm

    timings_new = not (out / "timings.csv").is_file()
    start = time.perf_counter()
    if plan["engine"] == "ray":
        stream = _ray_engine(todo, plan["ray_address"], sweep.spec.run.num_cpus, sweep.spec.run.num_gpus)
    else:
        stream = _local_engine(todo, plan["workers"])
    host = socket.gethostname()
    with tqdm(total=n_todo, unit="run", disable=not progress, file=sys.stderr, desc=sweep.name) as bar, \
            open(out / "timings.csv", "a", newline="", encoding="utf-8") as tfh:
        timing = csv.writer(tfh)
        if timings_new:
            timing.writerow(["run_id", "task", "runs_in_task", "task_seconds", "engine", "host"])
        try:
            for task, rows, seconds in stream:  # noqa: PLR1702
                manifest = {r.run_id: r for r in task.runs}
                rows = [r for r in rows if r["run_id"] not in done_ids]
                point = sweep.points[task.point]
                full = []
                for row in rows:
                    run = manifest[row["run_id"]]
                    full.append({"run_id": run.run_id, "point": run.point, "replicate": run.replicate,
                                 "seed": run.seed, **point.values, **row})
                    if row["status"] != "ok":
                        outcome.failed += 1
                        outcome.failures.append(f"run {run.run_id}: {row['error']}")
                if full:
                    writer.append(task.index, full)
                for row in full:
                    timing.writerow([row["run_id"], task.index, len(task.runs), f"{seconds:.6f}",
                                     plan["engine"], host])
                tfh.flush()
                outcome.ran += len(full)
                bar.update(len(full))
                bar.set_postfix(failed=outcome.failed, refresh=False)
                if on_task is not None:
                    on_task(task, full)
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            outcome.seconds = time.perf_counter() - start
            stream.close()
    outcome.table = writer.consolidate()
    return outcome


def merge_shards(out: Path, sweep: Sweep):
    """Merge out/shard-*/ results into out/results.parquet and out/results.csv; the table."""
    pa, _ = _pa()
    tables = [t for d in sorted(out.glob("shard-*-of-*")) if (t := read_results(d)) is not None]
    if not tables:
        raise ScenarioError(f"{out}: no shard-*-of-* folders with results to merge")
    table = pa.concat_tables([t.cast(tables[0].schema) for t in tables])
    ids = table.column("run_id").to_pylist()
    if len(ids) != len(set(ids)):
        raise ScenarioError(f"{out}: shards overlap (a run id appears twice); were they made with different --shard n?")
    import pyarrow.compute as pc  # noqa: PLC0415

    table = table.take(pc.sort_indices(table, [("run_id", "ascending")]))
    _atomic_write_table(table, out / "results.parquet")
    tmp = out / "results.csv.tmp"
    _write_csv(tmp, table.to_pylist(), table.schema.names, "w")
    os.replace(tmp, out / "results.csv")
    _write_manifest(out / "manifest.csv", sweep)
    return table


__all__ = ["ResultsWriter", "SweepOutcome", "Task", "execute_task", "merge_shards", "metric_columns", "parse_shard",
           "plan_tasks", "prepare", "read_results", "reduce_metrics", "run_sweep"]
