"""CUDA graphs: k whole steps of ``flock.step`` captured once, replayed as one launch.

At small N a step is a few dozen tiny kernels and the GPU waits on Python and on
launch latency; a ``torch.cuda.CUDAGraph`` of k steps replays them all with one
call. ``GraphedStepper(sim, steps_per_graph=k).step(n)`` advances ``sim`` exactly
as ``sim.step(n)`` does (same steps, same metrics rows), replaying the graph where
it can and stepping eagerly where it cannot.

The captured body is the step function itself, ``step_with_stats(state, params,
backend, noise)``, run k times from static position/velocity buffers back into
them, with the step's correction counters added into static device counters. The
simulation takes each replay's result through its public ``advance()``; nothing of
it is copied, saved or restored behind its back.

What falls back to eager stepping (``graph_blockers``), and why:

- not a CUDA device;
- a rule that converges (mean shift reads its shift on the host to stop);
- a backend that sizes its cell lists on the host (``CAPTURABLE_BACKENDS`` lists the rest);
- moving attractors (their position depends on the simulated time, a host number
  that a graph would freeze);
- a capture that fails for any other reason (logged with the error).

Metrics rows are taken between replays: with metrics on, a graph is replayed only where
its k steps contain no step ``metrics.every`` names; with metrics off every k steps
replay. The stepper never changes results: a replay runs the very kernels an eager
step runs, on the same data. Wander replays too: its noise is a function of the run's
``NoiseStream`` counter, a device tensor the graph increments as an eager step does (the
warm-up passes and the capture leave it where it was). After ``step(n)`` returns, ``sim.state`` holds tensors of
its own (not the graph's buffers).
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

from .state import FlockState
from .step import StepStats, step_with_stats

log = logging.getLogger(__name__)

# dense is a fixed sequence of kernels; the Triton cell list needs nothing from the host
# after its first (build) call, which the warm-up passes before capture make
CAPTURABLE_BACKENDS = ("dense", "triton")


class TorchGraph:
    """``torch.cuda.CUDAGraph`` behind the two calls the stepper makes."""

    def __init__(self):
        self.graph = torch.cuda.CUDAGraph()

    def capture(self, fn: Callable[[], None]) -> None:
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            fn()

    def replay(self) -> None:
        self.graph.replay()


def graph_blockers(sim) -> list[str]:
    """Reasons known before trying that ``sim``'s step cannot be captured (empty: try it)."""
    reasons = []
    params = sim.params
    if sim.device.type != "cuda":
        reasons.append(f"device is {sim.device}: CUDA graphs need a CUDA device")
    if params.rule.converges:
        reasons.append(f"{params.rule.name} tests convergence on the host every step")
    if sim.backend not in CAPTURABLE_BACKENDS:
        reasons.append(f"the {sim.backend} backend sizes its cells on the host every step; "
                       f"graphs hold only {', '.join(CAPTURABLE_BACKENDS)}")
    if any(at.path is not None for at in sim.scenario.attractors or []):
        reasons.append("attractors moving along a path depend on the simulated time, which a graph would freeze")
    return reasons


