"""Small random-init models and checkpoints shared by the viz and evaluate tests; the bad-input tables' assertions."""
import dataclasses
import hashlib
import json
import os

import torch

import methods

SHRINK = dict(dim=32, depth=1, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2, core_depth=1)


def tiny_model(name):
    cfg = methods.METHODS[name].Config.tiny()
    names = {f.name for f in dataclasses.fields(cfg)}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in SHRINK.items() if k in names})
    torch.manual_seed(0)
    return methods.MODELS[name](cfg).eval(), cfg


def write_ckpt(folder, name):
    """A checkpoint with the keys methods.load_checkpoint reads (train.py's format)."""
    model, cfg = tiny_model(name)
    path = str(folder / f"{name}.pt")
    torch.save({"model": model.state_dict(), "config": dataclasses.asdict(cfg), "method": name, "step": 0}, path)
    return path


def snapshot(folder):
    """Every file under `folder` -> its bytes' hash: a folder left "as it was" means this is equal."""
    return {os.path.relpath(os.path.join(d, f), folder): hashlib.sha256(open(os.path.join(d, f), "rb").read()).digest()
            for d, _, names in os.walk(folder) for f in names}


def one_error_line(err, message):
    """True when stderr holds exactly one `error:` line, containing `message`, and no traceback."""
    errors = [line for line in err.splitlines() if "error:" in line]
    return len(errors) == 1 and message in errors[0] and "Traceback" not in err


# train.py command lines for tests: tiny configs shrunk further, one block each, so a step takes ~0.1 s
SMALL = {"rvm": ["depth=1", "core_depth=1", "decoder_depth=1", "dim=32", "decoder_dim=32",
                 "n_source=2", "n_targets=2"],
         "siammae": ["depth=1", "decoder_depth=1"],
         "vicmae": ["depth=1", "decoder_depth=1", "head_hidden=64"],
         "sigma": ["depth=1", "decoder_depth=1", "num_prototypes=16", "psi_warmup_steps=0"]}   # phi moves from step 1


def argv(method, out, *extra, steps=3, batch=4):
    """lr 1e-3 from the first step (blr * 4 / 256): parameters move visibly in a few steps."""
    sets = [a for kv in SMALL[method] + ["blr=0.064", "warmup_steps=1"] for a in ("--set", kv)]
    return ["--method", method, "--out", str(out), "--steps", str(steps), "--batch-size", str(batch),
            "--log-every", "1", "--ckpt-every", "0", *sets, *extra]


def metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]
