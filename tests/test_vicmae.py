"""Tests for vicmae.py: each one fails if the piece of ViC-MAE it names were wrong."""
import math
import os
import sys
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

import vicmae
import vit


def small_cfg(**kw):
    """The tiny preset shrunk further: 32 px, 16 tokens, width 32, one block."""
    base = dict(img_size=32, patch=8, dim=32, depth=1, heads=2, decoder_dim=32, decoder_depth=1,
                decoder_heads=2, head_hidden=64, head_out=16)
    base.update(kw)
    return vicmae.Config(**base)


def make_batch(cfg, B=4, T=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    clip = torch.rand(B, T, 3, cfg.img_size, cfg.img_size, generator=g)
    return vicmae.sample(clip, cfg, g)


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ----------------------------------------------------------------------------
# config and sampling


def test_config_presets_and_validation():
    assert vicmae.Config.tiny() == vicmae.Config()
    s = vicmae.Config.small()
    assert (s.img_size, s.patch, s.dim, s.depth, s.heads) == (224, 16, 384, 12, 6)
    for bad in [dict(img_size=30), dict(mask_ratio=1.0), dict(pool="cls"), dict(clip_len=7), dict(tau=0.0),
                dict(image_fraction=1.5), dict(lam=-0.1)]:
        with pytest.raises(ValueError):
            vicmae.Config(**bad)


@pytest.mark.parametrize("T", [10, 7])
def test_sample_distant_sampling(T):
    cfg = small_cfg()
    B = 256
    # frame t of every clip is the constant image t, so a sampled frame tells its index
    clip = (torch.arange(T, dtype=torch.float32) / T).view(1, T, 1, 1, 1).expand(B, T, 3, 32, 32).contiguous()
    out = vicmae.sample(clip, cfg, torch.Generator().manual_seed(0))
    seg = T // 2
    t1, t2 = out["t1"], out["t2"]
    # Sec. 5.4: one frame from each of 2 equal segments, every frame of a segment possible
    assert set(t1.tolist()) == set(range(seg))
    assert set(t2.tolist()) == set(range(seg, 2 * seg))
    assert torch.equal(out["f1"], clip[torch.arange(B), t1]) and torch.equal(out["f2"], clip[torch.arange(B), t2])
    assert out["noise1"].shape == out["noise2"].shape == (B, 16)
    assert not torch.equal(out["noise1"], out["noise2"])           # each view its own mask
    again = vicmae.sample(clip, cfg, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], again[k]) for k in out)         # all randomness from the generator


