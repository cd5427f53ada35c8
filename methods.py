"""The four methods by name, their configs with overrides, and the way back from a checkpoint to a model.

    import methods
    module = methods.METHODS["rvm"]          # rvm.py: Config, sample, RVM
    model = methods.MODELS["rvm"](module.Config.tiny())
    cfg = methods.build_config("rvm", "tiny", ["dim=32"])   # a preset with --set overrides
    model, cfg, meta = methods.load_checkpoint("runs/rvm-tiny/ckpt.pt")

train.py trains and writes checkpoints; evaluate.py, viz.py and bench.py read
them through this file, so none of them imports the trainer (DDP, FSDP, the
FLOP counter). A checkpoint is one plain dict that torch.load reads with
weights_only=True: "model" (state dict), "config" (the method's Config as a
dict), "method", "step", plus what train.py needs to resume ("optimizer",
"rng", "train", "data") and "versions".
"""
import dataclasses
import sys

import torch

import runs
import rvm
import siammae
import sigma
import vicmae

# name -> module (Config, sample, the model class) and name -> its model class
METHODS = {"rvm": rvm, "siammae": siammae, "vicmae": vicmae, "sigma": sigma}
MODELS = {"rvm": rvm.RVM, "siammae": siammae.SiamMAE, "vicmae": vicmae.ViCMAE, "sigma": sigma.SIGMA}


# ----------------------------------------------------------------------------
# configs: a preset with train.py's --set key=value overrides, typed by the field's preset value


def build_config(name, preset, assignments):
    """The method's preset Config with `key=value` overrides applied; its
    __post_init__ validates the result. Raises ValueError on a bad key/value."""
    cfg = getattr(METHODS[name].Config, preset)()
    keys = [f.name for f in dataclasses.fields(cfg)]
    overrides = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value; got {item!r}")
        if key not in keys:
            raise ValueError(f"unknown config key {key!r} for {name}; valid keys: {', '.join(keys)}")
        overrides[key] = runs.parse_value(key, text, getattr(cfg, key))
    return dataclasses.replace(cfg, **overrides)


# ----------------------------------------------------------------------------
# what train.py and bench.py share, and the way back from a checkpoint


def param_groups(model, weight_decay):
    """No weight decay on biases and norms (ndim < 2), tokens, position
    embeddings, and whatever the model lists in `no_weight_decay()` (MAE).
    Weights the model names in `decay_held()` -> (names, step) get a third
    group, decayed only from that step on (train.py sets its weight_decay)."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    held, until = model.decay_held() if hasattr(model, "decay_held") else (set(), 0)
    decay, no_decay, late = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or "token" in name or "pos_embed" in name or name in skip
        (no_decay if exempt else late if name in held and until > 0 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return groups + ([{"params": late, "weight_decay": weight_decay, "decay_from": until}] if late else [])


def read_checkpoint(path):
    """The checkpoint dict at `path`, or a one-line error naming the path.
    weights_only=True: a file that would run code when unpickled is refused."""
    ckpt = runs.load_plain(path)
    missing = [k for k in ("model", "config", "method", "step") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing or not isinstance(ckpt["method"], str) or ckpt["method"] not in METHODS:   # a list is unhashable
        raise ValueError(f"{path} is not a train.py checkpoint (missing {missing or 'a known method'})")
    return ckpt


def config_from_checkpoint(ckpt):
    """A checkpoint's Config -> (cfg, the fields it lacked). A checkpoint older than the code lacks the fields added
    since; they take the values of the preset its run was started with (train.preset), never silently the tiny
    dataclass defaults, or, for a field in Config.legacy, the behaviour the code had before the field existed. A
    checkpoint without a recorded preset that lacks other fields is refused in one line."""
    module, saved = METHODS[ckpt["method"]], dict(ckpt["config"])
    names = [f.name for f in dataclasses.fields(module.Config)]
    unknown, missing = sorted(set(saved) - set(names)), [n for n in names if n not in saved]
    if unknown:
        raise ValueError(f"its config has fields {', '.join(unknown)} that {ckpt['method']}.Config does not know "
                         f"(written by another version of the code?)")
    # a field added to switch a behaviour takes what the checkpoint was trained with (Config.legacy); others the preset's
    preset, legacy = (ckpt.get("train") or {}).get("preset"), getattr(module.Config, "legacy", {})
    need = [n for n in missing if n not in legacy]
    if need and not hasattr(module.Config, str(preset)):
        raise ValueError(f"its config lacks {', '.join(need)} and names no preset to take them from "
                         f"(written by another version of the code?)")
    if missing:
        defaults = {**(dataclasses.asdict(getattr(module.Config, preset)()) if need else {}), **legacy}
        saved.update({n: defaults[n] for n in missing})
    return module.Config(**saved), missing


def load_checkpoint(path, device="cpu", parts=None):
    """Rebuild a trained model from a train.py checkpoint, in eval mode, without
    any process group. Returns (model, cfg, meta); meta has method, step,
    config, train, versions (everything but the weights and optimizer).
    parts {method: {keyword: function}}: as train.main's, for a model trained with them."""
    ckpt = read_checkpoint(path)
    try:
        cfg, filled = config_from_checkpoint(ckpt)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its config does not fit {ckpt['method']}.Config ({runs.first_line(e)})") from None
    if filled:
        print(f"note: {path} predates config fields {', '.join(filled)}; they take the values it was trained with "
              f"(or its preset's)", file=sys.stderr)
    mine = (parts or {}).get(ckpt["method"], {})
    if set(ckpt.get("parts", {})) - set(mine):   # trained with a part given now as the reference's: say so
        print(f"note: {path} was trained with {ckpt['parts']}; it is rebuilt with the reference's", file=sys.stderr)
    model = MODELS[ckpt["method"]](cfg, **mine)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:   # torch lists every key on many lines: name the first of each kind instead
        have, want = set(ckpt["model"]), set(model.state_dict())
        why = "; ".join(f"{what} {', '.join(sorted(keys)[:2])}{' ...' if len(keys) > 2 else ''}"
                        for what, keys in (("unexpected", have - want), ("missing", want - have)) if keys)
        raise ValueError(f"{path}: its weights do not fit {ckpt['method']} with its config "
                         f"({why or runs.first_line(e)}; written by another version of the code?)") from None
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")}
    return model.to(device).eval(), cfg, meta


def device_for(name):
    """--device auto | cpu | cuda (evaluate.py, viz.py, bench.py) -> torch.device:
    auto is cuda when there is one. A one-line ValueError when cuda is asked for
    and absent, instead of torch's assertion deep inside the first transfer."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device here; use --device cpu or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


@torch.no_grad()
def video_features(model, video, chunk=64):
    """(B, T, 3, H, W) -> (B, T, h, w, D) float32 for a video of any length,
    from any method's `features`. A model with a recurrent state (a `step`
    method: RVM) must see the whole video in one call; its `features` streams
    frame by frame with constant memory. Frame models (and SIGMA, whose
    windows of num_frames frames at its stride start at frame 0) go through in
    chunks of `chunk` frames, which bounds memory and gives the same features."""
    if hasattr(model, "step"):
        return model.features(video).float()
    cfg = getattr(model, "cfg", None)
    window = getattr(cfg, "num_frames", 1) * getattr(cfg, "stride", 1)   # SIGMA's span of frames, else 1
    chunk = max(window, chunk - chunk % window)
    return torch.cat([model.features(video[:, s:s + chunk]).float() for s in range(0, video.shape[1], chunk)], 1)
