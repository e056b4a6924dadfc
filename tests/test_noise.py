"""The counter-based noise stream: Philox4x32-10 exactly, normal numbers, independence, no host state."""

from __future__ import annotations

import math
import random

import pytest
import torch
from scipy import stats

from flock.noise import NoiseStream, box_muller, philox4x32

MASK = 0xFFFFFFFF

# Random123's known-answer vectors (its tests/kat_vectors): counter, key, output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def reference_philox(ctr, key, rounds=10):
    """Philox4x32 in Python integers, the products formed whole (no 16-bit halves)."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK, (p0 >> 32) ^ c3 ^ k1, p0 & MASK
    return (c0, c1, c2, c3)


@pytest.mark.parametrize("ctr,key,out", KAT)
def test_known_answers_as_tensors(ctr, key, out):
    words = philox4x32([torch.tensor([c]) for c in ctr], [torch.tensor([k]) for k in key])
    assert tuple(int(w) for w in words) == out == reference_philox(ctr, key)


def test_tensor_philox_matches_the_whole_product_reference():
    rng = random.Random(3)
    edges = [0, 1, 0xFFFF, 0x10000, MASK - 1, MASK]
    rows = [tuple(rng.choice(edges) if rng.random() < 0.3 else rng.getrandbits(32) for _ in range(6))
            for _ in range(500)]
    cols = list(zip(*rows))
    words = philox4x32([torch.tensor(c) for c in cols[:4]], [torch.tensor(k) for k in cols[4:]])
    got = list(zip(*(w.tolist() for w in words)))
    assert got == [reference_philox(r[:4], r[4:]) for r in rows]


def _normals(stream, n, dim, dtype=torch.float64):
    return stream.normal((n, dim), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_draws_are_standard_normal(dtype):
    z = _normals(NoiseStream([11]), 25_000, 4, dtype)                   # 1e5 numbers
    assert z.dtype == dtype and torch.isfinite(z).all()
    flat = z.double().flatten().numpy()
    n = flat.size
    assert abs(flat.mean()) < 5 / math.sqrt(n)
    assert abs(flat.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(stats.skew(flat)) < 5 * math.sqrt(6 / n) and abs(stats.kurtosis(flat)) < 5 * math.sqrt(24 / n)
    assert stats.kstest(flat, "norm").pvalue > 1e-3
    for axis in range(4):                                               # every axis on its own too
        assert stats.kstest(z[:, axis].double().numpy(), "norm").pvalue > 1e-3


def test_uniform_words_fill_every_bit():
    words = NoiseStream([2]).words(50_000, 4).flatten()
    assert words.min() >= 0 and words.max() <= MASK
    bits = torch.stack([(words >> b) & 1 for b in range(32)]).double().mean(1)
    assert (bits - 0.5).abs().max() < 5 * 0.5 / math.sqrt(words.numel())
    assert stats.kstest(words.double().numpy() / 2**32, "uniform").pvalue > 1e-3


def _corr(a, b):
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


def test_neighbouring_agents_axes_steps_and_members_are_uncorrelated():
    n = 50_000
    limit = 5 / math.sqrt(n)
    stream = NoiseStream([4, 5])
    first = stream.normal((2 * n, 3))                                   # two members of n rows
    second = stream.normal((2 * n, 3))                                  # the next step
    a, b = first[:n], first[n:]
    assert abs(_corr(a[:-1], a[1:])) < limit                            # agent i vs i + 1
    assert abs(_corr(a[:, 0], a[:, 1])) < limit and abs(_corr(a[:, 1], a[:, 2])) < limit
    assert abs(_corr(first, second)) < limit                            # step t vs t + 1
    assert abs(_corr(a, b)) < limit                                     # member seeds 4 vs 5
    assert abs(_corr(first ** 2, second ** 2)) < limit                  # not just uncorrelated signs


def test_a_draw_is_a_pure_function_of_seed_counter_and_row():
    one, again = NoiseStream([9]), NoiseStream([9])
    x = one.normal((100, 2))
    assert int(one.counter) == 1 and torch.equal(x, again.normal((100, 2)))
    assert not torch.equal(x, one.normal((100, 2)))                     # the counter moved on
    assert not torch.equal(x, NoiseStream([10]).normal((100, 2)))
    # fewer rows: the same numbers for the rows there are (row i never depends on N)
    assert torch.equal(NoiseStream([9]).normal((40, 2)), x[:40])
    # an ensemble member draws what a stream of its own seed draws
    both = NoiseStream([3, 9]).normal((200, 2))
    assert torch.equal(both[100:], x) and torch.equal(both[:100], NoiseStream([3]).normal((100, 2)))
    # state round trip, also into another stream (a resumed run)
    state = one.get_state()
    fresh = NoiseStream([9])
    fresh.set_state(state)
    assert torch.equal(fresh.normal((5, 3)), one.normal((5, 3)))


def test_large_counters_and_seeds_stay_in_32_bit_words():
    stream = NoiseStream([2**63 - 1, 0])
    stream.set_state(2**40 + 3)                                         # the counter's high word in use
    words = stream.words(10, 4)
    assert words.min() >= 0 and words.max() <= MASK
    row = (0, 0, (2**40 + 3) & MASK, (2**40 + 3) >> 32)
    assert tuple(words[0].tolist()) == reference_philox(row, ((2**63 - 1) & MASK, (2**63 - 1) >> 32))


@pytest.mark.parametrize("seeds", [[1], [3, 2**63 - 1, 0]])
def test_the_numba_engine_draws_the_torch_engines_words_bit_for_bit(seeds):
    pytest.importorskip("numba")
    fast, ops = NoiseStream(seeds, engine="numba"), NoiseStream(seeds, engine="torch")
    assert NoiseStream(seeds).engine == "numba"                        # the CPU default
    for counter in (0, 5, 2**40 + 7):
        fast.set_state(counter)
        ops.set_state(counter)
        assert torch.equal(fast.words(len(seeds) * 300, 7), ops.words(len(seeds) * 300, 7))
        assert torch.equal(fast.normal((len(seeds) * 300, 3)), ops.normal((len(seeds) * 300, 3)))
        assert int(fast.counter) == int(ops.counter) == counter + 1


def test_the_triton_kernel_draws_the_torch_engines_words_bit_for_bit():
    """Under Triton's interpreter on the CPU (tests/conftest.py); compiled for sm_90 in test_triton_grid."""
    pytest.importorskip("triton")
    from flock.noise_triton import usable

    if not usable(torch.device("cpu")):
        pytest.skip("Triton's interpreter is off and there is no CUDA device")
    seeds = [3, 2**63 - 1]
    fast, ops = NoiseStream(seeds, engine="triton"), NoiseStream(seeds, engine="torch")
    for counter in (0, 2**40 + 7):
        fast.set_state(counter)
        ops.set_state(counter)
        assert torch.equal(fast.words(2 * 150, 6), ops.words(2 * 150, 6))
        assert torch.equal(fast.normal((2 * 150, 2)), ops.normal((2 * 150, 2)))
        assert int(fast.counter) == counter + 1


def test_box_muller_keeps_the_radius_finite():
    words = torch.tensor([[0, 0], [MASK, MASK], [0, MASK]])
    for dtype in (torch.float32, torch.float64):
        z = box_muller(words, dtype)
        assert torch.isfinite(z).all() and z.abs().max() < 7


def test_bad_use_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one seed"):
        NoiseStream([])
    with pytest.raises(ValueError, match="do not split into 2 members"):
        NoiseStream([1, 2]).normal((5, 2))
    with pytest.raises(ValueError, match="one counter >= 0"):
        NoiseStream([1]).set_state(-1)
    with pytest.raises(ValueError, match="engine: expected 'auto', 'torch', 'numba'"):
        NoiseStream([1], engine="philox")
