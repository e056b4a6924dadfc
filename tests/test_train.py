"""Training by imitation: a short ``flocksim train`` end to end, and a trained network that agrees with its teacher."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import flock
from flock.cli import main
from flock.metrics import polarization
from flock.neural import SMOOTH_OBS_VERSION, NeuralSteering, build_mlp, n_features, read_weights
from flock.params import build_params
from flock.state import FlockState
from flock.step import step
from flock.train import TrainConfig, correlation, polarization_per_member, train

ROOT = Path(__file__).resolve().parent.parent
TORUS = ROOT / "scenarios" / "boids_torus.yaml"


@pytest.mark.slow
def test_imitation_agrees_with_the_teacher_on_held_out_states_and_steers_finite():
    sc = flock.load_scenario(TORUS, overrides=["agents.count=150", "world.size=[100, 100]"])
    cfg = TrainConfig(hidden=[32, 32], epochs=8, rounds=1, seeds=1, steps=60, every=3, per_step=150,
                      progress=False)
    result = train(sc, cfg)
    print("held-out correlation", result.held_out_corr)
    # measured 0.93-0.95 for this configuration; an untrained net gives about 0
    assert result.held_out_corr > 0.8
    assert result.losses[-1] < result.losses[0]
    student = flock.Scenario.model_validate(result.student)
    flock.NeuralSteering(result.module).attach(student)
    sim = flock.Simulation.from_scenario(student, seed=123, device="cpu", backend="dense")
    sim.step(30)
    assert torch.isfinite(sim.state.pos).all() and sim.measure()["nan_corrections"] == 0
    assert sim.measure()["mean_nn_distance"] > 0.5       # no collapse to one point


def test_correlation_is_pearsons():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert correlation(a, -a) == pytest.approx(-1.0)


def test_flocksim_train_end_to_end(tmp_path, capsys):
    out = tmp_path / "steer.safetensors"
    code = main(["train", str(TORUS), "--set", "agents.count=100", "--set", "world.size=[80, 80]", "--out", str(out),
                 "--epochs", "2", "--rounds", "1", "--seeds", "1", "--steps", "20", "--hidden", "8",
                 "--optimizer", "path-sgd", "--quiet"])
    assert code == 0, capsys.readouterr().err
    _, meta = read_weights(out)
    assert meta["teacher"] == "reynolds" and meta["optimizer"] == "path-sgd" and json.loads(meta["hidden"]) == [8]
    sc = flock.load_scenario(out.with_suffix(".yaml"))      # the ready scenario loads its weights
    assert sc.rules.formulation == "neural"
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    sim.step(3)
    assert torch.isfinite(sim.state.pos).all()
    assert main(["train", str(TORUS), "--out", str(tmp_path / "x.pt"), "--quiet"]) == 2
    assert "--out: expected a .safetensors file" in capsys.readouterr().err


# ---------------------------------------------------------------- training through the simulation


def tiny_smooth_flock(module, smooth=True):
    """6 agents in an open 2D world, steered by ``module`` from the smooth observation, float64."""
    data = {"world": {"dims": 2, "size": [10.0, 10.0], "boundary": "open"},
            "agents": {"count": 6, "max_speed": 2.0, "min_speed": 0.1, "max_force": 0.5},
            "rules": {"formulation": "neural", "model": {"weights": "unused.safetensors"}, "view_radius": 10.0,
                      "separation_radius": 5.0},
            "run": {"dt": 1.0}}
    sc = NeuralSteering(module).attach(flock.Scenario.model_validate(data))
    rule = NeuralSteering(module, differentiable=True, smooth=smooth)
    params = build_params(sc, device="cpu", dtype=torch.float64)
    return dataclasses.replace(params, rule=rule, kernels=tuple(rule.kernels(params)))


# every pair well inside the view radius, none within 1e-2 of the separation radius (the kink)
POS6 = [[0.0, 0.0], [1.5, 0.4], [3.0, 2.5], [0.7, 3.1], [4.2, 0.9], [2.2, 4.4]]
VEL6 = [[1.0, 0.2], [0.8, -0.5], [-0.3, 1.1], [0.9, 0.9], [-1.0, 0.1], [0.2, -1.2]]


def test_gradcheck_through_two_steps_of_a_smooth_kernel_flock():
    torch.manual_seed(3)
    module = build_mlp(n_features(2, False), [5], 2, "tanh").double()
    params = tiny_smooth_flock(module)
    assert [k.kind for k in params.kernels] == ["triangular", "triangular"]
    pos, vel = torch.tensor(POS6, dtype=torch.float64), torch.tensor(VEL6, dtype=torch.float64)
    d = torch.cdist(pos, pos)
    assert ((d - 5.0).abs() > 1e-2).all() and d.max() < 9
    group = torch.zeros(6, dtype=torch.int64)

    def two_steps(p, v):
        state = FlockState(pos=p, vel=v, group=group)
        for t in range(2):
            state = step(state, params, "dense", None, time=float(t))
        return state.pos, state.vel

    p0, v0 = pos.clone().requires_grad_(), vel.clone().requires_grad_()
    assert torch.autograd.gradcheck(two_steps, (p0, v0), eps=1e-6, atol=1e-6)
    # the network's weights get a gradient through both steps, and neighbors' positions matter
    out_pos, out_vel = two_steps(p0, v0)
    (g_pos,) = torch.autograd.grad(out_vel[0].sum(), p0, retain_graph=True)
    assert g_pos[1:].abs().sum() > 0
    out_vel.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_flat_observation_still_passes_gradients_through_the_neighbors_positions():
    """flock-obs-v1 (flat view channel): no gradient through who is in view, but through the sums' columns."""
    torch.manual_seed(4)
    module = build_mlp(n_features(2, False), [5], 2, "tanh").double()
    params = tiny_smooth_flock(module, smooth=False)
    assert [k.kind for k in params.kernels] == ["flat", "inverse_square"]
    pos = torch.tensor(POS6, dtype=torch.float64, requires_grad=True)
    state = step(FlockState(pos=pos, vel=torch.tensor(VEL6, dtype=torch.float64)), params, "dense", None)
    (g,) = torch.autograd.grad(state.vel[0].sum(), pos)
    assert torch.isfinite(g).all() and g[1:].abs().sum() > 0


