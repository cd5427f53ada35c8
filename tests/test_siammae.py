"""Tests for siammae.py: each one fails if the piece of Sec. 3 it names were wrong."""
import pytest
import torch

import siammae as S
import vit


def cfg_(**kw):
    """The tiny preset shrunk for speed: 32 px, patch 4 -> still 8x8 = 64 tokens, 3 visible."""
    base = dict(img_size=32, patch=4, dim=32, depth=1, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    return S.Config(**{**base, **kw})


def batch_(cfg, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return S.sample(torch.rand(B, cfg.clip_len, 3, cfg.img_size, cfg.img_size, generator=g), cfg, g)


def model_(cfg, seed=0):
    torch.manual_seed(seed)
    return S.SiamMAE(cfg).eval()


def masks_of(batch, cfg):
    B, N = batch["noise"].shape
    return vit.random_masking(B, N, cfg.mask_ratio, noise=batch["noise"])      # ids_keep, ids_restore, mask


def patch_box(i, w, p):
    """Pixel rows and columns of token i (row-major) as slices."""
    r, c = divmod(i, w)
    return slice(r * p, (r + 1) * p), slice(c * p, (c + 1) * p)


# ----------------------------------------------------------------------------
# config and sampling


def test_config_presets_and_validation():
    assert S.Config.tiny() == S.Config()
    small = S.Config.small()
    assert (small.img_size, small.patch, small.dim, small.depth, small.heads) == (224, 16, 384, 12, 6)
    assert (small.gap_min, small.gap_max, small.mask_ratio, small.blr) == (4, 48, 0.95, 1.5e-4)
    assert small.clip_len >= small.gap_max + 1 and S.Config().clip_len >= S.Config().gap_max + 1
    for bad in (dict(img_size=60), dict(mask_ratio=1.0), dict(encoder="both"), dict(decoder="self"),
                dict(gap_min=0), dict(gap_min=9, gap_max=8), dict(clip_len=8)):
        with pytest.raises(ValueError):
            S.Config(**bad)


def test_sample_picks_two_frames_a_gap_apart_with_noise():
    cfg = cfg_()
    B, T = 6, cfg.clip_len
    clip = torch.arange(T).float().view(1, T, 1, 1, 1).expand(B, T, 3, 32, 32) / T + \
        torch.arange(B).float().view(B, 1, 1, 1, 1) * 10                     # frame (b, t) is the constant t/T + 10 b
    out = S.sample(clip, cfg, torch.Generator().manual_seed(1))
    for b in range(B):
        t1, t2 = out["t1"][b].item(), out["t2"][b].item()
        assert cfg.gap_min <= t2 - t1 <= cfg.gap_max and 0 <= t1 and t2 < T
        assert torch.equal(out["f1"][b], clip[b, t1]) and torch.equal(out["f2"][b], clip[b, t2])
    assert out["noise"].shape == (B, 64) and out["noise"].dtype == torch.float32
    again = S.sample(clip, cfg, torch.Generator().manual_seed(1))
    other = S.sample(clip, cfg, torch.Generator().manual_seed(2))
    assert all(torch.equal(out[k], again[k]) for k in out)                    # all randomness from the generator
    assert not torch.equal(out["noise"], other["noise"])


def test_sample_gap_is_uniform_and_start_covers_the_clip():
    # Sec. 3: "selecting a random value from the predetermined range of frame gaps"; a
    # uniform pair f1 < f2 would instead make small gaps more likely (triangular).
    cfg = cfg_(gap_min=2, gap_max=8, clip_len=16)
    n, T = 7000, 16
    out = S.sample(torch.rand(n, T, 3, 4, 4), cfg, torch.Generator().manual_seed(0))
    gap = out["t2"] - out["t1"]
    counts = torch.bincount(gap, minlength=9)[2:9].float()
    assert torch.all((counts - n / 7).abs() < 0.12 * n / 7), counts
    for g in (2, 8):
        t1 = out["t1"][gap == g]
        assert t1.min() == 0 and t1.max() == T - 1 - g                         # every start that fits is used


def test_sample_rejects_bad_clips():
    cfg = cfg_()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="gap"):
        S.sample(torch.rand(1, cfg.gap_max, 3, 32, 32), cfg, g)               # one frame short of the widest gap
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        S.sample(torch.rand(16, 3, 32, 32), cfg, g)
    with pytest.raises(ValueError, match="divisible"):
        S.sample(torch.rand(1, 16, 3, 30, 32), cfg, g)


# ----------------------------------------------------------------------------
# masking and the encoder


def test_asymmetric_masking_counts_and_fresh_masks():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=4)
    ids_keep, ids_restore, mask = masks_of(batch, cfg)
    x1, x2 = model.encode(batch["f1"], batch["f2"], ids_keep)
    assert x1.shape == (4, 1 + 64, 32)                                        # f1: all 64 tokens (0% masked)
    assert x2.shape == (4, 1 + int(64 * 0.05), 32)                            # f2: int(N * 0.05) = 3 visible
    rec = model.reconstruct(batch)
    assert torch.equal(rec["mask"].sum(1), torch.full((4,), 64.0 - 3))
    third = batch["noise"].sort(1).values[:, 2:3]                             # the 3 smallest noises are kept
    assert torch.equal(rec["mask"], (batch["noise"] > third).float())
    assert len({tuple(m.tolist()) for m in rec["mask"]}) == 4                 # a fresh mask per sample


