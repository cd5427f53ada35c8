"""train.py in one process: every method trains, resume is exact, checkpoints
are safe, the schedule and weight-decay groups are as the papers say, and bad
command lines end in one line of error."""
import dataclasses
import errno
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import methods
import train
import vit
from helpers import SMALL, argv, metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ----------------------------------------------------------------------------
# every method trains from the command line


# each --data kind once: ViC-MAE trains on videos mixed with still images (Fig. 2)
DATA = {"rvm": "noise_square", "siammae": "noise_square", "vicmae": "mixed", "sigma": "shapes"}


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_one_training_step_per_method(tmp_path, method):
    out = tmp_path / method
    # bf16 autocast, as on a GPU: fp32 buffers meeting bf16 activations fail here, not on the cluster
    train.main(argv(method, out, "--data", DATA[method], "--precision", "bf16", "--peak-tflops", "1", steps=2))
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert rows[0]["mfu"] > 0 and rows[0]["clips_per_s"] > 0            # FLOPs counted on the first step
    assert all(r["threads"] == torch.get_num_threads() for r in rows)  # a speed means nothing without it
    assert os.path.getsize(out / "loss.png") > 0
    # the checkpoint rebuilds the trained model in eval mode, with its config and step
    model, cfg, meta = methods.load_checkpoint(str(out / "ckpt.pt"))
    assert meta["method"] == method and meta["step"] == 2 and cfg.depth == 1 and not model.training
    torch.manual_seed(0)                                                 # train.py's init with --seed 0
    fresh = dict(methods.MODELS[method](cfg).named_parameters())
    still = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, fresh[n])]
    assert not still, f"the optimizer never moved {still}"
    video = torch.rand(1, cfg.clip_len, 3, cfg.img_size, cfg.img_size)
    feats = model.features(video)
    assert feats.shape[:2] == (1, cfg.clip_len) and torch.isfinite(feats).all()


def test_sample_item_is_a_function_of_seed_and_index():
    cfg = train.build_config("siammae", "tiny", [])
    item = {"video": torch.rand(cfg.clip_len, 3, 64, 64), "mask": torch.zeros(cfg.clip_len, 64, 64),
            "is_image": torch.tensor(False)}
    a, b, c = (train.sample_item("siammae", cfg, 0, item, i) for i in (5, 5, 6))
    assert "video" not in a and "mask" not in a and "is_image" in a           # the raw clip and truth stay out
    assert a["f1"].shape == (3, 64, 64) and a["noise"].shape == (64,)        # the sample's batch dim is gone
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["noise"], c["noise"])
    assert not torch.equal(a["noise"], train.sample_item("siammae", cfg, 1, item, 5)["noise"])


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    train.main(argv("siammae", tmp_path / "one", steps=2))
    train.main(argv("siammae", tmp_path / "acc", "--accum", "2", steps=2))
    one, acc = metrics(tmp_path / "one"), metrics(tmp_path / "acc")
    assert abs(one[0]["loss"] - acc[0]["loss"]) < 1e-6
    a = torch.load(tmp_path / "one" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "acc" / "ckpt.pt", weights_only=True)["model"]
    for k in a:   # summation order differs; AdamW magnifies it a little (see test_distributed.py)
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=0), (k, (a[k] - b[k]).abs().max())


# ----------------------------------------------------------------------------
# resume, interruption, bad losses


