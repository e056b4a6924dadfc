"""Field of view: neighbors behind an agent, outside the view cone, are not seen."""

import numpy as np
import pytest
import torch

from flock import Simulation
from flock.neighbors import reduce_dense_batched
from flock.errors import ScenarioError
from flock.kernels import Kernel
from flock.neighbors import is_fused_compatible, reduce_neighbors
from flock.neighbors.dense import reduce_dense
from flock.scenario import load_scenario, validate_scenario
from flock.testing import reference_sums


def test_half_view_sees_only_what_is_ahead():
    # the agent at the origin heads along +x; neighbors ahead, beside (60 deg off) and behind
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.8660254], [-1.0, 0.0], [-0.3, -0.5]],
                       dtype=torch.float64)
    vel = torch.tensor([[2.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    for fov, seen in [(90.0, [1]), (180.0, [1, 2]), (300.0, [1, 2, 4]), (360.0, [1, 2, 3, 4])]:
        k = Kernel("flat", radius=2.0, fov=fov)
        s = reduce_dense(pos, vel, [k])[0, 0]
        assert s[-1].item() == len(seen), fov
        torch.testing.assert_close(s[:2], pos[seen].sum(0))


def test_agent_at_rest_sees_all_around():
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    vel = torch.zeros(3, 2)
    s = reduce_dense(pos, vel, [Kernel("flat", radius=2.0, fov=30.0)])
    assert s[0, 0, -1].item() == 2


def test_fov_360_is_no_fov():
    k = Kernel("flat", radius=1.0, fov=360)
    assert k.fov is None and k == Kernel("flat", radius=1.0)
    with pytest.raises(ValueError, match=r"fov: expected degrees in \(0, 360\], got 400"):
        Kernel("flat", radius=1.0, fov=400)
    assert not is_fused_compatible([Kernel("gaussian", bandwidth=1.0, exclude_self=False, fov=200)])


KERNELS = [Kernel("flat", radius=0.5, fov=240), Kernel("inverse_square", radius=0.4, fov=120),
           Kernel("triangular", radius=0.6), Kernel("gaussian", bandwidth=0.2, radius=0.6, fov=300)]


@pytest.mark.parametrize("dim,periodic", [(2, False), (2, True), (3, False), (3, True)])
@pytest.mark.parametrize("backend", ["dense", "grid"])
def test_backends_match_the_reference_loop(dim, periodic, backend):
    g = torch.Generator().manual_seed(dim + 10 * periodic)
    pos = torch.rand(120, dim, generator=g, dtype=torch.float64) * 2
    vel = torch.randn(120, dim, generator=g, dtype=torch.float64)
    vel[:5] = 0.0
    period = torch.full((dim,), 2.0, dtype=torch.float64) if periodic else None
    got = reduce_neighbors(pos, vel, KERNELS, backend=backend, period=period)
    want = reference_sums(pos.numpy(), vel.numpy(), KERNELS, period=None if period is None else period.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)


def test_grid_with_explicit_queries_needs_their_headings():
    g = torch.Generator().manual_seed(4)
    pos = torch.rand(200, 2, generator=g, dtype=torch.float64)
    vel = torch.randn(200, 2, generator=g, dtype=torch.float64)
    q, qv = pos[:40] + 0.01, vel[:40]
    k = [Kernel("flat", radius=0.2, fov=200, exclude_self=False)]
    dense = reduce_neighbors(pos, vel, k, backend="dense", query_pos=q, query_vel=qv)
    grid = reduce_neighbors(pos, vel, k, backend="grid", query_pos=q, query_vel=qv)
    want = reference_sums(pos.numpy(), vel.numpy(), k, query_pos=q.numpy(), query_vel=qv.numpy())
    np.testing.assert_allclose(dense.numpy(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grid.numpy(), want, rtol=1e-9, atol=1e-12)
    for backend in ("dense", "grid"):
        with pytest.raises(ValueError, match="query_vel"):
            reduce_neighbors(pos, vel, k, backend=backend, query_pos=q)


def test_ensemble_batched_dense_matches_each_member():
    g = torch.Generator().manual_seed(5)
    pos = torch.rand(3, 50, 2, generator=g, dtype=torch.float64)
    vel = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
    got = reduce_dense_batched(pos, vel, KERNELS)
    for e in range(3):
        torch.testing.assert_close(got[e], reduce_dense(pos[e], vel[e], KERNELS))


BOIDS = {
    "world": {"dims": 2, "size": [200, 200], "boundary": "wrap"},
    "agents": {"count": 300, "max_speed": 2.0, "velocity": {"kind": "random_direction", "speed": 1.0}},
    "rules": {"formulation": "reynolds", "field_of_view": 270,
              "cohesion": {"radius": 20, "weight": 1.0}, "alignment": {"radius": 15, "weight": 1.0},
              "separation": {"radius": 6, "weight": 1.5}},
    "run": {"seed": 3, "steps": 10},
}


def test_scenario_field_of_view_runs_the_same_on_dense_and_grid():
    sims = {}
    for backend in ("dense", "grid"):
        data = {**BOIDS, "run": {**BOIDS["run"], "backend": backend}}
        sim = Simulation.from_scenario(validate_scenario(data), device="cpu")
        assert all(k.fov == 270 for k in sim.kernels())
        sim.step(10)
        sims[backend] = sim
    torch.testing.assert_close(sims["dense"].state.pos, sims["grid"].state.pos, rtol=1e-4, atol=1e-4)
    blind = Simulation.from_scenario(validate_scenario({**BOIDS, "rules": {**BOIDS["rules"], "field_of_view": 360}}),
                                     device="cpu")
    blind.step(10)
    assert not torch.allclose(blind.state.pos, sims["dense"].state.pos)     # the cone changes the run


@pytest.mark.parametrize("value,message", [
    (0, "rules.field_of_view: expected a number > 0"),
    (400, "rules.field_of_view: expected a number <= 360"),
])
def test_field_of_view_bad_values(value, message):
    with pytest.raises(ScenarioError, match=message):
        validate_scenario({**BOIDS, "rules": {**BOIDS["rules"], "field_of_view": value}})


def test_netlogo_sees_all_around():
    sc = load_scenario("scenarios/netlogo_flocking.yaml")
    data = sc.model_dump(mode="json", exclude_none=True)
    data["rules"]["field_of_view"] = 300
    with pytest.raises(ScenarioError, match="rules.field_of_view: NetLogo's Flocking turtles see all around"):
        validate_scenario(data)
