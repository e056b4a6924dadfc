"""The circles benchmark rule against a per-agent loop of its definition."""

import math

import numpy as np

import flock


def _reference_circles_step(pos, radius=2.0, repulse=0.05):
    pos = np.asarray(pos, dtype=np.float64)
    new = pos.copy()
    for i in range(len(pos)):
        total = np.zeros(pos.shape[1])
        count = 0
        for j in range(len(pos)):
            if i == j:
                continue
            d = math.sqrt(((pos[j] - pos[i]) ** 2).sum())
            if 0 < d < radius:
                k = math.sin((d / radius) * 3.141 * -2) * repulse
                total += k * (pos[j] - pos[i]) / d
                count += 1
        new[i] = pos[i] + total / max(count, 1)
    return new


def _scenario(n=120, width=5.0):
    return flock.validate_scenario({
        "world": {"dims": 3, "size": [width] * 3, "origin": [-width / 2] * 3, "boundary": "open"},
        "agents": {"count": n},
        "rules": {"formulation": "circles", "radius": 2.0, "repulse": 0.05}})


def test_circles_matches_the_per_agent_definition():
    sim = flock.Simulation.from_scenario(_scenario(), device="cpu", dtype="float64")
    pos = sim.state.pos.numpy().copy()
    for _ in range(3):
        pos = _reference_circles_step(pos)
        sim.step()
    np.testing.assert_allclose(sim.state.pos.numpy(), pos, atol=1e-10, rtol=0)


def test_coincident_agents_do_not_count_and_do_not_nan():
    sim = flock.Simulation.from_scenario(_scenario(3), device="cpu", dtype="float64")
    sim.state.pos = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    sim.step()
    assert np.isfinite(sim.state.pos.numpy()).all()
    expected = _reference_circles_step([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(sim.state.pos.numpy(), expected, atol=1e-12)


def test_shipped_benchmark_scenario_has_density_one():
    sc = flock.load_scenario("scenarios/bench_circles3d.yaml")
    volume = math.prod(sc.world.size)
    assert sc.agents.count / volume == 1.0
