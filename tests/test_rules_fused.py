"""The rules' all-channels-at-once arithmetic equals the one-channel-at-a-time reference, bit for bit."""

import pytest
import torch

from flock.rules import mesa_velocity, reynolds_acceleration, seed_acceleration
from flock.testing import reference_mesa_velocity, reference_reynolds_acceleration, reference_seed_acceleration
from flock.vectors import clip_norm, raise_norm, unit


def random_sums(k, n, dim, dtype, seed):
    """[k, N, 2D+1] sums with some empty channels (count 0) and some agents at rest."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, dim, generator=g, dtype=dtype) * 10
    vel = torch.randn(n, dim, generator=g, dtype=dtype)
    vel[::5] = 0.0
    count = torch.randint(0, 4, (k, n, 1), generator=g).to(dtype)
    sums = torch.cat([torch.randn(k, n, 2 * dim, generator=g, dtype=dtype) * 10 * count, count], dim=2)
    sums[:, ::9, :dim] = pos[::9] * count[:, ::9]          # neighbors centred on the agent: zero offsets
    return pos, vel, sums


def same(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.equal(a.nan_to_num(1e30), b.nan_to_num(1e30)), (a - b).abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_seed_acceleration(dim, dtype, seed):
    pos, vel, sums = random_sums(2, 500, dim, dtype, seed)
    kw = dict(cohesion=1.0, alignment=0.7, separation=5.0, max_force=0.1)
    want = reference_seed_acceleration(pos, vel, sums[0], sums[1], **kw)
    same(seed_acceleration(pos, vel, sums[0], sums[1], sums=sums, **kw), want)
    same(seed_acceleration(pos, vel, sums[0], sums[1], **kw), want)          # a list of channels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("per_agent", [False, True], ids=["float limits", "[N, 1] limits"])
def test_reynolds_acceleration(dim, dtype, per_agent):
    pos, vel, sums = random_sums(3, 500, dim, dtype, 2)
    limits = dict(max_speed=2.0, max_force=0.03)
    if per_agent:
        limits = {k: torch.full((500, 1), v, dtype=dtype) for k, v in limits.items()}
        limits["max_force"][::3] = torch.inf
    kw = dict(cohesion=1.0, alignment=1.0, separation=1.5, **limits)
    want = reference_reynolds_acceleration(pos, vel, sums[0], sums[1], sums[2], **kw)
    same(reynolds_acceleration(pos, vel, sums[0], sums[1], sums[2], sums=sums, **kw), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mesa_velocity(dtype):
    pos, vel, sums = random_sums(2, 500, 2, dtype, 3)
    kw = dict(cohere=0.03, separate=0.015, match=0.05, speed=1.0)
    want = reference_mesa_velocity(vel, sums[0], sums[1], pos, **kw)
    same(mesa_velocity(vel, sums[0], sums[1], pos, sums=sums, **kw), want)


def test_vector_helpers_have_clean_gradients_at_zero():
    # the unguarded division would send 0/0 into the gradient of an agent at rest
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    (unit(x).sum() + clip_norm(x, 1.0).sum() + raise_norm(x, 10.0).sum()).backward()
    assert torch.isfinite(x.grad).all()
    with torch.no_grad():
        same(unit(x), torch.tensor([[0.0, 0.0], [0.6, 0.8]]))


def test_channels_of_different_widths_keep_the_columns_the_rules_read():
    from flock.rules import stacked_sums

    a = torch.arange(10.0).reshape(2, 5)                   # [x, v, count] in 2D
    b = torch.arange(20.0, 34.0).reshape(2, 7)             # [x, v, f f, count]
    s = stacked_sums([a, b], 2)
    assert s.shape == (2, 2, 5)
    assert torch.equal(s[1], torch.cat([b[:, :4], b[:, -1:]], 1)) and torch.equal(s[0], a)
