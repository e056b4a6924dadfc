"""The matrix-product kernel sums (mean shift's dense path) against the dense backend and the exact test."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flock.kernels import Kernel
from flock.neighbors.dense import reduce_dense
from flock.neighbors.gemm import edge_tolerance, reduce_gemm

KERNELS = [
    Kernel("flat", radius=0.8, exclude_self=False),
    Kernel("triangular", radius=0.8, exclude_self=False),
    Kernel("gaussian", bandwidth=0.5, exclude_self=False),
    Kernel("gaussian", bandwidth=0.5, radius=1.2, exclude_self=False),
]


def dense_sums(points, queries, kernel, counts=None):
    """[M, D + 1] position and weight sums from the general dense backend."""
    dim = points.shape[1]
    c = torch.ones(points.shape[0], 1, dtype=points.dtype) if counts is None else counts.to(points.dtype)[:, None]
    s = reduce_dense(points, points * c, [kernel], query_pos=queries, features=c)[0]
    return s[:, dim:2 * dim + 1]


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"{k.kind}-{k.radius}")
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_matches_dense_backend(kernel, dim):
    g = torch.Generator().manual_seed(dim)
    points = torch.rand(400, dim, generator=g, dtype=torch.float64) * 4
    queries = torch.rand(150, dim, generator=g, dtype=torch.float64) * 4
    torch.testing.assert_close(reduce_gemm(points, queries, kernel), dense_sums(points, queries, kernel),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"{k.kind}-{k.radius}")
def test_counts_weight_the_points(kernel):
    g = torch.Generator().manual_seed(7)
    points = torch.rand(300, 2, generator=g, dtype=torch.float64) * 3
    counts = torch.randint(1, 5, (300,), generator=g)
    queries = torch.rand(50, 2, generator=g, dtype=torch.float64) * 3
    repeated = points.repeat_interleave(counts, dim=0)
    torch.testing.assert_close(reduce_gemm(points, queries, kernel, counts),
                               reduce_gemm(repeated, queries, kernel), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(reduce_gemm(points, queries, kernel, counts),
                               dense_sums(points, queries, kernel, counts), rtol=1e-10, atol=1e-10)


def test_float32_far_from_origin_keeps_neighbor_sets():
    """Centring on the queries keeps |q|^2 + |x|^2 - 2 q.x exact enough far from 0."""
    g = torch.Generator().manual_seed(3)
    points = torch.rand(2000, 2, generator=g) * 10 + 5000.0
    queries = points[::7] + 0.01
    kernel = Kernel("flat", radius=1.0, exclude_self=False)
    got = reduce_gemm(points, queries, kernel)
    want = dense_sums(points.double(), queries.double(), kernel)
    assert torch.equal(got[:, -1].double(), want[:, -1])        # the same neighbors, every query
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)


def test_chunks_give_the_same_sums():
    g = torch.Generator().manual_seed(11)
    points = torch.rand(500, 2, generator=g, dtype=torch.float64)
    queries = torch.rand(97, 2, generator=g, dtype=torch.float64)
    kernel = Kernel("triangular", radius=0.3, exclude_self=False)
    whole = reduce_gemm(points, queries, kernel)
    chunked = reduce_gemm(points, queries, kernel, memory_budget=500 * 8 * 10)   # 10 rows a chunk
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def test_flat_kernel_includes_the_radius():
    # scikit-learn's radius_neighbors: d <= r (the engine's kernels keep d < r)
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0], [1.5, 0.0]], dtype=torch.float64)
    s = reduce_gemm(points, torch.zeros(1, 2, dtype=torch.float64), Kernel("flat", radius=1.0))
    assert s.tolist() == [[1.5, 0.0, 3.0]]        # the point at exactly r = 1 is in


def exact_counts(points, queries, radius):
    d2 = ((queries.double()[:, None] - points.double()[None]) ** 2).sum(-1)
    return (d2 <= radius ** 2).sum(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("radius", [1.0, 1.5, 2.0])
def test_integer_grid_ties_are_exact(dtype, radius):
    # every distance on an integer grid is a square root of an integer: many ties at r
    g = torch.Generator().manual_seed(int(radius * 10))
    points = torch.randint(0, 12, (600, 2), generator=g).to(dtype) + 1000.0
    queries = points[::3]
    got = reduce_gemm(points, queries, Kernel("flat", radius=radius, exclude_self=False))
    assert torch.equal(got[:, -1].long(), exact_counts(points, queries, radius))


@pytest.mark.parametrize("radius", [2.0, 50.0])
def test_float32_in_a_30000_wide_box_is_exact(radius):
    """Issue 15: 20 blobs in a 30,000-wide box, float32: |q|^2 - 2 q.x + |x|^2 lost the
    neighbor counts of 1,962 of 2,000 points (by up to 90); the edge pairs are now decided exactly."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 30_000, (20, 2))
    X = torch.from_numpy(np.concatenate([c + rng.normal(0, 1.0, (50, 2)) for c in centres]).astype(np.float32))
    for queries in (X, X[::7] + 0.25):
        got = reduce_gemm(X, queries, Kernel("flat", radius=radius, exclude_self=False))
        assert torch.equal(got[:, -1].long(), exact_counts(X, queries, radius))
    tri = reduce_gemm(X, X, Kernel("triangular", radius=radius, exclude_self=False))
    torch.testing.assert_close(tri.double(), dense_sums(X.double(), X.double(),
                                                        Kernel("triangular", radius=radius)), rtol=1e-5, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([torch.float32, torch.float64]),
       st.floats(-1e6, 1e6), st.floats(0.01, 10.0), st.integers(1, 4))
