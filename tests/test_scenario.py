"""Scenario loading and validation: every shipped file runs; every bad input has a clear message."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

import flock
from flock import ScenarioError, load_scenario, validate_scenario

SCENARIO_FILES = sorted(Path("scenarios").glob("*.yaml"))

BASE = {
    "world": {"dims": 2, "size": [100, 50], "boundary": "soft"},
    "agents": {"count": 10, "max_speed": 2, "max_force": 0.1},
    "rules": {"formulation": "seed", "cohesion": {"weight": 1, "radius": 20},
              "alignment": {"weight": 0.7, "radius": 20}, "separation": {"weight": 5, "radius": 5}},
}


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_every_shipped_scenario_validates_and_runs_five_steps(path):
    sim = flock.Simulation.from_scenario(path, device="cpu")
    sim.step(5)
    assert sim.step_count == 5 or sim.done
    assert np.isfinite(sim.state.pos.numpy()).all()


def _error(data, tmp_path=None):
    with pytest.raises(ScenarioError) as info:
        validate_scenario(data, source="bad.yaml")
    return str(info.value)


def _with(path, value):
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


@pytest.mark.parametrize("path,value,expected", [
    ("rules.separation.radius", -2, "bad.yaml: rules.separation.radius: expected a number > 0, got -2"),
    ("rules.separation.wieght", 3, "bad.yaml: rules.separation.wieght: unknown key 'wieght'; did you mean 'weight'?"),
    ("world.boundry", "wrap", "did you mean 'boundary'?"),
    ("world.boundary", "bouncy", "bad.yaml: world.boundary: expected 'wrap', 'soft', 'reflect' or 'open', got 'bouncy'"),
    ("agents.count", "many", "bad.yaml: agents.count: expected an integer, got 'many'"),
    ("agents.count", -1, "bad.yaml: agents.count: expected a number >= 0, got -1"),
    ("agents.max_speed", "fast", "bad.yaml: agents.max_speed: expected a number, got 'fast'"),
    ("world.size", [100, 50, 3], "bad.yaml: world.size: expected 2 numbers (world.dims = 2), got [100.0, 50.0, 3.0]"),
    ("world.dims", 4, "bad.yaml: world.dims: expected 2 or 3, got 4"),
    ("rules.formulation", "swarm", "bad.yaml: rules: expected 'formulation' to be one of 'seed', 'reynolds', 'mesa', 'netlogo', 'meanshift', 'circles', 'neural', got 'swarm'"),
    ("agents.position", {"kind": "file", "path": "missing.npy"}, "agents.position.path: file not found"),
    ("agents.position", {"kind": "blob"}, "agents.position: expected 'kind' to be one of"),
    ("agents.velocity", {"kind": "uniform", "low": [0, 0]}, "agents.velocity: a uniform velocity needs both low and high"),
    ("run.device", "tpu", "bad.yaml: run.device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ("run.backend", "magic", "bad.yaml: run.backend: expected 'auto', 'dense', 'grid', 'fused', 'triton' or 'numba', got 'magic'"),
])
def test_bad_values_name_file_key_value_and_expectation(path, value, expected):
    assert expected in _error(_with(path, value))


def test_missing_keys_are_named():
    data = copy.deepcopy(BASE)
    del data["rules"]["cohesion"]
    assert "bad.yaml: rules.cohesion: required key is missing" in _error(data)


def test_every_problem_is_reported_at_once():
    data = _with("rules.separation.radius", -2)
    data["world"]["boundry"] = "x"
    err = _error(data)
    assert "rules.separation.radius" in err and "world.boundry" in err


def test_top_level_must_be_a_mapping():
    assert "expected a mapping" in _error([1, 2, 3])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ScenarioError, match="nope.yaml: file not found"):
        load_scenario(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: [1, 2\nagents: 3\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: line \d+, column \d+: not valid YAML"):
        load_scenario(bad)


def test_yaml_tags_are_refused_by_safe_load(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("world: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(evil)


def test_positions_from_npy_and_csv_files(tmp_path):
    pts = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    np.save(tmp_path / "p.npy", pts)
    (tmp_path / "v.csv").write_text("vx,vy\n0.1,0\n0,0.1\n0.1,0.1\n")
    data = copy.deepcopy(BASE)
    data["agents"] = {"position": {"kind": "file", "path": "p.npy"},
                      "velocity": {"kind": "file", "path": "v.csv"}, "max_speed": 2, "max_force": 0.1}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    sim = flock.Simulation.from_scenario(path, device="cpu", dtype="float64")
    assert sim.state.pos.tolist() == pts.tolist()
    assert sim.state.vel.tolist() == [[0.1, 0.0], [0.0, 0.1], [0.1, 0.1]]


def test_file_with_wrong_columns_is_an_error(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((4, 3)))
    data = copy.deepcopy(BASE)
    data["agents"]["position"] = {"kind": "file", "path": "p.npy"}
    data["agents"]["count"] = None
    del data["agents"]["count"]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError, match="agents.position.path: expected 2 columns"):
        flock.Simulation.from_scenario(path, device="cpu")


def test_blob_count_must_agree():
    data = copy.deepcopy(BASE)
    data["agents"]["position"] = {"kind": "blobs", "n_blobs": 2, "per_blob": 4}
    assert "agents.count: expected 8 (n_blobs x per_blob), got 10" in _error(data)


def test_round_trip_through_yaml():
    sc = load_scenario("scenarios/boids_seed.yaml")
    again = validate_scenario(yaml.safe_load(sc.to_yaml()))
    assert again.to_dict() == sc.to_dict()


def test_live_assignment_is_validated():
    sc = validate_scenario(copy.deepcopy(BASE))
    sc.rules.separation.weight = 2.5
    with pytest.raises(ValueError):
        sc.rules.separation.radius = -1
