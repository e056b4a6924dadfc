"""GraphedStepper: same trajectory and metrics as ``sim.step``, graph or not.

On a CPU the real path is the fallback; the graph bookkeeping (static buffers,
step counts, metrics cadence, eager steps between replays) is checked with an
eager stand-in for ``torch.cuda.CUDAGraph`` that runs the captured body on replay.
"""

import logging

import pytest
import torch

from flock import Simulation, load_scenario
from flock.cuda_graphs import GraphedStepper, graph_blockers
from flock.ensemble import EnsembleSimulation

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


class EagerGraph:
    """Stand-in for a CUDA graph: capture runs the body once (as torch runs the Python), replay runs it again."""

    def capture(self, fn):
        self.fn = fn
        fn()

    def replay(self):
        self.fn()


class FailingGraph:
    def capture(self, fn):
        raise RuntimeError("operation not permitted when stream is capturing")

    def replay(self):  # pragma: no cover
        raise AssertionError("never captured")


def _sim(path="scenarios/boids_torus.yaml", n=120, every=5, device="cpu", **kw):
    sc = load_scenario(path)
    if n is not None:
        sc.agents.count = n
    sc.metrics.every = every
    return Simulation.from_scenario(sc, device=device, dtype="float64", **kw)


def _same(a, b):
    assert torch.equal(a.state.pos, b.state.pos)
    assert torch.equal(a.state.vel, b.state.vel)
    assert a.step_count == b.step_count
    assert a.metrics.rows == b.metrics.rows


def test_cpu_falls_back_with_a_reason_and_the_same_trajectory(caplog):
    ref, sim = _sim(), _sim()
    ref.step(23)
    with caplog.at_level(logging.INFO, logger="flock.cuda_graphs"):
        stepper = GraphedStepper(sim, steps_per_graph=4)
        stepper.step(23)
    assert stepper.mode == "eager"
    assert "CUDA device" in stepper.fallback_reason
    assert "stepping eagerly" in caplog.text
    _same(sim, ref)


@pytest.mark.parametrize("path,n", [("scenarios/boids_torus.yaml", 120), ("scenarios/boids_seed.yaml", 80),
                                    ("scenarios/bench_circles3d.yaml", 150)])
def test_graph_bookkeeping_matches_sim_step(path, n):
    ref, sim = _sim(path, n), _sim(path, n)
    ref.step(7)
    ref.step(16)
    stepper = GraphedStepper(sim, steps_per_graph=4, graph_factory=EagerGraph)
    stepper.step(7)
    kept = sim.state.pos
    stepper.step(16)
    assert stepper.mode == "graph" and stepper.replays > 0 and stepper.eager_steps > 0
    _same(sim, ref)
    assert kept is not sim.state.pos and kept.data_ptr() != stepper._pos.data_ptr()
    assert sim.state.pos.data_ptr() != stepper._pos.data_ptr()


def test_user_edits_between_calls_are_picked_up():
    ref, sim = _sim(), _sim()
    stepper = GraphedStepper(sim, steps_per_graph=5, graph_factory=EagerGraph)
    stepper.step(10)
    ref.step(10)
    for s in (sim, ref):
        s.state.vel = s.state.vel * 0.5
    stepper.step(10)
    ref.step(10)
    _same(sim, ref)


def test_shape_change_captures_again():
    ref, sim = _sim(), _sim()
    stepper = GraphedStepper(sim, steps_per_graph=5, graph_factory=EagerGraph)
    stepper.step(5)
    ref.step(5)
    extra = torch.tensor([[10.0, 10.0], [20.0, 30.0]], dtype=torch.float64)
    sim.add_agents(extra, vel=torch.ones(2, 2))
    ref.add_agents(extra, vel=torch.ones(2, 2))
    stepper.step(10)
    ref.step(10)
    assert stepper._pos.shape[0] == 122
    _same(sim, ref)