@pytest.mark.parametrize("encoder", ["siamese", "joint"])
def test_masked_f2_pixels_never_reach_the_model(encoder):
    # the information bottleneck (Sec. 3): only f2's visible patches are encoded
    cfg = cfg_(encoder=encoder)
    model, batch = model_(cfg), batch_(cfg, B=2)
    _, _, mask = masks_of(batch, cfg)
    pred = model.predict(batch).pred
    hidden, shown = [torch.nonzero(mask[0] == v)[0].item() for v in (1, 0)]
    for i, should_change in ((hidden, False), (shown, True)):
        f2 = batch["f2"].clone()
        rows, cols = patch_box(i, 8, cfg.patch)
        f2[0, :, rows, cols] = torch.rand(3, cfg.patch, cfg.patch)
        pred2 = model.predict({**batch, "f2": f2}).pred
        assert torch.equal(pred2[1], pred[1])                                  # other samples untouched
        assert (not torch.allclose(pred2[0], pred[0], atol=1e-6)) == should_change


def test_siamese_encodes_frames_alone_joint_does_not():
    for encoder, f1_depends_on_f2 in (("siamese", False), ("joint", True)):
        cfg = cfg_(encoder=encoder)
        model, batch = model_(cfg), batch_(cfg, B=2)
        ids_keep, _, _ = masks_of(batch, cfg)
        x1, _ = model.encode(batch["f1"], batch["f2"], ids_keep)
        x1b, _ = model.encode(batch["f1"], torch.rand_like(batch["f2"]), ids_keep)
        assert (not torch.allclose(x1, x1b, atol=1e-6)) == f1_depends_on_f2
        if encoder == "siamese":                                              # = the per-frame test-time features
            feats = model.features(batch["f1"][:, None])                      # (B, 1, h, w, D)
            assert torch.allclose(feats.reshape(2, 64, 32), x1[:, 1:], atol=1e-6)


# ----------------------------------------------------------------------------
# decoder and loss


@pytest.mark.parametrize("decoder", ["cross_self", "cross", "joint"])
def test_decoder_wiring(decoder):
    # Table 2b: every decoder reads f1; only "cross" predicts each f2 patch on its own
    cfg = cfg_(decoder=decoder)
    model, batch = model_(cfg), batch_(cfg, B=2)
    ids_keep, ids_restore, mask = masks_of(batch, cfg)
    x1, x2 = model.encode(batch["f1"], batch["f2"], ids_keep)
    pred = model.decode(x1, x2, ids_restore, 8, 8)
    assert pred.shape == (2, 64, cfg.patch ** 2 * 3)
    assert not torch.allclose(model.decode(x1 + torch.randn_like(x1), x2, ids_restore, 8, 8), pred, atol=1e-6)
    x2b = x2.clone()
    x2b[:, 1] += torch.randn(32)                                              # perturb f2's first visible token
    pred_b = model.decode(x1, x2b, ids_restore, 8, 8)
    others = torch.ones(2, 64, dtype=torch.bool)
    others[torch.arange(2), ids_keep[:, 0]] = False                           # every patch but the perturbed one
    assert (not torch.allclose(pred_b[others], pred[others], atol=1e-6)) == (decoder != "cross")
    assert not torch.allclose(pred_b[~others], pred[~others], atol=1e-6)


