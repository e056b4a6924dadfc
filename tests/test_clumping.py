"""Pathological clumping (issue 14, class 9): the run says before stepping when agents share one neighborhood."""

import math

import pytest
import torch

import flock
from flock import cli
from flock.clumping import neighborhood_counts, neighborhood_report
from flock.state import FlockState

TORUS = "scenarios/boids_torus.yaml"


def _params(boundary="wrap", count=50, dims=2):
    sc = flock.load_scenario(TORUS, overrides=[f"agents.count={count}", f"world.boundary={boundary}"])
    return flock.Simulation.from_scenario(sc, device="cpu").params


def brute_pairs(pos, params):
    """Pairs (i, j), i == j included, whose cells (support wide) are neighbors: every pair checked."""
    support = max(k.support for k in params.kernels)
    world = params.world
    if world.periodic:
        size = torch.tensor(world.size, dtype=torch.float64)
        cells = torch.clamp(torch.floor(size / support), min=1)
        c = torch.floor((pos.double() - torch.tensor(world.origin or [0.0] * len(world.size))) / (size / cells))
        c = torch.remainder(c, cells)
        d = (c[:, None, :] - c[None, :, :]).abs()
        d = torch.minimum(d, cells - d)
    else:
        c = torch.floor((pos.double() - pos.double().min(0).values) / support)
        d = (c[:, None, :] - c[None, :, :]).abs()
    near = (d <= 1).all(-1)
    return int(near.sum()), int(near.sum(1).max())


@pytest.mark.parametrize("boundary", ["wrap", "soft"])
@pytest.mark.parametrize("layout", ["uniform", "clumped", "line"])
def test_candidate_pairs_equal_the_pairwise_count(boundary, layout):
    params = _params(boundary)
    g = torch.Generator().manual_seed(len(layout))
    pos = torch.rand(400, 2, generator=g) * torch.tensor(params.world.size)
    if layout == "clumped":
        pos[:300] = 37.0 + 3.0 * torch.rand(300, 2, generator=g)
    elif layout == "line":
        pos[:, 1] = 5.0
    counts, around = neighborhood_counts(FlockState(pos=pos), params)[:2]
    pairs, densest = brute_pairs(pos, params)
    assert int((counts * around).sum()) == pairs
    assert int(around.max()) == densest
    assert neighborhood_report(FlockState(pos=pos), params)[0] == densest


def test_a_small_wrapped_box_counts_each_cell_once():
    sc = flock.load_scenario(TORUS, overrides=["agents.count=30", "world.size=[15.0,15.0]"])
    params = flock.Simulation.from_scenario(sc, device="cpu").params
    pos = torch.rand(30, 2, generator=torch.Generator().manual_seed(1)) * 15.0
    counts, around = neighborhood_counts(FlockState(pos=pos), params)[:2]
    assert int((counts * around).sum()) == brute_pairs(pos, params)[0] == 30 * 30


def test_twenty_thousand_agents_at_one_point_are_reported():
    params = _params("wrap", 20_000)
    densest, message = neighborhood_report(FlockState(pos=torch.full((20_000, 2), 50.0)), params)
    assert densest == 20_000
    assert "20,000 of 20,000 agents share one neighborhood" in message
    assert "4e+08 neighbor pairs" in message and "Ctrl-C" in message


def test_an_ordinary_torus_is_not_reported():
    sim = flock.Simulation.from_scenario(flock.load_scenario(TORUS), device="cpu")
    densest, message = neighborhood_report(sim.state, sim.params)
    assert message is None and 0 < densest < 200


def test_an_unbounded_kernel_warns_only_for_a_large_step():
    sim = flock.Simulation.from_scenario(flock.load_scenario("scenarios/meanshift_seed.yaml"), device="cpu")
    assert not math.isfinite(max(k.support for k in sim.params.kernels))
    n = sim.state.n_agents
    assert neighborhood_report(sim.state, sim.params) == (n, None)
    big = FlockState(pos=torch.zeros(40_000, 2))
    assert "1.6e+09 neighbor pairs" in neighborhood_report(big, sim.params)[1]


