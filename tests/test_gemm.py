"""The matrix-product kernel sums (mean shift's dense path) against the dense backend."""

import pytest
import torch

from flock.kernels import Kernel
from flock.neighbors.dense import reduce_dense
from flock.neighbors.gemm import reduce_gemm

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


def test_flat_kernel_is_strict_at_the_radius():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    s = reduce_gemm(points, torch.zeros(1, 2, dtype=torch.float64), Kernel("flat", radius=1.0))
    assert s.tolist() == [[0.5, 0.0, 2.0]]        # the point at exactly r = 1 is out


def test_empty_inputs_and_unsupported_kernels():
    k = Kernel("flat", radius=1.0)
    assert reduce_gemm(torch.zeros(0, 2), torch.zeros(3, 2), k).tolist() == [[0.0] * 3] * 3
    assert reduce_gemm(torch.zeros(4, 2), torch.zeros(0, 2), k).shape == (0, 3)
    with pytest.raises(ValueError, match="inverse_square"):
        reduce_gemm(torch.zeros(4, 2), torch.zeros(1, 2), Kernel("inverse_square", radius=1.0))
