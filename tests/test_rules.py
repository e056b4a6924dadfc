"""Boid rules against per-agent references, and their behaviour."""

import numpy as np
import torch

import flock
from flock.rules import reynolds_acceleration, seed_acceleration
from flock.testing import reference_seed_step
from flock.vectors import unit

SEED_SCENARIO = {
    "world": {"dims": 2, "size": [200, 100], "boundary": "soft"},
    "agents": {"count": 50, "position": {"kind": "uniform", "low": [50, 25], "high": [150, 75]},
               "velocity": {"kind": "uniform", "low": [0, 0], "high": [1, 1]}, "max_speed": 5, "max_force": 0.1},
    "rules": {"formulation": "seed", "cohesion": {"weight": 1.0, "radius": 40},
              "alignment": {"weight": 0.7, "radius": 40}, "separation": {"weight": 5.0, "radius": 20}},
}


def test_seed_rules_match_the_javascript_post_per_agent():
    sim = flock.Simulation.from_scenario(flock.validate_scenario(SEED_SCENARIO), device="cpu", dtype="float64")
    pos = sim.state.pos.numpy().copy()
    vel = sim.state.vel.numpy().copy()
    for _ in range(20):
        pos, vel = reference_seed_step(pos, vel, width=200, height=100, view=40, near=20)
        sim.step()
    np.testing.assert_allclose(sim.state.pos.numpy(), pos, atol=1e-4, rtol=0)
    np.testing.assert_allclose(sim.state.vel.numpy(), vel, atol=1e-4, rtol=0)


def test_seed_rules_in_float32_match_the_reference_step_by_step():
    # float32 trajectories drift from float64 ones by rounding (the flock is chaotic), so
    # each float32 step is compared with the reference step taken from the same state
    sim = flock.Simulation.from_scenario(flock.validate_scenario(SEED_SCENARIO), device="cpu", dtype="float32")
    for _ in range(20):
        pos, vel = reference_seed_step(sim.state.pos.numpy(), sim.state.vel.numpy(),
                                       width=200, height=100, view=40, near=20)
        sim.step()
        np.testing.assert_allclose(sim.state.pos.double().numpy(), pos, atol=1e-4, rtol=0)
        np.testing.assert_allclose(sim.state.vel.double().numpy(), vel, atol=1e-4, rtol=0)


def test_seed_pushes_back_agents_outside_the_field():
    sc = flock.validate_scenario({**SEED_SCENARIO, "agents": {**SEED_SCENARIO["agents"], "count": 1}})
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    sim.state.pos = torch.tensor([[-5.0, 120.0]])
    sim.state.vel = torch.tensor([[0.0, 0.0]])
    sim.step()
    assert sim.state.vel.tolist() == [[1.0, -1.0]]


def test_lonely_agent_does_not_accelerate_and_never_nans():
    pos = torch.tensor([[0.0, 0.0]])
    vel = torch.tensor([[0.0, 0.0]])
    empty = torch.zeros(1, 5)
    acc = seed_acceleration(pos, vel, empty, empty, cohesion=1, alignment=0.7, separation=5, max_force=0.1)
    assert acc.tolist() == [[0.0, 0.0]]
    acc = reynolds_acceleration(pos, vel, empty, empty, empty, cohesion=1, alignment=1, separation=1,
                                max_speed=2, max_force=0.1)
    assert acc.tolist() == [[0.0, 0.0]]


def test_unit_of_zero_is_zero():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    assert unit(x).tolist() == [[0.0, 0.0], [0.6, 0.8]]


def test_reynolds_separation_steers_away_from_a_close_neighbor():
    sc = flock.validate_scenario({
        "world": {"dims": 2, "size": [100, 100], "boundary": "wrap"},
        "agents": {"count": 2, "max_speed": 1.0, "max_force": 0.5},
        "rules": {"formulation": "reynolds", "cohesion": {"weight": 0.0, "radius": 5},
                  "alignment": {"weight": 0.0, "radius": 5}, "separation": {"weight": 1.0, "radius": 5}}})
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    sim.state.pos = torch.tensor([[50.0, 50.0], [51.0, 50.0]])
    sim.state.vel = torch.zeros(2, 2)
    sim.step()
    # desired = max_speed away, clipped to max_force: -0.5 and +0.5 along x
    torch.testing.assert_close(sim.state.vel, torch.tensor([[-0.5, 0.0], [0.5, 0.0]], dtype=torch.float64))


def test_reynolds_flock_aligns():
    sc = flock.validate_scenario({
        "world": {"dims": 2, "size": [60, 60], "boundary": "wrap"},
        "agents": {"count": 150, "position": {"kind": "uniform"},
                   "velocity": {"kind": "random_direction", "speed": 1.0},
                   "max_speed": 1.0, "min_speed": 0.5, "max_force": 0.05},
        "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 12},
                  "alignment": {"weight": 1.0, "radius": 12}, "separation": {"weight": 1.5, "radius": 3}},
        "metrics": {"every": 50},
        "run": {"seed": 1}})
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    assert sim.metrics["polarization"][0] < 0.3
    sim.step(400)
    assert sim.metrics["polarization"][-1] > 0.8
