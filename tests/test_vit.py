"""Tests for vit.py: each one fails if the piece it names were wrong."""
import dataclasses
import math
import re

import pytest
import torch
import torch.nn as nn

import methods
import vit


def test_patchify_layout_and_round_trip():
    x = torch.rand(2, 3, 16, 24)
    p = 8
    tok = vit.patchify(x, p)
    assert tok.shape == (2, 6, 8 * 8 * 3)
    # token n = row n // w, column n % w; inside a token (row, col, channel)
    n, w = 4, 3
    r, c = n // w, n % w
    patch = x[1, :, r * p:(r + 1) * p, c * p:(c + 1) * p]          # (3, p, p)
    assert torch.equal(tok[1, n], patch.permute(1, 2, 0).reshape(-1))
    assert torch.equal(vit.unpatchify(tok, p, 2, 3), x)


def test_normalize_patches_and_masked_mse():
    t = torch.rand(2, 5, 12)
    z = vit.normalize_patches(t)
    ref = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=True, keepdim=True) + 1e-6)
    assert torch.allclose(z, ref, atol=1e-6)
    pred, mask = torch.zeros(2, 5, 12), torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 1.0]])
    loss = vit.masked_mse(pred, t, mask)
    want = sum((t[b, n] ** 2).mean() for b, n in [(0, 0), (0, 3), (1, 4)]) / 3
    assert torch.allclose(loss, want)
    pred2 = pred.clone()
    pred2[0, 1] += 5.0                                            # a kept token: no effect
    assert torch.equal(vit.masked_mse(pred2, t, mask), loss)


@pytest.mark.parametrize("N,ratio,keep", [(64, 0.95, 3), (100, 0.9, 10), (196, 0.75, 49), (16, 0.0, 16)])
def test_random_masking_counts_and_restore(N, ratio, keep):
    g = torch.Generator().manual_seed(0)
    ids_keep, ids_restore, mask = vit.random_masking(4, N, ratio, generator=g)
    assert ids_keep.shape == (4, keep)
    assert torch.equal(mask.sum(1), torch.full((4,), float(N - keep)))
    for b in range(4):                                            # kept ids are exactly the mask == 0 positions
        assert set(ids_keep[b].tolist()) == set(torch.nonzero(mask[b] == 0).flatten().tolist())
    # ids_restore inverts the shuffle: [kept, removed] gathered with it is token order
    x = torch.arange(N).float().expand(4, N)[..., None]           # (B, N, 1) token index as value
    # ids_shuffle (recovered from ids_restore) starts with the kept ids
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    shuffled = vit.gather_tokens(x, ids_shuffle)
    assert torch.equal(vit.gather_tokens(shuffled, ids_restore), x)
    assert torch.equal(ids_shuffle[:, :keep], ids_keep)
    if keep < N:                                                  # every sample gets its own mask
        assert not torch.equal(mask[0], mask[1])


def test_random_masking_noise_is_deterministic_and_bad_ratio_raises():
    noise = torch.rand(3, 10)
    a = vit.random_masking(3, 10, 0.5, noise=noise)
    b = vit.random_masking(3, 10, 0.5, noise=noise.clone())
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert torch.equal(a[0].sort(1).values, noise.argsort(1)[:, :5].sort(1).values)  # smallest noise is kept
    for bad in (1.0, -0.1, 0.99):
        with pytest.raises(ValueError, match="mask ratio"):
            vit.random_masking(2, 10, bad)


def test_restore_tokens_puts_visible_back_and_fills_mask_token():
    B, N, D = 2, 8, 4
    x = torch.randn(B, N, D)
    ids_keep, ids_restore, mask = vit.random_masking(B, N, 0.5, generator=torch.Generator().manual_seed(1))
    tok = torch.full((1, 1, D), 7.0)
    full = vit.restore_tokens(vit.gather_tokens(x, ids_keep), ids_restore, tok)
    keep = mask == 0
    assert torch.equal(full[keep], x[keep])
    assert torch.all(full[~keep] == 7.0)


