"""Obstacles (look-ahead avoidance, hard projection), attractors, wander."""

import copy

import pytest
import torch

import flock
from flock.checkpoint import load_checkpoint, save_checkpoint
from flock.errors import ScenarioError
from flock.obstacles import attractor_forces
from flock.scenario import load_scenario, validate_scenario
from flock.state import FlockState

BASE = {
    "world": {"dims": 2, "size": [100.0, 100.0], "boundary": "open"},
    "agents": {"count": 1, "max_speed": 2.0, "max_force": 0.1},
    "rules": {"formulation": "reynolds", "cohesion": {"weight": 0.0, "radius": 5.0},
              "alignment": {"weight": 0.0, "radius": 5.0}, "separation": {"weight": 0.0, "radius": 1.0}},
}


def _sim(data, pos, vel):
    sim = flock.Simulation(validate_scenario(data), device="cpu", dtype="float64")
    sim.state = FlockState(pos=torch.tensor(pos, dtype=torch.float64), vel=torch.tensor(vel, dtype=torch.float64))
    return sim


def _clearance(sim):
    pos = sim.state.pos.double()
    centers = torch.tensor([o.center for o in sim.scenario.obstacles], dtype=torch.float64)
    radii = torch.tensor([o.radius for o in sim.scenario.obstacles], dtype=torch.float64)
    return (torch.cdist(pos, centers) - radii).min()


def test_no_agent_enters_a_pillar_in_500_steps():
    sc = load_scenario("scenarios/obstacles.yaml")
    sc.agents.count = 150
    sim = flock.Simulation(sc, device="cpu")
    for _ in range(10):
        sim.step(50)
        assert _clearance(sim) >= -1e-4
    row = sim.metrics.last()
    assert row["nan_corrections"] == 0 and "obstacle_corrections" in row
    assert float(sim.state.pos[:, 0].mean()) > 300      # the flock got past the pillars


def test_lookahead_steers_around_a_circle():
    data = copy.deepcopy(BASE)
    data["obstacles"] = [{"kind": "circle", "center": [50.0, 50.5], "radius": 5.0}]
    data["rules"]["avoidance"] = {"weight": 1.0, "lookahead": 20.0}
    sim = _sim(data, [[30.0, 50.0]], [[1.0, 0.0]])
    sim.step(1)
    assert sim.state.vel[0, 1] < 0                       # turns to the side away from the centre
    sim.step(60)
    assert sim.metrics.last()["obstacle_corrections"] == 0
    assert float(sim.state.pos[0, 0]) > 55               # and went past it


def test_projection_puts_agent_back_on_surface():
    data = copy.deepcopy(BASE)
    data["obstacles"] = [{"kind": "circle", "center": [50.0, 50.0], "radius": 5.0}]
    data["rules"]["avoidance"] = {"weight": 0.0}
    sim = _sim(data, [[46.0, 50.0]], [[1.0, 0.0]])      # inside, moving inward
    sim.step(1)
    assert _clearance(sim) >= 0
    assert float(sim.state.vel[0, 0]) <= 1e-12           # the inward velocity is gone
    assert sim.metrics.last()["obstacle_corrections"] == 1


def test_segment_wall_is_never_crossed():
    data = copy.deepcopy(BASE)
    data["obstacles"] = [{"kind": "segment", "a": [60.0, 0.0], "b": [60.0, 100.0]}]
    data["rules"]["avoidance"] = {"weight": 0.0}
    sim = _sim(data, [[50.0, 50.0], [60.0, 30.0]], [[2.0, 0.3], [2.0, 0.0]])   # the second starts on the wall
    sim.step(30)
    assert (sim.state.pos[:, 0] <= 60.0).all()
    assert torch.isfinite(sim.state.vel).all()


def test_plane_keeps_agents_on_its_front_side():
    data = copy.deepcopy(BASE)
    data["world"] = {"dims": 3, "size": [50.0, 50.0, 50.0], "boundary": "open"}
    data["obstacles"] = [{"kind": "plane", "point": [0.0, 0.0, 10.0], "normal": [0.0, 0.0, 1.0]}]
    sim = _sim(data, [[5.0, 5.0, 12.0]], [[0.0, 0.0, -2.0]])
    sim.step(20)
    assert float(sim.state.pos[0, 2]) >= 10.0


def test_attractor_moves_along_its_path_and_pulls():
    data = copy.deepcopy(BASE)
    data["attractors"] = [{"path": [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]], "speed": 2.0, "strength": 0.5}]
    sc = validate_scenario(data)
    assert attractor_forces(sc, 0.0)[0].center == (0.0, 0.0)
    assert attractor_forces(sc, 3.0)[0].center == (6.0, 0.0)
    assert attractor_forces(sc, 7.5)[0].center == (10.0, 5.0)
    data["attractors"] = [{"position": [80.0, 50.0], "strength": 0.1}]
    sim = _sim(data, [[50.0, 50.0]], [[0.0, 0.0]])
    sim.step(1)
    assert sim.state.vel[0, 0] > 0


def test_wander_is_reproducible_and_resumes_bit_identically(tmp_path):
    data = copy.deepcopy(BASE)
    data["world"]["boundary"] = "wrap"
    data["agents"]["count"] = 20
    data["agents"]["velocity"] = {"kind": "random_direction", "speed": 1.0}
    data["rules"]["wander"] = 0.3
    a = flock.Simulation(validate_scenario(data), device="cpu")
    b = flock.Simulation(validate_scenario(data), device="cpu")
    a.step(5)
    b.step(5)
    assert torch.equal(a.state.pos, b.state.pos)
    path = save_checkpoint(a, tmp_path)
    a.step(5)
    resumed = load_checkpoint(path)
    resumed.step(5)
    assert torch.equal(a.state.pos, resumed.state.pos) and torch.equal(a.state.vel, resumed.state.vel)
    data["rules"]["wander"] = 0.0
    still = flock.Simulation(validate_scenario(data), device="cpu").step(5)
    assert not torch.equal(still.state.pos, b.state.pos)


@pytest.mark.parametrize("patch, message", [
    ({"obstacles": [{"kind": "plane", "point": [0.0, 0.0], "normal": [1.0, 0.0]}]}, "plane walls are 3D"),
    ({"obstacles": [{"kind": "circle", "center": [0.0], "radius": 1.0}]}, r"obstacles\[0\]\.center: expected 2"),
    ({"attractors": [{"strength": 1.0}]}, "exactly one of 'position' or 'path'"),
    ({"rules": {"formulation": "meanshift", "bandwidth": 1.0}, "attractors": [{"position": [0.0, 0.0],
                                                                                "strength": 1.0}]},
     r"attractors: the meanshift formulation takes no extra forces"),
])
def test_world_feature_validation_errors(patch, message):
    data = copy.deepcopy(BASE)
    data.update(patch)
    with pytest.raises(ScenarioError, match=message):
        validate_scenario(data)