def test_resume_is_exact(tmp_path):
    """6 steps straight vs 3 steps, stop, resume to 6: the same loss at every
    step and the same parameters, bit for bit (ViC-MAE: BatchNorm buffers and a
    step-dependent loss weight must come back too)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train.main(argv("vicmae", straight, steps=6))
    train.main(argv("vicmae", split, "--stop-at", "3", steps=6))
    assert torch.load(split / "ckpt.pt", weights_only=True)["step"] == 3
    train.main(argv("vicmae", split, "--resume", steps=6))
    a, b = metrics(straight), metrics(split)
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["lam"] for r in a] == [r["lam"] for r in b]
    sa = torch.load(straight / "ckpt.pt", weights_only=True)
    sb = torch.load(split / "ckpt.pt", weights_only=True)
    assert sa["model"].keys() == sb["model"].keys()
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    assert sb["step"] == 6 and sb["data"]["next_item"] == 6 * 4


def test_resume_survives_a_cut_metrics_line_and_a_full_disk(tmp_path, monkeypatch, capsys):
    """A crash mid-append leaves half a line: the resume drops it with a warning.
    A full disk while the resume rewrites metrics.jsonl keeps the old history,
    and the next resume is as exact as ever."""
    straight, out = tmp_path / "straight", tmp_path / "run"
    train.main(argv("siammae", straight, steps=5))
    train.main(argv("siammae", out, "--stop-at", "3", steps=5))
    path = out / "metrics.jsonl"
    with open(path, "a") as f:
        f.write('{"step": 4, "lo')                                      # a crash mid-append
    history = path.read_text()
    real_fdopen = os.fdopen

    def full_disk(fd, mode="r", *a, **k):   # runs.write_atomic's temporary for metrics.jsonl cannot be written
        if "metrics.jsonl" in os.readlink(f"/proc/self/fd/{fd}") and "w" in mode:
            os.close(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(fd, mode, *a, **k)
    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(OSError, match="could not write .*metrics.jsonl.*No space left.*previous one is kept"):
        train.main(argv("siammae", out, "--resume", steps=5))
    monkeypatch.undo()
    assert path.read_text() == history and not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert not (out / ".lock").exists()                              # the lock goes with the failed run
    train.main(argv("siammae", out, "--resume", steps=5))
    assert "line 4 is not a metrics row" in capsys.readouterr().out
    assert [r["loss"] for r in metrics(out)] == [r["loss"] for r in metrics(straight)]


def test_resume_from_an_incomplete_or_misfitting_checkpoint_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    train.main(argv("rvm", out, steps=2))
    path = out / "ckpt.pt"
    good = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in good.items() if k not in ("rng", "train")}, path)      # e.g. written by hand
    with pytest.raises(SystemExit):
        train.main(argv("rvm", out, "--resume", steps=4))
    assert "lacks rng, train: not a checkpoint of train.py's loop" in capsys.readouterr().err
    bad = dict(good, model={k: v[..., :1] if v.ndim else v for k, v in good["model"].items()})  # wrong shapes
    torch.save(bad, path)
    with pytest.raises(SystemExit):
        train.main(argv("rvm", out, "--resume", steps=4))
    err = capsys.readouterr().err
    assert "--resume: the weights in" in err and "do not fit rvm" in err and "Traceback" not in err


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one_and_it_resumes_exactly(tmp_path, monkeypatch):
    straight, out = tmp_path / "straight", tmp_path / "run"
    ctrl_c = signal.getsignal(signal.SIGINT)   # Python's, or SIG_IGN in a job a shell started in the background
    train.main(argv("siammae", straight, steps=5))
    train.main(argv("siammae", out, "--stop-at", "3", steps=5))
    save = train.torch.save

    def full_disk(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(train.torch, "save", full_disk)
    with pytest.raises(OSError, match="could not write .*ckpt.pt .*No space left.*the previous one is kept"):
        train.main(argv("siammae", out, "--resume", steps=5))            # trains to 5, then the write fails
    monkeypatch.setattr(train.torch, "save", save)
    assert methods.read_checkpoint(str(out / "ckpt.pt"))["step"] == 3 and not list(out.glob(".*.tmp"))
    assert signal.getsignal(signal.SIGINT) is ctrl_c   # Ctrl-C is handled as before the run again
    train.main(argv("siammae", out, "--resume", steps=5))
    assert [r["loss"] for r in metrics(out)] == [r["loss"] for r in metrics(straight)]
    a, b = (torch.load(d / "ckpt.pt", weights_only=True)["model"] for d in (straight, out))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_older_than_its_config_takes_the_missing_fields_from_its_preset(tmp_path, capsys):
    """A field added to a Config after a run was saved comes from the preset the run was started with, with a note;
    never silently from the dataclass default. Without a preset to take it from, it is refused in one line."""
    out = tmp_path / "run"
    train.main(argv("sigma", out, "--preset", "tiny", "--set", "grad_clip=0.5", steps=2))
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    del ckpt["config"]["psi_warmup_steps"], ckpt["config"]["grad_clip"]
    ckpt["train"]["preset"] = "small"                                 # its preset's values differ from tiny's
    torch.save(ckpt, out / "ckpt.pt")
    cfg, filled = methods.config_from_checkpoint(ckpt)
    small = methods.METHODS["sigma"].Config.small()
    assert sorted(filled) == ["grad_clip", "psi_warmup_steps"]
    assert (cfg.grad_clip, cfg.psi_warmup_steps) == (small.grad_clip, small.psi_warmup_steps) != (1.0, 1500)
    assert cfg.dim == ckpt["config"]["dim"]                           # every saved field stays the checkpoint's
    model, cfg, _ = methods.load_checkpoint(str(out / "ckpt.pt"))
    assert cfg.psi_warmup_steps == small.psi_warmup_steps and "predates config fields" in capsys.readouterr().err
    del ckpt["train"]
    torch.save(ckpt, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="lacks psi_warmup_steps, grad_clip and names no preset"):
        methods.load_checkpoint(str(tmp_path / "bare.pt"))


def test_sigma_phi_keeps_its_weights_while_its_term_is_held(tmp_path):
    """The Psi warm-up holds phi's term (zero gradient) and its weight decay: phi's MLP weights stay exactly as they
    were until psi_warmup_steps, then move."""
    out, held = tmp_path / "run", ["--set", "psi_warmup_steps=3"]
    phi = lambda: {k: v for k, v in torch.load(out / "ckpt.pt", weights_only=True)["model"].items() if "projector" in k}
    train.main(argv("sigma", out, *held, steps=2))
    before = phi()
    train.main(argv("sigma", out, *held, "--resume", steps=3))     # step 2 < 3: held
    assert all(torch.equal(before[k], v) for k, v in phi().items())
    train.main(argv("sigma", out, *held, "--resume", steps=5))     # steps 3, 4: phi learns
    assert all(not torch.equal(before[k], v) for k, v in phi().items() if v.ndim == 2)


def test_a_checkpoint_from_before_a_behaviour_switch_keeps_its_behaviour(tmp_path):
    """A field added to switch a behaviour (Config.legacy: RVM's LayerNorm eps and self-attention core's width, SIGMA's
    eps and phi decay) is filled with what the checkpoint was trained with, preset or not: it loads and predicts as
    it did."""
    cfg = methods.METHODS["rvm"].Config(core="sa", dim=32, decoder_dim=32, **methods.METHODS["rvm"].Config.legacy)
    torch.manual_seed(0)
    model = methods.MODELS["rvm"](cfg).eval()
    saved = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in cfg.legacy}
    torch.save({"model": model.state_dict(), "config": saved, "method": "rvm", "step": 1}, tmp_path / "old.pt")
    loaded, cfg2, _ = methods.load_checkpoint(str(tmp_path / "old.pt"))
    assert cfg2 == cfg and cfg2.norm_eps == 1e-5 and not cfg2.sa_match_params
    video = torch.rand(1, 4, 3, 64, 64)
    assert torch.equal(loaded.features(video), model.features(video))


def test_resume_rejects_a_contradicting_run(tmp_path, capsys):
    train.main(argv("siammae", tmp_path, steps=1))
    with pytest.raises(SystemExit):
        train.main(argv("siammae", tmp_path, "--resume", "--batch-size", "8"))
    assert "contradicts the checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--method", "rvm", "--out", str(tmp_path), "--resume"])
    assert "siammae run" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    Model = methods.MODELS["siammae"]
    forward = Model.forward

    def poisoned(self, batch):
        out = forward(self, batch)
        return {**out, "loss": out["loss"] * float("nan")} if int(batch["step"]) >= 2 else out
    monkeypatch.setattr(Model, "forward", poisoned)
    with pytest.raises(SystemExit) as e:
        train.main(argv("siammae", tmp_path, "--ckpt-every", "1", steps=5))
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "loss is nan at step 3" in err and "ckpt.pt holds step 2" in err
    ckpt = methods.read_checkpoint(str(tmp_path / "ckpt.pt"))
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    fresh = tmp_path / "fresh"                                       # no checkpoint yet: it says so
    with pytest.raises(SystemExit):
        train.main(argv("siammae", fresh, steps=5))
    assert "no checkpoint was written" in capsys.readouterr().err and not (fresh / "ckpt.pt").exists()


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "train.py", *argv("siammae", out, steps=10_000)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not (out / "metrics.jsonl").exists() or (out / "metrics.jsonl").stat().st_size == 0:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr                          # saved but not finished: 128 + SIGINT
    assert "stopped by SIGINT" in stdout and "Traceback" not in stderr
    step = methods.read_checkpoint(str(out / "ckpt.pt"))["step"]
    assert 1 <= step < 10_000 and len(metrics(out)) >= 1


# ----------------------------------------------------------------------------
# checkpoints


def test_checkpoint_errors_name_the_path_and_writes_are_atomic(tmp_path, monkeypatch):
    train.main(argv("sigma", tmp_path, steps=1))
    path = str(tmp_path / "ckpt.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*nothing.pt"):
        methods.load_checkpoint(str(tmp_path / "nothing.pt"))
    # a truncated file: a clear error that names it
    data = open(path, "rb").read()
    cut = str(tmp_path / "cut.pt")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pt is not a readable checkpoint"):
        methods.load_checkpoint(cut)
    # loading is weights_only: a pickled object that is not plain data is refused
    evil = str(tmp_path / "evil.pt")
    torch.save({"model": {}, "config": {}, "method": "sigma", "step": 0, "x": vit.ViT}, evil)
    with pytest.raises(ValueError, match="evil.pt: refused: .*asks to load vit.ViT.*this project never loads"):
        methods.read_checkpoint(evil)
    # a write that dies half-way leaves the previous checkpoint intact
    def dies_halfway(obj, f):
        with open(f, "wb") as fh:
            fh.write(data[:1000])
        raise OSError("disk full")
    monkeypatch.setattr(train.torch, "save", dies_halfway)
    with pytest.raises(OSError, match="could not write .*ckpt.pt .*disk full.*the previous one is kept"):
        train.save_checkpoint(path, {"step": 99})
    assert not list(tmp_path.glob(".*.tmp"))                         # no half-written file left behind
    def torch_full_disk(obj, f):                                     # how torch's zip writer reports ENOSPC
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")
    monkeypatch.setattr(train.torch, "save", torch_full_disk)
    with pytest.raises(OSError, match="could not write .*PytorchStreamWriter failed.*previous one is kept"):
        train.save_checkpoint(path, {"step": 99})
    model, cfg, meta = methods.load_checkpoint(path)
    assert meta["step"] == 1 and meta["versions"]["torch"] == str(torch.__version__)


# ----------------------------------------------------------------------------
# optimizer pieces


def test_lr_schedule_warmup_then_cosine():
    base, warmup, total = 1e-3, 10, 110
    lrs = [train.lr_at(s, base, warmup, total) for s in range(total)]
    assert lrs[0] == pytest.approx(base / warmup) and lrs[warmup - 1] == pytest.approx(base)
    assert all(b > a for a, b in zip(lrs[:warmup - 1], lrs[1:warmup]))          # linear rise
    assert lrs[warmup] == pytest.approx(base)                                    # cosine starts at the peak
    assert lrs[60] == pytest.approx(base / 2)                                    # half-way: cos(pi/2)
    assert all(b <= a for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))           # then only down
    assert lrs[-1] < 1e-3 * base


@pytest.mark.parametrize("name, field, value, message", [
    ("vicmae", "blr", 0.0, "blr must be a number > 0"),
    ("sigma", "betas", (0.9,), "betas must be two numbers"),
    ("rvm", "betas", (0.9, 1.0), "betas must be two numbers"),
    ("siammae", "grad_clip", float("inf"), "grad_clip must be a number >= 0"),
    ("rvm", "warmup_steps", -1, "warmup_steps must be a number >= 0"),
])
def test_optimizer_fields_are_checked_by_name(name, field, value, message):
    bad = methods.METHODS[name].Config()
    setattr(bad, field, value)                                      # past __post_init__: the check alone
    with pytest.raises(ValueError, match=re.escape(message)):
        train.check_optimizer(bad)
    train.check_optimizer(methods.METHODS[name].Config())     # the presets pass


@pytest.mark.parametrize("method", list(methods.METHODS))
@pytest.mark.parametrize("preset, steps", [("tiny", None), ("tiny", 300), ("tiny", 5000), ("small", None),
                                           ("small", 600), ("small", 2000), ("small", 5000)])
def test_every_run_reaches_its_peak_lr_and_decays(tmp_path, method, preset, steps):
    """claims.py trains the small preset for 600-5000 steps, against warm-ups of 3300-5000 steps for 100k-step runs:
    every run, short or full, must reach its peak lr and then decay within its own steps."""
    s, cfg, _ = train.parse_args(["--method", method, "--preset", preset, "--out", str(tmp_path / "r"),
                                  *(["--steps", str(steps)] if steps else [])])
    warmup = train.warmup_for(s, cfg)
    lrs = [train.lr_at(step, 1.0, warmup, s.steps) for step in range(0, s.steps, max(1, s.steps // 2000))]
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.05 and 0 < warmup < s.steps / 2
    if s.steps >= train.PRESETS[preset]["steps"]:
        assert warmup == cfg.warmup_steps                                # a full-length run keeps the paper's steps


# ----------------------------------------------------------------------------
# the command line


def test_tiny_steps_default_per_method(tmp_path):
    """SIGMA's tiny run is longer (its Psi warm-up must end well before the last step); --steps wins."""
    steps = lambda *a: train.parse_args(["--out", str(tmp_path / "r"), *a])[0].steps
    assert steps("--method", "rvm") == train.PRESETS["tiny"]["steps"]
    warmup = train.build_config("sigma", "tiny", []).psi_warmup_steps
    assert steps("--method", "sigma") == train.TINY_STEPS["sigma"] > warmup
    assert steps("--method", "sigma", "--steps", "7") == 7
    assert steps("--method", "sigma", "--preset", "small") == train.PRESETS["small"]["steps"]


