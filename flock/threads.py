"""CPU thread counts: flock sets torch's and numba's itself, so a user never has to.

torch's default (one intra-op thread per core, OpenMP workers that spin while they
wait) is the wrong choice for a flock step, which is many small tensor operations:
on a busy machine the workers fight every other process for the cores, and the
issue that started this module measured boids_seed 14-45x slower than with
``OMP_NUM_THREADS=1``. The numba kernel, one large parallel loop per step, does
gain from every core it gets.

Default (``default_threads``): torch one thread below ``TORCH_PARALLEL_AGENTS``
agents, else all cores; numba all cores. ``--threads N`` (``flocksim run`` /
``bench``) and ``run.threads`` in a scenario set both to N.

Measured with ``python tools/bench_threads.py --agents 1000,10000,100000`` (the
standard flock, numba backend, metrics off, median of 5 x 5 steps) on the 2-core
development box while ~8 other agents' jobs loaded it (load average 7-11, so it was
never quiet; the figures are ms per step, threads torch/numba):

    N          1/1      1/2      2/2
    1,000      see tools/results/threads.json
    10,000
    100,000

(The table is filled from the JSON the tool writes; see the README's benchmark section.)
"""

from __future__ import annotations

import os

# below this many agents the step's tensor operations are too small to split across threads
TORCH_PARALLEL_AGENTS = 200_000


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(n_agents: int, backend: str = "auto") -> tuple[int, int]:
    """(torch threads, numba threads) flock uses by default for ``n_agents`` on ``backend``."""
    cores = cpu_count()
    torch_threads = cores if n_agents >= TORCH_PARALLEL_AGENTS else 1
    return torch_threads, cores


def set_threads(threads: int | None = None, *, n_agents: int = 0, backend: str = "auto") -> tuple[int, int]:
    """Set torch's and numba's CPU thread counts; returns (torch, numba) as set.

    Args:
        threads: both counts (>= 1), or None for ``default_threads(n_agents, backend)``.
        n_agents: agents of the run (the default depends on it).
        backend: the neighbor backend in use.

    Raises:
        ValueError: ``threads`` < 1.
    """
    import torch

    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    t_torch, t_numba = (int(threads), int(threads)) if threads is not None else default_threads(n_agents, backend)
    t_numba = min(t_numba, _numba_max_threads())
    if torch.get_num_threads() != t_torch:
        torch.set_num_threads(t_torch)
    if t_numba > 0:
        import numba

        numba.set_num_threads(t_numba)
    return t_torch, t_numba


def _numba_max_threads() -> int:
    """numba's thread pool size (0 when numba is absent); imports numba only when installed."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        return 0
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)
