"""flocksim run --frames / --gif / --video: headless pictures of a run, kept on Ctrl-C."""

import os
import sys
import types

os.environ["SDL_VIDEODRIVER"] = "dummy"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from flock import cli  # noqa: E402
from render import export  # noqa: E402
from render.draw import BACKGROUND  # noqa: E402


def not_all_background(image: Image.Image) -> bool:
    arr = np.asarray(image.convert("RGB"))
    return bool(np.any(arr != np.array(BACKGROUND), axis=2).sum() > 50)


def run(*argv):
    return cli.main(["run", *argv, "--quiet", "--device", "cpu"])


def test_frames_every_k_steps_and_a_gif(tmp_path, capsys):
    frames, gif = tmp_path / "frames", tmp_path / "run.gif"
    rc = run("scenarios/boids_seed.yaml", "--headless", "--steps", "6", "--every", "2", "--frames", str(frames),
             "--gif", str(gif), "--size", "160x90", "--out", str(tmp_path / "out"))
    assert rc == 0
    pngs = sorted(frames.glob("frame_*.png"))
    assert [p.name for p in pngs] == [f"frame_{i:05d}.png" for i in range(4)]  # steps 0, 2, 4, 6
    for p in pngs:
        with Image.open(p) as im:
            assert im.size == (160, 90) and not_all_background(im)
    with Image.open(gif) as im:
        assert im.size == (160, 90) and im.n_frames == 4 and not_all_background(im)
    assert (tmp_path / "out" / "metrics.csv").exists() and (tmp_path / "out" / "final_state.npz").exists()
    out = capsys.readouterr().out
    assert f"wrote 4 frames to {frames}" in out and f"wrote {gif} (4 frames)" in out


def test_mean_shift_frames_end_at_convergence(tmp_path):
    frames = tmp_path / "frames"
    assert run("scenarios/meanshift_seed.yaml", "--headless", "--frames", str(frames), "--every", "2",
               "--out", str(tmp_path)) == 0
    # converges after 5 steps: frames at steps 0, 2, 4 and the last state
    assert len(list(frames.glob("*.png"))) == 4


def test_frames_without_headless_are_drawn_off_screen(tmp_path, capsys):
    assert run("scenarios/boids_seed.yaml", "--steps", "1", "--frames", str(tmp_path / "f"), "--out",
               str(tmp_path)) == 0
    assert len(list((tmp_path / "f").glob("*.png"))) == 2
    assert "running headless" in capsys.readouterr().err


def test_video_without_imageio_ffmpeg_says_how_to_get_it_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "video_support", lambda: export.VIDEO_HELP)
    rc = run("scenarios/boids_seed.yaml", "--headless", "--video", str(tmp_path / "v.mp4"), "--out",
             str(tmp_path / "out"))
    assert rc == 2
    assert "pip install imageio-ffmpeg" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "v.mp4").exists()


def test_video_frames_go_to_imageio_ffmpeg(tmp_path, monkeypatch):
    sent = []

    def write_frames(path, size, fps, macro_block_size):
        sent.append((path, size, fps))
        while True:
            frame = yield
            if frame is not None:
                sent.append(len(frame))

    fake = types.ModuleType("imageio_ffmpeg")
    fake.write_frames = write_frames
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", fake)
    monkeypatch.setattr(export, "video_support", lambda: None)
    video = tmp_path / "v.mp4"
    assert run("scenarios/boids_seed.yaml", "--headless", "--steps", "2", "--video", str(video), "--size", "101x61",
               "--fps", "24", "--out", str(tmp_path)) == 0
    assert sent[0] == (str(video), (100, 60), 24.0)  # even sizes for yuv420p
    assert sent[1:] == [100 * 60 * 3] * 3


@pytest.mark.parametrize("argv, message", [(["--every", "0"], "--every: expected an integer from 1 to"),
                                           (["--size", "big"], "--size: expected WIDTHxHEIGHT")])
def test_bad_picture_options_are_clear_errors(argv, message, tmp_path, capsys):
    assert run("scenarios/boids_seed.yaml", "--headless", *argv, "--out", str(tmp_path)) == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_keeps_the_frames_and_the_gif(tmp_path, monkeypatch):
    from flock.simulation import Simulation

    real_step = Simulation.step

    def step_then_interrupt(self, n=1):
        if self.step_count >= 3:
            raise KeyboardInterrupt
        return real_step(self, n)

    monkeypatch.setattr(Simulation, "step", step_then_interrupt)
    frames, gif = tmp_path / "frames", tmp_path / "run.gif"
    rc = run("scenarios/boids_seed.yaml", "--headless", "--steps", "50", "--frames", str(frames), "--gif", str(gif),
             "--size", "120x60", "--out", str(tmp_path))
    assert rc == 130
    assert len(list(frames.glob("*.png"))) == 4  # steps 0..3
    with Image.open(gif) as im:
        assert im.n_frames == 4
