"""CPU thread counts: flock sets torch's and numba's itself, so a user never has to.

torch's default (one intra-op thread per core, OpenMP workers that spin while they
wait) is the wrong choice for a flock step, which is many small tensor operations:
on a busy machine the workers fight every other process for the cores, and the
issue that started this module measured boids_seed 14-45x slower than with
``OMP_NUM_THREADS=1``. The numba kernel, one large parallel loop per step, does
gain from every core it gets.

Default (``default_threads``): torch one thread below ``TORCH_PARALLEL_AGENTS`` agents;
numba one thread below ``NUMBA_PARALLEL_AGENTS``, above it the cores the machine has
free (cores minus the 1-minute load average, at least 1). ``--threads N``
(``flocksim run`` / ``bench``) and ``run.threads`` in a scenario set both to N.

Measured with ``flocksim bench --agents 1000,10000,100000 --backend numba --no-baseline
--threads 1,2 --metrics on,off --repeats 3 --steps 3 --warmup 1 --device cpu``
(tools/results/threads.json; the standard flock, ms per step, torch/numba threads) on
the 2-core development box while other jobs loaded it (load average 6-9, never quiet):

    N          metrics   1/1 threads   2/2 threads
    1,000      off           9.8           50.9
    10,000     off         124.8          100.5
    100,000    off         938.0        3,991.0
    1,000      on           18.2           61.8
    10,000     on          211.5          499.9
    100,000    on        3,332.5        4,316.7

On a loaded machine a second thread loses up to 4x (each parallel region waits for
its slowest worker, and a busy core makes every worker slow); below ~10,000 agents
it loses even when the other core is free, since a step is then ~1 ms of small
loops. On a quiet 2-core machine the numba loop itself scales ~1.8x from 1 to 2
threads at 100,000 agents, so above ``NUMBA_PARALLEL_AGENTS`` the default takes the
cores that the load average says are free. No quiet-machine run was possible for
this table; re-measure there with the command above.
"""

from __future__ import annotations

import os

# below this many agents the step's tensor operations are too small to split across threads
TORCH_PARALLEL_AGENTS = 200_000
# below this many agents the numba loop is too short for a second thread to pay (table above)
NUMBA_PARALLEL_AGENTS = 20_000


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not busy with other work: cores minus the 1-minute load average, at least 1."""
    cores = cpu_count()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return cores
    return int(min(cores, max(1, round(cores - load))))


def default_threads(n_agents: int, backend: str = "auto") -> tuple[int, int]:
    """(torch threads, numba threads) flock uses by default for ``n_agents`` on ``backend``
    (the backend is accepted for the day a backend needs its own rule; none does yet)."""
    torch_threads = free_cores() if n_agents >= TORCH_PARALLEL_AGENTS else 1
    numba_threads = free_cores() if n_agents >= NUMBA_PARALLEL_AGENTS else 1
    return torch_threads, numba_threads


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
    if t_numba > 0:
        import numba

        numba.set_num_threads(t_numba)
    # numba's first set_num_threads starts its OpenMP pool, which resets the process's OpenMP
    # thread count (torch's read 2 after it on the 2-core box): torch's count is set after it
    if torch.get_num_threads() != t_torch:
        torch.set_num_threads(t_torch)
    return t_torch, t_numba


def _numba_max_threads() -> int:
    """numba's thread pool size (0 when numba is absent); imports numba only when installed."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        return 0
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)
