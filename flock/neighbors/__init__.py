"""Neighbor backends: one signature, one answer (up to float summation order).

``reduce_neighbors`` computes ``S[k, i] = sum_j w_k(|d_ij|) [x_j, v_j, f_j, 1]``
for K kernel channels with the chosen backend; see ``dense.py`` for the layout.
"""

from __future__ import annotations

import torch

from ..kernels import Kernel
from .dense import DEFAULT_MEMORY_BUDGET, dense_chunk_rows, reduce_dense

BACKENDS = ("auto", "dense", "grid", "fused")


def choose_backend(n_agents: int, kernels: list[Kernel], device: torch.device | str,
                   world_size: tuple[float, ...] | None = None) -> str:
    """The backend ``auto`` resolves to for this problem (only dense exists so far)."""
    return "dense"


def reduce_neighbors(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                     backend: str = "dense", **kwargs) -> torch.Tensor:
    """Kernel sums [K, M, 2D+F+1] with ``backend`` (keyword arguments as ``reduce_dense``)."""
    if backend == "auto":
        backend = choose_backend(pos.shape[0], kernels, pos.device)
    if backend == "dense":
        return reduce_dense(pos, vel, kernels, **kwargs)
    if backend == "grid":
        from .grid import reduce_grid
        return reduce_grid(pos, vel, kernels, **kwargs)
    if backend == "fused":
        from .fused import reduce_fused
        return reduce_fused(pos, vel, kernels, **kwargs)
    raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")


__all__ = ["BACKENDS", "DEFAULT_MEMORY_BUDGET", "choose_backend", "dense_chunk_rows",
           "reduce_dense", "reduce_neighbors"]
