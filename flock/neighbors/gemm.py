"""Dense kernel sums over fixed points through one matrix product per chunk.

Mean shift's step needs only positions and the weight sum of the one kernel,

    S[i] = sum_j w(|q_i - x_j|) c_j [x_j, 1]                 shape [M, D + 1]

(c_j: how many data points sit at x_j, 1 by default), in an open (non-periodic)
space. Then the squared distances of a chunk of queries to every point come from
the identity

    |q - x|^2 = |q|^2 + |x|^2 - 2 q . x

as one matrix product of augmented rows ([q, |q|^2, 1] . [-2 x, 1, |x|^2]), the
weights are made in place in that same buffer, and a second matrix product
``[c x, c]^T @ W^T`` gives the sums. On the 2-core CPU of issue 5 that is ~0.9 ns a pair where the general
dense backend (offsets, norms, weights as separate tensors) takes ~5 ns (128
queries x 20,000 points, float32, median of 5 after a warm-up).

Exactness. The identity cancels: its rounding error grows with |q|^2 + |x|^2,
not with |q - x|^2. Queries go in Z-ordered tiles of at most ``TILE_ROWS``,
each centred on its own mean c (rounded to a power of two near the tile's
extent, so that data on a coarse binary grid such as integers sum exactly); with u = eps / 2 (the dtype's unit roundoff) the
error of a computed d^2 - r^2 is at most u (2 D + 5) ((|q_i - c| + |x_j - c|)^2 + r^2)
(centring, the norms, the product), so with P = max_j |x_j - c| over the
tile's points every pair with the computed value within

    tol_i = 2 (D + 3) eps ((|q_i - c| + P)^2 + r^2)

of the support's edge is decided again by the exact difference test,
sum_k (q_ik - x_jk)^2 in float64 (the test of scikit-learn's ball and KD
trees), and its weight recomputed from that distance; every other pair's side
of the edge is certain. So finite kernels have exactly the exact test's
neighbor sets, in float32 as in float64, for any data (issue 15: float32 data in
a 30,000-wide box, bandwidth 2, had wrong counts for most points before). One
extra pass (min_j of v_ij^2 per row) finds the rows to search. The cost grows
with the pairs within ``tol`` of the edge, i.e. with (tile extent + P) against
the support: callers should pass each tile only the points near it
(``MeanShift`` does, in Z-order batches, for float32 data wide against the
bandwidth). The flat kernel counts ``d <= r`` (scikit-learn's
``radius_neighbors``), not the engine's strict ``d < r``; the Gaussian cut at a
radius keeps ``d < r``. For the triangular and cut Gaussian kernels, whose weights
vary inside the support, every pair inside it is redone exactly too when the
bound exceeds 1e-4 r^2 (a tile wide against the support).
"""

from __future__ import annotations

import math

import torch

from ..kernels import Kernel
from .dense import DEFAULT_MEMORY_BUDGET

GEMM_KINDS = ("flat", "triangular", "gaussian")


