"""render.layout / render.plots / render.replay and the window's pace: the panel never covers the
field, plots draw the metrics where the values say, mean shift waits for Space, runs keep their
own folders, and the replay's scrub bar and keys go to the right frame (SDL dummy driver)."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"

import argparse  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402

import flock  # noqa: E402
from flock import cli  # noqa: E402
from flock.metrics import MetricsLog  # noqa: E402
from render.draw import GROUP_PALETTE, Renderer  # noqa: E402
from render.export import make_view  # noqa: E402
from render.layout import PANEL_WIDTH, Layout  # noqa: E402
from render.plots import LINE_COLOR, Plots, envelope  # noqa: E402
from render.window import Window, window_available  # noqa: E402


class FakeClock:
    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def window(name="boids_seed", size=(900, 600), overrides=None, **kw):
    assert window_available(allow_dummy=True) == (True, None)
    sc = flock.load_scenario(f"scenarios/{name}.yaml", overrides=overrides)
    sim = flock.Simulation.from_scenario(sc, device="cpu")
    return Window(sim, size=size, quiet=True, **kw)


def inside(outer: pygame.Rect, inner: pygame.Rect) -> bool:
    return inner.width == 0 or inner.height == 0 or outer.contains(inner)


@pytest.mark.parametrize("size", [(900, 600), (1300, 820), (520, 300), (480, 900), (300, 200), (64, 64)])
def test_the_panel_never_overlaps_the_field_and_a_resize_lays_out_again(size, tmp_path):
    win = window("predator_prey", out=tmp_path, steps_per_second=None)
    pygame.event.post(pygame.event.Event(pygame.VIDEORESIZE, w=size[0], h=size[1], size=size))
    win.frame()
    lay = win.layout
    assert win.surface.get_size() == size and lay.size == size
    assert (win.view.width, win.view.height) == lay.field.size
    assert lay.field.topleft == (0, 0)
    if lay.panel_rect is not None:
        assert not lay.field.colliderect(lay.panel_rect)
        assert lay.field.width + lay.panel_rect.width == size[0]
        for name, part in win.sections.items():
            assert inside(lay.panel_rect, part), name
        for s in win.panel.sliders:
            if win.panel.area.contains(s.rect):
                assert not s.rect.colliderect(win.sections["plots"])
    else:
        assert size[0] < PANEL_WIDTH + 200 and lay.field.size == size
    # what the field shows is exactly the renderer's picture of the field alone: nothing drawn over it
    alone = pygame.Surface(lay.field.size)
    ref = Renderer(win.view, color_by=win.renderer.color_by, agent_size=win.renderer.agent_size)
    ref.draw(alone, win.sim, hud=win.hud_lines())
    shown = pygame.surfarray.array3d(win.surface.subsurface(lay.field))
    assert np.array_equal(shown, pygame.surfarray.array3d(alone))


def test_tab_collapses_the_panel_and_the_field_grows_keeping_the_zoom(tmp_path):
    win = window(out=tmp_path)
    win.frame()
    assert win.layout.panel_shown and win.layout.field.width == 900 - PANEL_WIDTH
    zoom = win.view.scale / win.view.fit_scale(win.view.width, win.view.height)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_TAB, mod=0))
    win.frame()
    assert not win.layout.panel_shown and win.layout.field.size == (900, 600)
    assert win.view.scale / win.view.fit_scale(900, 600) == pytest.approx(zoom)
    assert all(r.size == (900, 600) for r in Layout((900, 600), panel=False).rects())


def test_envelope_is_the_min_and_max_of_each_pixel_column():
    gen = np.random.default_rng(0)
    x = np.sort(gen.uniform(0, 1000, 5000))
    y = gen.normal(size=5000)
    y[::97] = np.nan
    rect = pygame.Rect(10, 20, 120, 50)
    pts = np.asarray(envelope(x, y, (0.0, 1000.0), (-4.0, 4.0), rect))
    keep = np.isfinite(y)
    cols = np.clip(np.floor(x[keep] / 1000 * 119 + 0.5).astype(int), 0, 119)   # column c: [c - 1/2, c + 1/2)
    expected = []
    for c in np.unique(cols):
        v = y[keep][cols == c]
        to_px = lambda t: np.clip(rect.bottom - 1 - (t + 4) / 8 * 49, rect.y, rect.bottom - 1)  # noqa: E731
        expected += [(rect.x + c, to_px(v.min())), (rect.x + c, to_px(v.max()))]
    assert np.allclose(pts, expected)


def test_plots_draw_the_metrics_log_where_the_values_say():
    sc = flock.load_scenario("scenarios/boids_seed.yaml")
    log = MetricsLog()
    for step in range(0, 200):
        log.append({"step": step, "polarization": 0.5 + 0.4 * math.sin(step / 30), "mean_speed": 1.0 + step / 100,
                    "mean_nn_distance": 3.0})
    plots = Plots(sc)
    assert plots.sync(log) == 200 and plots.sync(log) == 0
    surface = pygame.Surface((280, 400))
    pygame.font.init()
    font = pygame.font.Font(None, 16)
    plots.draw(surface, surface.get_rect(), font)
    arr = pygame.surfarray.array3d(surface)
    for name in ("polarization", "mean_speed"):
        plot = plots.plots[name]
        steps, values = plots.column(name)
        for i in range(0, 200, 7):
            px, py = plot.to_pixel(steps[i], values[i])
            patch = arr[px - 1:px + 2, py - 1:py + 2].reshape(-1, 3)
            assert (patch == LINE_COLOR).all(1).any(), (name, i, px, py)
    pol = plots.plots["polarization"]
    assert pol.y_range == (0.0, 1.0)
    # a pixel far from the line is the chart's background
    px, py = pol.to_pixel(100, 0.02)
    assert tuple(arr[px, py]) != LINE_COLOR
    # a reset simulation (a new log) starts the charts again
    again = MetricsLog()
    again.append({"step": 0, "polarization": 1.0})
    assert plots.sync(again) == 1 and plots.column("polarization")[1].tolist() == [1.0]


def test_mean_shift_starts_paused_then_steps_at_the_configured_rate(tmp_path):
    clock = FakeClock(0.25)
    win = window("meanshift_seed", size=(800, 500), out=tmp_path, clock=clock)
    assert win.paused and win.rate == 2.0
    for _ in range(3):
        win.frame()
    assert win.sim.step_count == 0 and not win.started
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_SPACE, mod=0))
    win.frame()   # 0.25 s at 2 steps/s: half a step
    counts = []
    for _ in range(4):
        win.frame()
        counts.append(win.sim.step_count)
    assert counts == [1, 1, 2, 2]
    # the pace slider's right end is "max": steps_per_frame every frame
    win.set_pace(win.rate_slider.value_at(win.rate_slider.track.right))
    assert win.rate is None
    before = win.sim.step_count
    win.frame()
    assert win.sim.step_count == before + 1 or win.sim.done
    # a boids scenario runs at once; --paused (paused=True) holds it
    assert not window(out=tmp_path).paused
    assert window(out=tmp_path, paused=True).paused


def test_3d_hud_says_right_drag_rotates(tmp_path):
    win = window("murmuration_3d", out=tmp_path, overrides=["agents.count=100"])
    text = " ".join(win.hud_lines())
    assert "Shift+right drag: predator" in text and "right drag: rotate" in text
    assert "right drag: predator" in " ".join(window(out=tmp_path).hud_lines())


def test_species_are_named_on_their_sliders_and_their_sliders_work(tmp_path):
    win = window("predator_prey", size=(1000, 800), out=tmp_path, steps_per_second=None)
    labels = {p.path: p.label for p in win.panel.params}
    assert labels["agents.max_speed"] == "prey: max speed"
    assert labels["species.0.max_speed"] == "predator: max speed"
    assert labels["species.0.rules.separation.weight"] == "predator: separation weight"
    assert labels["interactions.flee.0.radius"] == "prey flees predator: radius"
    slider = win.panel.reveal("species.0.max_speed")
    x = slider.x_for(4.0)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(x, slider.track.centery), button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(x, slider.track.centery), button=1))
    win.frame()
    assert win.sim.scenario.species[0].max_speed == pytest.approx(4.0, rel=0.03)
    # predators: larger, in their own shape and colour, on top of the prey
    assert win.renderer.species_size() >= 2 * win.renderer.agent_size
    surface = pygame.Surface((400, 400))
    renderer = Renderer(make_view(win.sim, 400, 400), agent_size=4)
    renderer.draw(surface, win.sim, show_box=False)
    arr = pygame.surfarray.array3d(surface)
    screen = renderer.view.world_to_screen(win.sim.state.pos).floor().long()
    predators = (win.sim.state.group == 1).nonzero().squeeze(1).tolist()
    red = np.array(GROUP_PALETTE[1])
    for i in predators:
        x, y = screen[i].tolist()
        if 6 <= x < 394 and 6 <= y < 394:
            patch = arr[x - 5:x + 6, y - 5:y + 6].reshape(-1, 3)
            assert (patch == red).all(1).sum() >= 12     # far more than a 4 px prey triangle
    # the legend names both groups
    texts = [t for _, _, t in renderer.legend_rows(win.sim)]
    assert texts == ["prey: 600", "predator: 3"]


def test_a_stale_display_runs_headless_at_once(monkeypatch, tmp_path, capsys):
    """DISPLAY names no X server: SDL falls back to its offscreen driver, which counts as no display."""
    pygame.display.quit()
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":9471")

    def no_window(*a, **k):
        raise AssertionError("a window was opened on a stale display")

    monkeypatch.setattr("render.window.Window", no_window)
    try:
        rc = cli.main(["run", "scenarios/boids_seed.yaml", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    finally:
        pygame.display.quit()
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "final_state.npz").exists()
    assert "no window:" in err and "running headless" in err
    assert "offscreen" in err or "could not open a display" in err
    assert len([line for line in err.splitlines() if "no window" in line]) == 1


def test_runs_without_out_get_folders_of_their_own_and_out_asks_for_overwrite(monkeypatch, tmp_path, capsys):
    scen = os.path.abspath("scenarios/boids_seed.yaml")
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert cli.main(["run", scen, "--headless", "--steps", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["boids_seed-1", "boids_seed-2"]
    for name in ("boids_seed-1", "boids_seed-2"):
        assert (tmp_path / "runs" / name / "metrics.csv").exists()
    capsys.readouterr()
    out = str(tmp_path / "runs" / "boids_seed-1")
    assert cli.main(["run", scen, "--headless", "--steps", "1", "--quiet", "--out", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["run", scen, "--headless", "--steps", "1", "--quiet", "--out", out, "--overwrite"]) == 0


def test_every_subcommand_and_option_is_described():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name, p in sub.choices.items():
        assert helps.get(name), f"{name}: no help line"
        assert p.description, f"{name}: no description"
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest}: no help"
    run = sub.choices["run"]
    fps = next(a for a in run._actions if "--fps" in a.option_strings)
    assert "render.fps" in fps.help


# ---------------------------------------------------------------- replay


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from flock.recording import H5Recorder, read_recording

    path = tmp_path_factory.mktemp("rec") / "run.h5"
    sim = flock.Simulation.from_scenario("scenarios/boids_seed.yaml", device="cpu")
    with H5Recorder(path) as rec:
        rec.attach(sim)
        for _ in range(11):
            sim.step(1)
            rec.record(sim)
    return read_recording(path)


def test_replay_scrub_and_step_go_to_the_right_frame(recording):
    from render.replay import ReplayWindow

    assert window_available(allow_dummy=True) == (True, None)
    clock = FakeClock(0.1)
    win = ReplayWindow(recording, size=(900, 560), fps=10.0, surface=pygame.Surface((900, 560)), clock=clock)
    assert win.n_frames == 12 and win.index == 0 and win.playing
    assert not win.layout.bar_rect.colliderect(win.layout.field)
    assert not win.layout.bar_rect.colliderect(win.layout.panel_rect)
    win.frame()
    assert win.index == 1   # 0.1 s at 10 frames/s
    x = win.x_of(7)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(x, win.track.centery), button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(x, win.track.centery), button=1))
    win.frame()
    assert win.index == 7 and not win.playing
    assert win.sim.step_count == int(recording.steps[7])
    assert np.allclose(win.sim.state.pos.numpy(), recording.frame(7)[0])
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(win.x_of(2), win.track.centery), button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEMOTION, pos=(win.x_of(9), win.track.centery), rel=(1, 0),
                                         buttons=(1, 0, 0)))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(win.x_of(9), win.track.centery), button=1))
    win.frame()
    assert win.index == 9
    for k, expected in ((pygame.K_RIGHT, 10), (pygame.K_LEFT, 9), (pygame.K_LEFT, 8), (pygame.K_END, 11),
                        (pygame.K_RIGHT, 11), (pygame.K_HOME, 0)):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=k, mod=0))
        win.frame()
        assert win.index == expected
        assert win.sim.step_count == int(recording.steps[expected])
    # played to the end it stops there; with L it starts again
    win.seek(10)
    win.playing = True
    win.frame()
    win.frame()
    assert win.index == 11 and not win.playing
    for k in (pygame.K_l, pygame.K_SPACE, pygame.K_PLUS, pygame.K_h):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=k, mod=0))
    win.frame()
    assert win.loop and win.playing and win.fps == 20.0 and win.show_help
    win.seek(11)
    win.frame()   # 0.1 s at 20 frames/s: two frames on, wrapped
    assert win.index == 1
    # the plots are the recording's metrics, with a cursor at the frame shown
    steps, values = win.plots.column("polarization")
    assert np.array_equal(steps, recording.metrics["step"])
    assert np.allclose(values, recording.metrics["polarization"], equal_nan=True)
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0))
    assert win.frame() is False

