"""Grid (cell-list) backend: against the brute-force reference and the dense backend."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flock.kernels import KERNEL_KINDS, Kernel
from flock.neighbors import reduce_neighbors
from flock.neighbors.dense import reduce_dense
from flock.neighbors.grid import NeighborGrid, build_grid, grid_chunk_pairs, query_grid, reduce_grid
from flock.testing import reference_sums

F64 = torch.float64
ALL_KINDS = KERNEL_KINDS  # every kind, including ones added later


def make_kernel(kind, radius=1.0, exclude_self=True):
    if kind == "gaussian":
        return Kernel("gaussian", bandwidth=0.4 * radius, radius=radius, exclude_self=exclude_self)
    return Kernel(kind, radius=radius, exclude_self=exclude_self)


def mixed_kernels():
    """Several channels with different supports and self-exclusion, as the rules use them."""
    return [Kernel("flat", radius=1.0), Kernel("triangular", radius=0.6, exclude_self=False),
            Kernel("gaussian", bandwidth=0.3, radius=0.9), Kernel("inverse_square", radius=0.4)]


def random_inputs(n, dim, box, *, seed=0, dtype=F64, device="cpu", n_feat=0):
    g = torch.Generator().manual_seed(seed)
    box = torch.as_tensor(box, dtype=dtype)
    pos = torch.rand(n, dim, generator=g, dtype=dtype) * box
    vel = torch.randn(n, dim, generator=g, dtype=dtype)
    feats = torch.randn(n, n_feat, generator=g, dtype=dtype) if n_feat else None
    return pos.to(device), vel.to(device), (None if feats is None else feats.to(device))


def assert_sums_close(actual, expected, rtol=1e-9, atol=1e-9):
    expected = torch.as_tensor(np.asarray(expected) if not torch.is_tensor(expected) else expected)
    torch.testing.assert_close(actual.cpu().to(F64), expected.cpu().to(F64), rtol=rtol, atol=atol)


def assert_matches_dense(pos, vel, kernels, rtol=1e-9, atol=1e-9, **kwargs):
    got = reduce_grid(pos, vel, kernels, **kwargs)
    kwargs.pop("bounds", None)
    want = reduce_dense(pos, vel, kernels, **kwargs)
    assert got.shape == want.shape
    assert got.dtype == want.dtype and got.device == want.device
    assert_sums_close(got, want, rtol=rtol, atol=atol)
    return got


# --- against the brute-force reference -------------------------------------------------

@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_matches_reference_and_dense(kind, dim, periodic):
    box = [3.5, 4.2, 3.1][:dim]
    pos, vel, _ = random_inputs(40, dim, box, seed=dim + 10 * periodic)
    kernels = [make_kernel(kind, 1.0), make_kernel(kind, 0.55, exclude_self=False)]
    period = torch.tensor(box, dtype=F64) if periodic else None
    got = assert_matches_dense(pos, vel, kernels, period=period)
    assert_sums_close(got, reference_sums(pos, vel, kernels, period=period))
    assert (got[0, :, -1] != 0).any()  # neighbors were found at all


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_features_and_external_queries_match_reference(periodic):
    box = [3.0, 2.6, 2.2]
    pos, vel, feats = random_inputs(30, 3, box, seed=3, n_feat=2)
    g = torch.Generator().manual_seed(4)
    # queries partly outside the box: wrapped in a periodic world, edge cells otherwise
    query = torch.rand(12, 3, generator=g, dtype=F64) * 5.0 - 1.0
    kernels = mixed_kernels()
    period = torch.tensor(box, dtype=F64) if periodic else None
    got = assert_matches_dense(pos, vel, kernels, period=period, query_pos=query, features=feats)
    assert got.shape == (4, 12, 2 * 3 + 2 + 1)
    assert_sums_close(got, reference_sums(pos, vel, kernels, period=period, query_pos=query,
                                          features=feats))


def test_dispatch_through_reduce_neighbors():
    pos, vel, _ = random_inputs(50, 2, [4.0, 4.0], seed=5)
    kernels = mixed_kernels()
    period = torch.tensor([4.0, 4.0], dtype=F64)
    got = reduce_neighbors(pos, vel, kernels, backend="grid", period=period)
    assert_sums_close(got, reduce_dense(pos, vel, kernels, period=period))


def test_device_and_dtype(device, dtype):
    pos, vel, _ = random_inputs(300, 2, [6.0, 5.0], seed=6, dtype=dtype, device=device)
    period = torch.tensor([6.0, 5.0], dtype=dtype, device=device)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    for per in (None, period):
        assert_matches_dense(pos, vel, mixed_kernels(), period=per, rtol=tol, atol=tol)


# --- random inputs (hypothesis) ---------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 40), m=st.integers(0, 10), dim=st.sampled_from([2, 3]),
       periodic=st.booleans(), external=st.booleans(), n_feat=st.integers(0, 2),
       radius=st.floats(0.2, 2.5), box=st.floats(0.3, 6.0), seed=st.integers(0, 2**16))
def test_grid_matches_dense_on_random_inputs(n, m, dim, periodic, external, n_feat, radius,
                                              box, seed):
    lengths = [box * (1 + 0.3 * a) for a in range(dim)]
    pos, vel, feats = random_inputs(n, dim, lengths, seed=seed, n_feat=n_feat)
    kernels = [Kernel("flat", radius=radius), Kernel("triangular", radius=0.7 * radius),
               Kernel("gaussian", bandwidth=0.5 * radius, radius=1.3 * radius, exclude_self=False),
               Kernel("inverse_square", radius=0.5 * radius), Kernel("inverse", radius=radius),
               Kernel("circles", radius=0.8 * radius, strength=2.0)]
    period = torch.tensor(lengths, dtype=F64) if periodic else None
    kwargs = dict(period=period, features=feats)
    if external:
        g = torch.Generator().manual_seed(seed + 1)
        kwargs["query_pos"] = torch.rand(m, dim, generator=g, dtype=F64) * torch.tensor(lengths)
        if n:
            kwargs["query_index"] = torch.randint(-1, n, (m,), generator=g)
    assert_matches_dense(pos, vel, kernels, **kwargs)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), dim=st.sampled_from([2, 3]), seed=st.integers(0, 2**16),
       shift=st.lists(st.integers(-3, 3).map(lambda k: 0.25 * k), min_size=3, max_size=3),
       scale=st.sampled_from([1.0, 8.0]))
def test_translation_invariance_open_world(n, dim, seed, shift, scale):
    pos, vel, _ = random_inputs(n, dim, [3.0] * dim, seed=seed)
    shift = torch.tensor(shift[:dim], dtype=F64) * scale
    kernels = mixed_kernels()
    base = reduce_grid(pos, vel, kernels)
    moved = reduce_grid(pos + shift, vel, kernels)
    # positions are summed, so they move by shift * weight sum; the rest is unchanged
    expect = base.clone()
    expect[..., :dim] += shift * base[..., -1:]
    assert_sums_close(moved, expect, rtol=1e-9, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), dim=st.sampled_from([2, 3]), seed=st.integers(0, 2**16),
       box=st.floats(0.8, 5.0))
def test_whole_period_shift_changes_nothing(n, dim, seed, box):
    lengths = [box * (1 + 0.2 * a) for a in range(dim)]
    period = torch.tensor(lengths, dtype=F64)
    pos, vel, _ = random_inputs(n, dim, lengths, seed=seed)
    g = torch.Generator().manual_seed(seed + 7)
    images = torch.randint(-2, 3, (n, dim), generator=g).to(F64)
    moved = pos + images * period
    kernels = mixed_kernels()
    base = reduce_grid(pos, vel, kernels, period=period)
    # queries fixed: the sums do not change at all
    same_queries = reduce_grid(moved, vel, kernels, period=period, query_pos=pos,
                               query_index=torch.arange(n))
    assert_sums_close(same_queries, base, rtol=1e-9, atol=1e-8)
    # queries moved too: only q_i itself moves, by its own image shift
    shifted = reduce_grid(moved, vel, kernels, period=period)
    expect = base.clone()
    expect[..., :dim] += (images * period) * base[..., -1:]
    assert_sums_close(shifted, expect, rtol=1e-9, atol=1e-8)


def test_permutation_invariance():
    pos, vel, _ = random_inputs(80, 2, [4.0, 3.0], seed=8)
    perm = torch.randperm(80, generator=torch.Generator().manual_seed(9))
    period = torch.tensor([4.0, 3.0], dtype=F64)
    base = reduce_grid(pos, vel, mixed_kernels(), period=period)
    permuted = reduce_grid(pos[perm], vel[perm], mixed_kernels(), period=period)
    assert_sums_close(permuted, base[:, perm])


def test_query_subset_of_agents_equals_rows_of_full_result():
    pos, vel, _ = random_inputs(60, 3, [3.0, 3.0, 3.0], seed=10)
    idx = torch.tensor([5, 0, 59, 17, 17])
    full = reduce_grid(pos, vel, mixed_kernels())
    sub = reduce_grid(pos, vel, mixed_kernels(), query_pos=pos[idx], query_index=idx)
    assert_sums_close(sub, full[:, idx])


# --- edge cases ---------------------------------------------------------------------------

@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_no_agents(periodic, device):
    pos = torch.zeros(0, 2, dtype=F64, device=device)
    period = torch.tensor([5.0, 5.0], dtype=F64, device=device) if periodic else None
    out = reduce_grid(pos, pos, mixed_kernels(), period=period)
    assert out.shape == (4, 0, 5) and out.device.type == device.type
    query = torch.rand(3, 2, dtype=F64, device=device)
    out = reduce_grid(pos, pos, mixed_kernels(), period=period, query_pos=query,
                      features=torch.zeros(0, 2, dtype=F64, device=device))
    assert out.shape == (4, 3, 7) and not out.any()
    grid = build_grid(pos, 1.0, period=period)
    assert grid.n_agents == 0


def test_no_kernels_and_no_queries():
    pos, vel, _ = random_inputs(10, 2, [3.0, 3.0])
    assert reduce_grid(pos, vel, []).shape == (0, 10, 5)
    out = reduce_grid(pos, vel, mixed_kernels(), query_pos=torch.zeros(0, 2, dtype=F64))
    assert out.shape == (4, 0, 5)


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_one_agent(periodic):
    pos = torch.tensor([[1.0, 2.0]], dtype=F64)
    vel = torch.tensor([[0.5, -1.0]], dtype=F64)
    kernels = [Kernel("flat", radius=1.0), Kernel("flat", radius=1.0, exclude_self=False)]
    period = torch.tensor([4.0, 4.0], dtype=F64) if periodic else None
    out = reduce_grid(pos, vel, kernels, period=period)
    assert not out[0].any()                                       # itself excluded
    torch.testing.assert_close(out[1, 0], torch.tensor([1.0, 2.0, 0.5, -1.0, 1.0], dtype=F64))


def test_unbounded_gaussian_is_rejected():
    pos, vel, _ = random_inputs(5, 2, [3.0, 3.0])
    kernels = [Kernel("flat", radius=1.0), Kernel("gaussian", bandwidth=0.5)]
    with pytest.raises(ValueError, match="unbounded support.*dense.*fused.*radius"):
        reduce_grid(pos, vel, kernels)
    with pytest.raises(ValueError, match="unbounded support"):
        reduce_neighbors(pos, vel, kernels, backend="grid")
    with pytest.raises(ValueError, match="unbounded support"):
        reduce_grid(pos[:0], vel[:0], kernels)                  # even with nothing to do


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("dim", [2, 3])
def test_everyone_in_one_cell(dim, periodic):
    g = torch.Generator().manual_seed(11)
    pos = 2.0 + 0.3 * torch.rand(300, dim, generator=g, dtype=F64)
    vel = torch.randn(300, dim, generator=g, dtype=F64)
    pos[:20] = pos[0]                                             # coincident agents too
    period = torch.full((dim,), 5.0, dtype=F64) if periodic else None
    out = assert_matches_dense(pos, vel, mixed_kernels(), period=period)
    torch.testing.assert_close(out[0, :, -1], torch.full((300,), 299.0, dtype=F64))


def test_clumped_rows_split_their_candidates():
    """One row's candidates exceed the budget: the candidate dimension is chunked too."""
    g = torch.Generator().manual_seed(12)
    pos = 0.2 * torch.rand(40, 2, generator=g, dtype=F64)
    vel = torch.randn(40, 2, generator=g, dtype=F64)
    kernels = mixed_kernels()
    budget = 4_000
    assert 1 < grid_chunk_pairs(2, len(kernels), 0, 8, budget) < 20
    for period in (None, torch.tensor([3.0, 3.0], dtype=F64)):
        assert_matches_dense(pos, vel, kernels, period=period, memory_budget=budget)


