"""Robustness: degenerate states stay finite, the NaN guard, and random small scenarios."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import flock
from flock.formulations import Update
from flock.scenario import validate_scenario
from flock.state import FlockState

FORMULATIONS = ("seed", "reynolds", "mesa", "netlogo")


def _data(formulation="reynolds", boundary="wrap", count=10, dims=2, size=50.0, view=5.0, sep=1.0,
          weights=(1.0, 1.0, 1.5), max_speed=1.0, max_force=0.1):
    rules = {"formulation": formulation, "cohesion": {"weight": weights[0], "radius": view},
             "alignment": {"weight": weights[1], "radius": view},
             "separation": {"weight": weights[2], "radius": sep}}
    if formulation == "netlogo":
        for name in ("cohesion", "alignment", "separation"):
            rules[name]["max_turn"] = 10.0
    return {"world": {"dims": dims, "size": [size] * dims, "boundary": boundary},
            "agents": {"count": count, "velocity": {"kind": "random_direction", "speed": max_speed},
                       "max_speed": max_speed, "max_force": max_force},
            "rules": rules}


def _finite(sim):
    return bool(torch.isfinite(sim.state.pos).all() and torch.isfinite(sim.state.vel).all())


def _with_state(data, pos, vel, backend=None):
    sim = flock.Simulation(validate_scenario(data), device="cpu", backend=backend)
    sim.state = FlockState(pos=pos, vel=vel)
    return sim


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_coincident_agents_with_zero_velocity(formulation):
    pos = torch.full((6, 2), 25.0)
    sim = _with_state(_data(formulation), pos, torch.zeros(6, 2))
    sim.step(5)
    assert _finite(sim)


@pytest.mark.parametrize("boundary", ["wrap", "reflect", "soft"])
def test_agents_exactly_on_the_seam_or_wall(boundary):
    pos = torch.tensor([[0.0, 0.0], [50.0, 25.0], [0.0, 50.0], [50.0, 50.0], [25.0, 0.0]])
    vel = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, -1.0]])
    sim = _with_state(_data(boundary=boundary), pos, vel)
    sim.step(10)
    assert _finite(sim)
    if boundary in ("wrap", "reflect"):
        assert ((sim.state.pos >= 0) & (sim.state.pos <= 50.0)).all()


def test_agents_escaping_an_open_world():
    sim = _with_state(_data(boundary="open", max_speed=5.0), torch.tensor([[49.0, 49.0], [1.0, 1.0]]),
                      torch.tensor([[5.0, 5.0], [-5.0, -5.0]]))
    sim.step(200)
    assert _finite(sim)
    assert float(sim.state.pos.abs().max()) > 100


@pytest.mark.parametrize("backend", ["dense", "grid"])
def test_5000_agents_at_one_point(backend):
    n = 5000
    sim = _with_state(_data(count=n, size=100.0), torch.full((n, 2), 50.0), torch.zeros(n, 2), backend=backend)
    sim.step(2)
    assert _finite(sim)


def test_nan_guard_keeps_previous_state_and_counts():
    sim = flock.Simulation(validate_scenario(_data(count=5)), device="cpu")
    before = sim.state.clone()
    rule = sim.params.rule
    real = rule.update

    def poisoned(state, sums, params):
        update = real(state, sums, params)
        value = update.value.clone()
        value[2] = float("nan")
        return Update(update.kind, value)

    rule.update = poisoned
    sim.step(2)
    assert _finite(sim)
    assert torch.equal(sim.state.pos[2], before.pos[2]) and torch.equal(sim.state.vel[2], before.vel[2])
    assert not torch.equal(sim.state.pos[0], before.pos[0])
    assert sim.metrics["nan_corrections"] == [0, 1, 2]


def test_nan_guard_is_silent_when_finite():
    a = flock.Simulation(validate_scenario(_data(count=40)), device="cpu").step(10)
    assert a.metrics["nan_corrections"] == [0] * 11


@settings(max_examples=60, deadline=None)
@given(formulation=st.sampled_from(FORMULATIONS), boundary=st.sampled_from(["wrap", "reflect"]),
       count=st.integers(0, 40), dims=st.sampled_from([2, 3]), view=st.floats(0.5, 12.0),
       sep_frac=st.floats(0.05, 1.0), weights=st.tuples(*[st.floats(0.0, 5.0)] * 3),
       max_speed=st.floats(0.1, 5.0), max_force=st.floats(0.01, 2.0), seed=st.integers(0, 1000))
def test_random_small_scenarios_stay_finite_bounded_and_inside(formulation, boundary, count, dims, view, sep_frac,
                                                              weights, max_speed, max_force, seed):
    if formulation == "netlogo":
        dims = 2
    data = _data(formulation, boundary, count, dims, 20.0, view, view * sep_frac, weights, max_speed, max_force)
    data["run"] = {"seed": seed}
    sim = flock.Simulation(validate_scenario(copy.deepcopy(data)), device="cpu")
    sim.step(20)
    pos, vel = sim.state.pos, sim.state.vel
    assert _finite(sim)
    speeds = torch.linalg.vector_norm(vel, dim=1)
    assert speeds.numel() == 0 or float(speeds.max()) <= max_speed * (1 + 1e-5) + 1e-6
    assert ((pos >= 0) & (pos <= 20.0)).all()
    assert sim.metrics.last()["nan_corrections"] == 0
