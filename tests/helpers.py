"""Small random-init models and checkpoints shared by the viz and evaluate tests; the bad-input tables' assertions."""
import dataclasses
import hashlib
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
