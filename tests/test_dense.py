"""The dense backend of the one kernel against the per-pair Python loop."""

import numpy as np
import pytest
import torch

from flock.kernels import Kernel
from flock.neighbors import dense_chunk_rows, reduce_dense, reduce_neighbors
from flock.testing import reference_sums

KERNELS = {
    "flat": Kernel("flat", radius=2.5),
    "triangular": Kernel("triangular", radius=3.0),
    "gaussian": Kernel("gaussian", bandwidth=1.5, exclude_self=False),
    "gaussian_truncated": Kernel("gaussian", bandwidth=1.5, radius=3.0),
    "inverse_square": Kernel("inverse_square", radius=2.0),
    "inverse": Kernel("inverse", radius=2.0),
    "circles": Kernel("circles", radius=2.0, strength=0.05),
    "flat_open_center": Kernel("flat", radius=2.0, open_center=True),
}


def _random(n, dim, seed, box=8.0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, dim, generator=g, dtype=torch.float64) * box
    vel = torch.randn(n, dim, generator=g, dtype=torch.float64)
    return pos, vel


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "periodic"])
def test_dense_matches_pair_loop(name, dim, periodic):
    pos, vel = _random(30, dim, seed=dim * 10 + periodic)
    period = torch.full((dim,), 8.0, dtype=torch.float64) if periodic else None
    kern = [KERNELS[name]]
    ref = reference_sums(pos.numpy(), vel.numpy(), kern, period=None if period is None else period.numpy())
    for rows in (1, 7, None):
        got = reduce_dense(pos, vel, kern, period=period, chunk_rows=rows)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-10)


def test_all_channels_at_once_equal_each_alone():
    pos, vel = _random(25, 2, seed=3)
    kernels = list(KERNELS.values())
    together = reduce_dense(pos, vel, kernels)
    for k, kern in enumerate(kernels):
        alone = reduce_dense(pos, vel, [kern])[0]
        torch.testing.assert_close(together[k], alone)


def test_result_does_not_depend_on_chunk_size_float32():
    pos, vel = _random(200, 3, seed=5)
    pos, vel = pos.float(), vel.float()
    kernels = [KERNELS["flat"], KERNELS["gaussian"]]
    base = reduce_dense(pos, vel, kernels, chunk_rows=200)
    for rows in (1, 3, 64, 199):
        torch.testing.assert_close(reduce_dense(pos, vel, kernels, chunk_rows=rows), base, rtol=1e-5, atol=1e-5)


def test_memory_budget_sets_chunk_rows_and_a_tiny_budget_still_runs():
    assert dense_chunk_rows(1_000_000, 2, 3, 4, memory_budget=256 * 2**20) >= 1
    assert dense_chunk_rows(1000, 2, 1, 4, memory_budget=1) == 1
    pos, vel = _random(40, 2, seed=8)
    kern = [KERNELS["triangular"]]
    torch.testing.assert_close(reduce_dense(pos, vel, kern, memory_budget=1), reduce_dense(pos, vel, kern))


def test_queries_features_and_self_exclusion():
    pos, vel = _random(20, 2, seed=9)
    feats = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    query = pos[:5] + 0.1
    kern = [Kernel("flat", radius=3.0), Kernel("gaussian", bandwidth=1.0)]
    got = reduce_dense(pos, vel, kern, query_pos=query, features=feats)
    ref = reference_sums(pos.numpy(), vel.numpy(), kern, query_pos=query.numpy(), features=feats.numpy())
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert got.shape == (2, 5, 2 * 2 + 3 + 1)


def test_self_is_excluded_only_on_request():
    pos = torch.zeros(1, 2, dtype=torch.float64)
    vel = torch.ones(1, 2, dtype=torch.float64)
    s = reduce_dense(pos, vel, [Kernel("flat", radius=1.0), Kernel("flat", radius=1.0, exclude_self=False)])
    assert s[0, 0, -1] == 0 and s[1, 0, -1] == 1


def test_empty_flock_gives_empty_sums_on_the_right_device(device):
    pos = torch.zeros(0, 3, device=device)
    s = reduce_neighbors(pos, pos, [KERNELS["flat"]], backend="dense")
    assert s.shape == (1, 0, 7) and s.device.type == device.type


def test_coincident_agents_give_finite_inverse_square_weights():
    pos = torch.zeros(5, 2)
    s = reduce_dense(pos, torch.zeros(5, 2), [KERNELS["inverse_square"]])
    assert torch.isfinite(s).all()


def test_periodic_offsets_use_the_minimum_image():
    period = torch.tensor([10.0, 10.0], dtype=torch.float64)
    pos = torch.tensor([[0.5, 5.0], [9.5, 5.0]], dtype=torch.float64)
    s = reduce_dense(pos, torch.zeros_like(pos), [Kernel("flat", radius=2.0)], period=period)
    # agent 0 sees agent 1 at x = -0.5 (its image across the seam), and vice versa at 10.5
    assert s[0, 0].tolist() == [-0.5, 5.0, 0.0, 0.0, 1.0]
    assert s[0, 1].tolist() == [10.5, 5.0, 0.0, 0.0, 1.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    pos, vel = _random(300, 2, seed=4)
    kern = list(KERNELS.values())
    got = reduce_dense(pos.cuda(), vel.cuda(), kern).cpu()
    torch.testing.assert_close(got, reduce_dense(pos, vel, kern))


def test_every_kernel_kind_has_a_dense_case():
    from flock.kernels import KERNEL_KINDS

    assert set(KERNEL_KINDS) <= {k.kind for k in KERNELS.values()}


@pytest.mark.parametrize("kind", sorted({k.kind for k in KERNELS.values()}))
def test_batched_members_equal_dense_member_by_member(kind):
    from flock.kernels import KERNEL_KINDS
    from flock.neighbors import reduce_dense_batched

    assert kind in KERNEL_KINDS
    kern = [k for k in KERNELS.values() if k.kind == kind]
    pos, vel = _random(3 * 25, 2, seed=5)
    pos, vel = pos.view(3, 25, 2), vel.view(3, 25, 2)
    period = torch.full((2,), 8.0, dtype=torch.float64)
    got = reduce_dense_batched(pos, vel, kern, period=period)
    for e in range(3):
        torch.testing.assert_close(got[e], reduce_dense(pos[e], vel[e], kern, period=period), rtol=1e-10, atol=1e-10)
