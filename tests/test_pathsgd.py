"""Path-SGD: kappa against a brute-force path sum, and the rescaling invariance of its step."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from flock.pathsgd import PathSGD, path_scales


def tiny_net(seed=0, sizes=(3, 4, 3, 2)):
    torch.manual_seed(seed)
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()


def brute_kappa(linears, layer, v, u):
    """Sum, over every path through edge u -> v of ``layer`` (u = 'bias': the bias edge), of the product
    of the other edges' squared weights. A path starts at an input of layer 0 or at the bias unit
    (always 1) of any layer, and goes through one unit of every later layer to an output."""
    total, depth = 0.0, len(linears)
    for start in range(depth):
        sources = (list(range(linears[0].in_features)) if start == 0 else []) + ["bias"]
        for src in sources:
            for route in itertools.product(*[range(linears[k].out_features) for k in range(start, depth)]):
                prev, prod, through = src, 1.0, False
                for k, dst in zip(range(start, depth), route):
                    w = linears[k].bias[dst] if prev == "bias" else linears[k].weight[dst, prev]
                    if k == layer and dst == v and prev == u:
                        through = True
                    else:
                        prod *= float(w.detach()) ** 2
                    prev = dst
                total += prod if through else 0.0
    return total


def test_kappa_equals_the_brute_force_path_sum():
    net = tiny_net()
    linears = [m for m in net if isinstance(m, nn.Linear)]
    scales = path_scales(linears)
    for k, layer in enumerate(linears):
        kw, kb = scales[k]
        for v in range(layer.out_features):
            assert float(kb[v]) == pytest.approx(brute_kappa(linears, k, v, "bias"), rel=1e-12)
            for u in range(layer.in_features):
                assert float(kw[v, u]) == pytest.approx(brute_kappa(linears, k, v, u), rel=1e-12)


def one_step(net, opt_cls, x, y, **kw):
    opt = opt_cls(net, **kw) if opt_cls is PathSGD else opt_cls(net.parameters(), **kw)
    opt.zero_grad()
    nn.functional.mse_loss(net(x), y).backward()
    opt.step()
    return net


def test_a_path_sgd_step_is_invariant_to_rescaling_a_hidden_unit_where_sgd_is_not():
    net = tiny_net(1)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    scaled = copy.deepcopy(net)
    with torch.no_grad():
        c = 7.0
        scaled[0].weight[1] *= c
        scaled[0].bias[1] *= c
        scaled[2].weight[:, 1] /= c
    torch.testing.assert_close(scaled(x), net(x))          # the same function before the step
    for opt_cls, kw, same in ((PathSGD, dict(lr=0.1), True), (torch.optim.SGD, dict(lr=0.1), False)):
        a = one_step(copy.deepcopy(net), opt_cls, x, y, **kw)
        b = one_step(copy.deepcopy(scaled), opt_cls, x, y, **kw)
        moved = (a(x) - net(x)).abs().max()
        assert moved > 1e-4
        gap = (a(x) - b(x)).abs().max()
        if same:
            assert gap < 1e-10
        else:
            assert gap > 1e-3


def test_refuses_activations_that_are_not_positively_homogeneous_and_guards_zero_kappa():
    with pytest.raises(ValueError, match="layer 1 is Tanh"):
        PathSGD(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)))
    net = tiny_net(3)
    with torch.no_grad():
        net[2].weight[:, 0] = 0.0                       # hidden unit 0 of layer 0 reaches no output
    x = torch.randn(8, 3, dtype=torch.float64)
    before = net[0].weight[0].clone()
    one_step(net, PathSGD, x, torch.zeros(8, 2, dtype=torch.float64), lr=0.1)
    assert torch.isfinite(net[0].weight).all()
    torch.testing.assert_close(net[0].weight[0], before)