def sincos_reference(pos, dim):
    out = []
    for q in pos:
        row = [math.sin(q / 10000 ** (i / (dim / 2))) for i in range(dim // 2)]
        row += [math.cos(q / 10000 ** (i / (dim / 2))) for i in range(dim // 2)]
        out.append(row)
    return torch.tensor(out)


def test_sincos_2d_closed_form():
    h, w, D = 3, 5, 16
    pe = vit.sincos_pos_2d(h, w, D)
    assert pe.shape == (h * w, D)
    for n in range(h * w):
        r, c = n // w, n % w
        # first half rows: omega_i = 1 / 10000^(i / (D/4))
        for i in range(D // 4):
            om = 1 / 10000 ** (i / (D / 4))
            assert pe[n, i].item() == pytest.approx(math.sin(r * om), abs=1e-6)
            assert pe[n, D // 4 + i].item() == pytest.approx(math.cos(r * om), abs=1e-6)
            assert pe[n, D // 2 + i].item() == pytest.approx(math.sin(c * om), abs=1e-6)
            assert pe[n, 3 * D // 4 + i].item() == pytest.approx(math.cos(c * om), abs=1e-6)
    with pytest.raises(ValueError):
        vit.sincos_pos_2d(2, 2, 10)


def test_sincos_3d_closed_form():
    t, h, w, D = 2, 3, 4, 32
    pe = vit.sincos_pos_3d(t, h, w, D)
    assert pe.shape == (t * h * w, D)
    dt, ds = D // 4, 3 * D // 8
    for n in [0, 5, 13, 23]:
        ti, r, c = n // (h * w), (n % (h * w)) // w, n % w
        assert torch.allclose(pe[n, :dt], sincos_reference([ti], dt)[0], atol=1e-6)
        assert torch.allclose(pe[n, dt:dt + ds], sincos_reference([r], ds)[0], atol=1e-6)
        assert torch.allclose(pe[n, dt + ds:], sincos_reference([c], ds)[0], atol=1e-6)
    # same spatial place in both time slots differs only in the time channels
    assert torch.equal(pe[1, dt:], pe[h * w + 1, dt:]) and not torch.equal(pe[1, :dt], pe[h * w + 1, :dt])


def test_attention_matches_manual_softmax():
    torch.manual_seed(0)
    att = vit.Attention(16, heads=4)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    for context in (None, ctx):
        kv_in = x if context is None else ctx
        q = att.q(x).view(2, 5, 4, 4).transpose(1, 2)
        k, v = att.kv(kv_in).chunk(2, dim=-1)
        k = k.reshape(2, -1, 4, 4).transpose(1, 2)
        v = v.reshape(2, -1, 4, 4).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
        ref = att.proj((a @ v).transpose(1, 2).reshape(2, 5, 16))
        assert torch.allclose(att(x, context), ref, atol=1e-5)


def test_crossblock_reads_context_and_block_order():
    torch.manual_seed(0)
    blk = vit.CrossBlock(16, 4)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    assert not torch.allclose(blk(x, ctx), blk(x, torch.randn(2, 7, 16)))  # (a shift would be normed away)
    # cross -> MLP -> self, each pre-norm with a residual
    y = x + blk.cross(blk.norm_q(x), blk.norm_kv(ctx))
    y = y + blk.mlp(blk.norm2(y))
    y = y + blk.attn(blk.norm3(y))
    assert torch.allclose(blk(x, ctx), y, atol=1e-6)
    only_cross = vit.CrossBlock(16, 4, self_attn=False)
    assert only_cross.attn is None
    y = x + only_cross.cross(only_cross.norm_q(x), only_cross.norm_kv(ctx))
    assert torch.allclose(only_cross(x, ctx), y + only_cross.mlp(only_cross.norm2(y)), atol=1e-6)


def test_vit_ids_keep_keeps_positions():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    model = vit.ViT(img_size=32, patch=8, dim=32, depth=2, heads=4)
    ids_keep, _, _ = vit.random_masking(2, 16, 0.75, generator=torch.Generator().manual_seed(0))
    # tokens are positioned before the gather: kept tokens carry their own position
    assert torch.allclose(model.embed(x, ids_keep), vit.gather_tokens(model.embed(x), ids_keep))
    full, part = model(x), model(x, ids_keep)
    assert full.shape == (2, 17, 32) and part.shape == (2, 5, 32)
    # with blocks, attention over fewer tokens changes the output ...
    assert not torch.allclose(part[:, 1:], vit.gather_tokens(full[:, 1:], ids_keep), atol=1e-4)
    # ... without blocks the per-token path is identical
    model.blocks = nn.ModuleList()
    assert torch.allclose(model(x, ids_keep)[:, 1:], vit.gather_tokens(model(x)[:, 1:], ids_keep), atol=1e-6)


def test_vit_other_grid_and_bad_input():
    model = vit.ViT(img_size=32, patch=8, dim=32, depth=1, heads=4)
    assert model(torch.rand(1, 3, 16, 40)).shape == (1, 1 + 2 * 5, 32)
    for bad in (torch.rand(3, 32, 32), torch.rand(1, 3, 30, 32), torch.rand(1, 4, 32, 32)):
        with pytest.raises(ValueError, match="divisible by patch=8"):
            model(bad)
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_mae_initialization():
    torch.manual_seed(0)
    model = vit.ViT(img_size=32, patch=8, dim=64, depth=2, heads=4)
    lin = model.blocks[0].mlp.fc1
    bound = math.sqrt(6 / (lin.in_features + lin.out_features))
    assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.9 * bound
    assert torch.all(lin.bias == 0)
    assert torch.all(model.norm.weight == 1) and torch.all(model.norm.bias == 0)
    w = model.patch_embed.proj.weight.view(64, -1)
    assert w.abs().max() <= math.sqrt(6 / (64 + w.shape[1]))
    assert 0.01 < model.cls_token.std() < 0.03
    # fixed positions are not parameters and not in the state dict
    assert "pos_embed" not in model.state_dict()
    assert all("pos_embed" not in n for n, _ in model.named_parameters())


def test_tube_embed_shape_and_order():
    emb = vit.TubeEmbed(patch=8, dim=16, tubelet=2)
    x = torch.rand(2, 4, 3, 16, 24)
    out = emb(x)
    assert out.shape == (2, 2 * 6, 16)
    # time slot 1 depends only on frames 2-3
    x2 = x.clone()
    x2[:, 2:] += 1
    out2 = emb(x2)
    assert torch.allclose(out[:, :6], out2[:, :6]) and not torch.allclose(out[:, 6:], out2[:, 6:])


def test_patch_targets_and_denormalize_round_trip():
    x = torch.rand(2, 3, 16, 16)
    raw = vit.patch_targets(x, 8, norm_pix=False)
    assert torch.equal(raw, vit.patchify(x, 8))
    normed = vit.patch_targets(x, 8)
    assert torch.allclose(normed, vit.normalize_patches(raw))
    assert torch.allclose(vit.denormalize_patches(normed, raw), raw, atol=1e-5)


def test_init_weights_handles_layernorm_without_bias():
    m = nn.Sequential(nn.LayerNorm(8, bias=False), nn.LayerNorm(8, elementwise_affine=False), nn.Linear(8, 8, bias=False))
    m.apply(vit.init_weights)
    assert torch.all(m[0].weight == 1)


# ----------------------------------------------------------------------------
# tubes and the tube ViT (moved here from sigma.py with the code)


def test_tubify_matches_tube_embedding_order():
    """A TubeEmbed is a linear map of tubify's rows, token for token."""
    torch.manual_seed(0)
    emb = vit.TubeEmbed(patch=4, dim=5, tubelet=2)
    video = torch.rand(2, 6, 3, 8, 12)
    w = emb.proj.weight.permute(0, 2, 3, 4, 1).reshape(5, -1)      # (D, k, p, p, 3) flattened as tubify
    want = vit.tubify(video, 4, 2) @ w.t() + emb.proj.bias
    assert torch.allclose(emb(video), want, atol=1e-5)             # (B, t*N, D), t*N = 3 * 2 * 3


def test_tubify_layout():
    video = torch.rand(2, 4, 3, 8, 12)
    tok = vit.tubify(video, 4, 2)                                  # t, h, w = 2, 2, 3
    assert tok.shape == (2, 2 * 2 * 3, 2 * 4 * 4 * 3)
    ti, r, c = 1, 1, 2                                             # token (time slot, row, column), time-major
    tube = video[1, 2 * ti:2 * ti + 2, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4]   # (k, 3, p, p)
    assert torch.equal(tok[1, ti * 6 + r * 3 + c], tube.permute(0, 2, 3, 1).reshape(-1))   # (frame, row, col, ch)


def test_tube_vit_positions_and_kept_tubes():
    torch.manual_seed(0)
    enc = vit.TubeViT(img_size=16, num_frames=4, patch=8, tubelet=2, dim=16, depth=1, heads=2, mlp_ratio=2.0)
    video = torch.rand(2, 6, 3, 16, 24)                            # another grid than built for: t, h, w = 3, 2, 3
    ids = torch.tensor([[0, 7, 17], [3, 4, 5]])
    out = enc(video, ids)
    assert out.shape == (2, 3, 16) and enc(video).shape == (2, 18, 16)
    enc.blocks = nn.ModuleList()                                   # without blocks: embed + positions, norm
    want = enc.norm(enc.tube_embed(video) + vit.sincos_pos_3d(3, 2, 3, 16))
    assert torch.allclose(enc(video), want, atol=1e-6)
    assert torch.allclose(enc(video, ids), vit.gather_tokens(want, ids), atol=1e-6)


# ----------------------------------------------------------------------------
# mechanics shared by the method files


def test_sincos_pos_for_returns_the_cached_table_or_recomputes():
    table = torch.randn(1, 4 * 4, 16)                              # not a sin-cos table: a recompute would show
    assert vit.sincos_pos_for(table, (4, 4), (4, 4)) is table
    assert torch.equal(vit.sincos_pos_for(table, (4, 4), (2, 5)), vit.sincos_pos_2d(2, 5, 16)[None])
    table3 = torch.randn(1, 2 * 4 * 4, 16)
    assert vit.sincos_pos_for(table3, (2, 4, 4), [2, 4, 4]) is table3
    assert torch.equal(vit.sincos_pos_for(table3, (2, 4, 4), (3, 2, 5)), vit.sincos_pos_3d(3, 2, 5, 16)[None])
    # the ViT uses it: its own table on its grid, the closed form on another
    torch.manual_seed(0)
    model = vit.ViT(img_size=32, patch=8, dim=16, depth=1, heads=2)
    x = torch.rand(1, 3, 16, 40)
    assert torch.allclose(model.embed(x), model.patch_embed(x) + vit.sincos_pos_2d(2, 5, 16), atol=1e-6)
    with torch.no_grad():
        model.pos_embed.copy_(table)                               # the cached table is what a 32 px frame gets
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(model.embed(x), model.patch_embed(x) + table, atol=1e-6)


def test_frame_features_equal_encoding_each_frame_by_hand():
    torch.manual_seed(0)
    model = vit.ViT(img_size=32, patch=8, dim=16, depth=1, heads=2).eval()
    video = torch.rand(2, 3, 3, 16, 24)                            # h, w = 2, 3
    with torch.no_grad():
        f = vit.frame_features(video, 8, model)
        assert f.shape == (2, 3, 2, 3, 16)
        for b in range(2):
            for t in range(3):
                tokens = model(video[b, t][None])[0]              # (1 + N, D), [CLS] first
                assert torch.allclose(f[b, t].reshape(6, 16), tokens[1:], atol=1e-5)
    # a callable without [CLS]: raw pixels, token (row, column) = that patch's pixels
    raw = vit.frame_features(video, 8, lambda frames: vit.patchify(frames, 8))
    assert raw.shape == (2, 3, 2, 3, 8 * 8 * 3)
    patch = video[1, 2, :, 8:16, 16:24]                            # frame (1, 2), row 1, column 2
    assert torch.equal(raw[1, 2, 1, 2], patch.permute(1, 2, 0).reshape(-1))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        vit.frame_features(video[:, 0], 8, model)
    with pytest.raises(ValueError, match="encode_frames"):
        vit.frame_features(video, 8, lambda frames: vit.patchify(frames, 8)[:, 1:])   # a token short


def test_paste_patches_is_target_where_visible_and_prediction_where_masked():
    g = torch.Generator().manual_seed(0)
    frames, pred = torch.rand(2, 3, 8, 12, generator=g), torch.randn(2, 6, 4 * 4 * 3, generator=g)   # p = 4
    mask = torch.tensor([[1, 0, 0, 1, 1, 0], [0, 1, 1, 1, 1, 1.0]])
    for norm_pix in (False, True):
        image, paste = vit.paste_patches(pred, frames, mask, 4, norm_pix)
        assert image.shape == paste.shape == (2, 3, 8, 12) and image.dtype == paste.dtype == torch.float32
        for b in range(2):
            for n in range(6):
                rows, cols = slice(4 * (n // 3), 4 * (n // 3) + 4), slice(4 * (n % 3), 4 * (n % 3) + 4)
                true = frames[b, :, rows, cols]                    # (3, p, p)
                want = pred[b, n].reshape(4, 4, 3).permute(2, 0, 1)   # token layout (row, column, channel)
                if norm_pix:                                       # back to pixels with the true patch's statistics
                    want = want * (true.var() + 1e-6).sqrt() + true.mean()
                assert torch.allclose(image[b, :, rows, cols], want, atol=1e-5)
                assert torch.allclose(paste[b, :, rows, cols], want if mask[b, n] else true, atol=1e-5)


@pytest.mark.parametrize("name, field, value, message", [
    ("siammae", "heads", 3, "dim=128 is not divisible by heads=3"),
    ("vicmae", "decoder_dim", 130, "decoder_dim=130 is not divisible by decoder_heads=4"),
    ("rvm", "dim", 66, "dim=66 must be divisible by 4"),
    ("sigma", "patch", 0, "patch must be an integer >= 1"),
    ("rvm", "depth", -1, "depth must be an integer >= 0"),
    ("siammae", "mask_ratio", float("nan"), "mask ratio nan"),
    ("vicmae", "mlp_ratio", 0.0, "mlp_ratio must be a number > 0"),
    ("sigma", "clip_len", 15.0, "clip_len must be an integer >= 1"),
    ("rvm", "core_depth", -1, "core_depth must be an integer >= 0"),
    ("sigma", "psi_warmup_steps", -1, "psi_warmup_steps must be a number >= 0"),
])
def test_every_config_checks_the_shared_fields_by_name(name, field, value, message):
    cfg = methods.METHODS[name].Config()
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(cfg, **{field: value})
    assert dataclasses.replace(cfg, depth=0).depth == 0             # a depth of 0 is a model too (no blocks)


def test_crossblock_without_norm_kv_reads_the_context_as_it_is():
    torch.manual_seed(0)
    normed, raw = vit.CrossBlock(16, 4), vit.CrossBlock(16, 4, norm_kv=False)
    raw.load_state_dict({k: v for k, v in normed.state_dict().items() if not k.startswith("norm_kv.")})
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    scale = 0.5 + torch.rand(2, 7, 1)                                          # a per-token gate, as RVM's reset
    assert torch.allclose(normed(x, scale * ctx), normed(x, ctx), atol=1e-4)   # LN(c z) = LN(z): the gate undone
    assert not torch.allclose(raw(x, scale * ctx), raw(x, ctx), atol=1e-3)     # raw keys/values: the gate acts
    y = x + raw.cross(raw.norm_q(x), ctx)
    y = y + raw.mlp(raw.norm2(y))
    assert torch.allclose(raw(x, ctx), y + raw.attn(raw.norm3(y)), atol=1e-6)


def test_crossblock_queries_sharing_a_context_equal_each_reading_its_own_copy():
    """g query sequences per context (RVM's K targets of one clip) give what each would with its own copy of it."""
    torch.manual_seed(0)
    block = vit.CrossBlock(16, 2, 2.0).eval()
    B, g, x, ctx = 3, 4, torch.randn(12, 5, 16), torch.randn(3, 7, 16)
    own = block(x, ctx.repeat_interleave(g, dim=0))                   # row b*g + k reads ctx[b]
    assert torch.allclose(block(x, ctx), own, atol=1e-6)
    assert not torch.allclose(block(x, ctx.roll(1, 0)), own, atol=1e-3)   # and it is ctx[b] each row reads
