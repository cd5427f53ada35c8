"""RVM: Recurrent Video Masked Autoencoders (Zoran et al. 2025)
https://arxiv.org/abs/2512.13684 (project page https://rvm-paper.github.io)

SiamMAE with a memory. n_source consecutive frames are seen whole, one at a time; n_targets later frames, each `delta`
frames after the last source frame, are 95% masked and rebuilt from what the model remembers. Every frame goes through
the same per-frame ViT; a GRU-gated transformer core (Sec. 3.2) reads the source frames in order: the current frame's
tokens query (cross-attend to) the previous state, a reset gate decides how much of the state to show, an update gate
how much of it to replace, and the new state is the frame's feature; a cross-attention decoder (Sec. 3.1) rebuilds each
target from its few visible patches, [MASK] tokens, its time offset and the core's outputs.

Why it sees motion that a frame model cannot (the moving white-noise square, Sec. 4.4, Fig. 6): each frame of that video
is white noise on its own, so a frame encoder (SiamMAE, DINO) has nothing to segment. In the core the queries are the
current frame and the keys/values the memory of earlier ones: a background patch finds its own content at its own place
in the state, a patch of the square finds it a step away. The square exists only across time, and the loss asks for it:
to paint the target, the decoder must know where the square has gone. Why asymmetric masking (Sec. 3.1): sources are
unmasked, so the state is built from whole frames, as at test time; a target keeps only int(0.05 N) patches, too few to
copy, so its pixels must come from the past.

Loss (Sec. 3.1): plain L2 over all pixels of every target (no per-patch normalization), mean over targets:
    L = 1/K sum_k 1/(3HW) ||X_hat_k - X_k||^2

Train: python train.py --method rvm --preset tiny --data noise_square   (make demo trains it longer)
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

import vit


@dataclass
class Config:
    # --- encoder: the shared tiny ViT (paper: ViT-S/B/L/H at 256 px, patch 16, Sec. 4.1) ---
    img_size: int = 64          # paper 256; tiny 64, a frame a CPU encodes quickly
    patch: int = 8              # paper 16; tiny 8 -> 8x8 = 64 tokens per frame
    dim: int = 64               # paper 384 (ViT-S); also the core's width: the state lives in the encoder's space
    depth: int = 1              # paper 12 (ViT-S); tiny narrow: wider, deeper stayed on the plateau (docs/)
    heads: int = 2              # paper 6 (ViT-S); also the core's heads (official code: same as the encoder's)
    mlp_ratio: float = 4.0      # paper 4 (ViT)
    norm_eps: float = 1e-6      # every LayerNorm's eps but the state's: the official code's 1e-6 (torch's is 1e-5)
    # --- recurrent core (Sec. 3.2) ---
    core: str = "gru"           # "gru" (paper) | "sa": full self-attention over all source frames (Table 3b)
    sa_match_params: bool = True  # Table 3b: the "sa" core's MLP widened to the gated core's parameter count
    core_depth: int = 1         # CrossBlocks in Tx; official (ViT-L) model 4
    # --- decoder (Sec. 3.1), fixed across model sizes as in MAE (Sec. 4.1) ---
    decoder_dim: int = 64       # official 512
    decoder_depth: int = 1      # official 8
    decoder_heads: int = 2      # official 16
    decoder_norm_kv: bool = True  # official False (no LN on the keys/values); without it tiny stays at chance (docs/)
    # --- the pretext task (Sec. 3, 4.1) ---
    mask_ratio: float = 0.95    # of each target's patches; sources are never masked
    n_source: int = 4           # consecutive source frames unrolled by the core; paper 4 (Table 3a: 1, 2, 4)
    n_targets: int = 2          # targets per clip, each its own delta; paper 4; tiny 2 (fewer decoder passes a step)
    delta_min: int = 1          # paper 4 (after the last source); tiny 1: near targets teach motion first. The square
    delta_max: int = 4          # wraps in 8 frames: a target 8 after a source IS it, so n_source + this <= 8; paper 48
    clip_len: int = 16          # frames the loader supplies; needs >= n_source + delta_max; paper 64
    max_delta: int = 16         # classes of the one-hot time-offset embedding (> delta_max); official 64
    checkpoint: bool = False    # recompute the per-frame encoder in backward (BPTT memory, Sec. 5); for ViT-L/H
    # --- optimizer: AdamW, warmup + cosine (Sec. 4.1; values in the paper's supplement, so MAE's) ---
    blr: float = 9.6e-2         # MAE 1.5e-4 per 256 (lr = blr * B / 256); tiny: docs/experiments.md's choice
    weight_decay: float = 0.05  # MAE 0.05
    betas: tuple = (0.9, 0.95)  # MAE (0.9, 0.95)
    warmup_steps: int = 250     # MAE 5% of the run; tiny: a small share of a demo run (docs/experiments.md)
    grad_clip: float = 1.0      # MAE 0 (no clip); tiny 1.0 guards backprop through time at a larger lr
    legacy = dict(norm_eps=1e-5, sa_match_params=False)   # what older checkpoints were trained with (methods.py)

    def __post_init__(self):
        vit.check_vit_config(self)          # widths, heads, mask ratio: one line naming the field
        vit.check_int(self, "clip_len", 1)
        vit.check_int(self, "core_depth", 0)
        if self.core not in ("gru", "sa"):
            raise ValueError(f"core must be 'gru' or 'sa'; got {self.core!r}")
        if self.n_source < 1 or self.n_targets < 1:
            raise ValueError(f"need n_source >= 1 and n_targets >= 1; got {self.n_source}, {self.n_targets}")
        if not 1 <= self.delta_min <= self.delta_max < self.max_delta:
            raise ValueError(f"need 1 <= delta_min <= delta_max < max_delta; got "
                             f"{self.delta_min}, {self.delta_max}, {self.max_delta}")
        if self.clip_len < self.n_source + self.delta_max:
            raise ValueError(f"clip_len={self.clip_len} < n_source + delta_max = {self.n_source + self.delta_max}")

    @classmethod
    def tiny(cls):
        return cls()

    @classmethod
    def small(cls):
        # RVM-S: ViT-S/16 on 256 px; core depth and decoder of the official (ViT-L) model; Sec. 4.1 sampling
        return cls(img_size=256, patch=16, dim=384, depth=12, heads=6, core_depth=4, decoder_dim=512,
                   decoder_depth=8, decoder_heads=16, n_targets=4, delta_min=4, delta_max=48, clip_len=64,
                   max_delta=64, blr=1.5e-4, warmup_steps=5000, grad_clip=0.0)  # warmup: 5% of train.py's 100k steps


def sample(clip, cfg, generator):
    """Sec. 4.1: from each clip (B, T, 3, H, W) take n_source consecutive frames (a uniform start where the widest gap
    fits) and n_targets targets, each independently delta ~ U{delta_min..delta_max} frames after the last source frame;
    draw the noise (B, n_targets, N) that masks the targets. The data pipeline cropped and flipped the clip as a whole.
    Randomness from `generator`: start, deltas, noise."""
    vit.check_frames(clip, cfg.patch, "clip", ndim=5)
    B, T, _, H, W = clip.shape
    S, K = cfg.n_source, cfg.n_targets
    if T < S + cfg.delta_max:
        raise ValueError(f"clip has {T} frames; need n_source + delta_max = {S + cfg.delta_max} (clip_len)")
    gen_device = generator.device
    start = torch.randint(0, T - S - cfg.delta_max + 1, (B, 1), generator=generator, device=gen_device)  # (B, 1)
    delta = torch.randint(cfg.delta_min, cfg.delta_max + 1, (B, K), generator=generator, device=gen_device)
    noise = torch.rand(B, K, (H // cfg.patch) * (W // cfg.patch), generator=generator, device=gen_device)
    t_source = start + torch.arange(S, device=gen_device)                  # (B, S) consecutive
    t_target = start + S - 1 + delta                                       # (B, K) delta after the last source
    rows = torch.arange(B, device=clip.device)[:, None]
    return {"source": clip[rows, t_source.to(clip.device)].cpu(),          # (B, S, 3, H, W)
            "target": clip[rows, t_target.to(clip.device)].cpu(),          # (B, K, 3, H, W)
            "delta": delta.cpu(), "noise": noise.cpu(),                    # (B, K), (B, K, N)
            "t_source": t_source.cpu(), "t_target": t_target.cpu()}


# ----------------------------------------------------------------------------
# the recurrent core (Sec. 3.2) and its self-attention ablation (Table 3b)


def gru_step(e, s, w_input_update, w_state_update, w_input_reset, w_state_reset, state_norm, tx):
    """Sec. 3.2, one step of the GRU-gated transformer core, s_t = R(e_t, s_{t-1}):
        u_t = sigmoid(W_e^u e_t + W_s^u s_{t-1})          update gate
        r_t = sigmoid(W_e^r e_t + W_s^r s_{t-1})          reset gate
        h_t = Tx(q = e_t, kv = r_t * LN(s_{t-1}))         cross- then self-attention
        s_t = (1 - u_t) * s_{t-1} + u_t * h_t,   o_t = s_t
    e, s (B, 1+N, D); the W are the core's linears (w_input_update = W_e^u, ...), state_norm LN, tx Tx."""
    u = torch.sigmoid(w_input_update(e) + w_state_update(s))   # (B, 1+N, D) update gate
    r = torch.sigmoid(w_input_reset(e) + w_state_reset(s))     # (B, 1+N, D) reset gate
    h = tx(e, r * state_norm(s))                               # (B, 1+N, D) candidate state
    return (1 - u) * s + u * h                                 # (B, 1+N, D) s_t = o_t