def test_flocksim_run_warns_before_the_first_step(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "spot.npy", np.full((2000, 2), 50.0))
    import yaml
    with open(TORUS) as fh:
        data = yaml.safe_load(fh)
    data["agents"].update(count=2000, position={"kind": "file", "path": "spot.npy"})
    (tmp_path / "spot.yaml").write_text(yaml.safe_dump(data))
    rc = cli.main(["run", str(tmp_path / "spot.yaml"), "--steps", "1", "--headless", "--quiet",
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 0
    assert "warning: 2,000 of 2,000 agents share one neighborhood" in err


def test_flocksim_run_of_the_torus_does_not_warn(tmp_path, capsys):
    rc = cli.main(["run", TORUS, "--steps", "1", "--headless", "--quiet", "--set", "agents.count=300",
                   "--out", str(tmp_path / "o")])
    assert rc == 0 and "share one neighborhood" not in capsys.readouterr().err


# ---------------------------------------------------------------- progress within a step, Ctrl-C (class 9)

def _spot_args(tmp_path, n, steps=3):
    return ["run", TORUS, "--headless", "--steps", str(steps), "--set", f"agents.count={n}",
            "--set", "agents.position.low=[50,50]", "--set", "agents.position.high=[51,51]",
            "--out", str(tmp_path / "o")]


def _agree(out, steps_done):
    """metrics.csv's last row, final_state.npz and the summary's count are the same step."""
    np = pytest.importorskip("numpy")
    import csv
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert int(rows[-1]["step"]) == steps_done
    assert int(np.load(out / "final_state.npz")["step"]) == steps_done


def test_an_interrupt_inside_a_large_step_keeps_the_last_whole_step(tmp_path, capsys, monkeypatch):
    """A Ctrl-C between two chunks of step 2's neighbor pass: the run ends at step 1, consistent."""
    pytest.importorskip("numba")
    from flock.neighbors import progress
    from flock.run_progress import StepProgressBar

    import functools

    # the run's passes (600^2 = 3.6e5 pairs) chunked as a huge one would be
    monkeypatch.setattr(progress, "report_progress",
                        functools.partial(progress.report_progress, min_pairs=1e5, chunk_seconds=0.001))
    seen = []

    def interrupt_in_step_two(self, done, total):
        seen.append((self.sim.step_count + 1, done, total))
        if self.sim.step_count == 1 and 0 < done < total:
            raise KeyboardInterrupt

    monkeypatch.setattr(StepProgressBar, "__call__", interrupt_in_step_two)
    rc = cli.main(_spot_args(tmp_path, 600) + ["--quiet"])
    captured = capsys.readouterr()
    assert rc == 130 and "Traceback" not in captured.err
    assert "interrupted after 1 steps" in captured.out
    _agree(tmp_path / "o", 1)
    assert [d for s, d, _ in seen if s == 1][-1] == 600 * 600          # step 1 was whole
    assert {s for s, _, _ in seen} == {1, 2}


@pytest.mark.slow
def test_sigint_during_a_huge_step_stops_the_run_promptly(tmp_path):
    """flocksim run with 12,000 agents at one point (1.4e8 pairs, seconds a step on 2 cores):
    SIGINT while step 1's progress bar is up; the run says it was interrupted within 2 s."""
    pytest.importorskip("numba")
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading
    import time

    err_path = tmp_path / "err.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines = []
    with open(err_path, "w") as err:
        # a child of a shell that ignores SIGINT (a background job) would ignore it too
        proc = subprocess.Popen([sys.executable, "-m", "flock", *_spot_args(tmp_path, 12_000)], stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), ln) for ln in proc.stdout))
        reader.start()
        try:
            deadline = time.monotonic() + 240
            # step 1's bar past 0%: its first chunk is done, the compiled loop is running
            begun = re.compile(r"step 1: \S+ neighbor pairs +[1-9]\d*%")
            while not begun.search(err_path.read_text()) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, err_path.read_text()
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join()
            proc.stdout.close()
    stderr = err_path.read_text()
    out = "".join(ln for _, ln in lines)
    assert rc == 130, stderr
    assert "Traceback" not in stderr + out
    said = [t for t, ln in lines if "interrupted after" in ln]
    # the summary comes within 2 s of the signal (the interpreter's own exit, torch's
    # teardown, comes after it and is not the run's to shorten)
    assert said and said[0] - sent < 2.0, (said, sent, out)
    steps_done = int(out.split("interrupted after ")[1].split()[0])
    assert steps_done < 3
    _agree(tmp_path / "o", steps_done)