def test_polarization_per_member_is_the_metric():
    gen = torch.Generator().manual_seed(0)
    vel = torch.randn(3 * 20, 2, generator=gen, dtype=torch.float64)
    got = polarization_per_member(vel, 3)
    for b in range(3):
        assert got[b].item() == pytest.approx(polarization(vel[20 * b:20 * (b + 1)]))


@pytest.mark.slow
def test_flocksim_train_objective_end_to_end(tmp_path, capsys):
    out = tmp_path / "order.safetensors"
    code = main(["train", str(TORUS), "--objective", "order", "--set", "agents.count=30",
                 "--set", "world.size=[30, 30]", "--out", str(out), "--epochs", "2", "--steps", "6",
                 "--window", "3", "--seeds", "1", "--hidden", "8", "--eval-seeds", "2", "--eval-steps", "5", "--optimizer", "path-sgd",
                 "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "held-out seeds" in printed.out and "polarization" in printed.out
    _, meta = read_weights(out)
    assert meta["objective"] == "order" and meta["observation"] == SMOOTH_OBS_VERSION
    held = json.loads(meta["held_out"])
    assert set(held) == {"trained", "untrained", "target_spacing"} and held["trained"]["finite"]
    sc = flock.load_scenario(out.with_suffix(".yaml"))      # the ready scenario steers from the smooth channels
    sim = flock.Simulation.from_scenario(sc, device="cpu", backend="dense")
    assert [k.kind for k in sim.params.kernels] == ["triangular", "triangular"]
    sim.step(3)
    assert torch.isfinite(sim.state.pos).all()
    assert main(["train", str(TORUS), "--objective", "order", "--window", "0", "--out", str(out), "--quiet"]) == 2
    assert "--window: expected at least 1" in capsys.readouterr().err
