"""EnsembleSimulation: every member equals its own ``Simulation`` run with its seed.

(The triton backend of ensembles is tested in test_triton_grid.py, where Triton's
interpreter is set up.)
"""

import pytest
import torch

from flock import ScenarioError, Simulation, load_scenario
from flock.ensemble import EnsembleSimulation, ensemble_grid
from flock.neighbors import reduce_dense_batched
from flock.kernels import Kernel
from flock.neighbors.dense import reduce_dense


def _scenario(path, n=None, every=None):
    sc = load_scenario(path)
    if n is not None:
        sc.agents.count = n
    if every is not None:
        sc.metrics.every = every
    return sc


def _assert_members_match(ens, sc, seeds, steps, scenarios=None):
    for e, seed in enumerate(seeds):
        alone = Simulation.from_scenario(scenarios[e] if scenarios else sc, seed=seed, device="cpu",
                                         dtype="float64").step(steps)
        torch.testing.assert_close(ens.pos[e], alone.state.pos, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(ens.vel[e], alone.state.vel, rtol=1e-9, atol=1e-9)
        mine, theirs = ens.member_metrics(e).rows, alone.metrics.rows
        assert [r["step"] for r in mine] == [r["step"] for r in theirs]
        for a, b in zip(mine, theirs):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9, nan_ok=True), key


@pytest.mark.parametrize("path,n,steps", [("scenarios/boids_seed.yaml", 60, 25),
                                          ("scenarios/boids_torus.yaml", 150, 25),
                                          ("scenarios/bench_circles3d.yaml", 200, 8),
                                          ("scenarios/murmuration_3d.yaml", 80, 8)])       # with wander
def test_members_equal_single_runs(path, n, steps):
    sc = _scenario(path, n, every=5)
    seeds = [3, 5, 8]
    ens = EnsembleSimulation.from_scenario(sc, seeds=seeds, device="cpu", dtype="float64").step(steps)
    assert ens.pos.shape == (3, n, sc.world.dims)
    assert len(ens.batches) == 1 and ens.backend == "dense"
    _assert_members_match(ens, sc, seeds, steps)


def test_members_from_one_start_wander_apart_on_their_own_seeds():
    """Same initial state, different seeds: only wander's noise tells the members apart."""
    sc = _scenario("scenarios/murmuration_3d.yaml", 60)
    start = Simulation.from_scenario(sc, device="cpu", dtype="float64").state
    twice = start.concat(start)
    runs = {}
    for wander in (0.005, 0.0):
        sc.rules.wander = wander
        runs[wander] = Simulation(sc, seeds=[1, 2], state=twice, device="cpu", dtype="float64").step(5).state.pos
    assert torch.equal(runs[0.0][:60], runs[0.0][60:])
    assert not torch.allclose(runs[0.005][:60], runs[0.005][60:])


def test_default_seeds_and_metric_matrix():
    sc = _scenario("scenarios/boids_torus.yaml", 50, every=2)
    ens = EnsembleSimulation.from_scenario(sc, ensemble=4, device="cpu", dtype="float64").step(6)
    assert ens.seeds == [sc.run.seed + e for e in range(4)]
    pol = ens.metric("polarization")
    assert pol.shape == (4, 4)                               # steps 0, 2, 4, 6 x members
    assert torch.all((pol >= 0) & (pol <= 1))
    assert EnsembleSimulation.from_scenario(sc, device="cpu", record_metrics=False).n_members == 64


def test_meanshift_members_converge_on_their_own():
    sc = _scenario("scenarios/meanshift_triangular.yaml")
    sc.agents.position.per_blob = 60
    sc.rules.tol = 1e-4
    seeds = [0, 1, 2, 3]
    ens = EnsembleSimulation.from_scenario(sc, seeds=seeds, device="cpu", dtype="float64").step(100)
    alone = [Simulation.from_scenario(sc, seed=s, device="cpu", dtype="float64").step(100) for s in seeds]
    assert ens.member_steps.tolist() == [a.step_count for a in alone]
    assert len(set(ens.member_steps.tolist())) > 1, "pick seeds that converge at different steps"
    assert ens.done
    _assert_members_match(ens, sc, seeds, 100)


