"""The boid rules finished inside the Triton kernel (its epilogue) against the torch rules on dense sums.

Reference: ``reduce_dense`` sums turned into updates by ``flock.rules`` (the slow, obvious
path). The epilogue sums offsets directly, so the two agree up to rounding. On a machine
without CUDA the kernel runs under Triton's interpreter (switched on in conftest.py), so
inputs stay small.
"""

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import flock  # noqa: E402
from flock import step as step_module  # noqa: E402
from flock.kernels import Kernel  # noqa: E402
from flock.neighbors import triton_grid as tg  # noqa: E402
from flock.neighbors.dense import reduce_dense  # noqa: E402
from flock.rules import mesa_velocity, reynolds_acceleration, seed_acceleration  # noqa: E402
from flock.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def tdevice(request):
    if request.param == "cpu" and not tg.interpret_mode():
        pytest.skip("triton was imported before TRITON_INTERPRET=1 was set; run "
                    "TRITON_INTERPRET=1 pytest tests/test_triton_epilogues.py")
    return torch.device(request.param)


def _cloud(n, dim, side, dtype, device, seed):
    gen = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, dim, generator=gen, dtype=torch.float64) * side
    vel = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return pos.to(device, dtype), vel.to(device, dtype), torch.full((dim,), side, dtype=dtype, device=device)


def _channels(rule, fov):
    if rule == "reynolds":
        return [Kernel("flat", radius=1.5, fov=fov), Kernel("flat", radius=1.1, fov=fov),
                Kernel("inverse_square", radius=0.8, fov=fov)]
    return [Kernel("flat", radius=1.5, fov=fov), Kernel("flat", radius=0.6, fov=fov)]


def _reference(rule, pos, vel, s, values):
    """The torch rule of ``flock.rules`` on dense sums ``s``."""
    if rule == "seed":
        c, a, sep, mf = values
        return seed_acceleration(pos, vel, s[0], s[1], cohesion=c, alignment=a, separation=sep, max_force=mf)
    if rule == "reynolds":
        c, a, sep, ms, mf = values
        return reynolds_acceleration(pos, vel, s[0], s[1], s[2], cohesion=c, alignment=a, separation=sep,
                                     max_speed=ms, max_force=mf)
    cohere, separate, match, speed = values
    return mesa_velocity(vel, s[0], s[1], pos, cohere=cohere, separate=separate, match=match, speed=speed)


VALUES = {"seed": (1.0, 0.7, 5.0, 0.1), "reynolds": (1.0, 0.8, 1.5, 2.0, 0.05), "mesa": (0.03, 0.015, 0.05, 1.0)}


def _check(got, want, dtype):
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    scale = want.abs().max().clamp_min(1.0)
    assert got.shape == want.shape
    assert torch.all((got - want).abs() <= tol * scale), float((got - want).abs().max())


@pytest.mark.parametrize("rule", sorted(tg.EPILOGUES))
@pytest.mark.parametrize("dim,periodic,fov", [(2, True, None), (3, False, 270.0)], ids=["2d-wrap", "3d-open-fov"])
def test_epilogue_matches_the_rule_on_dense_sums(tdevice, rule, dim, periodic, fov):
    pos, vel, size = _cloud(60, dim, 5.0, torch.float64, tdevice, seed=dim)
    period = size if periodic else None
    kernels = _channels(rule, fov)
    want = _reference(rule, pos, vel, reduce_dense(pos, vel, kernels, period=period), VALUES[rule])
    got = tg.reduce_triton(pos, vel, kernels, period=period, epilogue=tg.Epilogue(rule, VALUES[rule]))
    _check(got, want, torch.float64)
    assert (want != 0).any(dim=1).float().mean() > 0.5          # most agents see someone: not a zero test


@pytest.mark.parametrize("rule", sorted(tg.EPILOGUES))
def test_epilogue_in_float32(tdevice, rule):
    pos, vel, size = _cloud(50, 2, 4.0, torch.float32, tdevice, seed=5)
    kernels = _channels(rule, 300.0)
    want = _reference(rule, pos.double(), vel.double(), reduce_dense(pos.double(), vel.double(), kernels,
                                                                     period=size.double()), VALUES[rule])
    got = tg.reduce_triton(pos, vel, kernels, period=size, epilogue=tg.Epilogue(rule, VALUES[rule]))
    _check(got.double(), want, torch.float32)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule=st.sampled_from(sorted(tg.EPILOGUES)), seed=st.integers(0, 2**16),
       weights=st.tuples(*[st.floats(0.0, 3.0)] * 3), limit=st.sampled_from([0.02, 0.5, math.inf]),
       periodic=st.booleans())