def test_neighbor_sets_match_the_exact_test(seed, dtype, offset, radius, dim):
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(300, dim, generator=g, dtype=torch.float64) * 20 * radius + offset).to(dtype)
    # queries on points, on a lattice of the radius, and at random
    queries = torch.cat([points[:40], torch.round(points[40:60] / radius) * radius,
                         points[60:80] + radius * torch.rand(20, dim, generator=g, dtype=dtype)])
    got = reduce_gemm(points, queries, Kernel("flat", radius=radius, exclude_self=False), memory_budget=300 * 4 * 16)
    assert torch.equal(got[:, -1].long(), exact_counts(points, queries.to(dtype), radius))


def test_edge_tolerance_bounds_the_rounding():
    # the bound of the module text holds with room to spare (it is twice the worst case)
    g = torch.Generator().manual_seed(5)
    for scale, off in ((1.0, 0.0), (100.0, 1e4), (1e3, -3e5)):
        x = (torch.rand(500, 3, generator=g, dtype=torch.float64) * scale + off).float()
        q = x[:64]
        c = q.mean(0)
        qc, pc = q - c, x - c
        v = (qc * qc).sum(1)[:, None] + (pc * pc).sum(1)[None] - 2 * qc @ pc.T - 4.0
        exact = ((q.double()[:, None] - x.double()[None]) ** 2).sum(-1) - 4.0
        tol = edge_tolerance(3, torch.float32, qc.norm(dim=1), float(pc.norm(dim=1).max()), 2.0)
        near = exact.abs() <= 4.0 * 1.25          # the pairs the bound speaks for (edge_tolerance)
        assert bool(((v.double() - exact).abs() <= tol[:, None] / 2)[near].all())
        assert bool((v.double().sign() == exact.sign())[~near].all())


def test_empty_inputs_and_unsupported_kernels():
    k = Kernel("flat", radius=1.0)
    assert reduce_gemm(torch.zeros(0, 2), torch.zeros(3, 2), k).tolist() == [[0.0] * 3] * 3
    assert reduce_gemm(torch.zeros(4, 2), torch.zeros(0, 2), k).shape == (0, 3)
    with pytest.raises(ValueError, match="inverse_square"):
        reduce_gemm(torch.zeros(4, 2), torch.zeros(1, 2), Kernel("inverse_square", radius=1.0))
