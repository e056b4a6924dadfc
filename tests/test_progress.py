"""Large neighbor passes in chunks (flock.neighbors.progress): same sums, progress reported, Ctrl-C prompt."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_grid import ALL_KINDS, make_kernel, mixed_kernels, random_inputs

from flock.kernels import Kernel
from flock.neighbors import reduce_neighbors
from flock.neighbors.progress import active_progress, report_progress

F32 = torch.float32


class Calls:
    """A progress callback that keeps every (done, total) it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, done, total):
        self.calls.append((done, total))

    def check(self):
        """Starts at 0, never goes back, ends at total (> 0); returns the number of chunks."""
        done = [d for d, _ in self.calls]
        totals = {t for _, t in self.calls}
        assert len(totals) == 1 and totals.pop() > 0
        assert done[0] == 0 and done == sorted(done) and done[-1] == self.calls[-1][1]
        return len(done) - 1


def chunked(backend, pos, vel, kernels, chunk_pairs, **kwargs):
    calls = Calls()
    with report_progress(calls, min_pairs=0, chunk_pairs=chunk_pairs):
        got = reduce_neighbors(pos, vel, kernels, backend=backend, **kwargs)
    return got, calls


@pytest.mark.parametrize("fov", [None, 200.0], ids=["all-around", "fov"])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("dim", [2, 3])
def test_numba_chunks_are_bit_identical(dim, periodic, fov):
    """Every kernel kind (one channel each, and again with another radius and self included)."""
    pytest.importorskip("numba")
    box = [3.5, 4.2, 3.1][:dim]
    pos, vel, _ = random_inputs(80, dim, box, seed=dim + 10 * periodic, dtype=F32)
    kernels = ([make_kernel(kind, 1.0) for kind in ALL_KINDS]
               + [make_kernel(kind, 0.55, exclude_self=False) for kind in ALL_KINDS])
    if fov is not None:
        kernels = [Kernel(**{**k.__dict__, "fov": fov}) for k in kernels]
    period = torch.tensor(box, dtype=F32) if periodic else None
    want = reduce_neighbors(pos, vel, kernels, backend="numba", period=period)
    got, calls = chunked("numba", pos, vel, kernels, chunk_pairs=500, period=period)
    assert torch.equal(got, want)
    assert calls.check() > 3


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 25), dim=st.sampled_from([2, 3]), periodic=st.booleans(),
       external=st.booleans(), n_feat=st.integers(0, 2), clump=st.booleans(), chunk=st.integers(1, 400),
       seed=st.integers(0, 2**16), backend=st.sampled_from(["numba", "grid", "dense"]))
def test_chunked_equals_unchunked_on_random_inputs(n, m, dim, periodic, external, n_feat, clump, chunk, seed,
                                                   backend):
    if backend == "numba":
        pytest.importorskip("numba")
    box = [2.5, 3.0, 3.5][:dim]
    pos, vel, feats = random_inputs(n, dim, box, seed=seed, n_feat=n_feat, dtype=F32)
    if clump:
        pos[: n // 2 + 1] = 1.0
    kernels = mixed_kernels() + [Kernel("flat", radius=0.8, fov=120.0)]
    kwargs = {"period": torch.tensor(box, dtype=F32) if periodic else None, "features": feats}
    if external:
        g = torch.Generator().manual_seed(seed + 1)
        kwargs.update(query_pos=torch.rand(m, dim, generator=g) * 4.0 - 0.5, query_vel=torch.randn(m, dim, generator=g),
                      query_index=torch.randint(-1, n, (m,), generator=g))
    want = reduce_neighbors(pos, vel, kernels, backend=backend, **kwargs)
    got, calls = chunked(backend, pos, vel, kernels, chunk_pairs=chunk, **kwargs)
    # numba's chunks are query ranges of the same compiled loop; grid and dense do not cut
    # differently at all (they only report): every backend gives the same bits
    assert torch.equal(got, want)
    if calls.calls:
        calls.check()


def test_a_small_pass_and_no_context_take_the_fast_path():
    pytest.importorskip("numba")
    pos, vel, _ = random_inputs(300, 2, [20.0, 20.0], seed=1, dtype=F32)
    calls = Calls()
    assert active_progress() is None
    with report_progress(calls) as setting:            # default threshold: far above this pass
        assert active_progress() is setting
        reduce_neighbors(pos, vel, mixed_kernels(), backend="numba", period=torch.tensor([20.0, 20.0]))
    assert active_progress() is None and calls.calls == []


@pytest.mark.parametrize("backend", ["numba", "grid", "dense"])
def test_a_clump_reports_increasing_fractions(backend):
    """600 agents at one point: 3.6e5 candidate pairs, chunked by a low threshold."""
    if backend == "numba":
        pytest.importorskip("numba")
    n = 600
    pos = torch.full((n, 2), 5.0) + 0.01 * torch.rand(n, 2, generator=torch.Generator().manual_seed(0))
    vel = torch.randn(n, 2, generator=torch.Generator().manual_seed(1))
    kernels = mixed_kernels()
    # the torch backends cut by memory: small chunks here, so that there are several
    kwargs = {"dense": {"chunk_rows": 50}, "grid": {"memory_budget": 2_000_000}}.get(backend, {})
    want = reduce_neighbors(pos, vel, kernels, backend=backend, period=torch.tensor([40.0, 40.0]), **kwargs)
    calls = Calls()
    with report_progress(calls, min_pairs=1e5, chunk_seconds=0.001):
        got = reduce_neighbors(pos, vel, kernels, backend=backend, period=torch.tensor([40.0, 40.0]), **kwargs)
    assert torch.equal(got, want)
    assert calls.check() >= 4
    assert calls.calls[-1] == (n * n, n * n)


def test_bad_settings_are_refused():
    for bad in ({"min_pairs": -1}, {"chunk_seconds": 0}, {"chunk_pairs": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            with report_progress(**bad):
                pass