@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_tiny_memory_budget_and_one_row_chunks(periodic):
    pos, vel, feats = random_inputs(16, 2, [3.0, 2.5], seed=13, n_feat=1)
    period = torch.tensor([3.0, 2.5], dtype=F64) if periodic else None
    want = reduce_dense(pos, vel, mixed_kernels(), period=period, features=feats)
    for kwargs in (dict(memory_budget=1), dict(chunk_rows=1), dict(chunk_rows=3, memory_budget=2000)):
        got = reduce_grid(pos, vel, mixed_kernels(), period=period, features=feats, **kwargs)
        assert_sums_close(got, want)


@pytest.mark.parametrize("dim", [2, 3])
def test_agents_on_cell_borders(dim):
    """A lattice at half the support: many pairs exactly on cell borders and at d == r."""
    r = 1.0
    axes = [torch.arange(8, dtype=F64) * 0.5 * r] * dim
    pos = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    vel = torch.sin(torch.arange(pos.numel(), dtype=F64)).reshape(pos.shape)
    kernels = [make_kernel(kind, r) for kind in ALL_KINDS]
    for period in (None, torch.full((dim,), 4.0 * r, dtype=F64)):
        got = assert_matches_dense(pos, vel, kernels, period=period)
        if dim == 2:
            assert_sums_close(got, reference_sums(pos, vel, kernels, period=period))
        # d == r exactly is outside every kernel: the flat kernel sees the 3^D - 1
        # lattice points at 0.5 r, 0.71 r (and 0.87 r) only
        interior = ((pos > 0.9 * r) & (pos < 2.6 * r)).all(1)
        expect = 3.0 ** dim - 1
        assert (got[0, interior, -1] == expect).all()


