"""Tests for rvm.py: each one fails if the piece of Sec. 3 it names were wrong."""
import gc

import pytest
import torch

import data
import rvm as R
import vit


def cfg_(**kw):
    """The tiny preset shrunk for speed: 32 px, patch 4 -> still 8x8 = 64 tokens, 3 visible."""
    base = dict(img_size=32, patch=4, dim=32, depth=1, heads=2, core_depth=1, decoder_dim=32, decoder_depth=1,
                decoder_heads=2, n_source=3, n_targets=2, delta_min=1, delta_max=4, clip_len=8, max_delta=8)
    return R.Config(**{**base, **kw})


def batch_(cfg, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return R.sample(torch.rand(B, cfg.clip_len, 3, cfg.img_size, cfg.img_size, generator=g), cfg, g)


def model_(cfg, seed=0):
    torch.manual_seed(seed)
    return R.RVM(cfg).eval()


def patch_box(i, w, p):
    """Pixel rows and columns of token i (row-major) as slices."""
    r, c = divmod(i, w)
    return slice(r * p, (r + 1) * p), slice(c * p, (c + 1) * p)


# ----------------------------------------------------------------------------
# config and sampling


def test_config_presets_and_validation():
    assert R.Config.tiny() == R.Config()
    tiny, small = R.Config.tiny(), R.Config.small()
    assert (tiny.img_size, tiny.patch, tiny.dim, tiny.depth, tiny.heads) == (64, 8, 64, 1, 2)
    # the default noise square wraps around the frame in size / speed frames: no target may be that far
    # after a source frame, or it is a copy of it (the last target is n_source - 1 + delta_max after the first)
    o = data.SyntheticVideos("noise_square", 1, tiny.img_size).options
    assert o["lattice"] == o["speed"] == tiny.patch and tiny.n_source + tiny.delta_max <= tiny.img_size // o["speed"]
    assert (small.img_size, small.patch, small.dim, small.depth, small.heads) == (256, 16, 384, 12, 6)
    assert (small.n_source, small.n_targets, small.delta_min, small.delta_max, small.mask_ratio) == (4, 4, 4, 48, 0.95)
    for c in (tiny, small):
        assert c.clip_len >= c.n_source + c.delta_max and c.delta_max < c.max_delta
    for bad in (dict(img_size=30), dict(mask_ratio=1.0), dict(core="lstm"), dict(n_source=0), dict(delta_min=0),
                dict(delta_min=5, delta_max=4), dict(max_delta=4), dict(clip_len=6)):
        with pytest.raises(ValueError):
            cfg_(**bad)


def test_sample_picks_consecutive_sources_and_targets_delta_after_the_last():
    cfg = cfg_()
    B, T, S, K = 6, cfg.clip_len, cfg.n_source, cfg.n_targets
    clip = torch.arange(T).float().view(1, T, 1, 1, 1).expand(B, T, 3, 32, 32) / T + \
        torch.arange(B).float().view(B, 1, 1, 1, 1) * 10                     # frame (b, t) is the constant t/T + 10 b
    out = R.sample(clip, cfg, torch.Generator().manual_seed(1))
    assert out["source"].shape == (B, S, 3, 32, 32) and out["target"].shape == (B, K, 3, 32, 32)
    assert out["delta"].shape == (B, K) and out["delta"].dtype == torch.int64 and out["noise"].shape == (B, K, 64)
    for b in range(B):
        ts, tt = out["t_source"][b], out["t_target"][b]
        assert torch.equal(ts, ts[0] + torch.arange(S)) and ts[0] >= 0            # consecutive
        assert torch.equal(tt, ts[-1] + out["delta"][b]) and tt.max() < T          # delta after the LAST source
        assert torch.equal(out["source"][b], clip[b, ts]) and torch.equal(out["target"][b], clip[b, tt])
    again = R.sample(clip, cfg, torch.Generator().manual_seed(1))
    other = R.sample(clip, cfg, torch.Generator().manual_seed(2))
    assert all(torch.equal(out[k], again[k]) for k in out)                    # all randomness from the generator
    assert not torch.equal(out["noise"], other["noise"])


def test_sample_deltas_are_uniform_and_independent_per_target():
    cfg = cfg_(delta_min=1, delta_max=4, clip_len=8)
    n = 4000
    out = R.sample(torch.rand(n, 8, 3, 4, 4), cfg, torch.Generator().manual_seed(0))
    counts = torch.bincount(out["delta"].flatten(), minlength=5)[1:].float()
    assert torch.all((counts - 2 * n / 4).abs() < 0.1 * 2 * n / 4), counts
    assert (out["delta"][:, 0] != out["delta"][:, 1]).float().mean() > 0.6   # not one delta per clip (3/4 expected)
    assert out["t_source"][:, 0].min() == 0 and out["t_source"][:, 0].max() == 8 - 3 - 4   # every start that fits


def test_sample_rejects_bad_clips():
    cfg = cfg_()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="clip_len"):
        R.sample(torch.rand(1, cfg.n_source + cfg.delta_max - 1, 3, 32, 32), cfg, g)   # one frame short
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        R.sample(torch.rand(8, 3, 32, 32), cfg, g)