def test_sample_image_clip_gives_its_two_views():
    # data.py's still image: first half of the clip is view A, second half view B
    cfg = small_cfg()
    a, b = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    clip = torch.cat([a[:, None].expand(3, 4, 3, 32, 32), b[:, None].expand(3, 4, 3, 32, 32)], dim=1)
    out = vicmae.sample(clip, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(out["f1"], a) and torch.equal(out["f2"], b)


def test_sample_rejects_bad_clips():
    cfg = small_cfg()
    with pytest.raises(ValueError, match="T >= 2"):
        vicmae.sample(torch.rand(2, 1, 3, 32, 32), cfg, torch.Generator())
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        vicmae.sample(torch.rand(2, 3, 32, 32), cfg, torch.Generator())


# ----------------------------------------------------------------------------
# InfoNCE (Eq. 3)


def info_nce_loops(p, z, tau):
    """Eq. 3 with explicit loops: the 2N embeddings [p; z]; anchor a's positive
    is its pair, the denominator sums over every embedding but a itself."""
    emb = [v.double() for v in list(p) + list(z)]
    n2 = len(emb)
    total = 0.0
    for a in range(n2):
        pos = (a + n2 // 2) % n2
        num = math.exp(float(emb[a] @ emb[pos]) / tau)
        den = sum(math.exp(float(emb[a] @ emb[k]) / tau) for k in range(n2) if k != a)
        total += -math.log(num / den)
    return total / n2


@pytest.mark.parametrize("N", [1, 2, 5])
@pytest.mark.parametrize("tau", [0.07, 0.5, 2.0])
def test_info_nce_matches_eq3_loops(N, tau):
    p, z = unit(N, 8, seed=N), unit(N, 8, seed=100 + N)
    assert vicmae.info_nce(p, z, tau).item() == pytest.approx(info_nce_loops(p, z, tau), rel=1e-5, abs=1e-6)


def test_info_nce_finds_the_positive():
    p = unit(16, 32, seed=1)
    z = F.normalize(p + 0.1 * unit(16, 32, seed=2), dim=-1)        # z_i is a noisy copy of p_i
    matched = vicmae.info_nce(p, z, 0.1)
    shuffled = vicmae.info_nce(p, z[torch.randperm(16, generator=torch.Generator().manual_seed(0))], 0.1)
    assert matched < 0.2 < math.log(31) - 1 < shuffled


def test_info_nce_rank_offsets_with_a_fake_gather():
    # two "ranks" of N=3 pairs each, simulated in one process: the mean of the
    # ranks' losses is the loss on the whole batch of 6 pairs
    P, Z, N = unit(6, 8, seed=3), unit(6, 8, seed=4), 3
    losses = []
    for r in range(2):
        sl = slice(r * N, (r + 1) * N)
        def gather(x, r=r, sl=sl):
            full = P if torch.equal(x, P[sl]) else Z
            return torch.cat([full[:r * N], x, full[(r + 1) * N:]])
        losses.append(vicmae.info_nce(P[sl], Z[sl], 0.2, gather, r))
    assert torch.allclose(sum(losses) / 2, vicmae.info_nce(P, Z, 0.2), atol=1e-6)


# ----------------------------------------------------------------------------
# pooling, heads, lambda


def test_pool_variants_and_cls_excluded():
    x = torch.randn(3, 1 + 5, 4)
    tokens = x[:, 1:]
    assert torch.allclose(vicmae.pool(x, "mean"), tokens.sum(1) / 5)
    assert torch.equal(vicmae.pool(x, "max"), torch.stack([tokens[:, i] for i in range(5)]).max(0).values)
    gem = (tokens.clamp(min=1e-6) ** 3).sum(1).div(5) ** (1 / 3)
    assert torch.allclose(vicmae.pool(x, "gem", 3.0), gem, atol=1e-6)
    pos = x.abs() + 0.1                                               # GeM: p=1 is mean, large p -> max
    assert torch.allclose(vicmae.pool(pos, "gem", 1.0), vicmae.pool(pos, "mean"), atol=1e-6)
    assert torch.allclose(vicmae.pool(pos, "gem", 50.0), vicmae.pool(pos, "max"), rtol=0.04)  # 5^(1/50) < 1.04
    y = x.clone()
    y[:, 0] = 1e3                                                     # [CLS] is not pooled
    for kind in ("mean", "max", "gem"):
        assert torch.equal(vicmae.pool(x, kind), vicmae.pool(y, kind))


@pytest.mark.parametrize("share", [True, False])
def test_heads(share):
    model = vicmae.ViCMAE(small_cfg(share_heads=share)).eval()
    kinds = [type(m) for m in model.predictor]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
    assert (model.target is None) == share
    x = torch.randn(4, 1 + 4, 32)
    p, z = model.heads(x, x.clone())
    assert torch.allclose(p.norm(dim=-1), torch.ones(4)) and torch.allclose(z.norm(dim=-1), torch.ones(4))
    assert torch.allclose(p, z) == share                              # same view, same head iff shared
    y = x.clone()
    y[:, 0] = 5.0
    assert torch.allclose(model.heads(y, y)[0], p)                  # [CLS] does not reach P
    model.train()                                                     # each view is its own BatchNorm batch,
    p_a, _ = model.heads(x, x)                                      # so in training p does not depend on
    assert torch.allclose(model.heads(x, torch.randn_like(x))[0], p_a, atol=1e-6)   # the other view


def test_lambda_schedule():
    cfg = small_cfg(lam=0.04, lam_warmup_steps=100)
    assert vicmae.lam_at(0, cfg) == 0.0
    assert vicmae.lam_at(50, cfg) == pytest.approx(0.02)
    assert vicmae.lam_at(100, cfg) == pytest.approx(0.04) == vicmae.lam_at(10_000, cfg)
    assert vicmae.lam_at(torch.tensor(25), cfg).item() == pytest.approx(0.01)
    assert vicmae.lam_at(None, cfg) == 0.04                           # explicit default: the final lambda
    assert vicmae.lam_at(0, small_cfg(lam=0.03, lam_warmup_steps=0)) == 0.03   # official code: no ramp
    model, batch = vicmae.ViCMAE(cfg), make_batch(cfg)
    for step, lam in [(0, 0.0), (50, 0.02), (None, 0.04)]:
        out = model(batch if step is None else {**batch, "step": step})
        assert out["lam"].item() == pytest.approx(lam)
        assert out["loss"].item() == pytest.approx(out["loss_mask"].item() + lam * out["loss_neg"].item(), rel=1e-6)


def test_official_code_weights():
    cfg = small_cfg(recon_weight=0.97, lam=0.03, lam_warmup_steps=0)
    out = vicmae.ViCMAE(cfg)({**make_batch(cfg), "step": 0})
    assert out["loss"].item() == pytest.approx(0.97 * out["loss_mask"].item() + 0.03 * out["loss_neg"].item(),
                                               rel=1e-6)


# ----------------------------------------------------------------------------
# the model


def test_loss_mask_is_eq2_averaged_over_views():
    cfg = small_cfg()
    model, batch = vicmae.ViCMAE(cfg), make_batch(cfg)
    per_view, masks = [], [vit.random_masking(4, 16, cfg.mask_ratio, noise=batch[k]) for k in ("noise1", "noise2")]
    x = model.encode(batch["f1"], batch["f2"], torch.cat([masks[0][0], masks[1][0]]))   # (2B, 1+n, D), f1s then f2s
    for view, f in enumerate((batch["f1"], batch["f2"])):
        _, ids_restore, mask = masks[view]
        assert mask.sum(1).eq(12).all()                               # 75% of 16 patches removed
        pred = model.decode(x[4 * view:4 * (view + 1)], ids_restore, 4, 4)
        target = vit.patchify(f, 8)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        err = ((pred - target) ** 2).mean(-1)                          # (B, N)
        per_view.append(err[mask.bool()].mean())
    out = model(batch)
    assert out["loss_mask"].item() == pytest.approx(((per_view[0] + per_view[1]) / 2).item(), rel=1e-5)


def test_both_losses_send_gradient_into_the_encoder():
    cfg = small_cfg(lam_warmup_steps=10)
    model, batch = vicmae.ViCMAE(cfg), make_batch(cfg)
    out = model.predict(batch)
    l_mask = vit.masked_mse(out.pred, vit.patch_targets(out.frames, 8), out.mask)
    l_neg = vicmae.info_nce(*model.heads(out.latent[:4], out.latent[4:]), cfg.tau)
    enc = list(model.encoder.blocks.parameters())
    g_mask = torch.autograd.grad(l_mask, enc + list(model.predictor.parameters()), retain_graph=True,
                                 allow_unused=True)
    g_neg = torch.autograd.grad(l_neg, enc + [model.decoder_pred.weight], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in g_mask[:len(enc)] + g_neg[:len(enc)])
    assert all(g is None for g in g_mask[len(enc):]) and g_neg[-1] is None   # each loss only its branch
    model.zero_grad()
    model({**batch, "step": 10})["loss"].backward()                   # the total loss reaches every parameter
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_batch_of_one_raises_in_training_only():
    cfg = small_cfg()
    model, batch = vicmae.ViCMAE(cfg), make_batch(cfg, B=1)
    with pytest.raises(ValueError, match=">= 2 pairs"):
        model(batch)
    assert torch.isfinite(model.eval()(batch)["loss"])


def test_forward_is_a_function_of_its_batch():
    cfg = small_cfg()
    model, batch = vicmae.ViCMAE(cfg), make_batch(cfg)
    a, b = model(batch), model(batch)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = model({**batch, "noise2": torch.rand(4, 16)})
    assert c["loss_mask"] != a["loss_mask"]


def test_features_embed_and_bad_input():
    cfg = small_cfg()
    model = vicmae.ViCMAE(cfg).eval()
    video = torch.rand(2, 3, 3, 32, 32)
    f = model.features(video)
    assert f.shape == (2, 3, 4, 4, 32)
    # frames are encoded independently, unmasked
    assert torch.allclose(f[:, 1], model.encoder(video[:, 1])[:, 1:].reshape(2, 4, 4, 32), atol=1e-6)
    e = model.embed(video)
    assert e.shape == (2, 3, 32)
    assert torch.allclose(e, F.normalize(f.mean(dim=(2, 3)), dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model.features(video[:, 0])
    with pytest.raises(ValueError, match="noise1"):
        model({**make_batch(cfg), "noise1": torch.rand(4, 15)})


def test_reconstruct_pastes_visible_patches():
    cfg = small_cfg()
    model, batch = vicmae.ViCMAE(cfg), make_batch(cfg)
    r = model.reconstruct(batch)
    assert r["pred"].shape == r["paste"].shape == (4, 2, 3, 32, 32) and r["mask"].shape == (4, 2, 16)
    views = torch.stack([batch["f1"], batch["f2"]], dim=1)           # (B, 2, 3, H, W)
    keep = (1 - r["mask"]).view(4, 2, 4, 1, 4, 1).expand(-1, -1, -1, 8, -1, 8).reshape(4, 2, 1, 32, 32)
    assert torch.allclose(r["paste"] * keep, views * keep, atol=1e-6)


# ----------------------------------------------------------------------------
# 2-process gloo: the negatives are gathered from every rank


def _ddp_worker(rank, world, init_file, out_path, p, z, batch, state, cfg):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    n = p.shape[0] // world
    pl, zl = p[rank * n:(rank + 1) * n].clone().requires_grad_(), z[rank * n:(rank + 1) * n].clone().requires_grad_()
    loss = vicmae.info_nce(pl, zl, 0.2, *vicmae.all_gather_rows())
    loss.backward()
    model = vicmae.ViCMAE(cfg).eval()                                 # eval: BatchNorm uses running stats
    model.load_state_dict(state)
    b = len(batch["f1"]) // world
    out = model({k: v[rank * b:(rank + 1) * b] for k, v in batch.items()})
    local = torch.cat([loss.detach()[None], out["loss_neg"][None], out["loss_mask"][None], pl.grad.flatten(),
                       zl.grad.flatten()])
    every = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(every, local)
    if rank == 0:
        torch.save(torch.stack(every), out_path)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


def test_ddp_gathered_negatives_equal_one_process(tmp_path):
    world, N, K = 2, 6, 8
    p, z = unit(N, K, seed=5), unit(N, K, seed=6)
    cfg = small_cfg()
    model, batch = vicmae.ViCMAE(cfg).eval(), make_batch(cfg, B=4)
    out_path = str(tmp_path / "result.pt")
    mp.start_processes(_ddp_worker, args=(world, str(tmp_path / "rdzv"), out_path, p, z, batch,
                                          model.state_dict(), cfg), nprocs=world, start_method="fork")
    every = torch.load(out_path)                                      # (world, 3 + 2 * n * K)
    # single process, the concatenated batch
    p1, z1 = p.clone().requires_grad_(), z.clone().requires_grad_()
    loss = vicmae.info_nce(p1, z1, 0.2)
    loss.backward()
    full = model(batch)
    assert every[:, 0].mean().item() == pytest.approx(loss.item(), rel=1e-5)
    assert every[:, 1].mean().item() == pytest.approx(full["loss_neg"].item(), rel=1e-5)
    assert every[:, 2].mean().item() == pytest.approx(full["loss_mask"].item(), rel=1e-5)
    # the all-gather's backward sums all ranks' losses: rank grads / world = grad of the global loss
    n = N // world
    grads = every[:, 3:].view(world, 2, n, K) / world
    assert torch.allclose(torch.cat(list(grads[:, 0])), p1.grad, atol=1e-6)
    assert torch.allclose(torch.cat(list(grads[:, 1])), z1.grad, atol=1e-6)


# ----------------------------------------------------------------------------
# end to end


@pytest.mark.slow
def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    cfg = small_cfg(dim=64, depth=2, heads=4, lam=0.5, lam_warmup_steps=0)
    g = torch.Generator().manual_seed(0)
    # smooth frames (4x4 noise upsampled), so masked patches follow from their neighbours
    clip = F.interpolate(torch.rand(64, 3, 4, 4, generator=g), size=32, mode="bilinear").view(8, 8, 3, 32, 32)
    model, batch = vicmae.ViCMAE(cfg), vicmae.sample(clip, cfg, g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=cfg.betas, weight_decay=0.0)
    first = model(batch)
    for _ in range(200):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["loss_mask"] < 0.5 * first["loss_mask"]
    assert out["loss_neg"] < 0.05 < math.log(15) < first["loss_neg"]   # chance level is log(2N - 1)
