"""Checkpoints: resuming is bit-identical, saving is atomic, broken checkpoints say which file is broken."""

import json
import math

import numpy as np
import pytest
import torch

import flock
from flock import checkpoint
from flock.checkpoint import (CheckpointError, CheckpointEvery, latest_checkpoint, list_checkpoints,
                              load_checkpoint, save_checkpoint)
from flock.forces import PointForce
from flock.recording import step_with_hooks


def scenario(name):
    sc = flock.load_scenario(f"scenarios/{name}.yaml")
    if name == "boids_torus":
        sc.agents.count = 200
    return sc


def same_rows(a, b) -> bool:
    def same(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return len(a) == len(b) and all(list(r) == list(s) and all(same(r[c], s[c]) for c in r) for r, s in zip(a, b))


def assert_same_run(a, b) -> None:
    assert torch.equal(a.state.pos, b.state.pos) and torch.equal(a.state.vel, b.state.vel)
    assert torch.equal(a.state.group, b.state.group)
    assert (a.step_count, a.done, a.backend) == (b.step_count, b.done, b.backend)
    assert a.last_shift == b.last_shift or (math.isnan(a.last_shift) and math.isnan(b.last_shift))
    assert same_rows(a.metrics.rows, b.metrics.rows)


@pytest.mark.parametrize("name,k,m", [("boids_torus", 6, 9), ("boids_seed", 6, 9), ("meanshift_seed", 2, 2)])
def test_resumed_run_is_bit_identical_to_a_straight_run(tmp_path, name, k, m):
    straight = flock.Simulation.from_scenario(scenario(name), device="cpu").step(k + m)
    first = flock.Simulation.from_scenario(scenario(name), device="cpu").step(k)
    path = save_checkpoint(first, tmp_path)
    assert path == tmp_path / f"ckpt_{k:08d}"
    del first
    resumed = load_checkpoint(path)
    assert resumed.step_count == k and len(resumed.metrics) == k + 1
    resumed.step(m)
    assert_same_run(resumed, straight)
    assert resumed.scenario.to_dict() == straight.scenario.to_dict()
    assert resumed.scenario.source == straight.scenario.source


def test_converged_mean_shift_stays_converged(tmp_path):
    sim = flock.Simulation.from_scenario(scenario("meanshift_seed"), device="cpu").step(100)
    assert sim.done
    resumed = load_checkpoint(save_checkpoint(sim, tmp_path))
    assert resumed.done and resumed.last_shift == sim.last_shift < sim.scenario.rules.tol
    resumed.step(5)
    assert_same_run(resumed, sim)


def test_noise_counter_and_point_forces_round_trip(tmp_path):
    sim = flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu").step(2)
    sim.noise.normal((sim.state.n_agents, 2))  # move the noise counter off zero
    sim.point_forces.append(PointForce(center=(100.0, 200.0), strength=-0.5))
    sim.point_forces.append(PointForce(center=(10.0, 20.0), strength=0.2, radius=30.0))
    resumed = load_checkpoint(save_checkpoint(sim, tmp_path))
    assert torch.equal(resumed.noise.get_state(), sim.noise.get_state()) and int(sim.noise.counter) == 1
    assert torch.equal(resumed.noise.normal((7, 3)), sim.noise.normal((7, 3)))
    assert resumed.point_forces == sim.point_forces and math.isinf(resumed.point_forces[0].radius)
    assert_same_run(resumed.step(4), sim.step(4))


def _rewrite_state(path, tensors, meta):
    """Write ``tensors`` as the checkpoint's state file and ``meta`` (checksum updated) into ``path``."""
    from safetensors.torch import save_file

    save_file(tensors, str(path / "state.safetensors"))
    meta["sha256"]["state.safetensors"] = checkpoint._sha256(path / "state.safetensors")
    (path / "meta.json").write_text(json.dumps(meta))


def _wander_sim():
    sc = scenario("boids_torus")
    sc.rules.wander = 0.2
    return flock.Simulation.from_scenario(sc, device="cpu")


def test_a_format_1_checkpoint_resumes_with_the_counter_at_its_step(tmp_path):
    """Version 1 held a torch.Generator state; it resumes as a run that drew once per step."""
    sim = _wander_sim().step(4)
    path = save_checkpoint(sim, tmp_path)
    tensors = checkpoint.load_file(str(path / "state.safetensors"))
    tensors["generator"] = torch.Generator().get_state()
    del tensors["noise"]
    meta = json.loads((path / "meta.json").read_text())
    _rewrite_state(path, tensors, {**meta, "format_version": 1, "generator_device": "cpu"})
    resumed = load_checkpoint(path)
    assert int(resumed.noise.counter) == 4
    assert_same_run(resumed.step(3), sim.step(3))


def test_a_bad_noise_counter_names_the_tensor(tmp_path):
    path = save_checkpoint(_wander_sim().step(1), tmp_path)
    tensors = checkpoint.load_file(str(path / "state.safetensors"))
    tensors["noise"] = torch.tensor([-3])
    _rewrite_state(path, tensors, json.loads((path / "meta.json").read_text()))
    with pytest.raises(CheckpointError, match=r"state\.safetensors: noise: expected the noise counter.*= \[-3\]"):
        load_checkpoint(path)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format_version": 7}))
    with pytest.raises(CheckpointError, match="format version 7; this flock reads versions 1, 2"):
        load_checkpoint(path)


def test_meta_and_files(tmp_path):
    sim = flock.Simulation.from_scenario(scenario("boids_seed"), device="cpu", dtype="float64").step(3)
    path = save_checkpoint(sim, tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "scenario.yaml", "state.safetensors"]
    meta = json.loads((path / "meta.json").read_text())
    assert meta["step"] == 3 and meta["seed"] == 0 and meta["device"] == "cpu" and meta["dtype"] == "float64"
    assert meta["backend_requested"] == "auto" and meta["flock_version"] == flock.__version__
    assert meta["torch_version"] == torch.__version__ and meta["done"] is False
    assert (path / "scenario.yaml").read_text() == sim.scenario.to_yaml()
    resumed = load_checkpoint(path)
    assert resumed.dtype == torch.float64 and resumed.state.pos.dtype == torch.float64


def test_initial_state_files_are_not_needed_to_resume(tmp_path):
    start = torch.rand(30, 2, generator=torch.Generator().manual_seed(1)).numpy() * 100
    np.save(tmp_path / "start.npy", start)
    (tmp_path / "sc.yaml").write_text(
        "world: {size: [100, 100]}\n"
        "agents: {position: {kind: file, path: start.npy}, velocity: {kind: random_direction}, max_speed: 2}\n"
        "rules: {formulation: reynolds, cohesion: {weight: 1, radius: 10}, alignment: {weight: 1, radius: 10},"
        " separation: {weight: 1.5, radius: 5}}\n")
    first = flock.Simulation.from_scenario(tmp_path / "sc.yaml", device="cpu").step(3)
    path = save_checkpoint(first, tmp_path / "ckpts")
    (tmp_path / "start.npy").unlink()
    resumed = load_checkpoint(path)
    assert resumed.scenario.agents.position.kind == "file" and resumed.scenario.agents.count is None
    assert resumed.scenario.to_dict() == first.scenario.to_dict()
    assert_same_run(resumed.step(4), first.step(4))


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    sim = flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu").step(2)
    good = save_checkpoint(sim, tmp_path)
    sim.step(3)
    real_write = checkpoint._write_text

    def write_then_crash(path, text):
        if path.name == "meta.json":  # state.safetensors and scenario.yaml are written by now
            raise OSError("disk full")
        real_write(path, text)

    monkeypatch.setattr(checkpoint, "_write_text", write_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(sim, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [good.name]  # nothing half-written left behind
    # a hard crash (no cleanup) leaves its temporary directory; it is never taken for a checkpoint
    monkeypatch.setattr(checkpoint.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(sim, tmp_path)
    leftovers = [p for p in tmp_path.iterdir() if p != good]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".ckpt_00000005.tmp-")
    (tmp_path / "ckpt_00000099").mkdir()  # a half copy under a checkpoint's name
    (tmp_path / "ckpt_00000099" / "state.safetensors").write_bytes(b"")
    assert list_checkpoints(tmp_path) == [good] and latest_checkpoint(tmp_path) == good
    resumed = load_checkpoint(tmp_path)  # a directory of checkpoints: the newest complete one
    assert resumed.step_count == 2


def test_saving_the_same_step_again_replaces_it(tmp_path):
    sim = flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu").step(2)
    save_checkpoint(sim, tmp_path)
    sim.state.pos = sim.state.pos + 1
    path = save_checkpoint(sim, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert torch.equal(load_checkpoint(path).state.pos, sim.state.pos)


@pytest.mark.parametrize("damage,message", [
    (lambda p: (p / "state.safetensors").unlink(), r"state\.safetensors: missing"),
    (lambda p: (p / "meta.json").unlink(), r"meta\.json: missing"),
    (lambda p: (p / "scenario.yaml").unlink(), r"scenario\.yaml: missing"),
    (lambda p: (p / "meta.json").write_text("{not json"), r"meta\.json: unreadable"),
    (lambda p: (p / "scenario.yaml").write_text("world: [unclosed"), r"scenario\.yaml: unreadable"),
    (lambda p: (p / "state.safetensors").write_bytes((p / "state.safetensors").read_bytes()[:-7]),
     r"state\.safetensors: checksum mismatch"),
], ids=["no-state", "no-meta", "no-scenario", "bad-meta", "bad-yaml", "truncated-state"])
def test_broken_checkpoints_name_the_file(tmp_path, damage, message):
    sim = flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu").step(1)
    path = save_checkpoint(sim, tmp_path)
    damage(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unreadable_state_without_checksum_is_a_checkpoint_error(tmp_path):
    path = save_checkpoint(flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu"), tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    del meta["sha256"]
    (path / "meta.json").write_text(json.dumps(meta))
    (path / "state.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match=r"state\.safetensors: unreadable"):
        load_checkpoint(path)


def test_invalid_scenario_in_checkpoint_is_a_scenario_error(tmp_path):
    path = save_checkpoint(flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu"), tmp_path)
    text = (path / "scenario.yaml").read_text().replace("max_speed: 2.0", "max_speed: -2.0")
    (path / "scenario.yaml").write_text(text)
    with pytest.raises(flock.ScenarioError, match=r"scenario\.yaml: agents\.max_speed: expected a number > 0"):
        load_checkpoint(path)


def test_checkpoint_every_with_step_hooks_and_keep(tmp_path):
    sim = flock.Simulation.from_scenario(scenario("boids_torus"), device="cpu")
    hook = CheckpointEvery(4, tmp_path, keep=2)
    sim.step(1)
    assert step_with_hooks(sim, 12, [hook]) == 12
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_00000008", "ckpt_00000012"]
    assert hook.last == tmp_path / "ckpt_00000012" and hook(sim) is None  # step 12 is saved already
    assert hook(sim.step(1), force=True) == tmp_path / "ckpt_00000014"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt_00000012", "ckpt_00000014"]
    with pytest.raises(flock.ScenarioError, match="every"):
        CheckpointEvery(0, tmp_path)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_checkpoint(tmp_path)
    assert latest_checkpoint(tmp_path / "nope") is None