# ----------------------------------------------------------------------------
# the recurrent core (Sec. 3.2)


def test_gru_step_is_the_four_equations():
    torch.manual_seed(0)
    core = R.GatedTransformerCore(dim=16, depth=2, heads=2, mlp_ratio=2.0)
    with torch.no_grad():
        core.state_scale.uniform_(0.5, 1.5)                                    # so a missing scale would show
    e, s = torch.randn(2, 5, 16), torch.randn(2, 5, 16) * 3 + 1
    W = (core.w_input_update, core.w_state_update, core.w_input_reset, core.w_state_reset)   # W_e^u W_s^u W_e^r W_s^r
    Weu, Wsu, Wer, Wsr = (m.weight for m in W)
    u = torch.sigmoid(e @ Weu.T + s @ Wsu.T)
    r = torch.sigmoid(e @ Wer.T + s @ Wsr.T)
    ln = (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, unbiased=False, keepdim=True) + 1e-4) * core.state_scale
    h = core.tx(e, r * ln)                                                     # Tx(q = e_t, kv = r_t * LN(s_{t-1}))
    assert torch.allclose(core(e, s), (1 - u) * s + u * h, atol=1e-5)
    assert all(m.bias is None for m in W)                                      # bias-free W
    # W acts on the feature dimension, shared across tokens: permuting tokens permutes the gates
    # (Tx is permutation-equivariant too: the core itself adds no positions)
    perm = torch.randperm(5)
    assert torch.allclose(core(e[:, perm], s[:, perm]), core(e, s)[:, perm], atol=1e-5)


def test_the_reset_gate_scales_what_tx_reads():
    # u -> 1: s_t = Tx(e_t, r * LN(s_{t-1})). The keys and values reach Tx as they are (the official block), so a
    # reset gate of 0.05 shows 1/20 of the memory; a LayerNorm on them would rescale r * LN(s) back to LN(s).
    torch.manual_seed(0)
    core = R.GatedTransformerCore(dim=16, depth=1, heads=2, mlp_ratio=2.0)
    e, s = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    gate = lambda v: (lambda _: torch.full_like(e, v))             # a W whose gate is sigmoid(v + W_s s)
    step = lambda r, s: R.gru_step(e, s, gate(60.0), lambda x: 0 * x, gate(r), lambda x: 0 * x, core.state_norm,
                                   core.tx)
    with torch.no_grad():
        blank, whole, faint = core.tx(e, torch.zeros_like(e)), step(60.0, s), step(-3.0, s)   # r = 1 / 0.047
        assert not torch.allclose(faint, whole, atol=1e-3)
        assert (faint - blank).norm() < 0.5 * (whole - blank).norm()
        assert torch.allclose(step(-60.0, s), blank, atol=1e-5) and torch.allclose(step(-60.0, 5 * s), blank, atol=1e-5)


def test_initial_state_is_zero_and_core_unrolls_from_it():
    cfg = cfg_()
    model = model_(cfg)
    s0 = model.init_state(2)
    assert s0.shape == (2, 1 + 64, cfg.dim) and torch.count_nonzero(s0) == 0   # per token, [CLS] included
    x = torch.randn(2, 3, 1 + 64, cfg.dim)
    with torch.no_grad():
        o, last = model.unroll(x)
        s1 = model.core(x[:, 0], torch.zeros(2, 65, cfg.dim))
        s2 = model.core(x[:, 1], s1)
    assert torch.allclose(o[:, 0], s1, atol=1e-6) and torch.allclose(o[:, 1], s2, atol=1e-6)   # o_t = s_t
    assert torch.equal(last, o[:, -1])