def test_capture_failure_falls_back(caplog):
    ref, sim = _sim(), _sim()
    with caplog.at_level(logging.WARNING, logger="flock.cuda_graphs"):
        stepper = GraphedStepper(sim, steps_per_graph=4, graph_factory=FailingGraph)
        stepper.step(12)
    ref.step(12)
    assert stepper.mode == "eager" and "capture failed" in stepper.fallback_reason
    assert "operation not permitted" in caplog.text
    _same(sim, ref)


def test_known_blockers():
    ms = _sim("scenarios/meanshift_seed.yaml", None)
    assert any("meanshift tests convergence" in r for r in graph_blockers(ms))
    stepper = GraphedStepper(ms, steps_per_graph=3, graph_factory=EagerGraph)
    ref = _sim("scenarios/meanshift_seed.yaml", None)
    stepper.step(6)
    ref.step(6)
    assert stepper.mode == "eager"
    _same(ms, ref)
    grid = _sim(backend="grid")
    assert any("grid backend" in r for r in graph_blockers(grid))
    with pytest.raises(ValueError, match="steps_per_graph"):
        GraphedStepper(grid, steps_per_graph=0)


@pytest.mark.parametrize("members", [1, 3])
def test_wander_replays_and_draws_what_eager_steps_draw(members):
    """Wander is no blocker: the replayed steps advance the noise counter as eager steps do,
    and the warm-up/capture passes leave it where it was."""
    seeds = None if members == 1 else [5, 6, 7]
    ref, sim = (_sim("scenarios/obstacles.yaml", 30, backend="dense", seeds=seeds) for _ in range(2))
    assert graph_blockers(sim) == ["device is cpu: CUDA graphs need a CUDA device"]
    stepper = GraphedStepper(sim, steps_per_graph=4, graph_factory=EagerGraph)
    stepper.step(13)
    ref.step(13)
    assert stepper.mode == "graph" and stepper.replays > 0
    _same(sim, ref)
    assert int(sim.noise.counter) == int(ref.noise.counter) == 13


def test_metrics_off_replays_graphs_whatever_metrics_every_says():
    ref = _sim(every=1, record_metrics=False)
    sim = _sim(every=1, record_metrics=False)
    stepper = GraphedStepper(sim, steps_per_graph=4, graph_factory=EagerGraph)
    stepper.step(12)
    ref.step(12)
    assert stepper.replays == 3 and stepper.eager_steps == 0
    _same(sim, ref)


def test_ensemble_batch_steps_in_graphs():
    sc = load_scenario("scenarios/boids_torus.yaml")
    sc.agents.count = 60
    sc.metrics.every = 4
    ens = EnsembleSimulation.from_scenario(sc, seeds=[1, 2, 3], device="cpu", dtype="float64")
    ref = EnsembleSimulation.from_scenario(sc, seeds=[1, 2, 3], device="cpu", dtype="float64")
    stepper = GraphedStepper(ens.batches[0], steps_per_graph=3, graph_factory=EagerGraph)
    stepper.step(14)
    ref.step(14)
    assert stepper.replays > 0
    assert torch.equal(ens.pos, ref.pos)
    assert torch.equal(ens.member_steps, ref.member_steps)
    assert ens.metrics.rows == ref.metrics.rows


@cuda
@pytest.mark.parametrize("path,n", [("scenarios/bench_circles3d.yaml", 1000), ("scenarios/boids_torus.yaml", 1000)])
def test_cuda_graph_matches_eager(path, n):
    ref = _sim(path, n, device="cuda", backend="dense")
    sim = _sim(path, n, device="cuda", backend="dense")
    ref.step(20)
    stepper = GraphedStepper(sim, steps_per_graph=5)
    stepper.step(20)
    # a replay runs the eager kernels on the same data: equal whether it captured or fell back
    assert torch.allclose(sim.state.pos, ref.state.pos, rtol=0, atol=1e-9), stepper
    assert sim.step_count == ref.step_count


@cuda
def test_cuda_capture_succeeds_for_circles_dense():
    sim = _sim("scenarios/bench_circles3d.yaml", 1000, device="cuda", backend="dense")
    stepper = GraphedStepper(sim, steps_per_graph=5)
    stepper.step(10)
    assert stepper.mode == "graph", stepper.fallback_reason
