"""The step pipeline: one step for every formulation, extra terms everywhere, no host sync, no cycles."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import flock
from flock.forces import PointForce
from flock.formulations import RULES
from flock.scenario import load_scenario, validate_scenario
from flock.step import step
from flock.terms import Wander

ROOT = Path(__file__).resolve().parent.parent
FLOCK = ROOT / "flock"

# ---------------------------------------------------------------- host synchronisation


class SyncRecorder(TorchDispatchMode):
    """Records the ops that read a device value back to the host."""

    SYNC_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_consecutive", "item"}

    def __init__(self):
        super().__init__()
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.SYNC_OPS:
            self.hits.append(name)
        if name in ("index", "index_put", "index_put_"):
            indices = args[1] if len(args) > 1 else ()
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices if i is not None):
                self.hits.append(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


class HostReadRecorder(TorchFunctionMode):
    """Records Python-level reads of tensor values (``.item()``, ``.tolist()``, ``float(t)``, ``bool(t)``)."""

    NAMES = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero"}

    def __init__(self):
        super().__init__()
        self.hits: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.NAMES:
            self.hits.append(name)
        return func(*args, **(kwargs or {}))


SYNC_CASES = {
    "seed": ("boids_seed.yaml", ["agents.count=300"]),
    "reynolds": ("boids_torus.yaml", ["agents.count=300"]),
    "mesa": ("mesa_flockers.yaml", []),
    "netlogo": ("netlogo_flocking.yaml", []),
    "species": ("predator_prey.yaml", ["agents.count=200"]),
    "circles": ("bench_circles3d.yaml", ["agents.count=300", "world.boundary=wrap"]),
    "obstacles": ("obstacles.yaml", ["agents.count=100"]),
}


@pytest.mark.parametrize("backend", ["dense", "grid"])
@pytest.mark.parametrize("case", sorted(SYNC_CASES))
def test_a_step_never_synchronises_with_the_host(case, backend):
    path, overrides = SYNC_CASES[case]
    sc = load_scenario(ROOT / "scenarios" / path, overrides=overrides)
    sim = flock.Simulation.from_scenario(sc, device="cpu", backend=backend, record_metrics=False)
    sim.step(1)
    params = sim.params
    drawn = int(sim.noise.counter)
    with SyncRecorder() as dispatch, HostReadRecorder() as function:
        new = step(sim.state, params, sim.backend, sim.noise, time=sim.time)
    assert dispatch.hits == [] and function.hits == []
    assert torch.isfinite(new.pos).all()
    wanders = any(isinstance(t, Wander) for t in params.terms)
    assert int(sim.noise.counter) == drawn + wanders          # wander drew, on the device
    assert wanders == (case == "obstacles")                   # the case that covers wander


def test_the_recorder_sees_a_sync():
    x = torch.arange(5.0)
    with SyncRecorder() as dispatch, HostReadRecorder() as function:
        float(x.sum())
        x[x > 2]
    assert "_local_scalar_dense" in dispatch.hits and any("boolean" in h for h in dispatch.hits)
    assert "__float__" in function.hits


# ---------------------------------------------------------------- extra terms for every formulation


def _data(name: str) -> dict:
    sc = load_scenario(ROOT / "scenarios" / name)
    return sc.to_dict()


def _mean_distance(sim, point) -> float:
    period = sim.world.period(sim.state.pos)
    off = flock.world.minimum_image(sim.state.pos - torch.tensor(point, dtype=sim.state.pos.dtype), period)
    return float(torch.linalg.vector_norm(off, dim=1).mean())


@pytest.mark.parametrize("name,point", [("mesa_flockers.yaml", [50.0, 50.0]), ("netlogo_flocking.yaml", [35.0, 35.0])])
def test_an_attractor_pulls_constant_speed_formulations(name, point):
    data = _data(name)
    with_attractor = copy.deepcopy(data)
    with_attractor["attractors"] = [{"position": point, "strength": 0.3}]
    runs = [flock.Simulation(validate_scenario(d), device="cpu", dtype="float64", seed=3).step(40)
            for d in (data, with_attractor)]
    without, pulled = (_mean_distance(sim, point) for sim in runs)
    assert pulled < 0.8 * without
    speed = torch.linalg.vector_norm(runs[1].state.vel, dim=1)
    torch.testing.assert_close(speed, torch.full_like(speed, runs[1].scenario.agents.max_speed))


def test_a_window_point_force_changes_a_mesa_run():
    sc = load_scenario(ROOT / "scenarios" / "mesa_flockers.yaml")
    plain = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64").step(20)
    pushed = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64")
    pushed.point_forces.append(PointForce(center=(50.0, 50.0), strength=-0.5, radius=30.0))
    pushed.step(20)
    assert not torch.allclose(plain.state.pos, pushed.state.pos)
    assert _mean_distance(pushed, [50.0, 50.0]) > _mean_distance(plain, [50.0, 50.0])


def test_wander_in_mesa_changes_the_run_and_is_reproducible():
    data = _data("mesa_flockers.yaml")
    wandering = copy.deepcopy(data)
    wandering["rules"]["wander"] = 0.05
    plain = flock.Simulation(validate_scenario(data), device="cpu", dtype="float64").step(10)
    a = flock.Simulation(validate_scenario(wandering), device="cpu", dtype="float64").step(10)
    b = flock.Simulation(validate_scenario(wandering), device="cpu", dtype="float64").step(10)
    assert torch.equal(a.state.pos, b.state.pos)
    assert not torch.allclose(a.state.pos, plain.state.pos)


def test_point_forces_act_on_circles():
    sc = load_scenario(ROOT / "scenarios" / "bench_circles3d.yaml", overrides=["agents.count=200"])
    plain = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64", backend="dense").step(5)
    pulled = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64", backend="dense")
    centre = tuple(float(v) for v in pulled.state.pos.mean(0))
    pulled.point_forces.append(PointForce(center=centre, strength=0.05))
    pulled.step(5)
    assert _mean_distance(pulled, list(centre)) < _mean_distance(plain, list(centre))


def test_mean_shift_refuses_point_forces():
    sim = flock.Simulation.from_scenario(ROOT / "scenarios" / "meanshift_seed.yaml", device="cpu")
    sim.point_forces.append(PointForce(center=(0.0, 0.0), strength=1.0))
    with pytest.raises(flock.ScenarioError, match="meanshift"):
        sim.step(1)


# ---------------------------------------------------------------- state dict, constructor


def test_state_dict_round_trip_continues_bit_identically():
    sc = load_scenario(ROOT / "scenarios" / "obstacles.yaml", overrides=["agents.count=60"])
    a = flock.Simulation.from_scenario(sc, device="cpu", dtype="float64").step(7)
    saved = {k: (v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in a.state_dict().items()}
    b = flock.Simulation(a.scenario, device="cpu", dtype="float64", state=a.state.clone())
    b.load_state_dict(saved)
    a.step(5)
    b.step(5)
    assert torch.equal(a.state.pos, b.state.pos) and a.step_count == b.step_count == 12
    assert a.metrics.rows == b.metrics.rows


# ---------------------------------------------------------------- structure


def test_every_formulation_is_registered():
    schema_names = {"seed", "reynolds", "mesa", "netlogo", "circles", "meanshift"}
    assert schema_names | {"groups"} <= set(RULES)


def test_no_module_switches_on_the_formulation_string():
    pattern = re.compile(r"formulation\s*(==|!=|in\b|not in\b)|is_meanshift|is_boids")
    allowed = {"formulations.py"}
    offenders = []
    for path in sorted([*FLOCK.rglob("*.py"), *(ROOT / "render").rglob("*.py")]):
        if path.name in allowed or path.name.startswith("scenario"):
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and not code.strip().startswith(('"', "'")):
                offenders.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert offenders == []


def _imports(path: Path) -> set[str]:
    """flock modules imported anywhere in ``path`` (module level or inside functions), TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("flock"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("flock"))
    return found


