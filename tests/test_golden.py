"""Golden trajectories: every shipped scenario, 50 steps on the CPU in float64, against saved states.

The files under ``tests/golden/`` were written by the engine before the step pipeline was
redesigned (issue 11); the redesign must reproduce them to ``atol=1e-9``. A case whose
behaviour changes on purpose gets a new file, with the reason in the commit that writes it.

Large scenarios run with fewer agents (``count``), so the files stay small; the dense
backend is used everywhere, so the summation order (and with it the chaotic trajectory)
does not depend on which backend ``auto`` would pick.

Regenerate (only for a deliberate change): ``python tests/test_golden.py --write [NAME ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import flock

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
STEPS = 50

# name -> (scenario file, --set overrides)
CASES: dict[str, tuple[str, list[str]]] = {
    "boids_seed": ("boids_seed.yaml", []),
    "boids_torus": ("boids_torus.yaml", ["agents.count=400"]),
    "mesa_flockers": ("mesa_flockers.yaml", []),
    "netlogo_flocking": ("netlogo_flocking.yaml", []),
    "bench_circles3d": ("bench_circles3d.yaml", ["agents.count=500"]),
    "murmuration_3d": ("murmuration_3d.yaml", ["agents.count=400"]),
    "obstacles": ("obstacles.yaml", []),
    "predator_prey": ("predator_prey.yaml", ["agents.count=200"]),
    "meanshift_seed": ("meanshift_seed.yaml", []),
    "meanshift_triangular": ("meanshift_triangular.yaml", []),
    "neural_boids": ("neural_boids.yaml", ["agents.count=300"]),
}


def run_case(name: str) -> dict[str, np.ndarray]:
    path, overrides = CASES[name]
    sc = flock.load_scenario(ROOT / "scenarios" / path, overrides=overrides)
    sim = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64", backend="dense", seed=7)
    sim.step(STEPS)
    return {"pos": sim.state.pos.numpy(), "vel": sim.state.vel.numpy(), "step_count": np.array(sim.step_count)}


def test_every_shipped_scenario_has_a_golden_case():
    shipped = {p.name for p in (ROOT / "scenarios").glob("*.yaml")}
    assert shipped <= {path for path, _ in CASES.values()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_trajectory_matches_golden(name):
    expected = np.load(GOLDEN / f"{name}.npz")
    got = run_case(name)
    assert int(got["step_count"]) == int(expected["step_count"])
    np.testing.assert_allclose(got["pos"], expected["pos"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["vel"], expected["vel"], rtol=0, atol=1e-9)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--write":
        print(__doc__)
        return 2
    GOLDEN.mkdir(exist_ok=True)
    for name in argv[1:] or sorted(CASES):
        np.savez_compressed(GOLDEN / f"{name}.npz", **run_case(name))
        print("wrote", GOLDEN / f"{name}.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
