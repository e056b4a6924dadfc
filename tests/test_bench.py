"""flocksim bench runs end to end and writes the documented JSON records (no timing is asserted)."""

import json
import math

import pytest

from flock import cli
from flock.bench import standard_flock
from flock.scenario import validate_scenario


def test_standard_flock_has_the_requested_density():
    sc = validate_scenario(standard_flock(10_000, neighbors=20))
    side = sc.world.size[0]
    assert math.isclose(10_000 * math.pi / side ** 2, 20, rel_tol=1e-9)
    sc3 = validate_scenario(standard_flock(8_000, dim=3, neighbors=20))
    assert math.isclose(8_000 * 4 / 3 * math.pi / sc3.world.size[0] ** 3, 20, rel_tol=1e-9)


def test_bench_writes_json_records(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--agents", "200", "--backend", "dense", "--repeats", "2", "--steps", "1",
                   "--warmup", "1", "--device", "cpu", "--json", str(out)])
    assert rc == 0
    records = json.loads(out.read_text())
    assert len(records) == 1
    rec = records[0]
    for key in ("n_agents", "backend", "device", "ms_per_step", "agent_steps_per_s", "peak_mem_bytes",
                "torch", "command", "commit"):
        assert key in rec
    assert rec["n_agents"] == 200 and rec["device"] == "cpu" and rec["ms_per_step"] > 0
    assert "agent-steps/s" in capsys.readouterr().out


def test_bench_metrics_on_off_threads_and_compile_column(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "--agents", "600", "--backend", "numba", "--no-baseline", "--metrics", "on,off",
                   "--threads", "1", "--repeats", "1", "--steps", "1", "--warmup", "1", "--device", "cpu",
                   "--json", str(out)])
    assert rc == 0
    records = json.loads(out.read_text())
    assert [r["metrics"] for r in records] == ["on", "off"]
    assert all(r["threads_torch"] == 1 and r["threads_numba"] == 1 for r in records)
    assert all(r["backend"] == "numba" and r["compile_ms"] is not None for r in records)
    text = capsys.readouterr().out
    assert "compile ms" in text
    on, off = records
    assert on["metrics_cost"] == pytest.approx(on["ms_per_step"] / off["ms_per_step"] - 1)
    assert f"metrics cost: N = 600 numba threads 1: {on['ms_per_step']:.3f} ms/step on" in text
    assert cli.main(["bench", "--metrics", "maybe"]) == 2
