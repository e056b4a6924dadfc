"""The pygame front end of flock: a live window to watch and play with a flock, and headless frames.

    render.view      View: world <-> screen mapping (tensor ops), zoom, pan, 3D rotation
    render.draw      Renderer: one drawing code for the window and for files; the legend
    render.layout    Layout: the field, the side panel beside it and the replay's scrub bar
    render.panel     Panel: on-screen sliders bound to the scenario's numeric parameters, the pace slider
    render.plots     Plots: live line charts of the metrics log (or a recording's metrics)
    render.window    run_window / window_available / Window: the interactive loop
    render.replay    ReplayWindow / run_replay: a recording played back, scrubbed and stepped
    render.export    FrameWriter: PNG frames, animated GIF, video (imageio-ffmpeg, optional)

``flock`` never imports this package; this package reads the simulation through its public
attributes (``sim.state``, ``sim.scenario``, ``sim.backend``, ``sim.point_forces``).
"""

import os

# pygame prints a banner on import unless told not to; the CLI's output should stay its own.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from .view import View  # noqa: E402

__all__ = ["View"]
