import numpy as np

from flock import cli
from flock.recording import read_recording


def test_record_checkpoint_resume_and_replay(tmp_path, capsys):
    base = ["--headless", "--quiet", "--steps", "12", "--record", str(tmp_path / "run.h5"), "--record-every", "3"]
    assert cli.main(["run", "scenarios/boids_seed.yaml", "--device", "cpu", "--out", str(tmp_path / "a"),
                     "--checkpoint", str(tmp_path / "ck"), "--checkpoint-every", "4"] + base) == 0
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["ckpt_00000004", "ckpt_00000008", "ckpt_00000012"]
    straight = read_recording(tmp_path / "run.h5")
    assert cli.main(["run", "--resume", str(tmp_path / "ck" / "ckpt_00000008"), "--out", str(tmp_path / "b")] + base) == 0
    resumed = read_recording(tmp_path / "run.h5")
    assert resumed.steps.tolist() == [0, 3, 6, 9, 12]
    np.testing.assert_array_equal(resumed.positions, straight.positions)
    a, b = (np.load(tmp_path / d / "final_state.npz") for d in "ab")
    np.testing.assert_array_equal(a["pos"], b["pos"])
    assert cli.main(["replay", str(tmp_path / "run.h5"), "--info"]) == 0
    assert "5 frames (steps 0..12), up to 300 agents in 2D" in capsys.readouterr().out
    assert cli.main(["run", "--resume", str(tmp_path / "ck"), "--seed", "1"]) == 2
    assert "leave out --seed" in capsys.readouterr().err
