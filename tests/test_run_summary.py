"""The end-of-run line counts the steps this run did and the NaN-guard corrections."""

import re

from flock import cli

BASE = ["--headless", "--quiet", "--set", "agents.count=60"]


def _summary(capsys) -> str:
    return next(line for line in capsys.readouterr().out.splitlines() if " after " in line)


def test_metrics_every_beyond_the_run(tmp_path, capsys):
    assert cli.main(["run", "scenarios/boids_torus.yaml", "--steps", "5", "--out", str(tmp_path),
                     "--set", "metrics.every=50", *BASE]) == 0
    line = _summary(capsys)
    assert "done after 5 steps of 60 agents" in line and "0 NaN-guard corrections" in line
    rate = float(re.search(r"\(([\d,]+) agent-steps/s\)", line).group(1).replace(",", ""))
    assert rate > 0


def test_resumed_run_counts_only_its_own_steps(tmp_path, capsys):
    assert cli.main(["run", "scenarios/boids_torus.yaml", "--steps", "4", "--out", str(tmp_path / "a"),
                     "--checkpoint", str(tmp_path / "ck"), "--checkpoint-every", "4", *BASE]) == 0
    capsys.readouterr()
    ckpt = sorted((tmp_path / "ck").glob("ckpt_*"))[-1]
    assert cli.main(["run", "--resume", str(ckpt), "--steps", "10", "--out", str(tmp_path / "b"), "--quiet",
                     "--headless"]) == 0
    assert "done after 6 steps" in _summary(capsys)
