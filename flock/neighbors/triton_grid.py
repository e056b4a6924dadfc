"""Triton backend of the one neighbor kernel: a fused cell-list loop, no pair list in memory.

Same sums, layout and semantics as ``reduce_dense`` (up to float summation order):

    S[k, i] = sum_j w_k(|d_ij|) * [q_i + d_ij, v_j, f_j, 1]        shape [K, M, 2D+F+1]

How it runs:

1. Binning (``cells.py``, no host read after the build phase): agents get a cell
   id in a grid of cells at least one support wide, fixed at build (a periodic
   box: floor(L / support) cells per axis; an open world: a fixed cell count over
   a bound, or over the bounding box kept on the device); a histogram by
   ``scatter_add_``, a ``cumsum`` into ``cell_ptr`` and a stable radix sort give
   the cell order. Plans are cached per configuration (``_plan``), so a step of a
   simulation makes no host read, no host-to-device copy and no recompilation; an
   open world that outgrows its plan sets a device flag (``check_cell_plans``).
2. One table [N, C] gathered into cell order: the D positions, then the D
   velocities and F features only when some channel sums them (``columns``).
3. ``_cell_sum_kernel``: one query per lane, ``BLOCK`` cell-sorted queries per
   program (``BLOCK = 32 num_warps``: lanes only along the queries, so no value
   of a query is spread over threads). Each lane walks the 3^(D-1) rows of
   neighboring cells; the three cells of a row along x are consecutive in cell
   order, so each row is one contiguous strip of the table (plus the wrapped cell
   at a periodic seam). Per candidate a lane loads the candidate's columns as
   scalars, applies the minimum image to the D position columns only, takes one
   square root and then, channel by channel, only that channel's arithmetic: the
   kinds are compile-time constants (``sin`` only for a circles channel, ``exp``
   only for a Gaussian one). The sums live in per-lane registers (a tuple of 1-D
   accumulators, K x (C + 1) of them): no [BLOCK, columns] tile, no reduction
   across threads, no layout conversion and no barrier inside the candidate loop.
   A strip's loop runs to the longest strip of the block (one block-wide maximum
   per strip, outside the candidate loop); lanes share most strips because queries
   go in cell order.

4. Epilogue (``epilogue=Epilogue(rule, values)``, the triton step of seed, reynolds
   and mesa): the kernel turns each query's sums, still in registers, into the rule's
   update (``flock.rules``' operations in the same order) and writes [N, D] instead of
   [K, N, 2D+F+1]; each channel sums only the columns its rule reads
   (``epilogues.EPILOGUES``), so a boid step reads the state once and holds fewer
   accumulators (3-D Reynolds with view cones: 12 instead of 21).

Offsets and weights follow ``reduce_dense`` operation by operation: d = x_j - q_i,
minimum image ``d - L round(d / L)`` (round half to even as ``torch.round``; the
two can differ only where d / L lies within an ulp below 1/2), |d| by an IEEE
square root, each kind's formula in the input dtype. Positions are accumulated
as offsets and q_i * sum_j w is added at the end, in open worlds too (where the
dense backend sums x_j directly: the same value up to rounding).

Shape arguments that change during a run (query count, cells per axis, cells per
member) are ``do_not_specialize``: Triton would otherwise compile a new kernel
when one of them changes its divisibility by 16 (an open world's growing box).

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

from collections import OrderedDict

import torch

from ..kernels import Kernel, has_fov
from .cells import CellList, CellPlan, cell_list_support, counting_sort, device_constant, host_values, plan_cells
from .dense import DEFAULT_MEMORY_BUDGET
from .epilogues import EPILOGUES, Epilogue

try:  # the module imports without Triton; using it then raises a clear error
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

# every kind of flock.kernels, each with its id in the kernel (3 bits per channel)
KIND_IDS = {"flat": 0, "triangular": 1, "gaussian": 2, "inverse_square": 3, "circles": 4, "inverse": 5}
CIRCLES_FACTOR = -2 * 3.141  # kernels.CIRCLES_PI, as the circles benchmark writes it
DEFAULT_BLOCK = 64
# FMA contraction on (Triton's default), said explicitly: Triton 3.9 warns when it is left unset
_LAUNCH = {"enable_fp_fusion": True}
# run-time shape arguments: never specialised on (divisibility by 16 would recompile mid-run)
_NO_SPECIALIZE = ("n_query", "n0", "n1", "n2", "cells_per_member")
# cached build phases (cell plans) per configuration
_PLANS: "OrderedDict[tuple, CellPlan]" = OrderedDict()
_MAX_PLANS = 32

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

    def _cell_sum_kernel(table_ptr, qpos_ptr, qvel_ptr, qcell_ptr, qown_ptr, qorder_ptr, cellptr_ptr,
                         period_ptr, par_ptr, rule_ptr, out_ptr,
                         n_query, n0, n1, n2, cells_per_member,
                         D: tl.constexpr, C: tl.constexpr, VEL: tl.constexpr, F: tl.constexpr, K: tl.constexpr,
                         KINDS: tl.constexpr, EXCL: tl.constexpr, OPEN: tl.constexpr, FOVS: tl.constexpr,
                         EXTRA: tl.constexpr, POSS: tl.constexpr, RULE: tl.constexpr, PERIODIC: tl.constexpr,
                         WIDE: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
        """Sums of BLOCK cell-sorted queries (one per lane) over the agents of their 3^D neighboring cells.

        table: [N, C] cell-sorted [x (D), and with VEL v (D), f (F)]; qpos: [M, D] cell-sorted query
        positions; qvel: [M, D] their velocities (read only for view cones); qcell: [M] int32
        query cell ids (member * cells_per_member + local id); qown: [M] int32 sorted slot of
        each query's own agent (-1 none); qorder: [M] int64 original query index; cellptr:
        [cells + 1] int32 first slot of each cell; period: [D] box lengths; par: [5 K]
        per-channel [radius, bandwidth, strength, inverse floor, cos(fov / 2)];
        rule: [8] the epilogue's rule values (RULE != 0; see ``EPILOGUES``);
        out: [K, M, 2D + F + 1] sums (RULE 0), or [M, D] the rule's update (RULE != 0).

        Compile-time channel tables (bit or 3-bit field k = channel k): KINDS kind ids,
        EXCL exclude self, OPEN weight 0 at distance 0, FOVS view cone, EXTRA the channel
        sums the table's columns past the positions (else they stay 0), POSS the channel
        sums the position offsets (else they stay 0). RULE: 0 writes the sums; 1 seed, 2
        reynolds, 3 mesa turn them into each query's update in registers (``_epilogue``).
        """
        WO: tl.constexpr = 2 * D + F + 1
        W: tl.constexpr = C + 1
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

        q = ()
        for c in tl.static_range(D):
            q = q + (tl.load(qpos_ptr + slot * D + c, mask=live, other=0.0),)
        zero = tl.zeros([BLOCK], dtype=q[0].dtype)
        per = ()
        if PERIODIC:
            for c in tl.static_range(D):
                per = per + (tl.load(period_ptr + c),)
        if FOVS != 0:
            qv = ()
            qs2 = zero
            for c in tl.static_range(D):
                v_c = tl.load(qvel_ptr + slot * D + c, mask=live, other=0.0)
                qv = qv + (v_c,)
                qs2 += v_c * v_c
            if F64:
                qspeed = tl.sqrt(qs2)
            else:
                qspeed = tl.sqrt_rn(qs2)
        rad = ()
        bw = ()
        amp = ()
        floor_d = ()
        cosf = ()
        for k in tl.static_range(K):
            rad = rad + (tl.load(par_ptr + k),)
            bw = bw + (tl.load(par_ptr + K + k),)
            amp = amp + (tl.load(par_ptr + 2 * K + k),)
            floor_d = floor_d + (tl.load(par_ptr + 3 * K + k),)
            cosf = cosf + (tl.load(par_ptr + 4 * K + k),)
        acc = ()
        for i in tl.static_range(K * W):
            acc = acc + (zero,)

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
            wrapc = c0 * 0 - 1

        # one dynamic loop over (row of cells, segment) keeps a single copy of the
        # candidate loop in the binary
        for s in range(0, (3 ** (D - 1)) * (2 if PERIODIC else 1)):
            izero = c0 * 0
            seg = izero + s % (2 if PERIODIC else 1)             # 1: the wrapped cell at the seam
            row_id = s // (2 if PERIODIC else 1)
            o1 = izero + (row_id % 3 - 1)
            o2 = izero + (row_id // 3 - 1)
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
                d = ()
                d2 = zero
                for c in tl.static_range(D):
                    x = tl.load(table_ptr + row + c, mask=ok, other=0.0) - q[c]
                    if PERIODIC:
                        # d - L round(d / L), round half to even as torch.round
                        y = x / per[c]
                        near = tl.floor(y + 0.5)
                        odd = (near - 2.0 * tl.floor(near * 0.5)) != 0.0
                        near = tl.where(((near - y) == 0.5) & odd, near - 1.0, near)
                        x = x - per[c] * near
                    d = d + (x,)
                    d2 += x * x
                if EXTRA != 0:
                    for c in tl.static_range(D, C):
                        d = d + (tl.load(table_ptr + row + c, mask=ok, other=0.0),)
                if F64:
                    dist = tl.sqrt(d2)                       # IEEE in fp64
                else:
                    dist = tl.sqrt_rn(d2)                    # tl.sqrt is approximate in fp32
                if FOVS != 0:
                    along = zero
                    for c in tl.static_range(D):
                        along += d[c] * qv[c]
                    reach = dist * qspeed
                new = ()
                for k in tl.static_range(K):
                    # seen only within radius; kinds and flags are compile-time per channel
                    keep = ok & (dist < rad[k])
                    if ((EXCL >> k) & 1) != 0:
                        keep = keep & (j != own)
                    if ((OPEN >> k) & 1) != 0:
                        keep = keep & (dist > 0.0)
                    if ((FOVS >> k) & 1) != 0:
                        # seen when d . v_i >= cos(fov / 2) |d| |v_i|; cos = -2 for no cone
                        keep = keep & (along >= cosf[k] * reach)
                    if ((KINDS >> (3 * k)) & 7) == 0:      # flat
                        w = tl.where(keep, 1.0, 0.0)
                    elif ((KINDS >> (3 * k)) & 7) == 1:    # triangular
                        w = tl.where(keep, tl.maximum(1.0 - dist / rad[k], 0.0), 0.0)
                    elif ((KINDS >> (3 * k)) & 7) == 2:    # gaussian
                        z = dist / bw[k]
                        w = tl.where(keep, tl.exp(-0.5 * (z * z)), 0.0)
                    elif ((KINDS >> (3 * k)) & 7) == 3:    # inverse square
                        m = tl.maximum(dist, floor_d[k])
                        w = tl.where(keep, 1.0 / (m * m), 0.0)
                    elif ((KINDS >> (3 * k)) & 7) == 4:    # circles
                        safe = tl.where(dist > 0.0, dist, 1.0)
                        w = tl.where(keep, amp[k] * tl.sin(dist / rad[k] * _CIRCLES_FACTOR) / safe, 0.0)
                    else:                                  # inverse
                        w = tl.where(keep, 1.0 / tl.maximum(dist, floor_d[k]), 0.0)
                    for c in tl.static_range(W):
                        if c < D:
                            if ((POSS >> k) & 1) != 0:
                                new = new + (acc[k * W + c] + w * d[c],)
                            else:
                                new = new + (acc[k * W + c],)
                        elif c < C:
                            if ((EXTRA >> k) & 1) != 0:
                                new = new + (acc[k * W + c] + w * d[c],)
                            else:
                                new = new + (acc[k * W + c],)
                        else:
                            new = new + (acc[k * W + c] + w,)
                acc = new

        qo = tl.load(qorder_ptr + slot, mask=live, other=0).to(tl.int64)
        if RULE != 0:
            v = ()
            for c in tl.static_range(D):
                v = v + (tl.load(qvel_ptr + slot * D + c, mask=live, other=0.0),)
            rv = ()
            for i in tl.static_range(5):
                rv = rv + (tl.load(rule_ptr + i),)
            if RULE == 1:
                upd = _seed_epilogue(acc, v, rv, D, W, C, F64)
            elif RULE == 2:
                upd = _reynolds_epilogue(acc, v, rv, D, W, C, F64)
            else:
                upd = _mesa_epilogue(acc, v, rv, D, W, C, F64)
            for c in tl.static_range(D):
                tl.store(out_ptr + qo * D + c, upd[c], mask=live)
        else:
            for k in tl.static_range(K):
                dst = out_ptr + (qo + k * n_query) * WO
                wsum = acc[k * W + C]
                for c in tl.static_range(D):
                    tl.store(dst + c, acc[k * W + c] + q[c] * wsum, mask=live)
                for c in tl.static_range(D, C):
                    tl.store(dst + c, acc[k * W + c], mask=live)
                if not VEL:
                    for c in tl.static_range(D, 2 * D + F):
                        tl.store(dst + c, zero, mask=live)
                tl.store(dst + (WO - 1), wsum, mask=live)

    # ---------------------------------------------------------------- the boid rules' epilogues
    # Each turns one query's accumulators (channel k's position offsets at acc[k W + c],
    # velocities at acc[k W + D + c], weight sum at acc[k W + C]) into its update, with the
    # operations of flock.rules in the same order; offsets are summed directly, so
    # xbar - p is sum(d) / n here and (sum(x) / n) - p there (equal up to rounding).

    @triton.jit
    def _length(x, D: tl.constexpr, F64: tl.constexpr):
        """|x| of a D-tuple of [BLOCK] components (an IEEE square root)."""
        s = x[0] * x[0]
        for c in tl.static_range(1, D):
            s += x[c] * x[c]
        if F64:
            out = tl.sqrt(s)
        else:
            out = tl.sqrt_rn(s)
        return out

    @triton.jit
    def _unit(x, D: tl.constexpr, F64: tl.constexpr):
        """x / |x|, exactly 0 where |x| = 0 (``flock.vectors.unit``)."""
        n = _length(x, D, F64)
        safe = tl.where(n > 0.0, n, 1.0)
        out = ()
        for c in tl.static_range(D):
            out = out + (tl.where(n > 0.0, x[c] / safe, 0.0),)
        return out

    @triton.jit
    def _mean(acc, first: tl.constexpr, count, D: tl.constexpr):
        """acc[first:first + D] / n, n replaced by 1 where it is 0."""
        n = tl.where(count > 0.0, count, 1.0)
        out = ()
        for c in tl.static_range(D):
            out = out + (acc[first + c] / n,)
        return out

    @triton.jit
    def _steer(desired, v, seen, max_speed, max_force, D: tl.constexpr, F64: tl.constexpr):
        """clip(max_speed unit(desired) - v, max_force), 0 where not seen (``rules.reynolds_steer``)."""
        u = _unit(desired, D, F64)
        s = ()
        for c in tl.static_range(D):
            s = s + (max_speed * u[c] - v[c],)
        n = _length(s, D, F64)
        longer = n > max_force
        scale = tl.where(longer, max_force / tl.where(longer, n, 1.0), 1.0)
        out = ()
        for c in tl.static_range(D):
            out = out + (tl.where(seen, s[c] * scale, 0.0),)
        return out

    @triton.jit
    def _seed_epilogue(acc, v, rv, D: tl.constexpr, W: tl.constexpr, C: tl.constexpr, F64: tl.constexpr):
        """``rules.seed_acceleration``; channels [view (x, v), too near (x)], rv = [c, a, s, max_force]."""
        n_view = acc[C]
        n_near = acc[W + C]
        to_mean = _unit(_mean(acc, 0, n_view, D), D, F64)
        mean_v = _mean(acc, D, n_view, D)
        dv = ()
        for c in tl.static_range(D):
            dv = dv + (mean_v[c] - v[c],)
        to_vel = _unit(dv, D, F64)
        to_near = _unit(_mean(acc, W, n_near, D), D, F64)
        direction = ()
        for c in tl.static_range(D):
            direction = direction + ((rv[0] * to_mean[c] + rv[1] * to_vel[c])
                                     - tl.where(n_near > 0.0, rv[2] * to_near[c], 0.0),)
        u = _unit(direction, D, F64)
        out = ()
        for c in tl.static_range(D):
            out = out + (tl.where(n_view > 0.0, rv[3] * u[c], 0.0),)
        return out

    @triton.jit
    def _reynolds_epilogue(acc, v, rv, D: tl.constexpr, W: tl.constexpr, C: tl.constexpr,
                           F64: tl.constexpr):
        """``rules.reynolds_acceleration``; channels [cohesion (x), alignment (v), separation (x)],
        rv = [c, a, s, max_speed, max_force]."""
        n_coh = acc[C]
        n_ali = acc[W + C]
        n_sep = acc[2 * W + C]
        s_coh = _steer(_mean(acc, 0, n_coh, D), v, n_coh > 0.0, rv[3], rv[4], D, F64)
        s_ali = _steer(_mean(acc, W + D, n_ali, D), v, n_ali > 0.0, rv[3], rv[4], D, F64)
        away = ()
        for c in tl.static_range(D):
            away = away + (-acc[2 * W + c],)                    # p n - sum(x) = -sum(d)
        s_sep = _steer(away, v, n_sep > 0.0, rv[3], rv[4], D, F64)
        out = ()
        for c in tl.static_range(D):
            out = out + ((rv[0] * s_coh[c] + rv[1] * s_ali[c]) + rv[2] * s_sep[c],)
        return out

    @triton.jit
    def _mesa_epilogue(acc, v, rv, D: tl.constexpr, W: tl.constexpr, C: tl.constexpr, F64: tl.constexpr):
        """``rules.mesa_velocity`` (a new velocity); channels [view (x, v), separation (x)],
        rv = [cohere, separate, match, speed]."""
        n = acc[C]
        seen = n > 0.0
        safe = tl.where(seen, n, 1.0)
        turn = ()
        for c in tl.static_range(D):
            offsets = rv[0] * acc[c] - rv[1] * acc[W + c]
            turn = turn + (v[c] / rv[3] + (offsets + rv[2] * (acc[D + c] / rv[3])) / safe,)
        u = _unit(turn, D, F64)
        out = ()
        for c in tl.static_range(D):
            out = out + (tl.where(seen, u[c] * rv[3], v[c]),)
        return out

    _KERNEL_SOURCES = {"cell_sum": _cell_sum_kernel}
else:  # pragma: no cover
    _KERNEL_SOURCES = {}

_JITTED: dict = {}


def _kernels() -> dict:
    """The kernels, jitted once in the mode Triton's own library was built in (see ``interpret_mode``)."""
    if not _JITTED:
        if interpret_mode():
            from triton.runtime.interpreter import InterpretedFunction
            _JITTED.update({name: InterpretedFunction(fn) for name, fn in _KERNEL_SOURCES.items()})
        else:
            from triton.runtime.jit import JITFunction
            _JITTED.update({name: JITFunction(fn, do_not_specialize=list(_NO_SPECIALIZE))
                            for name, fn in _KERNEL_SOURCES.items()})
    return _JITTED


