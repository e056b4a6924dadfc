"""Mean shift decides convergence on the device and reads it back only every few steps, with the same run."""

import math

import pytest
import torch

import flock
from flock import simulation


def run(monkeypatch, read_steps, overrides, steps, calls=None):
    monkeypatch.setattr(simulation, "CONVERGENCE_READ_STEPS", read_steps)
    sc = flock.load_scenario("scenarios/meanshift_seed.yaml",
                             overrides=["agents.position.per_blob=40", *overrides])
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    if calls is not None:
        read = sim._read_convergence

        def counted():
            calls.append(sim.step_count)
            read()

        monkeypatch.setattr(sim, "_read_convergence", counted)
    sim.step(steps)
    return sim


@pytest.mark.parametrize("overrides,steps", [
    (["rules.tol=0.0001", "metrics.every=50"], 200),      # converges between two reads
    (["rules.tol=0", "rules.max_iter=13", "metrics.every=5"], 200),   # stops at max_iter
    (["rules.tol=0.0001", "metrics.every=3"], 11),         # the call ends before convergence
])
def test_reading_every_few_steps_gives_the_run_of_reading_every_step(monkeypatch, overrides, steps):
    every_step = run(monkeypatch, 1, overrides, steps)
    few = run(monkeypatch, 8, overrides, steps)
    assert few.step_count == every_step.step_count and few.done == every_step.done
    assert torch.equal(few.state.pos, every_step.state.pos)
    assert few.member_shift == every_step.member_shift
    assert few.member_steps.tolist() == every_step.member_steps.tolist()
    assert few.metrics.rows == every_step.metrics.rows


def test_a_single_run_reads_its_convergence_every_few_steps(monkeypatch):
    calls = []
    sim = run(monkeypatch, 8, ["rules.tol=0", "rules.max_iter=30", "metrics.every=1000"], 30, calls)
    assert sim.done and sim.step_count == 30
    assert calls == [8, 16, 24, 30]            # every 8 steps and the call's last step
    assert math.isfinite(sim.last_shift)


def test_steps_past_convergence_are_not_counted(monkeypatch):
    # max_iter 13 finishes between the reads at 8 and 16: the run stands at step 13 after the
    # read at 16, frozen since 13, with the row of step 13 last
    sim = run(monkeypatch, 8, ["rules.tol=0", "rules.max_iter=13", "metrics.every=1000"], 100)
    assert sim.done and sim.step_count == 13
    assert sim.metrics.last()["step"] == 13 and sim.metrics["step"] == [0, 13]
    sim.step(5)                                 # a converged run stays put
    assert sim.step_count == 13
