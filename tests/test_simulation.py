"""Simulation: construction, stepping, determinism, user-set state, metrics."""

import math

import pytest
import torch

import flock
from flock import FlockState, ScenarioError

TORUS = "scenarios/boids_torus.yaml"


def _small_torus(n=200):
    sc = flock.load_scenario(TORUS)
    sc.agents.count = n
    return sc


def test_same_scenario_seed_and_device_give_the_same_trajectory_bit_for_bit():
    a = flock.Simulation.from_scenario(_small_torus(), device="cpu").step(30)
    b = flock.Simulation.from_scenario(_small_torus(), device="cpu").step(30)
    assert torch.equal(a.state.pos, b.state.pos) and torch.equal(a.state.vel, b.state.vel)
    c = flock.Simulation.from_scenario(_small_torus(), device="cpu", seed=1).step(30)
    assert not torch.equal(a.state.pos, c.state.pos)


def test_float64_on_request():
    sim = flock.Simulation.from_scenario(_small_torus(), device="cpu", dtype="float64")
    assert sim.state.pos.dtype == torch.float64
    sim = flock.Simulation.from_scenario(_small_torus(), device="cpu", dtype=torch.float64)
    assert sim.state.vel.dtype == torch.float64


def test_user_assigned_positions_are_converted_and_used():
    sim = flock.Simulation.from_scenario(_small_torus(3), device="cpu")
    sim.state.pos = [[1, 1], [2, 2], [3, 3]]               # ints in a list -> float32 tensor
    assert sim.state.pos.dtype == torch.float32 and sim.state.pos.tolist() == [[1, 1], [2, 2], [3, 3]]
    sim.state.vel = torch.zeros(3, 2, dtype=torch.float64)
    assert sim.state.vel.dtype == torch.float32
    with pytest.raises(ScenarioError, match=r"state.pos: expected shape \[3, 2\]"):
        sim.state.pos = torch.zeros(4, 2)


def test_whole_state_assignment_and_add_agents():
    sim = flock.Simulation.from_scenario(_small_torus(5), device="cpu")
    sim.state = FlockState(pos=torch.rand(7, 2, dtype=torch.float64) * 100)
    assert sim.state.n_agents == 7 and sim.state.dtype == torch.float32
    sim.add_agents(torch.tensor([[10.0, 10.0]]))
    assert sim.state.n_agents == 8
    sim.step(2)
    assert torch.isfinite(sim.state.pos).all()


def test_wrapped_world_keeps_agents_inside():
    sim = flock.Simulation.from_scenario(_small_torus(), device="cpu").step(50)
    pos = sim.state.pos
    assert (pos >= 0).all() and (pos < 400).all()
    speed = torch.linalg.vector_norm(sim.state.vel, dim=1)
    assert (speed <= sim.scenario.agents.max_speed * (1 + 1e-6)).all()


def test_reflecting_walls_keep_agents_inside():
    sc = _small_torus(100)
    sc.world.boundary = "reflect"
    sim = flock.Simulation.from_scenario(sc, device="cpu").step(100)
    assert (sim.state.pos >= 0).all() and (sim.state.pos <= 400).all()


def test_metrics_are_a_time_series():
    sim = flock.Simulation.from_scenario(_small_torus(), device="cpu").step(4)
    assert sim.metrics["step"] == [0, 1, 2, 3, 4]
    for name in ("polarization", "mean_speed", "mean_nn_distance"):
        assert all(math.isfinite(x) for x in sim.metrics[name])
    assert 0 <= sim.metrics["polarization"][-1] <= 1


def test_live_parameter_change_takes_effect_on_the_next_step():
    a = flock.Simulation.from_scenario(_small_torus(), device="cpu").step(1)
    b = flock.Simulation.from_scenario(_small_torus(), device="cpu").step(1)
    b.scenario.rules.separation.weight = 10.0
    a.step(1)
    b.step(1)
    assert not torch.equal(a.state.vel, b.state.vel)


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ScenarioError, match="'cuda' was asked for"):
        flock.Simulation.from_scenario(_small_torus(), device="cuda")


def test_empty_flock_steps():
    sc = _small_torus(0)
    sim = flock.Simulation.from_scenario(sc, device="cpu").step(3)
    assert sim.state.pos.shape == (0, 2)


def test_runs_on_cuda_when_present(device):
    sim = flock.Simulation.from_scenario(_small_torus(), device=device).step(3)
    assert sim.state.pos.device.type == device.type


def test_a_repeller_pushes_agents_away():
    from flock.forces import PointForce

    sc = _small_torus(1)
    sc.agents.min_speed = 0.0
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    sim.state.pos = [[100.0, 100.0]]
    sim.state.vel = [[0.0, 0.0]]
    sim.point_forces.append(PointForce(center=(110.0, 100.0), strength=-0.04, radius=50.0))
    sim.step()
    assert sim.state.vel[0, 0] < 0 and sim.state.vel[0, 1] == 0
