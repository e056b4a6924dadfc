"""nearest: the cell-list query against the dense scan (same index, same distance, ties to the lowest index)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flock.neighbors.nearest import nearest, nearest_neighbor

F64 = torch.float64


def _both(pos, **kwargs):
    """Both backends' answers, checked equal: distances to rounding (torch's vector_norm may
    round differently from sqrt(x^2 + y^2)), indices exactly except between such near-ties."""
    dense = nearest(pos, backend="dense", **kwargs)
    cells = nearest(pos, backend="cells", **kwargs)
    tol = 1e-5 if pos.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(cells[1], dense[1], rtol=tol, atol=tol)
    differ = cells[0] != dense[0]
    assert (dense[0][differ] >= 0).all() and (cells[0][differ] >= 0).all()
    return cells


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), m=st.integers(0, 12), dim=st.sampled_from([2, 3]), periodic=st.booleans(),
       external=st.booleans(), masked=st.booleans(), radius=st.floats(0.1, 3.0), box=st.floats(0.5, 6.0),
       seed=st.integers(0, 2**16), f32=st.booleans())
def test_cells_match_dense_on_random_inputs(n, m, dim, periodic, external, masked, radius, box, seed, f32):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.float32 if f32 else F64
    lengths = torch.tensor([box * (1 + 0.25 * a) for a in range(dim)], dtype=dtype)
    pos = torch.rand(n, dim, generator=g, dtype=dtype) * lengths
    pos[: n // 4] = torch.round(pos[: n // 4] * 4) / 4            # lattice points: ties and equal distances
    kwargs = dict(radius=radius, period=lengths if periodic else None)
    if external:
        kwargs["query_pos"] = torch.rand(m, dim, generator=g, dtype=dtype) * lengths
        if n:
            kwargs["query_index"] = torch.randint(-1, n, (m,), generator=g)
    if masked:
        kwargs["candidates"] = torch.rand(n, generator=g) < 0.6
    idx, dist = _both(pos, **kwargs)
    assert idx.dtype == torch.int64 and dist.dtype == dtype
    assert ((idx < 0) == torch.isinf(dist)).all()


def test_ties_go_to_the_lowest_index():
    pos = torch.tensor([[1.0, 1.0], [2.0, 1.0], [0.0, 1.0], [1.0, 2.0], [1.0, 0.0]], dtype=F64)
    idx, dist = _both(pos, radius=1.5, query_pos=pos[:1], query_index=torch.tensor([0]))
    assert idx.tolist() == [1] and dist.tolist() == [1.0]


@pytest.mark.parametrize("dim", [2, 3])
def test_wrap_seam(dim):
    L = 10.0
    period = torch.full((dim,), L, dtype=F64)
    pos = torch.tensor([[0.1] * dim, [L - 0.2] * dim, [5.0] * dim, [math.nextafter(L, 0.0)] + [3.0] * (dim - 1),
                        [0.0] + [3.0] * (dim - 1)], dtype=F64)
    idx, dist = _both(pos, radius=1.0, period=period)
    assert idx[0] == 1 and idx[1] == 0 and idx[2] == -1 and idx[3] == 4 and idx[4] == 3
    torch.testing.assert_close(dist[0], torch.tensor(0.3 * math.sqrt(dim), dtype=F64))


def test_candidates_and_query_subset():
    g = torch.Generator().manual_seed(3)
    pos = torch.rand(400, 2, generator=g, dtype=F64) * 20
    prey = torch.rand(400, generator=g) < 0.3
    hunters = torch.nonzero(~prey).flatten()
    idx, _ = _both(pos, radius=2.0, query_pos=pos[hunters], query_index=hunters, candidates=prey)
    assert prey[idx[idx >= 0]].all()
    full, _ = _both(pos, radius=2.0)
    sub, _ = _both(pos, radius=2.0, query_pos=pos[hunters], query_index=hunters)
    assert torch.equal(sub, full[hunters])


def test_auto_backend_and_errors():
    pos = torch.rand(50, 2, dtype=F64)
    torch.testing.assert_close(nearest(pos, radius=0.3), nearest_neighbor(pos, radius=0.3))
    unbounded = nearest(pos, radius=math.inf)                   # auto: the dense scan
    assert (unbounded[0] >= 0).all()
    with pytest.raises(ValueError, match="finite radius"):
        nearest(pos, radius=math.inf, backend="cells")
    with pytest.raises(ValueError, match="backend"):
        nearest(pos, radius=1.0, backend="kd")
    with pytest.raises(ValueError, match="radius"):
        nearest(pos, radius=0.0)
