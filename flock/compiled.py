"""torch.compile for the boid rules' arithmetic on large CPU flocks, with an eager fallback.

The rule arithmetic of a boid step (means, unit vectors, clipped steering, ``torch.where``
over [N, D] tensors) is a dozen elementwise passes over memory in eager mode; inductor fuses
them into one loop. Measured on the project's quiet 2-core box, one thread, the Reynolds
rule's ``reynolds_acceleration`` alone, float32, median of 9 calls after the first:

    N            eager ms   compiled ms   first call (compile) s
    1,000          0.62        0.23              9.3
    100,000       20.8         6.97              3.6
    1,000,000    316          95.9               3.6

and a whole standard-flock step (numba backend, metrics off, compiled and eager steps
alternated in one process, one thread) went from 170 to 149 ms at 100,000 agents (1.14x) and
from 1,813 to 1,529 ms at 1,000,000 (1.19x). So compiling pays where a step is long and runs
many times, and not for a small flock (a
window on 300 agents would wait ~9 s for 0.4 ms a step). ``for_flock(fn, pos, ...)`` returns
the compiled function from ``COMPILE_MIN_AGENTS`` agents on the CPU, else ``fn`` itself. The compiled result equals eager to float rounding (inductor reorders and fuses:
~1e-8 in float32, tested to a tolerance), not bit for bit, which is why small flocks (every
golden and reference test) stay eager. If compiling fails (no C++ compiler, an unsupported
operation, any error), the failure is said once on stderr and the eager function runs from
then on; nothing is lost but speed. Autograd (a rule under training) always runs eager.
"""

from __future__ import annotations

import sys
import warnings
from typing import Callable

import torch

# from this many agents a CPU step's boid arithmetic runs compiled (table above)
COMPILE_MIN_AGENTS = 100_000

_COMPILED: dict[Callable, Callable] = {}
_FAILED: set[Callable] = set()


def _guarded(fn: Callable) -> Callable:
    """``torch.compile(fn)`` that falls back to ``fn`` for good on any compile or run error."""
    compiled = None

    def call(*args, **kwargs):
        nonlocal compiled
        if fn in _FAILED:
            return fn(*args, **kwargs)
        try:
            with warnings.catch_warnings():
                # torch's deprecation notes on importing its compiler and dynamo's notes while
                # tracing (cached helper calls) are about torch and speed, not about results
                warnings.simplefilter("ignore")
                if compiled is None:
                    compiled = torch.compile(fn, dynamic=False)
                return compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to eager
            _FAILED.add(fn)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"flock: torch.compile of {fn.__name__} failed ({type(exc).__name__}: {first[:200]}); "
                  "running it eagerly", file=sys.stderr)
            return fn(*args, **kwargs)

    call.__wrapped__ = fn
    return call


def for_flock(fn: Callable, pos: torch.Tensor, *more: torch.Tensor) -> Callable:
    """``fn`` compiled when the flock of ``pos`` ([N, D], its device) gains from it, else ``fn``.

    Compiled from ``COMPILE_MIN_AGENTS`` agents on the CPU, unless autograd records
    (grad mode on and ``pos`` or one of ``more`` requires grad); once per function per
    process (inductor's own disk cache makes later processes faster).
    """
    if pos.device.type != "cpu" or pos.shape[0] < COMPILE_MIN_AGENTS or fn in _FAILED:
        return fn
    if torch.is_grad_enabled() and any(t.requires_grad for t in (pos, *more) if isinstance(t, torch.Tensor)):
        return fn
    compiled = _COMPILED.get(fn)
    if compiled is None:
        compiled = _COMPILED[fn] = _guarded(fn)
    return compiled


__all__ = ["COMPILE_MIN_AGENTS", "for_flock"]
