"""tools/compare_peers.py: its numpy peers compute what they claim (the JS rules, the lesson's loop)."""

import importlib.util
from pathlib import Path

import numpy as np

from flock.testing import reference_meanshift, reference_seed_step

_spec = importlib.util.spec_from_file_location("compare_peers", Path(__file__).parents[1] / "tools" / "compare_peers.py")
compare_peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_peers)


def test_numpy_boids_equal_the_reference_step():
    rng = np.random.default_rng(1)
    pos = rng.uniform([-20, -10], [220, 110], size=(40, 2))      # a few outside the walls
    vel = rng.uniform(-3, 3, size=(40, 2))
    pos[1] = pos[0] + [3.0, 0.0]                                  # too near
    got = compare_peers.numpy_seed_step(pos, vel, width=200, height=100, view=60, near=20, rows=7)
    want = reference_seed_step(pos, vel, width=200, height=100, view=60, near=20)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)


def test_lesson_meanshift_loop():
    """The lesson moves each point as soon as it is computed: point 0's first move is the
    synchronous reference's, and both end on the same two modes."""
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(c, 1.0, size=(30, 2)) for c in ([0, 0], [8, 8])])
    one = compare_peers.meanshift(X, bandwidth=2.5, iterations=1)
    ref, _ = reference_meanshift(X, bandwidth=2.5, max_it=1)
    np.testing.assert_allclose(one[0], ref[0], rtol=1e-12)
    assert not np.allclose(one[1:], ref[1:])                      # in place, not synchronous
    many = compare_peers.meanshift(X, bandwidth=2.5, iterations=30)
    for blob in (many[:30], many[30:]):                            # each blob collapsed onto its mode
        assert np.ptp(blob, axis=0).max() < 0.05
    assert np.linalg.norm(many[0] - many[-1]) > 5
