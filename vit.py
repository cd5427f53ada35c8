"""The shared tiny Vision Transformer every method file stands on.

Everything a masked autoencoder needs and nothing else, in the order a reader
meets it in the MAE paper (He et al. 2022, https://arxiv.org/abs/2111.06377):
patchify / unpatchify (and tubify, its video twin), the per-patch normalized
pixel loss, patch and tube embeddings, fixed sin-cos ("Fourier") position
encodings, MAE's random masking, attention (self or cross), the transformer
blocks, MAE's initialization, the per-frame ViT encoder and its video twin
(VideoMAE's tube ViT), and the mechanics that several method files share
(the Prediction every `predict` returns, dense per-frame features, the
reconstruction paste for display, the checks of the Config fields they share),
and two small helpers about a ViT in a checkpoint: `load_encoder` (the frozen
encoder SIGMA's phi may start from) and `count_params`.

Shape legend (used in every `# (...)` comment of the project):
    B  batch                      T  frames
    C  channels (3, RGB)          H, W  pixels
    p  patch side (pixels)        h, w  token grid, h = H // p, w = W // p
    N  tokens per frame, h * w    D  width (feature dimension)
    K  prototypes (SIGMA)

Token order is row-major everywhere: token n sits at row n // w, column n % w;
a video's tokens are time-major (all of frame 0, then frame 1, ...).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import runs

# ----------------------------------------------------------------------------
# input checks: one place that says what shape is expected


def check_frames(x, patch, name="frames", ndim=4):
    """Raise a ValueError naming the expected shape unless `x` is
    (B, 3, H, W) (ndim=4) or (B, T, 3, H, W) (ndim=5) with H, W divisible by
    `patch`. Method files call this at their public entry points so a wrong
    shape fails here, not deep inside a convolution."""
    want = "(B, 3, H, W)" if ndim == 4 else "(B, T, 3, H, W)"
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a tensor {want}; got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() != ndim or shape[-3] != 3 or shape[-1] % patch or shape[-2] % patch:
        raise ValueError(f"{name} must be {want} with H, W divisible by patch={patch}; got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1]; got dtype {x.dtype}")


# ----------------------------------------------------------------------------
# patches


def patchify(x, p):
    """(B, 3, H, W) -> (B, N, p*p*3). Each token is one p x p patch, flattened
    as (row in patch, column in patch, channel), as in MAE."""
    B, C, H, W = x.shape
    h, w = H // p, W // p
    x = x.reshape(B, C, h, p, w, p)                    # (B, 3, h, p, w, p)
    x = x.permute(0, 2, 4, 3, 5, 1)                    # (B, h, w, p, p, 3)
    return x.reshape(B, h * w, p * p * C)              # (B, N, p*p*3)


def unpatchify(tokens, p, h, w):
    """(B, N, p*p*3) -> (B, 3, H, W), the exact inverse of `patchify`."""
    B = tokens.shape[0]
    x = tokens.reshape(B, h, w, p, p, 3)               # (B, h, w, p, p, 3)
    x = x.permute(0, 5, 1, 3, 2, 4)                    # (B, 3, h, p, w, p)
    return x.reshape(B, 3, h * p, w * p)               # (B, 3, H, W)


def tubify(video, p, k):
    """(B, T, 3, H, W) -> (B, t*N, k*p*p*3), k = tubelet, t = T // k: `patchify`
    for tubes. Each token is one tube's pixels, flattened as (frame in tube,
    row, column, channel); tokens in the time-major order of TubeEmbed, so
    token i here is token i there."""
    B, T, C, H, W = video.shape
    x = video.reshape(B, T // k, k, C, H // p, p, W // p, p)                       # (B, t, k, 3, h, p, w, p)
    x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)                                          # (B, t, h, w, k, p, p, 3)
    return x.reshape(B, (T // k) * (H // p) * (W // p), k * p * p * C)             # (B, t*N, k*p*p*3)


def normalize_patches(target, eps=1e-6):
    """MAE's `norm_pix_loss` target: every patch (last dim) shifted to zero
    mean and scaled to unit variance with its own statistics (unbiased
    variance, as MAE computes it), so the loss is about texture and edges,
    not the patch's brightness. (..., P) -> (..., P)."""
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def denormalize_patches(pred, target, eps=1e-6):
    """The inverse of `normalize_patches` for display: a prediction made in
    normalized-patch space mapped back to pixels with the statistics of the
    true patches `target`. (..., P) -> (..., P)."""
    return pred * (target.var(dim=-1, keepdim=True) + eps) ** 0.5 + target.mean(dim=-1, keepdim=True)