@pytest.mark.parametrize("dim", [2, 3])
def test_agents_on_the_wrap_seam(dim):
    L = 5.0
    below = math.nextafter(L, 0.0)
    seam = [[0.0] * dim, [below] + [0.0] * (dim - 1), [below] * dim, [0.0] * (dim - 1) + [below],
            [0.5] + [below] * (dim - 1), [L - 0.5] + [0.0] * (dim - 1), [1.0] * dim]
    pos = torch.tensor(seam, dtype=F64)
    vel = torch.randn(len(seam), dim, generator=torch.Generator().manual_seed(14), dtype=F64)
    period = torch.full((dim,), L, dtype=F64)
    kernels = [make_kernel(kind, 1.0) for kind in ALL_KINDS]
    got = assert_matches_dense(pos, vel, kernels, period=period)
    assert_sums_close(got, reference_sums(pos, vel, kernels, period=period))
    # the corner agents see each other across the seam
    assert got[0, 0, -1] >= 3
    # q_i + d_ij: agent 0 at the origin sums its neighbors' nearest images, near 0
    assert (got[0, 0, :dim].abs() < 2.0).all()


def test_float32_rounding_never_hides_a_neighbor():
    """float32, a box 20 supports wide, agents on cell borders and the seam: the flat
    kernel's counts (exact integers) agree with dense pair for pair."""
    L, r = 1000.0, 50.0
    g = torch.Generator().manual_seed(20)
    pos = torch.rand(1500, 2, generator=g) * L
    snapped = torch.randint(0, 40, (300, 2), generator=g).float() * (r / 2)
    seam = torch.tensor([[math.nextafter(L, 0.0), 0.0], [0.0, 0.0], [L - r, 0.0], [r, 0.0],
                         [math.nextafter(L - r, 0.0), 5.0], [math.nextafter(r, L), 5.0]])
    pos = torch.cat([pos, snapped, seam]).float()
    vel = torch.zeros_like(pos)
    kernels = [Kernel("flat", radius=r), Kernel("flat", radius=r / 2)]
    for period in (torch.tensor([L, L]), None):
        got = reduce_grid(pos, vel, kernels, period=period)
        want = reduce_dense(pos, vel, kernels, period=period)
        assert torch.equal(got[..., -1], want[..., -1])


