"""SIGMA: Sinkhorn-Guided Masked Video Modeling (Salehi, Dorkenwald, Thoker, Gavves, Snoek, Asano, ECCV 2024)
https://arxiv.org/abs/2407.15447

VideoMAE (Tong et al. 2022) predicts the pixels of masked space-time tubes, a low-level target (Sec. 3.1). SIGMA learns
the target: a projection network phi embeds every tube (an MLP on its pixels, or a frozen pretrained image encoder:
"SIGMA w/ DINO"), and the video model Psi, a VideoMAE encoder-decoder that sees 10% of the tubes, predicts phi's
features of the masked tubes (Sec. 3.2). With an l2 loss both networks collapse to one constant (Eq. 2, Table 7b). So
both are scored against K shared learnable prototypes, Sinkhorn-Knopp turns scores into cluster assignments q that use
every prototype equally over the batch (Eq. 3-4), and each branch predicts the other's assignments (Eq. 5-7, SwAV's
swapped prediction). Shapes as in vit.py, plus F the feature dim, t = T/tubelet.

Loss over the B = videos x masked tubes of a batch, x and prototypes c_k l2-normalized:
    s = x^T C,  p = softmax(s / tau) (Eq. 6),  q = Sinkhorn(s) (Eq. 3-4, no gradient)
    L = 1/B sum_i [ CE(p(s_i^phi), q_i^Psi) + CE(p(s_i^Psi), q_i^phi) ],  CE(p, q) = -sum_k q_k log p_k (Eq. 5, 7)
and, for the Table 7b ablation (loss="l2"): L = 1/B sum_i ||x_i^phi - x_i^Psi||^2 (Eq. 2); for the VideoMAE baseline
(loss="pixels", Table 7) Psi predicts each masked tube's normalized pixels: L = mean ||T_i - Psi_i||^2 (Eq. 1).

Train: python train.py --method sigma --data shapes:pattern=true:side=20,40   (the claims' world: docs/claims.md)
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import vit


@dataclass
class Config:
    # --- video: clips of num_frames frames at a stride, cut into tubelet x p x p tubes (Sec. 4) ---
    img_size: int = 64          # paper 224; tiny 64
    patch: int = 8              # paper 16; tiny 8 -> 8x8 = 64 tubes per time slot
    tubelet: int = 2            # frames per tube; paper 2 (VideoMAE's 2 x 16 x 16 cubes)
    num_frames: int = 8         # paper 16; tiny 8 -> 4 time slots x 64 = 256 tubes
    stride: int = 2             # frames between sampled frames; paper 2 (SSv2) or 4 (K400)
    clip_len: int = 15          # frames the loader supplies; needs >= (num_frames - 1) * stride + 1
    # --- video model Psi: joint space-time ViT encoder (paper ViT-S/B, no [CLS], as VideoMAE) ---
    dim: int = 128              # paper 384 (ViT-S)
    depth: int = 4              # paper 12
    heads: int = 4              # paper 6
    mlp_ratio: float = 4.0      # paper 4 (ViT)
    norm_eps: float = 1e-6      # every LayerNorm's eps: the code's 1e-6 (VideoMAE's; torch's is 1e-5)
    mask_ratio: float = 0.75    # paper 0.9, one mask for all time slots (tubes); 0.9 leaves 6 of 64 tubes a slot
    # --- Psi's decoder: narrower than the encoder (VideoMAE; code ViT-S: 192 wide, 4 deep, 3 heads) ---
    decoder_dim: int = 64       # code 192 (half the encoder); tiny 64 (3D sin-cos needs a multiple of 16)
    decoder_depth: int = 2      # code 4
    decoder_heads: int = 2      # code 3
    # --- projection network phi and the feature space (Sec. 3.2, Sec. 4) ---
    projector: str = "mlp"      # "mlp" (SIGMA w/ MLP) | a train.py checkpoint: its frozen ViT is phi (~ w/ DINO)
    proj_hidden: tuple = (256, 256)  # paper "3-layer MLP", 1024 wide, ~3M (Table 7a): (1024, 1024); code +512
    norm_target: bool = True    # the MLP phi sees each tube normalized; code: normlize_target, True in its scripts
    feat_dim: int = 64          # paper 256; must equal the checkpoint encoder's width when phi is one
    loss: str = "sinkhorn"      # "sinkhorn" (Eq. 7) | "l2" (Eq. 2, collapses, Table 7b) | "pixels" (VideoMAE, Eq. 1)
    num_prototypes: int = 64    # K; paper 1000-6000, best 4000 (Table 6); code scripts 3000
    temperature: float = 0.1    # tau of Eq. 6; the paper gives no value; code 0.1 (SwAV's)
    sinkhorn_eps: float = 0.05  # epsilon = 1/lambda of Eq. 3; paper gives no value; code 0.05
    sinkhorn_iters: int = 10    # paper gives no value; code 10
    hard_targets: bool = False  # paper: soft q in Eq. 5; code: one-hot argmax(q)
    detach_proto_psi: bool = False  # code: True (C learns from phi's scores only); the paper does not say
    renorm_prototypes: bool = False  # code: True, C renormalized in place each forward (lost under FSDP)
    psi_warmup_steps: int = 1500  # not in paper or code (0): phi's CE term held so Psi learns phi's clusters first
    hold_phi_decay: bool = True  # and phi's weight decay held with it (AdamW decays weights whose gradient is zero)
    # --- optimizer (Sec. 4: VideoMAE's AdamW recipe, cosine decay) ---
    blr: float = 0.032          # paper 1.5e-4 per 256 clips (lr = blr * B / 256), 800+ epochs; tiny: larger, short runs
    weight_decay: float = 0.05  # paper 0.05
    betas: tuple = (0.9, 0.95)  # paper (0.9, 0.95)
    warmup_steps: int = 100     # paper 40 epochs; tiny: a small share of a short run
    grad_clip: float = 1.0      # paper 0 (VideoMAE does not clip); tiny 1.0 guards the larger lr
    legacy = dict(norm_eps=1e-5, hold_phi_decay=False)   # what older checkpoints were trained with (methods.py)

    def __post_init__(self):
        vit.check_vit_config(self)          # widths, heads, mask ratio: one line naming the field
        vit.check_int(self, "clip_len", 1)
        vit.check_number(self, "psi_warmup_steps")
        if self.tubelet < 1 or self.num_frames < 1 or self.num_frames % self.tubelet:
            raise ValueError(f"num_frames={self.num_frames} must be a positive multiple of tubelet={self.tubelet}")
        if self.clip_len < (self.num_frames - 1) * self.stride + 1:
            raise ValueError(f"clip_len={self.clip_len} cannot hold {self.num_frames} frames at stride "
                             f"{self.stride}; need >= {(self.num_frames - 1) * self.stride + 1}")
        if self.loss not in ("sinkhorn", "l2", "pixels") or self.dim % 16 or self.decoder_dim % 16:
            raise ValueError(f"need loss 'sinkhorn', 'l2' or 'pixels' and dim, decoder_dim divisible by 16; "
                             f"got {self.loss!r}, {self.dim}, {self.decoder_dim}")
        if min(self.stride, self.num_prototypes, self.sinkhorn_iters, self.feat_dim) < 1 or self.temperature <= 0:
            raise ValueError("need stride, num_prototypes, sinkhorn_iters, feat_dim >= 1 and temperature > 0")
        if not self.sinkhorn_eps >= 0.025:   # exp(-2 / eps) of cosine scores underflows float32 below it
            raise ValueError(f"sinkhorn_eps={self.sinkhorn_eps} must be >= 0.025 (float32 exp of cosines / eps)")

    @classmethod
    def tiny(cls):
        return cls()

    @classmethod
    def small(cls):
        # ViT-S/16 on 224 px, 16 frames at stride 2 (SSv2), the paper's and code's settings (Sec. 4)
        return cls(img_size=224, patch=16, num_frames=16, stride=2, clip_len=31, dim=384, depth=12, heads=6,
                   decoder_dim=192, decoder_depth=4, decoder_heads=3, proj_hidden=(1024, 1024), feat_dim=256,
                   # warm-up: 40 epochs of SSv2 (169k videos) at the paper's batch 2048; at another batch the same
                   # 40 epochs are 40 x 169k / batch steps (--set warmup_steps); a shorter run scales it (train.py)
                   num_prototypes=4000, blr=1.5e-4, grad_clip=0.0, warmup_steps=3300,
                   mask_ratio=0.9, psi_warmup_steps=0)


def sample(clip, cfg, generator):
    """Sec. 4: num_frames frames `stride` apart from a random start (VideoMAE's sampling), and the noise (B, N) of the
    tube mask (one spatial mask per video, for all its time slots). All randomness from `generator`: start, then
    noise."""
    vit.check_frames(clip, cfg.patch, "clip", ndim=5)
    B, T, _, H, W = clip.shape
    span = (cfg.num_frames - 1) * cfg.stride + 1
    if T < span:
        raise ValueError(f"clip has {T} frames; {cfg.num_frames} at stride {cfg.stride} need >= {span} (clip_len)")
    gen_device = generator.device
    start = torch.randint(0, T - span + 1, (B,), generator=generator, device=gen_device)         # (B,)
    idx = start[:, None] + cfg.stride * torch.arange(cfg.num_frames, device=gen_device)         # (B, T)
    noise = torch.rand(B, (H // cfg.patch) * (W // cfg.patch), generator=generator, device=gen_device)  # (B, N)
    video = clip[torch.arange(B, device=clip.device)[:, None], idx.to(clip.device)]            # (B, T, 3, H, W)
    return {"video": video.cpu(), "noise": noise.cpu(), "start": start.cpu()}


# ----------------------------------------------------------------------------
# helpers


def sinkhorn(scores, epsilon=0.05, n_iters=10, distributed=None):
    """Eq. 3-4 by Sinkhorn-Knopp, the official loop (utils.sinkhorn, as SwAV's): scores (B, K) of the batch's B masked
    tubes -> q (B, K), no gradient. Q = exp(scores / epsilon) (epsilon = 1/lambda), then n_iters times: each prototype's
    mass to 1/K (r), each sample's to 1/B (c); last, each sample's q to sum 1 (at few iterations a per-sample softmax
    start is another algorithm). Stable: the global max is subtracted before exp while scores span < ~80 epsilon
    (float32 exp; cosines: epsilon >= 0.025); it and the code's division by the global total are global scales, which
    the first r step cancels. Under DDP/FSDP the max and the prototype sums are all-reduced: the global batch."""
    dist = torch.distributed
    if distributed is None:   # pass False to use one rank's rows only (e.g. for display on rank 0)
        distributed = dist.is_available() and dist.is_initialized()
    reduce = lambda x, op="SUM": dist.all_reduce(x, op=getattr(dist.ReduceOp, op)) if distributed else x
    tiny = torch.finfo(torch.float32).tiny   # a prototype no sample reaches stays 0 instead of NaN
    with torch.no_grad():
        s = scores.detach().float()                                                # (B, K)
        top = s.max()
        reduce(top, "MAX")                                                         # the global max
        q = torch.exp((s - top) / epsilon)                                         # (B, K), max 1
        for _ in range(n_iters):
            usage = q.sum(dim=0)                                                   # (K,) mass per prototype
            reduce(usage)                                                          # over the global batch
            q = q / (q.shape[1] * usage.clamp(min=tiny))                           # r: 1/K per prototype
            # c: equal mass per sample; the code's 1/B, any constant gives the same q (a global scale cancels)
            q = q / (q.shape[0] * q.sum(dim=1, keepdim=True).clamp(min=tiny))
        return q / q.sum(dim=1, keepdim=True).clamp(min=tiny)                      # (B, K), rows sum to 1


def swapped_prediction(s_phi, s_psi, q_phi, q_psi, temperature):
    """Eq. 5-7 over M masked tubes: scores s (M, K), Sinkhorn targets q (M, K), no gradient through q -> (CE of phi's p
    against q_Psi, CE of Psi's p against q_phi), CE(p, q) = -sum_k q_k log softmax(s / tau)_k."""
    ce = lambda s, q: -(q * F.log_softmax(s / temperature, dim=1)).sum(1).mean()
    return ce(s_phi, q_psi), ce(s_psi, q_phi)   # each branch predicts the other's clusters (swapped)


def tube_masking(noise, t, ratio, device=None):
    """Sec. 4 / VideoMAE "tube" masking: MAE's random masking of N spatial positions from noise (B, N), the same ones in
    all t time slots, on `device` (None: noise's). Over the t*N tubes (time-major): ids_keep (B, t*n), ids_restore
    (B, t*N), ids_mask (B, t*(N-n)), mask (B, t*N) 1 = masked."""
    B, N = noise.shape
    ids_keep, ids_restore, mask = vit.random_masking(B, N, ratio, noise=noise, device=device)   # (B, n), (B, N)
    ids_mask = ids_restore.argsort(dim=1)[:, ids_keep.shape[1]:]                   # (B, N-n) the removed ones
    slot = torch.arange(t, device=mask.device)[None, :, None] * N                  # (1, t, 1) first tube of slot
    ids_keep = (ids_keep[:, None, :] + slot).reshape(B, -1)                        # (B, t*n)
    ids_mask = (ids_mask[:, None, :] + slot).reshape(B, -1)                        # (B, t*(N-n))
    ids_restore = torch.cat([ids_keep, ids_mask], dim=1).argsort(dim=1)            # (B, t*N)
    return ids_keep, ids_restore, ids_mask, mask.repeat(1, t)                      # ..., (B, t*N)


# ----------------------------------------------------------------------------
# the model


class SIGMA(nn.Module):
    """Psi, a VideoMAE that predicts phi's features of the masked tubes, both scored against K prototypes (Sec. 3)."""

    def __init__(self, cfg=None, sinkhorn=sinkhorn):   # sinkhorn: Eq. 3-4's solver (exercises/ pass their own)
        super().__init__()
        self.cfg = cfg = cfg or Config()
        self.sinkhorn = sinkhorn
        # Sec. 3.1: the video model Psi, an asymmetric encoder-decoder (VideoMAE)
        self.encoder = vit.TubeViT(cfg.img_size, cfg.num_frames, cfg.patch, cfg.tubelet, cfg.dim, cfg.depth,
                                   cfg.heads, cfg.mlp_ratio, cfg.norm_eps)
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        pos = vit.sincos_pos_3d(*self.encoder.grid, cfg.decoder_dim)[None]        # (1, t*N, Dd), fixed
        self.register_buffer("decoder_pos", pos, persistent=False)
        self.decoder_blocks = nn.ModuleList([vit.Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio, cfg.norm_eps)
                                             for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim, eps=cfg.norm_eps)
        pixels = cfg.loss == "pixels"   # VideoMAE: the target is the tube's pixels, phi the identity (Sec. 3.1)
        tube = cfg.tubelet * cfg.patch ** 2 * 3
        self.decoder_pred = nn.Linear(cfg.decoder_dim, tube if pixels else cfg.feat_dim)   # feature space (Sec. 3.2)
        # Sec. 3.2, Sec. 4: phi, an MLP on each tube's normalized pixels (Linear -> GELU -> ... -> Linear)
        widths = [tube, *cfg.proj_hidden, cfg.feat_dim]
        layers = [m for a, b in zip(widths[:-1], widths[1:]) for m in (nn.Linear(a, b), nn.GELU())]
        self.projector = nn.Sequential(*layers[:-1]) if cfg.projector == "mlp" and not pixels else None   # no GELU
        # Sec. 3.3: K learnable prototypes C (K, F), random unit vectors; none for l2 or pixels (DDP: no unused)
        self.prototypes = nn.Parameter(F.normalize(torch.randn(cfg.num_prototypes, cfg.feat_dim), dim=1)) \
            if cfg.loss == "sinkhorn" else None
        self.apply(vit.init_weights)
        nn.init.normal_(self.mask_token, std=0.02)
        self.frozen_encoder = None   # "SIGMA w/ DINO": loaded after init_weights, which would overwrite it
        if cfg.projector != "mlp" and not pixels:
            try:
                self.frozen_encoder = vit.load_encoder(cfg.projector, cfg.patch, cfg.feat_dim)
            except ValueError as e:
                raise ValueError(f"projector: {e} (use 'mlp', or set patch and feat_dim to match)") from None

    def check_batch(self, batch):
        """video (B, T, 3, H, W) with T divisible by tubelet and noise (B, N), or a ValueError."""
        patch, tubelet = self.cfg.patch, self.cfg.tubelet
        video, noise = batch["video"], batch["noise"]
        vit.check_frames(video, patch, "video", ndim=5)
        B, T, _, H, W = video.shape
        N = (H // patch) * (W // patch)
        if T % tubelet or tuple(noise.shape) != (B, N):
            raise ValueError(f"video must be (B, T, 3, H, W) with T divisible by tubelet={tubelet} and noise (B, N) = "
                             f"({B}, {N}); got video {tuple(video.shape)}, noise {tuple(noise.shape)}")
        return video, noise

    def encode(self, video, ids_keep):
        """Sec. 3.1: Psi's encoder on the visible tubes only: (B, T, 3, H, W), (B, t*n) -> (B, t*n, D)."""
        return self.encoder(video, ids_keep)

    def decode(self, latent, ids_restore, t, h, w):
        """Psi's decoder (VideoMAE): visible tubes back among [MASK] tokens, positions, blocks, a head to the feature
        space. latent (B, t*n, D), ids_restore (B, t*N) -> x^Psi of every tube (B, t*N, F)."""
        x = vit.restore_tokens(self.decoder_embed(latent), ids_restore, self.mask_token)  # (B, t*N, Dd)
        x = x + vit.sincos_pos_for(self.decoder_pos, self.encoder.grid, (t, h, w))        # (B, t*N, Dd)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))                            # (B, t*N, F)

    def phi(self, video, ids=None):
        """Sec. 3.2: the projection network phi, its features x^phi of the tubes at ids (B, m) ("inverse masking": the
        masked ones), or of all t*N tubes: (B, T, 3, H, W) -> (B, m, F); loss "pixels": the tubes' pixels."""
        cfg = self.cfg
        if self.frozen_encoder is None:
            tubes = vit.tubify(video, cfg.patch, cfg.tubelet)                     # (B, t*N, k*p*p*3)
            tubes = tubes if ids is None else vit.gather_tokens(tubes, ids)       # (B, m, k*p*p*3)
            # each tube normalized by its own statistics (MAE's norm_pix; code: per colour channel)
            tubes = vit.normalize_patches(tubes) if cfg.norm_target else tubes
            return tubes if self.projector is None else self.projector(tubes)    # (B, m, F)
        with torch.no_grad():   # frozen phi: a tube = the patch tokens of its first frame (code: videos[:, ::2])
            x = vit.frame_features(video[:, ::cfg.tubelet], cfg.patch, self.frozen_encoder).flatten(1, 3)  # (B, t*N, F)
            # code: each channel standardized over the video's tubes ("normlize_target"), then phi = identity
            x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-6)
        return x if ids is None else vit.gather_tokens(x, ids)                    # (B, m, F)

    def scores(self, x, detach_prototypes=False):
        """Eq. 5-6: x~ = x^T c (cosines), x (B, m, F) -> (B, m, K), in fp32 even under autocast."""
        C = self.prototypes.detach() if detach_prototypes else self.prototypes
        with torch.autocast(x.device.type, enabled=False):
            return F.normalize(x.float(), dim=-1) @ F.normalize(C.float(), dim=-1).t()   # (B, m, K)

    def loss(self, x_psi, x_phi, step=None):
        """Eq. 7 (Eq. 2 when cfg.loss is "l2", Eq. 1 when "pixels") between Psi's predictions and phi's features of the
        same masked tubes, both (B, m, F); step for the Psi warm-up (None: after it)."""
        cfg = self.cfg
        phi_std = x_phi.detach().float().flatten(0, 1).std(dim=0).mean()         # -> 0 when phi collapses
        if cfg.loss == "l2":                                                      # Eq. 2
            return {"loss": (x_phi.float() - x_psi.float()).pow(2).sum(-1).mean(), "phi_std": phi_std}
        if cfg.loss == "pixels":                                                  # Eq. 1, per pixel (VideoMAE)
            return {"loss": (x_phi.float() - x_psi.float()).pow(2).mean()}
        s_phi = self.scores(x_phi)                                                # (B, m, K)
        s_psi = self.scores(x_psi, detach_prototypes=cfg.detach_proto_psi)        # (B, m, K)
        # Eq. 3-4: one Sinkhorn over all masked tubes of the batch, per branch; q carries no gradient
        q_phi, q_psi = (self.sinkhorn(s.flatten(0, 1), cfg.sinkhorn_eps, cfg.sinkhorn_iters) for s in (s_phi, s_psi))
        stats = self.diagnostics(s_phi, s_psi, q_phi, q_psi)
        if cfg.hard_targets:   # code: the target is argmax(q), a one-hot label
            q_phi, q_psi = (F.one_hot(q.argmax(1), cfg.num_prototypes).float() for q in (q_phi, q_psi))
        ce_phi, ce_psi = swapped_prediction(s_phi.flatten(0, 1), s_psi.flatten(0, 1), q_phi, q_psi, cfg.temperature)
        # Psi warm-up (not in the paper): phi's term held while Psi learns phi's clusters; else phi follows Psi's
        # near-uniform q at init to the plateau p = q = 1/K (docs/experiments.md); phi's decay held too (decay_held)
        hold = (torch.as_tensor(step) >= cfg.psi_warmup_steps).float() if step is not None else 1.0   # int or tensor
        return {"loss": hold * ce_phi + ce_psi, "ce_phi": ce_phi.detach(), "ce_psi": ce_psi.detach(),
                **stats, "phi_std": phi_std}

    def decay_held(self):
        """-> (names, step): parameters AdamW must not decay before `step` (methods.param_groups, train.py): phi's MLP
        while the warm-up holds its term, as a zero gradient leaves AdamW's decay, ~5% shrinkage over a tiny hold."""
        held = self.cfg.hold_phi_decay and self.cfg.loss == "sinkhorn" and self.projector is not None
        return ({f"projector.{n}" for n, _ in self.projector.named_parameters()} if held else set(),
                self.cfg.psi_warmup_steps)

    @torch.no_grad()
    def diagnostics(self, s_phi, s_psi, q_phi, q_psi):
        """What tells the plateau (p = q = 1/K, loss 2 log K) from learning, from scores (B, m, K) and q (B*m, K): q's
        entropy per branch (log K: uniform), the agreement K <q_phi, q_Psi> (1: independent), the scores' std over
        prototypes (0: flat, so q uniform), the usage entropy of argmax(q_phi) (log K: all used)."""
        entropy = lambda p: -(p * p.clamp(min=1e-12).log()).sum(-1)
        usage = F.one_hot(q_phi.argmax(1), self.cfg.num_prototypes).float().mean(0)   # (K,)
        return {"entropy_q_phi": entropy(q_phi).mean(), "entropy_q_psi": entropy(q_psi).mean(),
                "agreement": self.cfg.num_prototypes * (q_phi * q_psi).sum(1).mean(),
                "spread_phi": s_phi.float().std(-1).mean(), "spread_psi": s_psi.float().std(-1).mean(),
                "usage_entropy": entropy(usage)}

    def predict(self, batch):
        """The shared path of forward and reconstruct -> vit.Prediction: pred x^Psi (B, t*N, F), mask (B, t*N), frames
        the video (B, T, 3, H, W), latent (B, t*n, D), ids_mask (B, t*(N-n))."""
        cfg = self.cfg
        video, noise = self.check_batch(batch)
        B, T, _, H, W = video.shape
        t, h, w = T // cfg.tubelet, H // cfg.patch, W // cfg.patch
        if cfg.renorm_prototypes and self.prototypes is not None:   # code: C renormalized in place
            self.prototypes.data.copy_(F.normalize(self.prototypes.data, dim=1))
        ids_keep, ids_restore, ids_mask, mask = tube_masking(noise, t, cfg.mask_ratio, device=video.device)
        latent = self.encode(video, ids_keep)                                     # (B, t*n, D)
        return vit.Prediction(self.decode(latent, ids_restore, t, h, w), mask, video, latent, ids_mask)   # (B, t*N, F)

    def forward(self, batch):
        out = self.predict(batch)   # Fig. 2: Psi and phi on the same masked tubes
        x_psi = vit.gather_tokens(out.pred, out.ids_mask)                         # (B, m, F)
        return self.loss(x_psi, self.phi(out.frames, out.ids_mask), batch.get("step"))

    @torch.no_grad()
    def features(self, video):
        """(B, T, 3, H, W) -> (B, T, h, w, D): encoder tokens of every tube (no masking), repeated over its frames, in
        windows of num_frames frames at the training stride (SIGMA's limited temporal support): for each phase < stride,
        frames phase, phase + stride, ..., so a tube spans the motion it did in training; a last partial window is
        padded to whole tubes with its last frame."""
        vit.check_frames(video, self.cfg.patch, "video", ndim=5)
        B, T, _, H, W = video.shape
        k, h, w, s = self.cfg.tubelet, H // self.cfg.patch, W // self.cfg.patch, self.cfg.stride
        out = torch.empty(B, T, h, w, self.cfg.dim, device=video.device)
        for phase in range(min(s, T)):
            frames = video[:, phase::s]                                           # (B, T_phase, 3, H, W)
            for start in range(0, frames.shape[1], self.cfg.num_frames):
                clip = frames[:, start:start + self.cfg.num_frames]               # (B, T', 3, H, W)
                full = torch.cat([clip, clip[:, -1:].expand(-1, -clip.shape[1] % k, -1, -1, -1)], dim=1)
                x = self.encoder(full).reshape(B, full.shape[1] // k, h, w, -1)   # (B, t, h, w, D)
                at = phase + s * torch.arange(start, start + clip.shape[1], device=out.device)   # its frames
                out[:, at] = x.repeat_interleave(k, dim=1)[:, :clip.shape[1]].to(out.dtype)
        return out                                                                # (B, T, h, w, D)

    @torch.no_grad()
    def reconstruct(self, batch):
        """For display, per frame (B, T, h, w): "mask" (1 = masked tube) and, with prototypes, cluster maps
        (argmax of the scores): "assign_phi" of every tube (the learned targets), "assign_psi" Psi's prediction for the
        masked tubes (-1 on visible ones)."""
        out, (k, p) = self.predict(batch), (self.cfg.tubelet, self.cfg.patch)    # pred (B, t*N, F), mask (B, t*N)
        video = out.frames
        B, T, _, H, W = video.shape
        frames = lambda a: a.reshape(B, T // k, H // p, W // p).repeat_interleave(k, dim=1)   # (B, T, h, w)
        shown = {"video": video, "mask": frames(out.mask)}
        if self.prototypes is not None:
            shown["assign_psi"] = frames(torch.where(out.mask.bool(), self.scores(out.pred).argmax(-1), -1))
            shown["assign_phi"] = frames(self.scores(self.phi(video)).argmax(-1))
        return shown
