"""The mesa and netlogo formulations against per-agent references written in their own terms."""

import math

import numpy as np

import flock
from flock.testing import reference_mesa_step, reference_netlogo_step


def test_mesa_matches_the_per_agent_reference():
    sc = flock.load_scenario("scenarios/mesa_flockers.yaml")
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    pos = sim.state.pos.numpy().copy()
    direction = sim.state.vel.numpy().copy() / 1.0
    for _ in range(10):
        pos, direction = reference_mesa_step(pos, direction, size=[100, 100])
        sim.step()
    np.testing.assert_allclose(sim.state.pos.numpy(), pos, atol=1e-9)
    np.testing.assert_allclose(sim.state.vel.numpy(), direction, atol=1e-9)


def test_netlogo_matches_the_per_turtle_reference():
    sc = flock.load_scenario("scenarios/netlogo_flocking.yaml")
    sc.agents.count = 120
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    pos = sim.state.pos.numpy().copy()
    vel = sim.state.vel.numpy()
    heading = np.degrees(np.arctan2(vel[:, 0], vel[:, 1])) % 360.0
    for _ in range(10):
        pos, heading = reference_netlogo_step(pos, heading, size=[71, 71], origin=[-35.5, -35.5])
        sim.step()
    v = sim.state.vel.numpy()
    got_heading = np.degrees(np.arctan2(v[:, 0], v[:, 1])) % 360.0
    diff = (got_heading - heading + 180) % 360 - 180
    np.testing.assert_allclose(diff, 0, atol=1e-7)
    np.testing.assert_allclose(sim.state.pos.numpy(), pos, atol=1e-7)


def test_constant_speed_formulations_keep_their_speed():
    for path in ("scenarios/mesa_flockers.yaml", "scenarios/netlogo_flocking.yaml"):
        sim = flock.Simulation.from_scenario(path, device="cpu").step(20)
        speed = np.linalg.norm(sim.state.vel.numpy(), axis=1)
        np.testing.assert_allclose(speed, 1.0, rtol=1e-5)


def test_netlogo_turns_at_most_the_largest_max_turn_per_step():
    sim = flock.Simulation.from_scenario("scenarios/netlogo_flocking.yaml", device="cpu", dtype="float64")
    before = np.arctan2(sim.state.vel[:, 1].numpy(), sim.state.vel[:, 0].numpy())
    sim.step()
    after = np.arctan2(sim.state.vel[:, 1].numpy(), sim.state.vel[:, 0].numpy())
    turn = np.abs((after - before + math.pi) % (2 * math.pi) - math.pi)
    assert turn.max() <= math.radians(5 + 3) + 1e-9


def test_netlogo_flock_aligns_over_time():
    sim = flock.Simulation.from_scenario("scenarios/netlogo_flocking.yaml", device="cpu")
    sim.scenario.metrics.every = 100
    p0 = sim.metrics["polarization"][0]
    sim.step(300)
    assert sim.metrics["polarization"][-1] > p0 + 0.2
