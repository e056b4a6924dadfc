"""Headless pictures of a run: PNG frames, an animated GIF (Pillow) and a video (imageio-ffmpeg).

The frames are drawn by the window's own ``Renderer`` onto an off-screen pygame Surface
(no display needed). Every PNG is written as soon as it is drawn, the video frame is sent
to ffmpeg at once, and the GIF is written by ``close()`` (call it in a ``finally``) from
the frames collected so far, so an interrupted run keeps what it made.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pygame
from PIL import Image

from .draw import Renderer
from .view import View
from flock.formulations import converges

VIDEO_HELP = "--video needs the optional imageio-ffmpeg package: pip install imageio-ffmpeg"
GIF_HOLD_MS = 1500  # the last GIF frame stays this long before the loop starts again


def video_support() -> str | None:
    """None when videos can be written, else what to install."""
    return None if importlib.util.find_spec("imageio_ffmpeg") is not None else VIDEO_HELP


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size: expected WIDTHxHEIGHT such as 640x360, got {text!r}") from None
    if w < 16 or h < 16:
        raise ValueError(f"--size: expected at least 16x16 pixels, got {text!r}")
    return w, h


def make_view(sim, width: int, height: int) -> View:
    """A view fitted to ``sim``'s world box."""
    world = sim.scenario.world
    origin = world.origin if world.origin is not None else [0.0] * world.dims
    return View(origin, world.size, width, height)


def surface_to_image(surface: pygame.Surface) -> Image.Image:
    """A Pillow RGB image of a pygame Surface."""
    return Image.frombytes("RGB", surface.get_size(), pygame.image.tobytes(surface, "RGB"))


class FrameWriter:
    """Draws a simulation into frames on disk.

    Args:
        sim: the simulation (its ``scenario.render`` gives size, colours and trails).
        frames_dir: folder for ``frame_00000.png``, ... (None: no PNGs).
        gif: animated GIF path (None: none). video: .mp4 path (None: none; needs imageio-ffmpeg).
        size: (width, height) px (None: ``scenario.render`` width and height).
        fps: frame rate of the GIF and the video.
        hud: draw a line with the step and the number of agents.
        trail: past positions drawn behind each agent (None: ``scenario.render.trail``).
    """

    def __init__(self, sim, *, frames_dir=None, gif=None, video=None, size=None, fps: float = 10.0,
                 hud: bool = True, trail: int | None = None):
        rs = sim.scenario.render
        width, height = size if size is not None else (rs.width, rs.height)
        if video is not None:  # H.264 in yuv420p wants even sizes
            width, height = width - width % 2, height - height % 2
        self.size = (width, height)
        self.surface = pygame.Surface(self.size)
        self.view = make_view(sim, width, height)
        self.renderer = Renderer(self.view, color_by=rs.color_by, agent_size=rs.agent_size,
                                 trail=rs.trail if trail is None else trail, font_size=max(14, min(20, height // 28)))
        self.frames_dir = Path(frames_dir) if frames_dir is not None else None
        self.gif = Path(gif) if gif is not None else None
        self.video = Path(video) if video is not None else None
        self.fps = float(fps)
        self.hud = hud
        self.count = 0
        self.last_step: int | None = None
        self._gif_frames: list[Image.Image] = []
        self._video = None
        if self.frames_dir is not None:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
        for path in (self.gif, self.video):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        if self.video is not None:
            import imageio_ffmpeg  # noqa: PLC0415  (optional extra)

            self._video = imageio_ffmpeg.write_frames(str(self.video), self.size, fps=self.fps, macro_block_size=2)
            self._video.send(None)

    def hud_lines(self, sim) -> list[str]:
        name = sim.scenario.name or "scenario"
        text = f"{name}   step {sim.step_count}   {sim.state.n_agents:,} agents"
        if converges(sim.scenario) and self.renderer.modes.centers is not None:
            text += f"   {self.renderer.modes.centers.shape[0]} modes"
        return [text]

    def capture(self, sim) -> None:
        """Draw the current state and write it out (PNG at once, GIF frame kept, video frame sent)."""
        self.renderer.draw(self.surface, sim)
        if self.hud:  # drawn after the agents so the mode count is known
            self.renderer.draw_text(self.surface, self.hud_lines(sim), (8, 6))
        if self.frames_dir is not None:
            pygame.image.save(self.surface, str(self.frames_dir / f"frame_{self.count:05d}.png"))
        if self.gif is not None:
            self._gif_frames.append(surface_to_image(self.surface).quantize(
                colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
        if self._video is not None:
            self._video.send(pygame.image.tobytes(self.surface, "RGB"))
        self.count += 1
        self.last_step = sim.step_count

    def save_png(self, sim, path) -> Path:
        """One picture of the current state at ``path``."""
        self.renderer.draw(self.surface, sim)
        if self.hud:
            self.renderer.draw_text(self.surface, self.hud_lines(sim), (8, 6))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.surface, str(path))
        return path

    def close(self) -> list[str]:
        """Write the GIF and finish the video; returns lines saying what was written."""
        done = []
        if self.frames_dir is not None:
            done.append(f"wrote {self.count} frames to {self.frames_dir}")
        if self.gif is not None and self._gif_frames:
            frames = self._gif_frames
            step_ms = max(20, round(1000 / self.fps))
            durations = [step_ms] * (len(frames) - 1) + [max(step_ms, GIF_HOLD_MS)]
            frames[0].save(self.gif, save_all=True, append_images=frames[1:], duration=durations, loop=0)
            done.append(f"wrote {self.gif} ({len(frames)} frames)")
            self._gif_frames = []
        if self._video is not None:
            self._video.close()
            self._video = None
            done.append(f"wrote {self.video} ({self.count} frames)")
        return done
