"""Numba backend: the compiled cell-list loop against the dense backend and the brute-force reference.

Cases mirror ``test_grid.py`` (every kernel kind, 2D / 3D, open / wrapped, field of
view, N = 0 and 1, one cell, cell borders, the wrap seam); the helpers are its own.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_grid import ALL_KINDS, assert_sums_close, make_kernel, mixed_kernels, random_inputs

import flock
from flock.kernels import Kernel
from flock.neighbors import choose_backend, reduce_neighbors
from flock.neighbors.dense import reduce_dense
from flock.testing import reference_sums

pytest.importorskip("numba")
from flock.neighbors.numba_grid import reduce_numba  # noqa: E402

F64 = torch.float64


def assert_numba_matches_dense(pos, vel, kernels, rtol=1e-9, atol=1e-9, **kwargs):
    got = reduce_numba(pos, vel, kernels, **kwargs)
    kwargs.pop("bounds", None)
    kwargs.pop("chunk_rows", None)
    want = reduce_dense(pos, vel, kernels, **kwargs)
    assert got.shape == want.shape and got.dtype == want.dtype and got.device == want.device
    assert_sums_close(got, want, rtol=rtol, atol=atol)
    return got


@pytest.mark.parametrize("fov", [None, 200.0], ids=["all-around", "fov"])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_matches_dense_and_reference(kind, dim, periodic, fov):
    box = [3.5, 4.2, 3.1][:dim]
    pos, vel, _ = random_inputs(60, dim, box, seed=dim + 10 * periodic)
    vel[:4] = 0.0                                      # at rest: sees all around
    kernels = [make_kernel(kind, 1.0), make_kernel(kind, 0.55, exclude_self=False)]
    if fov is not None:
        kernels = [Kernel(**{**k.__dict__, "fov": fov}) for k in kernels]
    period = torch.tensor(box, dtype=F64) if periodic else None
    got = assert_numba_matches_dense(pos, vel, kernels, period=period)
    assert_sums_close(got, reference_sums(pos, vel, kernels, period=period))
    assert (got[0, :, -1] != 0).any()


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_features_external_queries_and_headings(periodic):
    box = [3.0, 2.6, 2.2]
    pos, vel, feats = random_inputs(50, 3, box, seed=3, n_feat=2)
    g = torch.Generator().manual_seed(4)
    query = torch.rand(15, 3, generator=g, dtype=F64) * 5.0 - 1.0     # partly outside the box
    qvel = torch.randn(15, 3, generator=g, dtype=F64)
    kernels = mixed_kernels() + [Kernel("flat", radius=0.8, fov=120.0)]
    period = torch.tensor(box, dtype=F64) if periodic else None
    qidx = torch.randint(-1, 50, (15,), generator=g)
    got = assert_numba_matches_dense(pos, vel, kernels, period=period, query_pos=query, features=feats,
                                     query_vel=qvel, query_index=qidx)
    assert got.shape == (5, 15, 2 * 3 + 2 + 1)
    with pytest.raises(ValueError, match="query_vel"):
        reduce_numba(pos, vel, kernels, query_pos=query)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), m=st.integers(0, 10), dim=st.sampled_from([2, 3]),
       periodic=st.booleans(), external=st.booleans(), n_feat=st.integers(0, 2),
       radius=st.floats(0.2, 2.5), box=st.floats(0.3, 6.0), seed=st.integers(0, 2**16),
       block=st.sampled_from([None, 1, 3]))
def test_matches_dense_on_random_inputs(n, m, dim, periodic, external, n_feat, radius, box, seed, block):
    lengths = [box * (1 + 0.3 * a) for a in range(dim)]
    pos, vel, feats = random_inputs(n, dim, lengths, seed=seed, n_feat=n_feat)
    kernels = [Kernel("flat", radius=radius), Kernel("triangular", radius=0.7 * radius, fov=250.0),
               Kernel("gaussian", bandwidth=0.5 * radius, radius=1.3 * radius, exclude_self=False),
               Kernel("inverse_square", radius=0.5 * radius), Kernel("inverse", radius=radius),
               Kernel("circles", radius=0.8 * radius, strength=2.0)]
    period = torch.tensor(lengths, dtype=F64) if periodic else None
    kwargs = dict(period=period, features=feats, chunk_rows=block)
    if external:
        g = torch.Generator().manual_seed(seed + 1)
        kwargs["query_pos"] = torch.rand(m, dim, generator=g, dtype=F64) * torch.tensor(lengths)
        kwargs["query_vel"] = torch.randn(m, dim, generator=g, dtype=F64)
        if n:
            kwargs["query_index"] = torch.randint(-1, n, (m,), generator=g)
    assert_numba_matches_dense(pos, vel, kernels, **kwargs)


def test_float32_counts_equal_dense_pair_for_pair():
    """float32, a box 20 supports wide, agents on cell borders and the seam: exact flat counts."""
    L, r = 1000.0, 50.0
    g = torch.Generator().manual_seed(20)
    pos = torch.rand(1500, 2, generator=g) * L
    snapped = torch.randint(0, 40, (300, 2), generator=g).float() * (r / 2)
    seam = torch.tensor([[math.nextafter(L, 0.0), 0.0], [0.0, 0.0], [L - r, 0.0], [r, 0.0],
                         [math.nextafter(L - r, 0.0), 5.0], [math.nextafter(r, L), 5.0]])
    pos = torch.cat([pos, snapped, seam]).float()
    vel = torch.randn(pos.shape, generator=g)
    kernels = [Kernel("flat", radius=r), Kernel("flat", radius=r / 2), Kernel("gaussian", bandwidth=r / 3, radius=r)]
    for period in (torch.tensor([L, L]), None):
        got = reduce_numba(pos, vel, kernels, period=period)
        want = reduce_dense(pos, vel, kernels, period=period)
        assert got.dtype == torch.float32
        assert torch.equal(got[:2, :, -1], want[:2, :, -1])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


# --- edge cases ---------------------------------------------------------------------------

@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_no_agents_one_agent_no_kernels(periodic):
    period = torch.tensor([4.0, 4.0], dtype=F64) if periodic else None
    empty = torch.zeros(0, 2, dtype=F64)
    assert reduce_numba(empty, empty, mixed_kernels(), period=period).shape == (4, 0, 5)
    out = reduce_numba(empty, empty, mixed_kernels(), period=period, query_pos=torch.rand(3, 2, dtype=F64),
                       features=torch.zeros(0, 2, dtype=F64))
    assert out.shape == (4, 3, 7) and not out.any()
    pos = torch.tensor([[1.0, 2.0]], dtype=F64)
    vel = torch.tensor([[0.5, -1.0]], dtype=F64)
    out = reduce_numba(pos, vel, [Kernel("flat", radius=1.0), Kernel("flat", radius=1.0, exclude_self=False)],
                       period=period)
    assert not out[0].any()
    torch.testing.assert_close(out[1, 0], torch.tensor([1.0, 2.0, 0.5, -1.0, 1.0], dtype=F64))
    assert reduce_numba(pos, vel, []).shape == (0, 1, 5)


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("dim", [2, 3])
def test_everyone_in_one_cell(dim, periodic):
    g = torch.Generator().manual_seed(11)
    pos = 2.0 + 0.3 * torch.rand(200, dim, generator=g, dtype=F64)
    vel = torch.randn(200, dim, generator=g, dtype=F64)
    pos[:20] = pos[0]                                             # coincident agents too
    period = torch.full((dim,), 5.0, dtype=F64) if periodic else None
    out = assert_numba_matches_dense(pos, vel, mixed_kernels(), period=period)
    torch.testing.assert_close(out[0, :, -1], torch.full((200,), 199.0, dtype=F64))


@pytest.mark.parametrize("dim", [2, 3])
def test_agents_on_cell_borders_and_the_wrap_seam(dim):
    r = 1.0
    axes = [torch.arange(8, dtype=F64) * 0.5 * r] * dim
    pos = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    vel = torch.sin(torch.arange(pos.numel(), dtype=F64)).reshape(pos.shape)
    kernels = [make_kernel(kind, r) for kind in ALL_KINDS]
    for period in (None, torch.full((dim,), 4.0 * r, dtype=F64)):
        got = assert_numba_matches_dense(pos, vel, kernels, period=period)
        interior = ((pos > 0.9 * r) & (pos < 2.6 * r)).all(1)
        assert (got[0, interior, -1] == 3.0 ** dim - 1).all()
    L = 5.0
    below = math.nextafter(L, 0.0)
    seam = torch.tensor([[0.0] * dim, [below] + [0.0] * (dim - 1), [below] * dim, [0.0] * (dim - 1) + [below],
                         [0.5] + [below] * (dim - 1), [L - 0.5] + [0.0] * (dim - 1), [1.0] * dim], dtype=F64)
    svel = torch.randn(seam.shape, generator=torch.Generator().manual_seed(14), dtype=F64)
    period = torch.full((dim,), L, dtype=F64)
    got = assert_numba_matches_dense(seam, svel, kernels, period=period)
    assert got[0, 0, -1] >= 3


@pytest.mark.parametrize("box", [0.7, 1.5, 2.5], ids=["1-cell", "1-cell-wide", "2-cells"])
@pytest.mark.parametrize("dim", [2, 3])
def test_world_smaller_than_three_cells(dim, box):
    lengths = [box, 3.4, 1.2][:dim]
    period = torch.tensor(lengths, dtype=F64)
    pos, vel, _ = random_inputs(30, dim, lengths, seed=15)
    kernels = [make_kernel(kind, 1.0) for kind in ALL_KINDS]
    got = assert_numba_matches_dense(pos, vel, kernels, period=period)
    assert_sums_close(got, reference_sums(pos, vel, kernels, period=period))


def test_points_outside_the_box_and_whole_period_shifts():
    lengths = [3.0, 4.0]
    period = torch.tensor(lengths, dtype=F64)
    pos, vel, _ = random_inputs(80, 2, lengths, seed=16)
    images = torch.randint(-2, 3, (80, 2), generator=torch.Generator().manual_seed(17)).to(F64)
    moved = pos + images * period
    base = reduce_numba(pos, vel, mixed_kernels(), period=period)
    same = reduce_numba(moved, vel, mixed_kernels(), period=period, query_pos=pos, query_index=torch.arange(80))
    assert_sums_close(same, base, rtol=1e-9, atol=1e-8)
    assert_numba_matches_dense(moved, vel, mixed_kernels(), period=period)


def test_rejects_unbounded_support_and_other_devices():
    pos, vel, _ = random_inputs(5, 2, [3.0, 3.0])
    with pytest.raises(ValueError, match="unbounded support.*dense.*fused.*radius"):
        reduce_numba(pos, vel, [Kernel("gaussian", bandwidth=0.5)])
    with pytest.raises(ValueError, match="unbounded support"):
        reduce_neighbors(pos, vel, [Kernel("gaussian", bandwidth=0.5)], backend="numba")


def test_autograd_falls_back_to_a_differentiable_path():
    pos, vel, _ = random_inputs(30, 2, [3.0, 3.0], seed=18)
    vel.requires_grad_(True)
    out = reduce_numba(pos, vel, mixed_kernels())
    out[..., 2:4].sum().backward()
    assert vel.grad is not None and vel.grad.abs().sum() > 0


def test_auto_picks_numba_on_the_cpu_for_finite_support():
    kernels = mixed_kernels()
    assert choose_backend(5000, kernels, "cpu", (100.0, 100.0)) == "numba"
    assert choose_backend(5000, [Kernel("gaussian", bandwidth=1.0, exclude_self=False)], "cpu") == "fused"
    got = reduce_neighbors(*random_inputs(40, 2, [3.0, 3.0])[:2], kernels, backend="numba")
    assert got.shape == (4, 40, 5)


@pytest.mark.slow
def test_boids_torus_run_agrees_with_dense():
    runs = {}
    for backend in ("dense", "numba"):
        sc = flock.load_scenario("scenarios/boids_torus.yaml")
        sc.agents.count = 400
        sim = flock.Simulation.from_scenario(sc, device="cpu", backend=backend)
        assert sim.backend == backend
        runs[backend] = sim.step(10).state
    torch.testing.assert_close(runs["numba"].pos, runs["dense"].pos, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(runs["numba"].vel, runs["dense"].vel, rtol=1e-4, atol=1e-4)
