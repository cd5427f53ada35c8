"""Bad input to viz.py and evaluate.py through their real command lines (issue 40, sections 1 and 3): each case
ends with exit 2 and exactly one `error:` line naming the flag and what it accepts, no traceback, and no output
folder left behind; an --out that is a file is left as it was. The same assertions as tests/test_cli_errors.py."""
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import evaluate
import viz
from helpers import write_ckpt


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny RVM checkpoint, one whose method field is a list, a file where a folder is asked for, a short video."""
    root = tmp_path_factory.mktemp("cli_viz_eval")
    write_ckpt(root, "rvm")                                           # root / rvm.pt
    ckpt = torch.load(root / "rvm.pt", weights_only=True)
    torch.save({**ckpt, "method": ["rvm"]}, root / "listed.pt")
    (root / "a-file").write_text("not a folder\n")
    frames = (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    iio.imwrite(root / "short.gif", frames, duration=100)                 # a real video: no world to take means over
    return root


V, E = "viz", "evaluate"
CASES = [   # (entry point, arguments; F = the files' folder, OUT = a fresh output folder; a piece of the message)
    (V, ["--ckpt", "F/rvm.pt", "--out", "F/a-file"], "--out F/a-file is a file, not a folder"),
    (V, ["--ckpt", "F/rvm.pt", "--out", "F/a-file/viz"], "is a file, not a folder"),
    (V, ["--ckpt", "F/rvm.pt", "--k", "100000", "--frames", "2"], "--k 100000 is more clusters than the 128 tokens"),
    (V, ["--ckpt", "F/listed.pt"], "is not a train.py checkpoint"),
    (V, ["--ckpt", "F/rvm.pt", "--video", "shapes:tex=0"], "--video: shapes options are key=value with key one of"),
    (V, ["--ckpt", "F/rvm.pt", "--video", "noise_square:grain=x"], "--video: grain expects int; got 'x'"),
    (V, ["--ckpt", "F/rvm.pt", "--video", "F/a-file"], "--video: "),
    (V, ["--ckpt", "F/rvm.pt", "--video", "F/short.gif", "--remove", "position"], "--remove position needs a toy"),
    (V, ["--ckpt", "F/rvm.pt", "--reference-videos", "0"], "--reference-videos must be >= 1"),
    (V, ["--ckpt", "F/rvm.pt", "--remove", "texture"], "argument --remove: invalid choice: 'texture'"),
    (V, ["--ckpt", "F/rvm.pt", "--pca", "nope"], "argument --pca: invalid choice: 'nope'"),
    (E, ["--ckpt", "F/rvm.pt", "--lp-topk", "-1"], "--lp-topk must be >= 1"),
    (E, ["--ckpt", "F/rvm.pt", "--lp-radius", "-1"], "--lp-radius >= 0; got --lp-topk 7, --lp-context 20, "
                                                     "--lp-radius -1"),
    (E, ["--ckpt", "F/rvm.pt", "--square", "-3"], "--square must be a side in pixels >= 1; got -3"),
    (E, ["--ckpt", "F/rvm.pt", "--square", "65"], "--square must be a side in pixels from 1 to the frame's 64; got 65"),
    (E, ["--ckpt", "F/rvm.pt", "--out", "F/a-file"], "--out F/a-file is a file, not a folder"),
    (E, ["--ckpt", "F/rvm.pt", "--lp-temperature", "0"], "--lp-temperature must be a number > 0; got 0.0"),
    (E, ["--ckpt", "F/rvm.pt", "--lp-temperature", "nan"], "--lp-temperature must be a number > 0; got nan"),
    (E, ["--ckpt", "F/rvm.pt", "--lengths", "1"], "--lengths must be frame counts >= 2"),
    (E, ["--ckpt", "F/rvm.pt", "--lengths", "16,1"], "--lengths must be frame counts >= 2"),
    (E, ["--ckpt", "F/rvm.pt", "--reference-videos", "0"], "--reference-videos must be >= 1"),
    (E, ["--ckpt", "F/listed.pt"], "is not a train.py checkpoint"),
]
MAINS = {"viz": viz.main, "evaluate": evaluate.main}


@pytest.mark.parametrize("tool, args, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line(files, tmp_path, capsys, tool, args, message):
    args = [a.replace("F/", f"{files}/") for a in args]
    message = message.replace("F/", f"{files}/")
    fresh = "--out" not in args
    if fresh:
        args += ["--out", str(tmp_path / "out")]
    before = (files / "a-file").read_bytes()
    with pytest.raises(SystemExit) as e:
        MAINS[tool](args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert e.value.code == 2, err
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert not (fresh and (tmp_path / "out").exists())               # bad input leaves no output folder
    assert (files / "a-file").read_bytes() == before                  # an --out that is a file is left as it was
