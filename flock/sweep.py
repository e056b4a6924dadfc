"""Parameter sweeps: ``flocksim sweep SWEEP.yaml`` (Mesa's batch_run, NetLogo's BehaviorSpace).

    flocksim sweep SWEEP.yaml [--workers N] [--ray-address auto|HOST:PORT] [--resume [--retry-failed]]
                              [--dry-run] [--shard i/n] [--merge] [--out DIR] [--threads T] [--quiet]
    flocksim sweep SWEEP.yaml --plot METRIC [--by KEY[,KEY]] [--plot-out F.png]

The file format and seeding: ``flock.sweep_spec``; tasks, engines and the results folder:
``flock.sweep_run``. This module is the command and the plot.

    from flock.sweep import load_sweep, run_sweep
    outcome = run_sweep(load_sweep("scenarios/sweeps/boids_torus_weights.yaml"), workers=2)
    outcome.table   # a pyarrow.Table, one row per run
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import ScenarioError
from .sweep_run import merge_shards, parse_shard, prepare, read_results, run_sweep
from .sweep_spec import RUN_COLUMNS, Sweep, build_sweep, load_sweep

DRY_RUN_ROWS = 10


def _scalar_columns(table) -> list[str]:
    import pyarrow as pa  # noqa: PLC0415

    return [f.name for f in table.schema if pa.types.is_floating(f.type)]


def _resolve_metric(table, metric: str) -> str:
    columns = _scalar_columns(table)
    if metric in columns:
        return metric
    matches = [c for c in columns if c.startswith(metric + "_")]
    if len(matches) == 1:
        return matches[0]
    if f"{metric}_final" in matches:
        return f"{metric}_final"
    raise ScenarioError(f"--plot: {metric!r}: expected one of the results' columns: {', '.join(columns) or 'none'}")


def plot_results(table, metric: str, keys: list[str], path: Path, title: str | None = None) -> Path:
    """Draw ``metric`` over one swept parameter (the mean over replicates and every other
    parameter, with a band of one standard deviation) or two (a heatmap of the mean); a PNG.

    Args:
        table: the results (pyarrow.Table); failed runs are left out.
        metric: a scalar column (``polarization_final``) or a metric with one scalar column.
        keys: one or two parameter columns.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    column = _resolve_metric(table, metric)
    rows = [r for r in table.to_pylist() if r["status"] == "ok" and r[column] is not None]
    if not rows:
        raise ScenarioError(f"--plot: no finished runs with {column} yet")
    axes = [sorted({r[k] for r in rows}) for k in keys]
    cells: dict[tuple, list[float]] = {}
    for r in rows:
        cells.setdefault(tuple(r[k] for k in keys), []).append(r[column])
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    if len(keys) == 1:
        x = axes[0]
        mean = np.array([np.mean(cells[(v,)]) for v in x])
        std = np.array([np.std(cells[(v,)]) for v in x])
        ax.plot(x, mean, marker="o")
        ax.fill_between(x, mean - std, mean + std, alpha=0.25, label="± 1 std over replicates")
        ax.set_xlabel(keys[0])
        ax.set_ylabel(column)
        ax.legend()
    else:
        grid = np.full((len(axes[1]), len(axes[0])), np.nan)
        for (a, b), values in cells.items():
            grid[axes[1].index(b), axes[0].index(a)] = np.mean(values)
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(axes[0])), [f"{v:g}" if isinstance(v, float) else str(v) for v in axes[0]])
        ax.set_yticks(range(len(axes[1])), [f"{v:g}" if isinstance(v, float) else str(v) for v in axes[1]])
        ax.set_xlabel(keys[0])
        ax.set_ylabel(keys[1])
        fig.colorbar(image, ax=ax, label=f"{column} (mean over replicates)")
    ax.set_title(title or column)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot(args, sweep: Sweep, out: Path) -> int:
    table = read_results(out)
    if table is None:
        print(f"{out}: no results yet; run the sweep first", file=sys.stderr)
        return 2
    keys = [k for k in (args.by.split(",") if args.by else sweep.keys) if k]
    unknown = [k for k in keys if k not in sweep.keys]
    if unknown or not 1 <= len(keys) <= 2:
        print(f"--by: expected one or two of the swept parameters ({', '.join(sweep.keys) or 'none'}), got "
              f"{', '.join(keys) or 'none'}" + ("; choose them with --by A,B" if len(keys) > 2 else ""),
              file=sys.stderr)
        return 2
    path = Path(args.plot_out) if args.plot_out else out / f"{args.plot}.png"
    try:
        plot_results(table, args.plot, keys, path, title=sweep.name)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _dry_run(sweep: Sweep, plan: dict) -> int:
    tasks = plan["tasks"]
    n_runs = sum(len(t.runs) for t in tasks)
    engine = (f"Ray at {plan['ray_address']}" if plan["engine"] == "ray"
              else f"{plan['workers']} local worker(s)") + f", {plan['threads']} thread(s) per run"
    print(f"{sweep.name}: {len(sweep.points)} points x {sweep.spec.replicates} replicates = {len(sweep.runs)} runs "
          f"({n_runs} in this shard), {len(tasks)} tasks" +
          (" (replicates batched as one ensemble)" if plan["batch"] else ""))
    print(f"engine: {engine}; out: {plan['out']}")
    print(f"keeps: {', '.join(c for c, _ in plan['columns'])}")
    ids = {r.run_id for t in tasks for r in t.runs}
    rows = [r for r in sweep.manifest_rows() if r["run_id"] in ids]
    names = list(RUN_COLUMNS) + sweep.keys
    print("  ".join(names))
    for row in rows[:DRY_RUN_ROWS]:
        print("  ".join(str(row[k]) for k in names))
    if len(rows) > DRY_RUN_ROWS:
        print(f"... and {len(rows) - DRY_RUN_ROWS} more")
    return 0


