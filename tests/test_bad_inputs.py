"""Bad inputs through the CLI's own entry point (issue 14): one row per input, each must exit
non-zero, print no traceback, and name the file or flag and the key or value.

Rows are (id, argv, expected substrings); ``{d}`` in an argv item or expected text is the
shared folder of prepared files (a valid scenario, a recording, a checkpoint, broken copies).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from flock import cli
from flock.checkpoint_checks import sha256_file

BASE = {
    "name": "small",
    "world": {"dims": 2, "size": [100.0, 100.0], "boundary": "wrap"},
    "agents": {"count": 40, "position": {"kind": "uniform"}, "velocity": {"kind": "random_direction", "speed": 1.0},
               "max_speed": 2.0, "max_force": 0.05},
    "rules": {"formulation": "reynolds", "cohesion": {"radius": 10}, "alignment": {"radius": 10},
              "separation": {"radius": 5, "weight": 1.5}},
    "run": {"steps": 3},
}


def _yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _with(**changes) -> dict:
    from flock.scenario import set_path

    data = BASE
    for key, value in changes.items():
        data = set_path(data, key.replace("__", "."), value)
    return data


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """The folder of prepared inputs."""
    d = tmp_path_factory.mktemp("bad")
    _yaml(d / "ok.yaml", BASE)
    (d / "afile").write_text("x")
    (d / "adir").mkdir()
    (d / "adir.gif").mkdir()
    os.mkfifo(d / "fifo.yaml")
    os.mkfifo(d / "fifo.csv")
    os.mkfifo(d / "fifo.npy")
    os.mkfifo(d / "fifo.gif")
    os.symlink(d / "nowhere.yaml", d / "dangling.yaml")
    os.symlink(d / "loop2.yaml", d / "loop1.yaml")
    os.symlink(d / "loop1.yaml", d / "loop2.yaml")
    (d / "big.yaml").write_text("a: " + "x" * (5 * 2**20))
    bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    _yaml(d / "bomb.yaml", yaml.safe_dump(BASE) + bomb.replace("a: &a", "name2: &a").replace("i: &i", "zz: &i"))
    _yaml(d / "bombkey.yaml", bomb + "name: *i\n" + yaml.safe_dump({k: v for k, v in BASE.items() if k != "name"}))
    (d / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000)
    for k in range(40):
        _yaml(d / f"chain{k}.yaml", {"extends": f"chain{k + 1}.yaml"} if k < 39 else BASE)
    _yaml(d / "dup.yaml", yaml.safe_dump(BASE) + "run: {steps: 4}\n")
    _yaml(d / "list.yaml", "[1, 2, 3]\n")
    (d / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (d / "hugeint.yaml").write_text(yaml.safe_dump(BASE) + "description: 1" + "0" * 5000 + "\n")
    # initial-state files
    arrays = {"overflow": np.full((40, 2), 1e39), "big": np.full((40, 2), 1e38), "nan": np.full((40, 2), np.nan),
              "strings": np.array([["a", "b"]] * 40), "complex": np.ones((40, 2), dtype=complex),
              "structured": np.zeros(40, dtype=[("x", "f4"), ("y", "f4")]), "flat": np.zeros(40),
              "rows39": np.zeros((39, 2)), "cols3": np.zeros((40, 3)), "ok": np.zeros((40, 2))}
    for name, arr in arrays.items():
        np.save(d / f"{name}.npy", arr)
    (d / "notnpy.npy").write_text("hello")
    (d / "text.csv").write_text("x,y\n1,abc\n")
    for name in [*arrays, "notnpy", "fifo"]:
        _yaml(d / f"pos_{name}.yaml", _with(agents__position={"kind": "file", "path": f"{name}.npy"},
                                           agents__count=40))
    _yaml(d / "vel_rows39.yaml", _with(agents__velocity={"kind": "file", "path": "rows39.npy"}))
    _yaml(d / "pos_csv.yaml", _with(agents__position={"kind": "file", "path": "text.csv"}))
    # cluster data
    np.save(d / "points.npy", np.random.default_rng(0).normal(size=(60, 2)))
    (d / "points.csv").write_text("a,b\n1,2\n3,4\n")
    # a recording and a checkpoint from one short run
    assert cli.main(["run", str(d / "ok.yaml"), "--headless", "--quiet", "--steps", "4", "--out", str(d / "run"),
                     "--record", str(d / "rec.h5"), "--checkpoint", str(d / "ck"), "--checkpoint-every", "4"]) == 0
    ckpt = d / "ck" / "ckpt_00000004"
    meta = json.loads((ckpt / "meta.json").read_text())
    damaged = {"step_str": {"step": "4"}, "step_neg": {"step": -1}, "step_huge": {"step": 1e300},
               "done_str": {"done": "false"}, "seed_huge": {"seed": 2**70}, "dtype_bad": {"dtype": "float16"},
               "rows_more": {"metrics_rows": meta["metrics_rows"] + 5}, "n_agents": {"n_agents": 41},
               "force_nostrength": {"point_forces": [{"center": [1.0, 2.0], "radius": "inf"}]},
               "shift_nan_num": {"last_shift": "lots"}, "backend_bad": {"backend_requested": "gpu"},
               "columns_missing": {"metrics_columns": ["step", "nope"]}}
    for name, change in damaged.items():
        copy = d / f"ck_{name}"
        shutil.copytree(ckpt, copy)
        (copy / "meta.json").write_text(json.dumps({**meta, **change}))
    for name, damage in {"trunc": lambda b: b[: len(b) // 2], "flip": lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],
                         "empty": lambda b: b""}.items():
        copy = d / f"ck_state_{name}"
        shutil.copytree(ckpt, copy)
        (copy / "state.safetensors").write_bytes(damage((copy / "state.safetensors").read_bytes()))
    copy = d / "ck_scenario_changed"
    shutil.copytree(ckpt, copy)
    (copy / "scenario.yaml").write_text((copy / "scenario.yaml").read_text().replace("count: 40", "count: 41"))
    # a state with NaN, checksums made to match: only the tensor check can catch it
    from safetensors.torch import load_file, save_file

    copy = d / "ck_state_nan"
    shutil.copytree(ckpt, copy)
    tensors = load_file(str(copy / "state.safetensors"))
    tensors["pos"][0, 0] = float("nan")
    save_file(tensors, str(copy / "state.safetensors"))
    (copy / "meta.json").write_text(json.dumps({**meta, "sha256": {**meta["sha256"],
                                                                  "state.safetensors": sha256_file(copy / "state.safetensors")}}))
    return d


OK = "{d}/ok.yaml"
RUN = ["run", OK, "--headless", "--quiet"]


def _set_rows():
    """Non-finite and out-of-range numbers for keys all over the schema (class 1, 3, 8)."""
    keys = ["run.dt", "world.size.0", "world.origin", "agents.max_speed", "agents.max_force", "agents.min_speed",
            "rules.separation.weight", "rules.cohesion.radius", "rules.alignment.radius", "world.wall_force",
            "agents.velocity.speed", "agents.position.low", "render.agent_size"]
    rows = []
    for key in keys:
        for text, shown in ((".inf", "inf"), (".nan", "nan"), ("1.0e+300", "1e+300"), ("-.inf", "-inf")):
            value = f"[{text}, 0]" if key in ("world.origin", "agents.position.low") else text
            if key == "agents.position.low":
                rows.append((f"set-{key}-{shown}", ["validate", OK, "--set", "agents.position.high=[1, 1]",
                                                    "--set", f"{key}={value}"], [key, shown]))
            else:
                rows.append((f"set-{key}-{shown}", ["validate", OK, "--set", f"{key}={value}"], [key, shown]))
    return rows


ROWS = _set_rows() + [
    # 1. non-finite values in files, and files whose values overflow the dtype
    ("npy-overflow", ["validate", "{d}/pos_overflow.yaml"], ["agents.position.path", "1e+39"]),
    ("npy-1e38", ["validate", "{d}/pos_big.yaml"], ["agents.position.path", "1e+38"]),
    ("npy-nan", ["validate", "{d}/pos_nan.yaml"], ["agents.position.path", "nan"]),
    ("npy-nan-run", [*RUN[:1], "{d}/pos_nan.yaml", "--headless", "--quiet"], ["agents.position.path", "nan"]),
    ("attractor-strength", ["validate", OK, "--set", "attractors=[{position: [1, 1], strength: 1.0e+300}]"],
     ["attractors.0.strength", "1e+300"]),
    ("obstacle-center", ["validate", OK, "--set", "obstacles=[{kind: circle, center: [.nan, 1], radius: 2}]"],
     ["obstacles.0.circle.center.0", "nan"]),
    ("repulse-inf", ["validate", OK, "--set", "rules={formulation: circles, repulse: .inf}"], ["repulse", "inf"]),
    ("bandwidth-inf", ["validate", OK, "--set", "rules={formulation: meanshift, bandwidth: .inf}"],
     ["bandwidth", "inf"]),
    # 2. output locations, before the first step
    ("out-is-file", [*RUN, "--out", "{d}/afile"], ["--out", "afile", "is a file"]),
    ("out-under-file", [*RUN, "--out", "{d}/afile/sub"], ["--out", "afile", "is a file, not a folder"]),
    ("record-dir", [*RUN, "--record", "{d}/adir"], ["--record", "adir", "expected a file name ending in .h5"]),
    ("record-is-dir", [*RUN, "--record", "{d}/adir.gif"], ["--record", "adir.gif"]),
    ("record-ext", [*RUN, "--record", "{d}/x.txt"], ["--record", "x.txt", ".h5"]),
    ("record-under-file", [*RUN, "--record", "{d}/afile/x.h5"], ["--record", "afile", "not a folder"]),
    ("checkpoint-file", [*RUN, "--checkpoint", "{d}/afile"], ["--checkpoint", "afile", "is a file"]),
    ("gif-is-dir", [*RUN, "--gif", "{d}/adir.gif"], ["--gif", "adir.gif", "is a folder"]),
    ("gif-ext", [*RUN, "--gif", "{d}/x.png"], ["--gif", "x.png", ".gif"]),
    ("gif-fifo", [*RUN, "--gif", "{d}/fifo.gif"], ["--gif"]),
    ("frames-file", [*RUN, "--frames", "{d}/afile"], ["--frames", "afile", "is a file"]),
    ("video-ext", [*RUN, "--video", "{d}/x.gif"], ["--video", "x.gif", ".mp4"]),
    ("video-dir", [*RUN, "--video", "{d}/afile/x.mp4"], ["--video", "afile"]),
    ("size-huge", [*RUN, "--gif", "{d}/x.gif", "--size", "100000x100000"], ["--size", "100000x100000"]),
    ("size-text", [*RUN, "--gif", "{d}/x.gif", "--size", "big"], ["--size", "big"]),
    ("size-zero", [*RUN, "--gif", "{d}/x.gif", "--size", "0x0"], ["--size", "0x0"]),
    ("replay-gif-dir", ["replay", "{d}/rec.h5", "--gif", "{d}/adir.gif"], ["--gif", "adir.gif", "is a folder"]),
    ("replay-gif-ext", ["replay", "{d}/rec.h5", "--gif", "{d}/x.avi"], ["--gif", "x.avi"]),
    ("replay-frames-file", ["replay", "{d}/rec.h5", "--frames", "{d}/afile"], ["--frames", "afile"]),
    ("replay-size", ["replay", "{d}/rec.h5", "--gif", "{d}/x.gif", "--size", "1x99999"], ["--size", "1x99999"]),
    ("replay-fps", ["replay", "{d}/rec.h5", "--gif", "{d}/x.gif", "--fps", "0"], ["--fps", "0"]),
    ("cluster-out-dir", ["cluster", "{d}/points.npy", "--out", "{d}/adir"], ["--out", "adir"]),
    ("cluster-out-under-file", ["cluster", "{d}/points.npy", "--out", "{d}/afile/l.csv"], ["--out", "afile"]),
    ("cluster-plot-ext", ["cluster", "{d}/points.npy", "--plot", "{d}/p.xyz"], ["--plot", "p.xyz"]),
    ("cluster-plot-dir", ["cluster", "{d}/points.npy", "--plot", "{d}/adir.gif"], ["--plot", "adir.gif"]),
    ("ensemble-out-file", [*RUN, "--ensemble", "2", "--out", "{d}/afile"], ["--out", "afile", "is a file"]),
    ("ensemble-out-under", [*RUN, "--ensemble", "2", "--out", "{d}/afile/e"], ["--out", "afile"]),
    # 3. values outside what torch accepts, memory that cannot fit
    ("seed-flag-huge", [*RUN, "--seed", str(2**70)], ["--seed", str(2**70)]),
    ("seed-flag-neg", [*RUN, "--seed", "-1"], ["--seed", "-1"]),
    ("seed-set-huge", ["validate", OK, "--set", f"run.seed={2**64}"], ["run.seed", str(2**64)]),
    ("ensemble-seed-overflow", [*RUN, "--ensemble", "3", "--seed", str(2**63 - 2)], ["--seed"]),
    ("count-1e12-validate", ["validate", OK, "--set", "agents.count=1000000000000"],
     ["agents.count", "1,000,000,000,000", "GiB"]),
    ("count-1e9-run", [*RUN, "--set", "agents.count=1000000000"], ["agents.count", "1,000,000,000", "GiB"]),
    ("count-1e13", ["validate", OK, "--set", "agents.count=10000000000000"], ["agents.count", "10000000000000"]),
    ("count-ensemble", [*RUN, "--ensemble", "100000", "--set", "agents.count=100000"], ["100000 x 100,000"]),
    ("blobs-huge", ["validate", OK, "--set", "agents.count=null", "--set",
                    "agents.position={kind: blobs, n_blobs: 1000, per_blob: 1000000000}"], ["agents.count", "GiB"]),
    ("device-mps", [*RUN, "--device", "mps"], ["--device", "mps"]),
    ("device-meta", [*RUN, "--device", "meta"], ["--device", "meta"]),
    ("device-cuda9", [*RUN, "--device", "cuda:9"], ["--device", "cuda:9"]),
    ("device-set", ["validate", OK, "--set", "run.device=meta"], ["run.device", "meta"]),
    ("cluster-bandwidth-huge", ["cluster", "{d}/points.npy", "--bandwidth", "1e300"], ["--bandwidth", "1e300"]),
    ("cluster-bandwidth-nan", ["cluster", "{d}/points.npy", "--bandwidth", "nan"], ["--bandwidth", "nan"]),
    ("cluster-device", ["cluster", "{d}/points.npy", "--device", "mps"], ["--device", "mps"]),
    ("cluster-max-iter", ["cluster", "{d}/points.npy", "--max-iter", "-1"], ["max_iter", "-1"]),
    ("steps-set-huge", ["validate", OK, "--set", "run.steps=1e300"], ["run.steps", "1e300"]),
    ("render-width", ["validate", OK, "--set", "render.width=1000000"], ["render.width", "1000000"]),
    # 4. files that are not regular files, oversized inputs
    ("scenario-dir", ["validate", "{d}/adir"], ["adir", "is a folder"]),
    ("scenario-fifo", ["validate", "{d}/fifo.yaml"], ["fifo.yaml", "named pipe"]),
    ("scenario-dev-zero", ["validate", "/dev/zero"], ["/dev/zero", "device"]),
    ("scenario-dangling", ["validate", "{d}/dangling.yaml"], ["dangling.yaml", "dangling symbolic link"]),
    ("scenario-loop", ["validate", "{d}/loop1.yaml"], ["loop1.yaml", "symbolic link loop"]),
    ("scenario-proc", ["validate", "/proc/self/status"], ["/proc/self/status"]),
    ("scenario-missing", ["validate", "{d}/missing.yaml"], ["missing.yaml", "file not found"]),
    ("scenario-big", ["validate", "{d}/big.yaml"], ["big.yaml", "the limit is 4.0 MiB"]),
    ("alias-bomb", ["validate", "{d}/bomb.yaml"], ["bomb.yaml", "aliases are expanded"]),
    ("alias-bomb-key", ["validate", "{d}/bombkey.yaml"], ["bombkey.yaml", "aliases are expanded"]),
    ("deep-nesting", ["validate", "{d}/deep.yaml"], ["deep.yaml", "levels deep"]),
    ("extends-chain", ["validate", "{d}/chain0.yaml"], ["extends", "more than 32 files"]),
    ("extends-dir", ["validate", OK, "--set", "extends=adir"], ["extends"]),
    ("extends-fifo", ["validate", "{d}/ext_fifo.yaml"], ["extends", "named pipe"]),
    ("run-scenario-fifo", ["run", "{d}/fifo.yaml", "--headless"], ["fifo.yaml", "named pipe"]),
    ("init-fifo", ["validate", "{d}/pos_fifo.yaml"], ["agents.position.path", "named pipe"]),
    ("cluster-fifo-csv", ["cluster", "{d}/fifo.csv"], ["fifo.csv", "named pipe"]),
    ("cluster-fifo-npy", ["cluster", "{d}/fifo.npy"], ["fifo.npy", "named pipe"]),
    ("cluster-dir", ["cluster", "{d}/adir.gif"], ["adir.gif"]),
    ("cluster-dangling", ["cluster", "{d}/dangling.csv"], ["dangling.csv", "dangling"]),
    ("replay-dir", ["replay", "{d}/adir", "--info"], ["adir", "is a folder"]),
    ("replay-fifo", ["replay", "{d}/fifo.gif", "--info"], ["fifo.gif", "named pipe"]),
    ("resume-file", ["run", "--resume", "{d}/afile", "--headless"], ["afile"]),
    # 5. validate checks what run would trip on
    ("duplicate-key", ["validate", "{d}/dup.yaml"], ["dup.yaml", "duplicate key 'run'"]),
    ("top-level-list", ["validate", "{d}/list.yaml"], ["list.yaml", "expected a mapping"]),
    ("not-utf8", ["validate", "{d}/latin1.yaml"], ["latin1.yaml", "UTF-8"]),
    ("huge-int", ["validate", "{d}/hugeint.yaml"], ["hugeint.yaml"]),
    ("npy-strings", ["validate", "{d}/pos_strings.yaml"], ["agents.position.path", "<U1"]),
    ("npy-complex", ["validate", "{d}/pos_complex.yaml"], ["agents.position.path", "complex"]),
    ("npy-structured", ["validate", "{d}/pos_structured.yaml"], ["agents.position.path", "dtype"]),
    ("npy-1d", ["validate", "{d}/pos_flat.yaml"], ["agents.position.path", "2-D"]),
    ("npy-not-npy", ["validate", "{d}/pos_notnpy.yaml"], ["agents.position.path", "cannot read"]),
    ("npy-rows", ["validate", "{d}/pos_rows39.yaml"], ["agents.count", "39"]),
    ("npy-cols", ["validate", "{d}/pos_cols3.yaml"], ["agents.position.path", "3"]),
    ("vel-rows", ["validate", "{d}/vel_rows39.yaml"], ["agents.velocity.path", "39"]),
    ("csv-text", ["validate", "{d}/pos_csv.yaml"], ["agents.position.path", "abc"]),
    ("set-malformed", ["validate", OK, "--set", "noequals"], ["--set", "noequals"]),
    ("set-index", ["validate", OK, "--set", "world.size.7=1"], ["world.size.7"]),
    ("set-unknown", ["validate", OK, "--set", "rules.separation.wieght=1"], ["wieght", "weight"]),
    # 6. checkpoints that lie
    ("ck-step-str", ["run", "--resume", "{d}/ck_step_str", "--headless"], ["ck_step_str/meta.json", "step", "'4'"]),
    ("ck-step-neg", ["run", "--resume", "{d}/ck_step_neg", "--headless"], ["meta.json", "step", "-1"]),
    ("ck-step-huge", ["run", "--resume", "{d}/ck_step_huge", "--headless"], ["meta.json", "step", "1e+300"]),
    ("ck-done-str", ["run", "--resume", "{d}/ck_done_str", "--headless"], ["meta.json", "done", "'false'"]),
    ("ck-seed-huge", ["run", "--resume", "{d}/ck_seed_huge", "--headless"], ["meta.json", "seed"]),
    ("ck-dtype", ["run", "--resume", "{d}/ck_dtype_bad", "--headless"], ["meta.json", "dtype", "float16"]),
    ("ck-rows", ["run", "--resume", "{d}/ck_rows_more", "--headless"], ["state.safetensors", "metrics/"]),
    ("ck-n-agents", ["run", "--resume", "{d}/ck_n_agents", "--headless"], ["state.safetensors", "pos", "41"]),
    ("ck-force", ["run", "--resume", "{d}/ck_force_nostrength", "--headless"], ["meta.json", "point_forces.0.strength"]),
    ("ck-shift", ["run", "--resume", "{d}/ck_shift_nan_num", "--headless"], ["meta.json", "last_shift", "lots"]),
    ("ck-backend", ["run", "--resume", "{d}/ck_backend_bad", "--headless"], ["meta.json", "backend_requested", "gpu"]),
    ("ck-columns", ["run", "--resume", "{d}/ck_columns_missing", "--headless"], ["state.safetensors", "nope"]),
    ("ck-trunc", ["run", "--resume", "{d}/ck_state_trunc", "--headless"], ["state.safetensors", "checksum"]),
    ("ck-flip", ["run", "--resume", "{d}/ck_state_flip", "--headless"], ["state.safetensors", "checksum"]),
    ("ck-empty", ["run", "--resume", "{d}/ck_state_empty", "--headless"], ["state.safetensors", "checksum"]),
    ("ck-scenario", ["run", "--resume", "{d}/ck_scenario_changed", "--headless"], ["scenario.yaml", "checksum"]),
    ("ck-nan", ["run", "--resume", "{d}/ck_state_nan", "--headless"], ["state.safetensors", "pos", "NaN"]),
    # 10. flags accepted silently before
    ("steps-neg", [*RUN, "--steps", "-1"], ["--steps", "-1"]),
    ("fps-zero", [*RUN, "--gif", "{d}/x.gif", "--fps", "0"], ["--fps", "0"]),
    ("trail-neg", [*RUN, "--gif", "{d}/x.gif", "--trail", "-5"], ["--trail", "-5"]),
    ("every-zero", [*RUN, "--gif", "{d}/x.gif", "--every", "0"], ["--every", "0"]),
    ("record-every-zero", [*RUN, "--record", "{d}/x.h5", "--record-every", "0"], ["--record-every", "0"]),
    ("ensemble-zero", [*RUN, "--ensemble", "0"], ["--ensemble", "0"]),
    ("resume-steps-below", ["run", "--resume", "{d}/ck/ckpt_00000004", "--headless", "--steps", "2"],
     ["--steps", "step 4", "got 2"]),
]


def _fill(item: str, d: Path) -> str:
    return item.replace("{d}", str(d))


@pytest.mark.parametrize("argv,expected", [pytest.param(a, e, id=i) for i, a, e in ROWS])
def test_bad_input_is_a_clear_error(d, argv, expected, capsys):
    if not (d / "ext_fifo.yaml").exists():
        _yaml(d / "ext_fifo.yaml", {"extends": "fifo.yaml"})
        os.symlink(d / "nowhere.csv", d / "dangling.csv")
    code = cli.main([_fill(a, d) for a in argv])
    out = capsys.readouterr()
    text = out.err + out.out
    assert code != 0, text
    assert "Traceback" not in text
    for part in expected:
        assert _fill(part, d) in text, f"{part!r} not in {text!r}"


def test_the_table_has_a_row_per_class():
    assert len(ROWS) >= 100


@pytest.mark.slow
def test_fifo_never_blocks_in_a_real_process(d):
    """The one real process (the interpreter and torch start in ~10 s on a loaded 2-core box):
    opening a FIFO would block forever, so a hang fails by the timeout."""
    argv = ["cluster", "{d}/fifo.csv"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "flock", *[_fill(a, d) for a in argv]], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "named pipe" in proc.stderr


def test_a_failing_output_at_the_end_keeps_the_others(d, tmp_path, capsys, monkeypatch):
    """A writer that fails after the run (disk full, a folder removed) is reported; the rest are written."""
    def broken(sim, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("flock.cli.save_final_state", broken)
    code = cli.main(["run", str(d / "ok.yaml"), "--headless", "--quiet", "--out", str(tmp_path / "o"),
                     "--record", str(tmp_path / "r.h5")])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err
    assert "cannot write final_state.npz: OSError" in out.err
    assert (tmp_path / "o" / "metrics.csv").read_text().count("\n") == 5  # header, steps 0..3
    assert (tmp_path / "r.h5").stat().st_size > 0
