"""Bad input through the real command lines (train, evaluate, viz `main(argv)`; bench, claims and scripts/ in
test_cli_tools.py): each case ends with exit code 2 and one line of error, no traceback, no output folder left behind,
and every file of the folders it was pointed at byte for byte as it was.
Then the ways a run folder used to be lost (issue 40): a fresh run into a folder that holds one, two runs at once,
a checkpoint that is a folder, a signal during a very long step."""
import json
import os
import signal
import socket
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import evaluate
import methods
import runs
import train
import viz
from helpers import one_error_line, snapshot, write_ckpt

NO_CUDA = not torch.cuda.is_available()
TINY = ["--set", "dim=32", "--set", "decoder_dim=32", "--steps", "2", "--batch-size", "2", "--log-every", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A finished 2-step RVM run, a garbage file, a checkpoint that would run code, a tiny checkpoint."""
    root = tmp_path_factory.mktemp("cli")
    train.main(["--method", "rvm", "--out", str(root / "run"), *TINY])
    (root / "garbage.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"model": {}, "config": {}, "method": "rvm", "step": 0, "x": torch.nn.Linear}, root / "evil.pt")
    write_ckpt(root, "rvm")                                          # root / rvm.pt
    ckpt = torch.load(root / "rvm.pt", weights_only=True)
    torch.save({**ckpt, "method": ["rvm"]}, root / "listed.pt")      # a method field that is not a string
    frames = (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    iio.imwrite(root / "short.gif", frames, duration=100)            # a real video: no world to take means over
    return root


T = "train"
CASES = [   # (entry point, arguments; RUN = the finished run's folder, F = the files' folder, a piece of the message)
    (T, ["--method", "nope"], "invalid choice: 'nope'"),
    (T, ["--method", "rvm", "--steps", "0"], "--steps must be >= 1; got 0"),
    (T, ["--method", "rvm", "--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    (T, ["--method", "rvm", "--accum", "0"], "--accum must be >= 1; got 0"),
    (T, ["--method", "rvm", "--log-every", "0"], "--log-every must be >= 1"),
    (T, ["--method", "rvm", "--ckpt-every", "-1"], "--ckpt-every and --workers must be >= 0"),
    (T, ["--method", "rvm", "--workers", "-1"], "--ckpt-every and --workers must be >= 0"),
    (T, ["--method", "rvm", "--stop-at", "0"], "--stop-at 0 is never reached"),
    (T, ["--method", "rvm", "--batch-size", "3", "--accum", "2"], "must be divisible by processes x accum = 2"),
    (T, ["--method", "rvm", "--set", "nope=1"], "unknown config key 'nope'"),
    (T, ["--method", "rvm", "--set", "depth=x"], "depth expects int; got 'x'"),
    (T, ["--method", "rvm", "--set", "heads=3"], "dim=64 is not divisible by heads=3"),
    (T, ["--method", "rvm", "--set", "dim=63"], "dim=63 is not divisible by heads=2"),
    (T, ["--method", "sigma", "--set", "patch=0"], "patch must be an integer >= 1"),
    (T, ["--method", "siammae", "--set", "img_size=0"], "img_size must be an integer >= 1"),
    (T, ["--method", "vicmae", "--set", "blr=-1"], "blr must be a number > 0"),
    (T, ["--method", "vicmae", "--set", "betas=0.9"], "betas must be two numbers in [0, 1)"),
    (T, ["--method", "rvm", "--set", "mask_ratio=nan"], "mask ratio nan is not in [0, 1)"),
    (T, ["--method", "rvm", "--set", "mask_ratio=1.5"], "mask ratio 1.5 is not in [0, 1)"),
    (T, ["--method", "sigma", "--set", "weight_decay=-1"], "weight_decay must be a number >= 0"),
    (T, ["--method", "sigma", "--set", "tubelet=3"], "num_frames=8 must be a positive multiple of tubelet=3"),
    (T, ["--method", "rvm", "--data", "F/no-such-folder"], "--data: no video folder or file at"),
    (T, ["--method", "rvm", "--data", "shapes:tex=0"], "shapes options are key=value with key one of n_shapes, texture"),
    (T, ["--method", "rvm", "--data", "noise_square:grain=x"], "--data: grain expects int; got 'x'"),
    (T, ["--method", "rvm", "--out", "F/empty", "--resume"], "--resume: no checkpoint at"),
    (T, ["--method", "siammae", "--out", "RUN", "--resume"], "is a rvm run, not siammae"),
    (T, ["--method", "rvm", "--out", "RUN", "--resume", "--batch-size", "8"], "contradicts the checkpoint's 2"),
    (T, ["--method", "rvm", "--out", "RUN", "--resume", "--steps", "1"], "the checkpoint is at step 2 already"),
    (T, ["--method", "rvm", "--out", "RUN", "--resume"], "the checkpoint is at step 2 already"),
    (T, ["--method", "rvm", "--set", "projector=x"], "unknown config key 'projector'"),
    (T, ["--method", "rvm", "--seed", str(2 ** 64)], "--seed must be in [0, 2^63 - 1]"),
    (T, ["--method", "rvm", "--seed", "-1"], "--seed must be in [0, 2^63 - 1]"),
    (T, ["--method", "rvm", "--batch-size", str(10 ** 9)], "for the frames alone"),
    (T, ["--method", "rvm", "--out", "F/garbage.pt"], "--out F/garbage.pt is a file, not a folder"),
    (T, ["--method", "rvm", "--out", "F/garbage.pt/run"], "is a file, not a folder"),
    (T, ["--method", "rvm", "--out", "RUN"], "already holds a run: continue it with --resume, or give another --out"),
    (T, ["--method", "siammae", "--out", "RUN"], "already holds a run"),
    (T, ["--method", "rvm", "--out", "RUN", "--overwrite", "--resume"], "give one of them"),
    (T, ["--method", "rvm", "--peak-tflops", "0"], "--peak-tflops must be a number > 0"),
    (T, ["--method", "sigma", "--set", "projector=F/garbage.pt"], "projector: "),
    (T, ["--method", "sigma", "--set", "projector=F/evil.pt"], "refused: this file is not a plain checkpoint"),
    ("evaluate", ["--ckpt", "F/missing.pt"], "no checkpoint at"),
    ("evaluate", ["--ckpt", "F/garbage.pt"], "is not a readable checkpoint"),
    ("evaluate", ["--ckpt", "F/evil.pt"], "refused: this file is not a plain checkpoint"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lengths", "16,x"], "--lengths must be comma-separated integers"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--iou-videos", "0"], "must be >= 1"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--world", "shapes"], "--world must be noise_square[:key=value...]"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--world", "noise_square:grain=x"], "--world: grain expects int"),
    ("viz", ["--ckpt", "F/missing.pt"], "no checkpoint at"),
    ("viz", ["--ckpt", "F/evil.pt"], "refused: this file is not a plain checkpoint"),
    ("viz", ["--ckpt", "F/rvm.pt", "--video", "F/nope.mp4"], "nope.mp4"),
    ("viz", ["--ckpt", "F/rvm.pt", "--frames", "0"], "must be >= 1"),
    ("viz", ["--ckpt", "F/rvm.pt", "--out", "F/garbage.pt"], "--out F/garbage.pt is a file, not a folder"),
    ("viz", ["--ckpt", "F/rvm.pt", "--out", "F/garbage.pt/viz"], "is a file, not a folder"),
    ("viz", ["--ckpt", "F/rvm.pt", "--k", "100000", "--frames", "2"], "--k 100000 is more clusters than the 128 tokens"),
    ("viz", ["--ckpt", "F/listed.pt"], "is not a train.py checkpoint"),
    ("viz", ["--ckpt", "F/rvm.pt", "--video", "shapes:tex=0"], "--video: shapes options are key=value with key one of"),
    ("viz", ["--ckpt", "F/rvm.pt", "--video", "noise_square:grain=x"], "--video: grain expects int; got 'x'"),
    ("viz", ["--ckpt", "F/rvm.pt", "--video", "F/garbage.pt"], "--video: "),
    ("viz", ["--ckpt", "F/rvm.pt", "--video", "F/short.gif", "--remove", "position"], "--remove position needs a toy"),
    ("viz", ["--ckpt", "F/rvm.pt", "--reference-videos", "0"], "--reference-videos must be >= 1"),
    ("viz", ["--ckpt", "F/rvm.pt", "--remove", "texture"], "argument --remove: invalid choice: 'texture'"),
    ("viz", ["--ckpt", "F/rvm.pt", "--pca", "nope"], "argument --pca: invalid choice: 'nope'"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lp-topk", "-1"], "--lp-topk must be >= 1"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lp-radius", "-1"], "--lp-radius >= 0; got --lp-topk 7, --lp-context 20, "
                                                     "--lp-radius -1"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--square", "-3"], "--square must be a side in pixels >= 1; got -3"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--square", "65"], "--square must be a side in pixels from 1 to the frame's 64; got 65"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--out", "F/garbage.pt"], "--out F/garbage.pt is a file, not a folder"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lp-temperature", "0"], "--lp-temperature must be a number > 0; got 0.0"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lp-temperature", "nan"], "--lp-temperature must be a number > 0; got nan"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lengths", "1"], "--lengths must be frame counts >= 2"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--lengths", "16,1"], "--lengths must be frame counts >= 2"),
    ("evaluate", ["--ckpt", "F/rvm.pt", "--reference-videos", "0"], "--reference-videos must be >= 1"),
    ("evaluate", ["--ckpt", "F/listed.pt"], "is not a train.py checkpoint"),
] + [(tool, ["--ckpt", "F/rvm.pt", "--device", "cuda"] if tool != T else ["--method", "rvm", "--device", "cuda"],
      "--device cuda: no CUDA device here") for tool in (T, "evaluate", "viz") if NO_CUDA]
MAINS = {"train": train.main, "evaluate": evaluate.main, "viz": viz.main}


@pytest.mark.parametrize("tool, args, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line(files, tmp_path, capsys, tool, args, message):
    fill = lambda a: a.replace("RUN", str(files / "run")).replace("F/", f"{files}/")
    args, message = [fill(a) for a in args], fill(message)
    fresh = tool == T and "--out" not in args
    if fresh:
        args += ["--out", str(tmp_path / "out")]
    before = snapshot(files)
    with pytest.raises(SystemExit) as e:
        MAINS[tool](args)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert one_error_line(err, message), err
    assert snapshot(files) == before                                 # every file byte for byte as it was
    assert not (fresh and (tmp_path / "out").exists())               # a run that fails its input leaves no folder


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30


# ----------------------------------------------------------------------------
# a run folder is the user's work: never destroyed


def test_a_fresh_run_never_replaces_a_run_and_overwrite_moves_it_aside(files, tmp_path, capsys):
    run = tmp_path / "run"
    train.main(["--method", "rvm", "--out", str(run), *TINY])
    before = snapshot(run)
    for method in ("rvm", "sigma"):   # the same method or another: refused, the folder as it was
        with pytest.raises(SystemExit) as e:
            train.main(["--method", method, "--out", str(run), *TINY])
        assert e.value.code == 2 and one_error_line(capsys.readouterr().err, "already holds a run")
        assert snapshot(run) == before
    train.main(["--method", "siammae", "--out", str(run), "--overwrite", *TINY])
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(moved) == 1 and snapshot(moved[0]) == before          # the old run, whole, beside the new one
    assert "is now in" in capsys.readouterr().err
    assert methods.read_checkpoint(str(run / "ckpt.pt"))["method"] == "siammae"


def test_auto_resume_starts_continues_and_then_has_nothing_to_do(tmp_path, capsys):
    run, base = tmp_path / "run", ["--method", "rvm", "--out", str(tmp_path / "run"), *TINY[:4], "--batch-size", "2",
                                   "--steps", "3", "--auto-resume"]
    train.main([*base, "--stop-at", "2"])                            # no run yet: starts; cut at step 2
    train.main(base)                                                 # continues to 3
    assert [json.loads(line)["step"] for line in open(run / "metrics.jsonl")][-1] == 3
    before = snapshot(run)
    with pytest.raises(SystemExit) as e:
        train.main(base)                                             # finished: nothing to do, nothing touched
    assert e.value.code == 0 and "nothing to do" in capsys.readouterr().out and snapshot(run) == before


def test_a_checkpoint_that_is_a_folder_is_refused_before_the_first_step(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "ckpt.pt").mkdir(parents=True)
    for extra in ([], ["--resume"]):
        with pytest.raises(SystemExit) as e:
            train.main(["--method", "rvm", "--out", str(run), *TINY, *extra])
        assert e.value.code == 2 and one_error_line(capsys.readouterr().err, "ckpt.pt is not a file")
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt"]     # no metrics.jsonl: no step ran


def test_two_runs_on_one_folder_the_second_refuses_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    live = {"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}   # this process: alive
    (run / runs.LOCK_NAME).write_text(runs.json.dumps(live))
    with pytest.raises(SystemExit) as e:
        train.main(["--method", "rvm", "--out", str(run), *TINY])
    assert e.value.code == 2 and one_error_line(capsys.readouterr().err, f"is in use by process {os.getpid()}")
    assert sorted(p.name for p in run.iterdir()) == [runs.LOCK_NAME]
    dead = dict(live, pid=2 ** 22 + 12345)                           # beyond pid_max's default: no such process
    (run / runs.LOCK_NAME).write_text(runs.json.dumps(dead))
    train.main(["--method", "rvm", "--out", str(run), *TINY])
    assert "took over the lock" in capsys.readouterr().err
    assert not (run / runs.LOCK_NAME).exists() and (run / "ckpt.pt").is_file()   # released at the end


def test_atomic_writes_use_a_temporary_of_their_own(tmp_path, monkeypatch):
    seen = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(a), real(a, b)))
    for _ in range(2):
        runs.write_atomic(str(tmp_path / "x.txt"), "text")
    assert len(set(seen)) == 2 and all(os.path.dirname(p) == str(tmp_path) for p in seen)
    assert os.listdir(tmp_path) == ["x.txt"]


def test_a_signal_during_a_very_long_step_stops_within_seconds(tmp_path, monkeypatch, capsys):
    """SIGTERM arrives mid-forward of the third step, which would take 100 s: the run stops at once with 143, and
    its checkpoint holds the second step's model (the abandoned step changed nothing)."""
    Model = methods.MODELS["rvm"]
    forward = Model.forward

    def slow(self, batch):
        if int(batch["step"]) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(100)                                          # a very long step
        return forward(self, batch)
    monkeypatch.setattr(Model, "forward", slow)
    run = tmp_path / "run"
    t0 = time.time()
    with pytest.raises(SystemExit) as e:
        train.main(["--method", "rvm", "--out", str(run), *TINY[:4], "--steps", "4", "--batch-size", "2",
                    "--ckpt-every", "1", "--log-every", "1"])
    assert e.value.code == 128 + signal.SIGTERM and time.time() - t0 < 30
    assert "stopped by SIGTERM at step 2" in capsys.readouterr().out
    monkeypatch.setattr(Model, "forward", forward)
    straight = tmp_path / "straight"
    train.main(["--method", "rvm", "--out", str(straight), *TINY[:4], "--steps", "4", "--stop-at", "2",
                "--batch-size", "2", "--log-every", "1"])
    a, b = (methods.read_checkpoint(str(d / "ckpt.pt")) for d in (run, straight))
    assert a["step"] == b["step"] == 2 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL         # the handlers are given back
