"""Pathological clumping (issue 14, class 9): the run says before stepping when agents share one neighborhood."""

import math

import pytest
import torch

import flock
from flock import cli
from flock.clumping import neighborhood_counts, neighborhood_report
from flock.state import FlockState

TORUS = "scenarios/boids_torus.yaml"


def _params(boundary="wrap", count=50, dims=2):
    sc = flock.load_scenario(TORUS, overrides=[f"agents.count={count}", f"world.boundary={boundary}"])
    return flock.Simulation.from_scenario(sc, device="cpu").params


def brute_pairs(pos, params):
    """Pairs (i, j), i == j included, whose cells (support wide) are neighbors: every pair checked."""
    support = max(k.support for k in params.kernels)
    world = params.world
    if world.periodic:
        size = torch.tensor(world.size, dtype=torch.float64)
        cells = torch.clamp(torch.floor(size / support), min=1)
        c = torch.floor((pos.double() - torch.tensor(world.origin or [0.0] * len(world.size))) / (size / cells))
        c = torch.remainder(c, cells)
        d = (c[:, None, :] - c[None, :, :]).abs()
        d = torch.minimum(d, cells - d)
    else:
        c = torch.floor((pos.double() - pos.double().min(0).values) / support)
        d = (c[:, None, :] - c[None, :, :]).abs()
    near = (d <= 1).all(-1)
    return int(near.sum()), int(near.sum(1).max())


@pytest.mark.parametrize("boundary", ["wrap", "soft"])
@pytest.mark.parametrize("layout", ["uniform", "clumped", "line"])
def test_candidate_pairs_equal_the_pairwise_count(boundary, layout):
    params = _params(boundary)
    g = torch.Generator().manual_seed(len(layout))
    pos = torch.rand(400, 2, generator=g) * torch.tensor(params.world.size)
    if layout == "clumped":
        pos[:300] = 37.0 + 3.0 * torch.rand(300, 2, generator=g)
    elif layout == "line":
        pos[:, 1] = 5.0
    counts, around = neighborhood_counts(FlockState(pos=pos), params)[:2]
    pairs, densest = brute_pairs(pos, params)
    assert int((counts * around).sum()) == pairs
    assert int(around.max()) == densest
    assert neighborhood_report(FlockState(pos=pos), params)[0] == densest


def test_a_small_wrapped_box_counts_each_cell_once():
    sc = flock.load_scenario(TORUS, overrides=["agents.count=30", "world.size=[15.0,15.0]"])
    params = flock.Simulation.from_scenario(sc, device="cpu").params
    pos = torch.rand(30, 2, generator=torch.Generator().manual_seed(1)) * 15.0
    counts, around = neighborhood_counts(FlockState(pos=pos), params)[:2]
    assert int((counts * around).sum()) == brute_pairs(pos, params)[0] == 30 * 30


def test_twenty_thousand_agents_at_one_point_are_reported():
    params = _params("wrap", 20_000)
    densest, message = neighborhood_report(FlockState(pos=torch.full((20_000, 2), 50.0)), params)
    assert densest == 20_000
    assert "20,000 of 20,000 agents share one neighborhood" in message
    assert "4e+08 neighbor pairs" in message and "Ctrl-C" in message


def test_an_ordinary_torus_is_not_reported():
    sim = flock.Simulation.from_scenario(flock.load_scenario(TORUS), device="cpu")
    densest, message = neighborhood_report(sim.state, sim.params)
    assert message is None and 0 < densest < 200


def test_an_unbounded_kernel_warns_only_for_a_large_step():
    sim = flock.Simulation.from_scenario(flock.load_scenario("scenarios/meanshift_seed.yaml"), device="cpu")
    assert not math.isfinite(max(k.support for k in sim.params.kernels))
    n = sim.state.n_agents
    assert neighborhood_report(sim.state, sim.params) == (n, None)
    big = FlockState(pos=torch.zeros(40_000, 2))
    assert "1.6e+09 neighbor pairs" in neighborhood_report(big, sim.params)[1]


def test_flocksim_run_warns_before_the_first_step(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    np.save(tmp_path / "spot.npy", np.full((2000, 2), 50.0))
    import yaml
    with open(TORUS) as fh:
        data = yaml.safe_load(fh)
    data["agents"].update(count=2000, position={"kind": "file", "path": "spot.npy"})
    (tmp_path / "spot.yaml").write_text(yaml.safe_dump(data))
    rc = cli.main(["run", str(tmp_path / "spot.yaml"), "--steps", "1", "--headless", "--quiet",
                   "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 0
    assert "warning: 2,000 of 2,000 agents share one neighborhood" in err


def test_flocksim_run_of_the_torus_does_not_warn(tmp_path, capsys):
    rc = cli.main(["run", TORUS, "--steps", "1", "--headless", "--quiet", "--set", "agents.count=300",
                   "--out", str(tmp_path / "o")])
    assert rc == 0 and "share one neighborhood" not in capsys.readouterr().err
