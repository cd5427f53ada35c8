"""Bad input through the tools' real command lines (bench.py, claims.py, scripts/sigma_oracle.py `main(argv)`), as
tests/test_cli_errors.py does for train, evaluate and viz: each case ends with exit code 2 and exactly one `error:`
line naming the flag, no traceback, and no output folder left behind. Every case fails before any work: a case that
got past its check would train or benchmark, so each also carries the smallest work there is."""
import importlib.util
import os

import pytest

import bench
import claims
from helpers import one_error_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ORACLE = ["--steps", "1", "--batch-size", "1"]
CLAIM = ["--claim", "rvm_tab3b", "--seeds", "2", "--steps", "1"]
CASES = [   # (tool, arguments; F = a plain file, OUT = the output folder the tool would make, a piece of the message)
    ("bench", ["--batch-size", "-1"], "--batch-size must be >= 1; got -1"),
    ("bench", ["--batch-size", "0"], "--batch-size must be >= 1; got 0"),   # it silently benchmarked batch 8
    ("bench", ["--threads", "-1"], "--threads must be >= 1; got -1"),
    ("bench", ["--threads", "0"], "--threads must be >= 1; got 0"),
    ("bench", ["--out", "F"], "--out F is a file, not a folder"),
    ("bench", ["--out", "F/sub"], "--out F/sub: F is a file, not a folder"),
    ("bench", ["--frames", "16,x"], "--frames expects comma-separated positive integers"),
    ("bench", ["--steps", "0"], "--steps and --repeats >= 1"),
    ("claims", [*CLAIM, "--runs", "F"], "--runs F is a file, not a folder"),   # was a worker thread's traceback
    ("claims", [*CLAIM, "--runs", "F/sub"], "--runs F/sub: F is a file, not a folder"),
    ("claims", [*CLAIM, "--runs", "RUNS_WITH_A_FILE"], "rvm-s0 is a file, not a folder"),
    ("claims", [*CLAIM, "--out", "F"], "--out F is a file, not a folder"),
    ("claims", [*CLAIM, "--out", "OUT_WITH_A_FILE"], "docs is a file, not a folder"),   # where claims.md goes
    ("claims", ["--claim", "rvm_tab3b", "--seeds", "1"], "--seeds must be at least 2"),
    ("claims", [*CLAIM, "--jobs", "0"], "--jobs must be at least 1"),
    ("sigma_oracle", [*ORACLE, "--set", "nope=1"], "--set: unknown config key 'nope' for sigma"),
    ("sigma_oracle", [*ORACLE, "--set", "mask_ratio=x"], "--set: mask_ratio expects float; got 'x'"),
    ("sigma_oracle", [*ORACLE, "--set", "mask_ratio"], "--set expects key=value; got 'mask_ratio'"),
    ("sigma_oracle", [*ORACLE, "--log-every", "0"], "--log-every must be >= 1; got 0"),
    ("sigma_oracle", ["--steps", "0"], "--steps must be >= 1; got 0"),
    ("sigma_oracle", [*ORACLE, "--lr", "0"], "--lr must be a number > 0"),
    ("sigma_oracle", [*ORACLE, "--side", "9", "3"], "--side expects two sizes in px, 1 <= LO <= HI"),
]


@pytest.fixture(scope="module")
def oracle():
    return load_script("sigma_oracle")


@pytest.mark.parametrize("tool, args, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, oracle, tool, args, message):
    monkeypatch.chdir(tmp_path)   # a default output folder, relative to here, would show up here
    plain = tmp_path / "file"
    plain.write_text("not a folder\n")
    (tmp_path / "with_file").mkdir()
    (tmp_path / "with_file" / "rvm-s0").write_text("a file where a run folder goes\n")
    (tmp_path / "with_file" / "docs").write_text("a file where docs/claims.md goes\n")
    folders = {"RUNS_WITH_A_FILE": tmp_path / "with_file", "OUT_WITH_A_FILE": tmp_path / "with_file"}
    swap = lambda a: str(folders[a]) if a in folders else a.replace("F", str(plain)) if a.startswith("F") else a
    args, message = [swap(a) for a in args], message.replace(" F", f" {plain}")
    out = tmp_path / "out"
    if tool == "bench" and "--out" not in args:
        args += ["--out", str(out)]
    if tool == "claims":
        args += [] if "--out" in args else ["--out", str(out)]
        args += [] if "--runs" in args else ["--runs", str(tmp_path / "runs")]
    before = sorted(os.listdir(tmp_path))
    main = {"bench": bench.main, "claims": claims.main, "sigma_oracle": oracle.main}[tool]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and one_error_line(err, message), err
    assert sorted(os.listdir(tmp_path)) == before                   # no output folder (nor runs folder) made
    assert plain.read_text() == "not a folder\n"


def test_sigma_oracle_runs_with_good_input(oracle, capsys):
    """The checks refuse bad input only: a two-step run of the plumbing oracle logs both steps."""
    assert oracle.main(["--steps", "2", "--batch-size", "1", "--log-every", "1", "--set", "dim=32",
                        "--set", "decoder_dim=32"]) == 0
    assert [line.split("|")[0].strip() for line in capsys.readouterr().out.splitlines()] == ["step    1", "step    2"]
