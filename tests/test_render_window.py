"""render.window: posted pygame events do what the keys and the mouse say (SDL dummy driver)."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"

import csv  # noqa: E402

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import flock  # noqa: E402
from flock import cli  # noqa: E402
from render.window import Window, run_window, window_available  # noqa: E402

SIZE = (640, 360)


@pytest.fixture
def sim():
    return flock.Simulation.from_scenario("scenarios/boids_seed.yaml", device="cpu")


def open_window(sim, tmp_path, **kw):
    assert window_available(allow_dummy=True) == (True, None)
    return Window(sim, out=tmp_path, size=SIZE, quiet=True, **kw)


def post(kind, **fields):
    pygame.event.post(pygame.event.Event(kind, **fields))


def key(k):
    post(pygame.KEYDOWN, key=k, mod=0)


def click(pos, button=1):
    post(pygame.MOUSEBUTTONDOWN, pos=pos, button=button)
    post(pygame.MOUSEBUTTONUP, pos=pos, button=button)


def test_without_a_real_display_no_window_is_offered(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    ok, why = window_available()
    assert not ok and "dummy" in why
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if os.sys.platform.startswith("linux"):
        ok, why = window_available()
        assert not ok and "DISPLAY" in why


def test_a_click_adds_agents_at_the_pointer(sim, tmp_path):
    win = open_window(sim, tmp_path)
    win.frame()
    n = sim.state.n_agents
    where = (150, 120)
    click(where)
    win.frame()
    assert sim.state.n_agents == n + 5
    target = win.view.screen_to_world(torch.tensor([where], dtype=torch.float64))[0].float()
    new = sim.state.pos[n:]
    assert float(torch.linalg.vector_norm(new - target, dim=1).max()) < 30 / win.view.scale


def test_a_drag_pans_and_adds_nothing(sim, tmp_path):
    win = open_window(sim, tmp_path)
    before = win.view.center
    n = sim.state.n_agents
    post(pygame.MOUSEBUTTONDOWN, pos=(100, 100), button=1)
    post(pygame.MOUSEMOTION, pos=(140, 90), rel=(40, -10), buttons=(1, 0, 0))
    post(pygame.MOUSEBUTTONUP, pos=(140, 90), button=1)
    win.frame()
    assert sim.state.n_agents == n
    assert win.view.center[0] == pytest.approx(before[0] - 40 / win.view.scale)
    assert win.view.center[1] == pytest.approx(before[1] - 10 / win.view.scale)


def test_space_pauses_right_steps_once_and_plus_minus_change_steps_per_frame(sim, tmp_path):
    win = open_window(sim, tmp_path)
    win.frame()
    assert sim.step_count == 1
    key(pygame.K_SPACE)
    win.frame()
    win.frame()
    assert sim.step_count == 1 and win.paused
    key(pygame.K_RIGHT)
    win.frame()
    win.frame()
    assert sim.step_count == 2
    key(pygame.K_SPACE)
    key(pygame.K_PLUS)
    key(pygame.K_PLUS)
    win.frame()
    assert win.steps_per_frame == 4 and sim.step_count == 6
    key(pygame.K_MINUS)
    win.frame()
    assert sim.step_count == 8
    key(pygame.K_r)
    win.frame()
    assert sim.step_count == 2  # reset, then one frame of 2 steps


def test_a_slider_move_changes_the_parameter_the_next_step_uses(sim, tmp_path):
    win = open_window(sim, tmp_path)
    key(pygame.K_SPACE)
    win.frame()
    slider = win.panel.reveal("rules.separation.weight")
    x = slider.x_for(12.0)
    click((x, slider.track.centery))
    win.frame()
    weight = sim.scenario.rules.separation.weight
    assert weight != 5.0 and weight == pytest.approx(12.0, rel=0.02)
    # the next step is the step of a simulation built with that weight
    ref = flock.Simulation.from_scenario("scenarios/boids_seed.yaml", device="cpu")
    ref.scenario.rules.separation.weight = weight
    ref.state = sim.state.clone()
    key(pygame.K_RIGHT)
    win.frame()
    ref.step(1)
    assert torch.equal(sim.state.pos, ref.state.pos)
    untouched = flock.Simulation.from_scenario("scenarios/boids_seed.yaml", device="cpu")
    untouched.step(1)
    assert not torch.equal(sim.state.pos, untouched.state.pos)


def test_p_writes_a_scenario_that_validates_and_rebuilds_the_parameters(sim, tmp_path, capsys):
    win = open_window(sim, tmp_path)
    slider = win.panel.reveal("agents.max_speed")
    click((slider.x_for(7.5), slider.track.centery))
    key(pygame.K_p)
    win.frame()
    written = sorted(tmp_path.glob("boids_seed_step*.yaml"))
    assert len(written) == 1
    again = flock.load_scenario(written[0])
    assert again.agents.max_speed == sim.scenario.agents.max_speed == pytest.approx(7.5, rel=0.02)
    assert again.rules == sim.scenario.rules and again.agents == sim.scenario.agents
    assert again.world == sim.scenario.world and again.run == sim.scenario.run
    assert cli.main(["validate", str(written[0])]) == 0


def test_file_positions_stay_valid_when_saved_elsewhere(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "pos.npy", np.random.default_rng(0).uniform(0, 50, (20, 2)))
    (src / "s.yaml").write_text("world: {size: [50, 50]}\nagents: {position: {kind: file, path: pos.npy}}\n"
                                "rules: {formulation: meanshift, bandwidth: 3}\n")
    sim = flock.Simulation.from_scenario(src / "s.yaml", device="cpu")
    win = open_window(sim, tmp_path / "out")
    key(pygame.K_p)
    win.frame()
    (written,) = (tmp_path / "out").glob("*.yaml")
    again = flock.load_scenario(written)
    assert again.agents.position.path == str((src / "pos.npy").resolve())


def test_right_drag_places_a_predator_that_follows_and_goes_on_release(sim, tmp_path):
    win = open_window(sim, tmp_path)
    post(pygame.MOUSEBUTTONDOWN, pos=(200, 150), button=3)
    post(pygame.MOUSEMOTION, pos=(260, 150), rel=(60, 0), buttons=(0, 0, 1))
    win.frame()
    (force,) = sim.point_forces
    assert force.strength < 0
    expected = win.view.screen_to_world(torch.tensor([[260.0, 150.0]], dtype=torch.float64))[0]
    assert force.center == pytest.approx(expected.tolist())
    key(pygame.K_a)
    win.frame()
    assert force.strength > 0 and win.attract
    post(pygame.MOUSEBUTTONUP, pos=(260, 150), button=3)
    win.frame()
    assert sim.point_forces == []


def test_screenshot_wheel_colours_trails_help_and_quit(sim, tmp_path):
    win = open_window(sim, tmp_path)
    scale = win.view.scale
    post(pygame.MOUSEMOTION, pos=(300, 200), rel=(0, 0), buttons=(0, 0, 0))
    post(pygame.MOUSEWHEEL, x=0, y=2)
    win.frame()
    assert win.view.scale == pytest.approx(scale * 1.15 ** 2)
    for k in (pygame.K_c, pygame.K_t, pygame.K_h, pygame.K_TAB, pygame.K_s):
        key(k)
    win.frame()
    assert win.renderer.color_by == "speed" and win.renderer.trails_on and win.show_help
    assert not win.panel.visible and win.layout.panel_rect is None and win.layout.field.size == SIZE
    (shot,) = tmp_path.glob("screenshot_*.png")
    assert pygame.image.load(str(shot)).get_size() == SIZE
    key(pygame.K_ESCAPE)
    assert win.frame() is False


def test_3d_right_drag_rotates(tmp_path):
    data = {"world": {"dims": 3, "size": [40.0, 40.0, 40.0], "boundary": "wrap"},
            "agents": {"count": 200, "max_speed": 1.0, "velocity": {"kind": "random_direction"}},
            "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 5.0},
                      "alignment": {"weight": 1.0, "radius": 5.0}, "separation": {"weight": 1.5, "radius": 2.0}}}
    sim = flock.Simulation(flock.validate_scenario(data), device="cpu")
    win = open_window(sim, tmp_path)
    yaw, pitch = win.view.yaw, win.view.pitch
    post(pygame.MOUSEBUTTONDOWN, pos=(300, 200), button=3)
    post(pygame.MOUSEMOTION, pos=(340, 220), rel=(40, 20), buttons=(0, 0, 1))
    post(pygame.MOUSEBUTTONUP, pos=(340, 220), button=3)
    win.frame()
    assert win.view.yaw == pytest.approx(yaw + 0.4) and win.view.pitch == pytest.approx(pitch + 0.2)
    assert sim.point_forces == []
    click((320, 180))
    win.frame()
    assert sim.state.n_agents == 205


def test_run_window_closes_by_itself_after_steps_and_writes_the_run(sim, tmp_path, capsys):
    assert run_window(sim, steps=6, out=tmp_path, allow_dummy=True) == 0
    assert sim.step_count == 6
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert int(rows[-1]["step"]) == 6
    assert int(np.load(tmp_path / "final_state.npz")["step"]) == 6
    assert "boids_seed: done after 6 steps" in capsys.readouterr().out


def test_mean_shift_window_stops_when_converged(tmp_path):
    sim = flock.Simulation.from_scenario("scenarios/meanshift_seed.yaml", device="cpu")
    assert run_window(sim, steps=50, out=tmp_path, allow_dummy=True, paused=False, steps_per_second=None) == 0
    assert sim.done and sim.step_count < 50


def test_flocksim_run_without_a_display_runs_headless_and_says_so(tmp_path, capsys):
    rc = cli.main(["run", "scenarios/boids_seed.yaml", "--steps", "3", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "no window: SDL_VIDEODRIVER=dummy" in captured.err and "running headless" in captured.err
    assert (tmp_path / "final_state.npz").exists()


def test_field_of_view_slider_stops_at_360_degrees_and_netlogo_has_none():
    from render.panel import tunable_parameters

    sc = flock.load_scenario("scenarios/obstacles.yaml")
    fov = next(p for p in tunable_parameters(sc) if p.path == "rules.field_of_view")
    assert fov.hi == 360.0 and 0 < fov.lo < 270
    turns = [p for p in tunable_parameters(flock.load_scenario("scenarios/netlogo_flocking.yaml"))
             if p.path.endswith("max_turn")]
    assert turns and all(p.hi <= 180.0 for p in turns)
    netlogo = {p.path for p in tunable_parameters(flock.load_scenario("scenarios/netlogo_flocking.yaml"))}
    assert "rules.field_of_view" not in netlogo