# ------------------------------------------------------------------ cells (convenience, host reads allowed)

def cell_geometry(points: torch.Tensor, cell_size: float, *, period=None, bounds=None,
                  max_cells: int | None = None, n_members: int = 1) -> CellPlan:
    """A fixed cell plan at least ``cell_size`` wide over ``points`` (``cells.plan_cells``).

    Args:
        points: [P, D] float, world units: everything that will be binned.
        cell_size: smallest cell width (the largest kernel support), finite and > 0.
        period: [D] box lengths of a periodic world, or None.
        bounds: [2, D] corners of an open world; default the bounding box of ``points``
            (read on the host: this helper is for tools and tests, not the step).
        max_cells: cap on the number of cells (default 2 P + 64).
        n_members: members, each in its own copy of the cells.
    """
    dim = points.shape[1]
    if period is None and bounds is None:
        if points.shape[0]:
            bounds = torch.stack([points.amin(0), points.amax(0)]).to(torch.float64).cpu().reshape(-1).tolist()
        else:
            bounds = [0.0] * (2 * dim)
    return plan_cells(cell_size, dim, dtype=points.dtype, device=points.device, period=period, bounds=bounds,
                      n_points=points.shape[0], n_members=n_members, max_cells=max_cells,
                      caller="cell_geometry")


