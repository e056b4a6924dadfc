"""Neighbor backends: one signature, one answer (up to float summation order).

``reduce_neighbors`` computes ``S[k, i] = sum_j w_k(|d_ij|) [x_j, v_j, f_j, 1]``
for K kernel channels with the chosen backend; see ``dense.py`` for the layout.

    dense   every pair, in memory-bounded row chunks (any kernel)
    grid    cell list, 3^D neighboring cells (finite support)
    numba   the fused cell-list loop compiled for the CPU with numba (finite support; CPU default)
    fused   scaled_dot_product_attention (untruncated Gaussian over positions only)
    triton  fused cell-list kernel in Triton (finite support; CUDA, or the interpreter in tests)

``progress.report_progress(callback)`` cuts large passes on the CPU backends into chunks:
progress within a step, and a Ctrl-C between chunks (``flocksim run`` turns it on).
"""

from __future__ import annotations

import importlib.util
import math

import torch

from ..kernels import Kernel, max_support
from ..names import BACKEND_NAMES as BACKENDS
from .dense import DEFAULT_MEMORY_BUDGET, dense_chunk_rows, reduce_dense

# Below this N the dense kernel's few big tensor operations beat the grid's build and
# gathers on a CPU. Measured with `flocksim bench --agents 1000,2000,5000 --backend grid`
# (standard flock, ~20 neighbors): dense 43 ms vs grid ~10 ms per step at N = 1,000 on the
# 2-core CI machine, so the grid already wins there; small N stays dense for simplicity.
GRID_MIN_AGENTS = 500
# A grid helps only when the support is small against the world: with fewer than this many
# cells per axis nearly every agent is a candidate anyway.
GRID_MIN_CELLS_PER_AXIS = 4


def is_fused_compatible(kernels: list[Kernel]) -> bool:
    """True when every channel is an untruncated Gaussian including self (mean shift)."""
    return bool(kernels) and all(k.kind == "gaussian" and k.radius is None and not k.exclude_self
                                 and k.fov is None for k in kernels)


def choose_backend(n_agents: int, kernels: list[Kernel], device: torch.device | str,
                   world_size: tuple[float, ...] | None = None) -> str:
    """The backend ``auto`` resolves to.

    Finite support, enough agents and a world several supports wide -> grid (triton on
    CUDA when triton is installed, numba on the CPU when numba is installed);
    untruncated Gaussian -> fused; otherwise dense.
    """
    device = torch.device(device)
    support = max_support(kernels)
    if math.isinf(support):
        return "fused" if is_fused_compatible(kernels) and n_agents >= 256 else "dense"
    if n_agents < GRID_MIN_AGENTS:
        return "dense"
    if world_size is not None and min(world_size) / support < GRID_MIN_CELLS_PER_AXIS:
        return "dense"
    if device.type == "cuda":
        from .triton_grid import triton_available

        if triton_available():
            return "triton"
    elif device.type == "cpu" and numba_installed():
        return "numba"
    return "grid"


def numba_installed() -> bool:
    """True when numba can be imported (checked without importing it: that takes a while)."""
    return importlib.util.find_spec("numba") is not None


def reduce_neighbors(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                     backend: str = "dense", box=None, columns: str = "all", **kwargs) -> torch.Tensor:
    """Kernel sums [K, M, 2D+F+1] with ``backend`` (keyword arguments as ``reduce_dense``).

    Args:
        box: the world box (low, high corners) as host floats, or None; the torch grid lays
            its cells out over it instead of reading the agents' bounding box back.
        columns: 'all', or 'positions' when the caller reads only the position and weight
            columns (the Triton kernel then skips the velocity and feature sums; other
            backends compute every column).
    """
    if backend == "auto":
        backend = choose_backend(pos.shape[0], kernels, pos.device)
    if backend == "dense":
        return reduce_dense(pos, vel, kernels, **kwargs)
    if backend == "grid":
        from .grid import reduce_grid
        return reduce_grid(pos, vel, kernels, box=box, **kwargs)
    if backend == "fused":
        from .fused import reduce_fused
        return reduce_fused(pos, vel, kernels, **kwargs)
    if backend == "triton":
        from .triton_grid import reduce_triton
        return reduce_triton(pos, vel, kernels, columns=columns, **kwargs)
    if backend == "numba":
        from .numba_grid import reduce_numba
        return reduce_numba(pos, vel, kernels, **kwargs)
    raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")


from .batched import reduce_dense_batched, reduce_members  # noqa: E402  (uses reduce_neighbors lazily)

__all__ = ["BACKENDS", "DEFAULT_MEMORY_BUDGET", "choose_backend", "dense_chunk_rows", "is_fused_compatible",
           "numba_installed", "reduce_dense", "reduce_dense_batched", "reduce_members", "reduce_neighbors"]
