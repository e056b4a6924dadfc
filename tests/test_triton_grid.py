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

from flock.kernels import Kernel  # noqa: E402
from flock.neighbors.dense import reduce_dense  # noqa: E402
from flock.neighbors import triton_grid as tg  # noqa: E402
from flock.state import FlockState  # noqa: E402

ALL_KINDS = [
    Kernel("flat", radius=2.0),
    Kernel("triangular", radius=1.5, exclude_self=False),
    Kernel("gaussian", bandwidth=0.7, radius=2.0),
    Kernel("inverse_square", radius=1.0),
    Kernel("circles", radius=2.0, strength=0.05),
    Kernel("flat", radius=2.0, open_center=True, exclude_self=False),
]


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
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction
from flock.neighbors import triton_grid as tg
sig = {"table_ptr": "*fp32", "qpos_ptr": "*fp32", "qvel_ptr": "*fp32", "qcell_ptr": "*i32", "qown_ptr": "*i32",
       "qorder_ptr": "*i64", "cellptr_ptr": "*i32", "period_ptr": "*fp32", "kind_ptr": "*i32",
       "flag_ptr": "*i32", "par_ptr": "*fp32", "out_ptr": "*fp32", "n_query": "i32", "n0": "i32",
       "n1": "i32", "n2": "i32", "cells_per_member": "i32"}
consts = dict(D=3, C=6, WP=8, K=2, KP=2, PERIODIC=True, HAS_TRI=True, HAS_GAUSS=True, HAS_INVSQ=True,
              HAS_CIRCLES=True, HAS_FOV=True, WIDE=False, F64=False, BLOCK=64)
first = len(sig)
sig.update({name: "constexpr" for name in consts})
src = ASTSource(fn=JITFunction(tg._KERNEL_SOURCES["cell_sum"]), signature=sig,
                constexprs={(first + i,): v for i, v in enumerate(consts.values())})
kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"enable_fp_fusion": True})
print("CUBIN" if "cubin" in kernel.asm else "NO CUBIN")
"""


@pytest.mark.slow
def test_kernel_compiles_for_sm90_without_a_gpu():
    # the interpreter does not type-check like the compiler: build PTX and a cubin for an
    # H100 (sm_90) in a child process where triton is not interpreted
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", _COMPILE_SM90], capture_output=True, text=True, env=env,
                         timeout=600)
    if res.returncode != 0 and ("ptxas" in res.stderr or "ModuleNotFoundError" in res.stderr):
        pytest.skip(f"triton cannot compile for sm_90 here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "CUBIN" in res.stdout


@pytest.mark.parametrize("path,n", [("scenarios/boids_torus.yaml", 80), ("scenarios/bench_circles3d.yaml", 80)])
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
