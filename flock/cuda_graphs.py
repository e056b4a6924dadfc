"""CUDA graphs: k whole simulation steps captured once, replayed as one launch.

At small N a step is a few dozen tiny kernels and the GPU waits on Python and on
launch latency; a ``torch.cuda.CUDAGraph`` of k steps replays them all with one
call. ``GraphedStepper(sim, steps_per_graph=k).step(n)`` advances ``sim`` exactly
as ``sim.step(n)`` does (same steps, same metrics rows), replaying the graph where
it can and stepping eagerly where it cannot.

What a graph needs, and what falls back:

- Static shapes: fixed N (``add_agents`` after capture triggers a new capture).
- No host synchronisation inside the step. ``Simulation._step_once`` has one by
  design for mean shift (``float()`` of the shift, for the convergence test), so
  mean shift never captures. Metrics rows sync too: they are taken between
  replays, on the steps ``metrics.every`` names, and a graph is only replayed
  where its k steps contain no such step (the rest run eagerly).
- No host-to-device copies inside the step: a tensor made from a Python list
  on the GPU (``torch.as_tensor(world.size, device="cuda")``) is a synchronous
  copy, which a capture refuses.
- The neighbor backend: dense is a fixed sequence of kernels; grid and triton
  size their cell lists on the host every step (bounding box, cell counts,
  histogram sizes), so they step eagerly; fused is mean shift only.

As the engine stands (see the report of the issue), two things still break a
capture of boids or circles on the dense backend, and the stepper then logs the
capture error and steps eagerly: ``reduce_dense`` drops self-pairs with a boolean
mask index (a device-to-host sync for the mask's size), and ``World`` builds its
size/origin tensors from tuples every step (host-to-device copies). Both are
one-line changes in those modules; nothing here works around them.

Randomness: no step draws random numbers today; a step that does would need its
generator registered with the graph (``CUDAGraph.register_generator_state``).

The stepper never changes results: a replay runs the very kernels an eager step
runs, on the same data. After ``step(n)`` returns, ``sim.state`` holds tensors of
its own (not the graph's buffers), so a caller may keep them.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

log = logging.getLogger(__name__)

CAPTURABLE_BACKENDS = ("dense",)


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
    if sim.device.type != "cuda":
        reasons.append(f"device is {sim.device}: CUDA graphs need a CUDA device")
    if sim.scenario.is_meanshift:
        reasons.append("mean shift tests convergence on the host every step (float() of the shift)")
    if sim.backend not in CAPTURABLE_BACKENDS:
        reasons.append(f"the {sim.backend} backend sizes its cells on the host every step; "
                       f"graphs hold only {', '.join(CAPTURABLE_BACKENDS)}")
    if getattr(sim, "point_forces", None):
        reasons.append("point forces copy their centres to the device every step")
    scenario = sim.scenario
    for key in ("species", "obstacles", "attractors"):
        if getattr(scenario, key, None):
            reasons.append(f"{key} build small tensors from Python lists every step")
    return reasons


def _host_scalars(sim) -> dict:
    return {k: v for k, v in vars(sim).items() if isinstance(v, (bool, int, float, str, type(None)))}


def _device_tensors(sim) -> dict:
    return {k: v for k, v in vars(sim).items() if isinstance(v, torch.Tensor)}


class GraphedStepper:
    """Steps a ``Simulation`` (or an ensemble's ``MemberBatch``) k steps per CUDA graph replay.

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
        self._pos = self._vel = None

    # ------------------------------------------------------------ capture

    def _fallback(self, reason: str, level: int = logging.WARNING) -> None:
        self.mode = "eager"
        self.fallback_reason = reason
        self._graph = None
        log.log(level, "CUDA graph: stepping eagerly: %s", reason)

    def _state_key(self):
        pos = self.sim.state.pos
        return (tuple(pos.shape), pos.dtype, pos.device, self.sim.backend)

    def _body(self) -> None:
        """k steps from the static buffers back into them; host-side effects undone."""
        sim = self.sim
        saved, state = _host_scalars(sim), sim._state
        try:
            sim._state = state.replace(pos=self._pos, vel=self._vel)
            for _ in range(self.k):
                sim._step_once()
            self._pos.copy_(sim._state.pos)
            self._vel.copy_(sim._state.vel)
        finally:
            sim.__dict__.update(saved)
            sim._state = state

    def _prepare(self) -> None:
        sim = self.sim
        blockers = graph_blockers(sim)
        if self.graph_factory is not None:
            blockers = [b for b in blockers if not b.startswith("device is")]
        if blockers:
            cpu = sim.device.type != "cuda"
            self._fallback("; ".join(blockers), logging.INFO if cpu else logging.WARNING)
            return
        tensors = {k: v.clone() for k, v in _device_tensors(sim).items()}
        self._pos = sim.state.pos.clone()
        self._vel = sim.state.vel.clone()
        cuda = sim.device.type == "cuda"
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
            # warm-up passes and the capture run really executed (or were recorded):
            # put every device tensor of the simulation back as it was
            for k, v in tensors.items():
                current = getattr(sim, k, None)
                if isinstance(current, torch.Tensor) and current.shape == v.shape:
                    current.copy_(v)
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
            self.mode = None                                  # N, dtype or backend changed: capture again
        if self.mode is None:
            self._prepare()
        if self.mode == "eager":
            before = sim.step_count
            sim.step(n)
            self.eager_steps += sim.step_count - before
            return sim
        every = sim.scenario.metrics.every
        remaining = int(n)
        staged = False
        while remaining > 0 and not sim.done:
            before_record = every - sim.step_count % every
            if remaining >= self.k and before_record >= self.k:
                if not staged:
                    self._pos.copy_(sim.state.pos)
                    self._vel.copy_(sim.state.vel)
                    staged = True
                self._graph.replay()
                self.replays += 1
                sim.step_count += self.k
                remaining -= self.k
                sim._state = sim._state.replace(pos=self._pos, vel=self._vel)
                if sim.step_count % every == 0:
                    sim._record()
            else:
                if staged:
                    sim._state = sim._state.replace(pos=self._pos.clone(), vel=self._vel.clone())
                    staged = False
                sim.step(1)
                self.eager_steps += 1
                remaining -= 1
        if staged:
            sim._state = sim._state.replace(pos=self._pos.clone(), vel=self._vel.clone())
        return sim

    def __repr__(self) -> str:
        return (f"GraphedStepper(k={self.k}, mode={self.mode}, replays={self.replays}, "
                f"eager_steps={self.eager_steps}, fallback_reason={self.fallback_reason!r})")


__all__ = ["CAPTURABLE_BACKENDS", "GraphedStepper", "TorchGraph", "graph_blockers"]
