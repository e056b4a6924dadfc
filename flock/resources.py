"""Resources a run needs: the device it may use and the memory it will take, checked before
anything is allocated, so a run that cannot fit is refused with the estimate and the limit
instead of dying in the allocator.
"""

from __future__ import annotations

import os

import torch

from .formulations import rule_class
from .errors import ScenarioError
from .neighbors.dense import DEFAULT_MEMORY_BUDGET

_ITEMSIZE = {"float32": 4, "float64": 8}


def check_device(text: str, *, where: str = "--device") -> str:
    """``text`` if it names a device flock runs on ('auto', 'cpu', 'cuda', 'cuda:N' with that
    many CUDA devices present), else a ``ScenarioError`` naming ``where`` and the choices."""
    value = str(text).strip()
    if value in ("auto", "cpu"):
        return value
    kind, _, index = value.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ScenarioError(f"{where}: expected 'auto', 'cpu' or 'cuda[:N]', got {value!r}"
                            + ("; flock runs on CPU and CUDA only" if kind in ("mps", "meta", "xpu", "hip") else ""))
    if not torch.cuda.is_available():
        raise ScenarioError(f"{where}: {value!r} was asked for but this torch ({torch.__version__}) sees no CUDA "
                            "device; use cpu or auto")
    if index and int(index) >= torch.cuda.device_count():
        raise ScenarioError(f"{where}: {value!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return value


def count_agents(scenario) -> int:
    """Agents a scenario starts with, over every group (a file's rows count as read by validation)."""
    groups = [scenario.agents, *(scenario.species or [])]
    total = 0
    for agents in groups:
        if agents.count is not None:
            total += agents.count
        else:
            pos = agents.position
            blobs = len(pos.centers) if getattr(pos, "centers", None) is not None else getattr(pos, "n_blobs", None)
            if blobs is not None:
                total += blobs * pos.per_blob
    return total


def estimate_run_memory(scenario, backend: str | None = None, device: str | torch.device | None = None) -> int:
    """Bytes a run of ``scenario`` needs at its peak, an upper estimate.

    Per agent: the state (pos, vel [N, D], group [N] int64), the kernel sums [K, N, 2D+1], the
    step's temporaries (about eight [N, D] tensors), the start drawn in float64 on the host,
    and the grid's cell ids and sort orders; plus one neighbor chunk of
    ``DEFAULT_MEMORY_BUDGET`` bytes (dense, grid and fused all chunk to that budget).

    Args:
        scenario: a validated ``Scenario``.
        backend: the backend (None: the scenario's ``run.backend``); only the grid adds more.
        device: unused by the estimate today (the same bytes on every device); the limit
            it is compared with is the device's, see ``memory_limit``.
    """
    del device
    n = count_agents(scenario)
    dim = scenario.world.dims
    item = _ITEMSIZE[scenario.run.dtype]
    kernels = 1 if rule_class(scenario).converges else 3 + 2 * len(scenario.species or [])
    per_agent = item * (2 * dim + kernels * (2 * dim + 1) + 8 * dim) + 8 + 8 * 2 * dim
    if (backend or scenario.run.backend) in ("grid", "triton", "auto"):
        per_agent += 8 * 4
    # one neighbor chunk: at most the budget, less when all pairs fit in it
    chunk = min(DEFAULT_MEMORY_BUDGET, n * n * item * 2 * (dim + 1 + kernels))
    return int(n * per_agent + chunk)


def memory_limit(device: str | torch.device | None) -> tuple[int, str]:
    """(bytes a run may use on ``device``, how that was found): free CUDA memory, or the host's
    available memory (``/proc/meminfo`` MemAvailable, else physical pages)."""
    dev = torch.device("cuda" if str(device) == "auto" and torch.cuda.is_available()
                       else ("cpu" if device in (None, "auto") else device))
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free), f"free memory on {dev}"
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available host memory"
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical host memory"
    except (ValueError, OSError, AttributeError):
        return 2**63 - 1, "unknown host memory"


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**28 else f"{n / 2**20:,.0f} MiB"


def check_run_memory(scenario, backend: str | None = None, device: str | torch.device | None = None,
                     *, origin: str = "", members: int = 1) -> int:
    """The estimate (times ``members`` for an ensemble), or a ``ScenarioError`` with the
    estimate and the limit when it cannot fit."""
    need = estimate_run_memory(scenario, backend, device) * max(1, members)
    limit, what = memory_limit(device if device is not None else scenario.run.device)
    if need > limit:
        prefix = f"{origin}: " if origin else ""
        who = f"{members} x {count_agents(scenario):,}" if members > 1 else f"{count_agents(scenario):,}"
        raise ScenarioError(f"{prefix}agents.count: {who} agents need about {_gib(need)}, "
                            f"more than the {_gib(limit)} of {what}; lower the count")
    return need


__all__ = ["check_device", "check_run_memory", "count_agents", "estimate_run_memory", "memory_limit"]
