"""torch.compile of the boid arithmetic (flock.compiled): equal to eager to float rounding, and a clean fallback."""

from __future__ import annotations

import pytest
import torch

from flock import compiled
from flock.compiled import for_flock
from flock.rules import mesa_velocity, reynolds_acceleration, seed_acceleration

pytestmark = pytest.mark.slow          # the first compile takes seconds


def _sums(n, k, dim, gen):
    s = torch.rand(k, n, 2 * dim + 1, generator=gen, dtype=torch.float64)
    s[..., -1] = torch.randint(0, 4, (k, n), generator=gen).to(torch.float64)   # some agents see no one
    return s


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILE_MIN_AGENTS", 64)


@pytest.mark.parametrize("dim", [2, 3])
def test_the_compiled_boid_rules_equal_eager(small_threshold, dim):
    gen = torch.Generator().manual_seed(dim)
    n = 500
    pos = torch.rand(n, dim, generator=gen, dtype=torch.float64)
    vel = torch.randn(n, dim, generator=gen, dtype=torch.float64) * 0.05
    s3, s2 = _sums(n, 3, dim, gen), _sums(n, 2, dim, gen)
    cases = [
        (reynolds_acceleration, (pos, vel, s3[0], s3[1], s3[2]),
         dict(cohesion=1.0, alignment=0.7, separation=1.5, max_speed=0.05, max_force=0.005, sums=s3)),
        (seed_acceleration, (pos, vel, s2[0], s2[1]),
         dict(cohesion=1.0, alignment=1.0, separation=1.5, max_force=0.01, sums=s2)),
        (mesa_velocity, (vel, s2[0], s2[1], pos),
         dict(cohere=0.03, separate=0.015, match=0.05, speed=1.0, sums=s2)),
    ]
    with torch.no_grad():
        for fn, args, kwargs in cases:
            fast = for_flock(fn, pos, vel)
            assert fast is not fn, fn.__name__
            eager = fn(*args, **kwargs)
            torch.testing.assert_close(fast(*args, **kwargs), eager, rtol=1e-12, atol=1e-14)


def test_small_flocks_autograd_and_other_devices_stay_eager():
    pos = torch.zeros(10, 2)
    assert for_flock(reynolds_acceleration, pos) is reynolds_acceleration
    big = torch.zeros(compiled.COMPILE_MIN_AGENTS, 2, requires_grad=True)
    with torch.enable_grad():
        assert for_flock(reynolds_acceleration, big) is reynolds_acceleration
    with torch.device("meta"):
        assert for_flock(reynolds_acceleration, torch.zeros(compiled.COMPILE_MIN_AGENTS, 2)) is reynolds_acceleration


def test_a_compile_failure_runs_eagerly_and_says_so_once(small_threshold, monkeypatch, capsys):
    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return run

    def double(x):
        return 2 * x

    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.arange(100.0)
    with torch.no_grad():
        assert torch.equal(for_flock(double, x)(x), 2 * x)
        assert torch.equal(for_flock(double, x)(x), 2 * x)      # now plainly eager
    err = capsys.readouterr().err
    assert err.count("torch.compile of double failed (RuntimeError: no C++ compiler found)") == 1
    assert for_flock(double, x) is double
