"""View: where the world appears on the screen.

A view maps world positions to screen pixels with one scale for both axes (the aspect
ratio is kept), the world's y axis pointing up. It starts fitted to the world box and
can be zoomed about a screen point, panned by pixels and, for 3D worlds, rotated: a 3D
world is shown orthographically after a rotation (yaw about the world's z axis, then
pitch about the screen's x axis) about the box centre, and the rotated z is the depth.

Screen pixel (i, j) covers [i, i + 1) x [j, j + 1): a point at screen coordinates
(sx, sy) lies in pixel (floor(sx), floor(sy)).

    symbol -> variable
    s      -> scale        pixels per world unit
    c      -> center       [2] plane point shown at the screen centre
    R      -> rotation     [3, 3] world -> view rotation (3D only)
    screen = (W/2 + s (u - c_u), H/2 - s (v - c_v)),  (u, v, depth) = R (x - box centre)
"""

from __future__ import annotations

import math

import torch


class View:
    """World <-> screen mapping for a box [origin, origin + size) of 2 or 3 dimensions.

    Args:
        origin: lower corner of the world box, world units (len D, D = 2 or 3).
        size: box lengths, world units (len D).
        width, height: screen size, pixels.
        margin: fraction of the screen left free around the fitted box.
    """

    MIN_SCALE = 1e-6

    def __init__(self, origin, size, width: int, height: int, *, margin: float = 0.04):
        self.dims = len(size)
        if self.dims not in (2, 3) or len(origin) != self.dims:
            raise ValueError(f"View: expected a 2D or 3D box, got origin {origin} and size {size}")
        self.box_origin = tuple(float(o) for o in origin)
        self.box_size = tuple(float(s) for s in size)
        self.width, self.height = int(width), int(height)
        self.margin = margin
        self.yaw, self.pitch = (0.6, -0.5) if self.dims == 3 else (0.0, 0.0)
        self.fit()

    # ------------------------------------------------------------ state

    @property
    def box_center(self) -> tuple[float, ...]:
        return tuple(o + s / 2 for o, s in zip(self.box_origin, self.box_size))

    def fit(self) -> None:
        """Zoom and pan so the whole box is visible (in 3D: at any rotation)."""
        self.center = (self.box_center[0], self.box_center[1]) if self.dims == 2 else (0.0, 0.0)
        self.scale = self.fit_scale(self.width, self.height)

    def fit_scale(self, width: int, height: int) -> float:
        """Pixels per world unit that fit the whole box on a ``width`` x ``height`` screen."""
        if self.dims == 2:
            extent = self.box_size
        else:
            diag = math.sqrt(sum(s * s for s in self.box_size))
            extent = (diag, diag)
        free = 1 - 2 * self.margin
        return max(self.MIN_SCALE, min(width * free / extent[0], height * free / extent[1]))

    def resize(self, width: int, height: int, *, keep_zoom: bool = False) -> None:
        """A new screen size; the plane point at the screen centre stays there.

        Args:
            keep_zoom: scale the picture with the screen (the zoom relative to a fitted view
                stays), as when the window is resized or the panel collapses; else the scale
                in pixels per world unit stays.
        """
        width, height = max(1, int(width)), max(1, int(height))
        if keep_zoom:
            zoom = self.scale / self.fit_scale(self.width, self.height)
            self.scale = max(self.MIN_SCALE, zoom * self.fit_scale(width, height))
        self.width, self.height = width, height

    def rotation(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """[3, 3] world -> view rotation (yaw about z, then pitch about the view's x axis)."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        yaw = [[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]]
        pitch = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]]
        kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
        return torch.as_tensor(pitch, **kw) @ torch.as_tensor(yaw, **kw)

    # ------------------------------------------------------------ mapping

    def project(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Plane coordinates and depth of world positions.

        Args:
            pos: [N, D] positions, world units.
        Returns:
            (plane [N, 2] world units, depth [N] world units or None in 2D). Larger depth is
            nearer the viewer.
        """
        if self.dims == 2:
            return pos[:, :2], None
        centre = torch.as_tensor(self.box_center, device=pos.device, dtype=pos.dtype)
        rotated = (pos - centre) @ self.rotation(pos).T
        return rotated[:, :2], rotated[:, 2]

    def plane_to_screen(self, plane: torch.Tensor) -> torch.Tensor:
        """[N, 2] plane coordinates -> [N, 2] screen coordinates, pixels (float)."""
        c = torch.as_tensor(self.center, device=plane.device, dtype=plane.dtype)
        flip = torch.as_tensor([1.0, -1.0], device=plane.device, dtype=plane.dtype)
        half = torch.as_tensor([self.width / 2, self.height / 2], device=plane.device, dtype=plane.dtype)
        return half + (plane - c) * (self.scale * flip)

    def world_to_screen(self, pos: torch.Tensor) -> torch.Tensor:
        """[N, D] world positions -> [N, 2] screen coordinates, pixels (float; floor gives the pixel)."""
        return self.plane_to_screen(self.project(pos)[0])

    def direction_to_screen(self, vec: torch.Tensor) -> torch.Tensor:
        """[N, D] world directions (e.g. velocities) -> [N, 2] screen directions (y down), not normalised."""
        if self.dims == 3:
            vec = (vec @ self.rotation(vec).T)[:, :2]
        return vec[:, :2] * torch.as_tensor([1.0, -1.0], device=vec.device, dtype=vec.dtype)

    def screen_to_plane(self, screen: torch.Tensor) -> torch.Tensor:
        """[N, 2] screen coordinates, pixels -> [N, 2] plane coordinates, world units."""
        screen = torch.as_tensor(screen, dtype=torch.float64) if not torch.is_tensor(screen) else screen
        if not screen.is_floating_point():
            screen = screen.to(torch.float64)
        c = torch.as_tensor(self.center, device=screen.device, dtype=screen.dtype)
        flip = torch.as_tensor([1.0, -1.0], device=screen.device, dtype=screen.dtype)
        half = torch.as_tensor([self.width / 2, self.height / 2], device=screen.device, dtype=screen.dtype)
        return c + (screen - half) * flip / self.scale

    def screen_to_world(self, screen) -> torch.Tensor:
        """[N, 2] screen coordinates -> [N, D] world positions (in 3D: on the plane through the box
        centre facing the viewer)."""
        plane = self.screen_to_plane(screen)
        if self.dims == 2:
            return plane
        rotated = torch.cat([plane, torch.zeros_like(plane[:, :1])], dim=1)
        centre = torch.as_tensor(self.box_center, device=plane.device, dtype=plane.dtype)
        return rotated @ self.rotation(plane) + centre

    def pixels_per_unit(self) -> float:
        return self.scale

    # ------------------------------------------------------------ interaction

    def zoom_at(self, factor: float, screen_xy) -> None:
        """Zoom by ``factor`` (> 1 in) keeping the plane point under ``screen_xy`` fixed."""
        anchor = self.screen_to_plane(torch.as_tensor([screen_xy], dtype=torch.float64))[0]
        self.scale = max(self.MIN_SCALE, self.scale * float(factor))
        sx, sy = float(screen_xy[0]), float(screen_xy[1])
        self.center = (float(anchor[0]) - (sx - self.width / 2) / self.scale,
                       float(anchor[1]) + (sy - self.height / 2) / self.scale)

    def pan(self, dx: float, dy: float) -> None:
        """Move the picture by (dx, dy) pixels (what is under the pointer follows a drag)."""
        self.center = (self.center[0] - dx / self.scale, self.center[1] + dy / self.scale)

    def rotate(self, dyaw: float, dpitch: float) -> None:
        """Turn a 3D view by radians (pitch clamped to +-90 degrees); nothing in 2D."""
        if self.dims != 3:
            return
        self.yaw = (self.yaw + dyaw) % (2 * math.pi)
        self.pitch = max(-math.pi / 2, min(math.pi / 2, self.pitch + dpitch))

    def box_edges(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Screen segments of the world box's outline: 4 edges in 2D, 12 in 3D."""
        o, s = self.box_origin, self.box_size
        corners = torch.tensor([[o[k] + s[k] * ((i >> k) & 1) for k in range(self.dims)]
                                for i in range(2 ** self.dims)], dtype=torch.float64)
        pts = self.world_to_screen(corners)
        edges = []
        for i in range(len(corners)):
            for k in range(self.dims):
                j = i | (1 << k)
                if j != i:
                    edges.append((pts[i], pts[j]))
        return edges
