"""ViC-MAE: Self-Supervised Representation Learning from Images and Video with Contrastive Masked Autoencoders
(Hernandez, Villegas, Ordonez, ECCV 2024)
https://arxiv.org/abs/2303.12001

MAE (He et al. 2022) on single frames plus a contrastive loss between frames. Two distant frames of one video, or two
strongly augmented views of one image, are a positive pair: "short videos as augmented views" (Sec. 1, Fig. 2). A
siamese ViT (one encoder, shared weights) encodes each view under its own random mask; an MAE decoder rebuilds each
view's masked patches (local features). The visible patch tokens are also pooled into one vector per view (Omega: mean,
max or GeM, Table 3b), sent through a predictor P / target T head and l2-normalized; InfoNCE pulls a clip's two views
together and pushes away every other view in the batch, on all GPUs (global features). Pooling MAE tokens, not [CLS],
keeps it from collapsing without stop-gradient (Sec. 3.2).

Loss (Sec. 3.2), for a batch of N pairs (f1, f2) on each of W processes:
    L      = L_MASK + lambda(step) * L_NEG
    L_MASK = 1/2 (MSE_f1 + MSE_f2), MSE on the masked patches of each view, with
             MAE's per-patch normalized pixels as the target (Eq. 2; its text rebuilds the first view only, the
             official code both, as here)
    L_NEG  = 1/2N sum_{anchors a in [p; z]} -log( exp(a . a+ / tau) / sum_{k != a} exp(a . k / tau) )
             with k over the 2WN embeddings of all processes (Eq. 3, NT-Xent)
    lambda(step) ramps linearly from 0 to lam over lam_warmup_steps.

Train: python train.py --method vicmae --preset tiny
"""
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn as nn
import torch.nn.functional as F

import vit


