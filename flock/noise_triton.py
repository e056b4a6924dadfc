"""The noise stream's Philox4x32-10 words in one Triton kernel (``NoiseStream(engine='triton')``).

The same rounds as ``flock.noise.philox4x32`` (and its numba loop), one lane per
(member, row, block): the 32 x 32-bit products are formed whole in uint64, the counter is
read from its device tensor, so a CUDA graph replays the launch with the counter of the
moment. One launch per draw where the tensor ops take about 250. On a CPU it runs only
under Triton's interpreter (tests).
"""

from __future__ import annotations

import torch

from .neighbors.triton_grid import interpret_mode, triton, triton_usable

if triton is not None:
    import triton.language as tl

    def _philox_words_kernel(keys_ptr, ctr_ptr, out_ptr, total, n_rows, blocks, n_members,
                             ROUNDS: tl.constexpr, BLOCK: tl.constexpr):
        """out[e, i, b, :] = Philox4x32(i, b, ctr low, ctr high) under member e's round keys.

        keys: [ROUNDS, 2, B] int64 round keys; ctr: [1] int64; out: [B, n, blocks, 4] int64.
        """
        idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        live = idx < total
        b = idx % blocks
        rest = idx // blocks
        i = rest % n_rows
        e = rest // n_rows
        c = tl.load(ctr_ptr).to(tl.uint64)
        mask = tl.full([BLOCK], 0xFFFFFFFF, tl.uint64)
        s32 = tl.full([BLOCK], 32, tl.uint64)
        m0 = tl.full([BLOCK], 0xD2511F53, tl.uint64)
        m1 = tl.full([BLOCK], 0xCD9E8D57, tl.uint64)
        x0 = i.to(tl.uint64)
        x1 = b.to(tl.uint64)
        x2 = (c & mask)
        x3 = (c >> s32) + x0 * 0
        for r in tl.static_range(ROUNDS):
            k0 = tl.load(keys_ptr + (2 * r) * n_members + e, mask=live, other=0).to(tl.uint64)
            k1 = tl.load(keys_ptr + (2 * r + 1) * n_members + e, mask=live, other=0).to(tl.uint64)
            p0 = x0 * m0
            p1 = x2 * m1
            x0, x1, x2, x3 = (p1 >> s32) ^ x1 ^ k0, p1 & mask, (p0 >> s32) ^ x3 ^ k1, p0 & mask
        base = idx.to(tl.int64) * 4
        tl.store(out_ptr + base, x0.to(tl.int64), mask=live)
        tl.store(out_ptr + base + 1, x1.to(tl.int64), mask=live)
        tl.store(out_ptr + base + 2, x2.to(tl.int64), mask=live)
        tl.store(out_ptr + base + 3, x3.to(tl.int64), mask=live)

    KERNEL_SOURCE = _philox_words_kernel
else:  # pragma: no cover
    KERNEL_SOURCE = None

_JITTED: list = []
BLOCK = 256


def _kernel():
    if not _JITTED:
        if interpret_mode():
            from triton.runtime.interpreter import InterpretedFunction
            _JITTED.append(InterpretedFunction(KERNEL_SOURCE))
        else:
            from triton.runtime.jit import JITFunction
            _JITTED.append(JITFunction(KERNEL_SOURCE, do_not_specialize=["total", "n_rows", "blocks"]))
    return _JITTED[0]


def usable(device: torch.device) -> bool:
    """True when the kernel can run on ``device`` (CUDA, or the CPU under the interpreter)."""
    return triton_usable(device)


def philox_words(keys: torch.Tensor, counter: torch.Tensor, n_rows: int, blocks: int) -> torch.Tensor:
    """[B, n_rows, blocks, 4] int64 words in [0, 2^32).

    Args:
        keys: [ROUNDS, 2, B] int64 round keys on the device. counter: 0-dim int64 on the device.
    """
    rounds, _, n_members = keys.shape
    out = torch.empty(n_members, n_rows, blocks, 4, dtype=torch.int64, device=keys.device)
    total = n_members * n_rows * blocks
    if total:
        _kernel()[(triton.cdiv(total, BLOCK),)](keys, counter.reshape(1), out, total, n_rows, blocks, n_members,
                                                ROUNDS=rounds, BLOCK=BLOCK, enable_fp_fusion=True)
    return out


__all__ = ["BLOCK", "KERNEL_SOURCE", "philox_words", "usable"]