@pytest.mark.parametrize("decoder", ["cross_self", "cross", "joint"])
def test_decoder_input_slots(decoder):
    # Sec. 3 "Decoder": with no blocks, f2's slot i holds its projected visible token or
    # the [MASK] token, plus the decoder position of i, and the head reads f2's slots only
    cfg = cfg_(decoder=decoder, decoder_depth=0)
    model, batch = model_(cfg), batch_(cfg, B=2)
    with torch.no_grad():
        model.mask_token.normal_()
    ids_keep, ids_restore, mask = masks_of(batch, cfg)
    x1, x2 = model.encode(batch["f1"], batch["f2"], ids_keep)
    pred = model.decode(x1, x2, ids_restore, 8, 8)
    assert torch.equal(model.decode(torch.randn_like(x1), x2, ids_restore, 8, 8), pred)
    pos = vit.sincos_pos_2d(8, 8, 32)                                         # (N, Dd)
    head = lambda t: model.decoder_pred(model.decoder_norm(t))
    want = head(model.mask_token[0] + pos).expand(2, -1, -1).clone()           # (B, N, P) all [MASK]
    for b in range(2):
        for j, i in enumerate(ids_keep[b].tolist()):
            want[b, i] = head(model.decoder_embed(x2[b, 1 + j]) + pos[i])
    assert torch.allclose(pred, want, atol=1e-5)


