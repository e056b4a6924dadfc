"""Batched neighbor sums of E independent flocks (ensemble members) in one pass.

Small flocks leave a GPU mostly idle; E of them side by side fill it. Member e's sums
are those of ``reduce_dense`` over member e alone (up to summation order): no pair
crosses members.

- dense: the pairwise block gets a leading member axis ([E, m, N] weights, one
  batched matrix product);
- triton: one cell list over all members, member e in its own copy of the cells
  (``flock.neighbors.triton_grid.reduce_triton_batched``);
- any other backend: member by member.
"""

from __future__ import annotations

import torch

from ..kernels import Kernel, has_fov, pair_weights
from ..world import minimum_image
from .dense import DEFAULT_MEMORY_BUDGET, dense_chunk_rows

_CPU_CHUNK_PAIRS = 1 << 18


def reduce_dense_batched(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                         period: torch.Tensor | None = None,
                         features: torch.Tensor | None = None,
                         memory_budget: int = DEFAULT_MEMORY_BUDGET,
                         chunk_rows: int | None = None) -> torch.Tensor:
    """``reduce_dense`` of E independent flocks at once (self-pairs excluded per kernel).

    Args:
        pos, vel: [E, N, D] float, world units.
        kernels: K channels, the same for every member.
        period: [D] box lengths of a periodic world, or None.
        features: [E, N, F] or None.
        memory_budget: bytes of temporaries one chunk of query rows may use (all members).
        chunk_rows: force the query rows per chunk (tests).

    Returns:
        S: [E, K, N, 2D + F + 1]; member e's block is ``reduce_dense(pos[e], vel[e], kernels)``
        up to summation order. No host synchronisation (CUDA-graph capturable).
    """
    n_mem, n_agents, dim = pos.shape
    n_feat = 0 if features is None else features.shape[2]
    n_k = len(kernels)
    width = 2 * dim + n_feat + 1
    out = torch.zeros(n_mem, n_k, n_agents, width, device=pos.device, dtype=pos.dtype)
    if n_mem == 0 or n_agents == 0 or n_k == 0:
        return out
    values = vel if features is None else torch.cat([vel, features.to(vel.dtype)], dim=2)
    if period is None:
        values = torch.cat([pos, values], dim=2)                                # one product for x and v
    exclude = [k for k, kern in enumerate(kernels) if kern.exclude_self]
    fov = has_fov(kernels)
    rows = chunk_rows or dense_chunk_rows(n_agents * n_mem, dim, n_k, pos.element_size(), memory_budget)
    if chunk_rows is None and pos.device.type == "cpu":
        # on a CPU, chunks past a few hundred thousand pairs fall out of cache
        rows = min(rows, max(1, _CPU_CHUNK_PAIRS // (n_mem * n_agents)))
    for start in range(0, n_agents, rows):
        stop = min(start + rows, n_agents)
        m = stop - start
        q = pos[:, start:stop]                                                  # [E, m, D]
        offset = minimum_image(pos[:, None, :, :] - q[:, :, None, :], period)   # [E, m, N, D]
        dist = torch.linalg.vector_norm(offset, dim=-1)                         # [E, m, N]
        w = pair_weights(kernels, offset, dist, vel[:, start:stop] if fov else None, 2)   # [E, m, K, N]
        if exclude:
            r = torch.arange(m, device=pos.device)
            for k in exclude:
                w[:, r, k, start + r] = 0
        wsum = w.sum(-1)                                                        # [E, m, K]
        # plain batched products over reshaped views: no broadcast copies
        summed = torch.bmm(w.reshape(n_mem, m * n_k, n_agents), values).view(n_mem, m, n_k, -1)
        if period is None:
            out[:, :, start:stop, :width - 1] = summed.transpose(1, 2)
        else:
            soff = torch.bmm(w.reshape(n_mem * m, n_k, n_agents), offset.reshape(n_mem * m, n_agents, dim))
            spos = q[:, :, None, :] * wsum[..., None] + soff.view(n_mem, m, n_k, dim)
            out[:, :, start:stop, :dim] = spos.transpose(1, 2)
            out[:, :, start:stop, dim:width - 1] = summed.transpose(1, 2)
        out[:, :, start:stop, width - 1] = wsum.transpose(1, 2)
    return out


def reduce_members(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *, backend: str,
                   period: torch.Tensor | None = None, features: torch.Tensor | None = None,
                   box=None, columns: str = "all") -> torch.Tensor:
    """Kernel sums [E, K, N, W] of E members with ``backend`` (no pair across members).

    Args:
        pos, vel: [E, N, D]. features: [E, N, F] or None.
        box, columns: as ``reduce_neighbors``.
        backend: 'dense', 'triton' (one batched pass; triton without features) or any
            backend of ``reduce_neighbors`` (member by member).
    """
    if backend == "dense":
        return reduce_dense_batched(pos, vel, kernels, period=period, features=features)
    if backend == "triton" and features is None:
        from .triton_grid import reduce_triton_batched

        return reduce_triton_batched(pos, vel, kernels, period=period, columns=columns)
    from . import reduce_neighbors

    return torch.stack([reduce_neighbors(pos[e], vel[e], kernels, backend=backend, period=period, box=box,
                                         columns=columns,
                                         **({} if features is None else {"features": features[e]}))
                        for e in range(pos.shape[0])])


__all__ = ["reduce_dense_batched", "reduce_members"]
