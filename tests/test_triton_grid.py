"""The Triton cell-list kernel against the dense backend.

On a machine without CUDA the kernels run under Triton's interpreter. Triton builds
its own library interpreted or compiled once, at ``import triton``, so this module
switches the interpreter on before that import (and puts the variable back after
its tests); if something imported triton earlier in the session, the CPU cases
skip and say how to run them. On CUDA the kernels are compiled. Inputs stay small
(N <= 150): the interpreter runs a Python loop per candidate step.
"""

import math
import os
import subprocess
import sys

import pytest
import torch

_PREVIOUS = os.environ.get("TRITON_INTERPRET")
if not torch.cuda.is_available() and "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"

triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

from flock.kernels import KERNEL_KINDS, Kernel  # noqa: E402
from flock.neighbors.dense import reduce_dense  # noqa: E402
from flock.neighbors import cells as tg_cells  # noqa: E402
from flock.neighbors import triton_grid as tg  # noqa: E402
from flock.state import FlockState  # noqa: E402

# one example channel of every kind of flock.kernels: a kind missing here fails test_every_kind_is_covered
EXAMPLES = {
    "flat": Kernel("flat", radius=2.0),
    "triangular": Kernel("triangular", radius=1.5, exclude_self=False),
    "gaussian": Kernel("gaussian", bandwidth=0.7, radius=2.0),
    "inverse_square": Kernel("inverse_square", radius=1.0),
    "inverse": Kernel("inverse", radius=1.7),
    "circles": Kernel("circles", radius=2.0, strength=0.05),
}
ALL_KINDS = [EXAMPLES[k] for k in KERNEL_KINDS if k in EXAMPLES] + [
    Kernel("flat", radius=2.0, open_center=True, exclude_self=False)]


@pytest.fixture(scope="module", autouse=True)
def _restore_interpret_variable():
    yield
    if _PREVIOUS is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _PREVIOUS


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def tdevice(request):
    """cpu (Triton interpreter) or cuda (compiled)."""
    if request.param == "cpu" and not tg.interpret_mode():
        pytest.skip("triton was imported before this module could switch its interpreter on; run "
                    "TRITON_INTERPRET=1 pytest tests/test_triton_grid.py")
    return torch.device(request.param)


def test_the_interpreter_is_on_without_a_gpu():
    """Without CUDA every Triton test runs interpreted; a suite where triton was imported too
    early would skip them all, so that is a failure, not a skip."""
    if not torch.cuda.is_available():
        assert tg.interpret_mode(), "triton was imported before TRITON_INTERPRET=1 was set (see tests/conftest.py)"


