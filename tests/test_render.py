"""render.view and render.draw: agents land on the pixels the view says, in both drawing paths."""

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"

import math  # noqa: E402

import numpy as np  # noqa: E402
import pygame  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import flock  # noqa: E402
from flock.state import FlockState  # noqa: E402
from render.draw import BACKGROUND, Renderer, palette_colors, pixel_indices, splat  # noqa: E402
from render.export import make_view  # noqa: E402
from render.view import View  # noqa: E402

W, H = 200, 120


def boids(n_agents=3, **world):
    data = {"world": {"dims": 2, "size": [100.0, 60.0], "boundary": "wrap", **world},
            "agents": {"count": n_agents, "max_speed": 2.0},
            "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 5.0},
                      "alignment": {"weight": 1.0, "radius": 5.0}, "separation": {"weight": 1.0, "radius": 2.0}},
            "run": {"device": "cpu"}}
    return flock.Simulation(flock.validate_scenario(data), device="cpu", record_metrics=False)


def place(sim, pos, vel=None):
    pos = torch.as_tensor(pos, dtype=torch.float32)
    vel = torch.ones_like(pos) if vel is None else torch.as_tensor(vel, dtype=torch.float32)
    sim.state = FlockState(pos=pos, vel=vel)


def pixels(surface):
    """[W, H, 3] array of the surface and a [W, H] mask of non-background pixels."""
    arr = pygame.surfarray.array3d(surface)
    return arr, np.any(arr != np.array(BACKGROUND), axis=2)


def draw(sim, view, **kw):
    surface = pygame.Surface((view.width, view.height))
    Renderer(view, **kw).draw(surface, sim, show_box=False)
    return surface


KNOWN = [[10.0, 10.0], [50.0, 30.0], [80.0, 45.0], [33.3, 51.7]]


def test_view_keeps_the_aspect_ratio_and_puts_y_up():
    view = View([0, 0], [100, 60], W, H, margin=0.0)
    assert view.scale == pytest.approx(min(W / 100, H / 60))
    corners = view.world_to_screen(torch.tensor([[0.0, 0.0], [100.0, 60.0]]))
    # the box is centred, lower-left world corner at the bottom left of the screen
    assert corners[0].tolist() == pytest.approx([0.0, H])
    assert corners[1].tolist() == pytest.approx([W, 0.0])
    pts = torch.rand(50, 2, dtype=torch.float64) * 100
    assert torch.allclose(view.screen_to_world(view.world_to_screen(pts)), pts)


def test_known_state_has_agent_pixels_where_the_view_puts_them_and_background_elsewhere():
    sim = boids(len(KNOWN))
    place(sim, KNOWN)
    view = make_view(sim, W, H)
    arr, mask = pixels(draw(sim, view, agent_size=6.0))
    screen = view.world_to_screen(sim.state.pos).floor().long().tolist()
    for x, y in screen:
        assert mask[x, y], f"no agent drawn at pixel {(x, y)}"
    # every drawn pixel belongs to an agent's triangle (within its size of the agent)
    xs, ys = np.nonzero(mask)
    d = np.min(np.hypot(xs[:, None] - np.array(screen)[None, :, 0], ys[:, None] - np.array(screen)[None, :, 1]), 1)
    assert d.max() <= 6.0
    assert 4 <= mask.sum() <= len(KNOWN) * 30


@pytest.mark.parametrize("large_n", [10_000, 0], ids=["triangles", "pixels"])
def test_zoom_and_pan_move_agents_as_expected(large_n):
    sim = boids(len(KNOWN))
    place(sim, KNOWN)
    view = make_view(sim, W, H)
    before = view.world_to_screen(sim.state.pos)
    anchor = before[1].tolist()
    view.zoom_at(2.0, anchor)
    after = view.world_to_screen(sim.state.pos)
    # the agent under the pointer stays; the others double their distance to it
    assert after[1].tolist() == pytest.approx(anchor, abs=1e-4)
    assert torch.allclose(after - after[1], 2 * (before - before[1]), atol=1e-3)
    view.pan(7, -5)
    panned = view.world_to_screen(sim.state.pos)
    assert torch.allclose(panned - after, torch.tensor([7.0, -5.0]), atol=1e-4)
    _, mask = pixels(draw(sim, view, large_n=large_n))
    for x, y in panned.floor().long().tolist():
        if 0 <= x < W and 0 <= y < H:
            assert mask[x, y]
    # wheel-out by the same factor about the same point restores the view
    view.pan(-7, 5)
    view.zoom_at(0.5, anchor)
    assert torch.allclose(view.world_to_screen(sim.state.pos), before, atol=1e-3)


