"""Groups (species): building them, per-group sums from the one kernel, flee, chase, validation."""

import copy

import pytest
import torch

import flock
from flock.errors import ScenarioError
from flock.neighbors import reduce_dense
from flock.scenario import load_scenario, validate_scenario
from flock.formulations import GroupsRule
from flock.species import group_sums
from flock.state import FlockState
from flock.world import minimum_image

BASE = {
    "world": {"dims": 2, "size": [100.0, 100.0], "boundary": "open"},
    "agents": {"name": "prey", "count": 1, "max_speed": 1.0, "max_force": 0.1},
    "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 10.0},
              "alignment": {"weight": 1.0, "radius": 10.0}, "separation": {"weight": 1.0, "radius": 2.0}},
    "species": [{"name": "predator", "count": 1, "max_speed": 1.5, "max_force": 0.2}],
}


def _sim(data, pos, vel, group):
    sim = flock.Simulation(validate_scenario(data), device="cpu", dtype="float64")
    sim.state = FlockState(pos=torch.tensor(pos, dtype=torch.float64), vel=torch.tensor(vel, dtype=torch.float64),
                           group=torch.tensor(group))
    return sim


@pytest.mark.parametrize("mode", ["centre", "nearest"])
def test_prey_turns_away_and_predator_steers_toward_it(mode):
    data = copy.deepcopy(BASE)
    data["interactions"] = {"flee": [{"prey": "prey", "predator": "predator", "radius": 10.0, "weight": 1.0}],
                            "chase": [{"predator": "predator", "prey": "prey", "radius": 20.0, "mode": mode}]}
    sim = _sim(data, [[50.0, 50.0], [50.0, 55.0]], [[1.0, 0.0], [1.0, 0.0]], [0, 1])
    sim.step(1)
    vel = sim.state.vel
    assert vel[0, 1] < 0          # prey (below) turns down, away from the predator
    assert vel[1, 1] < 0          # predator turns down, toward the prey
    assert sim.metrics.last()["nan_corrections"] == 0


