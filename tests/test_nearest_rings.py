"""nearest_rings: the ring search's distance to the nearest other agent equals the dense scan's, everywhere."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flock.neighbors.nearest import nearest_neighbor
from flock.neighbors.nearest_rings import nearest_distances

pytest.importorskip("numba")


def dense_distances(pos, idx, period):
    """Each query's nearest other agent by the dense scan, in the ring search's units."""
    if period is None:                                   # the ring search's centred points
        from flock.metrics import _centred

        pos, _ = _centred(pos, None)
    return nearest_neighbor(pos, period=period, query_pos=pos[idx], query_index=idx)[1]


def check(pos, idx, period):
    dist, scale = nearest_distances(pos, idx, period)
    want = dense_distances(pos, idx, period)
    tol = 1e-5 if pos.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(dist, want, rtol=tol, atol=0.0)
    return dist, scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("layout", ["uniform", "clumped", "line", "duplicates", "two"])
def test_ring_search_equals_the_dense_scan(layout, dim, periodic, dtype):
    g = torch.Generator().manual_seed(dim * 10 + len(layout))
    n = 2 if layout == "two" else 600
    pos = torch.rand(n, dim, generator=g, dtype=dtype) * 40.0
    if layout == "clumped":                     # a tight ball, the rest far and sparse: rings grow
        pos[: n - 5] = 20.0 + 0.01 * pos[: n - 5]
    elif layout == "line" and dim > 1:          # every agent on one line: flat cells
        pos[:, 1:] = 7.0
    elif layout == "duplicates":                # several agents at one point: distance 0
        pos[1::3] = pos[::3][: pos[1::3].shape[0]]
    period = torch.full((dim,), 40.0, dtype=dtype) if periodic else None
    idx = torch.arange(0, n, 3 if n > 2 else 1)
    dist, _ = check(pos, idx, period)
    if layout == "duplicates":
        assert (dist == 0).any()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 80), dim=st.sampled_from([1, 2, 3]), periodic=st.booleans(),
       box=st.floats(0.5, 50.0), seed=st.integers(0, 2**16))
def test_ring_search_on_random_flocks(n, dim, periodic, box, seed):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, dim, generator=g, dtype=torch.float64) * box
    if seed % 3 == 0:
        pos = pos ** 3 / box ** 2                       # crowded near one corner
    period = torch.full((dim,), box, dtype=torch.float64) if periodic else None
    check(pos, torch.arange(n), period)


def test_a_narrow_periodic_box_visits_each_cell_once():
    # one or two cells across an axis: the wrapped block must not hide or skip a cell
    g = torch.Generator().manual_seed(2)
    pos = torch.rand(50, 2, generator=g, dtype=torch.float64) * torch.tensor([100.0, 1.5], dtype=torch.float64)
    check(pos, torch.arange(50), torch.tensor([100.0, 1.5], dtype=torch.float64))


def test_positions_outside_the_periodic_box():
    g = torch.Generator().manual_seed(3)
    pos = torch.rand(200, 2, generator=g, dtype=torch.float64) * 30.0 - 10.0     # the box is [0, 10)
    check(pos, torch.arange(200), torch.tensor([10.0, 10.0], dtype=torch.float64))


def test_far_from_the_origin_the_points_are_centred_and_scaled():
    g = torch.Generator().manual_seed(5)
    pos = (torch.rand(400, 3, generator=g, dtype=torch.float64) * 1e25 - 1e30).float()
    dist, scale = check(pos, torch.arange(0, 400, 7), None)
    assert scale < 1 and math.log2(scale).is_integer()
    assert torch.isfinite(dist).all()


def test_what_it_cannot_answer_goes_back_to_the_caller():
    pos = torch.rand(10, 2)
    pos[3, 1] = math.nan
    assert nearest_distances(pos, torch.arange(3)) is None
    assert nearest_distances(torch.rand(10, 2, requires_grad=True), torch.arange(3)) is None