@dataclass
class Config:
    # --- encoder: the shared tiny ViT (paper: ViT-B/16 and ViT-L/16 on 224 px, Sec. 4) ---
    img_size: int = 64          # paper 224; tiny 64, a frame a CPU encodes quickly
    patch: int = 8              # paper 16; tiny 8 -> 8x8 = 64 tokens per frame
    dim: int = 128              # paper 768 (ViT-B) / 1024 (ViT-L)
    depth: int = 4              # paper 12 / 24
    heads: int = 4              # paper 12 / 16
    mlp_ratio: float = 4.0      # paper 4 (ViT)
    # --- decoder: "a small decoder as proposed by He et al." (Sec. 4): MAE's 512 wide, 8 deep ---
    decoder_dim: int = 128      # paper 512 (official code: 256 for ViT-S); tiny 128
    decoder_depth: int = 2      # paper 8; tiny 2
    decoder_heads: int = 4      # paper 16 (official code: 8 for ViT-S); tiny 4
    # --- the pretext tasks ---
    mask_ratio: float = 0.75    # of each view's patches. Paper 0.75 (Sec. 1: "98 tokens at the same rate"
    #                             as MAE's 75%); the official code uses 0.5
    norm_pix_loss: bool = True  # per-patch normalized pixels (MAE), paper and code (the code's CLI flag
    #                             --norm_pix_loss is inverted: passing it turns normalization OFF)
    pool: str = "mean"          # Omega: "mean" | "max" | "gem" (Table 3b); mean was best, used everywhere else
    gem_p: float = 3.0          # GeM exponent (Radenovic et al.): 1 is mean, infinity is max
    head_hidden: int = 512      # P / T hidden width; official code 4096; tiny 512
    head_out: int = 128         # P / T output width (the InfoNCE embedding); official code 128
    share_heads: bool = True    # P and T share parameters, "typically" with negatives (Sec. 3.1); the code
    #                             has one projector. False = two heads of the same architecture
    tau: float = 0.1            # InfoNCE temperature (official code 0.1; the paper does not print it)
    lam: float = 0.025          # final lambda (Table 3b). Official code: fixed 0.03 with recon_weight 0.97
    lam_warmup_steps: int = 200  # lambda ramps 0 -> lam over these steps (Sec. 3.2 "a schedule", length not
    #                              given); 0 = no ramp, as in the official code
    recon_weight: float = 1.0   # weight of L_MASK: paper 1 (L = L_MASK + lambda L_NEG); official code 0.97
    # --- data (Sec. 4 "Pre-Training", Sec. 5.4) ---
    clip_len: int = 16          # frames the loader supplies, split into 2 segments (distant sampling); even.
    #                             small 64: ~2 s at 30 fps, a mean gap of ~1.07 s (paper: "approx 1.06 s")
    image_fraction: float = 0.25  # share of dataset items that are still images (train.py mixes them, Fig. 2);
    #                               paper K400 + IN1K is ~80% images; tiny: mostly the toy videos
    # --- optimizer (Sec. 4 "Settings": AdamW, MAE's configuration; no values printed: MAE's and the code's) ---
    blr: float = 0.032          # MAE / code 1.5e-4 per 256 clips (lr = blr * B / 256) over 400-800 epochs; tiny 0.032
    #                             as SIGMA's: at 4e-3 a short CPU run barely trains (docs/experiments.md, pattern world)
    weight_decay: float = 0.05  # MAE / code 0.05
    betas: tuple = (0.9, 0.95)  # MAE / code (0.9, 0.95)
    warmup_steps: int = 100     # MAE / code 40 epochs; tiny: a small share of a short run
    grad_clip: float = 1.0      # MAE / code 0 (no clipping); tiny 1.0 guards its larger lr

    def __post_init__(self):
        vit.check_vit_config(self)          # widths, heads, mask ratio: one line naming the field
        vit.check_int(self, "clip_len", 1)
        if self.pool not in ("mean", "max", "gem"):
            raise ValueError(f"pool must be 'mean', 'max' or 'gem'; got {self.pool!r}")
        if self.gem_p <= 0 or self.tau <= 0:
            raise ValueError(f"gem_p and tau must be > 0; got gem_p={self.gem_p}, tau={self.tau}")
        if self.lam < 0 or self.lam_warmup_steps < 0 or self.recon_weight < 0:
            raise ValueError(f"lam, lam_warmup_steps, recon_weight must be >= 0; "
                             f"got {self.lam}, {self.lam_warmup_steps}, {self.recon_weight}")
        if self.clip_len < 2 or self.clip_len % 2:
            raise ValueError(f"clip_len must be even and >= 2 (two equal segments); got {self.clip_len}")
        if not 0 <= self.image_fraction <= 1:
            raise ValueError(f"image_fraction must be in [0, 1]; got {self.image_fraction}")

    @classmethod
    def tiny(cls):
        return cls()

    @classmethod
    def small(cls):
        # ViT-S/16 on 224 px, the paper's losses; decoder and heads as the official code's ViT-S. image_fraction 0.5 is
        # this project's choice, not the paper's: its K400 + IN1K mix is ~80% images by count and Fig. 3b varies the
        # share without naming one; half and half lets a GPU run on a video folder plus images weigh both alike
        return cls(img_size=224, patch=16, dim=384, depth=12, heads=6, decoder_dim=256, decoder_depth=8,
                   decoder_heads=8, head_hidden=4096, head_out=128, lam_warmup_steps=5000, clip_len=64,
                   image_fraction=0.5, blr=1.5e-4, grad_clip=0.0, warmup_steps=5000)


def sample(clip, cfg, generator):
    """Distant sampling (Sec. 5.4, Table 3a "D"): split each clip (B, T, 3, H, W) into 2 equal segments, draw f1
    uniformly from the first and f2 from the second (an odd last frame is never drawn), and each view's mask noise
    (B, N) (Sec. 3.2: M_i, M_j). Still images: data.py turns one image into a clip whose first half is one strongly
    augmented view and second half another (marked `is_image`), so the same rule gives an image's two views and images
    batch with videos (Fig. 2); `sample` sees only the clip. All randomness comes from `generator`, in this order: t1,
    t2, noise1, noise2."""
    vit.check_frames(clip, cfg.patch, "clip", ndim=5)
    B, T, _, H, W = clip.shape
    if T < 2:
        raise ValueError(f"clip has {T} frame(s); distant sampling needs (B, T, 3, H, W) with T >= 2")
    gen_device, seg, N = generator.device, T // 2, (H // cfg.patch) * (W // cfg.patch)
    t1 = torch.randint(0, seg, (B,), generator=generator, device=gen_device)          # (B,) in [0, T/2)
    t2 = seg + torch.randint(0, seg, (B,), generator=generator, device=gen_device)    # (B,) in [T/2, 2 T/2)
    noise1 = torch.rand(B, N, generator=generator, device=gen_device)                 # (B, N)
    noise2 = torch.rand(B, N, generator=generator, device=gen_device)                 # (B, N)
    rows = torch.arange(B, device=clip.device)
    return {"f1": clip[rows, t1.to(clip.device)].cpu(), "f2": clip[rows, t2.to(clip.device)].cpu(),  # (B, 3, H, W)
            "noise1": noise1.cpu(), "noise2": noise2.cpu(), "t1": t1.cpu(), "t2": t2.cpu()}