def patch_targets(frames, patch, norm_pix=True):
    """(B, 3, H, W) -> (B, N, p*p*3) reconstruction targets: raw pixels, or
    every patch normalized by its own statistics (MAE's norm_pix_loss)."""
    target = patchify(frames, patch)                   # (B, N, P)
    return normalize_patches(target) if norm_pix else target


def masked_mse(pred, target, mask):
    """Mean squared error per token, averaged over the tokens where mask == 1
    only (MAE: the loss is on removed patches). pred, target (B, N, P); mask
    (B, N) with 1 = removed. Computed in fp32 whatever the autocast dtype."""
    per_token = (pred.float() - target.float()).pow(2).mean(dim=-1)   # (B, N)
    mask = mask.float()
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


class PatchEmbed(nn.Module):
    """2D patch embedding: a p x p convolution with stride p, i.e. one linear
    map per non-overlapping patch. (B, 3, H, W) -> (B, N, D)."""

    def __init__(self, patch, dim):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)


class TubeEmbed(nn.Module):
    """3D tube embedding (VideoMAE, used by SIGMA): a t x p x p convolution with
    stride (t, p, p). (B, T, 3, H, W) -> (B, T/t * N, D), time-major."""

    def __init__(self, patch, dim, tubelet=2):
        super().__init__()
        self.patch, self.tubelet = patch, tubelet
        self.proj = nn.Conv3d(3, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x):
        x = self.proj(x.transpose(1, 2))               # (B, D, T/t, h, w)
        return x.flatten(2).transpose(1, 2)            # (B, T/t * N, D)


# ----------------------------------------------------------------------------
# fixed sin-cos ("Fourier") position encodings, as in MAE


