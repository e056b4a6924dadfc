"""Metrics: the cell-list nearest-neighbor estimate reads what the dense scan read; rows hold tensors until read."""

import math

import pytest
import torch

from flock.metrics import (MetricsLog, boids_metrics, mean_nearest_neighbor_distance, mean_speed,
                           nn_sample_index, polarization)
from flock.world import minimum_image


def dense_mean_nn(pos, period, max_queries):
    """The estimate as it was computed before the cell list: sampled rows against everyone."""
    idx = nn_sample_index(pos.shape[0], max_queries, pos.device)
    off = minimum_image(pos[None, :, :] - pos[idx][:, None, :], period)
    d = torch.linalg.vector_norm(off, dim=-1)
    d[torch.arange(len(idx)), idx] = math.inf
    return float(d.min(dim=1).values.mean())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("periodic", [False, True], ids=["open", "wrap"])
@pytest.mark.parametrize("n,layout", [(2, "uniform"), (50, "uniform"), (700, "uniform"), (700, "clumped"),
                                      (3000, "sampled")])
def test_nearest_neighbor_metric_equals_the_dense_scan(n, layout, periodic, dtype):
    g = torch.Generator().manual_seed(n)
    pos = torch.rand(n, 3 if layout == "clumped" else 2, generator=g, dtype=dtype) * 40.0
    if layout == "clumped":
        pos[: n // 2] = 20.0 + 0.01 * pos[: n // 2]               # a tight ball and a few far outliers
        pos[-3:] = torch.tensor([[0.0, 0.0, 0.0], [39.9, 39.9, 39.9], [0.0, 39.9, 20.0]], dtype=dtype)
    period = torch.full((pos.shape[1],), 40.0, dtype=dtype) if periodic else None
    got = mean_nearest_neighbor_distance(pos, period, max_queries=500 if layout == "sampled" else 2000)
    want = dense_mean_nn(pos, period, 500 if layout == "sampled" else 2000)
    assert got == pytest.approx(want, rel=1e-5 if dtype == torch.float32 else 1e-12)


def test_fewer_than_two_agents():
    assert math.isnan(mean_nearest_neighbor_distance(torch.zeros(1, 2)))
    assert math.isnan(mean_nearest_neighbor_distance(torch.zeros(0, 3)))


def test_boids_metrics_are_tensors_until_the_log_is_read():
    g = torch.Generator().manual_seed(1)
    pos, vel = torch.rand(300, 2, generator=g) * 10, torch.randn(300, 2, generator=g)
    period = torch.tensor([10.0, 10.0])
    row = boids_metrics(pos, vel, period)
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in row.values())
    log = MetricsLog()
    log.append({"step": 1, **row})
    log.append({"step": 2, **boids_metrics(pos, -vel, period)})
    assert isinstance(log._rows[0]["polarization"], torch.Tensor)        # nothing read yet
    assert log["polarization"] == pytest.approx([polarization(vel)] * 2)
    assert log.last()["mean_speed"] == pytest.approx(mean_speed(vel))
    assert log.last()["mean_nn_distance"] == pytest.approx(mean_nearest_neighbor_distance(pos, period))
    assert all(type(v) in (int, float) for r in log.rows for v in r.values())


def test_listeners_get_numbers():
    seen = []
    log = MetricsLog()
    log.add_listener(seen.append)
    log.append({"step": 3, "mean_speed": torch.tensor(2.5)})
    assert seen == [{"step": 3, "mean_speed": 2.5}] and isinstance(seen[0]["mean_speed"], float)


def brute_mode_count(pos, radius):
    """The greedy merge on the points themselves (no cells): the obvious reference for spread points."""
    left = torch.ones(pos.shape[0], dtype=torch.bool)
    modes = 0
    for i in range(pos.shape[0]):
        if left[i]:
            left &= torch.linalg.vector_norm(pos.double() - pos[i].double(), dim=1) > radius
            modes += 1
    return modes


@pytest.mark.parametrize("spread,bandwidth", [(100.0, 1e-9), (1e12, 1e-9), (100.0, 1e-20), (1e7, 1e-9)])
def test_count_modes_with_a_tiny_bandwidth_counts_every_distinct_point(spread, bandwidth):
    from flock.metrics import count_modes
    g = torch.Generator().manual_seed(3)
    pos = torch.rand(1500, 2, generator=g, dtype=torch.float64) * spread + 0.5 * spread
    assert torch.unique(pos, dim=0).shape[0] == 1500
    assert count_modes(pos, bandwidth) == 1500
    assert count_modes(pos.float(), bandwidth) == torch.unique(pos.float(), dim=0).shape[0]


def test_count_modes_matches_the_greedy_reference_on_separated_clusters():
    from flock.metrics import count_modes
    g = torch.Generator().manual_seed(4)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [1e6, 1e6]])
    pos = (centres[:, None, :] + 0.01 * torch.randn(4, 50, 2, generator=g)).reshape(-1, 2)
    assert count_modes(pos, 1.0) == brute_mode_count(pos, 1.0) == 4


@pytest.mark.parametrize("offset,spread", [(1e7, 1000.0), (0.0, 1e30), (-1e30, 1e25)])
def test_nearest_neighbor_metric_far_from_the_origin_matches_float64(offset, spread):
    g = torch.Generator().manual_seed(5)
    pos = (torch.rand(1500, 3, generator=g, dtype=torch.float64) * spread + offset).float()
    want = dense_mean_nn(pos.double(), None, 2000)       # the same float32 points, in float64
    got = mean_nearest_neighbor_distance(pos)
    assert math.isfinite(got)
    assert got == pytest.approx(want, rel=1e-5)


def test_unique_cells_matches_a_row_wise_unique():
    from flock.metrics import _unique_cells

    gen = torch.Generator().manual_seed(3)
    for dim in (1, 2, 3):
        keys = torch.randint(0, 9, (400, dim), generator=gen)
        want = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
        got = _unique_cells(keys, return_inverse=True, return_counts=True)
        assert len(got[0]) == len(want[0])
        assert torch.equal(got[1], want[1]) and torch.equal(got[2], want[2])
    rows = torch.rand(50, 2, generator=gen, dtype=torch.float64)       # the fallback: distinct positions
    assert _unique_cells(torch.cat([rows, rows])).shape[0] == 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boids_metrics_share_the_speeds_and_read_the_same_values(dtype):
    from flock.metrics import mean_speed_tensor, polarization_tensor

    g = torch.Generator().manual_seed(6)
    pos, vel = torch.rand(400, 3, generator=g, dtype=dtype), torch.randn(400, 3, generator=g, dtype=dtype)
    vel[::3] = 0.0                                            # agents at rest have no heading
    row = boids_metrics(pos, vel)
    assert torch.equal(row["polarization"], polarization_tensor(vel))
    assert torch.equal(row["mean_speed"], mean_speed_tensor(vel))
    empty = boids_metrics(pos[:0], vel[:0])
    assert empty["polarization"] == 0 and empty["mean_speed"] == 0 and math.isnan(empty["mean_nn_distance"])
