"""Cell geometry without host synchronisation: cell size, counts, strides, cell ids, counting sort.

A cell list has two phases, as JAX-MD's neighbor lists (allocate / update):

- **build** (``plan_cells``, host side, once): from host numbers only (the support,
  the world's box, the agent count, an optional bound of an open world) it fixes
  the cells per axis, the strides, the device constants and the buffers. Nothing
  it computes depends on where the agents are now, except that an open world
  without a bound takes its first bounding box (one host read, at build only).
- **update** (``CellPlan.bin``, device side, every step): cell ids, histogram,
  exclusive scan and the stable cell order, with no host read at all: no
  ``.item()``, ``.tolist()``, ``float()``, ``bincount`` (which reads its input's
  maximum on CUDA), no host-to-device copy. Whatever the build phase assumed and
  the agents broke is recorded in a device flag (``CellPlan.overflow``), which the
  caller reads every k steps (``CellPlan.overflowed()``, one sync) and rebuilds on.

Cell layout per world:

- periodic box [0, L)^D: floor(L / width) cells per axis, at least 1 (they tile
  the box; fixed for the run). Cell widths are L / n >= width.
- open world with a bound (``bounds``, [2, D] host numbers): cells cover the
  bound; points outside clamp into the edge cells (still exact: clamping never
  separates two points closer than a cell width).
- open world without a bound: a fixed number of cells per axis (sized at build
  from the first bounding box, capped by ``max_cells``) over the bounding box kept
  on the device, recomputed every update; cells widen as the flock spreads (always
  exact, slower). Overflow flag ``OVERFLOW_WIDENED`` when they are more than
  twice as wide as planned.

``width`` is the support plus a float rounding margin (``4 eps (support + scale)``
with ``scale`` the coordinates' magnitude), so every pair the dense backend
weighs (offsets computed in the input dtype) is a candidate. The margin's scale
is fixed at build from the box (periodic: positions assumed in [-L, 2L), flag
``OVERFLOW_OUTSIDE`` otherwise) or computed on the device (open world).

Cell (c_0, c_1, c_2) of member m has id m * n_total + c_0 + n_0 (c_1 + n_1 c_2):
the first axis is contiguous, so the three cells of a row along it are one
contiguous strip of the cell-sorted agents.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

OVERFLOW_OUTSIDE = 1   # periodic world: a position beyond [-L, 2L) (the rounding margin assumed it)
OVERFLOW_WIDENED = 2   # open world: the bounding box outgrew the planned cells (cells > 2x planned width)


@functools.lru_cache(maxsize=512)
def device_constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A cached small constant tensor on ``device`` (one host-to-device copy per values/device/dtype,
    at build time). Callers never modify it in place."""
    return torch.tensor(values, device=device, dtype=dtype)


def rounding_margin(dtype: torch.dtype, support: float, scale: float) -> float:
    """Width added to cells so float rounding never hides a neighbor (``grid._rounding_margin``).

    ``reduce_dense`` computes x_j - q_i (and the minimum image) in the input dtype, off
    by up to eps * |coordinates|; cells wider than the support by a few of those catch
    every pair the dense backend weighs.
    """
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float32).eps
    return 4.0 * eps * (support + scale)


def strides(n_cells) -> tuple[int, ...]:
    """Linear-id strides of cells per axis ``n_cells``: (1, n_0, n_0 n_1)."""
    out, s = [], 1
    for n in n_cells:
        out.append(s)
        s *= n
    return tuple(out)


def host_values(values, dim: int, what: str) -> tuple[float, ...]:
    """``values`` ([dim] sequence or tensor) as host floats; a tensor is read once per object.

    Reading a CUDA tensor is a host sync, so the floats of a tensor are remembered by
    object identity and version counter (``World`` hands out one cached tensor per
    box, see ``world._constant``): the read happens at build time, not every step.
    """
    if isinstance(values, torch.Tensor):
        key = id(values)
        hit = _HOST_VALUES.get(key)
        if hit is not None and hit[0]() is values and hit[1] == values._version:
            return hit[2]
        out = tuple(float(v) for v in values.detach().reshape(-1).tolist())
        _remember(values, out)
    else:
        out = tuple(float(v) for v in values)
    if len(out) != dim:
        raise ValueError(f"{what}: expected {dim} values (one per axis), got {len(out)}")
    return out


