"""Dense backend of the one neighbor kernel: every query against every agent.

For query agent i (position q_i) and agent j, with offset d_ij = minimum image of
x_j - q_i and distance |d_ij|, channel k sums

    S[k, i] = sum_j w_k(|d_ij|) * [q_i + d_ij, v_j, f_j, 1]        shape [K, M, 2D+F+1]

(q_i + d_ij is x_j itself in a non-periodic world, and the image of x_j nearest
to i in a periodic one). Query rows are processed in chunks (the fastai lesson's
``bs``) sized so the temporaries of one chunk stay under ``memory_budget`` bytes;
a chunk is never smaller than one row, so any N runs, chunk by chunk.
"""

from __future__ import annotations

import torch

from ..kernels import Kernel, has_fov, pair_weights
from ..world import minimum_image
from .progress import active_progress

DEFAULT_MEMORY_BUDGET = 256 * 2**20


def dense_chunk_rows(n_agents: int, dim: int, n_kernels: int, itemsize: int,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Query rows per chunk so that one chunk's temporaries fit ``memory_budget`` bytes."""
    # per (row, agent): offsets D, distance 1, K weights, and as much again for
    # the temporaries torch makes while reducing them
    per_row = max(1, n_agents) * itemsize * 2 * (dim + 1 + n_kernels)
    return max(1, int(memory_budget // per_row))


def reduce_dense(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                 period: torch.Tensor | None = None,
                 query_pos: torch.Tensor | None = None,
                 query_index: torch.Tensor | None = None,
                 features: torch.Tensor | None = None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 chunk_rows: int | None = None,
                 query_vel: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel sums of every query over all agents.

    Args:
        pos: [N, D] float agent positions, world units.
        vel: [N, D] float agent velocities.
        kernels: K kernel channels.
        period: [D] box lengths of a periodic world, or None.
        query_pos: [M, D] query positions; None means the agents themselves.
        query_index: [M] int64 index into ``pos`` of each query, used to drop
            self-pairs for kernels with ``exclude_self``; defaults to arange(N)
            when ``query_pos`` is None, and to "no query is an agent" otherwise.
        features: [N, F] extra per-agent features summed like velocities, or None.
        memory_budget: bytes of temporaries one chunk may use.
        chunk_rows: force the number of query rows per chunk (tests).
        query_vel: [M, D] velocities of the queries, the headings of kernels with a
            field of view; defaults to ``vel`` when ``query_pos`` is None.

    Returns:
        S: [K, M, 2D + F + 1], layout [positions (D), velocities (D), features (F), weight sum (1)].
    """
    if query_pos is None:
        query_pos = pos
        if query_index is None:
            query_index = torch.arange(pos.shape[0], device=pos.device)
        if query_vel is None:
            query_vel = vel
    n_agents, dim = pos.shape
    n_query = query_pos.shape[0]
    n_feat = 0 if features is None else features.shape[1]
    n_k = len(kernels)
    width = 2 * dim + n_feat + 1
    fov = has_fov(kernels)
    if fov and query_vel is None:
        raise ValueError("reduce_dense: a kernel has a field of view (fov), so query_vel (the "
                         "queries' headings) is needed with query_pos")
    out = torch.zeros(n_k, n_query, width, device=pos.device, dtype=pos.dtype)
    if n_query == 0 or n_agents == 0 or n_k == 0:
        return out
    values = vel if features is None else torch.cat([vel, features.to(vel.dtype)], dim=1)
    exclude = [k for k, kern in enumerate(kernels) if kern.exclude_self]
    rows = chunk_rows or dense_chunk_rows(n_agents, dim, n_k, pos.element_size(), memory_budget)
    # a large pass on the CPU reports its progress after every chunk (``flock.neighbors.progress``;
    # the chunks are memory-bounded, so a Ctrl-C between them is prompt either way). On CUDA the
    # loop only queues work: a count of queued chunks would be no progress.
    setting = active_progress() if pos.device.type == "cpu" else None
    if setting is not None and n_query * n_agents < setting.min_pairs:
        setting = None
    if setting is not None:
        setting.report(0, n_query * n_agents)
    for start in range(0, n_query, rows):
        stop = min(start + rows, n_query)
        q = query_pos[start:stop]                                   # [m, D]
        offset = minimum_image(pos[None, :, :] - q[:, None, :], period)  # [m, N, D]
        dist = torch.linalg.vector_norm(offset, dim=-1)             # [m, N]
        w = pair_weights(kernels, offset, dist, query_vel[start:stop] if fov else None, 0)   # [K, m, N]
        if exclude and query_index is not None:
            rows_idx = torch.arange(stop - start, device=pos.device)
            cols = query_index[start:stop]
            # no boolean indexing: it would sync with the host and break CUDA-graph capture
            valid = (cols >= 0) & (cols < n_agents)
            cols = cols.clamp(0, n_agents - 1)
            for k in exclude:
                w[k, rows_idx, cols] = torch.where(valid, torch.zeros_like(w[k, rows_idx, cols]), w[k, rows_idx, cols])
        wsum = w.sum(-1)                                            # [K, m]
        if period is None:
            spos = w @ pos                                          # [K, m, D]
        else:
            spos = q[None] * wsum[..., None] + torch.einsum("kmn,mnd->kmd", w, offset)
        out[:, start:stop, :dim] = spos
        out[:, start:stop, dim:width - 1] = w @ values
        out[:, start:stop, width - 1] = wsum
        if setting is not None:
            setting.report(stop * n_agents, n_query * n_agents)
    return out