# ----------------------------------------------------------------------------
# helpers


def pool(x, kind="mean", p=3.0, eps=1e-6):
    """Omega (Sec. 3.2, Table 3b) over encoder outputs x (B, 1 + n, D) after the final norm: [CLS] (first) is left out,
    the n visible patch tokens are pooled -> (B, D), in fp32. GeM = (mean of x^p)^(1/p) with x clamped to >= eps as in
    Radenovic et al., whose features are non-negative (post-ReLU); on LayerNorm outputs GeM therefore pools the positive
    part only."""
    x = x[:, 1:].float()                                   # (B, n, D), no [CLS]
    if kind == "mean":
        return x.mean(dim=1)                               # (B, D)
    if kind == "max":
        return x.amax(dim=1)                               # (B, D)
    return x.clamp(min=eps).pow(p).mean(dim=1).pow(1.0 / p)  # (B, D)


def make_head(dim, hidden, out):
    """Predictor P / target T (Sec. 3.2): (Linear -> BatchNorm1d -> ReLU) x 2, then a linear output layer
    (the SimCLR projector). (B, D) -> (B, out)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


def all_gather_rows():
    """(gather, rank) for info_nce: under torch.distributed a differentiable all-gather of all processes' rows in rank
    order (its backward sums every process's loss gradient, so DDP's average is the global loss's gradient); without a
    process group (None, 0)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return (lambda x: torch.cat(dist_nn.all_gather(x), dim=0)), dist.get_rank()
    return None, 0


def info_nce(p, z, tau, gather=None, rank=0):
    """L_NEG, Eq. 3 in its symmetric NT-Xent form. p, z (N, K) l2-normalized, row i of p and row i of z a positive pair.
    The 2N anchors [p; z] are scored against the 2M keys [p_all; z_all], M = N without `gather`, else the rows of all
    processes (this one's at block `rank`). Each anchor leaves itself out (the indicator 1[p_i != z_k]); the rest are
    its positive and 2M - 2 negatives. Mean over the 2N anchors, in fp32."""
    p, z = p.float(), z.float()
    N = p.shape[0]
    p_all, z_all = (p, z) if gather is None else (gather(p), gather(z))  # (M, K)
    M = p_all.shape[0]
    logits = torch.cat([p, z]) @ torch.cat([p_all, z_all]).T / tau      # (2N, 2M)
    i = rank * N + torch.arange(N, device=p.device)                     # (N,) where pair i sits among the M
    itself, positive = torch.cat([i, M + i]), torch.cat([M + i, i])     # (2N,) key index per anchor
    logits = logits.masked_fill(F.one_hot(itself, 2 * M).bool(), float("-inf"))
    return F.cross_entropy(logits, positive)


def lam_at(step, cfg):
    """lambda(step), Sec. 3.2 "a schedule to gradually introduce the contrastive loss" (shape not given; linear is the
    simplest): 0 at step 0, linear up to cfg.lam at cfg.lam_warmup_steps, then constant. step: int or 0-dim tensor (kept
    on its device, no host sync). Explicit default: step None (a batch without "step": benchmarks, probes) means after
    the ramp, the final cfg.lam."""
    if step is None or cfg.lam_warmup_steps == 0:
        return cfg.lam
    if torch.is_tensor(step):
        return cfg.lam * (step.float() / cfg.lam_warmup_steps).clamp(0.0, 1.0)
    return cfg.lam * min(max(step / cfg.lam_warmup_steps, 0.0), 1.0)


# ----------------------------------------------------------------------------
# the model


class ViCMAE(nn.Module):
    """One ViT for both views, MAE's decoder for each, and InfoNCE between their pooled tokens (Sec. 3.2)."""

    def __init__(self, cfg=None, info_nce=info_nce):   # info_nce: L_NEG's function (exercises/ pass their own)
        super().__init__()
        self.cfg = cfg = cfg or Config()
        self.info_nce = info_nce
        # Sec. 3.2: one ViT for both views (siamese, shared weights)
        self.encoder = vit.ViT(cfg.img_size, cfg.patch, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio)
        # Sec. 3.2: MAE's decoder d_phi, shared by both views: projection, [MASK] token f_m, decoder positions,
        # self-attention blocks, pixel head
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        grid = cfg.img_size // cfg.patch
        self.register_buffer("decoder_pos", vit.sincos_pos_2d(grid, grid, cfg.decoder_dim)[None],
                             persistent=False)            # (1, N, Dd), fixed
        self.decoder_blocks = nn.ModuleList(
            [vit.Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, cfg.patch ** 2 * 3)
        # Sec. 3.2: predictor P and target T; one module when shared (target is None)
        self.predictor = make_head(cfg.dim, cfg.head_hidden, cfg.head_out)
        self.target = None if cfg.share_heads else make_head(cfg.dim, cfg.head_hidden, cfg.head_out)
        self.apply(vit.init_weights)
        nn.init.normal_(self.encoder.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def check_batch(self, batch):
        """f1, f2 (B, 3, H, W) of one shape and noise1, noise2 (B, N), or a ValueError."""
        patch = self.cfg.patch
        f1, f2, n1, n2 = batch["f1"], batch["f2"], batch["noise1"], batch["noise2"]
        vit.check_frames(f1, patch, "f1")
        vit.check_frames(f2, patch, "f2")
        B, _, H, W = f2.shape
        N = (H // patch) * (W // patch)
        if f1.shape != f2.shape or tuple(n1.shape) != (B, N) or tuple(n2.shape) != (B, N):
            got = ", ".join(f"{k} {tuple(batch[k].shape)}" for k in ("f1", "f2", "noise1", "noise2"))
            raise ValueError(f"f1 and f2 must both be (B, 3, H, W) and noise1, noise2 (B, N) = ({B}, {N}); got {got}")
        return f1, f2, n1, n2

    def encode(self, f1, f2, ids_keep):
        """f_theta (Sec. 3.2), siamese: both views through the one ViT as one batch of 2B frames, f1s then f2s (a pair's
        views are rows i and B + i), each frame with its own visible patches ids_keep (2B, n). f1, f2 (B, 3, H, W) ->
        (2B, 1 + n, D), [CLS] first, after the final norm."""
        return self.encoder(torch.cat([f1, f2]), ids_keep)                      # (2B, 1+n, D)

    def decode(self, x, ids_restore, h, w):
        """d_phi(f_theta(X^v) + f_m) (Sec. 3.2): x (B, 1 + n, D) -> the prediction for every patch (B, N, p*p*3), as
        MAE's decoder."""
        x = self.decoder_embed(x)                                                # (B, 1+n, Dd)
        patches = vit.restore_tokens(x[:, 1:], ids_restore, self.mask_token)     # (B, N, Dd)
        pos = vit.sincos_pos_for(self.decoder_pos, self.encoder.grid, (h, w))   # (1, N, Dd)
        x = torch.cat([x[:, :1], patches + pos], dim=1)                          # (B, 1+N, Dd), [CLS] kept as in MAE
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]                    # (B, N, p*p*3), drop [CLS]

    def heads(self, x1, x2):
        """The predictor and target heads (Sec. 3.2): p = P(Omega(x1)) / ||.||, z = T(Omega(x2)) / ||.||. x1, x2
        (B, 1 + n, D) -> p, z (B, K). Each view is its own BatchNorm batch, as in the official code
        (one batch per head call)."""
        target = self.predictor if self.target is None else self.target
        p = self.predictor(pool(x1, self.cfg.pool, self.cfg.gem_p))             # (B, K)
        z = target(pool(x2, self.cfg.pool, self.cfg.gem_p))                     # (B, K)
        return F.normalize(p.float(), dim=-1), F.normalize(z.float(), dim=-1)

    def loss(self, pred, frames, mask, p, z, step=None):
        """pred (2B, N, P) for frames (2B, 3, H, W) (f1s then f2s), mask (2B, N) 1 = masked, p, z (B, K) -> L =
        recon_weight L_MASK + lambda(step) L_NEG."""
        target = vit.patch_targets(frames, self.cfg.patch, self.cfg.norm_pix_loss)   # (2B, N, P)
        # Eq. 2 on the masked patches. Its text rebuilds the first view only (I_i); the official code rebuilds both, and
        # so do we. Both views mask the same number of patches, so one mean over the 2B frames is the average of the two
        # views' losses
        loss_mask = vit.masked_mse(pred, target, mask)
        loss_neg = self.info_nce(p, z, self.cfg.tau, *all_gather_rows())        # Eq. 3
        lam = lam_at(step, self.cfg)
        loss = self.cfg.recon_weight * loss_mask + lam * loss_neg
        lam = lam.detach().float() if torch.is_tensor(lam) else torch.full((), lam, device=loss.device)
        return {"loss": loss, "loss_mask": loss_mask.detach(), "loss_neg": loss_neg.detach(), "lam": lam}

    def predict(self, batch):
        """The shared path of forward and reconstruct, both views as one batch of 2B frames (f1s then f2s) ->
        vit.Prediction: pred (2B, N, P), mask (2B, N), frames (2B, 3, H, W), latent x (2B, 1+n, D)."""
        f1, f2, n1, n2 = self.check_batch(batch)
        B, _, H, W = f2.shape
        h, w = H // self.cfg.patch, W // self.cfg.patch
        # Sec. 3.2: a different random mask M_i, M_j per view (noise drawn in `sample`)
        ids_keep, ids_restore, mask = vit.random_masking(2 * B, h * w, self.cfg.mask_ratio,
                                                         noise=torch.cat([n1, n2]), device=f2.device)   # (2B, N)
        x = self.encode(f1, f2, ids_keep)                                        # (2B, 1+n, D)
        return vit.Prediction(self.decode(x, ids_restore, h, w), mask, torch.cat([f1, f2]), x)

    def forward(self, batch):
        B = batch["f1"].shape[0]
        if self.training and B < 2:
            raise ValueError(f"training needs >= 2 pairs per process (BatchNorm1d in P and T, in-batch "
                             f"negatives of Eq. 3); got f1 of shape {tuple(batch['f1'].shape)}")
        out = self.predict(batch)
        p, z = self.heads(out.latent[:B], out.latent[B:])                      # (B, K) each
        return self.loss(out.pred, out.frames, out.mask, p, z, batch.get("step"))

    @torch.no_grad()
    def features(self, video):
        """(B, T, 3, H, W) -> (B, T, h, w, D): every frame encoded on its own, unmasked, patch tokens after the final
        norm (what label propagation uses)."""
        return vit.frame_features(video, self.cfg.patch, self.encoder)          # (B, T, h, w, D)

    @torch.no_grad()
    def embed(self, video):
        """(B, T, 3, H, W) -> (B, T, D): the global vector per frame, Omega over all patch tokens of the unmasked frame,
        l2-normalized (the encoder's representation before P / T, for retrieval and linear probes)."""
        vit.check_frames(video, self.cfg.patch, "video", ndim=5)
        B, T, _, H, W = video.shape
        v = pool(self.encoder(video.reshape(B * T, 3, H, W)), self.cfg.pool, self.cfg.gem_p)  # (B*T, D)
        return F.normalize(v, dim=-1).reshape(B, T, -1)                          # (B, T, D)

    @torch.no_grad()
    def reconstruct(self, batch):
        """For display: f1, f2 and, per view (stacked on dim 1), the prediction for every patch in pixels ("pred"
        (B, 2, 3, H, W), de-normalized with the true patches' statistics when norm_pix_loss), "paste" = visible patches
        + predicted masked ones, and the mask (B, 2, N), 1 = masked."""
        out = self.predict(batch)                                                # pred (2B, N, P), mask (2B, N)
        pred, paste = vit.paste_patches(out.pred, out.frames, out.mask, self.cfg.patch, self.cfg.norm_pix_loss)
        two = lambda t: torch.stack(t.chunk(2), dim=1)                           # (2B, ...) -> (B, 2, ...)
        return {"f1": batch["f1"], "f2": batch["f2"], "pred": two(pred), "paste": two(paste), "mask": two(out.mask)}