class GatedTransformerCore(nn.Module):
    """`gru_step` (or a student's step of its signature) and its learned pieces: the W, bias-free linears on the feature
    dimension shared by all tokens, named by role (e = input, s = state); e_t, s_t (B, 1+N, D), one state vector a
    token."""

    def __init__(self, dim, depth, heads, mlp_ratio, gru_step=gru_step, eps=1e-6):
        super().__init__()
        self.gru_step = gru_step
        self.w_input_update, self.w_state_update = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.w_input_reset, self.w_state_reset = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        # LN(s_{t-1}) is in the official code (scale, no bias, eps 1e-4), not in the paper's equation: it keeps the
        # keys' scale fixed however the state drifts (a bare scale: vit.init_weights wants LN biases). Tx's keys/values
        # are then r * LN(s) as they are (norm_kv=False, the official block), so r -> 0 blanks them.
        self.state_scale = nn.Parameter(torch.ones(dim))
        self.blocks = nn.ModuleList([vit.CrossBlock(dim, heads, mlp_ratio, norm_kv=False, eps=eps)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)   # Tx ends with a LayerNorm, as in the official code

    def state_norm(self, s):
        return F.layer_norm(s, s.shape[-1:], self.state_scale.to(s.dtype), None, eps=1e-4)

    def tx(self, e, kv):
        for block in self.blocks:
            e = block(e, kv)                 # (B, 1+N, D): queries e_t, keys/values the reset state
        return self.norm(e)

    def forward(self, e, s):
        return self.gru_step(e, s, self.w_input_update, self.w_state_update, self.w_input_reset, self.w_state_reset,
                         self.state_norm, self.tx)


class SelfAttentionCore(nn.Module):
    """Table 3b ablation: full self-attention over the tokens of all frames (1 x p x p patches + a sin-cos time code):
    every output sees every frame, the future too, at a cost ~ T^2. Same depth, width and (match=True) parameters as
    the gated core, as in the paper: its layers have (8 + 2r) D^2 weights (MLP ratio r) and its gates 4 D^2, a plain
    layer (4 + 2r') D^2, so the MLP ratio r' = r + 2 + 2 / depth (tiny 8, small 6.5) leaves only O(D) terms apart."""

    def __init__(self, dim, depth, heads, mlp_ratio, eps=1e-6, match=True):
        super().__init__()
        ratio = mlp_ratio + 2 + 2 / max(depth, 1) if match else mlp_ratio
        self.blocks = nn.ModuleList([vit.Block(dim, heads, ratio, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, e):
        B, T, L, D = e.shape
        when = vit.sincos_1d(torch.arange(T), D).to(e.device, e.dtype)      # (T, D) frame index
        x = (e + when[None, :, None]).reshape(B, T * L, D)                  # (B, T(1+N), D), time-major
        for block in self.blocks:
            x = block(x)
        return self.norm(x).view(B, T, L, D)                                # (B, T, 1+N, D)


# ----------------------------------------------------------------------------
# the model


class RVM(nn.Module):
    """A per-frame ViT, a recurrent core over the source frames, a decoder that rebuilds each target (Sec. 3)."""

    def __init__(self, cfg=None, gru_step=gru_step):   # gru_step: the gated core's step (exercises/ pass their own)
        super().__init__()
        self.cfg = cfg = cfg or Config()
        if gru_step is not globals()["gru_step"] and cfg.core != "gru":   # the module's (the argument hides it)
            raise ValueError(f"gru_step is the gated core's step; core={cfg.core!r} has none")
        # Sec. 3.1 "Encoder": one ViT for every frame, source and target (shared weights, as SiamMAE)
        self.encoder = vit.ViT(cfg.img_size, cfg.patch, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.norm_eps)
        # Sec. 3.2 "Recurrent core" (or the Table 3b self-attention ablation)
        self.core = GatedTransformerCore(cfg.dim, cfg.core_depth, cfg.heads, cfg.mlp_ratio, gru_step, cfg.norm_eps) \
            if cfg.core == "gru" else SelfAttentionCore(cfg.dim, cfg.core_depth, cfg.heads, cfg.mlp_ratio,
                                                        cfg.norm_eps, cfg.sa_match_params)
        # Sec. 3.1 "Decoder": ONE linear embeds both target tokens and source features, [MASK] token, decoder positions,
        # the time offset (one-hot(delta) -> linear, as the official code), blocks, pixels
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.delta_embed = nn.Linear(cfg.max_delta, cfg.decoder_dim)
        grid = cfg.img_size // cfg.patch
        self.register_buffer("decoder_pos", vit.sincos_pos_2d(grid, grid, cfg.decoder_dim)[None],
                             persistent=False)            # (1, N, Dd), fixed
        self.decoder_blocks = nn.ModuleList([vit.CrossBlock(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio,
                                                            norm_kv=cfg.decoder_norm_kv, eps=cfg.norm_eps)
                                             for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim, eps=cfg.norm_eps)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, cfg.patch ** 2 * 3)
        self.apply(vit.init_weights)
        nn.init.normal_(self.encoder.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def check_batch(self, batch):
        """source (B, S, 3, H, W), target (B, K, 3, H, W), delta (B, K), noise (B, K, N), or a ValueError."""
        patch = self.cfg.patch
        source, target, delta, noise = (batch[k] for k in ("source", "target", "delta", "noise"))
        vit.check_frames(source, patch, "source", ndim=5)
        vit.check_frames(target, patch, "target", ndim=5)
        (B, K, _, H, W), N = target.shape, (target.shape[-2] // patch) * (target.shape[-1] // patch)
        if (source.shape[0], *source.shape[2:]) != (B, 3, H, W) or (*delta.shape, *noise.shape) != (B, K, B, K, N):
            got = ", ".join(f"{k} {tuple(batch[k].shape)}" for k in ("source", "target", "delta", "noise"))
            raise ValueError(f"need source (B, S, 3, H, W), target (B, K, 3, H, W), delta (B, K), noise (B, K, N) "
                             f"with (B, K, N) = ({B}, {K}, {N}); got {got}")
        return source, target, delta, noise

    def encode(self, source, target, ids_keep):
        """Sec. 3.1 "Encoder": every frame through the ViT on its own. source (B, S, 3, H, W) whole, target
        (B, K, 3, H, W) only its visible patches ids_keep (B*K, n) -> x_src (B, S, 1+N, D), x_tgt (B, K, 1+n, D)."""
        ckpt = self.cfg.checkpoint and torch.is_grad_enabled()   # recompute in backward: BPTT memory (Sec. 5)
        run = (lambda x, ids: checkpoint(self.encoder, x, ids, use_reentrant=False)) if ckpt else self.encoder
        (B, S), K = source.shape[:2], target.shape[1]
        x_src = run(source.flatten(0, 1), None)                                   # (B*S, 1+N, D)
        x_tgt = run(target.flatten(0, 1), ids_keep)                               # (B*K, 1+n, D)
        return x_src.view(B, S, *x_src.shape[1:]), x_tgt.view(B, K, *x_tgt.shape[1:])

    def init_state(self, B, N=None):
        """s_0 = 0 (Sec. 3.1): (B, 1+N, D), one D-vector per token, [CLS] included."""
        N = self.encoder.grid[0] * self.encoder.grid[1] if N is None else N
        return self.encoder.cls_token.new_zeros(B, 1 + N, self.cfg.dim)

    def unroll(self, x_src, state=None):
        """Sec. 3.2: unroll the core over encoded frames x_src (B, T, 1+N, D) from `state` (None = s_0) -> outputs
        o_1..o_T (B, T, 1+N, D) and the last state (None for "sa", which has no state)."""
        if self.cfg.core == "sa":
            return self.core(x_src), None
        s = self.init_state(x_src.shape[0], x_src.shape[2] - 1) if state is None else state
        outs = []
        for t in range(x_src.shape[1]):
            s = self.core(x_src[:, t], s)                                         # (B, 1+N, D)
            outs.append(s)
        return torch.stack(outs, dim=1), s                                        # (B, T, 1+N, D)

    def step(self, frame, state=None):
        """Streaming: a frame (B, 3, H, W) and the state (B, 1+N, D) (None = s_0) -> its features o_t (B, h, w, D),
        [CLS] dropped, and the new state. Only the state is carried: memory flat in time."""
        if self.cfg.core != "gru":
            raise ValueError("step() needs the recurrent core (core='gru'); the 'sa' ablation has no state")
        vit.check_frames(frame, self.cfg.patch, "frame")
        B, _, H, W = frame.shape
        x = self.encoder(frame)                                                   # (B, 1+N, D)
        s = self.init_state(B, x.shape[1] - 1) if state is None else state
        s = self.core(x, s)                                                       # (B, 1+N, D)
        return s[:, 1:].reshape(B, H // self.cfg.patch, W // self.cfg.patch, -1), s   # (B, h, w, D)

    def decoder_tokens(self, x, ids_restore, delta, h, w):
        """Sec. 3.1 "Decoder" input for the targets: project x (B*K, 1+n, D) to the decoder width, put the n visible
        tokens back in place among [MASK] tokens, add decoder positions and the embedding of the time offset delta
        (B*K,) to all N patch tokens. -> (B*K, 1+N, Dd), [CLS] first."""
        x = self.decoder_embed(x)                                                 # (B*K, 1+n, Dd)
        patches = vit.restore_tokens(x[:, 1:], ids_restore, self.mask_token)      # (B*K, N, Dd)
        pos = vit.sincos_pos_for(self.decoder_pos, self.encoder.grid, (h, w))   # (1, N, Dd)
        when = self.delta_embed(F.one_hot(delta, self.cfg.max_delta).to(x.dtype))  # (B*K, Dd)
        return torch.cat([x[:, :1], patches + pos + when[:, None]], dim=1)        # (B*K, 1+N, Dd)

    def decode(self, o_src, x_tgt, ids_restore, delta, h, w):
        """o_src (B, S, 1+N, D) core outputs, x_tgt (B, K, 1+n, D), ids_restore (B*K, N), delta (B, K) -> the prediction
        for every patch of every target (B, K, N, p*p*3)."""
        B, K = x_tgt.shape[:2]
        y = self.decoder_tokens(x_tgt.flatten(0, 1), ids_restore, delta.flatten(), h, w)   # (B*K, 1+N, Dd)
        # keys/values: the outputs of ALL source frames along the token axis (Sec. 3.1), one copy for the K targets
        ctx = self.decoder_embed(o_src.flatten(1, 2))                             # (B, S(1+N), Dd)
        for block in self.decoder_blocks:
            y = block(y, ctx)                                                     # (B*K, 1+N, Dd)
        pred = self.decoder_pred(self.decoder_norm(y))[:, 1:]                     # (B*K, N, p*p*3), drop [CLS]
        return pred.view(B, K, *pred.shape[1:])                                   # (B, K, N, p*p*3)

    def loss(self, pred, target):
        """Sec. 3.1: plain L2 over ALL pixels of every target (visible patches too, no per-patch normalization), mean
        over pixels and targets. pred (B, K, N, P), target (B, K, 3, H, W) -> {"loss"}."""
        target = vit.patch_targets(target.flatten(0, 1), self.cfg.patch, norm_pix=False).view_as(pred)
        return {"loss": (pred.float() - target.float()).pow(2).mean()}

    def predict(self, batch):
        """The shared path of forward and reconstruct -> vit.Prediction: pred (B, K, N, P), mask (B, K, N), frames the
        targets (B, K, 3, H, W), latent x_tgt (B, K, 1+n, D)."""
        source, target, delta, noise = self.check_batch(batch)
        B, K, _, H, W = target.shape
        h, w = H // self.cfg.patch, W // self.cfg.patch
        # Sec. 3.1 "Masking": sources 0%, each target 95% with its own mask (noise drawn in `sample`)
        ids_keep, ids_restore, mask = vit.random_masking(B * K, h * w, self.cfg.mask_ratio,
                                                         noise=noise.flatten(0, 1), device=target.device)
        x_src, x_tgt = self.encode(source, target, ids_keep)                      # (B, S, 1+N, D), (B, K, 1+n, D)
        o_src, _ = self.unroll(x_src)                                             # (B, S, 1+N, D)
        pred = self.decode(o_src, x_tgt, ids_restore, delta.to(target.device), h, w)   # (B, K, N, P)
        return vit.Prediction(pred, mask.view(B, K, h * w), target, x_tgt)

    def forward(self, batch):
        out = self.predict(batch)
        losses = self.loss(out.pred, out.frames)
        with torch.no_grad():
            # what pasting the last source frame would score: the model must beat it by modelling motion
            last = vit.patch_targets(batch["source"][:, -1], self.cfg.patch, norm_pix=False)   # (B, N, P)
            copy = self.loss(last[:, None].expand_as(out.pred), out.frames)["loss"]
        return {**losses, "loss_copy_last": copy}

    @torch.no_grad()
    def features(self, video):
        """(B, T, 3, H, W) -> (B, T, h, w, D): the core's output o_t at every frame, what calling `step` frame by frame
        gives (memory flat in T). The "sa" ablation attends over the whole video at once (~ T^2)."""
        vit.check_frames(video, self.cfg.patch, "video", ndim=5)
        B, T, _, H, W = video.shape
        h, w = H // self.cfg.patch, W // self.cfg.patch
        if self.cfg.core == "sa":
            x = self.encoder(video.reshape(B * T, 3, H, W))                       # (B*T, 1+N, D)
            o, _ = self.unroll(x.view(B, T, *x.shape[1:]))                        # (B, T, 1+N, D)
            return o[:, :, 1:].reshape(B, T, h, w, -1)                            # (B, T, h, w, D)
        out, state = video.new_empty(B, T, h, w, self.cfg.dim), self.init_state(B, h * w)   # out filled in place
        for t0 in range(0, T, 16):   # the encoder ignores the state: 16 frames a batch, faster than one by one
            x = self.encoder(video[:, t0:t0 + 16].flatten(0, 1))                 # (B*16, 1+N, D)
            x = x.view(B, -1, *x.shape[1:])                                       # (B, 16, 1+N, D)
            for t in range(x.shape[1]):
                state = self.core(x[:, t], state)                                 # (B, 1+N, D)
                out[:, t0 + t] = state[:, 1:].reshape(B, h, w, -1)
        return out

    @torch.no_grad()
    def reconstruct(self, batch):
        """For display: source and target frames, the prediction for every patch of every target ("pred", (B, K, 3, H,
        W)), "paste" = the targets' visible patches + predicted masked ones, and the mask (B, K, N), 1 = masked."""
        out = self.predict(batch)                                                 # pred (B, K, N, P), mask (B, K, N)
        target = out.frames                                                       # (B, K, 3, H, W)
        pred, paste = vit.paste_patches(out.pred.flatten(0, 1), target.flatten(0, 1), out.mask.flatten(0, 1),
                                        self.cfg.patch)
        pred, paste = pred.view_as(target), paste.view_as(target)                 # (B, K, 3, H, W)
        return {"source": batch["source"], "target": target, "pred": pred, "paste": paste, "mask": out.mask}
