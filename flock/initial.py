"""Initial positions and velocities from a scenario's ``agents`` section.

Random draws use a CPU ``torch.Generator`` seeded from the run's seed and are
then moved to the simulation's device, so the same seed gives the same start on
every device.
"""

from __future__ import annotations

import torch

from .errors import ScenarioError
from .input_files import read_array
from .scenario_schema import BlobsInit, FileInit, NormalInit, RandomDirectionInit, Scenario, UniformInit, ZeroInit
from .state import FlockState


def _blob_centers(init: BlobsInit, dim: int, gen: torch.Generator, where: str) -> torch.Tensor:
    if init.centers is not None:
        return torch.tensor(init.centers, dtype=torch.float64)
    low = torch.tensor(init.center_low if init.center_low is not None else [-35.0] * dim, dtype=torch.float64)
    high = torch.tensor(init.center_high if init.center_high is not None else [35.0] * dim, dtype=torch.float64)
    centers: list[torch.Tensor] = []
    for _ in range(10000):
        c = low + (high - low) * torch.rand(dim, generator=gen, dtype=torch.float64)
        if all(torch.linalg.vector_norm(c - o) >= init.min_separation for o in centers):
            centers.append(c)
            if len(centers) == init.n_blobs:
                return torch.stack(centers)
    raise ScenarioError(f"{where}.min_separation: cannot place {init.n_blobs} centres {init.min_separation} apart "
                        f"in [{low.tolist()}, {high.tolist()}]; lower min_separation or widen the box")


def _uniform(init: UniformInit, n: int, low_default, high_default, gen) -> torch.Tensor:
    low = torch.tensor(init.low if init.low is not None else low_default, dtype=torch.float64)
    high = torch.tensor(init.high if init.high is not None else high_default, dtype=torch.float64)
    return low + (high - low) * torch.rand(n, len(low), generator=gen, dtype=torch.float64)


def initial_state(scenario: Scenario, *, seed: int, device: torch.device, dtype: torch.dtype) -> tuple[FlockState, dict]:
    """The scenario's starting ``FlockState`` and facts about it (``blob_centers``, ``blob_ids``)."""
    gen = torch.Generator().manual_seed(seed)
    dim = scenario.world.dims
    origin = scenario.world.origin or [0.0] * dim
    top = [o + s for o, s in zip(origin, scenario.world.size)]
    info: dict = {}
    spec = scenario.agents.position
    if isinstance(spec, UniformInit):
        pos = _uniform(spec, scenario.agents.count, origin, top, gen)
    elif isinstance(spec, BlobsInit):
        centers = _blob_centers(spec, dim, gen, "agents.position")
        std = float(spec.variance) ** 0.5
        pos = torch.cat([c + std * torch.randn(spec.per_blob, dim, generator=gen, dtype=torch.float64)
                         for c in centers])
        info["blob_centers"] = centers
        info["blob_ids"] = torch.arange(len(centers)).repeat_interleave(spec.per_blob)
    else:
        arr = read_array(scenario.base_dir() / spec.path, where="agents.position.path")
        if arr.shape[1] != dim:
            raise ScenarioError(f"{spec.path}: agents.position.path: expected {dim} columns (world.dims), got {arr.shape[1]}")
        if scenario.agents.count is not None and scenario.agents.count != arr.shape[0]:
            raise ScenarioError(f"{spec.path}: agents.count: the file has {arr.shape[0]} rows, the scenario says {scenario.agents.count}")
        pos = torch.from_numpy(arr)
    n = pos.shape[0]
    vspec = scenario.agents.velocity
    if isinstance(vspec, ZeroInit):
        vel = torch.zeros(n, dim, dtype=torch.float64)
    elif isinstance(vspec, UniformInit):
        vel = _uniform(vspec, n, None, None, gen)
    elif isinstance(vspec, NormalInit):
        vel = vspec.std * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    elif isinstance(vspec, RandomDirectionInit):
        d = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        vel = vspec.speed * d / torch.linalg.vector_norm(d, dim=1, keepdim=True).clamp_min(1e-12)
    else:
        assert isinstance(vspec, FileInit)
        arr = read_array(scenario.base_dir() / vspec.path, where="agents.velocity.path")
        if arr.shape != (n, dim):
            raise ScenarioError(f"{vspec.path}: agents.velocity.path: expected shape [{n}, {dim}], got {list(arr.shape)}")
        vel = torch.from_numpy(arr)
    state = FlockState(pos=pos.to(device=device, dtype=dtype), vel=vel.to(device=device, dtype=dtype))
    return state, info
