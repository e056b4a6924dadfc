"""Recording runs to H5MD files: round trip, layout, varying agent counts, and surviving SIGKILL."""

import math
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch
import yaml

import flock
from flock.recording import H5Recorder, read_recording, step_with_hooks


def small_boids(count=60, name="boids_torus"):
    sc = flock.load_scenario(f"scenarios/{name}.yaml")
    sc.agents.count = count
    return flock.Simulation.from_scenario(sc, device="cpu")


def assert_metrics_equal(recorded: dict, log) -> None:
    for column in log.columns:
        expected = np.array(log[column], dtype=np.float64)
        np.testing.assert_array_equal(recorded[column], expected, err_msg=column)


def test_round_trip_equals_the_simulation_states_and_metrics(tmp_path):
    sim = small_boids(name="boids_seed")
    pos, vel, steps = [], [], []
    with H5Recorder(tmp_path / "run.h5", every=2) as rec:
        rec.attach(sim)
        pos.append(sim.state.pos.clone()), vel.append(sim.state.vel.clone()), steps.append(sim.step_count)
        for _ in range(9):
            sim.step(2)
            assert rec.record(sim)
            pos.append(sim.state.pos.clone()), vel.append(sim.state.vel.clone()), steps.append(sim.step_count)
        assert not rec.record(sim)  # the same step is not written twice
    r = read_recording(tmp_path / "run.h5")
    assert r.n_frames == 10 and r.dim == 2 and r.positions.dtype == np.float32
    np.testing.assert_array_equal(r.positions, torch.stack(pos).numpy())
    np.testing.assert_array_equal(r.velocities, torch.stack(vel).numpy())
    np.testing.assert_array_equal(r.steps, steps)
    np.testing.assert_array_equal(r.times, np.array(steps) * sim.scenario.run.dt)
    np.testing.assert_array_equal(r.n_agents, [60] * 10)
    assert len(r.metrics["step"]) == len(sim.metrics) == 19  # metrics every step, frames every 2
    assert_metrics_equal(r.metrics, sim.metrics)
    assert r.scenario_yaml == sim.scenario.to_yaml()
    assert flock.validate_scenario(yaml.safe_load(r.scenario_yaml)).to_dict() == sim.scenario.to_dict()
    assert r.world_size == (1000.0, 500.0) and r.boundary == "soft" and r.periodic == (False, False)
    assert r.group_names == ["all"] and r.group.tolist() == [0] * 60


def test_h5md_layout(tmp_path):
    sim = small_boids()
    with H5Recorder(tmp_path / "run.h5", every=1, author="Ada") as rec:
        rec.attach(sim)
        step_with_hooks(sim, 3, [rec])
    with h5py.File(tmp_path / "run.h5", "r") as fh:
        assert fh["h5md"].attrs["version"].tolist() == [1, 1]
        assert fh["h5md/author"].attrs["name"] == "Ada"
        assert fh["h5md/creator"].attrs["name"] == "flock"
        assert fh["h5md/creator"].attrs["version"] == flock.__version__
        box = fh["particles/all/box"]
        assert box.attrs["dimension"] == 2
        assert [b.decode() if isinstance(b, bytes) else b for b in box.attrs["boundary"]] == ["periodic"] * 2
        assert box["edges"][()].tolist() == [400.0, 400.0]
        for element in ("position", "velocity"):
            g = fh[f"particles/all/{element}"]
            assert g["value"].shape == (4, 60, 2) and g["value"].maxshape == (None, None, 2)
            assert g["value"].chunks is not None and math.isnan(g["value"].fillvalue)
            assert g["step"][()].tolist() == [0, 1, 2, 3] and g["time"][()].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert fh["particles/all/n_agents/value"][()].tolist() == [60] * 4
        metric_columns = [c for c in sim.metrics.columns if c not in ("step", "time")]
        assert list(fh["observables"]) == metric_columns
        for c in metric_columns:
            g = fh[f"observables/{c}"]
            assert g["step"][()].tolist() == [0, 1, 2, 3] and g["value"].shape == (4,)
        text = fh["parameters/scenario_yaml"][()].decode()
        assert text == sim.scenario.to_yaml()


def test_groups_and_agents_added_live_are_padded_with_nan(tmp_path):
    sim = small_boids(count=40)
    sim.state.group = torch.arange(40) % 2
    with H5Recorder(tmp_path / "run.h5", group_names=["prey", "predator"], velocity=False) as rec:
        rec.record(sim)
        sim.step(1)
        sim.add_agents(torch.full((3, 2), 50.0), group=torch.tensor([0, 2, 2]))
        rec.record(sim)
    r = read_recording(tmp_path / "run.h5")
    assert r.group_names == ["prey", "predator", "group_2"] and r.velocities is None
    assert r.positions.shape == (2, 21 + 20 + 2, 2)
    prey, pred, new = (r.group_slices[n] for n in r.group_names)
    assert r.group[prey].tolist() == [0] * 21 and r.group[new].tolist() == [2, 2]
    np.testing.assert_array_equal(r.n_agents, [40, 43])
    np.testing.assert_array_equal(r.positions[1, prey], sim.state.pos[sim.state.group == 0].numpy())
    np.testing.assert_array_equal(r.positions[1, pred], sim.state.pos[sim.state.group == 1].numpy())
    assert np.isnan(r.positions[0, prey][20]).all()       # the prey slot added at step 1
    assert np.isnan(r.positions[0, new]).all()            # a group born at step 1 is empty before
    assert r.frame(0)[0].shape == (40, 2) and r.frame(1)[0].shape == (43, 2)