class GraphedStepper:
    """Steps a ``Simulation`` (one flock or a batch of members) k steps per CUDA graph replay.

    Args:
        sim: the simulation; it keeps working on its own between calls.
        steps_per_graph: k, whole steps per replay.
        warmup: eager passes of the k-step body before capture (on a side stream,
            results discarded), which initialise cuBLAS and the allocator.
        graph_factory: makes the graph object (``capture(fn)``, ``replay()``);
            default ``TorchGraph``. Tests pass an eager stand-in to check the
            bookkeeping on a CPU; with one given, the device is not checked.

    Attributes:
        mode: None before the first ``step``, then 'graph' or 'eager'.
        fallback_reason: why the stepper steps eagerly (None in graph mode).
        replays, eager_steps: counts of graph replays and of eager steps taken.
    """

    def __init__(self, sim, steps_per_graph: int = 8, *, warmup: int = 2,
                 graph_factory: Callable[[], object] | None = None):
        if int(steps_per_graph) < 1:
            raise ValueError(f"steps_per_graph: expected an integer >= 1, got {steps_per_graph!r}")
        self.sim = sim
        self.k = int(steps_per_graph)
        self.warmup = int(warmup)
        self.graph_factory = graph_factory
        self.mode: str | None = None
        self.fallback_reason: str | None = None
        self.replays = 0
        self.eager_steps = 0
        self._graph = None
        self._key = None

    # ------------------------------------------------------------ capture

    def _fallback(self, reason: str, level: int = logging.WARNING) -> None:
        self.mode = "eager"
        self.fallback_reason = reason
        self._graph = None
        log.log(level, "CUDA graph: stepping eagerly: %s", reason)

    def _state_key(self):
        sim = self.sim
        pos = sim.state.pos
        return (tuple(pos.shape), pos.dtype, pos.device, sim.backend, id(sim.params), id(sim.noise))

    def _body(self) -> None:
        """k steps of ``flock.step`` from the static buffers back into them; counters summed on the device."""
        state = FlockState(pos=self._pos, vel=self._vel, group=self._group)
        for _ in range(self.k):
            state, stats = step_with_stats(state, self._params, self._backend, self._noise)
            self._nan.add_(stats.nan_corrections)
            self._obstacles.add_(stats.obstacle_corrections)
        self._pos.copy_(state.pos)
        self._vel.copy_(state.vel)

    def _prepare(self) -> None:
        sim = self.sim
        blockers = graph_blockers(sim)
        if self.graph_factory is not None:
            blockers = [b for b in blockers if not b.startswith("device is")]
        if blockers:
            cpu = sim.device.type != "cuda"
            self._fallback("; ".join(blockers), logging.INFO if cpu else logging.WARNING)
            return
        self._params, self._backend, self._noise = sim.params, sim.backend, sim.noise
        self._pos, self._vel, self._group = sim.state.pos.clone(), sim.state.vel.clone(), sim.state.group
        self._nan = torch.zeros((), dtype=torch.int64, device=sim.device)
        self._obstacles = torch.zeros((), dtype=torch.int64, device=sim.device)
        cuda = sim.device.type == "cuda"
        drawn = self._noise.counter.clone()      # warm-up passes draw for real; the run must not see it
        try:
            if cuda and self.warmup:
                side = torch.cuda.Stream(sim.device)
                side.wait_stream(torch.cuda.current_stream(sim.device))
                with torch.cuda.stream(side):
                    for _ in range(self.warmup):
                        self._body()
                torch.cuda.current_stream(sim.device).wait_stream(side)
            graph = (self.graph_factory or TorchGraph)()
            graph.capture(self._body)
        except Exception as exc:  # noqa: BLE001 - any capture failure means: step eagerly
            if cuda:
                try:
                    torch.cuda.synchronize(sim.device)
                except Exception:  # noqa: BLE001
                    pass
            self._fallback(f"capture failed: {type(exc).__name__}: {exc}".splitlines()[0])
            return
        finally:
            self._noise.counter.copy_(drawn)
        self._graph = graph
        self._key = self._state_key()
        self.mode = "graph"
        self.fallback_reason = None
        log.info("CUDA graph: captured %d steps of %d agents (%s backend)", self.k, sim.state.n_agents, sim.backend)

    # ------------------------------------------------------------ stepping

    def step(self, n: int = 1):
        """Advance ``n`` steps, as ``sim.step(n)`` would. Returns the simulation."""
        sim = self.sim
        if self.mode == "graph" and self._state_key() != self._key:
            self.mode = None                                  # N, dtype, backend or params changed: capture again
        if self.mode is None:
            self._prepare()
        if self.mode == "eager":
            before = sim.step_count
            sim.step(n)
            self.eager_steps += sim.step_count - before
            return sim
        every = sim.scenario.metrics.every if sim.record_metrics else None
        remaining = int(n)
        staged = False
        while remaining > 0 and not sim.done:
            clear = self.k if every is None else every - sim.step_count % every
            if remaining >= self.k and clear >= self.k:
                if not staged:
                    self._pos.copy_(sim.state.pos)
                    self._vel.copy_(sim.state.vel)
                    staged = True
                self._nan.zero_()
                self._obstacles.zero_()
                self._graph.replay()
                self.replays += 1
                remaining -= self.k
                sim.advance(FlockState(pos=self._pos, vel=self._vel, group=self._group),
                            StepStats(nan_corrections=self._nan.clone(), obstacle_corrections=self._obstacles.clone()),
                            steps=self.k)
                if every is not None and sim.step_count % every == 0:
                    sim.record()
            else:
                if staged:
                    sim.state = FlockState(pos=self._pos.clone(), vel=self._vel.clone(), group=self._group)
                    staged = False
                sim.step(1)
                self.eager_steps += 1
                remaining -= 1
        if staged:
            sim.state = FlockState(pos=self._pos.clone(), vel=self._vel.clone(), group=self._group)
        return sim

    def __repr__(self) -> str:
        return (f"GraphedStepper(k={self.k}, mode={self.mode}, replays={self.replays}, "
                f"eager_steps={self.eager_steps}, fallback_reason={self.fallback_reason!r})")


__all__ = ["CAPTURABLE_BACKENDS", "GraphedStepper", "TorchGraph", "graph_blockers"]
