"""flock sets torch's and numba's CPU threads itself; --threads and run.threads override."""

import os

import pytest
import torch

from flock import cli
from flock.threads import NUMBA_PARALLEL_AGENTS, TORCH_PARALLEL_AGENTS, default_threads, free_cores, set_threads

numba = pytest.importorskip("numba")


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads(), numba.get_num_threads()
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


def test_defaults_by_size():
    assert default_threads(1000) == (1, free_cores())
    assert default_threads(NUMBA_PARALLEL_AGENTS) == (1, free_cores())
    assert default_threads(TORCH_PARALLEL_AGENTS) == (free_cores(), free_cores())


def test_set_threads_sets_both_and_rejects_bad_counts():
    assert set_threads(1) == (1, 1)
    assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    with pytest.raises(ValueError, match="threads: expected an integer >= 1, got 0"):
        set_threads(0)


@pytest.mark.parametrize("how", ["flag", "scenario"])
def test_run_honours_threads(tmp_path, how):
    torch.set_num_threads(2)
    extra = ["--threads", "1"] if how == "flag" else ["--set", "run.threads=1"]
    rc = cli.main(["run", "scenarios/boids_torus.yaml", "--headless", "--steps", "1", "--quiet",
                   "--set", "agents.count=40", "--out", str(tmp_path), *extra])
    assert rc == 0
    assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1


def test_bad_thread_count_is_a_clear_error(tmp_path, capsys):
    rc = cli.main(["run", "scenarios/boids_torus.yaml", "--headless", "--steps", "1", "--quiet",
                   "--set", "agents.count=40", "--out", str(tmp_path), "--threads", "0"])
    assert rc == 2 and "--threads" in capsys.readouterr().err


def test_torch_count_survives_numba_starting_its_pool():
    # numba's first set_num_threads starts an OpenMP pool that resets the process's thread
    # count; it only happens once per process, hence the fresh interpreter
    import os
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1)\n"
            "from flock.threads import set_threads; set_threads(1)\n"
            "print(torch.get_num_threads())")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"


def test_free_cores_counts_what_other_processes_use_now(monkeypatch):
    import flock.threads as threads

    busy = threads.busy_cores(0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9
    for other, expected in ((1e9, 1), (0.4, threads.cpu_count()), (0.0, threads.cpu_count())):
        monkeypatch.setattr(threads, "_last_sample", None)
        monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1, b=other: b)
        assert threads.free_cores() == expected
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1: 1e9)
    assert threads.free_cores() == threads.cpu_count()      # the last sample is reused for a few seconds
    monkeypatch.setattr(threads, "_last_sample", None)
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0.1: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert threads.free_cores() == threads.cpu_count()     # no /proc/stat: the load average
