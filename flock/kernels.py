"""Kernel weight functions w(d) of the one neighbor kernel.

A ``Kernel`` is one channel k of ``S[k, i] = sum_j w_k(|d_ij|) [x_j, v_j, f_j, 1]``.

    kind            w(d)                                   support
    flat            1 if d < r else 0                      r
    triangular      max(0, 1 - d / r)                      r
    gaussian        exp(-d^2 / (2 h^2)), 0 beyond r if set  r or unbounded
    inverse_square  1 / max(d, eps)^2 if d < r else 0      r   (eps = 1e-3 r)
    inverse         1 / max(d, eps) if d < r else 0        r   (sums of unit offsets)
    circles         a sin(-2 pi' d / r) / d if 0 < d < r    r   (FLAME GPU 2's circles
                    benchmark, pi' = 3.141 as it writes it, a = ``strength``)

``open_center`` drops pairs at distance exactly 0 (coincident agents), as the
circles benchmark's ``0 < d`` test does.

The Gaussian omits the 1 / (h sqrt(2 pi)) factor of the lesson's ``gaussian``:
every rule divides by the weight sum, where the constant cancels.
The inverse and inverse-square kernels floor d at 1e-3 r so that coincident agents give a
large finite weight, never inf.

A field of view (``fov``, the full angle of the view cone in degrees) makes a
channel blind behind the query agent: agent j counts for query i only when the
offset d_ij = x_j - q_i lies within fov / 2 of i's velocity v_i,

    d_ij . v_i >= cos(fov / 2) |d_ij| |v_i|

(a query at rest, or a neighbor at distance 0, sees all around). The backends
apply it with the query's velocity; a channel without ``fov`` sees all around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KERNEL_KINDS = ("flat", "triangular", "gaussian", "inverse_square", "inverse", "circles")
CIRCLES_PI = 3.141  # the circles benchmark's own constant


@dataclass(frozen=True)
class Kernel:
    """One kernel channel.

    Attributes:
        kind: one of ``KERNEL_KINDS``.
        radius: support radius r, world units; None only for an untruncated Gaussian.
        bandwidth: Gaussian bandwidth h, world units (Gaussian only).
        exclude_self: drop the pair (i, i) from the sums.
        strength: amplitude of the circles kernel.
        open_center: give weight 0 at distance exactly 0.
        fov: full angle of the view cone, degrees in (0, 360]; None (or 360)
            sees all around.
    """

    kind: str
    radius: float | None = None
    bandwidth: float | None = None
    exclude_self: bool = True
    strength: float = 1.0
    open_center: bool = False
    fov: float | None = None

    def __post_init__(self):
        if self.kind not in KERNEL_KINDS:
            raise ValueError(f"kernel kind: expected one of {KERNEL_KINDS}, got {self.kind!r}")
        if self.kind == "gaussian":
            if self.bandwidth is None or not self.bandwidth > 0:
                raise ValueError(f"gaussian kernel: expected bandwidth > 0, got {self.bandwidth!r}")
        elif self.radius is None:
            raise ValueError(f"{self.kind} kernel: a radius is required")
        if self.radius is not None and not self.radius > 0:
            raise ValueError(f"{self.kind} kernel: expected radius > 0, got {self.radius!r}")
        if self.fov is not None:
            if not 0 < self.fov <= 360:
                raise ValueError(f"{self.kind} kernel: fov: expected degrees in (0, 360], got {self.fov!r}")
            if self.fov == 360:
                object.__setattr__(self, "fov", None)

    @property
    def cos_half_fov(self) -> float:
        """cos(fov / 2): the least cosine between heading and offset that is seen (-1: all)."""
        return -1.0 if self.fov is None else math.cos(math.radians(self.fov) / 2)

    @property
    def support(self) -> float:
        """Distance beyond which w = 0 (inf for an untruncated Gaussian)."""
        return float("inf") if self.radius is None else float(self.radius)

    def weights(self, dist: torch.Tensor) -> torch.Tensor:
        """w(d), same shape and dtype as ``dist`` ([...] world units)."""
        return kernel_weights(self, dist)


def kernel_weights(kernel: Kernel, dist: torch.Tensor) -> torch.Tensor:
    """Weights of ``kernel`` at distances ``dist`` ([...] float, world units)."""
    w = _raw_weights(kernel, dist)
    if kernel.open_center or kernel.kind == "circles":
        w = torch.where(dist > 0, w, torch.zeros_like(w))
    return w


def _raw_weights(kernel: Kernel, dist: torch.Tensor) -> torch.Tensor:
    kind = kernel.kind
    if kind == "flat":
        return (dist < kernel.radius).to(dist.dtype)
    if kind == "triangular":
        return torch.clamp_min(1.0 - dist / kernel.radius, 0.0)
    if kind == "gaussian":
        h = kernel.bandwidth
        w = torch.exp(-0.5 * (dist / h) ** 2)
        if kernel.radius is not None:
            w = torch.where(dist < kernel.radius, w, torch.zeros_like(w))
        return w
    if kind == "circles":
        r = kernel.radius
        safe = torch.where(dist > 0, dist, torch.ones_like(dist))
        w = kernel.strength * torch.sin(dist / r * (-2 * CIRCLES_PI)) / safe
        return torch.where(dist < r, w, torch.zeros_like(w))
    r = kernel.radius
    floor = 1e-3 * r
    if kind == "inverse":
        w = 1.0 / torch.clamp_min(dist, floor)
        return torch.where(dist < r, w, torch.zeros_like(w))
    # inverse_square
    w = 1.0 / torch.clamp_min(dist, floor) ** 2
    return torch.where(dist < r, w, torch.zeros_like(w))


def in_view(kernel: Kernel, along: torch.Tensor, reach: torch.Tensor) -> torch.Tensor:
    """1 where a neighbor is inside the query's view cone, else 0 (float, shape of ``along``).

    Args:
        kernel: a channel with ``fov`` set.
        along: [...] d_ij . v_i, the offset projected on the query's velocity.
        reach: [...] |d_ij| |v_i|, same shape.
    """
    return (along >= kernel.cos_half_fov * reach).to(along.dtype)


def pair_weights(kernels, offset: torch.Tensor, dist: torch.Tensor, heading: torch.Tensor | None,
                 axis: int) -> torch.Tensor:
    """Every channel's weight of every pair, field of view applied, stacked along ``axis``.

    The one place the dense, batched and grid backends turn offsets into weights.

    Args:
        kernels: K channels.
        offset: [..., P, D] offsets d_ij = x_j - q_i (minimum image), world units.
        dist: [..., P] |d_ij|.
        heading: [..., D] query velocities (only read when a channel has a field of view), or None.
        axis: where the channel axis K goes in the result.
    Returns:
        [..., K, ..., P] weights (K inserted at ``axis``).
    """
    if heading is None or not has_fov(kernels):
        return torch.stack([kern.weights(dist) for kern in kernels], axis)
    along = torch.einsum("...pd,...d->...p", offset, heading)              # d_ij . v_i
    reach = dist * torch.linalg.vector_norm(heading, dim=-1).unsqueeze(-1)  # |d_ij| |v_i|
    return torch.stack([kern.weights(dist) * in_view(kern, along, reach) if kern.fov is not None
                        else kern.weights(dist) for kern in kernels], axis)


def has_fov(kernels) -> bool:
    """True when any channel has a field of view (the backend needs query velocities)."""
    return any(k.fov is not None for k in kernels)


def max_support(kernels) -> float:
    """Largest support radius over ``kernels`` (inf if any is unbounded)."""
    return max((k.support for k in kernels), default=0.0)
