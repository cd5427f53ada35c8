"""Tests for sigma.py (SIGMA, Salehi et al. 2024): every formula of Sec. 3 against
a reference written here from the paper, plus the sampling, masking and
feature contracts. CPU, tiny shapes; the collapse contrast (Table 7b) is slow."""
import math
import os
import sys
import tempfile
from datetime import timedelta

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sigma  # noqa: E402
import vit  # noqa: E402


def small_cfg(**kw):
    """The tiny preset shrunk further: 32 px, 4 frames (2 time slots of 16 tubes), width 32, depth 1."""
    base = dict(img_size=32, patch=8, num_frames=4, stride=1, clip_len=4, dim=32, depth=1, heads=2,
                decoder_dim=32, decoder_depth=1, decoder_heads=2, mask_ratio=0.75, proj_hidden=(32,),
                feat_dim=16, num_prototypes=8)
    base.update(kw)
    return sigma.Config(**base)


def make_batch(cfg, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    clip = torch.rand(B, cfg.clip_len, 3, cfg.img_size, cfg.img_size, generator=g)
    return sigma.sample(clip, cfg, g)


def sinkhorn_reference(scores, eps, iters=1000):
    """Eq. 3-4 from scratch, in float64 and the log domain: the minimizer of
    <Q, -S> + eps KL(Q || r c^T) with marginals r = 1/K (prototypes), c = 1/B
    (samples) is Q = diag(a) exp(S / eps) diag(b); find log a, log b by
    alternating the two marginal constraints to convergence. -> Q (B, K), total mass 1."""
    S = scores.double() / eps                                       # (B, K)
    B, K = S.shape
    f, g = torch.zeros(B, dtype=torch.float64), torch.zeros(K, dtype=torch.float64)
    for _ in range(iters):
        g = -math.log(K) - torch.logsumexp(S + f[:, None], dim=0)   # columns sum to 1/K
        f = -math.log(B) - torch.logsumexp(S + g[None, :], dim=1)   # rows sum to 1/B
    return torch.exp(S + f[:, None] + g[None, :])


def cosines(B, K, D=16, skew=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(B, D, generator=g) + skew * torch.randn(1, D, generator=g), dim=1)
    C = F.normalize(torch.randn(K, D, generator=g), dim=1)
    return x @ C.t()                                                # (B, K) in [-1, 1]


# ----------------------------------------------------------------------------
# Sinkhorn (Eq. 3-4)


def test_sinkhorn_matches_reference_from_eq_3_4():
    s = cosines(48, 8)
    for eps in (0.05, 0.2):
        q = sigma.sinkhorn(s, eps, n_iters=300)
        ref = sinkhorn_reference(s, eps) * s.shape[0]              # rows sum to 1, as sinkhorn returns
        assert torch.allclose(q.double(), ref, atol=1e-5), (q.double() - ref).abs().max()
    # epsilon is the entropy weight: large -> uniform assignments, small -> nearly hard ones
    assert torch.allclose(sigma.sinkhorn(s, 100.0, 10), torch.full_like(s, 1 / 8), atol=1e-3)
    assert sigma.sinkhorn(s, 0.01, 100).max(dim=1).values.mean() > 0.9


def test_sinkhorn_is_a_diagonal_scaling_of_exp_scores():
    """Whatever the number of iterations, log q - scores / eps = a_i + b_k (the form of Eq. 3's solution)."""
    s, eps = cosines(32, 6, seed=1), 0.1
    for n in (1, 3):
        r = sigma.sinkhorn(s, eps, n).double().log() - s.double() / eps
        centered = r - r.mean(0, keepdim=True) - r.mean(1, keepdim=True) + r.mean()
        assert centered.abs().max() < 1e-4


def test_sinkhorn_marginals_on_skewed_scores():
    s = cosines(512, 32, skew=3.0)                                 # all features near one direction
    used = torch.bincount(s.argmax(1), minlength=32)
    assert (used == 0).sum() >= 8                                  # argmax leaves many prototypes empty
    q = sigma.sinkhorn(s, 0.05, 10)                                # the default iterations
    assert torch.allclose(q.sum(1), torch.ones(512), atol=1e-5)   # every sample's assignment sums to 1
    usage = q.sum(0) * 32 / 512                                    # 1 = uniform prototype usage
    assert (usage - 1).abs().max() < 1e-3, usage


def official_loop(scores, eps, n_iters):
    """The official Sinkhorn (utils.sinkhorn of QUVA-Lab/SIGMA, as SwAV's) written out in float64 in
    its own (K, B) layout: Q = exp(S / eps)^T over its total; n_iters times rows (prototypes) to r = 1/K,
    columns (samples) to c = 1/B; last each column over its sum. -> (B, K)."""
    Q = torch.exp(scores.double() / eps).t()
    Q = Q / Q.sum()
    K, B = Q.shape
    r, c = torch.full((K,), 1 / K, dtype=torch.float64), torch.full((B,), 1 / B, dtype=torch.float64)
    for _ in range(n_iters):
        Q = Q * (r / Q.sum(dim=1))[:, None]
        Q = Q * (c / Q.sum(dim=0))[None, :]
    return (Q / Q.sum(dim=0, keepdim=True)).t()


def test_sinkhorn_is_the_official_loop_at_any_iterations():
    g = torch.Generator().manual_seed(0)
    C = F.normalize(torch.randn(16, 16, generator=g), dim=1)      # K = 16 prototypes
    x = F.normalize(torch.randn(256, 16, generator=g), dim=1)
    x[:64] = F.normalize(C[0] + 0.1 * torch.randn(64, 16, generator=g), dim=1)   # skewed: a quarter on one
    s = x @ C.t()                                                  # (256, 16) cosines
    for n in (1, 3, 10):
        ref = official_loop(s, 0.05, n)
        assert (sigma.sinkhorn(s, 0.05, n).double() - ref).abs().max() < 1e-4, n
    # a per-sample softmax start (the earlier version here) is another algorithm at few iterations
    q = torch.softmax(s / 0.05, dim=1)
    for _ in range(3):
        q = q / q.sum(0)
        q = q / q.sum(1, keepdim=True)
    assert (q.double() - official_loop(s, 0.05, 3)).abs().max() > 0.5


def test_sinkhorn_stable_down_to_the_smallest_epsilon_config_allows():
    s = 50 + cosines(64, 16)                                       # a large offset: only the range matters
    q = sigma.sinkhorn(s, 0.025, 10)
    assert torch.isfinite(q).all() and (q >= 0).all()
    assert torch.allclose(q.sum(1), torch.ones(64), atol=1e-5)
    assert (q.double() - official_loop(s - 50, 0.025, 10)).abs().max() < 1e-4
    with pytest.raises(ValueError, match="sinkhorn_eps"):
        small_cfg(sinkhorn_eps=0.01)


def test_sinkhorn_carries_no_gradient():
    s = cosines(16, 4).requires_grad_(True)
    q = sigma.sinkhorn(s * 2, 0.05, 3)
    assert not q.requires_grad and q.grad_fn is None


def _ddp_worker(rank, tmp, scores, cfg, batch):
    torch.set_num_threads(1)   # forked workers hang with more threads (DISTRIBUTED.md)
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rdzv", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    half = scores.shape[0] // 2
    q = sigma.sinkhorn(scores[rank * half:(rank + 1) * half], 0.05, 10)
    torch.manual_seed(0)
    model = sigma.SIGMA(cfg)
    B = batch["video"].shape[0] // 2
    loss = model({k: v[rank * B:(rank + 1) * B] for k, v in batch.items()})["loss"]
    torch.save({"q": q, "loss": loss.detach()}, f"{tmp}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)   # avoids a rare gloo abort at interpreter shutdown (DISTRIBUTED.md)


def test_sinkhorn_all_reduces_over_ranks():
    """2 gloo ranks with half the rows each == one process with all rows; and
    so the mean of the ranks' losses equals the single-process loss."""
    import torch.multiprocessing as mp
    scores, cfg = cosines(64, 8, skew=1.0), small_cfg()
    batch = make_batch(cfg, B=4)
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_ddp_worker, args=(tmp, scores, cfg, batch), nprocs=2, start_method="fork")
        got = [torch.load(f"{tmp}/rank{r}.pt") for r in range(2)]
    assert torch.allclose(torch.cat([g["q"] for g in got]), sigma.sinkhorn(scores, 0.05, 10), atol=1e-6)
    torch.manual_seed(0)
    single = sigma.SIGMA(cfg)(batch)["loss"]
    assert torch.allclose((got[0]["loss"] + got[1]["loss"]) / 2, single, atol=1e-5)
    assert not torch.distributed.is_initialized()


# ----------------------------------------------------------------------------
# tubes and tube masking (Sec. 4)


def test_tube_masking_shares_the_spatial_mask_and_is_exact():
    noise = torch.rand(3, 100, generator=torch.Generator().manual_seed(0))
    ids_keep, ids_restore, ids_mask, mask = sigma.tube_masking(noise, t=4, ratio=0.9)
    per_slot = mask.view(3, 4, 100)
    assert (per_slot == per_slot[:, :1]).all()                     # the same positions in every time slot
    assert (per_slot.sum(-1) == 90).all()                          # exactly 90% of 100 per slot
    assert ids_keep.shape == (3, 40) and ids_mask.shape == (3, 360)
    assert (mask.gather(1, ids_keep) == 0).all() and (mask.gather(1, ids_mask) == 1).all()
    order = torch.cat([ids_keep, ids_mask], dim=1).gather(1, ids_restore)
    assert (order == torch.arange(400)).all()                      # ids_restore undoes the shuffle


def test_psi_sees_only_visible_tubes():
    cfg = small_cfg()
    model, batch = sigma.SIGMA(cfg), make_batch(cfg)
    out = model.predict(batch)
    x_psi, ids_mask, mask = out.pred, out.ids_mask, out.mask
    # scramble the pixels of every masked tube: Psi's output must not change
    m = mask.view(2, 2, 4, 4)[:, 0].repeat_interleave(8, 1).repeat_interleave(8, 2)   # (B, H, W) pixels
    video = torch.where(m[:, None, None].bool(), torch.rand_like(batch["video"]), batch["video"])
    assert not torch.equal(video, batch["video"])
    assert torch.allclose(model.predict({**batch, "video": video}).pred, x_psi, atol=1e-6)
    assert ids_mask.shape == (2, 2 * 12)                           # 75% of 16 tubes masked in 2 slots


# ----------------------------------------------------------------------------
# the loss (Eq. 2, Eq. 5-7)


@pytest.mark.parametrize("hard, detach", [(False, False), (True, False), (False, True)])
def test_loss_matches_eq_5_to_7(hard, detach):
    """Value and gradients against Eq. 5-7 written here with constant targets."""
    cfg = small_cfg(hard_targets=hard, detach_proto_psi=detach, temperature=0.2)
    torch.manual_seed(0)
    model = sigma.SIGMA(cfg)
    x_psi, x_phi = torch.randn(2, 5, 16, requires_grad=True), torch.randn(2, 5, 16, requires_grad=True)
    out = model.loss(x_psi, x_phi)
    grads = torch.autograd.grad(out["loss"], [x_psi, x_phi, model.prototypes])

    C = F.normalize(model.prototypes, dim=1)
    s_phi = F.normalize(x_phi, dim=-1).flatten(0, 1) @ C.t()                         # Eq. 5: x~ = x^T c
    s_psi = F.normalize(x_psi, dim=-1).flatten(0, 1) @ (C.detach() if detach else C).t()
    q_phi, q_psi = (sigma.sinkhorn(s.detach(), cfg.sinkhorn_eps, cfg.sinkhorn_iters) for s in (s_phi, s_psi))
    if hard:
        q_phi, q_psi = (F.one_hot(q.argmax(1), 8).float() for q in (q_phi, q_psi))
    log_p = lambda s: torch.log(torch.exp(s / 0.2) / torch.exp(s / 0.2).sum(1, keepdim=True))  # Eq. 6
    ce_phi = -(q_psi * log_p(s_phi)).sum(1).mean()                                  # Eq. 5, 7
    ce_psi = -(q_phi * log_p(s_psi)).sum(1).mean()
    ref = ce_phi + ce_psi
    assert torch.allclose(out["loss"], ref, atol=1e-5)
    assert torch.allclose(out["ce_phi"], ce_phi) and torch.allclose(out["ce_psi"], ce_psi)
    for g, r in zip(grads, torch.autograd.grad(ref, [x_psi, x_phi, model.prototypes])):
        assert torch.allclose(g, r, atol=1e-5)                     # so the targets carry no gradient


def test_loss_is_symmetric():
    torch.manual_seed(0)
    model = sigma.SIGMA(small_cfg())
    a, b = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    ab, ba = model.loss(a, b), model.loss(b, a)
    assert torch.allclose(ab["ce_phi"], ba["ce_psi"]) and torch.allclose(ab["ce_psi"], ba["ce_phi"])
    assert not torch.allclose(ab["ce_phi"], ab["ce_psi"])         # the two terms do differ


def test_diagnostics_have_known_answers():
    model = sigma.SIGMA(small_cfg())                               # K = 8
    K, one_hot = 8, F.one_hot(torch.arange(32) % 8, 8).float()     # (32, K), every prototype used equally
    flat, uniform = torch.zeros(2, 16, K), torch.full((32, K), 1 / K)
    d = model.diagnostics(flat, flat, one_hot, one_hot)            # the branches agree exactly
    assert torch.isclose(d["agreement"], torch.tensor(8.0)) and d["spread_phi"] == 0 == d["spread_psi"]
    assert torch.isclose(d["usage_entropy"], torch.tensor(math.log(8))) and d["entropy_q_phi"].abs() < 1e-6
    d = model.diagnostics(flat, flat, uniform, uniform)            # the plateau: q uniform, independent
    assert torch.isclose(d["agreement"], torch.tensor(1.0)) and torch.isclose(d["entropy_q_psi"],
                                                                              torch.tensor(math.log(8)))
    piled = F.one_hot(torch.zeros(32, dtype=torch.long), 8).float()
    d = model.diagnostics(flat, flat, piled, F.one_hot(torch.ones(32, dtype=torch.long), 8).float())
    assert d["usage_entropy"] == 0 and d["agreement"] == 0         # one prototype; never the same one
    s = torch.randn(2, 16, K)
    assert torch.isclose(model.diagnostics(s, 3 * s, uniform, uniform)["spread_psi"],
                         3 * s.std(-1).mean())


def test_psi_warm_up_holds_phi_term_only():
    torch.manual_seed(0)
    model = sigma.SIGMA(small_cfg(psi_warmup_steps=10))
    x_psi, x_phi = torch.randn(2, 5, 16, requires_grad=True), torch.randn(2, 5, 16, requires_grad=True)
    held = model.loss(x_psi, x_phi, torch.tensor(9))
    assert torch.allclose(held["loss"], held["ce_psi"])            # phi's term is out of the loss
    g_psi, g_phi = torch.autograd.grad(held["loss"], [x_psi, x_phi])
    assert g_phi.abs().max() == 0 and g_psi.abs().max() > 0        # phi stays put, Psi learns its clusters
    after = model.loss(x_psi, x_phi, torch.tensor(10))
    assert torch.allclose(after["loss"], after["ce_phi"] + after["ce_psi"])
    assert torch.allclose(model.loss(x_psi, x_phi)["loss"], after["loss"])   # no step: after the warm-up
    assert torch.allclose(model.loss(x_psi, x_phi, 9)["loss"], held["loss"])    # a plain int step too


def test_phi_is_held_from_weight_decay_with_its_term():
    """While the warm-up holds phi's term its gradient is zero, and AdamW would still decay its weights: phi's MLP gets
    its own group, decayed from psi_warmup_steps on (train.py), and nothing else of the model is in it."""
    import methods
    model = sigma.SIGMA(small_cfg(psi_warmup_steps=10))
    groups = methods.param_groups(model, 0.05)
    phi = [p for p in model.projector.parameters() if p.ndim == 2]
    assert len(groups) == 3 and groups[2]["decay_from"] == 10 and groups[2]["weight_decay"] == 0.05
    assert {id(p) for p in groups[2]["params"]} == {id(p) for p in phi}
    for cfg in (small_cfg(psi_warmup_steps=10, hold_phi_decay=False), small_cfg(psi_warmup_steps=0),
                small_cfg(psi_warmup_steps=10, loss="l2")):   # nothing held: the two groups as before
        assert len(methods.param_groups(sigma.SIGMA(cfg), 0.05)) == 2


def test_layer_norms_use_the_code_eps():
    """The official code's LayerNorms (VideoMAE's) use eps 1e-6, torch's default 1e-5."""
    norms = [m for m in sigma.SIGMA(small_cfg()).modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) >= 5 and all(m.eps == 1e-6 for m in norms)


def test_l2_loss_is_eq_2_and_reaches_both_branches():
    model = sigma.SIGMA(small_cfg(loss="l2"))
    assert model.prototypes is None
    a, b = torch.randn(2, 5, 16, requires_grad=True), torch.randn(2, 5, 16, requires_grad=True)
    out = model.loss(a, b)
    assert torch.allclose(out["loss"], ((a - b) ** 2).sum(-1).mean())
    out["loss"].backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0     # both networks move: the collapse of Sec. 3.2


def test_pixels_loss_is_videomae_eq_1():
    """loss="pixels" (Table 7's VideoMAE row, Sec. 3.1 Eq. 1): Psi predicts each masked tube's normalized pixels;
    the loss is the mean squared error over the masked tubes, the targets cut here from the video by hand."""
    cfg = small_cfg(loss="pixels")
    torch.manual_seed(0)
    model, batch = sigma.SIGMA(cfg), make_batch(cfg)
    assert model.projector is None and model.prototypes is None
    out = model.predict(batch)
    x_psi, ids_mask = out.pred, out.ids_mask
    p, k, w = cfg.patch, cfg.tubelet, cfg.img_size // cfg.patch
    errors = []
    for b in range(len(ids_mask)):
        for i in ids_mask[b].tolist():
            slot, (row, col) = i // (w * w), divmod(i % (w * w), w)        # time-major tubes, row-major grid
            tube = batch["video"][b, slot * k:(slot + 1) * k, :, row * p:(row + 1) * p, col * p:(col + 1) * p]
            tube = tube.permute(0, 2, 3, 1).reshape(-1)                    # (frame, row, column, channel)
            target = (tube - tube.mean()) / (tube.var() + 1e-6).sqrt()     # MAE's norm_pix, VideoMAE's target
            errors.append((x_psi[b, i] - target).pow(2).mean())
    assert torch.allclose(model(batch)["loss"], torch.stack(errors).mean(), atol=1e-6)
    assert "assign_psi" not in model.reconstruct(batch)


@pytest.mark.parametrize("loss", ["sinkhorn", "l2", "pixels"])
def test_gradients_reach_every_parameter(loss):
    cfg = small_cfg(loss=loss)
    torch.manual_seed(0)
    model, batch = sigma.SIGMA(cfg), make_batch(cfg)
    out = model(batch)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert all(v.dim() == 0 and not v.requires_grad for k, v in out.items() if k != "loss")
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name   # encoder, decoder, projector, prototypes
    assert torch.equal(model(batch)["loss"], out["loss"].detach())   # forward is a function of its batch


# ----------------------------------------------------------------------------
# sampling, features, display, config, the checkpoint projector


def test_sample_takes_strided_frames_from_the_generator():
    cfg = small_cfg(num_frames=4, stride=3, clip_len=10)
    clip = torch.rand(5, 12, 3, 32, 32)
    b1 = sigma.sample(clip, cfg, torch.Generator().manual_seed(1))
    b2 = sigma.sample(clip, cfg, torch.Generator().manual_seed(1))
    assert all(torch.equal(b1[k], b2[k]) for k in b1)
    assert b1["video"].shape == (5, 4, 3, 32, 32) and b1["noise"].shape == (5, 16)
    assert ((b1["start"] >= 0) & (b1["start"] <= 12 - 10)).all()
    for i in range(5):
        assert torch.equal(b1["video"][i], clip[i, b1["start"][i] + 3 * torch.arange(4)])
    with pytest.raises(ValueError, match="clip_len"):
        sigma.sample(clip[:, :9], cfg, torch.Generator())


def test_features_repeat_tubes_and_use_windows():
    cfg = small_cfg()                                              # stride 1: consecutive frames
    model = sigma.SIGMA(cfg).eval()
    video = torch.rand(2, 11, 3, 32, 40)                           # 2 windows of 4 + a partial one of 3
    f = model.features(video)
    assert f.shape == (2, 11, 4, 5, 32)
    assert torch.equal(f[:, 0], f[:, 1]) and not torch.equal(f[:, 1], f[:, 2])   # one tube = 2 frames
    assert torch.allclose(f[:, 4:8], model.features(video[:, 4:8]), atol=1e-6)   # windows are independent
    assert torch.allclose(f[:, 8:], model.features(video[:, 8:]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model.features(video[:, 0])


def test_features_read_tubes_at_the_training_stride():
    """stride 2: frames 0, 2, 4, 6 form one window (tubes {0, 2}, {4, 6}), frames 1, 3, 5, 7 another."""
    torch.manual_seed(0)
    model = sigma.SIGMA(small_cfg(stride=2, clip_len=7)).eval()
    video = torch.rand(1, 9, 3, 32, 32)
    f = model.features(video)
    assert torch.allclose(f[:, 0::2][:, :4], model.encoder(video[:, 0:8:2]).reshape(1, 2, 4, 4, 32)
                          .repeat_interleave(2, dim=1), atol=1e-6)
    assert torch.allclose(f[:, 1::2], model.encoder(video[:, 1::2]).reshape(1, 2, 4, 4, 32)
                          .repeat_interleave(2, dim=1), atol=1e-6)
    assert torch.equal(f[:, 0], f[:, 2]) and not torch.equal(f[:, 0], f[:, 1])
    assert torch.allclose(f[:, 8], model.features(video[:, 8:9])[:, 0], atol=1e-6)   # frame 8: its own window


def test_reconstruct_gives_cluster_maps_of_masked_tubes():
    cfg = small_cfg()
    model, batch = sigma.SIGMA(cfg), make_batch(cfg)
    out = model.reconstruct(batch)
    mask = out["mask"]
    assert mask.shape == out["assign_psi"].shape == out["assign_phi"].shape == (2, 4, 4, 4)
    assert torch.equal(mask[:, 0], mask[:, 3])                     # tube masking, per frame
    assert ((out["assign_psi"] == -1) == (mask == 0)).all()
    assert out["assign_phi"].min() >= 0 and out["assign_phi"].max() < 8
    assert "assign_psi" not in sigma.SIGMA(small_cfg(loss="l2")).reconstruct(batch)


def test_bad_inputs_and_configs_raise():
    cfg = small_cfg()
    model, batch = sigma.SIGMA(cfg), make_batch(cfg)
    for bad in ({**batch, "video": batch["video"][:, :3]},         # T not a multiple of the tubelet
                {**batch, "noise": batch["noise"][:, :5]},
                {**batch, "video": batch["video"][..., :30]}):
        with pytest.raises(ValueError):
            model(bad)
    for kw in (dict(img_size=30), dict(num_frames=5), dict(mask_ratio=1.0), dict(clip_len=3),
               dict(loss="mse"), dict(dim=40), dict(temperature=0.0), dict(num_prototypes=0)):
        with pytest.raises(ValueError):
            small_cfg(**kw)
    assert sigma.Config.tiny() == sigma.Config() and sigma.Config.small().num_frames == 16


def test_mlp_phi_sees_each_tube_normalized_or_raw():
    """phi = the MLP on each tube's k*p*p*3 values, normalized by the tube's own statistics
    (norm_target, the code's normlize_target) or raw; only the masked tubes when ids are given."""
    for norm in (True, False):
        torch.manual_seed(0)
        model, batch = sigma.SIGMA(small_cfg(norm_target=norm)), make_batch(small_cfg())
        tubes = vit.tubify(batch["video"], 8, 2)                               # (B, t*N, 2*8*8*3)
        x = (tubes - tubes.mean(-1, keepdim=True)) / (tubes.var(-1, keepdim=True) + 1e-6).sqrt() if norm else tubes
        with torch.no_grad():
            assert torch.allclose(model.phi(batch["video"]), model.projector(x), atol=1e-5)
            ids = torch.tensor([[3, 0], [7, 31]])
            assert torch.allclose(model.phi(batch["video"], ids), vit.gather_tokens(model.projector(x), ids), atol=1e-5)


def test_projector_from_a_checkpoint(tmp_path):
    """phi = the frozen encoder of another method's checkpoint: the tokens of each tube's
    first frame (the code's videos[:, ::2]), standardized per channel over the video."""
    torch.manual_seed(0)
    enc = vit.ViT(img_size=32, patch=8, dim=16, depth=1, heads=2)
    state = {"encoder." + k: v for k, v in enc.state_dict().items()}
    state["decoder_pred.weight"] = torch.zeros(3, 3)               # other keys are ignored
    path = tmp_path / "ckpt.pt"
    torch.save({"model": state, "method": "siammae",
                "config": dict(img_size=32, patch=8, dim=16, depth=1, heads=2, mlp_ratio=4.0)}, path)
    cfg = small_cfg(projector=str(path), feat_dim=16)
    model, batch = sigma.SIGMA(cfg), make_batch(cfg)
    video = batch["video"]
    with torch.no_grad():
        x = enc(video[:, ::2].flatten(0, 1))[:, 1:].reshape(2, 2 * 16, 16)   # each tube's first frame (B, t*N, F)
        want = (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)
    assert torch.allclose(model.phi(video), want, atol=1e-5)
    model(batch)["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.frozen_encoder.parameters())
    assert model.prototypes.grad.abs().sum() > 0 and model.projector is None
    with pytest.raises(ValueError, match="no such file"):
        sigma.SIGMA(small_cfg(projector=str(tmp_path / "missing.pt")))
    with pytest.raises(ValueError, match="feat_dim"):
        sigma.SIGMA(small_cfg(projector=str(path), feat_dim=32))
    garbage, evil, other = tmp_path / "garbage.pt", tmp_path / "evil.pt", tmp_path / "other.pt"
    garbage.write_bytes(b"not a checkpoint")
    torch.save({"model": {}, "config": {}, "x": vit.ViT}, evil)      # a class: would run code if unpickled
    torch.save({"config": dict(img_size=32, patch=8, dim=16, depth=1, heads=2)}, other)   # no weights at all
    for bad, message in ((garbage, "not a readable checkpoint"), (evil, "refused: .*never loads such files"),
                         (other, "has no vit.ViT under 'encoder.'")):
        with pytest.raises(ValueError, match=message) as e:
            sigma.SIGMA(small_cfg(projector=str(bad), feat_dim=16))
        assert "\n" not in str(e.value) and "projector" in str(e.value)


# ----------------------------------------------------------------------------
# Table 7b: the l2 loss collapses, the Sinkhorn loss does not


@pytest.mark.slow
def test_collapse_contrast():
    """Same short run on noise clips, both losses; metrics averaged over the last 20 steps."""
    def train(loss, steps=150):
        cfg = small_cfg(loss=loss, num_prototypes=16)
        torch.manual_seed(0)
        model, g = sigma.SIGMA(cfg), torch.Generator().manual_seed(0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
        logs = []
        for step in range(steps):
            out = model(sigma.sample(torch.rand(8, 4, 3, 32, 32, generator=g), cfg, g))
            logs.append({k: v.item() for k, v in out.items()})
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
        return logs[0], {k: sum(d[k] for d in logs[-20:]) / 20 for k in logs[0]}

    first, last = train("l2")
    assert last["phi_std"] < 0.1 * first["phi_std"]                # phi -> one constant (Eq. 2)
    first, last = train("sinkhorn")
    assert last["usage_entropy"] > 0.8 * math.log(16)              # prototypes stay in use (Eq. 3-4)
    assert last["phi_std"] > 0.5 * first["phi_std"]


def test_oracle_script_runs(tmp_path):
    """scripts/sigma_oracle.py (the plateau diagnosis in docs/experiments.md) still runs."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, os.path.join(root, "scripts", "sigma_oracle.py"), "--oracle", "kind",
                          "--pattern", "--probe", "--steps", "2", "--log-every", "1", "--batch-size", "2",
                          "--set", "depth=1"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("agreement") == 2 and "token-kind probe" in out.stdout
