"""Fused backend: the Gaussian kernel sums as softmax attention, no N x N matrix.

For an untruncated Gaussian of bandwidth h, with scaled positions a_i = q_i / h
(queries) and b_j = x_j / h (agents),

    -|q_i - x_j|^2 / (2 h^2) = a_i . b_j - |b_j|^2 / 2 - |a_i|^2 / 2

so with attention queries Q_i = [a_i, 1] and keys K_j = [b_j, -|b_j|^2 / 2],
``softmax_j(Q_i . K_j)`` are exactly the normalised Gaussian weights (the
|a_i|^2 / 2 term is constant along the row and cancels), and
``scaled_dot_product_attention(Q, K, V, scale=1)`` with V_j = [x_j, v_j, f_j]
is one exact mean shift step, computed by PyTorch's tiled (flash) kernels
without the N x N weight matrix in memory.

    symbol                    variable
    h                         kern.bandwidth
    a_i, b_j                  qs, xs (centred, then divided by h)
    eps (sentinel weight)     exp(log_eps)

The weight sum. Softmax only gives normalised weights, but the layout of
``reduce_dense`` also needs the unnormalised sum S_i = sum_j w_ij. One extra
"sentinel" key with score log(eps) + |a_i|^2 / 2 (a phantom agent of weight
eps) and two extra value columns (1 for the agents, 1 for the sentinel) give,
from the same softmax,

    ones_i = S_i / (S_i + eps)        sent_i = eps / (S_i + eps)

so S_i = eps * ones_i / sent_i and the agents' weighted means are the value
columns divided by ones_i; both ratios keep full relative precision for any
S_i between about eps * tiny and eps / tiny (eps = tiny^0.69, tiny the
smallest normal number of the dtype: S from ~1e-38 to ~1e9 in float32).

Numerics: positions are translated so the agents' mean is 0 before scaling,
which keeps the scores O((extent / h)^2); the float32 error of a log-weight is
about eps_f32 * (extent / h)^2, so float32 is accurate to ~1e-5 relative for
the fastai lesson's data (extent 80, h = 2.5) and loosens as h shrinks
against the extent; float64 agrees with the dense backend to ~1e-12.

Only untruncated Gaussians without self-exclusion in a non-periodic world are
attention; anything else raises ``ValueError`` (use ``dense`` or ``grid``).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from ..kernels import Kernel
from .dense import DEFAULT_MEMORY_BUDGET

try:  # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # pragma: no cover - older torch: plain call, memory-bounded chunks
    SDPBackend = sdpa_kernel = None

# (device type, device index, dtype, head dim) -> whether a tiled SDPA kernel runs
_TILED_SDPA: dict[tuple, bool] = {}


def check_fused_kernels(kernels, period=None) -> None:
    """Raise ``ValueError`` unless every kernel is softmax attention.

    Args:
        kernels: the kernel channels.
        period: [D] box lengths of a periodic world, or None.
    """
    if period is not None:
        raise ValueError(
            "fused backend: periodic worlds are not supported (the minimum image is not "
            "a dot product); use backend='dense' or 'grid'")
    for k, kern in enumerate(kernels):
        if (kern.kind != "gaussian" or kern.radius is not None or kern.exclude_self
                or getattr(kern, "open_center", False)):
            raise ValueError(
                f"fused backend: kernel {k} (kind={kern.kind!r}, radius={kern.radius!r}, "
                f"exclude_self={kern.exclude_self!r}) is not softmax attention; only untruncated "
                "Gaussian kernels with exclude_self=False are supported; use backend='dense' "
                "or 'grid'")


def _log_eps(dtype: torch.dtype) -> float:
    """Log-weight of the sentinel agent: 0.69 * log(tiny) (-60 in float32, -489 in float64)."""
    return 0.69 * math.log(torch.finfo(dtype).tiny)


def _head_dim(device: torch.device, width: int) -> int:
    # CUDA's tiled kernels want the head dimension a multiple of 8
    return -(-width // 8) * 8 if device.type == "cuda" else width


def _tiled_available(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether a tiled (flash / memory-efficient) SDPA kernel runs for these inputs."""
    key = (device.type, device.index, dtype, head_dim)
    if key not in _TILED_SDPA:
        ok = False
        if sdpa_kernel is not None:
            probe = torch.zeros(1, 1, 4, head_dim, device=device, dtype=dtype)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                        F.scaled_dot_product_attention(probe, probe, probe, scale=1.0)
                ok = True
            except RuntimeError:
                ok = False
        _TILED_SDPA[key] = ok
    return _TILED_SDPA[key]