def test_update_gate_shut_freezes_the_state():
    cfg = cfg_()
    model = model_(cfg)
    video, s = torch.rand(1, 5, 3, 32, 32), torch.randn(1, 65, cfg.dim)
    with torch.no_grad():
        _, moved = model.step(video[:, 0], s)
        assert not torch.allclose(moved, s)                                    # control: normally the state moves
        model.encoder.norm.weight.zero_()
        model.encoder.norm.bias.fill_(1.0)                                     # every e_t is the all-ones vector
        model.core.w_state_update.weight.zero_()
        model.core.w_input_update.weight.fill_(-10.0)                          # W_e^u e_t = -10 D: u_t = 0
        state = s
        for t in range(5):
            _, state = model.step(video[:, t], state)
            assert torch.equal(state, s)                                       # s_t = (1 - 0) s_{t-1} + 0 h_t
    assert torch.count_nonzero(model.features(video)) == 0                     # and from s_0 = 0 it stays 0


def test_features_are_causal():
    model = model_(cfg_())
    video = torch.rand(2, 6, 3, 32, 32)
    feats = model.features(video)
    assert feats.shape == (2, 6, 8, 8, 32)
    t = 2
    later = video.clone()
    later[:, t + 1:] = torch.rand(2, 6 - t - 1, 3, 32, 32)
    assert torch.equal(model.features(later)[:, :t + 1], feats[:, :t + 1])   # the future does not leak back
    now = video.clone()
    now[:, t] = torch.rand(2, 3, 32, 32)
    changed = model.features(now)
    assert torch.equal(changed[:, :t], feats[:, :t])
    for k in range(t, 6):                                                      # frame t is remembered afterwards
        assert not torch.allclose(changed[:, k], feats[:, k], atol=1e-4)


def test_streaming_equals_batch():
    model = model_(cfg_())
    video = torch.rand(2, 7, 3, 32, 32)
    feats = model.features(video)
    with torch.no_grad():
        # training path: all frames through the encoder at once, then the core unrolled
        x = model.encoder(video.flatten(0, 1)).view(2, 7, 65, -1)
        o, _ = model.unroll(x)
        # streaming in two chunks, the state handed over between them
        state, chunks = None, []
        for t in range(7):
            f, state = model.step(video[:, t], state)
            chunks.append(f)
        _, mid = model.unroll(x[:, :4])
        rest, _ = model.unroll(x[:, 4:], mid)
    assert torch.allclose(o[:, :, 1:].reshape(feats.shape), feats, atol=1e-5)
    assert torch.allclose(torch.stack(chunks, 1), feats, atol=1e-5)
    assert torch.allclose(rest, o[:, 4:], atol=1e-5)


def test_features_memory_is_flat_in_time():
    # the point of a recurrent model: after any number of frames, the same tensors are alive
    # (counted at each core step; features encodes frames in chunks of 16, so compare the same
    # place in the first and the fourth chunk)
    model = model_(cfg_())
    calls, counts, core_step = [], {}, model.core.forward

    def counting_core_step(e, s):
        calls.append(1)
        if len(calls) in (3, 51):
            gc.collect()
            counts[len(calls)] = sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))
        return core_step(e, s)
    model.core.forward = counting_core_step
    model.features(torch.rand(1, 64, 3, 32, 32))
    assert len(calls) == 64 and counts[51] == counts[3], counts


def test_self_attention_core_sees_all_frames_and_their_order():
    cfg = cfg_(core="sa")
    model = model_(cfg)
    assert not hasattr(model.core, "w_input_update") and len(model.core.blocks) == cfg.core_depth
    video = torch.rand(1, 4, 3, 32, 32)
    feats = model.features(video)
    later = video.clone()
    later[:, 3] = torch.rand(3, 32, 32)
    assert not torch.allclose(model.features(later)[:, 0], feats[:, 0], atol=1e-4)   # full attention, not causal
    same = video[:, :1].repeat(1, 2, 1, 1, 1)                                  # two identical frames
    f = model.features(same)
    assert not torch.allclose(f[:, 0], f[:, 1], atol=1e-4)                     # told apart by the time encoding
    with pytest.raises(ValueError, match="core='gru'"):
        model.step(video[:, 0])


