"""Random scenario documents (issue 14): ``flocksim validate`` accepts one (and then a 3-step
run is finite) or refuses it with a message; never a traceback."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flock import cli
from flock.scenario import set_path

# a small copy of a shipped scenario, so that valid documents run in milliseconds
BASE = set_path(yaml.safe_load((Path(__file__).parents[1] / "scenarios" / "boids_torus.yaml").read_text()),
                "agents.count", 20)
PATHS = ["world.size", "world.size.0", "world.origin", "world.boundary", "world.dims", "world.wall_force",
         "agents.count", "agents.max_speed", "agents.min_speed", "agents.position", "agents.position.low",
         "agents.velocity", "agents.velocity.speed", "rules.formulation", "rules.cohesion.radius",
         "rules.separation.weight", "rules.field_of_view", "rules.wander", "run.dt", "run.seed", "run.backend",
         "metrics.every", "attractors", "obstacles", "world.sise", "agent", "rules.cohesion.wieght"]
KEYS = st.sampled_from(["kind", "radius", "weight", "low", "high", "center", "position", "strength", "count",
                        "uniform", "zero", "file", "path", "speed"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -1e300, 1e-300, 0.0]),
                    st.text(max_size=8), st.sampled_from(["uniform", "zero", "wrap", "circle", "reynolds", "seed"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3))
def test_random_documents_are_accepted_and_run_or_refused_cleanly(changes, capsys):
    data = BASE
    for path, value in changes:
        try:
            data = set_path(data, path, value)
        except ValueError:
            continue
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "s.yaml"
        file.write_text(yaml.safe_dump(data))
        code = cli.main(["validate", str(file)])
        out = capsys.readouterr()
        assert "Traceback" not in out.err
        if code != 0:
            assert str(file) in out.err
            return
        code = cli.main(["run", str(file), "--headless", "--quiet", "--steps", "3", "--out", str(Path(tmp) / "o")])
        out = capsys.readouterr()
        assert code == 0, out.err
        final = np.load(Path(tmp) / "o" / "final_state.npz")
        assert np.isfinite(final["pos"]).all() and np.isfinite(final["vel"]).all()


@pytest.mark.parametrize("text", ["a: [1, 2", "{{{", "- - -", "key: value: other", "\t- x", "&a [*a]", "!!python/name:os.system"])
def test_broken_yaml_is_refused(tmp_path, text, capsys):
    file = tmp_path / "s.yaml"
    file.write_text(text)
    assert cli.main(["validate", str(file)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(file) in err
