"""FlockState: where every agent is and how it moves, as tensors on one device.

Nothing per-agent lives in Python objects: positions, velocities and group ids are
three tensors that share a device; positions and velocities share a dtype.
"""

from __future__ import annotations

import torch

from .errors import ScenarioError


class FlockState:
    """Tensors of one flock.

    Args:
        pos: [N, D] float, world units. D is 2 or 3.
        vel: [N, D] float, world units per time unit.
        group: [N] int64 group (species) id; zeros when omitted.

    ``device`` and ``dtype`` are read from ``pos``. Assigning ``state.pos`` or
    ``state.vel`` keeps the shape and converts the value to the state's device
    and dtype, so a run can start from positions a user supplies.
    """

    __slots__ = ("_pos", "_vel", "_group")

    def __init__(self, *, pos: torch.Tensor, vel: torch.Tensor | None = None,
                 group: torch.Tensor | None = None):
        pos = torch.as_tensor(pos)
        if not pos.is_floating_point():
            pos = pos.to(torch.get_default_dtype())
        if pos.ndim != 2 or pos.shape[1] not in (2, 3):
            raise ScenarioError(f"state.pos: expected shape [N, 2] or [N, 3], got {list(pos.shape)}")
        self._pos = pos
        if vel is None:
            vel = torch.zeros_like(pos)
        self._vel = self._convert("vel", vel)
        if group is None:
            group = torch.zeros(pos.shape[0], dtype=torch.int64, device=pos.device)
        group = torch.as_tensor(group, device=pos.device).to(torch.int64)
        if group.shape != (pos.shape[0],):
            raise ScenarioError(f"state.group: expected shape [{pos.shape[0]}], got {list(group.shape)}")
        self._group = group

    def _convert(self, name: str, value) -> torch.Tensor:
        value = torch.as_tensor(value).to(device=self._pos.device, dtype=self._pos.dtype)
        if value.shape != self._pos.shape:
            raise ScenarioError(
                f"state.{name}: expected shape {list(self._pos.shape)} (same as pos), "
                f"got {list(value.shape)}")
        return value

    @property
    def pos(self) -> torch.Tensor:
        """[N, D] positions, world units."""
        return self._pos

    @pos.setter
    def pos(self, value) -> None:
        self._pos = self._convert("pos", value)

    @property
    def vel(self) -> torch.Tensor:
        """[N, D] velocities, world units per time unit."""
        return self._vel

    @vel.setter
    def vel(self, value) -> None:
        self._vel = self._convert("vel", value)

    @property
    def group(self) -> torch.Tensor:
        """[N] int64 group ids."""
        return self._group

    @group.setter
    def group(self, value) -> None:
        value = torch.as_tensor(value, device=self._pos.device).to(torch.int64)
        if value.shape != (self.n_agents,):
            raise ScenarioError(f"state.group: expected shape [{self.n_agents}], got {list(value.shape)}")
        self._group = value

    @property
    def n_agents(self) -> int:
        return self._pos.shape[0]

    @property
    def dim(self) -> int:
        return self._pos.shape[1]

    @property
    def device(self) -> torch.device:
        return self._pos.device

    @property
    def dtype(self) -> torch.dtype:
        return self._pos.dtype

    def to(self, device=None, dtype=None) -> "FlockState":
        """A copy on another device and/or float dtype."""
        return FlockState(pos=self._pos.to(device=device, dtype=dtype),
                          vel=self._vel.to(device=device, dtype=dtype),
                          group=self._group.to(device=device))

    def clone(self) -> "FlockState":
        return FlockState(pos=self._pos.clone(), vel=self._vel.clone(), group=self._group.clone())

    def concat(self, other: "FlockState") -> "FlockState":
        """This state with ``other``'s agents appended (converted to this device/dtype)."""
        other = other.to(self.device, self.dtype)
        return FlockState(pos=torch.cat([self._pos, other.pos]), vel=torch.cat([self._vel, other.vel]),
                          group=torch.cat([self._group, other.group]))

    def replace(self, *, pos=None, vel=None) -> "FlockState":
        """A new state sharing the group ids, with new pos and/or vel tensors (no copy)."""
        new = FlockState.__new__(FlockState)
        new._pos = self._pos if pos is None else pos
        new._vel = self._vel if vel is None else vel
        new._group = self._group
        return new

    def __repr__(self) -> str:
        return (f"FlockState(n_agents={self.n_agents}, dim={self.dim}, "
                f"device={self.device}, dtype={self.dtype})")