def _weights_in_place(v: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """Turn ``v`` ([m, n]) into weights w(d), in place.

    ``v`` holds d^2 - r^2 (world units^2) for kernels with a radius (the flat
    kernel needs only its sign) and d^2 for the untruncated Gaussian.
    """
    if kernel.radius is not None and kernel.kind != "flat":
        v.add_(float(kernel.radius) ** 2)
    if kernel.kind == "flat":
        # in place, v <= 0 writes 1.0 / 0.0 into the float buffer: one pass, where a boolean
        # result and a cast to float take ~15x as long on CPU
        return v.le_(0.0)
    if kernel.kind == "triangular":
        return v.clamp_(min=0.0).sqrt_().mul_(-1.0 / float(kernel.radius)).add_(1.0).clamp_(min=0.0)
    # gaussian, cut at the radius when one is set: exp(-inf) = 0 beyond it
    if kernel.radius is not None:
        v.masked_fill_(v >= float(kernel.radius) ** 2, float("inf"))
    return v.mul_(-0.5 / float(kernel.bandwidth) ** 2).exp_()


def exact_weights(kernel: Kernel, d2: torch.Tensor) -> torch.Tensor:
    """w from exact squared distances ``d2`` (any shape, float64), the rules of ``reduce_gemm``."""
    if kernel.kind == "flat":
        return (d2 <= float(kernel.radius) ** 2).to(d2.dtype)
    if kernel.kind == "triangular":
        return (1.0 - d2.sqrt() / float(kernel.radius)).clamp_(min=0.0)
    w = (d2 * (-0.5 / float(kernel.bandwidth) ** 2)).exp_()
    if kernel.radius is not None:
        w = torch.where(d2 < float(kernel.radius) ** 2, w, torch.zeros_like(w))
    return w


# Queries go in tiles of at most this many rows, in Z-order, each centred on its own mean:
# the rounding of d^2 (and so the pairs to decide again) grows with a tile's extent.
TILE_ROWS = 256
# ... and, for finite supports, a tile holds the queries of one cell of this many supports a side
TILE_SUPPORTS = 4.0
# triangular / cut Gaussian: pairs inside the support are redone exactly when a tile's
# bound on the rounding of d^2 exceeds this share of r^2
_INSIDE_REL = 1e-4


def zorder(x: torch.Tensor, lo: torch.Tensor, cell: float) -> torch.Tensor:
    """[M] int64 Z-order (Morton) keys of the ``cell``-sized cells of x's first 3 dims, from ``lo``."""
    dims = min(3, x.shape[1])
    c = torch.floor((x[:, :dims] - lo[:dims]) / cell).to(torch.int64).clamp_(0, (1 << (63 // dims)) - 1)
    bits = max(1, int(c.max()).bit_length()) if c.numel() else 1
    key = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    for b in range(bits):
        for d in range(dims):
            key |= ((c[:, d] >> b) & 1) << (b * dims + d)
    return key


def _tiles(queries: torch.Tensor, rows: int, support: float) -> tuple[torch.Tensor | None, list[tuple[int, int]]]:
    """A Z-order of ``queries`` and its tiles [(start, stop)] of at most ``rows`` rows.

    Finite supports: one tile (or more, of ``rows``) per cell of side
    ``TILE_SUPPORTS`` supports, so a tile's extent stays small against the
    support; otherwise cells of 1/1024 of the bounding box, cut every ``rows``.
    """
    m = queries.shape[0]
    lo, hi = queries.min(0).values, queries.max(0).values
    extent = float((hi - lo).max())
    if not extent > 0:
        return None, [(s, min(s + rows, m)) for s in range(0, m, rows)]
    finite = math.isfinite(support)
    cell = TILE_SUPPORTS * support if finite else extent / 1024 * (1 + 1e-6)
    key = zorder(queries, lo, cell)
    key, order = torch.sort(key)
    if not finite:
        return order, [(s, min(s + rows, m)) for s in range(0, m, rows)]
    starts = torch.ones(m, dtype=torch.bool, device=queries.device)
    starts[1:] = key[1:] != key[:-1]
    bounds = starts.nonzero()[:, 0].tolist() + [m]
    tiles = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        tiles.extend((s, min(s + rows, b)) for s in range(a, b, rows))
    return order, tiles


def _round_centre(q: torch.Tensor, support: float) -> torch.Tensor:
    """The centring point of a tile: its queries' mean rounded to a power of two ~ its extent.

    A coarse binary grid keeps x - c exact for data on it (integers, halves...),
    so the sums of such data are exact and a mean comes out as numpy's mean
    (whose ties at the bandwidth then fall as scikit-learn's); it moves c by at
    most half the tile's extent (plus support), which the tolerance covers.
    """
    centre = q.mean(0)
    span = float((q.max(0).values - q.min(0).values).max())
    if math.isfinite(support):
        span += support
    if not span > 0:
        return centre
    step = 2.0 ** math.floor(math.log2(span))
    return torch.round(centre / step) * step


def gemm_rows(n_points: int, itemsize: int, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Query rows per chunk so that the [rows, n_points] weight buffer fits ``memory_budget`` bytes."""
    return max(1, int(memory_budget // (max(1, n_points) * itemsize)))


def edge_tolerance(dim: int, dtype: torch.dtype, query_norm: torch.Tensor, point_radius: float,
                   support: float) -> torch.Tensor:
    """[m] bound on the rounding of each query row's computed d^2 - r^2 near the edge (module text).

    Args:
        dim: D. dtype: the computation's float dtype.
        query_norm: [m] |q_i - c|, each query's distance from the centring point c.
        point_radius: P = max_j |x_j - c| over the tile's points.
        support: r, the kernel's support radius, data units.

    With c_e = 2 (D + 3) eps, every pair's error is below c_e ((|q_i - c| +
    |x_j - c|)^2 + r^2). When c_e (R + P)^2 <= r^2 / 4 (R = max_i |q_i - c|), a
    pair with |x_j - c| > |q_i - c| + 1.5 r has d^2 - r^2 >= 1.25 r^2, above its
    error and any tolerance here: only pairs with |x_j - c| <= |q_i - c| + 1.5 r
    can be near the edge, and the bound uses that; otherwise it uses P.
    """
    ce = 2 * (dim + 3) * torch.finfo(dtype).eps
    qn = query_norm.double()
    if ce * (float(qn.max()) + point_radius) ** 2 <= support ** 2 / 4:
        return ce * ((2 * qn + 1.5 * support) ** 2 + support ** 2)
    return ce * ((qn + point_radius) ** 2 + support ** 2)


def _edge_rows(v: torch.Tensor, tol: torch.Tensor, scratch: torch.Tensor, inside: bool) -> torch.Tensor:
    """Indices of the rows of ``v`` ([m, N], computed d^2 - r^2) with a pair to decide exactly.

    A pair within ``tol`` ([m]) of 0 (one pass: min_j v_ij^2 <= tol_i^2,
    squared into ``scratch``, a reused [>= m, N] buffer; an underflow to 0 only
    flags more rows), or with ``inside`` any pair with v_ij <= tol_i.
    """
    if inside:
        return (v.amin(1).double() <= tol).nonzero()[:, 0]
    sq = torch.mul(v, v, out=scratch[:v.shape[0]])
    return (sq.amin(1).double() <= tol * tol).nonzero()[:, 0]


def _fix_edge_rows(w, v, rows, tol, q, points, kernel, memory_budget, inside):
    """In ``w`` ([m, N] weights), redo the pairs of ``rows`` whose ``v`` is within ``tol`` of 0
    (``inside``: at most ``tol``).

    Their weights come from the exact squared distance sum_k (q_ik - x_jk)^2 in
    float64; rows go in blocks so that the pair indices stay within ``memory_budget``.
    """
    q64, p64 = q.to(torch.float64), points.to(torch.float64)
    block = max(1, int(memory_budget // (max(1, points.shape[0]) * 24)))
    for s in range(0, rows.numel(), block):
        r = rows[s:s + block]
        sub = v[r] if inside else v[r].abs()
        i, j = (sub <= tol[r, None].to(v.dtype)).nonzero(as_tuple=True)
        i = r[i]
        d2 = (q64[i] - p64[j]).square_().sum(1)
        w[i, j] = exact_weights(kernel, d2).to(w.dtype)


def reduce_gemm(points: torch.Tensor, queries: torch.Tensor, kernel: Kernel,
                counts: torch.Tensor | None = None,
                memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """Kernel-weighted sums of ``points`` around each query, by matrix products.

    Args:
        points: [N, D] float32/float64 positions, units of the data (not moved).
        queries: [M, D] positions where the sums are taken, same dtype and device.
        kernel: a flat (``d <= r``), triangular or Gaussian (cut at ``d < r`` or
            not) ``Kernel``; self pairs are not excluded (a query is not an agent here).
        counts: [N] multiplicity c_j of each point (int or float), or None for 1.
        memory_budget: bytes of the per-chunk weight buffer.

    Returns:
        [M, D + 1]: sum_j w_ij c_j x_j (D columns) and sum_j w_ij c_j (last column).
        Pairs near the support's edge are decided by the exact difference test
        (module text), so finite kernels have exactly the exact test's neighbor sets.
    """
    if kernel.kind not in GEMM_KINDS:
        raise ValueError(f"reduce_gemm: kernel kind {kernel.kind!r} is not one of {GEMM_KINDS}")
    n_points, dim = points.shape
    n_query = queries.shape[0]
    out = torch.zeros(n_query, dim + 1, device=points.device, dtype=points.dtype)
    if n_points == 0 or n_query == 0:
        return out
    finite = kernel.radius is not None
    # finite kernels hold a second [rows, N] buffer (the edge search) in the budget
    rows = min(TILE_ROWS, gemm_rows(n_points, points.element_size() * (2 if finite else 1), memory_budget))
    order, tiles = _tiles(queries, rows, kernel.support)
    if order is not None:
        queries = queries[order]
    weight = (torch.ones(n_points, 1, device=points.device, dtype=points.dtype) if counts is None
              else counts.to(points.dtype)[:, None])
    # finite kernels: d^2 - r^2 (its sign is the flat kernel's weight; the edge is at 0)
    offset = float(kernel.radius) ** 2 if finite else 0.0
    scratch = (torch.empty(min(rows, n_query), n_points, device=points.device, dtype=points.dtype)
               if finite else None)
    for start, stop in tiles:
        q = queries[start:stop]
        centre = _round_centre(q, kernel.support)
        pc = points - centre                                    # [N, D], centred
        qc = q - centre                                         # [m, D]
        # d^2 - offset = [q, |q|^2, 1] . [-2 x, 1, |x|^2 - offset]: one product, no broadcasts
        ones_q = torch.ones(q.shape[0], 1, device=q.device, dtype=q.dtype)
        ones_p = torch.ones(n_points, 1, device=q.device, dtype=q.dtype)
        qn = (qc * qc).sum(1, keepdim=True)
        q_aug = torch.cat([qc, qn, ones_q], 1)                                        # [m, D + 2]
        pn = (pc * pc).sum(1, keepdim=True)
        p_aug = torch.cat([-2.0 * pc, ones_p, pn - offset], 1)                        # [N, D + 2]
        v = q_aug @ p_aug.T                                     # [m, N]
        rows_at_edge = None
        if finite:
            tol = edge_tolerance(dim, v.dtype, qn[:, 0].sqrt(), float(pn.max().sqrt()), float(kernel.radius))
            # weights that vary inside the support are redone too when d^2 may be off by
            # more than _INSIDE_REL r^2 (a tile wide against the support)
            inside = kernel.kind != "flat" and float(tol.max()) > _INSIDE_REL * float(kernel.radius) ** 2
            rows_at_edge = _edge_rows(v, tol, scratch, inside)
        if rows_at_edge is None or rows_at_edge.numel() == 0:
            w = _weights_in_place(v, kernel)
        else:   # keep v to find the edge pairs: weights in the scratch buffer
            w = _weights_in_place(scratch[:v.shape[0]].copy_(v), kernel)
            _fix_edge_rows(w, v, rows_at_edge, tol, q, points, kernel, memory_budget, inside)
        values = torch.cat([pc * weight, weight], 1).T.contiguous()  # [D + 1, N]
        # [D + 1, N] @ [N, m] is ~2x faster than [m, N] @ [N, D + 1] for thin outputs
        s = (values @ w.T).T                                    # [m, D + 1], centred positions
        out[start:stop, :dim] = s[:, :dim] + centre * s[:, dim:]
        out[start:stop, dim] = s[:, dim]
    if order is not None:
        out[order] = out.clone()
    return out


__all__ = ["GEMM_KINDS", "TILE_ROWS", "TILE_SUPPORTS", "edge_tolerance", "exact_weights", "gemm_rows", "reduce_gemm", "zorder"]