@pytest.mark.parametrize("box", [0.7, 1.5, 2.5], ids=["1-cell", "1-cell-wide", "2-cells"])
@pytest.mark.parametrize("dim", [2, 3])
def test_world_smaller_than_three_cells(dim, box):
    lengths = [box, 3.4, 1.2][:dim]
    period = torch.tensor(lengths, dtype=F64)
    pos, vel, _ = random_inputs(30, dim, lengths, seed=15)
    kernels = [make_kernel(kind, 1.0) for kind in ALL_KINDS]
    grid = build_grid(pos, 1.0, period=period)
    assert grid.n_cells == tuple(max(1, math.floor(v / 1.0)) for v in lengths)
    got = assert_matches_dense(pos, vel, kernels, period=period)
    assert_sums_close(got, reference_sums(pos, vel, kernels, period=period))


def test_spread_out_open_world_caps_the_cell_count():
    pos = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1e6, 1e6], [1e6 + 0.25, 1e6]], dtype=F64)
    vel = torch.ones_like(pos)
    grid = build_grid(pos, 1.0)
    assert math.prod(grid.n_cells) <= 2 * 4 + 64
    out = assert_matches_dense(pos, vel, mixed_kernels())
    assert (out[0, :, -1] == 1).all()


def test_bounds_smaller_than_the_agents_still_correct():
    pos, vel, _ = random_inputs(80, 2, [6.0, 6.0], seed=16)
    bounds = torch.tensor([[2.0, 2.0], [3.0, 3.5]], dtype=F64)
    assert_matches_dense(pos, vel, mixed_kernels(), bounds=bounds)