def _pad(t: torch.Tensor, width: int) -> torch.Tensor:
    if t.shape[1] == width:
        return t
    return torch.cat([t, t.new_zeros(t.shape[0], width - t.shape[1])], 1)


class _Attention:
    """softmax(Q K^T) V over fixed keys and values, for query chunks.

    Pads Q, K, V to one head dimension (the CPU flash kernel requires it; zero
    columns change no score) and chooses the query rows per call: all of them
    when a tiled kernel runs, otherwise as many as fit ``memory_budget`` with
    the [m, N] score matrix of the math kernel.
    """

    def __init__(self, key: torch.Tensor, value: torch.Tensor, memory_budget: int,
                 chunk_rows: int | None):
        device, dtype = key.device, key.dtype
        self.qk_width = key.shape[1]
        self.v_width = value.shape[1]
        self.head = _head_dim(device, max(self.qk_width, self.v_width))
        self.key = _pad(key, self.head)[None, None]
        self.value = _pad(value, self.head)[None, None]
        self.tiled = _tiled_available(device, dtype, self.head)
        itemsize = key.element_size()
        # rows whose [m, N] scores fit the budget, for the math kernel
        self.math_rows = max(1, int(memory_budget // (3 * max(1, key.shape[0]) * itemsize)))
        if chunk_rows is not None:
            self.rows = max(1, int(chunk_rows))
        elif self.tiled:
            self.rows = max(1, int(memory_budget // (8 * self.head * itemsize)))
        else:
            self.rows = self.math_rows

    def __call__(self, query: torch.Tensor) -> torch.Tensor:
        """[m, v_width] attention output of queries [m, qk_width]."""
        q = _pad(query, self.head)[None, None]
        if self.tiled:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                        out = F.scaled_dot_product_attention(q, self.key, self.value, scale=1.0)
                return out[0, 0, :, :self.v_width]
            except RuntimeError:
                # these inputs are not eligible after all (e.g. autograd on some devices)
                self.tiled = False
        parts = [F.scaled_dot_product_attention(q[:, :, s:s + self.math_rows], self.key, self.value,
                                                scale=1.0)
                 for s in range(0, q.shape[2], self.math_rows)]
        return torch.cat(parts, 2)[0, 0, :, :self.v_width]


def reduce_fused(pos: torch.Tensor, vel: torch.Tensor, kernels: list[Kernel], *,
                 period: torch.Tensor | None = None,
                 query_pos: torch.Tensor | None = None,
                 query_index: torch.Tensor | None = None,
                 features: torch.Tensor | None = None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 chunk_rows: int | None = None) -> torch.Tensor:
    """Gaussian kernel sums of every query over all agents, as attention.

    Same arguments and layout as ``reduce_dense``; every kernel must be an
    untruncated Gaussian with ``exclude_self=False`` and ``period`` None.

    Args:
        pos: [N, D] float agent positions, world units.
        vel: [N, D] float agent velocities.
        kernels: K Gaussian kernel channels (``radius=None``, ``exclude_self=False``).
        period: must be None.
        query_pos: [M, D] query positions; None means the agents themselves.
        query_index: accepted for the common signature; unused (no self-exclusion).
        features: [N, F] extra per-agent features summed like velocities, or None.
        memory_budget: bytes of temporaries one chunk may use (bounds the query
            rows per call only when no tiled attention kernel is available).
        chunk_rows: force the number of query rows per attention call (tests).

    Returns:
        S: [K, M, 2D + F + 1], layout [positions (D), velocities (D), features (F), weight sum (1)].

    Raises:
        ValueError: a kernel is not an untruncated Gaussian without self-exclusion,
            or ``period`` is given.
    """
    check_fused_kernels(kernels, period)
    queries = pos if query_pos is None else query_pos
    n_agents, dim = pos.shape
    n_query = queries.shape[0]
    n_feat = 0 if features is None else features.shape[1]
    n_k = len(kernels)
    width = 2 * dim + n_feat + 1
    device, dtype = pos.device, pos.dtype
    out = torch.zeros(n_k, n_query, width, device=device, dtype=dtype)
    if n_query == 0 or n_agents == 0 or n_k == 0:
        return out
    centre = pos.mean(0)
    xc = pos - centre
    qc = queries - centre
    cols = [xc, vel.to(dtype)]
    if features is not None:
        cols.append(features.to(dtype))
    cols += [torch.ones(n_agents, 1, device=device, dtype=dtype),
             torch.zeros(n_agents, 1, device=device, dtype=dtype)]
    sentinel_value = torch.zeros(1, width + 1, device=device, dtype=dtype)
    sentinel_value[0, -1] = 1
    value = torch.cat([torch.cat(cols, 1), sentinel_value])           # [N+1, 2D+F+2]
    log_eps = _log_eps(dtype)
    eps = math.exp(log_eps)
    for k, kern in enumerate(kernels):
        h = float(kern.bandwidth)
        xs = xc / h
        key = torch.cat([xs, -0.5 * (xs * xs).sum(1, keepdim=True),
                         torch.zeros(n_agents, 1, device=device, dtype=dtype)], 1)
        sentinel_key = torch.zeros(1, dim + 2, device=device, dtype=dtype)
        sentinel_key[0, -1] = 1
        attend = _Attention(torch.cat([key, sentinel_key]), value, memory_budget, chunk_rows)
        for start in range(0, n_query, attend.rows):
            stop = min(start + attend.rows, n_query)
            qs = qc[start:stop] / h
            query = torch.cat([qs, torch.ones(stop - start, 1, device=device, dtype=dtype),
                               0.5 * (qs * qs).sum(1, keepdim=True) + log_eps], 1)
            o = attend(query)                                          # [m, 2D+F+2]
            ones, sent = o[:, width - 1], o[:, width]
            wsum = torch.where(sent > 0, eps * ones / torch.where(sent > 0, sent, 1), 0)
            mean = o[:, :width - 1] / torch.where(ones > 0, ones, 1)[:, None]
            mean[:, :dim] += centre
            wsum = torch.where(ones > 0, wsum, 0)
            out[k, start:stop, :width - 1] = mean * wsum[:, None]
            out[k, start:stop, width - 1] = wsum
    return out


def fused_mean_shift_step(x: torch.Tensor, bandwidth: float, *, data: torch.Tensor | None = None,
                          memory_budget: int = DEFAULT_MEMORY_BUDGET,
                          chunk_rows: int | None = None) -> torch.Tensor:
    """One Gaussian mean shift step as attention: each x_i moves to its weighted mean.

    ``x_new[i] = sum_j w_ij y_j / sum_j w_ij`` with ``w_ij = exp(-|x_i - y_j|^2 / (2 h^2))``
    over the points y = ``data`` (default: ``x`` itself, the fastai lessons'
    blurring step ``weight @ X / div``). The weights are normalised by the
    softmax itself, so no weight sum is formed and far-away points never give 0/0.

    Args:
        x: [M, D] float positions to move, world units.
        bandwidth: Gaussian bandwidth h > 0, world units.
        data: [N, D] float points the weighted means are taken over, or None for ``x``.
        memory_budget: bytes of temporaries one call may use (see ``reduce_fused``).
        chunk_rows: force the number of rows per attention call (tests).

    Returns:
        x_new: [M, D], same device and dtype as ``x``; ``x`` unchanged when ``data`` is empty.

    Raises:
        ValueError: ``bandwidth`` is not a finite number > 0.
    """
    try:
        h = float("nan") if isinstance(bandwidth, (str, bytes, bool)) else float(bandwidth)
    except (TypeError, ValueError):
        h = float("nan")
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"fused_mean_shift_step: bandwidth: expected a finite number > 0, "
                         f"got {bandwidth!r}")
    y = x if data is None else data
    if x.shape[0] == 0 or y.shape[0] == 0:
        return x.clone()
    centre = y.mean(0)
    yc = y - centre
    ys = yc / h
    key = torch.cat([ys, -0.5 * (ys * ys).sum(1, keepdim=True)], 1)    # [N, D+1]
    attend = _Attention(key, yc, memory_budget, chunk_rows)
    xs = (x - centre) / h
    ones = torch.ones(1, 1, device=x.device, dtype=x.dtype)
    parts = []
    for start in range(0, x.shape[0], attend.rows):
        q = xs[start:start + attend.rows]
        parts.append(attend(torch.cat([q, ones.expand(q.shape[0], 1)], 1)))
    return torch.cat(parts) + centre


__all__ = ["check_fused_kernels", "fused_mean_shift_step", "reduce_fused"]
