"""Path-SGD (Neyshabur, Salakhutdinov, Srebro, NIPS 2015): steepest descent under the path norm.

For a feed-forward stack of ``nn.Linear`` with positively homogeneous units (ReLU, leaky
ReLU, identity) and p = 2, the scale of edge u -> v is

    kappa(u -> v) = gamma_in[u] * gamma_out[v]

where gamma_in is the forward pass of an all-ones input through the squared weights (W * W,
biases as edges from a unit that is always 1, so they add b * b) and gamma_out the same pass
backwards from all-ones at the outputs; kappa is the sum, over every input-to-output path
through the edge, of the product of the other edges' squared weights. The update is

    w <- w - lr * grad / kappa

and is invariant to rescaling a hidden unit (incoming weights and bias x c, outgoing x 1/c),
which leaves the network's function unchanged. An edge with kappa = 0 lies on no path of
non-zero weight (its gradient is 0 too) and is left as it is.
"""

from __future__ import annotations

import torch
from torch import nn

HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity)


def _linears(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``model`` in order; a ``ValueError`` for anything else."""
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    linears = []
    for k, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            linears.append(layer)
        elif not isinstance(layer, HOMOGENEOUS):
            raise ValueError(f"PathSGD: layer {k} is {type(layer).__name__}, which is not positively homogeneous "
                             f"(f(c x) = c f(x) for c > 0); use nn.Linear with ReLU / LeakyReLU / Identity")
    if not linears:
        raise ValueError("PathSGD: the model has no nn.Linear layer")
    return linears


def path_scales(linears: list[nn.Linear]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """kappa for every layer: (weight-shaped [out, in], bias-shaped [out] or None)."""
    with torch.no_grad():
        gamma_in = [torch.ones(linears[0].in_features, dtype=linears[0].weight.dtype,
                               device=linears[0].weight.device)]
        for layer in linears:
            g = (layer.weight * layer.weight) @ gamma_in[-1]
            if layer.bias is not None:
                g = g + layer.bias * layer.bias
            gamma_in.append(g)
        gamma_out = [torch.ones_like(gamma_in[-1])]
        for layer in reversed(linears):
            gamma_out.append((layer.weight * layer.weight).T @ gamma_out[-1])
        gamma_out.reverse()                        # gamma_out[k]: at the inputs of layer k
        scales = []
        for k, layer in enumerate(linears):
            out = gamma_out[k + 1]
            scales.append((out[:, None] * gamma_in[k][None, :], out.clone() if layer.bias is not None else None))
    return scales


class PathSGD(torch.optim.Optimizer):
    """Path-SGD over a stack of ``nn.Linear`` (+ positively homogeneous activations).

    Args:
        model: an ``nn.Sequential`` of ``nn.Linear`` and ReLU / LeakyReLU / Identity (or one Linear).
        lr: learning rate.
    Raises:
        ValueError: a layer that is not positively homogeneous (tanh, sigmoid, ...).
    """

    def __init__(self, model: nn.Module, lr: float = 0.01):
        if not lr > 0:
            raise ValueError(f"PathSGD: expected lr > 0, got {lr}")
        self._linears = _linears(model)
        params = [p for layer in self._linears for p in (layer.weight, layer.bias) if p is not None]
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lr = self.param_groups[0]["lr"]
        for layer, (kw, kb) in zip(self._linears, path_scales(self._linears)):
            for p, kappa in ((layer.weight, kw), (layer.bias, kb)):
                if p is None or p.grad is None:
                    continue
                safe = torch.where(kappa > 0, kappa, torch.ones_like(kappa))
                p.sub_(torch.where(kappa > 0, lr * p.grad / safe, torch.zeros_like(p)))
        return loss


__all__ = ["HOMOGENEOUS", "PathSGD", "path_scales"]
