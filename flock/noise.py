"""Counter-based noise: random numbers as a pure function of (seed, counter, row, axis).

A run's randomness inside the step (wander) comes from a ``NoiseStream``: Philox4x32-10
(Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011;
the generator behind cuRAND and torch's CUDA RNG) evaluated with integer tensor ops. A
draw is ``philox(counter words, key)`` with

    key      = the member's seed (low, high 32 bits)
    c0       = the agent's row within its member
    c1       = the block of four numbers (axis // 4)
    c2, c3   = the stream's draw counter (low, high 32 bits), a 0-dim int64 device tensor

so a draw needs no host state at all: the counter lives on the device and is incremented
by the draw itself, which is what lets a CUDA graph replay steps that draw (each replay
advances the counter; a ``torch.Generator`` would replay the same numbers, or none).

What follows from the construction:

- the same seed gives the same numbers on every device: the integer words are exact, the
  uniforms derived from them exact; the normals then go through the device's log, sqrt,
  cos and sin (equal up to their last-place rounding across CPU and CUDA);
- members of an ensemble draw under their own seeds, so member e's noise is the noise a
  run of its seed alone draws; agents and draws never share a counter;
- the stream's whole state is one integer (``get_state``/``set_state``), which checkpoints
  save, so a resumed run draws exactly what it would have drawn.

Every product is formed from 16-bit halves, so no int64 intermediate exceeds 2^49 and no
signed overflow ever happens (torch leaves int64 overflow undefined across devices).

The words are computed by torch ops on any device (about 250 elementwise ops per draw), by
one numba loop on a CPU or by one Triton kernel on CUDA (``flock.noise_triton``); the
loops form the products whole in uint64 (``engine``; the same words bit for bit). Normals come from Box-Muller on pairs of uniforms: (u1, u2) -> sqrt(-2 ln u1) (cos, sin)
(2 pi u2), with u1 in (0, 1] from the word's top 24 (float32) or all 32 (float64) bits.
Their tails stop at 5.9 (float32) / 6.7 (float64) standard deviations, a probability of
about 1e-9 / 3e-11 per draw in a true normal.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

ROUNDS = 10
MASK32 = 0xFFFFFFFF
PHILOX_M = (0xD2511F53, 0xCD9E8D57)          # Random123's PHILOX_M4x32_0, _1
PHILOX_W = (0x9E3779B9, 0xBB67AE85)          # its Weyl key increments (golden ratio, sqrt(3) - 1)
WORDS = 4                                    # numbers per Philox4x32 evaluation


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of ``a * m``, ``a`` int64 in [0, 2^32), ``m`` a 32-bit constant."""
    m_lo, m_hi = m & 0xFFFF, m >> 16
    p_lo = a * m_lo                          # < 2^48
    t = a * m_hi + (p_lo >> 16)              # a * m = t * 2^16 + (p_lo & 0xFFFF), t < 2^49
    return t >> 16, ((t & 0xFFFF) << 16) | (p_lo & 0xFFFF)


def round_keys(key: Sequence, rounds: int = ROUNDS) -> list:
    """The ``rounds`` (k0, k1) round keys of Philox4x32 from key words (ints or int64 tensors in [0, 2^32))."""
    k0, k1 = key
    keys = [(k0, k1)]
    for _ in range(rounds - 1):
        k0, k1 = (k0 + PHILOX_W[0]) & MASK32, (k1 + PHILOX_W[1]) & MASK32
        keys.append((k0, k1))
    return keys