# --- the grid itself ----------------------------------------------------------------------

def test_build_grid_periodic_tiles_the_box():
    period = torch.tensor([10.0, 7.5], dtype=F64)
    pos, _, _ = random_inputs(200, 2, [10.0, 7.5], seed=17)
    grid = build_grid(pos, 1.3, period=period)
    assert isinstance(grid, NeighborGrid)
    assert grid.n_cells == (7, 5)                                 # floor(L / 1.3)
    torch.testing.assert_close(grid.cell_size * torch.tensor(grid.n_cells, dtype=F64), period)
    _check_grid_consistent(grid, pos)


def test_build_grid_open_world():
    pos, _, _ = random_inputs(200, 3, [4.0, 2.0, 3.0], seed=18)
    pos = pos - 1.0
    grid = build_grid(pos, 0.5)
    assert (grid.cell_size >= 0.5).all()
    assert grid.periodic is False and grid.dim == 3
    _check_grid_consistent(grid, pos)


def _check_grid_consistent(grid, pos):
    cells = grid.cell_ids(grid.cell_coords(pos))
    sorted_cells = cells[grid.order]
    assert (sorted_cells[1:] >= sorted_cells[:-1]).all()
    assert sorted(grid.order.tolist()) == list(range(pos.shape[0]))
    for c in sorted_cells.unique().tolist():
        members = (sorted_cells == c).nonzero().flatten()
        assert grid.cell_start[c] == members.min() and grid.cell_end[c] == members.max() + 1
    assert int((grid.cell_end - grid.cell_start).sum()) == pos.shape[0]
    # points inside a cell: low corner <= x < low corner + size (up to the wrap)
    coords = grid.cell_coords(pos)
    low = grid.origin + coords * grid.cell_size
    x = pos if grid.period is None else torch.remainder(pos, grid.period)
    assert ((x >= low - 1e-12) & (x < low + grid.cell_size + 1e-12)).all()


def test_build_then_query_equals_reduce():
    pos, vel, _ = random_inputs(100, 2, [5.0, 5.0], seed=19)
    period = torch.tensor([5.0, 5.0], dtype=F64)
    grid = build_grid(pos, 1.0, period=period)
    got = query_grid(grid, pos, vel, mixed_kernels())
    assert_sums_close(got, reduce_grid(pos, vel, mixed_kernels(), period=period))


def test_build_grid_rejects_bad_cell_size():
    pos = torch.zeros(3, 2)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="cell_size"):
            build_grid(pos, bad)