def test_no_interaction_without_flee_or_chase():
    data = copy.deepcopy(BASE)
    data["rules"]["separation"]["radius"] = 1.0
    sim = _sim(data, [[50.0, 50.0], [50.0, 55.0]], [[1.0, 0.0], [1.0, 0.0]], [0, 1])
    sim.step(1)
    assert torch.equal(sim.state.vel, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("across", [False, True])
def test_cohesion_only_within_group_unless_across(across):
    data = copy.deepcopy(BASE)
    data["rules"]["alignment"]["weight"] = 0.0
    data["rules"]["separation"] = {"weight": 0.0, "radius": 1.0}
    data["interactions"] = {"flock_across_groups": across}
    sim = _sim(data, [[50.0, 50.0], [50.0, 55.0]], [[0.0, 0.0], [0.0, 0.0]], [0, 1])
    sim.step(1)
    if across:
        assert sim.state.vel[0, 1] > 0 and sim.state.vel[1, 1] < 0
    else:
        assert torch.equal(sim.state.vel, torch.zeros(2, 2, dtype=torch.float64))


def test_separation_acts_across_groups():
    data = copy.deepcopy(BASE)
    sim = _sim(data, [[50.0, 50.0], [50.0, 51.0]], [[0.0, 0.0], [0.0, 0.0]], [0, 1])
    sim.step(1)
    assert sim.state.vel[0, 1] < 0 and sim.state.vel[1, 1] > 0


@pytest.mark.parametrize("backend", ["dense", "grid"])
@pytest.mark.parametrize("boundary", ["wrap", "open"])
def test_group_sums_match_brute_force(boundary, backend):
    """Own-group sums from the one kernel pass equal a pass over that group alone (seam included)."""
    data = copy.deepcopy(BASE)
    data["world"]["boundary"] = boundary
    data["agents"]["count"] = 60
    data["species"][0]["count"] = 40
    sim = flock.Simulation(validate_scenario(data), device="cpu", dtype="float64", backend=backend)
    gen = torch.Generator().manual_seed(1)
    pos = torch.rand(100, 2, generator=gen, dtype=torch.float64) * 100
    pos[:20, 0] = torch.rand(20, generator=gen, dtype=torch.float64) * 8 - 4 + 100 * (boundary == "wrap")
    pos = torch.remainder(pos, 100.0)
    sim.state = FlockState(pos=pos, vel=torch.randn(100, 2, generator=gen, dtype=torch.float64),
                           group=sim.state.group)
    world = sim.world
    period = world.period(pos)
    sums = sim.sums()
    assert isinstance(sim.params.rule, GroupsRule)
    kernel = sim.kernels()[0]
    got = group_sums(sums[0], pos, sim.state.group, kernel.support, world, sim.params.n_groups)
    for g in (0, 1):
        members = torch.nonzero(sim.state.group == g).flatten()
        ref = reduce_dense(pos[members], sim.state.vel[members], [kernel], period=period, query_pos=pos,
                           query_index=torch.searchsorted(members, torch.arange(100)).where(
                               torch.isin(torch.arange(100), members), torch.tensor(-1)))[0]
        rows = sim.state.group == g
        count = ref[rows, -1:]
        ref_mean = torch.where(count > 0, ref[rows, :2] / count.clamp_min(1), pos[rows])
        got_mean = torch.where(count > 0, got[rows, :2] / got[rows, -1:].clamp_min(1), pos[rows])
        torch.testing.assert_close(got[rows, -1], ref[rows, -1])
        torch.testing.assert_close(got[rows, 2:4], ref[rows, 2:4])
        torch.testing.assert_close(minimum_image(got_mean - ref_mean, period), torch.zeros_like(got_mean),
                                   atol=1e-9, rtol=0)


def test_initial_state_builds_groups_and_keeps_group0():
    sc = load_scenario("scenarios/predator_prey.yaml")
    sim = flock.Simulation(sc, device="cpu")
    assert sim.state.group.bincount().tolist() == [600, 3]
    plain = validate_scenario({k: v for k, v in sc.to_dict().items() if k not in ("species", "interactions")})
    base = flock.Simulation(plain, device="cpu")
    assert torch.equal(sim.state.pos[:600], base.state.pos)
    assert torch.equal(sim.state.vel[:600], base.state.vel)


def test_predator_prey_scenario_runs_and_prey_keep_distance():
    sc = load_scenario("scenarios/predator_prey.yaml")
    sim = flock.Simulation(sc, device="cpu")
    sim.step(20)
    assert torch.isfinite(sim.state.pos).all() and torch.isfinite(sim.state.vel).all()
    speeds = torch.linalg.vector_norm(sim.state.vel, dim=1)
    assert speeds[sim.state.group == 0].max() <= 2.0 + 1e-5
    assert speeds[sim.state.group == 1].max() <= 2.6 + 1e-5


def test_seed_formulation_with_groups_runs():
    data = copy.deepcopy(BASE)
    data["rules"]["formulation"] = "seed"
    data["agents"]["count"] = 30
    data["species"][0]["count"] = 10
    sim = flock.Simulation(validate_scenario(data), device="cpu")
    sim.step(5)
    assert torch.isfinite(sim.state.pos).all()


@pytest.mark.parametrize("patch, message", [
    ({"interactions": {"flee": [{"prey": "prey", "predator": "wolf", "radius": 5.0}]}},
     r"interactions\.flee\[0\]\.predator: expected a group name"),
    ({"rules": {"formulation": "mesa", "cohesion": {"radius": 5.0}, "alignment": {"radius": 5.0},
                "separation": {"radius": 1.0}}}, "groups run with the seed and reynolds"),
    ({"world": {"dims": 2, "size": [30.0, 30.0], "boundary": "wrap"}}, "a quarter"),
    ({"species": [{"name": "prey", "count": 1}]}, "expected a name not used yet"),
])
def test_group_validation_errors(patch, message):
    data = copy.deepcopy(BASE)
    data.update(patch)
    with pytest.raises(ScenarioError, match=message):
        validate_scenario(data)


def test_groups_resume_from_a_checkpoint_bit_identically(tmp_path):
    from flock.checkpoint import load_checkpoint, save_checkpoint

    sc = load_scenario("scenarios/predator_prey.yaml")
    sc.agents.count = 100
    sim = flock.Simulation(sc, device="cpu")
    sim.step(2)
    path = save_checkpoint(sim, tmp_path)
    sim.step(3)
    resumed = load_checkpoint(path)
    resumed.step(3)
    assert torch.equal(resumed.state.group, sim.state.group)
    assert torch.equal(resumed.state.pos, sim.state.pos) and torch.equal(resumed.state.vel, sim.state.vel)


@pytest.mark.slow
def test_nearest_chase_with_100k_prey_runs_in_memory_proportional_to_n():
    """The nearest-prey query goes through the cell list: 100,000 prey take one step in well
    under a gigabyte (a dense N x N scan would need 80 GB at float64, or hours in chunks)."""
    import subprocess
    import sys

    code = """
import resource, torch, flock
from flock.scenario import validate_scenario
data = {"world": {"dims": 2, "size": [2000.0, 2000.0], "boundary": "wrap"},
        "agents": {"name": "prey", "count": 100000, "max_speed": 1.0, "max_force": 0.05},
        "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 5.0},
                  "alignment": {"weight": 1.0, "radius": 5.0}, "separation": {"weight": 1.0, "radius": 2.0}},
        "species": [{"name": "predator", "count": 10, "max_speed": 2.0}],
        "interactions": {"chase": [{"predator": "predator", "prey": "prey", "radius": 50.0, "mode": "nearest"}]}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sim = flock.Simulation(validate_scenario(data), device="cpu", backend="grid", record_metrics=False)
sim.step(1)
assert torch.isfinite(sim.state.pos).all()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout.strip().splitlines()[-1])
    assert grown < 1 << 30, f"peak memory grew by {grown / 2**20:.0f} MiB"
