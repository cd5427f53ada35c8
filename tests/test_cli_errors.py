"""Bad input through the real command lines (train, evaluate, viz `main(argv)`):
each case ends with its exit code and one line of error, no traceback, and
leaves the run folder it was pointed at loadable."""
import pytest
import torch

import evaluate
import methods
import train
import viz
from helpers import write_ckpt

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
] + [(tool, ["--ckpt", "F/rvm.pt", "--device", "cuda"] if tool != T else ["--method", "rvm", "--device", "cuda"],
      "--device cuda: no CUDA device here") for tool in (T, "evaluate", "viz") if NO_CUDA]
MAINS = {"train": train.main, "evaluate": evaluate.main, "viz": viz.main}


@pytest.mark.parametrize("tool, args, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line(files, tmp_path, capsys, tool, args, message):
    args = [a.replace("RUN", str(files / "run")).replace("F/", f"{files}/") for a in args]
    fresh = tool == T and "--out" not in args
    if fresh:
        args += ["--out", str(tmp_path / "out")]
    before = methods.read_checkpoint(str(files / "run" / "ckpt.pt"))
    with pytest.raises(SystemExit) as e:
        MAINS[tool](args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert e.value.code == 2, err
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    after = methods.read_checkpoint(str(files / "run" / "ckpt.pt"))          # the run folder still loads, unchanged
    assert after["step"] == before["step"] and all(torch.equal(after["model"][k], v)
                                                    for k, v in before["model"].items())
    assert not (fresh and (tmp_path / "out").exists())               # a run that fails its input leaves no folder


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30