def test_no_import_cycle_in_flock():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in FLOCK.rglob("*.py")}
    graph = {m: {i for i in _imports(p) if i in modules and i != m and not m.startswith(i + ".") and i != "flock"}
             for m, p in modules.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m, trail):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle.extend(trail[trail.index(n):] + [n] if n in trail else [m, n])
                return True
            if state.get(n) is None and visit(n, trail + [n]):
                return True
        state[m] = 2
        return False

    for m in sorted(graph):
        if state.get(m) is None and visit(m, [m]):
            break
    assert cycle == [], " -> ".join(cycle)


def test_an_interrupt_after_a_step_still_writes_its_metrics_row(monkeypatch):
    sim = flock.Simulation.from_scenario(ROOT / "scenarios" / "boids_seed.yaml", device="cpu")
    real = flock.simulation.Simulation.measure
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 2:                      # the row of step 2, once
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(flock.simulation.Simulation, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sim.step(5)
    assert sim.step_count == 2 and sim.metrics["step"] == [0, 1, 2]


def test_a_rule_in_a_module_of_its_own_is_found_without_importing_it_first():
    import subprocess
    import sys

    code = ("from flock.scenario import load_scenario; "
            f"sc = load_scenario({str(ROOT / 'scenarios' / 'neural_boids.yaml')!r}); print(sc.rules.formulation)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "neural"
