"""Triton backend of the one neighbor kernel: a fused cell-list loop, no pair list in memory.

Same sums, layout and semantics as ``reduce_dense`` (up to float summation order):

    S[k, i] = sum_j w_k(|d_ij|) * [q_i + d_ij, v_j, f_j, 1]        shape [K, M, 2D+F+1]

How it runs:

1. Binning. Agents get a cell id in a grid of cells at least one support radius
   wide (the cell geometry of ``grid.py``: a periodic box is tiled by
   floor(L / support) cells per axis, an open world's cells cover the bounding
   box and clamp outliers into the edge cells). A counting sort orders them by
   cell: histogram (``torch.bincount``), exclusive scan (``cumsum``) into
   ``cell_ptr``, then a Triton scatter that claims slots with an atomic add per
   cell. No comparison sort. Atomics hand out slots in a run-dependent order, so
   a second small kernel re-ranks every agent inside its cell by agent index:
   the permutation is exactly ``torch.argsort(cell, stable=True)``, the sums are
   bitwise reproducible run to run (``DESIGN.md``: same seed, same device, same
   trajectory). That re-rank costs sum over cells of count^2; when agents pile
   up (a collapsed flock, mean shift modes) and that exceeds
   ``_STABLE_WORK_PER_AGENT`` per agent, the stable permutation comes from
   ``torch.argsort`` instead (a radix sort on CUDA).
2. One table [N, 2D+F] of [x, v, f] gathered into cell order (a read per
   agent per step: contiguous rows for each strip of cells below).
3. ``_cell_sum_kernel``: one program per ``BLOCK`` queries taken in cell order
   (so the lanes of a program share most of their candidates and the loads
   hit the cache). Each lane walks the 3^(D-1) rows of neighboring cells; the
   three cells of a row along x are consecutive in cell order, so each row is
   one contiguous strip of the table (plus the wrapped cell at a periodic
   seam). Every candidate's weights for all K channels are computed in
   registers and accumulated into a [BLOCK, K, 2D+F+1] register tile; the
   result is the only thing written. Kernel kinds, radii and flags are small
   per-channel parameter vectors; the transcendental functions of a kind
   (``sin`` for circles, ``exp`` for Gaussians) are compiled in only when a
   channel of that kind is present (constexpr flags).

Offsets and weights follow ``reduce_dense`` operation by operation: d = x_j - q_i,
minimum image ``d - L round(d / L)`` (round half to even as ``torch.round``; the
two can differ only where d / L lies within an ulp below 1/2), |d| by an IEEE
square root, each kind's formula in the input dtype. Positions are accumulated
as offsets and q_i * sum_j w is added at the end, in open worlds too (where the
dense backend sums x_j directly: the same value up to rounding).

Running without a GPU: Triton's interpreter (``TRITON_INTERPRET=1`` in the
environment before ``triton`` is first imported) runs the same kernels on CPU
tensors with NumPy. It is slow (a Python loop per candidate step) and meant for
tests on a few hundred agents; on CPU otherwise use the ``grid`` backend.

Agent order: the kernels read agents through the cell permutation every step,
so keeping agent storage itself sorted by cell makes those reads nearly
sequential. ``cell_permutation`` / ``sort_state_by_cell`` compute that
permutation; a simulation may apply it every few steps (agents drift slowly
across cells). The best period depends on the GPU, N and speeds, and is to be
measured there (``tools/bench_gpu.py --resort``); nothing here applies it.

Untruncated Gaussians have no cell list: ``ValueError``; use the dense or
fused backend, or give the kernel a radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kernels import Kernel, has_fov, max_support
from .dense import DEFAULT_MEMORY_BUDGET
from .grid import cell_layout

try:  # the module imports without Triton; using it then raises a clear error
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

KIND_IDS = {"flat": 0, "triangular": 1, "gaussian": 2, "inverse_square": 3, "circles": 4}
CIRCLES_FACTOR = -2 * 3.141  # kernels.CIRCLES_PI, as the circles benchmark writes it
DEFAULT_BLOCK = 64
# FMA contraction on (Triton's default), said explicitly: Triton 3.9 warns when it is left unset
_LAUNCH = {"enable_fp_fusion": True}
# above this many in-cell comparisons per agent, the stable order comes from torch.argsort
_STABLE_WORK_PER_AGENT = 64


# ------------------------------------------------------------------ availability

def triton_available() -> bool:
    """True when ``triton`` imports."""
    return triton is not None


def interpret_mode() -> bool:
    """True when Triton runs interpreted on the CPU.

    Triton decides at its own import: its standard library (``tl.max``, ``tl.sum``...)
    is built interpreted only when ``TRITON_INTERPRET=1`` was in the environment
    before ``import triton``, and interpreted kernels cannot call compiled library
    functions. So the mode is read from the library, not from the variable now.
    """
    return triton is not None and type(tl.max).__name__ == "InterpretedFunction"


def triton_usable(device: torch.device | str) -> bool:
    """True when the Triton kernels can run on tensors of ``device``."""
    if triton is None:
        return False
    return torch.device(device).type == "cuda" or interpret_mode()


def _require_triton(device: torch.device) -> None:
    if triton is None:
        raise ImportError("the triton backend needs the 'triton' package: pip install triton "
                          "(or use backend='grid')")
    if device.type != "cuda" and not interpret_mode():
        raise ValueError(f"triton backend: tensors on {device} need a CUDA device (or Triton's slow CPU "
                         "interpreter for tests: TRITON_INTERPRET=1 set before triton is imported); "
                         "use backend='grid' on CPU")


# ------------------------------------------------------------------ kernels

if triton is not None:

    _CIRCLES_FACTOR = tl.constexpr(CIRCLES_FACTOR)

    def _scatter_kernel(key_ptr, cursor_ptr, order_ptr, n, BLOCK: tl.constexpr):
        """order[cursor[key[i]]++] = i: each agent claims a slot in its cell (slot order is arbitrary)."""
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        live = i < n
        key = tl.load(key_ptr + i, mask=live, other=0)
        slot = tl.atomic_add(cursor_ptr + key, 1, mask=live)
        tl.store(order_ptr + slot, i.to(tl.int64), mask=live)

    def _stable_rank_kernel(tmp_ptr, key_ptr, ptr_ptr, order_ptr, n, BLOCK: tl.constexpr):
        """Re-rank every agent inside its cell by agent index: order becomes argsort(key, stable=True)."""
        s = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        live = s < n
        agent = tl.load(tmp_ptr + s, mask=live, other=0)
        key = tl.load(key_ptr + agent, mask=live, other=0)
        lo = tl.load(ptr_ptr + key, mask=live, other=0)
        hi = tl.load(ptr_ptr + key + 1, mask=live, other=0)
        cnt = tl.where(live, hi - lo, 0)
        rank = tl.zeros([BLOCK], dtype=tl.int64)
        for t in range(0, tl.max(cnt, axis=0)):
            ok = t < cnt
            other = tl.load(tmp_ptr + lo + t, mask=ok, other=0)
            rank += (ok & (other < agent)).to(tl.int64)
        tl.store(order_ptr + lo + rank, agent, mask=live)

    def _cell_sum_kernel(table_ptr, qpos_ptr, qvel_ptr, qcell_ptr, qown_ptr, qorder_ptr, cellptr_ptr,
                         period_ptr, kind_ptr, flag_ptr, par_ptr, out_ptr,
                         n_query, n0, n1, n2, cells_per_member,
                         D: tl.constexpr, C: tl.constexpr, WP: tl.constexpr, K: tl.constexpr,
                         KP: tl.constexpr, PERIODIC: tl.constexpr, HAS_TRI: tl.constexpr,
                         HAS_GAUSS: tl.constexpr, HAS_INVSQ: tl.constexpr, HAS_CIRCLES: tl.constexpr,
                         HAS_FOV: tl.constexpr, WIDE: tl.constexpr, F64: tl.constexpr,
                         BLOCK: tl.constexpr):
        """Sums of BLOCK cell-sorted queries over the agents of their 3^D neighboring cells.

        table: [N, C] cell-sorted [x, v, f]; qpos: [M, D] cell-sorted query positions;
        qvel: [M, D] their velocities (read only with HAS_FOV: the view cones' headings);
        qcell: [M] int32 query cell ids (member * cells_per_member + local id);
        qown: [M] int32 sorted slot of each query's own agent (-1 none); qorder: [M] int64
        original query index; cellptr: [cells + 1] int32 first slot of each cell;
        kind/flag/par: per-channel kind id, [exclude_self, open_center], [radius,
        bandwidth, strength, inverse-square floor, cos(fov / 2) or -2 without a
        view cone]; out: [K, M, C + 1].
        """
        W = C + 1
        slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        live = slot < n_query
        cid = tl.load(qcell_ptr + slot, mask=live, other=0)
        own = tl.load(qown_ptr + slot, mask=live, other=-1)
        member = cid // cells_per_member
        loc = cid - member * cells_per_member
        c0 = loc % n0
        rest = loc // n0
        c1 = rest % n1
        c2 = rest // n1
        mbase = member * cells_per_member

        cols = tl.arange(0, WP)
        col2 = cols[None, :]                                     # [1, WP]
        is_pos = col2 < D
        q2 = tl.load(qpos_ptr + slot[:, None] * D + col2, mask=live[:, None] & is_pos, other=0.0)
        per = tl.load(period_ptr + cols, mask=cols < D, other=1.0)[None, :]

        kk = tl.arange(0, KP)
        kind = tl.load(kind_ptr + kk)[None, :]                   # [1, KP]
        excl = tl.load(flag_ptr + kk)[None, :] != 0
        openc = tl.load(flag_ptr + KP + kk)[None, :] != 0
        rad = tl.load(par_ptr + kk)[None, :]
        bw = tl.load(par_ptr + KP + kk)[None, :]
        amp = tl.load(par_ptr + 2 * KP + kk)[None, :]
        floor_d = tl.load(par_ptr + 3 * KP + kk)[None, :]
        if HAS_FOV:
            qv2 = tl.load(qvel_ptr + slot[:, None] * D + col2, mask=live[:, None] & is_pos, other=0.0)
            if F64:
                qspeed = tl.sqrt(tl.sum(qv2 * qv2, axis=1))
            else:
                qspeed = tl.sqrt_rn(tl.sum(qv2 * qv2, axis=1))
            cosf = tl.load(par_ptr + 4 * KP + kk)[None, :]

        acc = tl.zeros([BLOCK, KP, WP], dtype=q2.dtype)

        # the three cells of a row along x: one contiguous range [xlo, xhi] of cells
        if PERIODIC:
            big = n0 >= 3
            xlo = tl.where(big, c0 - 1, 0)
            xhi = tl.where(big, c0 + 1, n0 - 1)
            wrapc = tl.where(xlo < 0, n0 - 1, tl.where(xhi >= n0, 0, -1))
            xlo = tl.maximum(xlo, 0)
            xhi = tl.minimum(xhi, n0 - 1)
        else:
            xlo = tl.maximum(c0 - 1, 0)
            xhi = tl.minimum(c0 + 1, n0 - 1)
            wrapc = tl.full([BLOCK], -1, tl.int32)

        # one dynamic loop over (row of cells, segment) keeps a single copy of the
        # candidate loop in the binary; unrolling the 18 of them made 800 kB of PTX
        for s in range(0, (3 ** (D - 1)) * (2 if PERIODIC else 1)):
            zero = c0 * 0
            seg = zero + s % (2 if PERIODIC else 1)              # 1: the wrapped cell at the seam
            row_id = s // (2 if PERIODIC else 1)
            o1 = zero + (row_id % 3 - 1)
            o2 = zero + (row_id // 3 - 1)
            if PERIODIC:
                # fewer than 3 cells on an axis: offsets -1, 0, +1 repeat cells, so an
                # offset counts only where it names a distinct cell (o = -1 needs 3
                # cells, o = +1 needs 2)
                ca1 = (c1 + o1 + n1) % n1
                row_ok = live & (n1 >= tl.where(o1 < 0, 3, o1 + 1))
                if D == 3:
                    ca2 = (c2 + o2 + n2) % n2
                    row_ok = row_ok & (n2 >= tl.where(o2 < 0, 3, o2 + 1))
                else:
                    ca2 = c2
            else:
                ca1 = c1 + o1
                row_ok = live & (ca1 >= 0) & (ca1 < n1)
                ca1 = tl.minimum(tl.maximum(ca1, 0), n1 - 1)
                if D == 3:
                    ca2 = c2 + o2
                    row_ok = row_ok & (ca2 >= 0) & (ca2 < n2)
                    ca2 = tl.minimum(tl.maximum(ca2, 0), n2 - 1)
                else:
                    ca2 = c2
            base = mbase + ca1 * n0 + ca2 * (n0 * n1)
            wrapped = seg == 1
            seg_ok = row_ok & ((seg == 0) | (wrapc >= 0))
            lo_cell = tl.where(wrapped, base + tl.maximum(wrapc, 0), base + xlo)
            hi_cell = tl.where(wrapped, lo_cell, base + xhi)
            start = tl.load(cellptr_ptr + lo_cell, mask=seg_ok, other=0)
            end = tl.load(cellptr_ptr + hi_cell + 1, mask=seg_ok, other=0)
            cnt = tl.where(seg_ok, end - start, 0)
            for t in range(0, tl.max(cnt, axis=0)):
                ok = t < cnt
                j = start + t
                if WIDE:
                    row = j.to(tl.int64) * C
                else:
                    row = j * C
                v = tl.load(table_ptr + row[:, None] + col2, mask=ok[:, None] & (col2 < C), other=0.0)
                d = v - q2
                if PERIODIC:
                    # d - L round(d / L), round half to even as torch.round
                    x = d / per
                    near = tl.floor(x + 0.5)
                    odd = (near - 2.0 * tl.floor(near * 0.5)) != 0.0
                    near = tl.where(((near - x) == 0.5) & odd, near - 1.0, near)
                    d = d - per * near
                d = tl.where(is_pos, d, v)
                d2 = tl.sum(tl.where(is_pos, d * d, 0.0), axis=1)
                if F64:
                    dist = tl.sqrt(d2)                       # IEEE in fp64
                else:
                    dist = tl.sqrt_rn(d2)                    # tl.sqrt is approximate in fp32
                dd = dist[:, None]                           # [BLOCK, 1]
                w = tl.zeros([BLOCK, KP], dtype=q2.dtype) + 1.0     # flat
                if HAS_TRI:
                    w = tl.where(kind == 1, tl.maximum(1.0 - dd / rad, 0.0), w)
                if HAS_GAUSS:
                    z = dd / bw
                    w = tl.where(kind == 2, tl.exp(-0.5 * (z * z)), w)
                if HAS_INVSQ:
                    m = tl.maximum(dd, floor_d)
                    w = tl.where(kind == 3, 1.0 / (m * m), w)
                if HAS_CIRCLES:
                    safe = tl.where(dd > 0.0, dd, 1.0)
                    w = tl.where(kind == 4, amp * tl.sin(dd / rad * _CIRCLES_FACTOR) / safe, w)
                keep = (dd < rad) & (kind >= 0) & ok[:, None]
                keep = keep & ~(openc & (dd <= 0.0))
                keep = keep & ~(excl & (j == own)[:, None])
                if HAS_FOV:
                    # seen when d . v_i >= cos(fov / 2) |d| |v_i|; cos = -2 for no cone
                    along = tl.sum(tl.where(is_pos, d * qv2, 0.0), axis=1)
                    keep = keep & (along[:, None] >= cosf * (dist * qspeed)[:, None])
                w = tl.where(keep, w, 0.0)
                val = tl.where(col2 == C, 1.0, d)            # [BLOCK, WP]: offset, v, f, 1
                acc += w[:, :, None] * val[:, None, :]

        col3 = cols[None, None, :]
        wsum = tl.sum(tl.where(col3 == C, acc, 0.0), axis=2)     # [BLOCK, KP]
        res = acc + tl.where(col3 < D, q2[:, None, :] * wsum[:, :, None], 0.0)
        qo = tl.load(qorder_ptr + slot, mask=live, other=0)
        k3 = kk[None, :, None].to(tl.int64)
        ptrs = out_ptr + k3 * (n_query * W) + qo[:, None, None] * W + col3
        tl.store(ptrs, res, mask=live[:, None, None] & (k3 < K) & (col3 < W))

    _KERNEL_SOURCES = {"scatter": _scatter_kernel, "stable_rank": _stable_rank_kernel,
                       "cell_sum": _cell_sum_kernel}
else:  # pragma: no cover
    _KERNEL_SOURCES = {}

_JITTED: dict = {}


def _kernels() -> dict:
    """The kernels, jitted once in the mode Triton's own library was built in (see ``interpret_mode``)."""
    if not _JITTED:
        if interpret_mode():
            from triton.runtime.interpreter import InterpretedFunction as wrap
        else:
            from triton.runtime.jit import JITFunction as wrap
        _JITTED.update({name: wrap(fn) for name, fn in _KERNEL_SOURCES.items()})
    return _JITTED


# ------------------------------------------------------------------ cells

@dataclass(frozen=True)
class CellGeometry:
    """Cells of one member's world: where they are and how many.

    Attributes:
        origin: low corner of cell (0, ..., 0) per axis, world units.
        cell_size: cell widths per axis, world units (>= the support they were built for).
        n_cells: cells per axis; cell (c0, c1, c2) has the local id c0 + n0 (c1 + n1 c2).
        periodic: True when the cells tile a periodic box [0, L).
    """

    origin: tuple[float, ...]
    cell_size: tuple[float, ...]
    n_cells: tuple[int, ...]
    periodic: bool

    @property
    def n_total(self) -> int:
        return math.prod(self.n_cells)

    def cell_ids(self, x: torch.Tensor) -> torch.Tensor:
        """[...] int64 local cell ids of points ``x`` ([..., D] float, world units).

        Periodic worlds wrap (any image of a point lands in the same cell); open worlds
        clamp to the edge cells.
        """
        dev = x.device
        origin = torch.tensor(self.origin, device=dev, dtype=torch.float64)
        size = torch.tensor(self.cell_size, device=dev, dtype=torch.float64)
        n = torch.tensor(self.n_cells, device=dev, dtype=torch.int64)
        c = torch.floor((x.to(torch.float64) - origin) / size).to(torch.int64)
        c = torch.remainder(c, n) if self.periodic else torch.minimum(c.clamp_min(0), n - 1)
        strides = torch.tensor(_strides(self.n_cells), device=dev, dtype=torch.int64)
        return (c * strides).sum(-1)


def _strides(n_cells) -> list[int]:
    strides, s = [], 1
    for n in n_cells:
        strides.append(s)
        s *= n
    return strides


def cell_geometry(points: torch.Tensor, cell_size: float, *, period: torch.Tensor | None = None,
                  bounds: torch.Tensor | None = None, max_cells: int | None = None) -> CellGeometry:
    """Cells at least ``cell_size`` wide over ``points``.

    Args:
        points: [P, D] float, world units: everything that will be binned (agents and queries).
        cell_size: smallest cell width (the largest kernel support), finite and > 0.
        period: [D] box lengths of a periodic world ([0, L) per axis), or None.
        bounds: [2, D] low / high corners of an open world; default the bounding box of ``points``.
        max_cells: cap on the number of cells (default 2 P + 64); cells grow wider past it.
    """
    lo, sizes, n_cells = cell_layout(points, cell_size, period=period, bounds=bounds, max_cells=max_cells,
                                     caller="cell_geometry")
    return CellGeometry(origin=tuple(lo), cell_size=tuple(sizes), n_cells=tuple(n_cells),
                        periodic=period is not None)


def counting_sort(keys: torch.Tensor, n_bins: int, *, block: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Stable counting sort of integer keys.

    Args:
        keys: [N] int keys in [0, n_bins).
        n_bins: number of bins.

    Returns:
        (order [N] int64, ptr [n_bins + 1] int64): ``order`` equals
        ``torch.argsort(keys, stable=True)``; bin b holds ``order[ptr[b]:ptr[b + 1]]``.

    On CUDA (or under the Triton interpreter) the scatter is a Triton atomic kernel
    followed by the in-bin re-rank that makes it stable; elsewhere the permutation
    comes from ``torch.argsort``.
    """
    n = keys.shape[0]
    device = keys.device
    keys = keys.to(torch.int64)
    counts = torch.bincount(keys, minlength=n_bins)
    ptr = torch.zeros(n_bins + 1, device=device, dtype=torch.int64)
    ptr[1:] = torch.cumsum(counts, 0)
    if n == 0:
        return torch.zeros(0, device=device, dtype=torch.int64), ptr
    work = int((counts * counts).sum())
    if not triton_usable(device) or work > _STABLE_WORK_PER_AGENT * n:
        return torch.argsort(keys, stable=True), ptr
    kern = _kernels()
    keys32 = keys.to(torch.int32)
    cursor = ptr[:-1].to(torch.int32).clone()
    tmp = torch.empty(n, device=device, dtype=torch.int64)
    grid = (triton.cdiv(n, block),)
    kern["scatter"][grid](keys32, cursor, tmp, n, BLOCK=block, **_LAUNCH)
    order = torch.empty_like(tmp)
    kern["stable_rank"][grid](tmp, keys, ptr, order, n, BLOCK=block, **_LAUNCH)
    return order, ptr


@dataclass(frozen=True)
class CellList:
    """Agents (of one or several members) binned into cells and sorted by cell.

    Attributes:
        geometry: the cells of one member.
        n_members: members sharing the geometry; agent cell id = member * cells + local id.
        cell: [N] int64 cell id of every agent.
        order: [N] int64 agent indices sorted by cell (stable).
        ptr: [n_members * cells + 1] int64 first sorted slot of every cell.
    """

    geometry: CellGeometry
    n_members: int
    cell: torch.Tensor
    order: torch.Tensor
    ptr: torch.Tensor


def build_cells(pos: torch.Tensor, geometry: CellGeometry, member: torch.Tensor | None = None,
                n_members: int = 1) -> CellList:
    """Bin agents ``pos`` ([N, D] float) into ``geometry``'s cells and counting-sort them.

    Args:
        member: [N] int64 member index of every agent (ensembles), or None (one member).
    """
    cell = geometry.cell_ids(pos)
    if member is not None:
        cell = cell + member.to(torch.int64) * geometry.n_total
    order, ptr = counting_sort(cell, n_members * geometry.n_total)
    return CellList(geometry=geometry, n_members=n_members, cell=cell, order=order, ptr=ptr)


def cell_permutation(pos: torch.Tensor, cell_size: float, *, period: torch.Tensor | None = None,
                     bounds: torch.Tensor | None = None) -> torch.Tensor:
    """[N] int64 permutation that puts agents in cell order (stable).

    Applying it to agent storage (``pos[perm]``, ``vel[perm]``, ``group[perm]``)
    every few steps keeps the kernel's reads of neighboring agents nearly
    contiguous; the results change only in summation order. How often pays off
    is to be measured on the GPU (``tools/bench_gpu.py --resort``).

    Args:
        pos: [N, D] float positions, world units.
        cell_size: the largest kernel support, world units.
        period: [D] box lengths of a periodic world, or None.
        bounds: [2, D] corners of an open world (default: the bounding box).
    """
    geometry = cell_geometry(pos, cell_size, period=period, bounds=bounds)
    return build_cells(pos, geometry).order


def sort_state_by_cell(state, cell_size: float, *, period: torch.Tensor | None = None,
                       bounds: torch.Tensor | None = None):
    """(``FlockState`` with agents in cell order, the [N] permutation applied).

    See ``cell_permutation``; ``new.pos == state.pos[perm]``.
    """
    from ..state import FlockState

    perm = cell_permutation(state.pos, cell_size, period=period, bounds=bounds)
    return FlockState(pos=state.pos[perm], vel=state.vel[perm], group=state.group[perm]), perm


def _neighbor_cell_counts(counts: torch.Tensor, geometry: CellGeometry) -> torch.Tensor:
    """Agents in the 3^D cells around every cell (each distinct cell once), same shape as ``counts``.

    Args:
        counts: [E, n_{D-1}, ..., n_0] agents per cell, members first.
    """
    out = counts
    for axis, n in enumerate(geometry.n_cells):
        tdim = counts.ndim - 1 - axis
        total = out.clone()
        idx = torch.arange(n, device=counts.device)
        shape = [1] * counts.ndim
        shape[tdim] = n
        for o in (-1, 1):
            shifted = torch.roll(out, shifts=-o, dims=tdim)         # shifted[c] = out[c + o]
            if geometry.periodic:
                if n >= 3 or 0 <= o < n:
                    total = total + shifted
            else:
                inside = ((idx + o >= 0) & (idx + o < n)).reshape(shape)
                total = total + shifted * inside
        out = total
    return out


def mean_candidates(pos: torch.Tensor, kernels: list[Kernel], *, period: torch.Tensor | None = None,
                    bounds: torch.Tensor | None = None, n_members: int = 1) -> float:
    """Mean number of candidates (agents in the 3^D cells around its own) one agent scans.

    Args:
        pos: [N, D] float positions (ensembles: members concatenated, N = E * per-member N).
        kernels: the channels (their largest support sizes the cells).
        period, bounds: as ``reduce_triton``.
        n_members: members stacked in ``pos``, each in its own copy of the cells.
    """
    support = _check_kernels(kernels)
    n = pos.shape[0]
    if n == 0:
        return 0.0
    geometry = cell_geometry(pos, support, period=period, bounds=bounds)
    member = None
    if n_members > 1:
        member = torch.arange(n_members, device=pos.device).repeat_interleave(n // n_members)
    cells = build_cells(pos, geometry, member, n_members)
    counts = (cells.ptr[1:] - cells.ptr[:-1]).reshape([n_members, *reversed(geometry.n_cells)])
    around = _neighbor_cell_counts(counts, geometry).reshape(-1)
    return float(around[cells.cell].to(torch.float64).mean())


# ------------------------------------------------------------------ the reduction

def _check_kernels(kernels) -> float:
    for kern in kernels:
        if not math.isfinite(kern.support):
            raise ValueError(
                f"triton backend: kernel {kern.kind!r} (bandwidth={kern.bandwidth}) has unbounded support, "
                "so no cell list can hold its neighbors; use backend='dense' or 'fused', or give the "
                "kernel a truncation radius (e.g. radius=3 * bandwidth)")
    return max_support(kernels)


def _channel_params(kernels: list[Kernel], device, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Per-channel kind ids [KP] int32, flags [2 * KP] int32, parameters [4 * KP] float (padded to KP)."""
    n_k = len(kernels)
    kp = max(2, triton.next_power_of_2(n_k))
    kind = [-1] * kp
    flags = [0] * (2 * kp)
    par = [1.0] * (5 * kp)
    for k, kern in enumerate(kernels):
        kind[k] = KIND_IDS[kern.kind]
        flags[k] = int(kern.exclude_self)
        flags[kp + k] = int(kern.open_center or kern.kind == "circles")
        par[k] = float(kern.radius)
        par[kp + k] = float(kern.bandwidth) if kern.bandwidth is not None else 1.0
        par[2 * kp + k] = float(kern.strength)
        par[3 * kp + k] = 1e-3 * float(kern.radius)
        # -2, not -1: |d . v| can round a hair above |d| |v| for a neighbor dead behind
        par[4 * kp + k] = kern.cos_half_fov if kern.fov is not None else -2.0
    as_t = lambda v, dt: torch.tensor(v, device=device, dtype=dt)  # noqa: E731
    return as_t(kind, torch.int32), as_t(flags, torch.int32), as_t(par, dtype), kp


def _launch(cells: CellList, table: torch.Tensor, qpos: torch.Tensor, qcell: torch.Tensor,
            qown: torch.Tensor, qorder: torch.Tensor, kernels: list[Kernel], period: torch.Tensor | None,
            dim: int, block: int, num_warps: int | None, qvel: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``_cell_sum_kernel`` over cell-sorted queries (velocities ``qvel`` for view cones);
    returns [K, M, C + 1]."""
    device, dtype = table.device, table.dtype
    n_query = qpos.shape[0]
    n_col = table.shape[1]
    width = n_col + 1
    out = torch.empty(len(kernels), n_query, width, device=device, dtype=dtype)
    kind, flags, par, kp = _channel_params(kernels, device, dtype)
    kinds = {kern.kind for kern in kernels}
    per = (period.to(device=device, dtype=dtype).reshape(dim) if period is not None
           else torch.ones(dim, device=device, dtype=dtype))
    n_cells = list(cells.geometry.n_cells) + [1] * (3 - dim)
    extra = dict(_LAUNCH) if num_warps is None else {**_LAUNCH, "num_warps": num_warps}
    grid = (triton.cdiv(n_query, block),)
    _kernels()["cell_sum"][grid](
        table, qpos, qpos if qvel is None else qvel, qcell, qown, qorder, cells.ptr.to(torch.int32), per,
        kind, flags, par, out,
        n_query, n_cells[0], n_cells[1], n_cells[2], cells.geometry.n_total,
        D=dim, C=n_col, WP=triton.next_power_of_2(width), K=len(kernels), KP=kp,
        PERIODIC=period is not None, HAS_TRI="triangular" in kinds, HAS_GAUSS="gaussian" in kinds,
        HAS_INVSQ="inverse_square" in kinds, HAS_CIRCLES="circles" in kinds, HAS_FOV=has_fov(kernels),
        WIDE=table.numel() >= 2**31 - 1, F64=dtype == torch.float64, BLOCK=block, **extra)
    return out


def _block_size(chunk_rows: int | None) -> int:
    if chunk_rows is None:
        return DEFAULT_BLOCK
    return max(16, min(256, triton.next_power_of_2(int(chunk_rows))))


def reduce_triton(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                  period: torch.Tensor | None = None,
                  query_pos: torch.Tensor | None = None,
                  query_index: torch.Tensor | None = None,
                  features: torch.Tensor | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  chunk_rows: int | None = None,
                  bounds: torch.Tensor | None = None,
                  num_warps: int | None = None,
                  query_vel: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel sums of every query over the agents in its 3^D neighboring cells, in one fused kernel.

    Same arguments, semantics and layout as ``reduce_dense``, plus:

    Args:
        memory_budget: accepted for the common signature; unused (memory is O(N + M + cells)).
        chunk_rows: queries per Triton program (rounded to a power of 2 in [16, 256];
            default ``DEFAULT_BLOCK``).
        bounds: [2, D] low / high corners to bin over in an open world; default the
            bounding box of agents and queries. Only speed depends on it.
        num_warps: Triton launch option (GPU tuning; default Triton's).
        query_vel: [M, D] query velocities for kernels with a field of view
            (default ``vel`` when ``query_pos`` is None).

    Returns:
        S: [K, M, 2D + F + 1], layout [positions (D), velocities (D), features (F), weight sum (1)].

    Raises:
        ValueError: a kernel has unbounded support (an untruncated Gaussian), a kernel
            has a field of view and explicit queries come without ``query_vel``, or
            the tensors are on a CPU without the Triton interpreter.
        ImportError: triton is not installed.
    """
    support = _check_kernels(kernels)
    n_agents, dim = pos.shape
    n_query = n_agents if query_pos is None else query_pos.shape[0]
    n_feat = 0 if features is None else features.shape[1]
    if n_query == 0 or n_agents == 0 or len(kernels) == 0:
        return torch.zeros(len(kernels), n_query, 2 * dim + n_feat + 1, device=pos.device, dtype=pos.dtype)
    self_query = query_pos is None
    fov = has_fov(kernels)
    if fov and not self_query and query_vel is None:
        raise ValueError("reduce_triton: a kernel has a field of view (fov), so query_vel (the "
                         "queries' headings) is needed with query_pos")
    _require_triton(pos.device)
    device, dtype = pos.device, pos.dtype
    if self_query and query_index is None:
        query_index = torch.arange(n_agents, device=device)
    points = pos if self_query else torch.cat([pos, query_pos.to(dtype)])
    geometry = cell_geometry(points, support, period=period, bounds=bounds)
    cells = build_cells(pos, geometry)
    order = cells.order
    table = [pos, vel] + ([] if features is None else [features.to(dtype)])
    table = torch.cat(table, 1)[order].contiguous()                     # [N, 2D+F], cell order

    qvel = None
    if self_query:
        qorder, qcell = order, cells.cell[order]
        qpos = table[:, :dim].contiguous()
        if fov:
            qvel = (table[:, dim:2 * dim] if query_vel is None else query_vel.to(dtype)[order]).contiguous()
    else:
        qc = geometry.cell_ids(query_pos)
        qorder, _ = counting_sort(qc, geometry.n_total)
        qcell = qc[qorder]
        qpos = query_pos.to(dtype)[qorder].contiguous()
        if fov:
            qvel = query_vel.to(dtype)[qorder].contiguous()
    qown = torch.full((n_query,), -1, device=device, dtype=torch.int64)
    if query_index is not None and any(k.exclude_self for k in kernels):
        inv = torch.empty_like(order)
        inv[order] = torch.arange(n_agents, device=device)
        qi = query_index.to(device=device, dtype=torch.int64)[qorder]
        ok = (qi >= 0) & (qi < n_agents)
        qown = torch.where(ok, inv[qi.clamp(0, n_agents - 1)], qown)
    return _launch(cells, table, qpos, qcell.to(torch.int32), qown.to(torch.int32), qorder,
                   kernels, period, dim, _block_size(chunk_rows), num_warps, qvel)


def reduce_triton_batched(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                          period: torch.Tensor | None = None,
                          features: torch.Tensor | None = None,
                          bounds: torch.Tensor | None = None,
                          chunk_rows: int | None = None,
                          num_warps: int | None = None) -> torch.Tensor:
    """Kernel sums of E independent flocks in one launch: no pair across members.

    Every member gets its own copy of the cells (cell id = member * cells + local id),
    so each agent sees exactly the agents of its own member, periodic worlds included.

    Args:
        pos, vel: [E, N, D] float.
        kernels: K channels, the same for every member.
        period: [D] box lengths (shared), or None.
        features: [E, N, F] or None.
        bounds: [2, D] corners of an open world (default: the bounding box of all members).

    Returns:
        S: [E, K, N, 2D + F + 1], member e's block equal to ``reduce_dense`` of member e
        (up to summation order).
    """
    support = _check_kernels(kernels)
    n_mem, n_agents, dim = pos.shape
    n_feat = 0 if features is None else features.shape[2]
    if n_mem == 0 or n_agents == 0 or len(kernels) == 0:
        return torch.zeros(n_mem, len(kernels), n_agents, 2 * dim + n_feat + 1, device=pos.device,
                           dtype=pos.dtype)
    _require_triton(pos.device)
    device, dtype = pos.device, pos.dtype
    flat = pos.reshape(-1, dim)
    geometry = cell_geometry(flat, support, period=period, bounds=bounds,
                             max_cells=2 * n_agents + 64)
    member = torch.arange(n_mem, device=device).repeat_interleave(n_agents)
    cells = build_cells(flat, geometry, member, n_mem)
    order = cells.order
    parts = [flat, vel.reshape(-1, dim)] + ([] if features is None else [features.reshape(n_mem * n_agents, -1)])
    table = torch.cat([p.to(dtype) for p in parts], 1)[order].contiguous()
    qown = torch.arange(flat.shape[0], device=device, dtype=torch.int32)
    if not any(k.exclude_self for k in kernels):
        qown = torch.full_like(qown, -1)
    qvel = table[:, dim:2 * dim].contiguous() if has_fov(kernels) else None
    out = _launch(cells, table, table[:, :dim].contiguous(), cells.cell[order].to(torch.int32), qown,
                  order, kernels, period, dim, _block_size(chunk_rows), num_warps, qvel)
    return out.reshape(len(kernels), n_mem, n_agents, -1).permute(1, 0, 2, 3)


__all__ = ["CellGeometry", "CellList", "DEFAULT_BLOCK", "build_cells", "cell_geometry", "cell_permutation",
           "counting_sort", "interpret_mode", "mean_candidates", "reduce_triton", "reduce_triton_batched",
           "sort_state_by_cell", "triton_available", "triton_usable"]
