"""--set overrides and extends: chains, cycles, and the same messages as the file."""

from pathlib import Path

import pytest
import yaml

import flock
from flock import ScenarioError, load_scenario
from flock.scenario import apply_overrides


def test_overrides_change_values_like_the_file_would():
    sc = load_scenario("scenarios/boids_torus.yaml", overrides=["rules.separation.weight=3", "agents.count=500"])
    assert sc.rules.separation.weight == 3.0 and sc.agents.count == 500
    sc = load_scenario("scenarios/boids_torus.yaml", overrides=["world.size.0=123", "world.boundary=reflect"])
    assert sc.world.size == [123.0, 400.0] and sc.world.boundary == "reflect"


@pytest.mark.parametrize("override,message", [
    ("rules.separation.weight=abc", "rules.separation.weight: expected a number, got 'abc'"),
    ("rules.separation.weight=-1", "rules.separation.weight: expected a number >= 0, got -1"),
    ("rules.separation.wieght=1", "rules.separation.wieght: unknown key 'wieght'; did you mean 'weight'?"),
    ("agents.count=lots", "agents.count: expected an integer, got 'lots'"),
    ("world.boundary=bouncy", "world.boundary: expected 'wrap', 'soft', 'reflect' or 'open', got 'bouncy'"),
])
def test_override_errors_have_the_files_messages_and_key_paths(override, message):
    with pytest.raises(ScenarioError) as info:
        load_scenario("scenarios/boids_torus.yaml", overrides=[override])
    text = str(info.value)
    assert message in text
    assert text.startswith(f"scenarios/boids_torus.yaml (with --set {override}): ")


@pytest.mark.parametrize("override,message", [
    ("noequals", "--set: expected key.path=value, got 'noequals'"),
    ("=3", "--set: expected key.path=value"),
    ("world.size.5=1", "world.size.5: expected an index below 2"),
    ("world.dims.x=1", "world.dims: is a value, not a mapping"),
])
def test_malformed_overrides(override, message):
    with pytest.raises(ScenarioError, match=None) as info:
        apply_overrides(yaml.safe_load(Path("scenarios/boids_torus.yaml").read_text()), [override])
    assert message in str(info.value)


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_extends_chain_overrides_parts(tmp_path):
    base = yaml.safe_load(Path("scenarios/boids_torus.yaml").read_text())
    _write(tmp_path / "base.yaml", base)
    _write(tmp_path / "mid.yaml", {"extends": "base.yaml", "agents": {"count": 64}})
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "leaf.yaml", {"extends": "../mid.yaml", "rules": {"separation": {"weight": 2.5}}})
    sc = load_scenario(tmp_path / "sub" / "leaf.yaml")
    assert sc.agents.count == 64
    assert sc.rules.separation.weight == 2.5 and sc.rules.separation.radius == 5.0
    assert sc.rules.formulation == "reynolds" and sc.world.size == [400.0, 400.0]
    flock.Simulation.from_scenario(sc, device="cpu").step(1)


def test_extends_keeps_a_base_files_relative_data_paths(tmp_path):
    import numpy as np

    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "p.npy", np.zeros((3, 2)))
    base = yaml.safe_load(Path("scenarios/boids_torus.yaml").read_text())
    base["agents"]["position"] = {"kind": "file", "path": "p.npy"}
    del base["agents"]["count"]
    _write(tmp_path / "data" / "base.yaml", base)
    _write(tmp_path / "child.yaml", {"extends": "data/base.yaml"})
    sim = flock.Simulation.from_scenario(tmp_path / "child.yaml", device="cpu")
    assert sim.state.n_agents == 3


def test_extends_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    _write(tmp_path / "b.yaml", {"extends": "c.yaml"})
    _write(tmp_path / "c.yaml", {"extends": "a.yaml"})
    with pytest.raises(ScenarioError, match="extends: cycle: .*a.yaml -> .*b.yaml -> .*c.yaml -> .*a.yaml"):
        load_scenario(tmp_path / "a.yaml")


def test_extends_missing_base(tmp_path):
    _write(tmp_path / "a.yaml", {"extends": "nope.yaml"})
    with pytest.raises(ScenarioError, match="a.yaml: extends: file not found"):
        load_scenario(tmp_path / "a.yaml")


def test_errors_in_an_extended_scenario_name_the_key(tmp_path):
    base = yaml.safe_load(Path("scenarios/boids_torus.yaml").read_text())
    _write(tmp_path / "base.yaml", base)
    _write(tmp_path / "child.yaml", {"extends": "base.yaml", "rules": {"cohesion": {"radius": -1}}})
    with pytest.raises(ScenarioError, match="child.yaml: rules.cohesion.radius: expected a number > 0, got -1"):
        load_scenario(tmp_path / "child.yaml")


def test_set_path_returns_new_data_and_leaves_the_input_alone():
    from flock.scenario import set_path

    data = {"a": {"b": [{"c": 1}, {"c": 2}]}, "n": None}
    new = set_path(data, "a.b.1.c", 5)
    assert new == {"a": {"b": [{"c": 1}, {"c": 5}]}, "n": None}
    assert data == {"a": {"b": [{"c": 1}, {"c": 2}]}, "n": None}
    assert set_path(data, "n.x", 3)["n"] == {"x": 3}
    assert set_path(data, ["a", "new"], [1])["a"]["new"] == [1]
    for bad, message in [("a.b.2.c", "a.b.2: expected an index below 2"), ("a.b.x", "a.b.x: expected an index"),
                         ("a..c", "expected a dotted key path"), ("a.b.0.c.d", "a.b.0.c: is a value")]:
        with pytest.raises(ScenarioError, match=None) as info:
            set_path(data, bad, 0, origin="ensemble params")
        assert str(info.value).startswith("ensemble params: ") and message in str(info.value)
