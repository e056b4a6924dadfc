"""Mean shift as particle dynamics (a scenario mode) against the fastai lesson's numpy loop."""

import numpy as np
import torch

import flock
from flock.metrics import find_modes
from flock.testing import reference_meanshift

SCENARIOS = "scenarios"


def test_matches_the_lessons_numpy_loop_on_its_data():
    sim = flock.Simulation.from_scenario(f"{SCENARIOS}/meanshift_seed.yaml", device="cpu", dtype="float64")
    start = sim.state.pos.numpy().copy()
    expected, _ = reference_meanshift(start, bandwidth=2.5, max_it=5, eps=0.0)
    sim.step(5)
    np.testing.assert_allclose(sim.state.pos.numpy(), expected, rtol=0, atol=1e-9)


def test_seed_scenario_ends_with_six_modes_at_the_blob_centres():
    sim = flock.Simulation.from_scenario(f"{SCENARIOS}/meanshift_seed.yaml", device="cpu")
    sim.step(sim.scenario.run.steps)
    assert sim.done
    centers, labels = find_modes(sim.state.pos, radius=2.5)
    assert centers.shape[0] == 6
    assert sim.metrics["n_modes"][-1] == 6
    truth = sim.info["blob_centers"].to(centers)
    dist = torch.cdist(centers, truth)
    assert dist.min(dim=1).values.max() < 0.5
    # each mode is one blob: nearly all of a blob's 250 points end on the same mode (a few
    # samples of a Gaussian blob can fall in a neighbouring blob's basin)
    blob_ids = sim.info["blob_ids"]
    for b in range(6):
        mine = labels[blob_ids == b]
        assert (mine == mine.mode().values).float().mean() >= 0.98


def test_triangular_scenario_converges_to_six_modes():
    sim = flock.Simulation.from_scenario(f"{SCENARIOS}/meanshift_triangular.yaml", device="cpu")
    sim.step(100)
    assert sim.done and sim.last_shift < 1e-5
    assert find_modes(sim.state.pos, radius=2.5)[0].shape[0] == 6


def test_stops_at_max_iter():
    sc = flock.load_scenario(f"{SCENARIOS}/meanshift_seed.yaml")
    sc.rules.max_iter = 2
    sc.rules.tol = 0.0
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    sim.step(50)
    assert sim.step_count == 2 and sim.done


def test_find_modes_orders_by_size():
    pos = torch.tensor([[0.0, 0.0]] * 2 + [[10.0, 0.0]] * 3 + [[10.2, 0.0]])
    centers, labels = find_modes(pos, radius=1.0)
    assert labels.tolist() == [1, 1, 0, 0, 0, 0]
    assert abs(float(centers[0, 0]) - 10.0) < 0.3
