"""Progress within one large neighbor pass, and a prompt Ctrl-C (issue 14, pathological clumping).

A million agents in one spot make one step's neighbor pass N^2 candidate pairs: hours on
a CPU, in one compiled call that Python cannot interrupt (a Ctrl-C is raised only when the
call returns). Inside ``report_progress(...)`` the CPU backends (numba, grid, dense) cut a
pass with at least ``min_pairs`` candidate pairs into chunks of queries of about
``chunk_seconds`` of work each and return to Python between chunks, so that

- ``callback(done_pairs, total_pairs)`` is called before the first chunk (done 0) and after
  every chunk (the last call has done == total), and
- a ``KeyboardInterrupt`` is raised between chunks, within about one chunk of the signal.
  The pass, and so the step, is then abandoned: nothing of it is applied.

Chunking changes no result: each query's sum is computed by the same code over the same
candidates in the same order (bit-identical to the unchunked pass). Outside the context,
or for a pass below ``min_pairs``, the backends run exactly as before: no chunking, no
per-chunk Python work, no host read. ``flocksim run`` turns it on around its stepping loop
(``flock.run_progress`` draws the bar); a library user can do the same::

    with flock.neighbors.progress.report_progress(lambda done, total: print(done / total)):
        sim.step(10)

The setting is a ``contextvars.ContextVar``: per thread (and per asyncio task), so a
progress bar set in one thread never fires in another.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

# A pass with more candidate pairs than this is chunked: about 1-2 s of work on the 2-core
# CPU box (numba, three Reynolds channels, every candidate inside the support: 5e7 to 1e8
# pairs/s measured on a clump of 20,000 agents).
LARGE_PASS_PAIRS = 1e8
# Seconds of work per chunk: the longest a Ctrl-C waits, and the progress bar's period.
CHUNK_SECONDS = 0.3
# The first chunk is sized at this rate (pairs/s, on the low side of the CPU figures above);
# the next ones at the rate the pass has measured so far.
_FIRST_RATE = 2e7
# a chunk grows at most this much over the one before (the first rates are noisy)
_MAX_GROWTH = 4.0

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class PassProgress:
    """What ``report_progress`` set: the callback and when and how finely passes are cut.

    Attributes:
        callback: ``callback(done_pairs, total_pairs)``, or None (chunks only: a prompt Ctrl-C).
        min_pairs: passes with at least this many candidate pairs are chunked.
        chunk_seconds: target seconds of work per chunk.
        chunk_pairs: a fixed number of candidate pairs per chunk instead (tests), or None.
    """

    callback: ProgressCallback | None = None
    min_pairs: float = LARGE_PASS_PAIRS
    chunk_seconds: float = CHUNK_SECONDS
    chunk_pairs: int | None = None

    def report(self, done: int, total: int) -> None:
        if self.callback is not None:
            self.callback(int(done), int(total))


_ACTIVE: contextvars.ContextVar[PassProgress | None] = contextvars.ContextVar("flock_pass_progress", default=None)


@contextlib.contextmanager
def report_progress(callback: ProgressCallback | None = None, *, min_pairs: float = LARGE_PASS_PAIRS,
                    chunk_seconds: float = CHUNK_SECONDS, chunk_pairs: int | None = None) -> Iterator[PassProgress]:
    """Chunk large neighbor passes (and report their progress) inside the ``with`` block.

    Args:
        callback: ``callback(done_pairs, total_pairs)`` (ints) after every chunk, or None.
        min_pairs: passes with at least this many candidate pairs are chunked (>= 0).
        chunk_seconds: target seconds of work per chunk (> 0).
        chunk_pairs: fixed candidate pairs per chunk (>= 1) instead of ``chunk_seconds`` (tests).
    """
    if not min_pairs >= 0:
        raise ValueError(f"report_progress: min_pairs: expected a number >= 0, got {min_pairs!r}")
    if not chunk_seconds > 0:
        raise ValueError(f"report_progress: chunk_seconds: expected a number > 0, got {chunk_seconds!r}")
    if chunk_pairs is not None and not chunk_pairs >= 1:
        raise ValueError(f"report_progress: chunk_pairs: expected an integer >= 1, got {chunk_pairs!r}")
    setting = PassProgress(callback, float(min_pairs), float(chunk_seconds),
                           None if chunk_pairs is None else int(chunk_pairs))
    token = _ACTIVE.set(setting)
    try:
        yield setting
    finally:
        _ACTIVE.reset(token)


def active_progress() -> PassProgress | None:
    """The setting of the innermost ``report_progress`` of this thread, or None (the fast path)."""
    return _ACTIVE.get()


def run_in_chunks(cumulative: np.ndarray, run: Callable[[int, int], None], setting: PassProgress) -> None:
    """Call ``run(q0, q1)`` over consecutive query ranges covering [0, M), reporting progress.

    Args:
        cumulative: [M] int64 inclusive cumulative candidate pairs of the queries, in the
            order ``run`` takes them (the cost model: one candidate pair, one unit of work).
        run: computes the queries [q0, q1); must not depend on how the range is cut.
        setting: ``active_progress()``.
    """
    n_query = len(cumulative)
    total = int(cumulative[-1]) if n_query else 0
    setting.report(0, total)
    start = time.perf_counter()
    q0, done, last = 0, 0, 0
    while q0 < n_query:
        if setting.chunk_pairs is not None:
            size = setting.chunk_pairs
        else:
            elapsed = time.perf_counter() - start
            rate = done / elapsed if done and elapsed > 0 else _FIRST_RATE
            size = rate * setting.chunk_seconds
            if last:
                size = min(size, _MAX_GROWTH * last)
        # the queries whose cumulative cost stays within done + size (at least one query)
        q1 = int(np.searchsorted(cumulative, done + max(1, int(size)), side="right"))
        q1 = min(n_query, max(q1, q0 + 1))
        run(q0, q1)
        last = int(cumulative[q1 - 1]) - done
        done = int(cumulative[q1 - 1])
        q0 = q1
        setting.report(done, total)


__all__ = ["CHUNK_SECONDS", "LARGE_PASS_PAIRS", "PassProgress", "ProgressCallback", "active_progress",
           "report_progress", "run_in_chunks"]
