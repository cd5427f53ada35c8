"""Small random-init models and checkpoints shared by the viz and evaluate tests."""
import dataclasses

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