def _cloud(n, dim, box, dtype, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    size = torch.tensor(box[:dim], dtype=torch.float64)
    pos = (torch.rand(n, dim, generator=gen, dtype=torch.float64) * size).to(device, dtype)
    vel = torch.randn(n, dim, generator=gen, dtype=torch.float64).to(device, dtype)
    return pos, vel, size.to(device, dtype)


def _close(a, b, dtype):
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    scale = b.abs().amax(dim=(-1, -2), keepdim=True).clamp_min(1.0)
    assert a.shape == b.shape
    assert torch.all((a - b).abs() <= tol * scale), float(((a - b).abs() / scale).max())


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_every_kind_matches_dense(tdevice, dim, periodic):
    pos, vel, size = _cloud(120, dim, (10.0, 8.0, 9.0), torch.float64, tdevice)
    period = size if periodic else None
    got = tg.reduce_triton(pos, vel, ALL_KINDS, period=period, chunk_rows=128)
    _close(got, reduce_dense(pos, vel, ALL_KINDS, period=period), torch.float64)


@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_every_kind_is_covered(tdevice, kind):
    # each kind of flock.kernels alone, 2-D wrap with velocities and features, against dense
    assert kind in EXAMPLES, f"add an example {kind!r} kernel to EXAMPLES"
    assert kind in tg.KIND_IDS, f"the triton kernel has no formula for {kind!r}"
    pos, vel, size = _cloud(40, 2, (6.0, 5.0), torch.float64, tdevice, seed=11)
    feats = torch.randn(40, 1, dtype=torch.float64).to(tdevice)
    k = [EXAMPLES[kind]]
    got = tg.reduce_triton(pos, vel, k, period=size, features=feats, chunk_rows=64)
    _close(got, reduce_dense(pos, vel, k, period=size, features=feats), torch.float64)


def test_unknown_kind_is_refused_by_name():
    fake = Kernel("flat", radius=1.0)
    object.__setattr__(fake, "kind", "cosine")
    with pytest.raises(ValueError, match="'cosine'"):
        tg.reduce_triton(torch.zeros(3, 2), torch.zeros(3, 2), [fake])


def test_positions_only_columns(tdevice):
    # circles' channels sum offsets and weights only: velocity and feature columns stay 0
    kernels = [Kernel("circles", radius=2.0, strength=0.05), Kernel("flat", radius=2.0, open_center=True)]
    pos, vel, size = _cloud(40, 2, (6.0, 6.0), torch.float64, tdevice, seed=12)
    feats = torch.randn(40, 2, dtype=torch.float64).to(tdevice)
    want = reduce_dense(pos, vel, kernels, period=size, features=feats)
    got = tg.reduce_triton(pos, vel, kernels, period=size, features=feats, columns="positions")
    keep = torch.ones(want.shape[-1], dtype=torch.bool)
    keep[2:-1] = False
    _close(got[..., keep], want[..., keep], torch.float64)
    assert torch.all(got[..., ~keep] == 0)
    mixed = tg.reduce_triton(pos, vel, kernels, period=size, features=feats, columns=["positions", "all"])
    _close(mixed[1], want[1], torch.float64)
    assert torch.all(mixed[0][..., ~keep] == 0)
    with pytest.raises(ValueError, match="columns"):
        tg.reduce_triton(pos, vel, kernels, columns="velocities")


FOV_KINDS = [Kernel("flat", radius=2.0, fov=240), Kernel("inverse_square", radius=1.5, fov=120),
             Kernel("triangular", radius=1.8), Kernel("gaussian", bandwidth=0.7, radius=2.0, fov=300)]


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
def test_field_of_view_matches_dense(tdevice, dim, periodic):
    pos, vel, size = _cloud(100, dim, (8.0, 7.0, 6.0), torch.float64, tdevice, seed=5)
    vel[:4] = 0.0      # at rest: sees all around
    period = size if periodic else None
    got = tg.reduce_triton(pos, vel, FOV_KINDS, period=period, chunk_rows=128)
    _close(got, reduce_dense(pos, vel, FOV_KINDS, period=period), torch.float64)


def test_field_of_view_with_queries_and_members(tdevice):
    pos, vel, _ = _cloud(90, 2, (6.0, 6.0), torch.float64, tdevice, seed=6)
    q, qv = pos[:30] + 0.05, torch.flip(vel[:30], [1])
    k = [Kernel("flat", radius=1.5, fov=200, exclude_self=False)]
    got = tg.reduce_triton(pos, vel, k, query_pos=q, query_vel=qv, chunk_rows=64)
    _close(got, reduce_dense(pos, vel, k, query_pos=q, query_vel=qv), torch.float64)
    with pytest.raises(ValueError, match="query_vel"):
        tg.reduce_triton(pos, vel, k, query_pos=q)
    members = torch.stack([pos[:45], pos[45:]]), torch.stack([vel[:45], vel[45:]])
    batched = tg.reduce_triton_batched(*members, FOV_KINDS, chunk_rows=64)
    for e in range(2):
        _close(batched[e], reduce_dense(members[0][e], members[1][e], FOV_KINDS), torch.float64)


def test_float32_circles_3d(tdevice):
    # the benchmark's two channels, in the default dtype
    kernels = [Kernel("circles", radius=2.0, strength=0.05), Kernel("flat", radius=2.0, open_center=True)]
    pos, vel, _ = _cloud(150, 3, (8.0, 8.0, 8.0), torch.float32, tdevice, seed=1)
    pos = pos - 4.0
    got = tg.reduce_triton(pos, vel, kernels, chunk_rows=256)
    _close(got, reduce_dense(pos, vel, kernels), torch.float32)


def test_small_periodic_box_visits_each_cell_once(tdevice):
    # 1 and 2 cells per axis: the offsets -1, 0, +1 would name a cell twice
    pos, vel, size = _cloud(60, 3, (2.5, 4.5, 7.0), torch.float64, tdevice, seed=2)
    kernels = [Kernel("flat", radius=1.2), Kernel("triangular", radius=2.0)]
    got = tg.reduce_triton(pos, vel, kernels, period=size, chunk_rows=64)
    _close(got, reduce_dense(pos, vel, kernels, period=size), torch.float64)


def test_queries_features_and_query_index(tdevice):
    pos, vel, size = _cloud(90, 2, (9.0, 7.0), torch.float64, tdevice, seed=3)
    feats = torch.randn(90, 2, dtype=torch.float64).to(tdevice)
    queries = (torch.rand(40, 2, dtype=torch.float64) * size.cpu()).to(tdevice)
    queries[:10] = pos[:10]
    qidx = torch.full((40,), -1, dtype=torch.int64, device=tdevice)
    qidx[:10] = torch.arange(10, device=tdevice)
    kernels = [Kernel("flat", radius=1.5), Kernel("gaussian", bandwidth=0.5, radius=1.5, exclude_self=False)]
    for period in (None, size):
        args = dict(period=period, query_pos=queries, query_index=qidx, features=feats)
        got = tg.reduce_triton(pos, vel, kernels, chunk_rows=64, **args)
        _close(got, reduce_dense(pos, vel, kernels, **args), torch.float64)


def test_open_world_bounds_and_outliers(tdevice):
    # bounds narrower than the cloud: outliers land in the edge cells, sums unchanged
    pos, vel, _ = _cloud(80, 2, (12.0, 6.0), torch.float64, tdevice, seed=4)
    kernels = [Kernel("flat", radius=1.0)]
    bounds = torch.tensor([[3.0, 1.0], [8.0, 4.0]], dtype=torch.float64)
    got = tg.reduce_triton(pos, vel, kernels, bounds=bounds, chunk_rows=128)
    _close(got, reduce_dense(pos, vel, kernels), torch.float64)


def test_edge_cases(tdevice):
    kernels = [Kernel("flat", radius=1.0), Kernel("circles", radius=1.0)]
    empty = torch.zeros(0, 2, dtype=torch.float64, device=tdevice)
    assert tg.reduce_triton(empty, empty, kernels).shape == (2, 0, 5)
    one = torch.ones(1, 3, dtype=torch.float64, device=tdevice)
    _close(tg.reduce_triton(one, one, kernels), reduce_dense(one, one, kernels), torch.float64)
    # everyone at one point: one overfull cell (the counting sort falls back to argsort)
    same = torch.full((40, 2), 3.0, dtype=torch.float64, device=tdevice)
    vel = torch.randn(40, 2, dtype=torch.float64).to(tdevice)
    _close(tg.reduce_triton(same, vel, kernels), reduce_dense(same, vel, kernels), torch.float64)


def test_batched_members_match_one_by_one(tdevice):
    kernels = [Kernel("flat", radius=1.5), Kernel("inverse_square", radius=0.8)]
    pos = torch.stack([_cloud(50, 2, (6.0, 6.0), torch.float64, tdevice, seed=s)[0] for s in range(3)])
    vel = torch.stack([_cloud(50, 2, (6.0, 6.0), torch.float64, tdevice, seed=s)[1] for s in range(3)])
    size = torch.tensor([6.0, 6.0], dtype=torch.float64, device=tdevice)
    for period in (None, size):
        got = tg.reduce_triton_batched(pos, vel, kernels, period=period, chunk_rows=256)
        want = torch.stack([reduce_dense(pos[e], vel[e], kernels, period=period) for e in range(3)])
        _close(got, want, torch.float64)


def test_counting_sort_is_the_stable_argsort(tdevice):
    gen = torch.Generator().manual_seed(5)
    keys = torch.randint(0, 37, (500,), generator=gen).to(tdevice)
    order, ptr = tg.counting_sort(keys, 40)
    assert torch.equal(order, torch.argsort(keys, stable=True))
    assert torch.equal(ptr[1:] - ptr[:-1], torch.bincount(keys, minlength=40))


def test_cell_permutation_sorts_and_permutes_sums(tdevice):
    pos, vel, size = _cloud(100, 2, (10.0, 10.0), torch.float64, tdevice, seed=6)
    state = FlockState(pos=pos, vel=vel)
    new, perm = tg.sort_state_by_cell(state, 1.5, period=size)
    geo = tg.cell_geometry(pos, 1.5, period=size)
    assert torch.all(torch.diff(geo.cell_ids(new.pos)) >= 0)
    assert torch.equal(new.pos, pos[perm])
    kernels = [Kernel("flat", radius=1.5)]
    before = tg.reduce_triton(pos, vel, kernels, period=size, chunk_rows=128)
    after = tg.reduce_triton(new.pos, new.vel, kernels, period=size, chunk_rows=128)
    _close(after, before[:, perm], torch.float64)


@pytest.mark.parametrize("box", [(10.0, 10.0), (3.0, 5.0)], ids=["wide", "1-and-2-cells"])
def test_mean_candidates_counts_the_scanned_cells(box):
    pos, _, size = _cloud(200, 2, box, torch.float64, "cpu", seed=7)
    kernels = [Kernel("flat", radius=2.0)]
    for period in (None, size):
        geo = tg.cell_geometry(pos, 2.0, period=period)
        cell = geo.cell_ids(pos)
        n = torch.tensor(geo.n_cells)
        c = torch.stack([cell % n[0], cell // n[0]], 1)
        diff = (c[:, None, :] - c[None, :, :]).abs()
        if period is not None:
            diff = torch.minimum(diff, n - diff)
        brute = (diff <= 1).all(-1).sum(1).double().mean().item()
        assert math.isclose(tg.mean_candidates(pos, kernels, period=period), brute)


def test_unbounded_gaussian_is_a_value_error():
    pos = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="unbounded support"):
        tg.reduce_triton(pos, pos, [Kernel("gaussian", bandwidth=1.0)])


def test_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(tg, "interpret_mode", lambda: False)
    pos = torch.rand(5, 2)
    with pytest.raises(ValueError, match="CUDA device"):
        tg.reduce_triton(pos, pos, [Kernel("flat", radius=1.0)])


_COMPILE_SM90 = """
import json, sys
sys.path.insert(0, "tools")
import triton_sass
from flock.neighbors import triton_grid as tg
jit = tg._kernels()["cell_sum"]
print("NOSPEC", sorted(jit.arg_names[i] if isinstance(i, int) else i for i in jit.do_not_specialize))
rows = {}
for name in ("circles3d_f32_wrap", "boids2d_f32_wrap"):
    rows[name] = triton_sass.analyse(triton_sass.compile_variant(triton_sass.VARIANTS[name], 90), 90)
rows["noise_philox"] = triton_sass.analyse(triton_sass.compile_noise(90), 90)
print("ROWS", json.dumps(rows))
"""


@pytest.mark.slow
def test_kernel_compiles_for_sm90_without_a_gpu():
    # the interpreter does not type-check like the compiler: build PTX and a cubin for an
    # H100/H200 (sm_90) in a child process where triton is not interpreted, and read the
    # static proxies of tools/triton_sass.py: no barrier in the candidate loop, no spills
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", _COMPILE_SM90], capture_output=True, text=True, env=env,
                         timeout=600, cwd=root)
    if res.returncode != 0 and ("ptxas" in res.stderr or "ModuleNotFoundError" in res.stderr):
        pytest.skip(f"triton cannot compile for sm_90 here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines() if line.startswith(("NOSPEC", "ROWS")))
    assert eval(lines["NOSPEC"]) == sorted(tg._NO_SPECIALIZE)
    import json

    rows = json.loads(lines["ROWS"])
    assert rows.pop("noise_philox")["bar_sync"] == 0          # the noise kernel: no loop, no barrier
    for name, row in rows.items():
        assert row["loop_bar_sync"] == 0, (name, row)
        assert row["spill_bytes"] == 0, (name, row)
        assert row["registers"] is not None and row["registers"] <= 255, (name, row)


@pytest.mark.parametrize("path,n", [("scenarios/boids_torus.yaml", 80), ("scenarios/bench_circles3d.yaml", 40)])
def test_ensemble_on_the_triton_backend_matches_dense(tdevice, path, n):
    from flock import load_scenario
    from flock.ensemble import EnsembleSimulation

    sc = load_scenario(path)
    sc.agents.count = n
    if sc.world.boundary == "open":
        sc.world.size = [5.0, 5.0, 5.0]            # a few cells per axis at radius 2 (the default
        sc.world.origin = [-2.5, -2.5, -2.5]       # box holds 64,000 agents)
    kw = dict(seeds=[0, 1, 2], device=tdevice, dtype="float64", record_metrics=False)
    tri = EnsembleSimulation.from_scenario(sc, backend="triton", **kw).step(3)
    dense = EnsembleSimulation.from_scenario(sc, backend="dense", **kw).step(3)
    assert tri.backend == "triton"
    torch.testing.assert_close(tri.pos, dense.pos, rtol=1e-9, atol=1e-9)


class _SyncRecorder:
    """Records the torch calls that read a device tensor on the host (a sync on CUDA) or copy
    host data to the device: Python-level (``TorchFunctionMode``) and aten-level
    (``TorchDispatchMode``) at once."""

    FUNCTIONS = {"tolist", "item", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "tensor",
                 "as_tensor", "bincount", "nonzero", "unique"}
    ATEN = {"_local_scalar_dense", "nonzero", "masked_select", "bincount", "item", "is_nonzero", "equal",
            "unique", "_unique2", "unique_dim", "repeat_interleave.Tensor"}

    def __init__(self):
        from torch.overrides import TorchFunctionMode
        from torch.utils._python_dispatch import TorchDispatchMode

        self.seen = []
        rec = self

        class Fn(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                name = getattr(func, "__name__", str(func))
                if name in rec.FUNCTIONS:
                    rec.seen.append(f"function {name}")
                return func(*args, **(kwargs or {}))

        class Dispatch(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                name = func.overloadpacket.__name__
                full = f"{name}.{func._overloadname}"
                if name in rec.ATEN or full in rec.ATEN:
                    rec.seen.append(f"aten {full}")
                if name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                           for i in (args[1] if len(args) > 1 else []) if i is not None):
                    rec.seen.append("aten index with a boolean mask")
                return func(*args, **(kwargs or {}))

        self.modes = (Fn(), Dispatch())

    def __enter__(self):
        for m in self.modes:
            m.__enter__()
        return self

    def __exit__(self, *exc):
        for m in reversed(self.modes):
            m.__exit__(*exc)


def test_step_path_makes_no_host_sync(monkeypatch):
    """reduce_triton after its first call (the build phase) reads nothing back and copies nothing up.

    Isolation: the Triton launch is replaced by a recorder. Under the interpreter the kernel
    itself runs in NumPy on host copies of its tensors (not a sync on a GPU, where a launch is
    asynchronous), so counting inside it would count the interpreter, not flock. Everything
    flock does around the launch (plans, binning, sorting, gathers, parameters) runs for real,
    on CPU tensors, through the same torch calls as on CUDA.
    """
    launches = []

    class FakeLaunch:
        def __getitem__(self, grid):
            def run(*args, **kw):
                launches.append((grid, kw))
            return run

    monkeypatch.setattr(tg, "_kernels", lambda: {"cell_sum": FakeLaunch()})
    monkeypatch.setattr(tg, "_require_triton", lambda device: None)
    pos, vel, _ = _cloud(200, 3, (9.0, 8.0, 7.0), torch.float32, "cpu", seed=9)
    period = torch.tensor([9.0, 8.0, 7.0])            # one tensor object, as World hands out
    fov = [Kernel("flat", radius=1.5, fov=270), Kernel("inverse_square", radius=1.0), Kernel("circles", radius=1.5)]
    q = pos[:20] + 0.1
    boids = [Kernel("flat", radius=1.5, fov=270), Kernel("flat", radius=1.2, fov=270), Kernel("inverse_square", radius=1.0)]
    reynolds = tg.Epilogue("reynolds", (1.0, 1.0, 1.5, 2.0, math.inf))
    calls = [
        lambda p: tg.reduce_triton(p, vel, fov, period=period),
        lambda p: tg.reduce_triton(p, vel, fov),                               # open world, device bbox
        lambda p: tg.reduce_triton(p, vel, fov[1:], query_pos=q, query_index=torch.arange(20)),
        lambda p: tg.reduce_triton_batched(p.reshape(2, 100, 3), vel.reshape(2, 100, 3), fov, period=period),
        # the boid rules finished in the kernel (the triton step's path for seed, reynolds, mesa)
        lambda p: tg.reduce_triton(p, vel, boids, period=period, epilogue=reynolds),
        lambda p: tg.reduce_triton_batched(p.reshape(2, 100, 3), vel.reshape(2, 100, 3), boids, period=period,
                                           epilogue=reynolds),
    ]
    for call in calls:
        call(pos)                                     # build phase: may read the box once
        with _SyncRecorder() as rec:
            for shift in (0.0, 0.3):                  # the agents move: same plan, no new read
                call(pos + shift)
        assert rec.seen == [], rec.seen
    assert len(launches) == 3 * len(calls)


def test_open_world_overflow_flag_and_rebuild(monkeypatch):
    # cells sized for a small box; the flock spreads 10x: still exact, and the flag says so
    pos, vel, _ = _cloud(60, 2, (4.0, 4.0), torch.float64, "cpu", seed=10)
    kernels = [Kernel("flat", radius=1.0)]
    plan = tg_cells.plan_cells(1.0, 2, dtype=torch.float64, device="cpu", n_points=60, points=pos)
    plan.bin(pos)
    assert plan.overflowed() == 0
    cells = plan.bin(pos * 10.0)
    assert plan.overflowed() & tg_cells.OVERFLOW_WIDENED
    assert torch.equal(cells.order, torch.argsort(plan.cell_ids(pos * 10.0), stable=True))
    monkeypatch.setattr(tg, "_PLANS", type(tg._PLANS)(probe=plan))
    assert tg.check_cell_plans() & tg_cells.OVERFLOW_WIDENED
    assert tg.check_cell_plans() == 0 and not tg._PLANS      # the overflowed plan was dropped
    if tg.interpret_mode():
        _close(tg.reduce_triton(pos * 10.0, vel, kernels), reduce_dense(pos * 10.0, vel, kernels),
               torch.float64)


@pytest.mark.slow
def test_netlogo_thousand_agents_on_triton_matches_dense(tdevice):
    """The netlogo formulation's inverse-distance channel runs on Triton (it was a KeyError)."""
    from flock import Simulation, load_scenario

    sc = load_scenario("scenarios/netlogo_flocking.yaml", overrides=["agents.count=1000"])
    kw = dict(device=tdevice, dtype="float64", record_metrics=False)
    tri = Simulation.from_scenario(sc, backend="triton", **kw).step(1)
    dense = Simulation.from_scenario(sc, backend="dense", **kw).step(1)
    assert tri.backend == "triton"
    torch.testing.assert_close(tri.state.pos, dense.state.pos, rtol=0, atol=1e-9)
    torch.testing.assert_close(tri.state.vel, dense.state.vel, rtol=0, atol=1e-9)
