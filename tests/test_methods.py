"""Tests for methods.py: the registry, checkpoints back to models, features of long videos; the skeleton every
method file shares (DESIGN.md: one name and one shape per role)."""
import dataclasses
import inspect
import os

import pytest
import torch

import methods
import vit
from helpers import tiny_model, write_ckpt


def test_registry_names_each_module_and_its_model_class():
    assert set(methods.METHODS) == set(methods.MODELS) == {"rvm", "siammae", "vicmae", "sigma"}
    for name, module in methods.METHODS.items():
        assert module.__name__ == name and methods.MODELS[name].__module__ == name
        assert callable(module.sample) and callable(methods.MODELS[name].check_batch)


ROLES = ["check_batch", "encode", "decode", "loss", "predict", "forward", "features", "reconstruct"]


@pytest.mark.parametrize("name", ["rvm", "siammae", "vicmae", "sigma"])
def test_every_method_has_one_name_and_one_shape_per_role(name):
    module, Model = methods.METHODS[name], methods.MODELS[name]
    assert [k for k in vars(Model) if k in ROLES] == ROLES                  # every role, in skeleton order
    # a swappable part goes in through the constructor under its function's name (rvm.RVM(cfg, gru_step=...))
    for arg in list(inspect.signature(Model.__init__).parameters.values())[2:]:
        assert callable(arg.default) and arg.default.__name__ == arg.name and getattr(module, arg.name) is arg.default
    model, cfg = tiny_model(name)
    model.train()                                                           # ViC-MAE's BatchNorm wants >= 2 pairs
    clip = torch.rand(2, cfg.clip_len, 3, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0))
    batch = module.sample(clip, cfg, torch.Generator().manual_seed(0))
    out = model.predict(batch)                                              # one named structure
    assert isinstance(out, vit.Prediction) and [f.name for f in dataclasses.fields(out)] == \
        ["pred", "mask", "frames", "latent", "ids_mask"]
    assert out.pred.shape[:-1] == out.mask.shape and out.latent.shape[-1] == cfg.dim
    assert set(out.mask.unique().tolist()) == {0.0, 1.0}
    losses, real = [], model.loss                                           # loss: a dict with "loss", everywhere
    model.loss = lambda *a, **k: losses.append(real(*a, **k)) or losses[-1]
    logged = model(batch)
    assert losses and all(isinstance(d, dict) and d["loss"].dim() == 0 for d in losses)
    assert logged["loss"] is losses[0]["loss"] and logged["loss"].requires_grad
    assert all(v.dim() == 0 and not v.requires_grad for k, v in logged.items() if k != "loss")


def test_load_checkpoint_round_trip_and_weight_mismatch(tmp_path):
    path = write_ckpt(tmp_path, "siammae")
    model, cfg, meta = methods.load_checkpoint(path)
    want, _ = tiny_model("siammae")
    assert not model.training and meta["method"] == "siammae" and "model" not in meta
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), want.state_dict().values()))
    # weights of another shape under the same config: one line naming the file, not torch's key list
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"] = {**ckpt["config"], "dim": 2 * ckpt["config"]["dim"]}
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: its weights do not fit siammae") as e:
        methods.load_checkpoint(str(tmp_path / "bad.pt"))
    assert "\n" not in str(e.value)
    older = torch.load(path, weights_only=True)            # a key the model no longer has: named, with the hint
    older["model"]["core.norm_kv.weight"] = torch.ones(3)
    torch.save(older, tmp_path / "older.pt")
    with pytest.raises(ValueError, match=r"unexpected core.norm_kv.weight; written by another version"):
        methods.load_checkpoint(str(tmp_path / "older.pt"))
    ckpt["config"]["no_such_field"] = 1
    torch.save(ckpt, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"odd.pt: its config does not fit siammae.Config"):
        methods.load_checkpoint(str(tmp_path / "odd.pt"))


def test_no_weight_decay_on_biases_norms_tokens_positions_and_listed_names():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = vit.ViT(img_size=16, patch=8, dim=16, depth=1, heads=2)
            self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, 16))
            self.pos_embed_learned = torch.nn.Parameter(torch.zeros(1, 4, 16))
            self.prototypes = torch.nn.Parameter(torch.zeros(8, 16))
            self.frozen = torch.nn.Parameter(torch.zeros(4, 4), requires_grad=False)

        def no_weight_decay(self):
            return {"prototypes"}
    toy = Toy()
    decay, no_decay = methods.param_groups(toy, 0.05)
    names = {id(p): n for n, p in toy.named_parameters()}
    got = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "enc.blocks.0.attn.q.weight" in got and "enc.patch_embed.proj.weight" in got
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"enc.cls_token", "mask_token", "pos_embed_learned", "prototypes", "enc.norm.weight",
            "enc.blocks.0.attn.q.bias"} <= skipped
    assert "frozen" not in got | skipped
    assert all(p.ndim >= 2 for p in decay["params"])


@pytest.mark.parametrize("name", ["siammae", "sigma"])
def test_video_features_in_chunks_equal_one_pass(name):
    model, cfg = tiny_model(name)
    video = torch.rand(1, 2 * getattr(cfg, "num_frames", 4) + 2, 3, 32, 32)  # a partial last window too
    assert torch.allclose(methods.video_features(model, video, chunk=3), model.features(video), atol=1e-5)


def test_device_for():
    assert methods.device_for("cpu") == torch.device("cpu")
    assert methods.device_for("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: no CUDA device here; use --device cpu or auto"):
            methods.device_for("cuda")


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_unsafe_checkpoint_is_refused_with_a_safe_message(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "method": "rvm", "step": 0, "x": RunsCode(marker)}, path)
    with pytest.raises(ValueError) as e:
        methods.load_checkpoint(str(path))
    message = str(e.value)
    assert "refused" in message and "asks to load posix.system" in message and "never loads such files" in message
    assert "weights_only" not in message and "\n" not in message    # no advice to load it unsafely
    assert not marker.exists()                                       # its code never ran