def test_config_overrides_are_typed():
    cfg = train.build_config("vicmae", "tiny", ["mask_ratio=0.5", "betas=0.9,0.99", "norm_pix_loss=false",
                                                "depth=2", "pool=max"])
    assert (cfg.mask_ratio, cfg.betas, cfg.norm_pix_loss, cfg.depth, cfg.pool) == (0.5, (0.9, 0.99), False, 2, "max")
    assert train.build_config("sigma", "small", ["proj_hidden=(64, 32)"]).proj_hidden == (64, 32)
    with pytest.raises(ValueError, match="depth expects int"):
        train.build_config("vicmae", "tiny", ["depth=1.5"])
    with pytest.raises(ValueError, match="valid keys: img_size, patch"):
        train.build_config("vicmae", "tiny", ["nope=1"])


@pytest.mark.parametrize("args,message", [
    (["--method", "moco"], "invalid choice: 'moco'"),
    (["--method", "rvm", "--steps", "-3"], "--steps must be >= 1"),
    (["--method", "rvm", "--set", "nope=1"], "unknown config key 'nope' for rvm; valid keys:"),
    (["--method", "rvm", "--set", "mask_ratio=1.5"], "mask ratio"),
    (["--method", "rvm", "--set", "depth"], "expects key=value"),
    (["--method", "rvm", "--data", "/no/such/videos"], "/no/such/videos"),
    (["--method", "rvm", "--batch-size", "6", "--accum", "4"], "divisible"),
    (["--method", "rvm", "--resume"], "no checkpoint at"),
])
def test_bad_command_lines_end_in_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        train.main([*args, "--out", str(tmp_path / "run")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("usage: train.py") and err[1].startswith("train.py: error:")
    assert message in err[1]


@pytest.mark.parametrize("extra, message", [
    (["--accum", "0"], "--accum must be >= 1; got 0"),
    (["--stop-at", "0"], r"--stop-at 0 is never reached: it must be in \(0, 3\]"),
    (["--stop-at", "9"], "--stop-at 9 is never reached"),
    (["--data", "no/such/folder"], "--data: no video folder or file at no/such/folder"),
    (["--set", "heads=3"], "dim=32 is not divisible by heads=3"),
    (["--set", "dim=63"], "dim=63 is not divisible by heads=2"),
    (["--set", "patch=0"], "patch must be an integer >= 1; got 0"),
    (["--set", "img_size=0"], "img_size must be an integer >= 1; got 0"),
    (["--set", "blr=-1"], "blr must be a number > 0; got -1.0"),
    (["--set", "betas=0.9"], r"betas must be two numbers in \[0, 1\)"),
    (["--set", "mask_ratio=nan"], r"mask ratio nan is not in \[0, 1\)"),
    (["--set", "weight_decay=-1"], "weight_decay must be a number >= 0"),
    (["--set", "decoder_heads=5"], "decoder_dim=32 is not divisible by decoder_heads=5"),
])
def test_bad_arguments_are_one_line_and_leave_no_folder(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        train.main(argv("rvm", out, *extra))
    err = capsys.readouterr().err
    assert e.value.code == 2 and re.search(message, err) and "Traceback" not in err
    assert not out.exists()                                          # nothing created for a run that never ran


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(argv("rvm", tmp_path / "run", "--device", "cuda"))
    assert "--device cuda: no CUDA device here; use --device cpu or auto" in capsys.readouterr().err


def test_resume_with_fewer_steps_than_the_checkpoint_is_an_error(tmp_path, capsys):
    out = tmp_path / "run"
    train.main(argv("rvm", out, steps=2))
    with pytest.raises(SystemExit):
        train.main(argv("rvm", out, "--resume", steps=1))
    assert "--steps 1: the checkpoint is at step 2 already" in capsys.readouterr().err
    assert methods.read_checkpoint(str(out / "ckpt.pt"))["train"]["steps"] == 2   # the checkpoint is untouched


@pytest.mark.slow
def test_command_line_error_has_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, "train.py", "--method", "rvm", "--data", str(tmp_path / "none")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and str(tmp_path / "none") in res.stderr
    taken = tmp_path / "a_file"                                     # --out is a file: bad input, named, one line
    taken.write_text("")
    res = subprocess.run([sys.executable, "train.py", "--method", "rvm", "--steps", "1", "--out", str(taken)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(errors) == 1
    assert f"--out {taken} is a file, not a folder" in errors[0] and taken.read_text() == ""


# ----------------------------------------------------------------------------
# the loss falls


@pytest.mark.slow
def test_loss_falls_on_a_fixed_batch(method="rvm"):
    """The optimizer as train.py builds it (param groups, warmup + cosine,
    clipping) on one fixed batch of the demo's method: the loss (raw-pixel L2,
    so not just a shift to the mean of normalized targets) must at least halve."""
    cfg = train.build_config(method, "tiny", SMALL[method])
    dataset = train.make_dataset("shapes", cfg, seed=0)
    items = [train.sample_item(method, cfg, 0, dataset[i], i) for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}     # what the loader collates
    torch.manual_seed(0)
    model = methods.MODELS[method](cfg)
    opt = torch.optim.AdamW(methods.param_groups(model, cfg.weight_decay), betas=cfg.betas)
    losses = []
    for step in range(40):
        for g in opt.param_groups:
            g["lr"] = train.lr_at(step, 1e-3, 5, 40)
        loss = model({**batch, "step": torch.tensor(step)})["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_eta_format():
    assert train.format_eta(0) == "0m00s" and train.format_eta(185.9) == "3m05s"
    assert train.format_eta(3599) == "59m59s" and train.format_eta(2 * 3600 + 7 * 60 + 30) == "2h07m"
