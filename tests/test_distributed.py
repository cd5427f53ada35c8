"""train.py under DDP and FSDP2 with 2 gloo processes on the CPU.

Each test runs train.main in 2 forked processes (conftest.launch) and compares
the result with one process on the same global batch: the data stream and
`sample` make step s see the same items however they are split, so the
parameters must agree up to float summation order. At lr 1e-3, 3 AdamW steps
leave 0.4-4e-5 of such noise (AdamW divides by the gradient's running scale,
which magnifies it; DISTRIBUTED.md measured the same), hence atol 1e-4, while a
wrong gradient (e.g. DDP never syncing) moves parameters by ~5e-3. The loss
at step 1, before any update, must agree to 1e-5.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

import methods
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# one block everywhere: the distributed machinery is what is tested, not the model
SMALL = {"rvm": ["depth=1", "core_depth=1", "decoder_depth=1", "dim=32", "decoder_dim=32",
                 "n_source=2", "n_targets=2"],
         "siammae": ["depth=1", "decoder_depth=1"],
         "sigma": ["depth=1", "decoder_depth=1", "num_prototypes=16"]}


def argv(method, out, *extra, steps=3):
    # lr 1e-3 from the first step (blr * 4 / 256), so that a wrong gradient moves parameters by ~1e-3
    sets = [a for kv in SMALL[method] + ["blr=0.064", "warmup_steps=1"] for a in ("--set", kv)]
    return ["--method", method, "--out", str(out), "--steps", str(steps), "--batch-size", "4",
            "--log-every", "1", "--ckpt-every", "0", *sets, *extra]


def train_worker(rank, world_size, args):
    train.main(args)


def losses(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f]


def params(out):
    return torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["model"]


def assert_close(a, b, atol):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), f"{k}: max diff {(a[k] - b[k]).abs().max():.2e}"


@pytest.mark.parametrize("method,mode", [("rvm", "ddp"), ("rvm", "fsdp"), ("sigma", "ddp"), ("sigma", "fsdp")])
def test_two_processes_match_one(launch, tmp_path, method, mode):
    """rvm: recurrent blocks called several times per step; sigma: Sinkhorn
    all-reduces its prototype sums over the global batch."""
    one, two = tmp_path / "one", tmp_path / "two"
    train.main(argv(method, one))
    launch(train_worker, 2, argv(method, two, "--dist", mode))
    l1, l2 = losses(one), losses(two)
    assert len(l1) == len(l2) == 3
    assert abs(l1[0] - l2[0]) < 1e-5, (l1, l2)
    assert_close(params(one), params(two), atol=1e-4)
    assert not torch.equal(params(one)["encoder.norm.weight"], torch.ones_like(params(one)["encoder.norm.weight"]))


def test_fsdp_checkpoint_loads_in_one_process_and_resumes_under_fsdp(launch, tmp_path):
    ref, fsdp, mixed = tmp_path / "ref", tmp_path / "fsdp", tmp_path / "mixed"
    train.main(argv("siammae", ref, steps=4))
    # an FSDP checkpoint is a plain single-process one
    launch(train_worker, 2, argv("siammae", fsdp, "--dist", "fsdp", "--stop-at", "2", steps=4))
    model, cfg, meta = methods.load_checkpoint(os.path.join(fsdp, "ckpt.pt"))
    assert meta["step"] == 2 and cfg.depth == 1
    # resume it in one process...
    train.main(argv("siammae", fsdp, "--resume", steps=4))
    # ...and a single-process checkpoint under FSDP
    train.main(argv("siammae", mixed, "--stop-at", "2", steps=4))
    launch(train_worker, 2, argv("siammae", mixed, "--dist", "fsdp", "--resume", steps=4))
    for out in (fsdp, mixed):
        assert len(losses(out)) == 4
        assert_close(params(ref), params(out), atol=1e-4)


def test_ddp_gradient_accumulation(launch, tmp_path):
    """2 processes x 2 micro-steps x 1 clip == 1 process x 4 clips."""
    one, two = tmp_path / "one", tmp_path / "two"
    train.main(argv("siammae", one))
    launch(train_worker, 2, argv("siammae", two, "--accum", "2"))
    assert abs(losses(one)[0] - losses(two)[0]) < 1e-5
    assert_close(params(one), params(two), atol=1e-4)


@pytest.mark.slow
def test_torchrun_smoke(tmp_path):
    """What users run: torchrun, FSDP on gloo (and the FLOP counter for the MFU
    under it); the checkpoint loads in one process."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "train.py"), *argv("siammae", out, "--dist", "fsdp", "--peak-tflops", "1", steps=2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "fsdp" in res.stdout and "step 2/2" in res.stdout and "MFU" in res.stdout
    assert res.stdout.count("step 2/2") == 1          # rank 0 prints, rank 1 does not
    model, cfg, meta = methods.load_checkpoint(os.path.join(out, "ckpt.pt"))
    assert meta["step"] == 2