_HOST_VALUES: dict[int, tuple] = {}


def _remember(t: torch.Tensor, out: tuple) -> None:
    import weakref

    key = id(t)
    try:
        ref = weakref.ref(t, lambda _r, k=key: _HOST_VALUES.pop(k, None))
    except TypeError:  # pragma: no cover - tensors support weak references
        return
    _HOST_VALUES[key] = (ref, t._version, out)


@dataclass
class CellPlan:
    """The build phase of a cell list: fixed cells, device constants, buffers, an overflow flag.

    Attributes:
        dim: D. n_cells: cells per axis of one member (len D). n_members: members, each
            with its own copy of the cells. periodic: cells tile a periodic box.
        period: [D] host box lengths (periodic), or None.
        bounds: [2, D] host corners of a fixed open-world bound, or None (bounding box on
            the device each update).
        width: planned cell width (support + rounding margin), world units.
        dtype, device: of the positions binned.
        overflow: [1] int32 device flag, OR of ``OVERFLOW_*`` bits since the last reset.
    """

    dim: int
    n_cells: tuple[int, ...]
    n_members: int
    periodic: bool
    period: tuple[float, ...] | None
    bounds: tuple[tuple[float, ...], tuple[float, ...]] | None
    width: float
    support: float
    dtype: torch.dtype
    device: torch.device
    overflow: torch.Tensor

    @property
    def n_total(self) -> int:
        """Cells of one member."""
        return math.prod(self.n_cells)

    @property
    def n_bins(self) -> int:
        """Cells of all members."""
        return self.n_members * self.n_total

    def _const(self, values, dtype) -> torch.Tensor:
        return device_constant(tuple(values), self.device, dtype)

    def period_tensor(self, dtype: torch.dtype) -> torch.Tensor:
        """[D] box lengths on the device (ones in an open world: the kernel ignores them)."""
        return self._const(self.period if self.periodic else (1.0,) * self.dim, dtype)

    def cell_ids(self, x: torch.Tensor) -> torch.Tensor:
        """[...] int64 local cell ids of points ``x`` ([..., D] float, world units), no host read."""
        n = self._const(self.n_cells, torch.int64)
        if self.periodic:
            size = self._const([L / k for L, k in zip(self.period, self.n_cells)], torch.float64)
            c = torch.remainder(torch.floor(x.to(torch.float64) / size).to(torch.int64), n)
        else:
            origin, size = self._open_frame(x)
            c = torch.floor((x.to(torch.float64) - origin) / size).to(torch.int64)
            c = torch.minimum(c.clamp_min(0), n - 1)
        return (c * self._const(strides(self.n_cells), torch.int64)).sum(-1)

    def _open_frame(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(origin [D] float64, cell widths [D] float64) of an open world, on the device."""
        if self.bounds is not None:
            return (self._const(self.bounds[0], torch.float64),
                    self._const([self.width] * self.dim, torch.float64))
        return self._frame if self._frame is not None else self.frame(x)

    _frame = None

    def frame(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fix this update's open-world frame from ``points`` ([P, D]): the device bounding box.

        Cells keep their count; their width is max(planned width, extent / n) so they
        cover the box. Sets ``OVERFLOW_WIDENED`` when that is over twice the plan.
        """
        if self.periodic or self.bounds is not None:
            return self._open_frame(points)
        p = points.reshape(-1, self.dim).to(torch.float64)
        lo, hi = torch.aminmax(p, dim=0) if p.shape[0] else (torch.zeros(self.dim, dtype=torch.float64,
                                                                          device=p.device),) * 2
        n = self._const(self.n_cells, torch.float64)
        scale = torch.maximum(lo.abs().amax(), hi.abs().amax())
        floor_w = self.support + rounding_margin(self.dtype, self.support, 0.0) + 4.0 * _eps(self.dtype) * scale
        width = torch.maximum((hi - lo) / n, floor_w)
        widened = (width > 2.0 * self.width).any().to(torch.int32) * OVERFLOW_WIDENED
        self.overflow.bitwise_or_(widened.reshape(1))
        self._frame = (lo, width)
        return self._frame

    def check_outside(self, x: torch.Tensor) -> None:
        """Periodic world: flag ``OVERFLOW_OUTSIDE`` when a coordinate lies beyond [-L, 2L)."""
        if not self.periodic or x.numel() == 0:
            return
        per = self._const(self.period, torch.float64)
        xd = x.reshape(-1, self.dim).to(torch.float64)
        bad = ((xd < -per) | (xd >= 2.0 * per)).any().to(torch.int32) * OVERFLOW_OUTSIDE
        self.overflow.bitwise_or_(bad.reshape(1))

    def bin(self, pos: torch.Tensor, member: torch.Tensor | None = None,
            frame_points: torch.Tensor | None = None) -> "CellList":
        """The update phase: bin ``pos`` ([N, D] float) and sort it by cell, on the device.

        Args:
            member: [N] int64 member of every agent (``n_members`` > 1), or None.
            frame_points: [P, D] points whose bounding box frames an open world without
                a bound (default ``pos``; queries are included by passing agents and queries).
        """
        self._frame = None
        if not self.periodic and self.bounds is None:
            self.frame(pos if frame_points is None else frame_points)
        self.check_outside(pos if frame_points is None else frame_points)
        cell = self.cell_ids(pos)
        if member is not None:
            cell = cell + member.to(torch.int64) * self.n_total
        order, ptr = counting_sort(cell, self.n_bins)
        return CellList(plan=self, cell=cell, order=order, ptr=ptr)

    def overflowed(self) -> int:
        """The overflow bits (0: the plan still fits). One host read: call it every k steps."""
        return int(self.overflow.item())

    def reset_overflow(self) -> None:
        self.overflow.zero_()


def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class CellList:
    """Agents binned by a ``CellPlan`` and sorted by cell (the update phase's output).

    Attributes:
        plan: the plan that binned them.
        cell: [N] int64 cell id of every agent (member * n_total + local id).
        order: [N] int64 agent indices sorted by cell (stable).
        ptr: [n_bins + 1] int64 first sorted slot of every cell.
    """

    plan: CellPlan
    cell: torch.Tensor
    order: torch.Tensor
    ptr: torch.Tensor


def plan_cells(support: float, dim: int, *, dtype: torch.dtype, device: torch.device | str,
               period=None, bounds=None, n_points: int = 0, n_members: int = 1,
               max_cells: int | None = None, points: torch.Tensor | None = None,
               caller: str = "plan_cells") -> CellPlan:
    """The build phase: cells at least ``support`` wide (plus a rounding margin) for one member.

    Args:
        support: largest kernel support, world units, finite and > 0.
        dim: D (2 or 3).
        dtype, device: of the positions that will be binned.
        period: [D] box lengths of a periodic world (floats or a tensor), or None.
        bounds: [2, D] corners of an open world to bin over (floats or a tensor), or None.
        n_points: points per member (sizes the default cap on cells, 2 P + 64 per member).
        n_members: members, each in its own copy of the cells.
        max_cells: cap on cells per member; cells grow wider past it.
        points: [P, D] open world without ``bounds``: the points whose bounding box sizes
            the cell counts (one host read, here only).
        caller: names the function in error messages.
    """
    if not (support > 0 and math.isfinite(support)):
        raise ValueError(f"{caller}: cell size: expected a finite number > 0, got {support!r}")
    device = torch.device(device)
    if max_cells is None:
        max_cells = 2 * n_points + 64
    per = host_values(period, dim, f"{caller}: period") if period is not None else None
    bnd = None
    if per is not None:
        lo_b, hi_b = [0.0] * dim, list(per)
        scale = 3.0 * max(per)
    else:
        if bounds is not None:
            flat = host_values(bounds, 2 * dim, f"{caller}: bounds")
            lo_b, hi_b = list(flat[:dim]), list(flat[dim:])
            bnd = (tuple(lo_b), tuple(hi_b))
        elif points is not None and points.numel():
            mm = torch.stack([points.amin(0), points.amax(0)]).to(torch.float64).cpu()
            lo_b, hi_b = mm[0].tolist(), mm[1].tolist()
        else:
            lo_b = hi_b = [0.0] * dim
        scale = max(max(abs(v) for v in lo_b + hi_b), max(h - l for l, h in zip(lo_b, hi_b)))
    extent = [max(h - l, 0.0) for l, h in zip(lo_b, hi_b)]
    width, n_cells = fit_cells(support + rounding_margin(dtype, support, scale), per, extent, max_cells)
    if math.prod(n_cells) * n_members >= 2**31 - 1:
        raise ValueError(f"{caller}: {math.prod(n_cells) * n_members} cells do not fit int32 ids; "
                         "pass a smaller max_cells")
    overflow = torch.zeros(1, device=device, dtype=torch.int32)
    return CellPlan(dim=dim, n_cells=tuple(n_cells), n_members=n_members, periodic=per is not None,
                    period=per, bounds=bnd, width=width, support=float(support), dtype=dtype, device=device,
                    overflow=overflow)


def cell_list_support(kernels, backend: str) -> float:
    """The largest support of ``kernels`` (the cell width every cell list needs), or a
    ValueError naming ``backend`` when one is unbounded (an untruncated Gaussian)."""
    for kern in kernels:
        if not math.isfinite(kern.support):
            raise ValueError(
                f"{backend} backend: kernel {kern.kind!r} (bandwidth={kern.bandwidth}) has unbounded support, "
                "so no cell list can hold its neighbors; use backend='dense' or 'fused', or give the "
                "kernel a truncation radius (e.g. radius=3 * bandwidth)")
    return max((k.support for k in kernels), default=0.0)


def fit_cells(width: float, period, extent, max_cells: int) -> tuple[float, list[int]]:
    """Cell width and cells per axis: at least ``width`` wide, at most ``max_cells`` cells in all.

    The one rule both cell lists (the torch grid and this Triton plan) follow.

    Args:
        width: smallest cell width (support plus rounding margin), world units.
        period: [D] box lengths of a periodic world (floor(L / w) cells per axis, at least 1,
            tiling the box), or None.
        extent: [D] extent of an open world's bounds (floor(e / w) + 1 cells per axis).
        max_cells: cap on the product of the counts; cells widen by >= 5% until it holds.
    """
    def count(w):
        if period is not None:
            return [max(1, math.floor(L / w)) for L in period]
        return [max(1, math.floor(e / w) + 1) for e in extent]

    dim = len(period) if period is not None else len(extent)
    n_cells = count(width)
    while math.prod(n_cells) > max_cells:
        width *= max(1.05, (math.prod(n_cells) / max_cells) ** (1.0 / dim))
        n_cells = count(width)
    return width, n_cells


def counting_sort(keys: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable sort of integer keys by bin, with no host read.

    Args:
        keys: [N] int keys in [0, n_bins).
        n_bins: number of bins (a host int fixed at build).

    Returns:
        (order [N] int64, ptr [n_bins + 1] int64): ``order`` equals
        ``torch.argsort(keys, stable=True)``; bin b holds ``order[ptr[b]:ptr[b + 1]]``.

    The histogram is a ``scatter_add_`` into a buffer of ``n_bins`` (atomics on CUDA;
    ``torch.bincount`` would read the keys' maximum on the host), the exclusive scan a
    ``cumsum``. The permutation is a stable radix sort of 32-bit keys (``torch.sort``:
    linear in N, deterministic, no host read). An atomic scatter would hand out slots in a
    run-dependent order, and making it stable costs sum over cells of count^2 (a collapsed
    flock: N^2), a cost only a host read of the counts could guard.
    """
    device = keys.device
    n = keys.shape[0]
    counts = torch.zeros(n_bins, device=device, dtype=torch.int64)
    counts.scatter_add_(0, keys.to(torch.int64), torch.ones(n, device=device, dtype=torch.int64))
    ptr = torch.zeros(n_bins + 1, device=device, dtype=torch.int64)
    torch.cumsum(counts, 0, out=ptr[1:])
    k32 = keys.to(torch.int32) if n_bins < 2**31 else keys
    order = torch.sort(k32, stable=True).indices
    return order, ptr


__all__ = ["CellList", "CellPlan", "OVERFLOW_OUTSIDE", "OVERFLOW_WIDENED", "counting_sort", "device_constant",
           "host_values", "plan_cells", "rounding_margin", "strides"]
