"""The unrolled numba loop (``flock.neighbors.numba_unrolled``) gives the generic loop's sums bit for bit.

The generic ``_cell_sums`` is tested against the dense backend elsewhere
(tests/test_numba_grid.py); here every call is made twice, once forced through each loop,
and the results must be equal to the last bit, for the shapes the unrolled loop is made for
(each shape is one compile, so a few shapes that cover every branch of the generated code:
every kernel kind, both flag values, 1-3 axes, features, periodic (fast and exact minimum
image) and walled worlds, self and external queries, and 1 or 2 threads).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flock.kernels import Kernel
from flock.neighbors import numba_grid
from flock.neighbors.numba_unrolled import _cache_dir, _source, channel_key, run_blocks, supports

pytest.importorskip("numba")


def _both(*args, **kwargs):
    """(generic result, unrolled result) of one ``reduce_numba`` call."""
    return (numba_grid.reduce_numba(*args, unrolled=False, **kwargs),
            numba_grid.reduce_numba(*args, unrolled=True, **kwargs))


def _points(n, dim, side, dtype, gen, width):
    """Random points plus some exactly on cell borders and on the box edge."""
    pos = torch.rand(n, dim, generator=gen, dtype=torch.float64) * side
    pos[: n // 8] = torch.round(pos[: n // 8] / width) * width
    pos[0] = 0.0
    return pos.to(dtype)


BOIDS = [Kernel("flat", radius=1.0), Kernel("flat", radius=1.0), Kernel("inverse_square", radius=0.5)]
MIXED = [Kernel("triangular", radius=1.2, fov=270.0), Kernel("gaussian", bandwidth=0.4, radius=1.0),
         Kernel("circles", radius=0.9, strength=0.7, exclude_self=False), Kernel("inverse", radius=0.6,
                                                                                  open_center=True)]


@pytest.mark.parametrize("periodic", [True, False])
def test_boids_2d_float32(periodic):
    gen = torch.Generator().manual_seed(1)
    pos = _points(3000, 2, 12.0, torch.float32, gen, 1.0)
    vel = torch.randn(3000, 2, generator=gen)
    period = torch.tensor([12.0, 12.0]) if periodic else None
    generic, unrolled = _both(pos, vel, BOIDS, period=period)
    assert generic[..., -1].sum() > 0
    assert torch.equal(generic, unrolled)


@pytest.mark.parametrize("period", [None, 7.0, 1.5])        # walled, fast minimum image, exact rint path
def test_every_kind_3d_float64_with_features_and_fov(period):
    gen = torch.Generator().manual_seed(2)
    pos = _points(1500, 3, 7.0, torch.float64, gen, 1.2)
    vel = torch.randn(1500, 3, generator=gen, dtype=torch.float64)
    feats = torch.rand(1500, 2, generator=gen, dtype=torch.float64)
    per = None if period is None else torch.full((3,), period, dtype=torch.float64)
    generic, unrolled = _both(pos, vel, MIXED, period=per, features=feats)
    assert (generic[..., -1] > 0).any(dim=1).all()
    assert torch.equal(generic, unrolled)


def test_external_queries_1d():
    gen = torch.Generator().manual_seed(3)
    pos = _points(800, 1, 30.0, torch.float32, gen, 0.8)
    vel = torch.randn(800, 1, generator=gen)
    queries = torch.rand(300, 1, generator=gen) * 30
    qvel = torch.randn(300, 1, generator=gen)
    kernels = [Kernel("triangular", radius=0.8, fov=180.0)]
    generic, unrolled = _both(pos, vel, kernels, query_pos=queries, query_vel=qvel,
                              period=torch.tensor([30.0]))
    assert torch.equal(generic, unrolled)


def test_threads_split_the_blocks_without_changing_a_bit(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    pos = _points(3000, 2, 12.0, torch.float32, gen, 1.0)
    vel = torch.randn(3000, 2, generator=gen)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(numba_grid, "run_blocks",
                            lambda kernel, n, args, t=threads: run_blocks(kernel, n, args, threads=t))
        results.append(numba_grid.reduce_numba(pos, vel, BOIDS, period=torch.tensor([12.0, 12.0]), chunk_rows=16,
                                                  unrolled=True))
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_the_generated_source_names_its_shape_and_constants():
    key = channel_key(np.array([0, 3]), np.array([1, 0]), np.array([0, 1]), np.array([0, 0]))
    assert key == ((0, True, False, False), (3, False, True, False))
    text = _source(2, key, 0)
    assert "kd1, ex1, oc1, fv1 = 3, False, True, False" in text
    assert "a1_4 += w" in text and "a2_" not in text
    compile(text, "generated", "exec")
    assert supports(3, 8, 0) and not supports(4, 1, 0) and not supports(2, 9, 0)
    assert _cache_dir().is_dir()


def test_a_large_pass_in_chunks_runs_the_unrolled_loop_bit_for_bit():
    from flock.neighbors.progress import report_progress

    gen = torch.Generator().manual_seed(5)
    pos = _points(3000, 2, 12.0, torch.float32, gen, 1.0)
    pos[:1000] = 6.0                                     # a clump: many candidates per query
    vel = torch.randn(3000, 2, generator=gen)
    period = torch.tensor([12.0, 12.0])
    whole = numba_grid.reduce_numba(pos, vel, BOIDS, period=period, unrolled=True)
    seen = []
    with report_progress(lambda done, total: seen.append((done, total)), min_pairs=0, chunk_pairs=200_000):
        chunked = numba_grid.reduce_numba(pos, vel, BOIDS, period=period, unrolled=True)
    assert len(seen) > 3 and seen[-1][0] == seen[-1][1]
    assert torch.equal(whole, chunked)
