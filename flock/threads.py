"""CPU thread counts: flock sets torch's and numba's itself, so a user never has to.

torch's default (one intra-op thread per core, OpenMP workers that spin while they
wait) is the wrong choice for a flock step, which is many small tensor operations:
on a busy machine the workers fight every other process for the cores, and the
issue that started this module measured boids_seed 14-45x slower than with
``OMP_NUM_THREADS=1``. The numba kernel, one large parallel loop per step, does
gain from every core it gets.

Default (``default_threads``): torch one thread below ``TORCH_PARALLEL_AGENTS`` agents;
numba one thread below ``NUMBA_PARALLEL_AGENTS``, above it the cores the machine has
free (``free_cores``: cores minus the CPU time other processes use, sampled for 0.1 s, at
least 1). ``--threads N``
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
loops. On the quiet box (2026-12-02, `flocksim bench --agents 100000,1000000 --backend
numba --metrics off --threads 1,2 --repeats 3 --steps 3 --warmup 1 --no-baseline`,
tools/results/bench_numba_compiled.json) two threads took 88 vs 141 ms/step at 100,000
agents and 867 vs 1,643 ms/step at 1,000,000, and at 1,000 and 10,000 agents 2.2-2.3 vs
3.6-4.3 and 13.2-15.8 vs 15.4-18.0 ms/step (`--agents 1000,10000 --threads 1,2,1,2
--repeats 5 --steps 5 --warmup 2`): the loaded table's loss came from the busy cores, not
from the size. So the default takes the cores ``free_cores`` finds free, at every size for
numba, from ``TORCH_PARALLEL_AGENTS`` for torch; a busy machine gets one thread.
"""

from __future__ import annotations

import os

# below this many agents the step's tensor operations are too small to split across threads
# (torch does not split [N, D] elementwise work under ~32k elements anyway)
TORCH_PARALLEL_AGENTS = 100_000
# below this many agents numba runs one thread; on the quiet box a second free core made the
# numba step faster at every N measured (1,000 agents: 2.2-2.3 vs 3.6-4.3 ms), and a busy
# machine's cores are not free (``free_cores``), so every size may take them
NUMBA_PARALLEL_AGENTS = 1


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# how long free_cores samples the machine's CPU time, and how long it reuses a sample
BUSY_SAMPLE_SECONDS = 0.1
BUSY_SAMPLE_REUSE_SECONDS = 5.0
_last_sample: tuple[float, int] | None = None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]          # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def busy_cores(seconds: float = BUSY_SAMPLE_SECONDS) -> float | None:
    """Cores other processes keep busy now: CPU busy time over ``seconds`` (this process sleeps
    meanwhile) times the machine's CPU count; None where /proc/stat is missing."""
    import time

    first = _cpu_times()
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not busy with other work, at least 1.

    Measured, not guessed from the 1-minute load average: that average counts this run's own
    work of the minute before (and a previous benchmark's), and on the quiet 2-core box it made
    the default one thread where two were 1.9x faster (1,000,000 agents). So the machine's CPU
    time is sampled for ``BUSY_SAMPLE_SECONDS`` (``busy_cores``; the sample is reused for
    ``BUSY_SAMPLE_REUSE_SECONDS``); the load average stands in where /proc/stat is missing.
    """
    import time

    global _last_sample
    now = time.monotonic()
    if _last_sample is not None and now - _last_sample[0] < BUSY_SAMPLE_REUSE_SECONDS:
        return _last_sample[1]
    cores = cpu_count()
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - not Unix
            busy = 0.0
    free = int(min(cores, max(1, round(cores - busy))))
    _last_sample = (time.monotonic(), free)
    return free


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