def test_parameter_values_from_a_list():
    sc = _scenario("scenarios/boids_torus.yaml", 80, every=5)
    params = {"rules.cohesion.weight": [0.5, 2.0, 0.5], "agents.max_speed": [2.0, 1.0, 2.0]}
    ens = EnsembleSimulation.from_scenario(sc, params=params, seeds=[1, 2, 3], device="cpu", dtype="float64")
    assert ens.n_members == 3 and len(ens.batches) == 2          # members 0 and 2 share a batch
    ens.step(10)
    scenarios = []
    for e in range(3):
        member = sc.model_copy(deep=True)
        member.rules.cohesion.weight = params["rules.cohesion.weight"][e]
        member.agents.max_speed = params["agents.max_speed"][e]
        scenarios.append(member)
    _assert_members_match(ens, sc, [1, 2, 3], 10, scenarios)
    assert len(ens.metrics.rows) == 3 and len(ens.metrics.rows[0]["polarization"]) == 3


def test_ensemble_grid_and_seed_params():
    params = ensemble_grid(**{"rules.separation.weight": [1.0, 2.0], "run.seed": [4, 5]})
    assert params == {"rules.separation.weight": [1.0, 1.0, 2.0, 2.0], "run.seed": [4, 5, 4, 5]}
    sc = _scenario("scenarios/boids_torus.yaml", 30)
    ens = EnsembleSimulation.from_scenario(sc, params=params, device="cpu")
    assert ens.seeds == [4, 5, 4, 5] and len(ens.batches) == 2


def test_grid_backend_members_match_dense():
    sc = _scenario("scenarios/boids_torus.yaml", 100)
    dense = EnsembleSimulation.from_scenario(sc, ensemble=2, device="cpu", dtype="float64").step(5)
    grid = EnsembleSimulation.from_scenario(sc, ensemble=2, device="cpu", dtype="float64", backend="grid").step(5)
    assert grid.backend == "grid"
    torch.testing.assert_close(grid.pos, dense.pos, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("periodic", [False, True])
def test_reduce_dense_batched_matches_reduce_dense(periodic):
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(3, 40, 2, generator=gen, dtype=torch.float64) * 6
    vel = torch.randn(3, 40, 2, generator=gen, dtype=torch.float64)
    feats = torch.randn(3, 40, 1, generator=gen, dtype=torch.float64)
    period = torch.tensor([6.0, 6.0], dtype=torch.float64) if periodic else None
    kernels = [Kernel("flat", radius=1.5), Kernel("inverse_square", radius=1.0),
               Kernel("gaussian", bandwidth=1.0, exclude_self=False)]
    got = reduce_dense_batched(pos, vel, kernels, period=period, features=feats, chunk_rows=7)
    want = torch.stack([reduce_dense(pos[e], vel[e], kernels, period=period, features=feats[e]) for e in range(3)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert reduce_dense_batched(pos[:, :0], vel[:, :0], kernels).shape == (3, 3, 0, 5)


def test_errors_name_the_problem():
    sc = _scenario("scenarios/boids_torus.yaml", 20)
    with pytest.raises(ScenarioError, match="expected 3 seeds"):
        EnsembleSimulation(sc, ensemble=3, seeds=[1, 2], device="cpu")
    with pytest.raises(ScenarioError, match="same length"):
        EnsembleSimulation(sc, params={"rules.cohesion.weight": [1, 2], "agents.max_speed": [1.0]}, device="cpu")
    with pytest.raises(ScenarioError, match="cohesion.weight"):
        EnsembleSimulation(sc, params={"rules.cohesion.weight": ["a", "b"]}, device="cpu")
    with pytest.raises(ScenarioError, match="backend: expected one of"):
        EnsembleSimulation(sc, ensemble=2, backend="magic", device="cpu")
    ens = EnsembleSimulation(sc, ensemble=2, device="cpu")
    with pytest.raises(ScenarioError, match="cannot grow"):
        ens.batches[0].add_agents(torch.zeros(1, 2))