@pytest.mark.parametrize("dim, depth, heads", [(64, 1, 2), (384, 4, 6), (32, 2, 2), (32, 3, 2)])   # tiny, small
def test_self_attention_core_has_the_gated_cores_parameters(dim, depth, heads):
    """Table 3b matches the two cores in layers and parameters: within 5%, at the same depth (unmatched, the
    self-attention core had 60-71% of them)."""
    count = lambda m: sum(p.numel() for p in m.parameters())
    gru, sa = R.GatedTransformerCore(dim, depth, heads, 4.0), R.SelfAttentionCore(dim, depth, heads, 4.0)
    assert len(sa.blocks) == len(gru.blocks) == depth
    assert abs(count(sa) / count(gru) - 1) < 0.05
    assert count(R.SelfAttentionCore(dim, depth, heads, 4.0, match=False)) < 0.75 * count(gru)   # legacy runs


def test_layer_norms_use_the_official_eps():
    """The official code's LayerNorms use eps 1e-6 (torch's default is 1e-5); the state's LN keeps its 1e-4."""
    for core in ("gru", "sa"):
        norms = [m for m in model_(cfg_(core=core)).modules() if isinstance(m, torch.nn.LayerNorm)]
        assert len(norms) >= 6 and all(m.eps == 1e-6 for m in norms)
    assert all(m.eps == 1e-5 for m in model_(cfg_(norm_eps=1e-5)).modules() if isinstance(m, torch.nn.LayerNorm))


# ----------------------------------------------------------------------------
# masking, decoder, loss (Sec. 3.1)


def test_the_decoders_layer_norm_on_its_keys_values_is_a_switch():
    """decoder_norm_kv=False is the official decoder block: keys/values are the embedded core outputs as they are, so
    their scale reaches the attention; True (the default: the tiny model learns the square only with it) normalizes
    them, and the output is blind to their scale."""
    assert R.Config().decoder_norm_kv and R.Config.small().decoder_norm_kv
    for norm_kv in (False, True):
        block = model_(cfg_(decoder_norm_kv=norm_kv)).decoder_blocks[0]
        y, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
        with torch.no_grad():
            same = torch.allclose(block(y, ctx), block(y, 3 * ctx + 1), atol=1e-5)
        assert same == norm_kv and isinstance(block.norm_kv, torch.nn.LayerNorm) == norm_kv


def test_asymmetric_masking_and_hidden_target_pixels_never_reach_the_model():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=2)
    B, K, N = batch["noise"].shape
    ids_keep, _, mask = vit.random_masking(B * K, N, cfg.mask_ratio, noise=batch["noise"].flatten(0, 1))
    x_src, x_tgt = model.encode(batch["source"], batch["target"], ids_keep)
    assert x_src.shape == (2, cfg.n_source, 1 + 64, 32)                        # sources: all 64 tokens
    assert x_tgt.shape == (2, K, 1 + int(64 * 0.05), 32)                       # targets: int(N * 0.05) = 3 visible
    out = model.predict(batch)
    pred, m = out.pred, out.mask
    assert torch.equal(m.sum(-1), torch.full((2, K), 64.0 - 3)) and torch.equal(m.flatten(0, 1), mask)
    hidden, shown = [torch.nonzero(m[0, 1] == v)[0].item() for v in (1, 0)]
    for i, should_change in ((hidden, False), (shown, True)):
        target = batch["target"].clone()
        rows, cols = patch_box(i, 8, cfg.patch)
        target[0, 1, :, rows, cols] = torch.rand(3, cfg.patch, cfg.patch)
        pred2 = model.predict({**batch, "target": target}).pred
        assert torch.equal(pred2[1], pred[1]) and torch.equal(pred2[0, 0], pred[0, 0])   # other targets untouched
        assert (not torch.allclose(pred2[0, 1], pred[0, 1], atol=1e-6)) == should_change