def test_step_with_hooks_records_every_multiple_and_a_forced_last_frame(tmp_path):
    sc = flock.load_scenario("scenarios/meanshift_seed.yaml")
    sc.rules.max_iter, sc.rules.tol = 7, 0.0
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    with H5Recorder(tmp_path / "ms.h5", every=3) as rec:
        rec.attach(sim)
        assert step_with_hooks(sim, 100, [rec]) == 7 and sim.done
        rec.record(sim, force=True)
    r = read_recording(tmp_path / "ms.h5")
    assert r.steps.tolist() == [0, 3, 6, 7]
    np.testing.assert_array_equal(r.positions[-1], sim.state.pos.numpy())
    assert_metrics_equal(r.metrics, sim.metrics)
    assert r.boundary == "open" and r.world_origin == (-50.0, -50.0)


def test_closed_recorder_ignores_late_metric_rows_and_refuses_frames(tmp_path):
    sim = small_boids(count=10)
    rec = H5Recorder(tmp_path / "run.h5")
    rec.attach(sim)
    rec.close()
    sim.step(2)  # the listener is still on the metrics log
    with pytest.raises(ValueError, match="closed"):
        rec.record(sim)
    assert read_recording(tmp_path / "run.h5").metrics["step"].tolist() == [0]
    with pytest.raises(flock.ScenarioError, match="every"):
        H5Recorder(tmp_path / "x.h5", every=0)


def test_read_recording_errors_name_the_file(tmp_path):
    with pytest.raises(flock.ScenarioError, match="missing.h5: recording not found"):
        read_recording(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(flock.ScenarioError, match="junk.h5: not a readable HDF5"):
        read_recording(tmp_path / "junk.h5")


CHILD = textwrap.dedent("""
    import os, signal, sys
    import flock
    from flock.recording import H5Recorder
    path, swmr, frames = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    sc = flock.load_scenario("scenarios/boids_torus.yaml")
    sc.agents.count = 50
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    rec = H5Recorder(path, swmr=swmr)
    rec.attach(sim)
    while True:
        sim.step(1)
        rec.record(sim)
        if rec.n_frames == frames:
            os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("swmr", [False, True], ids=["v108", "swmr"])
def test_a_run_killed_with_sigkill_keeps_every_flushed_frame(tmp_path, swmr):
    path = tmp_path / "killed.h5"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), "1" if swmr else "0", "6"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if not swmr:  # the 1.8 format opens in any HDF5 reader, no flags to clear
        with h5py.File(path, "r") as fh:
            assert fh["particles/all/position/value"].shape == (6, 50, 2)
    r = read_recording(path)
    assert r.steps.tolist() == list(range(6))
    sc = flock.load_scenario("scenarios/boids_torus.yaml")
    sc.agents.count = 50
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    sim.step(5)
    np.testing.assert_array_equal(r.positions[5], sim.state.pos.numpy())
    assert_metrics_equal(r.metrics, sim.metrics)
    if swmr:  # its "open for writing" flag stays set: appending needs h5clear
        with pytest.raises(flock.ScenarioError, match="h5clear"):
            H5Recorder(path, swmr=True, append=True)
        return
    sim = flock.Simulation.from_scenario(sc, device="cpu").step(3)  # resume from step 3
    with H5Recorder(path, append=True) as rec:
        rec.attach(sim)
        step_with_hooks(sim, 4, [rec])
    r = read_recording(path)
    assert r.steps.tolist() == list(range(8))
    np.testing.assert_array_equal(r.positions[7], sim.state.pos.numpy())
    assert_metrics_equal(r.metrics, sim.metrics)


@pytest.mark.parametrize("swmr", [False, True], ids=["v108", "swmr"])
def test_append_continues_a_resumed_run_as_if_never_stopped(tmp_path, swmr):
    from flock.checkpoint import CheckpointEvery, load_checkpoint

    straight = small_boids(count=30)
    with H5Recorder(tmp_path / "straight.h5", every=2, swmr=swmr) as rec:
        rec.attach(straight)
        step_with_hooks(straight, 12, [rec])
    cut = small_boids(count=30)
    with H5Recorder(tmp_path / "cut.h5", every=2, swmr=swmr) as rec:
        rec.attach(cut)
        step_with_hooks(cut, 9, [rec, CheckpointEvery(5, tmp_path / "ckpt")])  # "killed" at step 9
    resumed = load_checkpoint(tmp_path / "ckpt")
    assert resumed.step_count == 5
    with H5Recorder(tmp_path / "cut.h5", every=2, swmr=swmr, append=True) as rec:
        rec.attach(resumed)
        step_with_hooks(resumed, 7, [rec])
    a, b = read_recording(tmp_path / "straight.h5"), read_recording(tmp_path / "cut.h5")
    assert b.steps.tolist() == list(range(0, 13, 2))
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.velocities, b.velocities)
    assert a.metrics.keys() == b.metrics.keys()
    for column in a.metrics:
        np.testing.assert_array_equal(a.metrics[column], b.metrics[column])
    assert_metrics_equal(b.metrics, straight.metrics)