def sincos_1d(pos, dim):
    """pos (L,) -> (L, dim): [sin(pos * omega_i), cos(pos * omega_i)] for
    i = 0 .. dim/2 - 1 with omega_i = 1 / 10000^(i / (dim/2)) (Transformer /
    MAE). `dim` must be even."""
    if dim % 2:
        raise ValueError(f"sin-cos encoding needs an even width; got {dim}")
    i = torch.arange(dim // 2, dtype=torch.float64)
    omega = 1.0 / 10000 ** (i / (dim / 2))             # (dim/2,)
    angles = pos.to(torch.float64)[:, None] * omega[None, :]   # (L, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()  # (L, dim)


def sincos_pos_2d(h, w, dim):
    """(h*w, D) fixed 2D encoding, row-major token order. The first D/2
    channels encode the token's row, the last D/2 its column, each with
    D/4 frequencies omega_i = 1/10000^(i/(D/4)) and [sin, cos] per half.
    (MAE's numpy code happens to put the column first; the order is a
    convention with no effect on learning; we write rows first because the
    legend reads (h, w).)"""
    if dim % 4:
        raise ValueError(f"2D sin-cos encoding needs width divisible by 4; got {dim}")
    rows = torch.arange(h).repeat_interleave(w)        # (N,) 0,0,..,1,1,..
    cols = torch.arange(w).repeat(h)                   # (N,) 0,1,..,0,1,..
    return torch.cat([sincos_1d(rows, dim // 2), sincos_1d(cols, dim // 2)], dim=1)  # (N, D)


def sincos_pos_3d(t, h, w, dim):
    """(t*h*w, D) fixed 3D encoding, time-major token order. The first D/4
    channels encode time, the next 3D/8 the row, the last 3D/8 the column
    (space gets more channels because it has more positions to tell apart;
    VideoMAE itself uses a 1D encoding of the flattened index, which hides
    the grid). Needs D divisible by 16."""
    if dim % 16:
        raise ValueError(f"3D sin-cos encoding needs width divisible by 16; got {dim}")
    dt, ds = dim // 4, 3 * dim // 8
    times = torch.arange(t).repeat_interleave(h * w)   # (t*N,)
    rows = torch.arange(h).repeat_interleave(w).repeat(t)
    cols = torch.arange(w).repeat(h * t)
    return torch.cat([sincos_1d(times, dt), sincos_1d(rows, ds), sincos_1d(cols, ds)], dim=1)


def sincos_pos_for(table, table_grid, grid):
    """(1, L, D) fixed positions for the token grid `grid`, (h, w) or (t, h, w):
    the cached `table` (1, L, D) when `grid` is the grid it was built for
    (`table_grid`), else sincos_pos_2d / sincos_pos_3d recomputed for `grid`
    on the table's device. The encodings are fixed, not learned, so a model
    runs on frames (or clips) of another size than it was built for."""
    if tuple(grid) == tuple(table_grid):
        return table
    make = sincos_pos_2d if len(grid) == 2 else sincos_pos_3d
    return make(*grid, table.shape[-1])[None].to(table.device)


# ----------------------------------------------------------------------------
# masking (MAE Sec. 3: random sampling without replacement)


def num_visible(N, ratio):
    """Tokens kept out of N at mask ratio `ratio`: int(N * (1 - ratio)), with
    a tiny epsilon so that e.g. N=100, ratio=0.9 keeps 10 and not 9
    (100 * (1 - 0.9) is 9.999999999999998 in floating point)."""
    if not (isinstance(ratio, (int, float)) and 0 <= ratio < 1):   # NaN too: it fails every comparison
        raise ValueError(f"mask ratio {ratio} is not in [0, 1)")
    keep = int(N * (1 - ratio) + 1e-6)
    if keep < 1:
        raise ValueError(f"mask ratio {ratio} keeps {keep} of {N} tokens; need 0 <= ratio < 1 and at least 1 kept")
    return keep


def random_masking(B, N, ratio, generator=None, device=None, noise=None):
    """MAE's masking by argsort of noise. Returns
        ids_keep    (B, n)  indices of the kept tokens, n = int(N * (1 - ratio))
        ids_restore (B, N)  inverse permutation: gathering [kept, removed]
                            tokens with it puts every token back in place
        mask        (B, N)  1 for removed tokens, 0 for kept ones
    `noise` (B, N) may be passed in (drawn earlier, e.g. in a method's
    `sample`, so the forward pass is a pure function of its batch); otherwise
    it is drawn from `generator`. Every sample gets its own mask."""
    keep = num_visible(N, ratio)
    if noise is None:
        gen_device = generator.device if generator is not None else device
        noise = torch.rand(B, N, generator=generator, device=gen_device)
    noise = noise.to(device) if device is not None else noise
    ids_shuffle = torch.argsort(noise, dim=1)          # ascend: small is keep, large is remove
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]                   # (B, n)
    mask = torch.ones(B, N, device=noise.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)          # back to token order
    return ids_keep, ids_restore, mask


def gather_tokens(x, ids):
    """x (B, N, D), ids (B, n) -> (B, n, D): the tokens at `ids`, per sample."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))


def restore_tokens(visible, ids_restore, mask_token):
    """Put visible tokens back in place and fill the removed ones with the
    (learned) mask token, MAE's decoder input. visible (B, n, D),
    ids_restore (B, N), mask_token (1, 1, D) -> (B, N, D)."""
    B, n, D = visible.shape
    N = ids_restore.shape[1]
    fill = mask_token.to(visible.dtype).expand(B, N - n, D)
    x = torch.cat([visible, fill], dim=1)              # (B, N, D) in shuffled order
    return gather_tokens(x, ids_restore)               # (B, N, D) in token order


# ----------------------------------------------------------------------------
# transformer pieces


class Attention(nn.Module):
    """Multi-head attention softmax(Q K^T / sqrt(d)) V through
    F.scaled_dot_product_attention (flash / memory-efficient kernels on GPU).
    Self-attention when `context` is None, cross-attention otherwise:
    queries from x (B, L, D), keys and values from context (B, S, D)."""

    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, context=None):
        B, L, D = x.shape
        context = x if context is None else context
        S, nh = context.shape[1], self.heads
        q = self.q(x).view(B, L, nh, D // nh).transpose(1, 2)                       # (B, nh, L, d)
        k, v = self.kv(context).view(B, S, 2, nh, D // nh).permute(2, 0, 3, 1, 4)   # 2 x (B, nh, S, d)
        out = F.scaled_dot_product_attention(q, k, v)                              # (B, nh, L, d)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))                     # (B, L, D)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, hidden width mlp_ratio * D."""

    def __init__(self, dim, mlp_ratio=4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + SelfAttn(LN(x)), then x + MLP(LN(x)). `eps` is its LayerNorms' (here and in
    every module below): torch's 1e-5 by default, 1e-6 where a method's official code uses it (RVM, SIGMA)."""

    def __init__(self, dim, heads, mlp_ratio=4.0, eps=1e-5):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), Mlp(dim, mlp_ratio)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """Pre-norm block that lets queries x (B, L, D) read a key/value sequence
    ctx (B, S, D): x + CrossAttn(LN(x), LN(ctx)), then x + MLP(LN(x)), then
    x + SelfAttn(LN(x)). The decoder block of SiamMAE and RVM and the block of
    RVM's recurrent core. `self_attn=False` drops the last step (SiamMAE's
    cross-attention-only decoder, Table 2b); `norm_kv=False` passes ctx to the
    keys and values as it is (RVM's core, as the official
    CrossAttentionBlock: LN(c z) = LN(z) would undo the reset gate's
    per-token scale; RVM's decoder keeps the LayerNorm, rvm.Config)."""

    def __init__(self, dim, heads, mlp_ratio=4.0, self_attn=True, norm_kv=True, eps=1e-5):
        super().__init__()
        self.norm_q, self.cross = nn.LayerNorm(dim, eps=eps), Attention(dim, heads)
        self.norm_kv = nn.LayerNorm(dim, eps=eps) if norm_kv else nn.Identity()
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), Mlp(dim, mlp_ratio)
        self.norm3 = nn.LayerNorm(dim, eps=eps) if self_attn else None
        self.attn = Attention(dim, heads) if self_attn else None

    def forward(self, x, ctx):
        """x (g*B, L, D), ctx (B, S, D): g query sequences may share one context (RVM's K targets read the same
        sources): they attend to it as one sequence of g*L queries (a query's attention ignores the other queries),
        so its keys and values are made once, not g times."""
        (gB, L, D), B = x.shape, ctx.shape[0]
        x = x + self.cross(self.norm_q(x).reshape(B, gB // B * L, D), self.norm_kv(ctx)).view(gB, L, D)
        x = x + self.mlp(self.norm2(x))
        if self.attn is not None:
            x = x + self.attn(self.norm3(x))
        return x


# ----------------------------------------------------------------------------
# initialization (MAE's `_init_weights` and `initialize_weights`)


def init_weights(m):
    """Apply with `module.apply(init_weights)`: xavier-uniform Linear weights
    with zero bias, LayerNorm (1, 0), patch/tube embedding weights xavier on
    the flattened (D, p*p*3) view (so they start like a Linear layer).
    Tokens are plain Parameters, initialized normal(0.02) where created."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        if m.weight is not None:
            nn.init.ones_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Conv2d, nn.Conv3d)):
        nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------
# the encoders: per frame (ViT) and per clip (TubeViT)


class ViT(nn.Module):
    """Per-frame ViT encoder: patch embedding + fixed sin-cos positions,
    a learnable [CLS] token (position zero, as in MAE), pre-norm blocks, a final
    LayerNorm, no dropout.

    forward(x (B, 3, H, W), ids_keep (B, n) or None) -> (B, 1 + n, D):
    [CLS] first, then the kept patch tokens in the order of ids_keep (all N
    patches in token order when ids_keep is None). Positions are added before
    the gather, so a kept token carries the position of where it came from.
    Frames of another size than `img_size` work too (positions are fixed, so
    they are recomputed for that grid).

    The two halves are public for methods that assemble their own sequence
    (SiamMAE's joint encoder): `embed` gives positioned patch tokens,
    `encode_tokens` prepends [CLS] and runs the blocks and the final norm."""

    def __init__(self, img_size=64, patch=8, dim=192, depth=4, heads=3, mlp_ratio=4.0, eps=1e-5):
        super().__init__()
        if img_size % patch:
            raise ValueError(f"img_size={img_size} is not divisible by patch={patch}")
        self.img_size, self.patch, self.dim = img_size, patch, dim
        self.grid = (img_size // patch, img_size // patch)              # (h, w)
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # fixed, so not saved in checkpoints (persistent=False) and never trained
        self.register_buffer("pos_embed", sincos_pos_2d(*self.grid, dim)[None], persistent=False)  # (1, N, D)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.apply(init_weights)
        nn.init.normal_(self.cls_token, std=0.02)

    def embed(self, x, ids_keep=None):
        """(B, 3, H, W) -> (B, n, D) positioned patch tokens, only the kept
        ones when ids_keep (B, n) is given."""
        check_frames(x, self.patch, "frames")
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        tokens = self.patch_embed(x) + sincos_pos_for(self.pos_embed, self.grid, (h, w))   # (B, N, D)
        return tokens if ids_keep is None else gather_tokens(tokens, ids_keep)  # (B, n, D)

    def encode_tokens(self, tokens):
        """(B, n, D) -> (B, 1 + n, D): prepend [CLS], blocks, final norm."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)                             # (B, 1 + n, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x, ids_keep=None):
        return self.encode_tokens(self.embed(x, ids_keep))


class TubeViT(nn.Module):
    """VideoMAE's encoder, the video twin of ViT: tube embedding + fixed 3D sin-cos positions,
    pre-norm blocks over the joint space-time sequence, final LayerNorm, no [CLS]. (B, T, 3, H, W),
    ids_keep (B, m) -> (B, m, D) the kept tubes in that order (all t*N if None)."""

    def __init__(self, img_size, num_frames, patch, tubelet, dim, depth, heads, mlp_ratio, eps=1e-5):
        super().__init__()
        self.patch, self.tubelet = patch, tubelet
        self.grid = (num_frames // tubelet, img_size // patch, img_size // patch)      # (t, h, w)
        self.tube_embed = TubeEmbed(patch, dim, tubelet)
        self.register_buffer("pos_embed", sincos_pos_3d(*self.grid, dim)[None], persistent=False)  # (1, t*N, D)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, video, ids_keep=None):
        t, h, w = video.shape[1] // self.tubelet, video.shape[3] // self.patch, video.shape[4] // self.patch
        x = self.tube_embed(video) + sincos_pos_for(self.pos_embed, self.grid, (t, h, w))   # (B, t*N, D)
        x = x if ids_keep is None else gather_tokens(x, ids_keep)                         # (B, m, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# ----------------------------------------------------------------------------
# what the method files' `predict`, `features` and `reconstruct` share


@dataclass
class Prediction:
    """What every method's `predict` returns: the shared path of its `forward` (the loss) and its `reconstruct`
    (display), one structure in all four files. Leading dims L are the method's own: (B,) for SiamMAE's f2, (B, K)
    for RVM's K targets, (2B,) for ViC-MAE's two views (f1s then f2s); SIGMA's tokens are its t*N tubes."""
    pred: torch.Tensor      # (*L, N, P) the decoder's output for every token, masked or not: pixels (P = p*p*3) or
    #                         SIGMA's features x^Psi (P = F)
    mask: torch.Tensor      # (*L, N) 1 = masked (predicted), 0 = visible
    frames: torch.Tensor    # (*L, 3, H, W) the frames pred rebuilds (SIGMA: its video (B, T, 3, H, W))
    latent: torch.Tensor    # (*L, [1 +] n, D) the encoder's output on their visible tokens, [CLS] first if any
    ids_mask: torch.Tensor = None   # (B, t*(N-n)) SIGMA: the masked tubes, where its loss gathers the targets


def frame_features(video, patch, encode_frames):
    """Dense features of a video with every frame encoded on its own:
    video (B, T, 3, H, W) -> (B, T, h, w, D), h = H // patch, w = W // patch.

    `encode_frames` is any callable (B*T, 3, H, W) -> (B*T, L, D) whose LAST
    N = h * w tokens are the frame's patch tokens in row-major order; tokens
    before them ([CLS]) are dropped. A vit.ViT is one (L = 1 + N, [CLS] first);
    so is `lambda f: vit.patchify(f, patch)` (L = N, D = patch * patch * 3: raw
    pixels as features). No torch.no_grad here: callers that only read
    features wrap the call in it."""
    check_frames(video, patch, "video", ndim=5)
    B, T, _, H, W = video.shape
    N = (H // patch) * (W // patch)
    x = encode_frames(video.reshape(B * T, 3, H, W))                    # (B*T, L, D)
    if x.dim() != 3 or x.shape[0] != B * T or x.shape[1] < N:
        raise ValueError(f"encode_frames must map (B*T, 3, H, W) to (B*T, L >= N, D) = ({B * T}, >= {N}, D); "
                         f"got {tuple(x.shape)}")
    return x[:, -N:].reshape(B, T, H // patch, W // patch, -1)          # (B, T, h, w, D), [CLS] dropped


def paste_patches(pred, frames, mask, patch, norm_pix=False):
    """For display: pred (B, N, p*p*3), a prediction for every patch of frames
    (B, 3, H, W), and mask (B, N), 1 = masked -> two fp32 images (B, 3, H, W):
    the prediction in pixels (de-normalized with the true patches' statistics
    when norm_pix, i.e. when it was made in normalized-patch space) and the
    paste, the frames' visible patches with the predicted masked ones."""
    p, (H, W) = patch, frames.shape[-2:]
    target = patchify(frames, p)                                        # (B, N, P)
    pred = denormalize_patches(pred.float(), target) if norm_pix else pred.float()
    paste = torch.where(mask[..., None].bool(), pred, target)           # (B, N, P)
    return unpatchify(pred, p, H // p, W // p), unpatchify(paste, p, H // p, W // p)   # (B, 3, H, W) each


def check_vit_config(cfg):
    """The geometry every method's Config shares (the encoder's and the decoder's width, heads and depth, the image
    and patch sizes, mlp_ratio, mask_ratio), run first in its __post_init__: a one-line ValueError naming the field
    before any layer is built (a bad width would otherwise fail deep inside Attention). A method's own fields are
    checked in its own __post_init__."""
    for k, least in (("img_size", 1), ("patch", 1), ("dim", 1), ("heads", 1), ("decoder_dim", 1),
                     ("decoder_heads", 1), ("depth", 0), ("decoder_depth", 0)):
        check_int(cfg, k, least)
    if cfg.img_size % cfg.patch:
        raise ValueError(f"img_size={cfg.img_size} is not divisible by patch={cfg.patch}")
    for width, heads in (("dim", "heads"), ("decoder_dim", "decoder_heads")):
        if getattr(cfg, width) % getattr(cfg, heads):
            raise ValueError(f"{width}={getattr(cfg, width)} is not divisible by {heads}={getattr(cfg, heads)}")
        if getattr(cfg, width) % 4:   # 2D sin-cos positions: D/4 frequencies per axis and [sin, cos]
            raise ValueError(f"{width}={getattr(cfg, width)} must be divisible by 4 (2D sin-cos positions)")
    check_number(cfg, "mlp_ratio", positive=True)
    num_visible((cfg.img_size // cfg.patch) ** 2, cfg.mask_ratio)   # at least one token kept


def check_int(cfg, k, least):
    """A one-line ValueError unless the field k of cfg is an integer >= least."""
    v = getattr(cfg, k)
    if not isinstance(v, int) or v < least:
        raise ValueError(f"{k} must be an integer >= {least}; got {v!r}")


def check_number(cfg, k, positive=False):
    """A one-line ValueError unless the field k of cfg is a finite number >= 0 (> 0 when positive)."""
    v = getattr(cfg, k)
    if not (isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 if positive else v >= 0)):
        raise ValueError(f"{k} must be a number {'>' if positive else '>='} 0; got {v!r}")


def load_encoder(path, patch, dim):
    """The frozen ViT under "encoder." (siammae, vicmae, rvm) of a train.py checkpoint {"model": state_dict,
    "config": dict with img_size, patch, dim, depth, heads (mlp_ratio)} of this patch and width (SIGMA's frozen
    phi); a one-line ValueError otherwise."""
    try:
        ckpt = runs.load_plain(path)
    except FileNotFoundError:
        raise ValueError(f"{path!r}: no such file; need a checkpoint written by train.py") from None
    c = ckpt.get("config", {}) if isinstance(ckpt, dict) else {}
    if any(k not in c for k in ("img_size", "patch", "dim", "depth", "heads")) or \
            (c["patch"], c["dim"]) != (patch, dim):
        raise ValueError(f"checkpoint {path!r}: need config img_size, depth, heads, patch={patch}, dim={dim}; got {c}")
    encoder = ViT(c["img_size"], c["patch"], c["dim"], c["depth"], c["heads"], c.get("mlp_ratio", 4.0))
    try:
        encoder.load_state_dict({k[8:]: v for k, v in ckpt["model"].items() if k.startswith("encoder.")})
    except (RuntimeError, KeyError, AttributeError) as e:
        raise ValueError(f"checkpoint {path!r} has no vit.ViT under 'encoder.': {runs.first_line(e)}") from None
    return encoder.requires_grad_(False).eval()


def count_params(module):
    """Number of trainable parameters, for logs and the README."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