def philox4x32(counter: Sequence, key: Sequence, rounds: int = ROUNDS, *, schedule: list | None = None) -> list:
    """Philox4x32-``rounds`` of four counter words under two key words.

    Args:
        counter: 4 int64 tensors (broadcastable) or ints, each in [0, 2^32).
        key: 2 int64 tensors or ints in [0, 2^32).
        schedule: ``round_keys(key, rounds)`` computed once by the caller (then ``key`` is unused).
    Returns:
        4 int64 tensors (or ints) in [0, 2^32): the random words.
    """
    c0, c1, c2, c3 = counter
    for k0, k1 in schedule if schedule is not None else round_keys(key, rounds):
        hi0, lo0 = _mulhilo(c0, PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return [c0, c1, c2, c3]


try:  # the CPU engine; without numba the torch ops run everywhere
    import numba
except ImportError:  # pragma: no cover - numba is a dependency, kept optional here
    numba = None

if numba is not None:
    _U32 = numba.uint64(MASK32)
    _S32 = numba.uint64(32)
    _M0, _M1 = numba.uint64(PHILOX_M[0]), numba.uint64(PHILOX_M[1])

    @numba.njit(cache=True, parallel=True)
    def _philox_words_numba(keys, ctr, out):
        """out[e, i, b, :] = Philox4x32(i, b, ctr low, ctr high) under member e's round keys.

        keys: [R, 2, B] int64 round keys; ctr: [1] int64; out: [B, n, blocks, 4] int64. The
        products are formed whole in uint64 (a 32 x 32-bit product fits), unlike the torch ops.
        """
        n_members, n, blocks = out.shape[0], out.shape[1], out.shape[2]
        c = numba.uint64(ctr[0])
        lo, hi = c & _U32, c >> _S32
        for i in numba.prange(n):
            for e in range(n_members):
                for b in range(blocks):
                    x0, x1, x2, x3 = numba.uint64(i), numba.uint64(b), lo, hi
                    for r in range(keys.shape[0]):
                        p0, p1 = _M0 * x0, _M1 * x2
                        x0, x1, x2, x3 = ((p1 >> _S32) ^ x1 ^ numba.uint64(keys[r, 0, e]), p1 & _U32,
                                          (p0 >> _S32) ^ x3 ^ numba.uint64(keys[r, 1, e]), p0 & _U32)
                    out[e, i, b, 0] = numba.int64(x0)
                    out[e, i, b, 1] = numba.int64(x1)
                    out[e, i, b, 2] = numba.int64(x2)
                    out[e, i, b, 3] = numba.int64(x3)


def _uniform(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniforms in (0, 1] of the dtype from 32-bit words (the top 24 bits for float32, exact)."""
    bits = 24 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 32
    return ((words >> (32 - bits)).to(dtype) + 0.5) * (2.0 ** -bits)


def box_muller(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Standard normals [..., 2M] from random words [..., 2M] (pairs along the last axis)."""
    u1, u2 = _uniform(words[..., 0::2], dtype), _uniform(words[..., 1::2], dtype)
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = (2.0 * math.pi) * u2
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).flatten(-2)


def _engine(engine: str, device: torch.device) -> str:
    """The engine ``engine`` names on ``device`` ('auto': numba on a CPU, Triton on CUDA, else torch)."""
    def triton_ok():
        from .noise_triton import usable  # noqa: PLC0415  (imports triton)

        return usable(device)

    if engine == "auto":
        if device.type == "cpu" and numba is not None:
            return "numba"
        return "triton" if device.type == "cuda" and triton_ok() else "torch"
    ok = {"torch": True, "numba": numba is not None and device.type == "cpu",
          "triton": engine == "triton" and triton_ok()}
    if not ok.get(engine, False):
        raise ValueError(f"NoiseStream: engine: expected 'auto', 'torch', 'numba' (CPU, with numba installed) or "
                         f"'triton' (CUDA, or Triton's interpreter), got {engine!r} on {device}")
    return engine


class NoiseStream:
    """Counter-based normal noise for B members stacked as B * N rows (see the module docstring).

    Args:
        seeds: [B] the members' seeds (ints >= 0; taken modulo 2^64).
        device: where the counter and the keys live.
        engine: how the integer words are computed: 'torch' (tensor ops, any device; about
            250 aten ops per draw), 'numba' (one compiled loop, CPU only), 'triton' (one
            kernel launch, CUDA) or 'auto' (numba on a CPU, Triton on CUDA when they import,
            else torch). Every engine gives the same words, bit for bit.

    Attributes:
        seeds: the seeds. counter: 0-dim int64 device tensor, draws made so far (the graph
            of a CUDA-graph replay holds this very tensor: ``set_state`` copies into it).
    """

    def __init__(self, seeds: Sequence[int], device: str | torch.device = "cpu", *, engine: str = "auto"):
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("NoiseStream: expected at least one seed, got none")
        self.counter = torch.zeros((), dtype=torch.int64, device=device)
        self.device = self.counter.device                     # with its index ('cuda:0', not 'cuda')
        wide = [s % 2**64 for s in self.seeds]
        # [B, 1, 1]: one key per member, broadcast over its rows and blocks
        per_seed = [round_keys((s & MASK32, s >> 32)) for s in wide]               # [B][ROUNDS](k0, k1)
        self._schedule = [tuple(torch.tensor([keys[r][j] for keys in per_seed], dtype=torch.int64,
                                             device=self.device).view(-1, 1, 1) for j in (0, 1))
                          for r in range(ROUNDS)]
        self.engine = _engine(engine, self.device)
        keys = torch.stack([torch.stack(pair) for pair in self._schedule]).reshape(ROUNDS, 2, -1).contiguous()
        if self.engine == "numba":
            self._keys_np = keys.numpy()
        elif self.engine == "triton":
            self._keys = keys

    @property
    def n_members(self) -> int:
        return len(self.seeds)

    def words(self, n_rows: int, n_words: int, counter: torch.Tensor | None = None) -> torch.Tensor:
        """[B * n, n_words] int64 random words in [0, 2^32) for n_rows = B * n rows, at ``counter``
        (default: the stream's counter, which is then not advanced)."""
        b = self.n_members
        n = n_rows // b
        ctr = self.counter if counter is None else counter
        blocks = -(-n_words // WORDS)
        if self.engine == "numba":
            out = torch.empty(b, n, blocks, WORDS, dtype=torch.int64)
            # the counter is read in place (a CPU tensor: no device to synchronise with)
            _philox_words_numba(self._keys_np, ctr.detach().reshape(1).numpy(), out.numpy())
            return out.reshape(b * n, blocks * WORDS)[:, :n_words]
        if self.engine == "triton":
            from .noise_triton import philox_words  # noqa: PLC0415  (imports triton)

            return philox_words(self._keys, ctr, n, blocks).reshape(b * n, blocks * WORDS)[:, :n_words]
        row = torch.arange(n, dtype=torch.int64, device=self.device).view(1, n, 1)
        block = torch.arange(blocks, dtype=torch.int64, device=self.device).view(1, 1, blocks)
        row, block = torch.broadcast_tensors(row, block)
        out = philox4x32((row, block, ctr & MASK32, (ctr >> 32) & MASK32), None, schedule=self._schedule)
        # [B, n, blocks, 4] -> [B * n, blocks * 4]
        return torch.stack(out, dim=-1).reshape(b * n, blocks * WORDS)[:, :n_words]

    def normal(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normals of ``shape`` = (B * n, D) in ``dtype``, then advance the counter by one.

        Row i of member e draws from (seed_e, counter, i); D numbers per row.
        """
        n_rows, dim = int(shape[0]), int(shape[1])
        if n_rows % self.n_members:
            raise ValueError(f"NoiseStream.normal: {n_rows} rows do not split into {self.n_members} members")
        z = box_muller(self.words(n_rows, 2 * -(-dim // 2)), dtype)[:, :dim]
        self.counter.add_(1)
        return z

    def get_state(self) -> torch.Tensor:
        """[1] int64 CPU tensor: the counter (everything the stream needs to continue)."""
        return self.counter.detach().reshape(1).cpu().clone()

    def set_state(self, state) -> None:
        """Continue from ``get_state()`` output (a [1] int64 tensor or an int), in place."""
        value = torch.as_tensor(state, dtype=torch.int64).reshape(-1)
        if value.numel() != 1 or int(value[0]) < 0:
            raise ValueError(f"NoiseStream.set_state: expected one counter >= 0, got {value.tolist()}")
        self.counter.copy_(value[0])

    def __repr__(self) -> str:
        return f"NoiseStream(seeds={self.seeds}, device={self.device})"


__all__ = ["NoiseStream", "box_muller", "philox4x32", "round_keys"]