def test_pixel_path_and_triangle_path_put_the_same_agents_on_the_same_pixels():
    sim = boids(200)
    gen = torch.Generator().manual_seed(0)
    place(sim, torch.rand(200, 2, generator=gen) * torch.tensor([100.0, 60.0]),
          torch.randn(200, 2, generator=gen))
    sim.state.group = torch.arange(200) % 4
    view = make_view(sim, W, H)
    screen = view.world_to_screen(sim.state.pos).floor().long()
    colors = palette_colors(sim.state.group).numpy()
    arr_t, mask_t = pixels(draw(sim, view, large_n=10_000, agent_size=5.0))
    arr_p, mask_p = pixels(draw(sim, view, large_n=0))
    hits_t = mask_t[screen[:, 0], screen[:, 1]]
    hits_p = mask_p[screen[:, 0], screen[:, 1]]
    assert hits_t.all() and hits_p.all()
    # an agent's own pixel shows its colour in both paths unless a later agent covers it
    same_t = (arr_t[screen[:, 0], screen[:, 1]] == colors).all(1)
    same_p = (arr_p[screen[:, 0], screen[:, 1]] == colors).all(1)
    assert same_t.mean() > 0.8 and same_p.mean() > 0.8
    # the pixel path draws nothing but the agents' dots
    assert mask_p.sum() <= 200 * 9


def test_splat_matches_a_loop_and_drops_points_off_screen():
    gen = torch.Generator().manual_seed(1)
    screen = torch.rand(500, 2, generator=gen) * torch.tensor([W + 40.0, H + 40.0]) - 20
    colors = torch.randint(1, 255, (500, 3), generator=gen, dtype=torch.uint8)
    image = torch.zeros(H, W, 3, dtype=torch.uint8)
    splat(image, screen, colors, dot=1)
    expected = torch.zeros(H, W, 3, dtype=torch.uint8)
    for (x, y), c in zip(screen.floor().long().tolist(), colors):
        if 0 <= x < W and 0 <= y < H:
            expected[y, x] = c
    assert torch.equal(image, expected)
    flat, agent = pixel_indices(torch.tensor([[0.2, 0.7], [-5.0, 3.0]]), W, H, dot=2)
    assert sorted(flat.tolist()) == [0, 1, W, W + 1] and set(agent.tolist()) == {0}


def test_large_flock_is_drawn_without_per_agent_calls(monkeypatch):
    sim = boids(20_000)
    drawn = []
    monkeypatch.setattr(pygame.draw, "polygon", lambda *a, **k: drawn.append(a))
    surface = pygame.Surface((W, H))
    renderer = Renderer(make_view(sim, W, H))
    assert renderer.uses_pixels(sim)
    renderer.draw(surface, sim)
    assert drawn == []
    assert pixels(surface)[1].sum() > 1000


def three_d_sim(n_agents=300):
    data = {"world": {"dims": 3, "size": [50.0, 50.0, 50.0], "boundary": "wrap"},
            "agents": {"count": n_agents, "max_speed": 1.0, "velocity": {"kind": "random_direction", "speed": 1.0}},
            "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 6.0},
                      "alignment": {"weight": 1.0, "radius": 6.0}, "separation": {"weight": 1.5, "radius": 2.0}}}
    return flock.Simulation(flock.validate_scenario(data), device="cpu", record_metrics=False)


def test_3d_view_rotates_and_shades_by_depth():
    sim = three_d_sim()
    sim.step(3)
    view = make_view(sim, W, H)
    plane_pts = torch.tensor([[10.0, 20.0], [100.0, 60.0]], dtype=torch.float64)
    assert torch.allclose(view.world_to_screen(view.screen_to_world(plane_pts)), plane_pts)
    first = pygame.surfarray.array3d(draw(sim, view))
    view.rotate(0.8, 0.3)
    second = pygame.surfarray.array3d(draw(sim, view))
    assert (first != second).any()
    # two agents on the same line of sight: the near one is drawn, brighter than the far one alone
    place(sim, [[25.0, 25.0, 10.0], [25.0, 25.0, 40.0]], [[1.0, 0, 0], [1.0, 0, 0]])
    view = make_view(sim, W, H)
    view.yaw, view.pitch = 0.0, math.pi / 2  # look along y: world z is screen up, depth is -y
    _, depth = view.project(sim.state.pos)
    assert depth[0] == pytest.approx(depth[1])
    view.yaw, view.pitch = 0.0, 0.0        # look down the z axis: z is the depth
    _, depth = view.project(sim.state.pos)
    assert depth[1] > depth[0]
    arr, mask = pixels(draw(sim, view, large_n=0))
    x, y = view.world_to_screen(sim.state.pos)[1].floor().long().tolist()
    near = arr[x, y].astype(int).sum()
    place(sim, [[25.0, 25.0, 10.0]], [[1.0, 0, 0]])
    arr_far, _ = pixels(draw(sim, view, large_n=0))
    assert near > arr_far[x, y].astype(int).sum() > 0