def test_decoder_reads_all_source_frames():
    # keys/values are the core outputs of ALL source frames, concatenated (not only the last state)
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=1)
    ids_keep, ids_restore, _ = vit.random_masking(2, 64, cfg.mask_ratio, noise=batch["noise"].flatten(0, 1))
    with torch.no_grad():
        x_src, x_tgt = model.encode(batch["source"], batch["target"], ids_keep)
        o, _ = model.unroll(x_src)
        a = model.decode(o, x_tgt, ids_restore, batch["delta"], 8, 8)
        o2 = o.clone()
        o2[:, 0] = torch.randn_like(o2[:, 0])                                  # the first source frame's outputs only
        b = model.decode(o2, x_tgt, ids_restore, batch["delta"], 8, 8)
    assert torch.allclose(a, model.predict(batch).pred, atol=1e-6) and not torch.allclose(a, b, atol=1e-4)


def test_targets_sharing_the_sources_keys_values_train_as_with_a_copy_each():
    """The K targets of a clip attend to one copy of the core's outputs (vit.CrossBlock groups their queries); before,
    each read its own expanded copy. Same losses and parameters, step for step, over a few AdamW steps."""
    class Expanded(R.RVM):   # the decoder as it was: the context expanded to every target
        def decode(self, o_src, x_tgt, ids_restore, delta, h, w):
            B, K = x_tgt.shape[:2]
            y = self.decoder_tokens(x_tgt.flatten(0, 1), ids_restore, delta.flatten(), h, w)
            ctx = self.decoder_embed(o_src.flatten(1, 2))[:, None].expand(-1, K, -1, -1).flatten(0, 1)
            for block in self.decoder_blocks:
                y = block(y, ctx)
            return self.decoder_pred(self.decoder_norm(y))[:, 1:].view(B, K, h * w, -1)
    cfg = cfg_(n_targets=3)
    losses = []
    for kind in (R.RVM, Expanded):
        torch.manual_seed(0)
        model = kind(cfg).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        losses.append([])
        for step in range(4):
            loss = model(batch_(cfg, seed=step))["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses[-1].append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5) and len(set(losses[0])) == 4


def test_time_offset_embedding_is_one_hot_linear_and_used():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=2)
    x = torch.randn(4, 1 + 3, cfg.dim)
    _, ids_restore, _ = vit.random_masking(4, 64, cfg.mask_ratio, noise=torch.rand(4, 64))
    d1, d2 = torch.tensor([1, 2, 3, 4]), torch.tensor([4, 3, 2, 7])
    with torch.no_grad():
        y1, y2 = model.decoder_tokens(x, ids_restore, d1, 8, 8), model.decoder_tokens(x, ids_restore, d2, 8, 8)
    W = model.delta_embed.weight                                               # (Dd, max_delta)
    assert torch.equal(y1[:, 0], y2[:, 0])                                     # [CLS] carries no offset
    assert torch.allclose(y1[:, 1:] - y2[:, 1:], (W[:, d1] - W[:, d2]).T[:, None].expand(-1, 64, -1), atol=1e-5)
    rec1 = model.reconstruct(batch)["pred"]
    rec2 = model.reconstruct({**batch, "delta": batch["delta"] % cfg.delta_max + 1})["pred"]
    assert not torch.allclose(rec1, rec2, atol=1e-5)                           # a different delta, another frame


def test_loss_is_plain_l2_over_every_pixel_of_every_target():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=2)
    pred = torch.rand(2, cfg.n_targets, 64, 48, requires_grad=True)
    frames = vit.unpatchify(pred.detach().flatten(0, 1), 4, 8, 8).view(2, cfg.n_targets, 3, 32, 32)
    want = torch.stack([((frames[:, k] - batch["target"][:, k]) ** 2).mean() for k in range(cfg.n_targets)]).mean()
    loss = model.loss(pred, batch["target"])["loss"]
    assert torch.allclose(loss, want, atol=1e-6) and loss.dtype == torch.float32
    loss.backward()
    assert torch.count_nonzero(pred.grad) == pred.numel()                      # every pixel, visible patches too
    shifted = model.loss(pred.detach() + 0.1, batch["target"] + 0.1)["loss"]
    assert torch.allclose(shifted, loss, atol=1e-5)                            # raw pixels: shift-equivariant only
    assert not torch.allclose(model.loss(pred.detach() * 2, batch["target"] * 2)["loss"], loss)   # no per-patch norm


