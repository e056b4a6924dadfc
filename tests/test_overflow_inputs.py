"""Numbers too large to compute with (issue 14, class 8): refused before a step, with the key and value."""

import math
import re

import numpy as np
import pytest
import torch
import yaml

import flock
from flock import cli
from flock.errors import ScenarioError

TORUS = "scenarios/boids_torus.yaml"


@pytest.fixture(scope="module")
def sim():
    return flock.Simulation.from_scenario(flock.load_scenario(TORUS, overrides=["agents.count=20"]), device="cpu")


@pytest.mark.parametrize("name,bad,shown", [("pos", math.nan, "nan"), ("pos", math.inf, "inf"),
                                             ("pos", -1e38, "-1e+38"), ("vel", 1e300, "1e+300")])
def test_add_agents_refuses_values_it_cannot_compute_with(sim, name, bad, shown):
    values = {"pos": torch.full((3, 2), 10.0, dtype=torch.float64), "vel": torch.zeros(3, 2, dtype=torch.float64)}
    values[name][1, 0] = bad
    n = sim.state.n_agents
    with pytest.raises(ScenarioError, match=rf"add_agents: {name}\[1, 0\] is {re.escape(shown)}; expected finite numbers"):
        sim.add_agents(values["pos"], vel=values["vel"])
    assert sim.state.n_agents == n


def test_add_agents_refuses_what_is_not_numbers(sim):
    with pytest.raises(ScenarioError, match="add_agents: pos must be an array of numbers"):
        sim.add_agents([[1.0, "a"]])


def test_add_agents_still_takes_ordinary_values(sim):
    n = sim.state.n_agents
    sim.add_agents(np.full((2, 2), 5.0), vel=[[1.0, 0.0], [0.0, 1.0]])
    assert sim.state.n_agents == n + 2


@pytest.mark.parametrize("setting,key", [("agents.max_speed=1.0e+38", "agents.max_speed"),
                                         ("world.size=[1.0e+38,1.0e+38]", "world.size.0"),
                                         ("agents.max_force=-1.0e+38", "agents.max_force")])
def test_the_cli_refuses_huge_settings_by_the_schema_bound(tmp_path, capsys, setting, key):
    rc = cli.main(["run", TORUS, "--steps", "1", "--out", str(tmp_path / "o"), "--set", setting])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc != 0 and "Traceback" not in text
    assert key in text and "1e+38" in text
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_the_cli_refuses_a_position_file_at_1e38(tmp_path, capsys):
    np.save(tmp_path / "far.npy", np.full((20, 2), 1e38))
    with open(TORUS) as fh:
        data = yaml.safe_load(fh)
    data["agents"]["count"] = 20
    data["agents"]["position"] = {"kind": "file", "path": "far.npy"}
    (tmp_path / "far.yaml").write_text(yaml.safe_dump(data))
    rc = cli.main(["run", str(tmp_path / "far.yaml"), "--steps", "1", "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc != 0 and "Traceback" not in text
    assert "far.npy" in text and "agents.position.path" in text and "1e+38" in text