def test_epilogue_on_random_flocks_and_weights(tdevice, rule, seed, weights, limit, periodic):
    """Random weights, limits (an infinite max_force included) and worlds: the epilogue is the rule."""
    pos, vel, size = _cloud(30, 2, 3.0, torch.float64, tdevice, seed=seed)
    period = size if periodic else None
    kernels = _channels(rule, None)
    # seed's acceleration norm is max_force itself, so it stays finite there
    values = {"seed": (*weights, 0.1 if math.isinf(limit) else limit), "reynolds": (*weights, 1.5, limit),
              "mesa": (*weights, 1.0 if math.isinf(limit) else 0.5 + limit)}[rule]
    want = _reference(rule, pos, vel, reduce_dense(pos, vel, kernels, period=period), values)
    got = tg.reduce_triton(pos, vel, kernels, period=period, epilogue=tg.Epilogue(rule, values))
    _check(got, want, torch.float64)


def test_batched_epilogue_matches_member_by_member(tdevice):
    pos, vel, size = _cloud(80, 2, 4.0, torch.float64, tdevice, seed=7)
    kernels = _channels("reynolds", 240.0)
    epi = tg.Epilogue("reynolds", VALUES["reynolds"])
    got = tg.reduce_triton_batched(pos.view(2, 40, 2), vel.view(2, 40, 2), kernels, period=size, epilogue=epi)
    for e in range(2):
        sl = slice(40 * e, 40 * (e + 1))
        want = _reference("reynolds", pos[sl], vel[sl], reduce_dense(pos[sl], vel[sl], kernels, period=size),
                          VALUES["reynolds"])
        _check(got[e], want, torch.float64)


def test_epilogue_refuses_what_it_cannot_finish():
    pos, vel = torch.rand(5, 2), torch.rand(5, 2)
    two = _channels("seed", None)
    with pytest.raises(ValueError, match="no kernel epilogue"):
        tg.reduce_triton(pos, vel, two, epilogue=tg.Epilogue("netlogo", (1.0,)))
    with pytest.raises(ValueError, match="takes 3 channels"):
        tg.reduce_triton(pos, vel, two, epilogue=tg.Epilogue("reynolds", VALUES["reynolds"]))
    with pytest.raises(ValueError, match="features=True"):
        tg.reduce_triton(pos, vel, two, features=torch.ones(5, 1), epilogue=tg.Epilogue("seed", VALUES["seed"]))
    with pytest.raises(ValueError, match="no query_pos"):
        tg.reduce_triton(pos, vel, two, query_pos=pos, epilogue=tg.Epilogue("seed", VALUES["seed"]))


STEP_CASES = {"seed": ("boids_seed.yaml", 60), "reynolds": ("boids_torus.yaml", 60), "mesa": ("mesa_flockers.yaml", 50)}


@pytest.mark.parametrize("rule", sorted(STEP_CASES))
def test_a_triton_step_uses_the_epilogue_and_matches_dense(tdevice, rule, monkeypatch):
    path, n = STEP_CASES[rule]
    sc = load_scenario(ROOT / "scenarios" / path, overrides=[f"agents.count={n}"])
    assert flock.Simulation.from_scenario(sc, device="cpu", backend="dense").params.rule.name == rule
    kw = dict(device=tdevice, dtype="float64", record_metrics=False)
    dense = flock.Simulation.from_scenario(sc, backend="dense", **kw).step(2)

    def no_sums(*args, **kwargs):
        raise AssertionError("the triton step read the sums: the epilogue was not used")

    monkeypatch.setattr(step_module, "neighbor_sums", no_sums)
    tri = flock.Simulation.from_scenario(sc, backend="triton", **kw).step(2)
    assert tri.backend == "triton"
    torch.testing.assert_close(tri.state.pos, dense.state.pos, rtol=0, atol=1e-9)
    torch.testing.assert_close(tri.state.vel, dense.state.vel, rtol=0, atol=1e-9)


def test_autograd_and_other_backends_take_the_sums():
    sc = load_scenario(ROOT / "scenarios" / "boids_torus.yaml", overrides=["agents.count=20"])
    sim = flock.Simulation.from_scenario(sc, device="cpu", backend="dense", record_metrics=False)
    state, params = sim.state, sim.params
    assert step_module.kernel_update(state, params, "dense") is None
    assert step_module.kernel_update(state, params, "numba") is None
    grad_state = state.replace(pos=state.pos.clone().requires_grad_(True))
    assert step_module.kernel_update(grad_state, params, "triton") is None