@pytest.mark.parametrize("kw", [dict(n_source=1), dict(n_source=2), dict(n_source=4), dict(core="sa")])
def test_a_training_step_reaches_every_parameter(kw):
    cfg = cfg_(**kw, clip_len=kw.get("n_source", 3) + 4)
    model, batch = model_(cfg).train(), batch_(cfg, B=2)
    out = model(batch)
    out["loss"].backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None or torch.count_nonzero(p.grad) == 0}
    if kw.get("n_source") == 1:
        # one source frame: the core only ever sees s_0 = 0, so kv = r * LN(0) = 0 and everything that
        # reads the state gets no gradient, by the equations: the SiamMAE-like case of Table 3a
        assert {"core.w_state_update.weight", "core.w_state_reset.weight", "core.w_input_reset.weight",
                "core.state_scale"} <= no_grad
        assert all(n.startswith("core.") for n in no_grad) and "core.w_input_update.weight" not in no_grad
    else:
        assert no_grad == set()
    assert torch.isfinite(out["loss"])


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        cfg = cfg_(checkpoint=ckpt)
        model, batch = model_(cfg).train(), batch_(cfg, B=2)
        model(batch)["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_forward_is_a_pure_function_of_its_batch_and_logs_detached_scalars():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg)
    a, b = model(batch), model({**batch, "step": 7})
    assert torch.equal(a["loss"], b["loss"]) and a["loss"].dim() == 0
    assert a["loss_copy_last"].dim() == 0 and not a["loss_copy_last"].requires_grad
    still = {**batch, "target": batch["source"][:, -1:].repeat(1, cfg.n_targets, 1, 1, 1)}
    assert model(still)["loss_copy_last"].item() == 0.0                        # nothing moved: copying is perfect


def test_reconstruct_pastes_visible_patches_and_bad_input_raises():
    cfg = cfg_()
    model, batch = model_(cfg), batch_(cfg, B=2)
    rec = model.reconstruct(batch)
    K = cfg.n_targets
    assert rec["pred"].shape == rec["paste"].shape == (2, K, 3, 32, 32) and rec["mask"].shape == (2, K, 64)
    pix = rec["mask"].view(2, K, 1, 8, 1, 8, 1).expand(2, K, 1, 8, 4, 8, 4).reshape(2, K, 1, 32, 32).bool()
    assert torch.equal(torch.where(pix, 0, rec["paste"]), torch.where(pix, 0, batch["target"]))
    assert torch.equal(torch.where(pix, rec["paste"], 0), torch.where(pix, rec["pred"], 0))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model({**batch, "source": batch["source"][:, 0]})
    with pytest.raises(ValueError, match="noise"):
        model({**batch, "noise": batch["noise"][:, :, :10]})
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model.features(batch["source"][:, 0])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.step(batch["source"])


# ----------------------------------------------------------------------------
# end to end


def moving_square_clips(B, T, size, g, side=12, speed=2, grain=4):
    """A noise square moving over a static noise background (the toy world), with
    grain x grain pixel texels (a per-pixel noise takes longer to learn to copy)."""
    def noise(*shape):
        return torch.rand(*shape[:-2], shape[-2] // grain, shape[-1] // grain, generator=g) \
            .repeat_interleave(grain, -2).repeat_interleave(grain, -1)
    clip = noise(B, 1, 3, size, size).repeat(1, T, 1, 1, 1)
    for b in range(B):
        sq = noise(3, side, side)
        y0, x0 = torch.randint(0, size - side, (2,), generator=g).tolist()
        for t in range(T):
            y, x = (y0 + speed * t) % (size - side), (x0 + speed * t) % (size - side)
            clip[b, t, :, y:y + side, x:x + side] = sq
    return clip


@pytest.mark.slow
def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    cfg = cfg_(dim=64, heads=4, decoder_dim=64, decoder_heads=4)
    g = torch.Generator().manual_seed(0)
    batch = R.sample(moving_square_clips(2, cfg.clip_len, 32, g), cfg, g)
    model = R.RVM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=cfg.betas, weight_decay=cfg.weight_decay)
    losses = []
    for _ in range(400):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    last, copy = sum(losses[-10:]) / 10, out["loss_copy_last"].item()        # vs pasting the last source frame
    mean = batch["target"].var().item()                                      # vs predicting the mean pixel
    assert last < 0.3 * copy and last < 0.15 * mean, (losses[0], last, copy, mean)
