"""Slow, obvious reference implementations shared by tests and tools.

Nothing here is fast; everything here is easy to check by reading. Fast paths
in the engine are tested against these.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .kernels import Kernel


def reference_weight(kernel: Kernel, d: float) -> float:
    """w(d) for one distance, written out per kernel kind."""
    if (kernel.open_center or kernel.kind == "circles") and d == 0.0:
        return 0.0
    if kernel.kind == "circles":
        return kernel.strength * math.sin((d / kernel.radius) * 3.141 * -2) / d if d < kernel.radius else 0.0
    if kernel.kind == "flat":
        return 1.0 if d < kernel.radius else 0.0
    if kernel.kind == "triangular":
        return max(0.0, 1.0 - d / kernel.radius)
    if kernel.kind == "gaussian":
        if kernel.radius is not None and not d < kernel.radius:
            return 0.0
        return math.exp(-0.5 * (d / kernel.bandwidth) ** 2)
    if kernel.kind == "inverse":
        return 1.0 / max(d, 1e-3 * kernel.radius) if d < kernel.radius else 0.0
    if kernel.kind == "inverse_square":
        if not d < kernel.radius:
            return 0.0
        return 1.0 / max(d, 1e-3 * kernel.radius) ** 2
    raise ValueError(kernel.kind)


def reference_sums(pos, vel, kernels, *, period=None, query_pos=None, query_index=None,
                   features=None, query_vel=None) -> np.ndarray:
    """Per-pair Python loop of the one kernel: S [K, M, 2D+F+1] (float64 numpy).

    Args:
        pos, vel: [N, D] array-likes. period: [D] or None. query_pos: [M, D] or None
        (the agents). query_index: [M] indices of queries among agents (self-pairs
        are skipped for kernels with ``exclude_self``). features: [N, F] or None.
        query_vel: [M, D] headings for kernels with a field of view (default ``vel``
        for the agents): a neighbor is seen when the angle between the heading and
        its offset, ``acos`` of their cosine, is at most fov / 2.
    """
    pos = np.asarray(pos, dtype=np.float64)
    vel = np.asarray(vel, dtype=np.float64)
    n, dim = pos.shape
    feats = np.zeros((n, 0)) if features is None else np.asarray(features, dtype=np.float64)
    if query_pos is None:
        query_pos = pos
        query_index = np.arange(n) if query_index is None else query_index
        query_vel = vel if query_vel is None else query_vel
    query_pos = np.asarray(query_pos, dtype=np.float64)
    per = None if period is None else np.asarray(period, dtype=np.float64)
    width = 2 * dim + feats.shape[1] + 1
    out = np.zeros((len(kernels), len(query_pos), width))
    for k, kern in enumerate(kernels):
        for i, q in enumerate(query_pos):
            for j in range(n):
                if kern.exclude_self and query_index is not None and int(query_index[i]) == j:
                    continue
                d = pos[j] - q
                if per is not None:
                    d = d - per * np.round(d / per)
                dist = float(math.sqrt(float((d ** 2).sum())))
                w = reference_weight(kern, dist)
                if w == 0.0 or not _in_view(kern, d, dist, None if query_vel is None else query_vel[i]):
                    continue
                out[k, i, :dim] += w * (q + d)
                out[k, i, dim:2 * dim] += w * vel[j]
                out[k, i, 2 * dim:width - 1] += w * feats[j]
                out[k, i, width - 1] += w
    return out


def _in_view(kern: Kernel, d, dist: float, heading) -> bool:
    """Whether offset d lies in the view cone of ``heading`` (the angle, computed with acos)."""
    if kern.fov is None:
        return True
    heading = np.asarray(heading, dtype=np.float64)
    speed = float(math.sqrt(float((heading ** 2).sum())))
    if speed == 0.0 or dist == 0.0:
        return True
    cos = max(-1.0, min(1.0, float(np.dot(d, heading)) / (dist * speed)))
    return math.degrees(math.acos(cos)) <= kern.fov / 2


def _js_norm(v):
    n = math.sqrt(sum(c * c for c in v))
    return [c / n for c in v] if n > 0 else [0.0 for _ in v]


def reference_seed_step(pos, vel, *, width: float, height: float, view: float = 200.0, near: float = 20.0,
                        cohesion: float = 1.0, alignment: float = 0.7, separation: float = 5.0,
                        max_force: float = 0.1, max_speed: float = 5.0, wall_force: float = 1.0):
    """One ``Field.next()`` of the JavaScript boids post, per fish, in plain Python floats.

    Args:
        pos, vel: lists of [x, y] (or numpy [N, 2]); returns new (pos, vel) as float64 numpy arrays.
    """
    pos = [list(map(float, p)) for p in np.asarray(pos, dtype=np.float64)]
    vel = [list(map(float, v)) for v in np.asarray(vel, dtype=np.float64)]
    n = len(pos)
    dist = lambda a, b: math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))  # noqa: E731
    accels = []
    for i in range(n):
        seen = [j for j in range(n) if j != i and dist(pos[j], pos[i]) < view]
        if not seen:
            accels.append([0.0, 0.0])
            continue
        vmean = [sum(vel[j][c] for j in seen) / len(seen) for c in range(2)]
        pmean = [sum(pos[j][c] for j in seen) / len(seen) for c in range(2)]
        vdir = [alignment * c for c in _js_norm([vmean[c] - vel[i][c] for c in range(2)])]
        pdir = [cohesion * c for c in _js_norm([pmean[c] - pos[i][c] for c in range(2)])]
        direction = [pdir[c] + vdir[c] for c in range(2)]
        close = [j for j in seen if dist(pos[j], pos[i]) < near]
        if close:
            nmean = [sum(pos[j][c] for j in close) / len(close) for c in range(2)]
            away = [separation * c for c in _js_norm([nmean[c] - pos[i][c] for c in range(2)])]
            direction = [direction[c] - away[c] for c in range(2)]
        accels.append([max_force * c for c in _js_norm(direction)])
    for i in range(n):
        acc = accels[i]
        if pos[i][0] > width:
            acc[0] -= wall_force
        if pos[i][0] < 0:
            acc[0] += wall_force
        if pos[i][1] > height:
            acc[1] -= wall_force
        if pos[i][1] < 0:
            acc[1] += wall_force
        vel[i] = [vel[i][c] + acc[c] for c in range(2)]
        speed = math.sqrt(vel[i][0] ** 2 + vel[i][1] ** 2)
        if max_speed < speed:
            vel[i] = [c * max_speed / speed for c in vel[i]]
        pos[i] = [pos[i][c] + vel[i][c] for c in range(2)]
    return np.array(pos), np.array(vel)


def reference_meanshift(X, bandwidth: float = 2.5, max_it: int = 5, eps: float = 1e-6):
    """The fastai lesson's numpy mean shift (per point, Gaussian kernel), as a loop.

    Each iteration moves every point to the Gaussian-weighted mean of all points
    (itself included); stops after ``max_it`` iterations or when
    sum|X_new - X| / sum|X| < eps. Returns (X, iterations done).
    """
    X = np.asarray(X, dtype=np.float64)
    for it in range(1, max_it + 1):
        new = np.empty_like(X)
        for i, x in enumerate(X):
            d = np.sqrt(((x - X) ** 2).sum(1))
            w = np.exp(-0.5 * (d / bandwidth) ** 2) / (bandwidth * math.sqrt(2 * math.pi))
            new[i] = (w[:, None] * X).sum(0) / w.sum()
        shift = np.abs(new - X).sum() / np.abs(X).sum()
        X = new
        if shift < eps:
            return X, it
    return X, max_it


def _wrap_offset(d, size):
    return d - size * np.round(d / size)


def reference_mesa_step(pos, direction, *, size, speed=1.0, vision=10.0, separation=2.0,
                        cohere=0.03, separate=0.015, match=0.05):
    """Mesa 3's ``Boid.step`` per agent on a torus, all from one snapshot (flock's synchronous step).

    Args:
        pos, direction: [N, 2] arrays (direction = velocity / speed). size: [2] torus size.
    Returns:
        (new pos, new direction) float64 arrays.
    """
    pos = np.asarray(pos, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    size = np.asarray(size, dtype=np.float64)
    new_pos, new_dir = pos.copy(), direction.copy()
    for i in range(len(pos)):
        delta = [_wrap_offset(pos[j] - pos[i], size) for j in range(len(pos))]
        near = [j for j in range(len(pos)) if j != i and np.linalg.norm(delta[j]) < vision]
        d = direction[i].copy()
        if near:
            deltas = np.array([delta[j] for j in near])
            dist = np.linalg.norm(deltas, axis=1)
            coh = deltas.sum(0) * cohere
            sep = -deltas[dist < separation].sum(0) * separate
            mat = np.array([direction[j] for j in near]).sum(0) * match
            d = d + (coh + sep + mat) / len(near)
            d = d / np.linalg.norm(d)
        new_dir[i] = d
        new_pos[i] = np.mod(pos[i] + d * speed, size)
    return new_pos, new_dir


def reference_netlogo_step(pos, heading_deg, *, size, origin, vision=3.0, min_sep=1.0, max_align=5.0,
                           max_cohere=3.0, max_separate=1.5, speed=1.0):
    """NetLogo Flocking's ``flock`` then ``fd 1`` per turtle, from one snapshot, in NetLogo's own terms.

    Headings in degrees clockwise from north (dx = sin h, dy = cos h), ``towards`` and
    ``subtract-headings`` as NetLogo defines them; a wrapped world [origin, origin + size).

    Args:
        pos: [N, 2]; heading_deg: [N]. Returns (new pos, new heading) float64 arrays.
    """
    pos = np.asarray(pos, dtype=np.float64)
    heading = np.asarray(heading_deg, dtype=np.float64)
    size, origin = np.asarray(size, dtype=np.float64), np.asarray(origin, dtype=np.float64)

    def subtract_headings(a, b):
        return (a - b + 180.0) % 360.0 - 180.0

    def turn_at_most(h, turn, max_turn):
        return h + (max_turn if turn > 0 else -max_turn) if abs(turn) > max_turn else h + turn

    def atan_nl(x, y):           # NetLogo's atan x y: heading of the vector (x, y)
        return math.degrees(math.atan2(x, y)) % 360.0

    new_heading = heading.copy()
    for i in range(len(pos)):
        offs = {j: _wrap_offset(pos[j] - pos[i], size) for j in range(len(pos)) if j != i}
        mates = [j for j, o in offs.items() if np.linalg.norm(o) < vision]
        h = heading[i]
        if mates:
            nearest = min(mates, key=lambda j: np.linalg.norm(offs[j]))
            if np.linalg.norm(offs[nearest]) < min_sep:
                h = turn_at_most(h, subtract_headings(h, heading[nearest]), max_separate)
            else:
                x = sum(math.sin(math.radians(heading[j])) for j in mates)
                y = sum(math.cos(math.radians(heading[j])) for j in mates)
                if not (x == 0 and y == 0):
                    h = turn_at_most(h, subtract_headings(atan_nl(x, y), h), max_align)
                # towards myself + 180 is the heading from me to the mate
                x = sum(offs[j][0] / np.linalg.norm(offs[j]) for j in mates) / len(mates)
                y = sum(offs[j][1] / np.linalg.norm(offs[j]) for j in mates) / len(mates)
                if not (x == 0 and y == 0):
                    h = turn_at_most(h, subtract_headings(atan_nl(x, y), h), max_cohere)
        new_heading[i] = h % 360.0
    step = speed * np.stack([np.sin(np.radians(new_heading)), np.cos(np.radians(new_heading))], axis=1)
    new_pos = origin + np.mod(pos + step - origin, size)
    return new_pos, new_heading


def adjusted_rand_index(a, b) -> float:
    """ARI of two labelings (the formula of Hubert & Arabie; no scikit-learn needed)."""
    a, b = np.asarray(a), np.asarray(b)
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)

    def pairs(x):
        return float((x * (x - 1) / 2).sum())
    n = len(a)
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    top = (rows + cols) / 2
    return 1.0 if top == expected else (index - expected) / (top - expected)


# ------------------------------------------------------------------ rule arithmetic, one channel at a time
# flock.rules computes these on all channels at once; here is the same arithmetic as it was
# first written, one channel and one operation at a time, with the guarded vector helpers.

def _ref_unit(x):
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    safe = torch.where(norm > 0, norm, torch.ones_like(norm))
    return torch.where(norm > 0, x / safe, torch.zeros_like(x))


def _ref_clip(x, max_norm):
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    scale = torch.where(norm > max_norm, max_norm / torch.where(norm > 0, norm, torch.ones_like(norm)),
                        torch.ones_like(norm))
    return x * scale


def _ref_means(s, dim):
    count = s[:, -1:]
    safe = torch.where(count > 0, count, torch.ones_like(count))
    return count, s[:, :dim] / safe, s[:, dim:2 * dim] / safe


def reference_seed_acceleration(pos, vel, s_view, s_near, *, cohesion, alignment, separation, max_force):
    """``flock.rules.seed_acceleration`` one channel at a time."""
    dim = pos.shape[1]
    n_view, xbar, vbar = _ref_means(s_view, dim)
    n_near, xbar_near, _ = _ref_means(s_near, dim)
    direction = cohesion * _ref_unit(xbar - pos) + alignment * _ref_unit(vbar - vel)
    direction = direction - torch.where(n_near > 0, separation * _ref_unit(xbar_near - pos), torch.zeros_like(pos))
    accel = max_force * _ref_unit(direction)
    return torch.where(n_view > 0, accel, torch.zeros_like(accel))


def _ref_steer(desired_dir, vel, active, *, max_speed, max_force):
    steer = _ref_clip(max_speed * _ref_unit(desired_dir) - vel, max_force)
    return torch.where(active, steer, torch.zeros_like(steer))


def reference_reynolds_acceleration(pos, vel, s_coh, s_ali, s_sep, *, cohesion, alignment, separation,
                                    max_speed, max_force):
    """``flock.rules.reynolds_acceleration`` one channel at a time."""
    dim = pos.shape[1]
    n_coh, xbar, _ = _ref_means(s_coh, dim)
    n_ali, _, vbar = _ref_means(s_ali, dim)
    away = pos * s_sep[:, -1:] - s_sep[:, :dim]
    kw = dict(max_speed=max_speed, max_force=max_force)
    return (cohesion * _ref_steer(xbar - pos, vel, n_coh > 0, **kw)
            + alignment * _ref_steer(vbar, vel, n_ali > 0, **kw)
            + separation * _ref_steer(away, vel, s_sep[:, -1:] > 0, **kw))


def reference_mesa_velocity(vel, s_view, s_sep, pos, *, cohere, separate, match, speed):
    """``flock.rules.mesa_velocity`` one channel at a time."""
    dim = pos.shape[1]
    n = s_view[:, -1:]
    direction = vel / speed
    delta = s_view[:, :dim] - pos * n
    close = s_sep[:, :dim] - pos * s_sep[:, -1:]
    headings = s_view[:, dim:2 * dim] / speed
    safe_n = torch.where(n > 0, n, torch.ones_like(n))
    turned = _ref_unit(direction + (cohere * delta - separate * close + match * headings) / safe_n)
    return torch.where(n > 0, turned * speed, vel)
