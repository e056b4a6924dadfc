"""Running sweeps: results per run, engines agree, failures recorded, kill and resume, shards, the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

import flock
from flock.cli import main
from flock.ensemble import EnsembleSimulation
from flock.sweep import load_sweep, plot_results, read_results, run_sweep
from flock.sweep_run import merge_shards, prepare, reduce_metrics
from flock.sweep_spec import MetricKeep, build_sweep

ROOT = Path(__file__).resolve().parent.parent
BASE = str(ROOT / "scenarios/boids_torus.yaml")


def _tiny(**kw) -> dict:
    data = {"base": BASE, "set": {"agents.count": 12, "world.size": [30, 30], "run.device": "cpu"},
            "parameters": {"rules.alignment.weight": [0.5, 2.0]}, "replicates": 2, "steps": 3,
            "metrics": {"polarization": {"final": True, "mean_last": 2, "series": True},
                        "mean_speed": {"final": True}}}
    data.update(kw)
    return data


def _rows(table) -> list[dict]:
    return table.to_pylist()


def test_reduce_metrics_by_hand():
    rows = [{"step": s, "polarization": p} for s, p in [(0, 0.1), (5, 0.2), (10, 0.4), (15, 0.8)]]
    keep = {"polarization": MetricKeep(final=True, mean_last=10, series=True)}
    # last 10 steps: the rows with step > 5
    assert reduce_metrics(rows, keep) == {"polarization_final": 0.8, "polarization_mean_last_10": 0.6000000000000001,
                                          "polarization_series": [0.1, 0.2, 0.4, 0.8]}
    with pytest.raises(flock.ScenarioError, match="metrics.shift: not recorded"):
        reduce_metrics(rows, {"shift": MetricKeep()})


def test_runs_match_single_simulations_and_csv_matches_parquet(tmp_path):
    sw = build_sweep(_tiny(run={"batch_replicates": False}))
    outcome = run_sweep(sw, out=tmp_path, workers=1, progress=False)
    rows = _rows(outcome.table)
    assert outcome.ran == 4 and outcome.failed == 0 and [r["run_id"] for r in rows] == [0, 1, 2, 3]
    for row, run in zip(rows, sw.runs):
        sim = flock.Simulation.from_scenario(sw.points[run.point].scenario, seed=run.seed)
        sim.step(3)
        assert row["seed"] == run.seed and row["steps"] == 3 and row["status"] == "ok"
        assert row["polarization_series"] == sim.metrics["polarization"]
        assert row["mean_speed_final"] == sim.metrics["mean_speed"][-1]
        assert row["rules.alignment.weight"] == sw.points[run.point].values["rules.alignment.weight"]
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert [int(r["run_id"]) for r in lines] == [0, 1, 2, 3]
    for line, row in zip(lines, rows):
        assert float(line["polarization_final"]) == row["polarization_final"]  # repr round-trips exactly
        assert json.loads(line["polarization_series"]) == row["polarization_series"]
    with open(tmp_path / "manifest.csv", newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert [int(m["seed"]) for m in manifest] == [r.seed for r in sw.runs]
    assert list(manifest[0]) == ["run_id", "point", "replicate", "seed", "rules.alignment.weight"]


def test_replicates_batched_as_one_ensemble(tmp_path):
    sw = build_sweep(_tiny())
    plan = prepare(sw, out=tmp_path, workers=1)
    assert plan["batch"] and [len(t.runs) for t in plan["tasks"]] == [2, 2]
    rows = _rows(run_sweep(sw, out=tmp_path, workers=1, progress=False).table)
    ens = EnsembleSimulation.from_scenario(sw.points[1].scenario, seeds=[r.seed for r in sw.points[1].runs])
    ens.step(3)
    assert [r["polarization_series"] for r in rows[2:]] == [ens.member_metrics(e)["polarization"] for e in range(2)]


def test_species_scenarios_batch_their_replicates_too(tmp_path):
    """Species run as ensembles since the step has a member axis: each replicate equals a plain run."""
    base = str(ROOT / "scenarios/predator_prey.yaml")
    sw = build_sweep({"base": base, "set": {"run.device": "cpu", "agents.count": 30},
                      "parameters": {"interactions.flee.0.weight": [1.0, 2.0]}, "replicates": 2, "steps": 2,
                      "metrics": {"polarization": {}}})
    plan = prepare(sw, out=tmp_path, workers=1)
    assert plan["batch"] and len(plan["tasks"]) == 2
    outcome = run_sweep(sw, out=tmp_path, workers=1, progress=False)
    rows = _rows(outcome.table)
    assert [r["status"] for r in rows] == ["ok"] * 4
    for row, run in zip(rows, sw.runs):
        alone = flock.Simulation.from_scenario(sw.points[run.point].scenario, seed=run.seed).step(2)
        assert row["polarization_final"] == pytest.approx(alone.metrics["polarization"][-1], rel=1e-5, abs=1e-6)


def test_a_failing_run_is_recorded_and_the_rest_complete(tmp_path, monkeypatch):
    sw = build_sweep(_tiny(replicates=1, parameters={"rules.alignment.weight": [0.5, 1.0, 2.0]}))
    bad_seed = sw.runs[1].seed
    step = flock.Simulation.step

    def flaky(self, n=1):
        if self.seed == bad_seed:
            raise RuntimeError("boom at step 0")
        return step(self, n)

    monkeypatch.setattr(flock.Simulation, "step", flaky)
    outcome = run_sweep(sw, out=tmp_path, workers=1, progress=False)
    rows = _rows(outcome.table)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"] and outcome.failed == 1
    assert rows[1]["error"] == "RuntimeError: boom at step 0" and rows[1]["polarization_final"] is None
    assert rows[2]["polarization_final"] is not None
    monkeypatch.setattr(flock.Simulation, "step", step)
    again = run_sweep(sw, out=tmp_path, workers=1, resume=True, progress=False)
    assert again.ran == 0  # a failed run is a finished run ...
    again = run_sweep(sw, out=tmp_path, workers=1, resume=True, retry_failed=True, progress=False)
    assert again.ran == 1 and [r["status"] for r in _rows(again.table)] == ["ok"] * 3  # ... until retried


def test_folders_are_not_mixed(tmp_path):
    sw = build_sweep(_tiny(replicates=1))
    run_sweep(sw, out=tmp_path, workers=1, progress=False)
    with pytest.raises(flock.ScenarioError, match="already holds the results of a sweep; add --resume"):
        run_sweep(sw, out=tmp_path, workers=1, progress=False)
    with pytest.raises(flock.ScenarioError, match="holds a different sweep"):
        run_sweep(build_sweep(_tiny(replicates=1, steps=4)), out=tmp_path, workers=1, resume=True, progress=False)


def test_shards_merge_into_the_whole_sweep(tmp_path):
    sw = build_sweep(_tiny(replicates=1, parameters={"rules.alignment.weight": [0.5, 1.0, 2.0]}))
    whole = run_sweep(sw, out=tmp_path / "whole", workers=1, progress=False).table
    parts = [run_sweep(sw, out=tmp_path / "sh", shard=(i, 2), workers=1, progress=False) for i in (1, 2)]
    assert [p.total for p in parts] == [2, 1] and parts[0].out == tmp_path / "sh" / "shard-1-of-2"
    assert merge_shards(tmp_path / "sh", sw).to_pylist() == whole.to_pylist()
    assert pq.read_table(tmp_path / "sh" / "results.parquet").num_rows == 3


@pytest.mark.slow
def test_one_and_two_local_workers_give_the_same_table(tmp_path):
    sw = build_sweep(_tiny(parameters={"rules.alignment.weight": [0.5, 1.0, 2.0]}))
    one = run_sweep(sw, out=tmp_path / "one", workers=1, threads=1, progress=False).table
    two = run_sweep(sw, out=tmp_path / "two", workers=2, threads=1, progress=False)
    assert two.engine == "local" and two.ran == 6
    assert two.table.to_pylist() == one.to_pylist()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_local_ray_cluster_gives_the_local_table(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'flocksim[ray]')")
    sw = build_sweep(_tiny(parameters={"rules.alignment.weight": [0.5, 1.0, 2.0]}, replicates=2,
                           run={"num_cpus": 1}))
    local = run_sweep(sw, out=tmp_path / "local", workers=1, threads=1, progress=False).table
    assert local.num_rows == 6
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    try:
        remote = run_sweep(sw, out=tmp_path / "ray", ray_address="auto", progress=False)
        where = ray.get(ray.remote(lambda: __import__("flock").__file__).remote())
    finally:
        ray.shutdown()
    assert remote.engine == "ray" and remote.ran == 6
    assert Path(where).resolve() == Path(flock.__file__).resolve()  # the workers ran this checkout
    assert remote.table.to_pylist() == local.to_pylist()


def _count_rows(path: Path) -> int:
    try:
        with open(path, encoding="utf-8") as fh:
            return max(0, sum(1 for _ in fh) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_exactly_one_row_per_run(tmp_path):
    data = _tiny(replicates=1, steps=1, parameters={"rules.alignment.weight": {"from": 0.0, "to": 0.99, "step": 0.01}},
                 run={"batch_replicates": False, "workers": 1}, out=str(tmp_path / "out"))
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "flock", "sweep", str(sweep_file), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "out" / "results.csv"
    deadline = time.monotonic() + 240
    while _count_rows(results) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_results(tmp_path / "out")
    assert 10 <= before.num_rows < 100, "the sweep was not killed halfway"
    done = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "out" / "results.parquet")
    ids = table.column("run_id").to_pylist()
    assert ids == list(range(100))
    assert _count_rows(results) == 100 and not list((tmp_path / "out" / "results.parts").glob("*"))
    assert f"{100 - before.num_rows} runs" in done.stdout and f"{before.num_rows} done before" in done.stdout
    assert table.slice(0, before.num_rows).to_pylist() == before.to_pylist()  # kept rows are untouched


@pytest.mark.slow
def test_the_example_sweep_runs_small_and_plots(tmp_path):
    path = ROOT / "scenarios/sweeps/boids_torus_weights.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(steps=2, replicates=1)
    data["set"]["agents.count"] = 30
    sw = build_sweep(data, source=path)
    outcome = run_sweep(sw, out=tmp_path, workers=1, progress=False)
    assert outcome.table.num_rows == len(sw.points) == 20 and outcome.failed == 0
    heat = plot_results(outcome.table, "polarization_final", sw.keys, tmp_path / "heat.png")
    line = plot_results(outcome.table, "polarization", sw.keys[:1], tmp_path / "line.png")
    assert heat.stat().st_size > 1000 and line.stat().st_size > 1000


def test_cli_dry_run_errors_and_plot(tmp_path, capsys):
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(yaml.safe_dump(_tiny(out=str(tmp_path / "out"))), encoding="utf-8")
    assert main(["sweep", str(sweep_file), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "2 points x 2 replicates = 4 runs" in text and "replicates batched" in text
    assert "run_id  point  replicate  seed  rules.alignment.weight" in text
    assert not (tmp_path / "out").exists()
    assert main(["sweep", str(sweep_file), "--shard", "3/2"]) == 2
    assert "--shard: expected i/n with 1 <= i <= n" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_tiny(method="sobol")), encoding="utf-8")
    assert main(["sweep", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"{bad}: method: expected 'grid', 'random' or 'lhs', got 'sobol'"
    assert main(["sweep", str(sweep_file), "--quiet", "--workers", "1"]) == 0
    assert "4 of 4 runs" in capsys.readouterr().out
    assert main(["sweep", str(sweep_file), "--plot", "mean_speed"]) == 0
    assert (tmp_path / "out" / "mean_speed.png").is_file()
    assert main(["sweep", str(sweep_file), "--plot", "nope"]) == 2
    assert "--plot: 'nope': expected one of the results' columns" in capsys.readouterr().err


def test_ray_missing_is_a_clear_error(monkeypatch):
    from flock.sweep_run import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like
    with pytest.raises(flock.ScenarioError, match=r"Ray is not installed .*pip install 'flocksim\[ray\]'"):
        import_ray()
