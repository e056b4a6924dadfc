"""The CPU dry run of tools/gpu_check.py (issue 13 item 6): every section runs or says why not.

``--small`` shrinks every size to a few dozen agents, and Triton runs under its interpreter
(TRITON_INTERPRET=1 set for the child before it imports triton), so this checks that each
section's code path works and that its comparisons hold, not any timing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("env", "triton_vs_dense", "triton_vs_grid", "ensembles", "host_syncs", "steps", "kernel_time",
            "meanshift")


@pytest.mark.slow
def test_small_dry_run_writes_every_section(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop("OUT", None)
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--small", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads((out / "gpu_check.json").read_text())
    assert set(doc["sections"]) == set(SECTIONS)
    for name, sec in doc["sections"].items():
        assert sec["status"] in ("ok", "skipped"), (name, sec)
    cuda = doc["sections"]["env"]["gpu"] is not None
    if not cuda:
        assert doc["sections"]["host_syncs"] == {**doc["sections"]["host_syncs"], "status": "skipped",
                                                 "reason": "no CUDA"}
    # the comparisons ran and held: every kernel kind, both float32 scenarios
    dense_rows = doc["sections"]["triton_vs_dense"]["rows"]
    assert {r["case"].split()[0] for r in dense_rows} >= {"circles", "boids", "flat", "triangular", "gaussian",
                                                          "inverse_square", "inverse"}
    assert all(r["within_tol"] for r in dense_rows)
    assert doc["sections"]["triton_vs_grid"]["rows_beyond_tol"] == 0
    assert doc["sections"]["ensembles"]["max_rel_err"] <= doc["sections"]["ensembles"]["tol"]
    assert doc["sections"]["meanshift"]["max_abs_err_vs_float64_dense"] < 1e-3
    # the summary table is printed last and saved
    lines = res.stdout.strip().splitlines()
    assert lines[-1].startswith("gpu_check: ") and lines[-1].endswith(" 0 failed"), lines[-1]
    assert doc["summary"][-1] == lines[-1]
    n_skipped = sum(s["status"] == "skipped" for s in doc["sections"].values())
    assert lines[-1] == f"gpu_check: {len(SECTIONS) - n_skipped} ok, {n_skipped} skipped, 0 failed"


def test_a_failing_section_never_hides_the_others(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "tools"))

    def boom(cfg):
        raise RuntimeError("CUDA error: an illegal memory access")

    def skip(cfg):
        raise gpu_check.Skip("no CUDA")

    monkeypatch.setitem(gpu_check.FUNCS, "triton_vs_dense", boom)
    monkeypatch.setitem(gpu_check.FUNCS, "host_syncs", skip)
    monkeypatch.setitem(gpu_check.FUNCS, "triton_vs_grid", lambda cfg: {"figure": "fine"})
    rc = gpu_check.main(["--in-process", "--sections", "triton_vs_dense,host_syncs,triton_vs_grid",
                         "--out", str(tmp_path)])
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1
    assert doc["sections"]["triton_vs_dense"]["status"] == "failed"
    assert "illegal memory access" in doc["sections"]["triton_vs_dense"]["error"]
    assert doc["sections"]["host_syncs"]["status"] == "skipped"
    assert doc["sections"]["triton_vs_grid"]["status"] == "ok"
    assert doc["summary"][-1] == "gpu_check: 1 ok, 1 skipped, 1 failed"