def reference_loss(pred, f2, mask, p, norm_pix):
    """Sec. 3 from the formula, patch by patch with explicit slicing."""
    B, _, H, W = f2.shape
    w, total, count = W // p, 0.0, 0
    for b in range(B):
        for i in range((H // p) * w):
            if mask[b, i] == 0:
                continue
            rows, cols = patch_box(i, w, p)
            x = f2[b, :, rows, cols].permute(1, 2, 0).reshape(-1)             # (p*p*3,) as (row, col, channel)
            if norm_pix:
                x = (x - x.mean()) / torch.sqrt(x.var() + 1e-6)
            total, count = total + ((pred[b, i] - x) ** 2).mean(), count + 1
    return total / count


@pytest.mark.parametrize("norm_pix", [True, False])
def test_loss_matches_the_formula_on_masked_patches_only(norm_pix):
    cfg = cfg_(norm_pix_loss=norm_pix)
    model, batch = model_(cfg), batch_(cfg, B=2)
    out = model.predict(batch)
    pred, mask = out.pred, out.mask
    ref = reference_loss(pred, batch["f2"], mask, cfg.patch, norm_pix)
    assert torch.allclose(model(batch)["loss"], ref, atol=1e-5)
    loss = model.loss(pred, batch["f2"], mask)["loss"]
    assert loss.dtype == torch.float32 and loss.dim() == 0
    shown, hidden = torch.nonzero(mask[0] == 0)[0].item(), torch.nonzero(mask[0] == 1)[0].item()
    for i, should_change in ((shown, False), (hidden, True)):
        pred2 = pred.clone()
        pred2[0, i] += 3.0
        assert (model.loss(pred2, batch["f2"], mask)["loss"] != loss) == should_change


@pytest.mark.parametrize("encoder", ["siamese", "joint"])
@pytest.mark.parametrize("decoder", ["cross_self", "cross", "joint"])
def test_gradients_reach_every_parameter(encoder, decoder):
    cfg = cfg_(encoder=encoder, decoder=decoder)
    model, batch = model_(cfg).train(), batch_(cfg, B=2)
    out = model(batch)
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_forward_is_a_pure_function_of_its_batch_and_logs_detached_scalars():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg)
    a, b = model(batch), model({**batch, "step": 7})
    assert torch.equal(a["loss"], b["loss"])
    assert a["loss_copy_f1"].dim() == 0 and not a["loss_copy_f1"].requires_grad
    still = model({**batch, "f1": batch["f2"]})                               # nothing moved: copying is perfect
    assert still["loss_copy_f1"].item() == 0.0


# ----------------------------------------------------------------------------
# features, reconstruction, bad input


def test_features_are_per_frame_for_any_length_and_size():
    cfg = cfg_()
    model = model_(cfg)
    video = torch.rand(2, 3, 3, 24, 40)
    feats = model.features(video)
    assert feats.shape == (2, 3, 6, 10, 32)
    video2 = video.clone()
    video2[:, 1] = torch.rand(2, 3, 24, 40)
    feats2 = model.features(video2)
    assert torch.allclose(feats2[:, [0, 2]], feats[:, [0, 2]], atol=1e-6)
    assert not torch.allclose(feats2[:, 1], feats[:, 1], atol=1e-3)
    assert model.features(video[:, :1]).shape == (2, 1, 6, 10, 32)


def test_reconstruct_denormalizes_and_pastes_visible_patches():
    t = torch.rand(4, 5, 48)
    assert torch.allclose(vit.denormalize_patches(vit.normalize_patches(t), t), t, atol=1e-5)
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=2)
    rec = model.reconstruct(batch)
    assert rec["pred"].shape == rec["paste"].shape == (2, 3, 32, 32)
    pix = rec["mask"].view(2, 8, 1, 8, 1).expand(2, 8, 4, 8, 4).reshape(2, 1, 32, 32).bool()  # (B, 1, H, W)
    assert torch.equal(torch.where(pix, 0, rec["paste"]), torch.where(pix, 0, batch["f2"]))
    assert torch.equal(torch.where(pix, rec["paste"], 0), torch.where(pix, rec["pred"], 0))
    pred = model.predict(batch).pred                                          # pred is in the patches' own statistics
    assert torch.allclose(vit.patch_targets(rec["pred"], cfg.patch)[rec["mask"].bool()],
                          vit.normalize_patches(pred)[rec["mask"].bool()], atol=1e-3)


def test_bad_input_raises_value_error():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=2)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model({**batch, "f1": batch["f1"][0]})                                 # wrong rank
    with pytest.raises(ValueError, match="divisible"):
        model({**batch, "f2": batch["f2"][..., :30]})
    with pytest.raises(ValueError, match="noise"):
        model({**batch, "noise": batch["noise"][:, :10]})
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model.features(batch["f1"])


# ----------------------------------------------------------------------------
# end to end


def moving_square_clips(B, T, size, g, side=12, speed=1):
    """A noise square moving over a static noise background (the toy world)."""
    clip = torch.rand(B, 1, 3, size, size, generator=g).repeat(1, T, 1, 1, 1)
    for b in range(B):
        sq = torch.rand(3, side, side, generator=g)
        y0, x0 = torch.randint(0, size - side, (2,), generator=g).tolist()
        for t in range(T):
            y, x = (y0 + speed * t) % (size - side), (x0 + speed * t) % (size - side)
            clip[b, t, :, y:y + side, x:x + side] = sq
    return clip


@pytest.mark.slow
def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    cfg = cfg_(dim=64, depth=2, heads=4, decoder_dim=64, decoder_heads=4)
    g = torch.Generator().manual_seed(0)
    batch = S.sample(moving_square_clips(4, cfg.clip_len, 32, g), cfg, g)
    model = S.SiamMAE(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=cfg.betas, weight_decay=cfg.weight_decay)
    losses = []
    for _ in range(300):  # ~15 s of one core: a plateau at ~1 (the patch mean), then it memorizes
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    _, _, mask = masks_of(batch, cfg)
    zero = model.loss(torch.zeros(4, 64, 48), batch["f2"], mask)["loss"].item()   # predicting the patch mean: ~1
    assert losses[-1] < 0.5 * losses[0] and losses[-1] < 0.7 * zero, (losses[0], losses[-1], zero)
