"""Safe vector helpers on [..., D] tensors: unit vectors and norm clipping without NaN."""

from __future__ import annotations

import torch


def unit(x: torch.Tensor) -> torch.Tensor:
    """x / |x| along the last axis; exactly 0 where |x| = 0 (never NaN)."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.where(norm > 0, x / safe, torch.zeros_like(x))


def clip_norm(x: torch.Tensor, max_norm: float | torch.Tensor | None) -> torch.Tensor:
    """x scaled down to norm ``max_norm`` where it is longer (last axis); None: unchanged."""
    if max_norm is None:
        return x
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    scale = torch.where(norm > max_norm, max_norm / torch.where(norm > 0, norm, torch.ones_like(norm)),
                        torch.ones_like(norm))
    return x * scale


def raise_norm(x: torch.Tensor, min_norm: float | torch.Tensor | None) -> torch.Tensor:
    """x scaled up to norm ``min_norm`` where it is shorter and non-zero (last axis); None or 0: unchanged."""
    if min_norm is None or (not isinstance(min_norm, torch.Tensor) and not min_norm):
        return x
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    grow = (norm < min_norm) & (norm > 0)
    return torch.where(grow, x * (min_norm / torch.where(norm > 0, norm, torch.ones_like(norm))), x)