def build_cells(pos: torch.Tensor, geometry: CellPlan, member: torch.Tensor | None = None) -> CellList:
    """Bin agents ``pos`` ([N, D] float) with ``geometry`` and sort them by cell (``CellPlan.bin``)."""
    return geometry.bin(pos, member)


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
    return build_cells(pos, cell_geometry(pos, cell_size, period=period, bounds=bounds)).order


def sort_state_by_cell(state, cell_size: float, *, period: torch.Tensor | None = None,
                       bounds: torch.Tensor | None = None):
    """(``FlockState`` with agents in cell order, the [N] permutation applied).

    See ``cell_permutation``; ``new.pos == state.pos[perm]``.
    """
    from ..state import FlockState

    perm = cell_permutation(state.pos, cell_size, period=period, bounds=bounds)
    return FlockState(pos=state.pos[perm], vel=state.vel[perm], group=state.group[perm]), perm


def _neighbor_cell_counts(counts: torch.Tensor, geometry: CellPlan) -> torch.Tensor:
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
    geometry = cell_geometry(pos, support, period=period, bounds=bounds, n_members=n_members)
    member = None
    if n_members > 1:
        member = torch.arange(n_members, device=pos.device).repeat_interleave(n // n_members)
    cells = geometry.bin(pos, member)
    counts = (cells.ptr[1:] - cells.ptr[:-1]).reshape([n_members, *reversed(geometry.n_cells)])
    around = _neighbor_cell_counts(counts, geometry).reshape(-1)
    return float(around[cells.cell].to(torch.float64).mean())


def lane_efficiency(pos: torch.Tensor, kernels: list[Kernel], *, period: torch.Tensor | None = None,
                    block: int = DEFAULT_BLOCK) -> float:
    """Useful fraction of the kernel's candidate iterations: sum of strip lengths over
    ``block`` times the longest strip, summed over blocks and strips (1: no lane idles).

    A static proxy of the kernel's SIMT efficiency, computed on the host from the same
    cells and strips the kernel walks (queries in cell order, ``block`` per program).
    """
    support = _check_kernels(kernels)
    n, dim = pos.shape
    if n == 0:
        return 1.0
    geometry = cell_geometry(pos, support, period=period)
    cells = geometry.bin(pos)
    ptr = cells.ptr
    nc = list(geometry.n_cells) + [1] * (3 - dim)
    cid = cells.cell[cells.order]
    c = [cid % nc[0], (cid // nc[0]) % nc[1], cid // (nc[0] * nc[1])]
    lengths = []
    for o2 in ((-1, 0, 1) if dim == 3 else (0,)):
        for o1 in (-1, 0, 1):
            segs = _strip_lengths(c, nc, ptr, o1, o2, geometry.periodic)
            lengths.extend(segs)
    lens = torch.stack(lengths)                                   # [S, N] in query (cell) order
    pad = (-n) % block
    lens = torch.nn.functional.pad(lens, (0, pad)).reshape(lens.shape[0], -1, block)
    useful = lens.sum()
    run = lens.amax(-1).sum() * block
    return float(useful) / max(float(run), 1.0)


def _strip_lengths(c, nc, ptr, o1, o2, periodic):
    """Lengths of the strips (row along x, plus the wrapped seam cell) one row offset gives each query."""
    n0, n1, n2 = nc
    if periodic:
        ok = torch.full_like(c[0], True, dtype=torch.bool)
        ok &= torch.tensor(n1 >= (3 if o1 < 0 else o1 + 1)) & torch.tensor(n2 >= (3 if o2 < 0 else o2 + 1))
        a1, a2 = (c[1] + o1) % n1, (c[2] + o2) % n2
        big = n0 >= 3
        xlo = (c[0] - 1) if big else torch.zeros_like(c[0])
        xhi = (c[0] + 1) if big else torch.full_like(c[0], n0 - 1)
        wrap = torch.where(xlo < 0, n0 - 1, torch.where(xhi >= n0, 0, -1))
        xlo, xhi = xlo.clamp_min(0), xhi.clamp_max(n0 - 1)
    else:
        a1, a2 = c[1] + o1, c[2] + o2
        ok = (a1 >= 0) & (a1 < n1) & (a2 >= 0) & (a2 < n2)
        a1, a2 = a1.clamp(0, n1 - 1), a2.clamp(0, n2 - 1)
        xlo, xhi = (c[0] - 1).clamp_min(0), (c[0] + 1).clamp_max(n0 - 1)
        wrap = torch.full_like(c[0], -1)
    base = a1 * n0 + a2 * n0 * n1
    main = torch.where(ok, ptr[base + xhi + 1] - ptr[base + xlo], 0)
    seam = torch.where(ok & (wrap >= 0), ptr[base + wrap.clamp_min(0) + 1] - ptr[base + wrap.clamp_min(0)], 0)
    return [main, seam] if periodic else [main]


# ------------------------------------------------------------------ the reduction

def _check_kernels(kernels) -> float:
    for kern in kernels:
        if kern.kind not in KIND_IDS:
            raise ValueError(f"triton backend: kernel kind {kern.kind!r} has no Triton formula (supported: "
                             f"{', '.join(KIND_IDS)}); use backend='dense' or 'grid'")
    return cell_list_support(kernels, "triton")


def _channel_tables(kernels: list[Kernel], extra: tuple[bool, ...], positions: tuple[bool, ...] | None = None) -> dict:
    """Compile-time per-channel tables of ``_cell_sum_kernel`` (kinds, flags as bit fields).

    Args:
        extra: per channel, sums the velocity and feature columns.
        positions: per channel, sums the position offsets (default: every channel).
    """
    tables = dict(KINDS=0, EXCL=0, OPEN=0, FOVS=0, EXTRA=0, POSS=0)
    for k, kern in enumerate(kernels):
        tables["KINDS"] |= KIND_IDS[kern.kind] << (3 * k)
        tables["EXCL"] |= int(kern.exclude_self) << k
        tables["OPEN"] |= int(kern.open_center or kern.kind == "circles") << k
        tables["FOVS"] |= int(kern.fov is not None) << k
        tables["EXTRA"] |= int(extra[k]) << k
        tables["POSS"] |= int(True if positions is None else positions[k]) << k
    return tables


def _epilogue_columns(epilogue: Epilogue, kernels, features) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(velocity columns, position columns) per channel of ``epilogue``'s rule; checks the call fits it."""
    if epilogue.rule not in EPILOGUES:
        raise ValueError(f"reduce_triton: epilogue rule {epilogue.rule!r} has no kernel epilogue "
                         f"(supported: {', '.join(EPILOGUES)})")
    _, names, cols = EPILOGUES[epilogue.rule]
    if len(kernels) != len(cols) or len(epilogue.values) != len(names) or features is not None:
        raise ValueError(f"reduce_triton: the {epilogue.rule} epilogue takes {len(cols)} channels, "
                         f"{len(names)} values ({', '.join(names)}) and no features; got {len(kernels)} "
                         f"channels, {len(epilogue.values)} values, features={features is not None}")
    return tuple(c[1] for c in cols), tuple(c[0] for c in cols)


def _channel_params(kernels: list[Kernel], device, dtype) -> torch.Tensor:
    """[5 K] per-channel [radius, bandwidth, strength, inverse floor, cos(fov / 2)], cached on the device."""
    par = []
    for key in ("radius", "bandwidth", "strength", "floor", "cos"):
        for kern in kernels:
            if key == "radius":
                par.append(float(kern.radius))
            elif key == "bandwidth":
                par.append(float(kern.bandwidth) if kern.bandwidth is not None else 1.0)
            elif key == "strength":
                par.append(float(kern.strength))
            elif key == "floor":
                par.append(1e-3 * float(kern.radius))
            else:
                # -2, not -1: |d . v| can round a hair above |d| |v| for a neighbor dead behind
                par.append(kern.cos_half_fov if kern.fov is not None else -2.0)
    return device_constant(tuple(par), device, dtype)


def _sum_columns(columns, n_kernels: int) -> tuple[bool, ...]:
    """Per channel: does it sum the velocity and feature columns ('all') or positions only?"""
    if isinstance(columns, str):
        columns = [columns] * n_kernels
    columns = tuple(columns)
    if len(columns) != n_kernels or any(c not in ("all", "positions") for c in columns):
        raise ValueError(f"reduce_triton: columns: expected 'all', 'positions' or one of them per kernel "
                         f"({n_kernels}), got {columns!r}")
    return tuple(c == "all" for c in columns)


def _block_size(chunk_rows: int | None) -> int:
    if chunk_rows is None:
        return DEFAULT_BLOCK
    return max(32, min(256, triton.next_power_of_2(int(chunk_rows))))


def _launch(cells: CellList, table: torch.Tensor, qpos: torch.Tensor, qcell: torch.Tensor,
            qown: torch.Tensor, qorder: torch.Tensor, kernels: list[Kernel], extra: tuple[bool, ...],
            has_vel: bool, n_feat: int, block: int, num_warps: int | None,
            qvel: torch.Tensor | None = None, epilogue: Epilogue | None = None,
            positions: tuple[bool, ...] | None = None) -> torch.Tensor:
    """Run ``_cell_sum_kernel`` over cell-sorted queries (velocities ``qvel`` for view cones and
    epilogues); returns [K, M, 2D + F + 1] (columns a channel does not sum are 0), or [M, D]
    with an ``epilogue``."""
    plan = cells.plan
    device, dtype = table.device, table.dtype
    n_query, dim = qpos.shape
    if epilogue is None:
        rule_id, rule_values = 0, (0.0,) * 5
        out = torch.empty(len(kernels), n_query, 2 * dim + n_feat + 1, device=device, dtype=dtype)
    else:
        rule_id = EPILOGUES[epilogue.rule][0]
        rule_values = tuple(float(v) for v in epilogue.values) + (0.0,) * (5 - len(epilogue.values))
        out = torch.empty(n_query, dim, device=device, dtype=dtype)
    n_cells = list(plan.n_cells) + [1] * (3 - dim)
    # one query per lane: a program is exactly BLOCK lanes, so no value of a query is split over threads
    warps = max(1, block // 32) if num_warps is None else num_warps
    grid = (triton.cdiv(n_query, block),)
    _kernels()["cell_sum"][grid](
        table, qpos, qpos if qvel is None else qvel, qcell, qown, qorder, cells.ptr.to(torch.int32),
        plan.period_tensor(dtype), _channel_params(kernels, device, dtype),
        device_constant(rule_values, device, dtype), out,
        n_query, n_cells[0], n_cells[1], n_cells[2], plan.n_total,
        D=dim, C=table.shape[1], VEL=has_vel, F=n_feat, K=len(kernels),
        **_channel_tables(kernels, extra, positions), RULE=rule_id,
        PERIODIC=plan.periodic, WIDE=table.numel() >= 2**31 - 1, F64=dtype == torch.float64, BLOCK=block,
        num_warps=warps, **_LAUNCH)
    return out


def _plan(support: float, dim: int, dtype, device, period, bounds, n_points: int, n_members: int,
          points: torch.Tensor, max_cells: int | None = None) -> CellPlan:
    """The cached build phase for this configuration (built, with its host reads, once)."""
    per = None if period is None else host_values(period, dim, "reduce_triton: period")
    bnd = None if (bounds is None or period is not None) else host_values(bounds, 2 * dim, "reduce_triton: bounds")
    key = (support, dim, dtype, torch.device(device), per, bnd, n_points, n_members, max_cells)
    plan = _PLANS.get(key)
    if plan is None:
        plan = plan_cells(support, dim, dtype=dtype, device=device, period=per, bounds=bnd, n_points=n_points,
                          n_members=n_members, max_cells=max_cells, points=points, caller="reduce_triton")
        _PLANS[key] = plan
        while len(_PLANS) > _MAX_PLANS:
            _PLANS.popitem(last=False)
    else:
        _PLANS.move_to_end(key)
    return plan


def check_cell_plans(*, drop: bool = True) -> int:
    """OR of the overflow bits (``cells.OVERFLOW_*``) of every cached cell plan; one host read.

    The update phase never reads its flags; call this every k steps. With ``drop``, the
    plans that overflowed are forgotten, so the next call rebuilds them at the new size.
    """
    if not _PLANS:
        return 0
    keys = list(_PLANS)
    flags = torch.cat([_PLANS[k].overflow.to("cpu") for k in keys]).tolist()
    if drop:
        for k, f in zip(keys, flags):
            if f:
                del _PLANS[k]
    out = 0
    for f in flags:
        out |= int(f)
    return out


def reduce_triton(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                  period: torch.Tensor | None = None,
                  query_pos: torch.Tensor | None = None,
                  query_index: torch.Tensor | None = None,
                  features: torch.Tensor | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  chunk_rows: int | None = None,
                  bounds: torch.Tensor | None = None,
                  num_warps: int | None = None,
                  query_vel: torch.Tensor | None = None,
                  columns="all",
                  epilogue: Epilogue | None = None) -> torch.Tensor:
    """Kernel sums of every query over the agents in its 3^D neighboring cells, in one fused kernel.

    Same arguments, semantics and layout as ``reduce_dense``, plus:

    Args:
        period: [D] box lengths (a tensor, read once per tensor object, or floats).
        memory_budget: accepted for the common signature; unused (memory is O(N + M + cells)).
        chunk_rows: queries per Triton program, one per lane (rounded to a power of 2 in
            [32, 256]; default ``DEFAULT_BLOCK``).
        bounds: [2, D] low / high corners to bin over in an open world (read once per
            tensor object); default the bounding box of agents and queries, kept on the
            device, over a cell count fixed by the first call. Only speed depends on it.
        num_warps: Triton launch option (default ``BLOCK / 32``: one query per lane).
        query_vel: [M, D] query velocities for kernels with a field of view
            (default ``vel`` when ``query_pos`` is None).
        columns: 'all' (as ``reduce_dense``), 'positions' (sum only offsets and weights:
            velocity and feature columns come back 0 and are never read), or one of the
            two per kernel.
        epilogue: an ``Epilogue``: the kernel finishes that boid rule itself and returns
            each agent's update instead of the sums (agents as queries, no features;
            ``columns`` is then the rule's own).

    Returns:
        S: [K, M, 2D + F + 1], layout [positions (D), velocities (D), features (F), weight sum (1)];
        with an ``epilogue``, [N, D] the rule's update (acceleration, or mesa's new velocity).

    After the first call with a configuration (dimension, dtype, device, support, box,
    agent count) a call makes no host read and no host-to-device copy: see ``cells.py``.

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
    extra = _sum_columns(columns, len(kernels))
    positions = None
    if epilogue is not None:
        if query_pos is not None:
            raise ValueError("reduce_triton: an epilogue updates the agents themselves: no query_pos")
        extra, positions = _epilogue_columns(epilogue, kernels, features)
    if n_query == 0 or n_agents == 0 or len(kernels) == 0:
        if epilogue is not None:
            return torch.zeros(n_query, dim, device=pos.device, dtype=pos.dtype)
        return torch.zeros(len(kernels), n_query, 2 * dim + n_feat + 1, device=pos.device, dtype=pos.dtype)
    self_query = query_pos is None
    read_vel = has_fov(kernels) or epilogue is not None     # view cones and epilogues read query velocities
    if has_fov(kernels) and not self_query and query_vel is None:
        raise ValueError("reduce_triton: a kernel has a field of view (fov), so query_vel (the "
                         "queries' headings) is needed with query_pos")
    _require_triton(pos.device)
    device, dtype = pos.device, pos.dtype
    if self_query and query_index is None:
        query_index = torch.arange(n_agents, device=device)
    points = pos if self_query else torch.cat([pos, query_pos.to(dtype)])
    plan = _plan(support, dim, dtype, device, period, bounds, points.shape[0], 1, points)
    cells = plan.bin(pos, frame_points=points)
    order = cells.order
    need = any(extra)
    parts = [pos] + ([vel] if need else []) + ([features.to(dtype)] if need and features is not None else [])
    table = torch.cat(parts, 1)[order].contiguous()                     # [N, C], cell order

    qvel = None
    if self_query:
        qorder, qcell = order, cells.cell[order]
        qpos = table[:, :dim].contiguous()
        if read_vel:
            qvel = (vel if query_vel is None else query_vel.to(dtype))[order].contiguous()
    else:
        qc = plan.cell_ids(query_pos)
        qorder, _ = counting_sort(qc, plan.n_total)
        qcell = qc[qorder]
        qpos = query_pos.to(dtype)[qorder].contiguous()
        if read_vel:
            qvel = query_vel.to(dtype)[qorder].contiguous()
    qown = torch.full((n_query,), -1, device=device, dtype=torch.int64)
    if query_index is not None and any(k.exclude_self for k in kernels):
        inv = torch.empty_like(order)
        inv[order] = torch.arange(n_agents, device=device)
        qi = query_index.to(device=device, dtype=torch.int64)[qorder]
        ok = (qi >= 0) & (qi < n_agents)
        qown = torch.where(ok, inv[qi.clamp(0, n_agents - 1)], qown)
    return _launch(cells, table, qpos, qcell.to(torch.int32), qown.to(torch.int32), qorder, kernels, extra,
                   need, n_feat, _block_size(chunk_rows), num_warps, qvel, epilogue, positions)


def reduce_triton_batched(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                          period: torch.Tensor | None = None,
                          features: torch.Tensor | None = None,
                          bounds: torch.Tensor | None = None,
                          chunk_rows: int | None = None,
                          num_warps: int | None = None,
                          columns="all",
                          epilogue: Epilogue | None = None) -> torch.Tensor:
    """Kernel sums of E independent flocks in one launch: no pair across members.

    Every member gets its own copy of the cells (cell id = member * cells + local id),
    so each agent sees exactly the agents of its own member, periodic worlds included.

    Args:
        pos, vel: [E, N, D] float.
        kernels: K channels, the same for every member.
        period: [D] box lengths (shared), or None.
        features: [E, N, F] or None.
        bounds: [2, D] corners of an open world (default: the bounding box of all members).
        columns, epilogue: as ``reduce_triton``.

    Returns:
        S: [E, K, N, 2D + F + 1], member e's block equal to ``reduce_dense`` of member e
        (up to summation order); with an ``epilogue``, [E, N, D] updates.
    """
    support = _check_kernels(kernels)
    n_mem, n_agents, dim = pos.shape
    n_feat = 0 if features is None else features.shape[2]
    extra = _sum_columns(columns, len(kernels))
    positions = None
    if epilogue is not None:
        extra, positions = _epilogue_columns(epilogue, kernels, features)
        if n_mem == 0 or n_agents == 0:
            return torch.zeros(n_mem, n_agents, dim, device=pos.device, dtype=pos.dtype)
    if n_mem == 0 or n_agents == 0 or len(kernels) == 0:
        return torch.zeros(n_mem, len(kernels), n_agents, 2 * dim + n_feat + 1, device=pos.device,
                           dtype=pos.dtype)
    _require_triton(pos.device)
    device, dtype = pos.device, pos.dtype
    flat = pos.reshape(-1, dim)
    plan = _plan(support, dim, dtype, device, period, bounds, n_agents, n_mem, flat)
    member = torch.arange(n_mem, device=device).repeat_interleave(n_agents)
    cells = plan.bin(flat, member)
    order = cells.order
    need = any(extra)
    parts = [flat] + ([vel.reshape(-1, dim)] if need else [])
    if need and features is not None:
        parts.append(features.reshape(n_mem * n_agents, -1))
    table = torch.cat([p.to(dtype) for p in parts], 1)[order].contiguous()
    qown = torch.arange(flat.shape[0], device=device, dtype=torch.int32)
    if not any(k.exclude_self for k in kernels):
        qown = torch.full_like(qown, -1)
    read_vel = has_fov(kernels) or epilogue is not None
    qvel = vel.reshape(-1, dim).to(dtype)[order].contiguous() if read_vel else None
    out = _launch(cells, table, table[:, :dim].contiguous(), cells.cell[order].to(torch.int32), qown,
                  order, kernels, extra, need, n_feat, _block_size(chunk_rows), num_warps, qvel, epilogue,
                  positions)
    if epilogue is not None:
        return out.reshape(n_mem, n_agents, dim)
    return out.reshape(len(kernels), n_mem, n_agents, -1).permute(1, 0, 2, 3)


__all__ = ["CellList", "CellPlan", "DEFAULT_BLOCK", "EPILOGUES", "Epilogue", "KIND_IDS", "build_cells", "cell_geometry", "cell_permutation",
           "check_cell_plans", "counting_sort", "interpret_mode", "lane_efficiency", "mean_candidates",
           "reduce_triton", "reduce_triton_batched", "sort_state_by_cell", "triton_available", "triton_usable"]
