"""tools/metrics_cost.py runs end to end and reports a step, a row and their ratio (no timing is asserted)."""

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("metrics_cost", Path(__file__).parents[1] / "tools" / "metrics_cost.py")
metrics_cost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(metrics_cost)


def test_metrics_cost_reports_step_row_and_ratio(tmp_path, capsys):
    out = tmp_path / "cost.json"
    assert metrics_cost.main(["--agents", "300", "--repeats", "2", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["n_agents"] == 300 and row["step_cpu_ms"] > 0 and row["row_wall_ms"] > 0
    assert row["cost_wall"] == row["row_wall_ms"] / row["step_wall_ms"]
    assert "load average" in capsys.readouterr().out
