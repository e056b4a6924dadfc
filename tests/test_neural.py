"""Neural steering: the observation's invariances, the rule against reynolds, the weights files."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import flock
from flock.neural import (NeuralSteering, build_mlp, load_weights, n_features, observe, save_weights)
from flock.params import build_params
from flock.step import neighbor_sums

MAX_SPEED, MAX_FORCE = 2.0, 0.05
WEIGHTS = dict(cohesion=1.0, alignment=1.0, separation=1.5)


def neural_data(dims: int = 2, boundary: str = "wrap", count: int = 150, size: float = 60.0, **rules) -> dict:
    return {
        "world": {"dims": dims, "size": [size] * dims, "boundary": boundary},
        "agents": {"count": count, "position": {"kind": "uniform"},
                   "velocity": {"kind": "random_direction", "speed": 2.0},
                   "max_speed": MAX_SPEED, "min_speed": 0.5, "max_force": MAX_FORCE},
        "rules": {"formulation": "neural", "model": {"weights": "steer.safetensors"}, "view_radius": 10.0,
                  "separation_radius": 5.0, **rules},
        "run": {"dtype": "float64", "backend": "dense", "device": "cpu"},
    }


def write_net(tmp_path, dims=2, walls=False, hidden=(8,), activation="relu", seed=0, **extra):
    torch.manual_seed(seed)
    net = build_mlp(n_features(dims, walls), list(hidden), dims, activation)
    save_weights(tmp_path / "steer.safetensors", net, dims=dims, walls=walls, hidden=list(hidden),
                 activation=activation, extra=extra)
    return net


def scenario(tmp_path, data):
    return flock.validate_scenario(data, source=tmp_path / "neural.yaml")


def random_rotation(dims: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(dims, dims, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("boundary", ["open", "reflect"])
def test_observation_invariant_to_rotating_and_translating_the_flock(tmp_path, dims, boundary):
    walls = boundary == "reflect"
    write_net(tmp_path, dims=dims)
    sc = scenario(tmp_path, neural_data(dims, "open", count=120, size=40.0))
    params = build_params(sc, device="cpu", dtype=torch.float64)
    gen = torch.Generator().manual_seed(dims)
    pos = torch.rand(120, dims, generator=gen, dtype=torch.float64) * 40
    vel = torch.randn(120, dims, generator=gen, dtype=torch.float64)
    vel[0] = 0.0                                     # at rest: the frame falls back on the neighbors
    state = flock.FlockState(pos=pos, vel=vel)
    obs = observe(state, neighbor_sums(state, params, "dense"), params)
    assert obs.shape == (120, n_features(dims, False))
    assert (obs[:, 3 * dims] > 0).any()              # some agents see neighbors
    rot = random_rotation(dims, gen)
    shift = torch.randn(dims, generator=gen, dtype=torch.float64) * 100
    moved = flock.FlockState(pos=pos @ rot.T + shift, vel=vel @ rot.T)
    obs2 = observe(moved, neighbor_sums(moved, params, "dense"), params)
    torch.testing.assert_close(obs2, obs, rtol=0, atol=1e-9)
    if walls:  # the wall feature: a box turned by a right angle about its centre is the same box
        write_net(tmp_path, dims=dims, walls=True)
        sc_w = scenario(tmp_path, neural_data(dims, "reflect", count=120, size=40.0))
        pw = build_params(sc_w, device="cpu", dtype=torch.float64)
        turn = torch.eye(dims, dtype=torch.float64)[[1, 0, *range(2, dims)]]
        turn[0] = -turn[0]
        centre = torch.full((dims,), 20.0, dtype=torch.float64)
        turned = flock.FlockState(pos=(pos - centre) @ turn.T + centre, vel=vel @ turn.T)
        a = observe(state, neighbor_sums(state, pw, "dense"), pw)
        b = observe(turned, neighbor_sums(turned, pw, "dense"), pw)
        assert a.shape[1] == n_features(dims, True) and (a[:, -dims:] != 0).any()
        torch.testing.assert_close(b, a, rtol=0, atol=1e-9)


class ReynoldsFromObservation(nn.Module):
    """The reynolds rule (one view radius for cohesion and alignment) computed from the 2D observation."""

    def forward(self, obs):
        v = torch.zeros_like(obs[:, :2])
        v[:, 0] = obs[:, 8] * MAX_SPEED
        seen, near = obs[:, 6:7] > 0, obs[:, 7:8] > 0

        def steer(direction, active):
            s = flock.vectors.clip_norm(MAX_SPEED * flock.vectors.unit(direction) - v, MAX_FORCE)
            return torch.where(active, s, torch.zeros_like(s))

        total = (WEIGHTS["cohesion"] * steer(obs[:, 0:2], seen)
                 + WEIGHTS["alignment"] * steer(obs[:, 2:4] * MAX_SPEED + v, seen)
                 + WEIGHTS["separation"] * steer(obs[:, 4:6], near))
        return total / (MAX_FORCE * sum(WEIGHTS.values()))


def test_a_network_that_is_the_reynolds_rule_gives_the_reynolds_trajectory(tmp_path):
    write_net(tmp_path)
    data = neural_data(max_force=MAX_FORCE * sum(WEIGHTS.values()))
    sc = scenario(tmp_path, data)
    NeuralSteering(ReynoldsFromObservation()).attach(sc)
    teacher = dict(data, rules={"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 10.0},
                                "alignment": {"weight": 1.0, "radius": 10.0},
                                "separation": {"weight": 1.5, "radius": 5.0}})
    ref = flock.Simulation.from_scenario(flock.validate_scenario(teacher), seed=3)
    net = flock.Simulation.from_scenario(sc, seed=3)
    ref.step(20)
    net.step(20)
    torch.testing.assert_close(net.state.pos, ref.state.pos, rtol=0, atol=1e-8)
    torch.testing.assert_close(net.state.vel, ref.state.vel, rtol=0, atol=1e-8)
    moved = (ref.state.vel - flock.Simulation.from_scenario(flock.validate_scenario(teacher), seed=3).state.vel)
    assert moved.abs().max() > 1e-3                  # the rule did steer


def test_one_call_for_every_agent_and_member(tmp_path):
    write_net(tmp_path)
    sc = scenario(tmp_path, neural_data(count=50))
    calls = []
    net = build_mlp(n_features(2, False), [8], 2)
    net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    NeuralSteering(net).attach(sc)
    sim = flock.Simulation(sc, seeds=[1, 2, 3], device="cpu", dtype=torch.float64, backend="dense")
    sim.step(2)
    assert calls == [(150, n_features(2, False))] * 2


def test_weights_round_trip_and_a_walled_run_with_obstacles_stays_finite(tmp_path):
    net = write_net(tmp_path, walls=True, hidden=(16, 16), activation="tanh")
    data = neural_data(boundary="soft", model={"weights": "steer.safetensors", "hidden": [16, 16],
                                                "activation": "tanh"})
    data["obstacles"] = [{"kind": "circle", "center": [30.0, 30.0], "radius": 5.0}]
    data["attractors"] = [{"position": [10.0, 10.0], "strength": 0.01}]
    sc = scenario(tmp_path, data)
    loaded = load_weights(tmp_path / "steer.safetensors", sc)
    x = torch.randn(7, n_features(2, True))
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    sim = flock.Simulation.from_scenario(sc, seed=0)
    start = sim.state.vel.clone()
    sim.step(10)
    assert torch.isfinite(sim.state.pos).all() and sim.measure()["nan_corrections"] == 0
    assert (sim.state.vel - start).abs().max() > 0
    assert 0 <= sim.measure()["polarization"] <= 1


def test_bad_weights_are_clear_errors(tmp_path):
    write_net(tmp_path, hidden=(8,))
    bad = neural_data(model={"weights": "steer.safetensors", "hidden": [64, 64]})
    with pytest.raises(flock.ScenarioError, match=r"rules\.model\.hidden.*\[64, 64\].*\[8\]"):
        scenario(tmp_path, bad)
    with pytest.raises(flock.ScenarioError, match=r"rules\.model\.weights: file not found"):
        scenario(tmp_path, neural_data(model={"weights": "missing.safetensors"}))
    with pytest.raises(flock.ScenarioError, match=r"rules\.model\.weights: expected a \.safetensors file"):
        scenario(tmp_path, neural_data(model={"weights": "steer.pt"}))
    with pytest.raises(flock.ScenarioError, match=r"world\.dims"):
        scenario(tmp_path, neural_data(dims=3))
    write_net(tmp_path, observation="flock-obs-v0")  # metadata override: an older observation
    with pytest.raises(flock.ScenarioError, match=r"flock-obs-v0.*flock-obs-v1"):
        scenario(tmp_path, neural_data())
    (tmp_path / "steer.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(flock.ScenarioError, match=r"rules\.model\.weights: .*not a readable safetensors"):
        scenario(tmp_path, neural_data())
    write_net(tmp_path)
    with pytest.raises(flock.ScenarioError, match=r"agents\.max_speed"):
        data = neural_data()
        del data["agents"]["max_speed"], data["agents"]["min_speed"]
        scenario(tmp_path, data)


def test_bench_neural_tool_runs_and_its_numpy_port_agrees(tmp_path):
    """tools/bench_neural.py at a tiny size (a smoke test of the tool; its timings are not checked)."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / "bench_neural.py"
    spec = importlib.util.spec_from_file_location("bench_neural", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "b.json"
    assert bench.main(["--agents", "60", "--repeats", "1", "--loop-agents", "10", "--apply-agents", "20",
                       "--steps", "1", "--no-compile", "--json", str(out)]) == 0
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["agents"] == 60 and rec["features"] == 9 and rec["apply_max_abs_diff"] < 1e-5
    assert rec["batched_s"] > 0 and rec["neural_step_s"] > 0 and rec["compile_note"].startswith("skipped")