def test_mean_shift_points_are_coloured_by_their_final_mode_with_crosses():
    sim = flock.Simulation.from_scenario("scenarios/meanshift_seed.yaml", device="cpu")
    view = make_view(sim, 300, 300)
    renderer = Renderer(view, color_by="mode")
    surface = pygame.Surface((300, 300))
    renderer.draw(surface, sim)
    centers, labels = renderer.modes.centers, renderer.modes.labels
    assert centers.shape == (6, 2) and labels.shape == (1500,)
    # each blob of the seed ends (almost entirely) on a mode of its own
    blob = torch.as_tensor(sim.info["blob_ids"])
    majority = [int(labels[blob == b].mode().values) for b in range(6)]
    assert sorted(majority) == list(range(6))
    assert float((labels == torch.tensor(majority)[blob]).float().mean()) > 0.97
    arr = pygame.surfarray.array3d(surface)
    for x, y in view.world_to_screen(centers).round().long().tolist():
        patch = arr[x - 8:x + 9, y - 8:y + 9].reshape(-1, 3)
        assert ((patch == [255, 0, 255]).all(1)).any(), "no magenta cross at a mode"
    sim.step(100)
    assert sim.done
    renderer.draw(surface, sim)
    assert renderer.modes.centers.shape == (6, 2)


def test_obstacles_and_scenario_attractors_are_drawn_where_the_view_puts_them():
    from render.draw import OBSTACLE_EDGE, OBSTACLE_FILL

    data = {"world": {"dims": 2, "size": [100.0, 60.0], "boundary": "soft"},
            "agents": {"count": 1, "max_speed": 2.0},
            "rules": {"formulation": "reynolds", "cohesion": {"weight": 1.0, "radius": 5.0},
                      "alignment": {"weight": 1.0, "radius": 5.0}, "separation": {"weight": 1.0, "radius": 2.0}},
            "obstacles": [{"kind": "circle", "center": [30.0, 30.0], "radius": 8.0},
                          {"kind": "segment", "a": [60.0, 10.0], "b": [60.0, 50.0]}],
            "attractors": [{"position": [85.0, 30.0], "strength": 0.1}],
            "run": {"device": "cpu"}}
    sim = flock.Simulation(flock.validate_scenario(data), device="cpu", record_metrics=False)
    place(sim, [[5.0, 5.0]])
    view = View((0.0, 0.0), (100.0, 60.0), W, H)
    surface = pygame.Surface((W, H))
    Renderer(view).draw(surface, sim, show_box=False)
    arr = pygame.surfarray.array3d(surface)
    cx, cy = (int(v) for v in view.world_to_screen(torch.tensor([[30.0, 30.0]]))[0].tolist())
    assert tuple(arr[cx, cy]) == OBSTACLE_FILL                            # inside the pillar
    r = 8.0 * view.scale
    assert tuple(arr[int(cx + r - 1), cy]) == OBSTACLE_EDGE               # its outline
    sx, sy0 = (int(v) for v in view.world_to_screen(torch.tensor([[60.0, 30.0]]))[0].tolist())
    assert tuple(arr[sx, sy0]) == OBSTACLE_EDGE                           # the wall
    ax, ay = (int(v) for v in view.world_to_screen(torch.tensor([[85.0, 30.0]]))[0].tolist())
    assert tuple(arr[ax, ay]) == (90, 220, 120)                           # the attractor's dot
    assert tuple(arr[cx, int(cy + r + 4)]) == BACKGROUND                  # and nothing around


def test_plane_outline_is_its_cut_through_the_box():
    from render.draw import plane_in_box

    square = plane_in_box([0, 0, 5.0], [0, 0, 1.0], (0, 0, 0), (10, 10, 10))
    assert sorted(map(tuple, np.round(square, 9))) == [(0, 0, 5), (0, 10, 5), (10, 0, 5), (10, 10, 5)]
    hexagon = plane_in_box([5.0, 5.0, 5.0], [1.0, 1.0, 1.0], (0, 0, 0), (10, 10, 10))
    assert len(hexagon) == 6
    assert np.allclose(np.asarray(hexagon) @ np.ones(3), 15.0)
    assert plane_in_box([0, 0, 20.0], [0, 0, 1.0], (0, 0, 0), (10, 10, 10)) == []
