"""Sweep files: validation messages (the scenarios' shape), expansion, seeds."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from flock import ScenarioError, load_scenario
from flock.sweep_spec import build_sweep, load_sweep, run_seed

BASE = str(Path("scenarios/boids_torus.yaml").resolve())
SWEEP_FILES = sorted(Path("scenarios/sweeps").glob("*.yaml"))


def _data(**kw):
    data = {"base": BASE, "set": {"agents.count": 20}, "parameters": {"rules.alignment.weight": [0.5, 1.0]},
            "steps": 2}
    data.update(kw)
    return data


def _error(data, tmp_path) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_sweep(path)
    return str(info.value)


def _tail(message: str) -> str:
    """The message after the origin ('file (context): ')."""
    return message.split("): ", 1)[1]


def test_bad_key_path_is_reported_like_set(tmp_path):
    msg = _error(_data(parameters={"rules.alignment.wieght": [0.5]}), tmp_path)
    assert msg.startswith(f"{tmp_path / 's.yaml'} (point 0: rules.alignment.wieght=0.5): ")
    with pytest.raises(ScenarioError) as ref:
        load_scenario(BASE, overrides=["rules.alignment.wieght=0.5"])
    assert _tail(msg) == _tail(str(ref.value)) == "rules.alignment.wieght: unknown key 'wieght'; did you mean 'weight'?"


def test_key_path_into_a_value_and_bad_values(tmp_path):
    msg = _error(_data(parameters={"agents.count.x": [1]}), tmp_path)
    assert msg == f"{tmp_path / 's.yaml'}: parameters.agents.count.x: agents.count: is a value, not a mapping"
    msg = _error(_data(parameters={"rules.separation.radius": [5, -2]}), tmp_path)
    assert msg.endswith("(point 1: rules.separation.radius=-2): rules.separation.radius: expected a number > 0, got -2")


@pytest.mark.parametrize("spec, where, what", [
    ({"from": 2, "to": 1, "step": 0.5}, "to", "expected a number >= from (2), got 1"),
    ({"from": 0, "to": 1, "step": 0.5, "num": 3}, "", "expected exactly one of 'step' or 'num'"),
    ({"from": 0, "to": 1}, "", "expected exactly one of 'step' or 'num'"),
    ({"from": 0, "to": 1, "step": -1}, "step", "expected a number > 0, got -1"),
    ({"from": 0, "to": 1, "num": 3, "log": True}, "from", "a log range needs from > 0, got 0"),
    ({"from": 1, "to": 10, "step": 1, "log": True}, "log", "a log range takes num, not step"),
    ({"from": 0, "to": 1, "stp": 1}, "stp", "unknown key 'stp'; did you mean 'step'?"),
    ({"from": "a", "to": 1, "num": 2}, "from", "expected a number, got 'a'"),
])
def test_bad_ranges(tmp_path, spec, where, what):
    msg = _error(_data(parameters={"rules.alignment.weight": spec}), tmp_path)
    key = "parameters.rules.alignment.weight" + (f".{where}" if where else "")
    assert msg == f"{tmp_path / 's.yaml'}: {key}: {what}"


@pytest.mark.parametrize("change, line", [
    ({"method": "sobol"}, "method: expected 'grid', 'random' or 'lhs', got 'sobol'"),
    ({"paramters": {}}, "paramters: unknown key 'paramters'; did you mean 'parameters'?"),
    ({"replicates": 0}, "replicates: expected a number >= 1, got 0"),
    ({"method": "random"}, "n: required key is missing (method random draws n points)"),
    ({"n": 4}, "n: n is the number of points of method random or lhs; grid takes every combination: "
               "leave n out, got 4"),
    ({"parameters": {"run.seed": [1, 2]}}, "parameters.run.seed: seeds come from the sweep's seed and "
                                           "replicates; leave run.seed out of parameters (set seed: at the "
                                           "top of the sweep file)"),
    ({"parameters": {"rules.alignment.weight": {"sample": "gauss", "low": 0, "high": 1}}, "method": "random", "n": 2},
     "parameters.rules.alignment.weight.sample: expected one of uniform, loguniform, choice, got 'gauss'"),
    ({"parameters": {"rules.alignment.weight": {"sample": "uniform", "low": 0, "high": 1}}},
     "parameters.rules.alignment.weight: a uniform distribution is sampled: it needs method random or lhs "
     "(got grid); or give a list or a range"),
    ({"parameters": {"rules.alignment.weight": {"sample": "loguniform", "low": 0, "high": 1}},
      "method": "lhs", "n": 2}, "parameters.rules.alignment.weight.low: expected a number > 0, got 0"),
    ({"parameters": {"rules.alignment.weight": 3}},
     "parameters.rules.alignment.weight: expected a list of values, a range {from, to, step | num} or "
     "{sample: ...}, got 3"),
    ({"metrics": {"polarization": {"final": False}}},
     "metrics.polarization: keeps nothing: set final: true, mean_last: K or series: true"),
    ({"metrics": {"polarization": {"mean_lst": 3}}},
     "metrics.polarization.mean_lst: unknown key 'mean_lst'; did you mean 'mean_last'?"),
    ({"base": "nowhere.yaml"}, "base: file not found: "),
    ({"base": 3}, "base: expected the path of a scenario file or an inline scenario mapping, got 3"),
    ({"parameters": {"world.boundary": {"sample": "choice", "values": []}}},
     "parameters.world.boundary.values: expected at least one value, got []"),
    ({"run": {"wokers": 2}}, "run.wokers: unknown key 'wokers'; did you mean 'workers'?"),
])
def test_bad_sweep_keys(tmp_path, change, line):
    msg = _error(_data(**change), tmp_path)
    assert f"{tmp_path / 's.yaml'}: {line}" in msg


def test_grid_expansion_order_ranges_and_types():
    sw = build_sweep(_data(set={}, parameters={"rules.separation.weight": [0.5, 1.5],
                                       "rules.alignment.weight": {"from": 0.0, "to": 0.3, "step": 0.1},
                                       "agents.count": {"from": 10, "to": 30, "step": 10}}, replicates=2))
    values = [p.values for p in sw.points]
    assert len(values) == 2 * 4 * 3 and len(sw.runs) == 48
    assert values[0] == {"rules.separation.weight": 0.5, "rules.alignment.weight": 0.0, "agents.count": 10}
    assert values[1]["agents.count"] == 20 and values[3]["rules.alignment.weight"] == 0.1
    assert [v["rules.alignment.weight"] for v in values[::3][:4]] == [0.0, 0.1, 0.2, 0.3]  # 0.1 * 3 is 0.3
    assert all(type(v["agents.count"]) is int for v in values)
    assert sw.points[5].scenario.agents.count == values[5]["agents.count"]
    assert [r.run_id for r in sw.runs] == list(range(48))
    assert [(r.point, r.replicate) for r in sw.runs[:3]] == [(0, 0), (0, 1), (1, 0)]
    log = build_sweep(_data(parameters={"rules.alignment.weight": {"from": 0.01, "to": 1, "num": 3, "log": True}}))
    assert [p.values["rules.alignment.weight"] for p in log.points] == pytest.approx([0.01, 0.1, 1.0])


@pytest.mark.parametrize("method", ["random", "lhs"])
def test_sampled_expansion_is_deterministic_for_a_root_seed(method):
    params = {"rules.alignment.weight": {"sample": "uniform", "low": 0.0, "high": 1.0},
              "rules.cohesion.weight": {"sample": "loguniform", "low": 0.01, "high": 1.0},
              "world.boundary": {"sample": "choice", "values": ["wrap", "reflect"]}}
    data = _data(parameters=params, method=method, n=8, seed=3)
    first = [p.values for p in build_sweep(data).points]
    again = [p.values for p in build_sweep(copy.deepcopy(data)).points]
    other = [p.values for p in build_sweep({**data, "seed": 4}).points]
    assert first == again and first != other and len(first) == 8
    align = np.array([v["rules.alignment.weight"] for v in first])
    coh = np.array([v["rules.cohesion.weight"] for v in first])
    assert ((0 <= align) & (align < 1)).all() and ((0.01 <= coh) & (coh < 1)).all()
    assert {v["world.boundary"] for v in first} <= {"wrap", "reflect"}
    if method == "lhs":  # a Latin hypercube: one point in each of the n strata of every axis
        assert sorted(np.floor(align * 8).astype(int)) == list(range(8))
        log_u = (np.log(coh) - np.log(0.01)) / (np.log(1.0) - np.log(0.01))
        assert sorted(np.floor(log_u * 8).astype(int)) == list(range(8))


def test_seeds_are_spawn_keys_of_the_run_index():
    sw = build_sweep(_data(replicates=3, seed=11))
    children = np.random.SeedSequence(11).spawn(len(sw.runs))
    assert [r.seed for r in sw.runs] == [int(c.generate_state(1, np.uint32)[0]) for c in children]
    assert run_seed(11, 4) == sw.runs[4].seed and len({r.seed for r in sw.runs}) == len(sw.runs)
    # a run's seed does not move when the sweep grows: it is a function of (root, index) alone
    bigger = build_sweep(_data(replicates=3, seed=11, parameters={"rules.alignment.weight": [0.5, 1.0, 2.0]}))
    assert [r.seed for r in bigger.runs[:6]] == [r.seed for r in sw.runs]


def test_inline_base_and_fingerprint(tmp_path):
    inline = yaml.safe_load(Path(BASE).read_text(encoding="utf-8"))
    a = build_sweep(_data(base=inline))
    b = build_sweep(_data())
    assert a.points[1].scenario.to_dict() == b.points[1].scenario.to_dict()
    assert a.fingerprint() == b.fingerprint() != build_sweep(_data(steps=3)).fingerprint()


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_example_sweep_files_are_valid_and_not_scenarios(path):
    sw = load_sweep(path)
    assert len(sw.runs) >= 2
    with pytest.raises(ScenarioError):
        load_scenario(path)  # the scenario tests glob scenarios/*.yaml only: sweeps live one level down
