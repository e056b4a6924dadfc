"""The flocksim command: run headless, validate, and keep what was done on Ctrl-C."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from flock import cli


def test_run_headless_writes_metrics_and_final_state(tmp_path, capsys):
    rc = cli.main(["run", "scenarios/boids_seed.yaml", "--headless", "--steps", "7", "--out", str(tmp_path),
                   "--quiet", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "boids_seed: done after 7 steps of 300 agents" in out and "agent-steps/s" in out
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == list(range(8))
    final = np.load(tmp_path / "final_state.npz")
    assert final["pos"].shape == (300, 2) and final["vel"].shape == (300, 2) and int(final["step"]) == 7


def test_meanshift_run_stops_when_converged(tmp_path, capsys):
    assert cli.main(["run", "scenarios/meanshift_seed.yaml", "--headless", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 modes, converged" in out


def test_ctrl_c_keeps_what_was_done(tmp_path, monkeypatch, capsys):
    from flock.simulation import Simulation

    real_step = Simulation.step

    def step_then_interrupt(self, n=1):
        if self.step_count >= 3:
            raise KeyboardInterrupt
        return real_step(self, 1)

    monkeypatch.setattr(Simulation, "step", step_then_interrupt)
    rc = cli.main(["run", "scenarios/boids_seed.yaml", "--headless", "--steps", "100", "--out", str(tmp_path), "--quiet"])
    assert rc == 130
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3]
    assert int(np.load(tmp_path / "final_state.npz")["step"]) == 3
    assert "interrupted after 3 steps" in capsys.readouterr().out


def test_run_with_a_bad_scenario_prints_the_problem_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {dims: 2, size: [10, 10]}\nagents: {count: 3}\nrules: {formulation: seed}\n")
    assert cli.main(["run", str(bad), "--headless"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: rules.cohesion: required key is missing" in err
    assert "Traceback" not in err


def test_validate_exit_codes(tmp_path, capsys):
    assert cli.main(["validate", "scenarios/boids_seed.yaml", "scenarios/meanshift_seed.yaml"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {dims: 2, size: [10, -1]}\nagents: {count: 3}\nrules: {formulation: seed}\n")
    assert cli.main(["validate", "scenarios/boids_seed.yaml", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "world.size.1: expected a number > 0, got -1" in err
    assert "rules.cohesion: required key is missing" in err


def test_python_dash_m_flock_is_the_same_command(tmp_path):
    res = subprocess.run([sys.executable, "-m", "flock", "validate", "scenarios/boids_torus.yaml"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout


@pytest.mark.parametrize("argv", [["run", "scenarios/boids_seed.yaml", "--device", "tpu", "--headless"]])
def test_bad_device_is_a_clear_error(argv, capsys):
    assert cli.main(argv) == 2
    assert "device: expected 'auto', 'cpu' or 'cuda[:N]', got 'tpu'" in capsys.readouterr().err


def test_set_overrides_on_run_and_validate(tmp_path, capsys):
    rc = cli.main(["run", "scenarios/boids_torus.yaml", "--headless", "--steps", "2", "--out", str(tmp_path),
                   "--quiet", "--set", "agents.count=50", "--set", "rules.separation.weight=3"])
    assert rc == 0
    assert "of 50 agents" in capsys.readouterr().out
    assert cli.main(["validate", "scenarios/boids_torus.yaml", "--set", "rules.separation.weight=-3"]) == 1
    err = capsys.readouterr().err
    assert "(with --set rules.separation.weight=-3): rules.separation.weight: expected a number >= 0, got -3" in err


def test_ensemble_run_writes_per_member_metrics(tmp_path, capsys):
    rc = cli.main(["run", "scenarios/boids_torus.yaml", "--ensemble", "3", "--steps", "4", "--out", str(tmp_path),
                   "--set", "agents.count=40", "--device", "cpu"])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert sorted({r["member"] for r in rows}) == ["0", "1", "2"]
    assert np.load(tmp_path / "final_state.npz")["pos"].shape == (3, 40, 2)
    assert "ensemble of 3 x 40 agents done after 4 steps" in capsys.readouterr().out


def test_record_then_replay_to_a_gif(tmp_path, capsys):
    h5 = tmp_path / "run.h5"
    assert cli.main(["run", "scenarios/boids_seed.yaml", "--headless", "--steps", "6", "--record", str(h5),
                     "--record-every", "2", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    gif = tmp_path / "replay.gif"
    assert cli.main(["replay", str(h5), "--gif", str(gif), "--size", "200x100"]) == 0
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (200, 100)


def test_cluster_subcommand_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(c, 0.5, (60, 2)) for c in [(0, 0), (8, 8)]])
    data = tmp_path / "pts.csv"
    data.write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in pts))
    out = tmp_path / "labels.csv"
    assert cli.main(["cluster", str(data), "--bandwidth", "2", "--kernel", "gaussian", "--out", str(out)]) == 0
    assert "2 clusters; sizes: 60, 60" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 121