def cmd_sweep(args) -> int:
    """``flocksim sweep``: 0 when every run finished, 1 when some failed, 2 on bad input, 130 interrupted."""
    try:
        sweep = load_sweep(args.sweep)
        shard = parse_shard(args.shard)
        base_out = Path(args.out) if args.out else sweep.default_out()
        if args.plot:
            return _plot(args, sweep, base_out)
        if args.merge:
            table = merge_shards(base_out, sweep)
            print(f"merged {table.num_rows} of {len(sweep.runs)} runs into {base_out / 'results.parquet'} "
                  f"and {base_out / 'results.csv'}")
            return 0
        if args.dry_run:
            plan = prepare(sweep, out=base_out, workers=args.workers, ray_address=args.ray_address, shard=shard,
                           threads=args.threads)
            return _dry_run(sweep, plan)
        outcome = run_sweep(sweep, out=base_out, workers=args.workers, ray_address=args.ray_address,
                            resume=args.resume, shard=shard, threads=args.threads, retry_failed=args.retry_failed,
                            progress=not args.quiet)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    head = "interrupted" if outcome.interrupted else "done"
    print(f"{sweep.name}: {head}: {outcome.ran} runs in {outcome.seconds:.2f} s on {outcome.engine} "
          f"({outcome.failed} failed, {outcome.skipped} done before); {outcome.table.num_rows} of {outcome.total} "
          f"runs in {outcome.out / 'results.parquet'} and {outcome.out / 'results.csv'}")
    for line in outcome.failures[:5]:
        print(f"  failed: {line}", file=sys.stderr)
    if outcome.interrupted:
        print("  continue with --resume", file=sys.stderr)
        return 130
    return 1 if outcome.failed else 0


def add_sweep_parser(sub) -> None:
    """The ``sweep`` subcommand of ``flocksim``."""
    sw = sub.add_parser("sweep", help="run a parameter sweep (locally, or on a Ray cluster)",
                        description="Expand a sweep file into runs (manifest.csv), run them, and append one row "
                                    "per finished run to results.parquet / results.csv.")
    sw.add_argument("sweep", help="a sweep YAML file (see scenarios/sweeps/)")
    sw.add_argument("--workers", type=int, default=None, metavar="N",
                    help="local worker processes (default: the file's run.workers, else one per core)")
    sw.add_argument("--threads", type=int, default=None, metavar="T",
                    help="torch threads per run (default: cores // workers; Ray: the task's num_cpus)")
    sw.add_argument("--ray-address", default=None, metavar="ADDR",
                    help="run the runs as Ray tasks on this cluster: auto | HOST:PORT (pip install flocksim[ray])")
    sw.add_argument("--resume", action="store_true", help="run only the runs missing from the output folder")
    sw.add_argument("--retry-failed", action="store_true", help="with --resume, run failed runs again")
    sw.add_argument("--dry-run", action="store_true", help="print the plan and the first runs; run nothing")
    sw.add_argument("--shard", default=None, metavar="i/n",
                    help="run only tasks k with k %% n == i - 1, into OUT/shard-i-of-n (join with --merge)")
    sw.add_argument("--merge", action="store_true", help="merge OUT/shard-*-of-*/ results into OUT")
    sw.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the file's out)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument("--plot", default=None, metavar="METRIC",
                    help="draw METRIC (e.g. polarization_final) from the results: a line over one parameter, "
                         "a heatmap over two")
    sw.add_argument("--by", default=None, metavar="KEY[,KEY]", help="the parameters to plot over (default: all, if 1-2)")
    sw.add_argument("--plot-out", default=None, metavar="FILE.png", help="where the plot goes (default OUT/METRIC.png)")
    sw.set_defaults(func=cmd_sweep)


__all__ = ["Sweep", "add_sweep_parser", "build_sweep", "cmd_sweep", "load_sweep", "plot_results", "read_results",
           "run_sweep"]
