"""The fused (softmax attention) backend against the dense backend and the pair loop."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flock.kernels import Kernel
from flock.neighbors import reduce_dense, reduce_neighbors
from flock.neighbors.fused import fused_mean_shift_step, reduce_fused
from flock.testing import reference_meanshift, reference_sums

GAUSS = Kernel("gaussian", bandwidth=1.5, exclude_self=False)
WIDE = Kernel("gaussian", bandwidth=4.0, exclude_self=False)


def _random(n, dim, seed, box=10.0, offset=0.0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, dim, generator=g, dtype=torch.float64) * box + offset
    vel = torch.randn(n, dim, generator=g, dtype=torch.float64)
    return pos.to(device, dtype), vel.to(device, dtype)


def test_matches_pair_loop():
    pos, vel = _random(25, 2, seed=1)
    feats = torch.randn(25, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    query = torch.rand(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 12 - 1
    ref = reference_sums(pos.numpy(), vel.numpy(), [GAUSS, WIDE], query_pos=query.numpy(),
                         features=feats.numpy())
    got = reduce_fused(pos, vel, [GAUSS, WIDE], query_pos=query, features=feats)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
@pytest.mark.parametrize("with_queries", [False, True], ids=["self", "queries"])
def test_equals_dense_float64(dim, with_queries, device):
    pos, vel = _random(300, dim, seed=dim, device=device)
    query = None
    if with_queries:
        query = _random(170, dim, seed=dim + 50, box=14.0, offset=-2.0, device=device)[0]
    feats = torch.randn(300, 2, dtype=torch.float64, device=device)
    dense = reduce_dense(pos, vel, [GAUSS, WIDE], query_pos=query, features=feats)
    for rows in (None, 1, 37):
        fused = reduce_fused(pos, vel, [GAUSS, WIDE], query_pos=query, features=feats, chunk_rows=rows)
        assert fused.shape == dense.shape
        torch.testing.assert_close(fused, dense, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("offset", [0.0, 1e4], ids=["origin", "far"])
def test_equals_dense_float32(offset):
    # centring makes the answer independent of where the data sit, even in float32
    pos, vel = (t.float() for t in _random(2000, 2, seed=7, box=80.0, offset=offset))
    query = _random(500, 2, seed=8, box=90.0, offset=offset - 5)[0].float()
    kern = [Kernel("gaussian", bandwidth=2.5, exclude_self=False)]
    # the float64 answer for the same (float32-rounded) inputs
    dense = reduce_dense(pos.double(), vel.double(), kern, query_pos=query.double())[0]
    fused = reduce_fused(pos, vel, kern, query_pos=query)[0].double()
    wsum = dense[:, -1]
    assert (wsum > 1e-3).sum() > 400
    ok = wsum > 1e-3          # relative precision is only promised where weights are not tiny
    torch.testing.assert_close(fused[ok, -1], wsum[ok], rtol=1e-4, atol=0)
    means_d = dense[ok, :2] / wsum[ok, None]
    means_f = fused[ok, :2] / fused[ok, -1:]
    torch.testing.assert_close(means_f, means_d, rtol=0, atol=1e-3)


def test_reduce_neighbors_dispatches_to_fused():
    pos, vel = _random(50, 2, seed=4)
    torch.testing.assert_close(reduce_neighbors(pos, vel, [GAUSS], backend="fused"),
                               reduce_fused(pos, vel, [GAUSS]))


def test_equals_grid_with_wide_truncation():
    try:
        from flock.neighbors.grid import reduce_grid
    except ImportError:
        pytest.skip("flock.neighbors.grid is not importable (the grid backend is not in this checkout)")
    pos, vel = _random(400, 2, seed=9, box=30.0)
    query = _random(100, 2, seed=10, box=34.0, offset=-2.0)[0]
    # at 40 bandwidths the truncated Gaussian is exp(-800) = 0 in float64: the same kernel
    truncated = Kernel("gaussian", bandwidth=1.5, radius=60.0, exclude_self=False)
    grid = reduce_grid(pos, vel, [truncated], query_pos=query)
    fused = reduce_fused(pos, vel, [GAUSS], query_pos=query)
    torch.testing.assert_close(fused, grid, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kern, period, match", [
    (Kernel("flat", radius=2.0, exclude_self=False), None, "not softmax attention"),
    (Kernel("gaussian", bandwidth=1.0, radius=3.0, exclude_self=False), None, "radius=3.0"),
    (Kernel("gaussian", bandwidth=1.0), None, "exclude_self=True"),
    (Kernel("gaussian", bandwidth=1.0, exclude_self=False, open_center=True), None, "softmax"),
    (GAUSS, torch.tensor([10.0, 10.0], dtype=torch.float64), "periodic"),
])
def test_rejects_what_is_not_attention(kern, period, match):
    pos, vel = _random(10, 2, seed=0)
    with pytest.raises(ValueError, match=match):
        reduce_fused(pos, vel, [kern], period=period)


def test_edge_cases(dtype):
    pos, vel = _random(5, 2, seed=1, dtype=dtype)
    empty = pos[:0]
    assert reduce_fused(empty, empty, [GAUSS]).shape == (1, 0, 5)
    out = reduce_fused(empty, empty, [GAUSS], query_pos=pos)
    assert out.shape == (1, 5, 5) and not out.any()
    assert reduce_fused(pos, vel, [GAUSS], query_pos=empty).shape == (1, 0, 5)
    assert reduce_fused(pos, vel, []).shape == (0, 5, 5)
    # one agent: weight 1 on itself
    one = reduce_fused(pos[:1], vel[:1], [GAUSS])[0, 0]
    torch.testing.assert_close(one, torch.cat([pos[0], vel[0], torch.ones(1, dtype=dtype)]))
    # everyone at one point: weight sum N, mean that point
    same = torch.full((6, 2), 3.0, dtype=dtype)
    s = reduce_fused(same, same, [GAUSS])[0]
    torch.testing.assert_close(s[:, -1], torch.full((6,), 6.0, dtype=dtype))
    torch.testing.assert_close(s[:, :2], same * 6)


def test_far_query_gives_zero_not_nan(dtype):
    pos, vel = _random(20, 2, seed=2, dtype=dtype)
    far = torch.tensor([[1e3, 1e3]], dtype=dtype)   # ~700 bandwidths: every weight underflows
    dense = reduce_dense(pos, vel, [GAUSS], query_pos=far)
    fused = reduce_fused(pos, vel, [GAUSS], query_pos=far)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, dense)
    # moderately far: the weight sum is tiny but its relative precision holds
    mid = torch.tensor([[5.0, 10.0 + 9 * 1.5]], dtype=dtype)   # 9 bandwidths beyond the box
    d, f = reduce_dense(pos, vel, [GAUSS], query_pos=mid), reduce_fused(pos, vel, [GAUSS], query_pos=mid)
    assert 0 < float(d[0, 0, -1]) < 1e-12
    torch.testing.assert_close(f, d, rtol=1e-4 if dtype == torch.float32 else 1e-9, atol=0)


def test_math_kernel_fallback_in_memory_bounded_chunks(monkeypatch):
    # without a tiled SDPA kernel the math kernel forms [m, N] scores: rows are cut to the budget
    import flock.neighbors.fused as fused

    monkeypatch.setattr(fused, "_tiled_available", lambda *args: False)
    pos, vel = _random(300, 2, seed=5)
    dense = reduce_dense(pos, vel, [GAUSS])
    budget = 3 * 301 * 8 * 7                      # 7 query rows per call
    assert fused._Attention(pos[:, :2], pos, budget, None).rows == 7
    torch.testing.assert_close(reduce_fused(pos, vel, [GAUSS], memory_budget=budget), dense)
    step = fused_mean_shift_step(pos, 1.5, memory_budget=budget)
    torch.testing.assert_close(step, dense[0, :, :2] / dense[0, :, -1:])


def test_weight_sum_of_many_agents_float32():
    pos = torch.zeros(50_000, 2)
    s = reduce_fused(pos, pos, [GAUSS], query_pos=torch.zeros(3, 2))[0]
    torch.testing.assert_close(s[:, -1], torch.full((3,), 50_000.0))


# ---------------------------------------------------------------- the mean shift step

def test_step_is_the_lessons_mean_shift():
    pos, _ = _random(60, 2, seed=11, box=12.0)
    ref, _ = reference_meanshift(pos.numpy(), bandwidth=2.5, max_it=1)
    got = fused_mean_shift_step(pos, 2.5)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim", [2, 3])
def test_step_equals_dense(dim, dtype, device):
    pos, vel = _random(500, dim, seed=dim, box=40.0, dtype=dtype, device=device)
    kern = [Kernel("gaussian", bandwidth=2.5, exclude_self=False)]
    s = reduce_dense(pos, vel, kern)[0]
    dense = s[:, :dim] / s[:, -1:]
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    for rows in (None, 33):
        got = fused_mean_shift_step(pos, 2.5, chunk_rows=rows)
        assert got.dtype == dtype and got.device == pos.device and got.shape == pos.shape
        torch.testing.assert_close(got, dense, rtol=0, atol=tol)


def test_step_over_other_data():
    data, _ = _random(300, 2, seed=12)
    query = _random(40, 2, seed=13, box=16.0, offset=-3.0)[0]
    s = reduce_dense(data, data, [GAUSS], query_pos=query)[0]
    torch.testing.assert_close(fused_mean_shift_step(query, 1.5, data=data), s[:, :2] / s[:, -1:])
    # far from everything the softmax still gives the nearest points' mean, no 0/0
    far = fused_mean_shift_step(torch.tensor([[1e4, 0.0]], dtype=torch.float64), 1.5, data=data)
    assert torch.isfinite(far).all()


def test_step_edge_cases():
    x = torch.randn(4, 2)
    assert fused_mean_shift_step(x[:0], 1.0).shape == (0, 2)
    torch.testing.assert_close(fused_mean_shift_step(x, 1.0, data=x[:0]), x)
    torch.testing.assert_close(fused_mean_shift_step(x[:1], 1.0), x[:1])
    for bad in (0, -1.0, math.inf, math.nan, "2"):
        with pytest.raises(ValueError, match="bandwidth"):
            fused_mean_shift_step(x, bad)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.integers(0, 2**16))
def test_step_is_translation_and_permutation_invariant(n, dx, dy, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64) * 10
    shift = torch.tensor([dx, dy], dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    base = fused_mean_shift_step(x, 1.3)
    torch.testing.assert_close(fused_mean_shift_step(x + shift, 1.3) - shift, base, rtol=0, atol=1e-9)
    torch.testing.assert_close(fused_mean_shift_step(x[perm], 1.3), base[perm], rtol=0, atol=1e-12)
