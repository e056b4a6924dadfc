"""Safe vector helpers on [..., D] tensors: unit vectors and norm clipping without NaN.

Each helper takes few tensor operations (a small flock's step is mostly their launch
cost): it divides by the norm itself and lets ``torch.where`` discard the lanes where
the norm is 0, which the answer never reads. Under autograd that discarded 0/0 would
still send NaN into the gradient, so a tensor that requires grad takes the guarded form
(the norm replaced by 1 where it is 0 before dividing). Both forms give the same values
bit for bit: where a lane is kept, both divide by the same norm.
"""

from __future__ import annotations

import torch


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def _guarded(x: torch.Tensor, norm: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or norm.requires_grad)


def _safe(norm: torch.Tensor) -> torch.Tensor:
    return torch.where(norm > 0, norm, torch.ones_like(norm))


def unit(x: torch.Tensor) -> torch.Tensor:
    """x / |x| along the last axis; exactly 0 where |x| = 0 (never NaN)."""
    norm = _norm(x)
    if _guarded(x, norm):
        return torch.where(norm > 0, x / _safe(norm), torch.zeros_like(x))
    return torch.where(norm > 0, x / norm, 0.0)


def clip_norm(x: torch.Tensor, max_norm: float | torch.Tensor | None) -> torch.Tensor:
    """x scaled down to norm ``max_norm`` where it is longer (last axis); None: unchanged."""
    if max_norm is None:
        return x
    norm = _norm(x)
    longer = norm > max_norm
    if _guarded(x, norm) or isinstance(max_norm, torch.Tensor) and max_norm.requires_grad:
        return x * torch.where(longer, max_norm / _safe(norm), torch.ones_like(norm))
    return x * torch.where(longer, max_norm / norm, 1.0)


def raise_norm(x: torch.Tensor, min_norm: float | torch.Tensor | None) -> torch.Tensor:
    """x scaled up to norm ``min_norm`` where it is shorter and non-zero (last axis); None or 0: unchanged."""
    if min_norm is None or (not isinstance(min_norm, torch.Tensor) and not min_norm):
        return x
    norm = _norm(x)
    grow = (norm < min_norm) & (norm > 0)
    if _guarded(x, norm) or isinstance(min_norm, torch.Tensor) and min_norm.requires_grad:
        return torch.where(grow, x * (min_norm / _safe(norm)), x)
    return torch.where(grow, x * (min_norm / norm), x)
