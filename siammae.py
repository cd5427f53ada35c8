"""SiamMAE: Siamese Masked Autoencoders (Gupta, Wu, Deng, Fei-Fei, NeurIPS 2023)
https://arxiv.org/abs/2305.14344

MAE (He et al. 2022) extended to pairs of video frames to learn correspondence. Two frames f1 < f2 are sampled from a
clip a random gap apart (Sec. 3, Table 3b). The masking is *asymmetric*: f1 is seen whole (0% masked), f2 almost not at
all (95% masked). A *siamese* encoder (one ViT, shared weights) encodes each frame on its own, so f2's few visible
patches are an information bottleneck: the missing 95% of f2 can only be recovered by finding *where f1's content went*.
The decoder lets f2's tokens (its visible ones plus [MASK] tokens) attend to f1's tokens. That cross-attention
softmax(Q_f2 K_f1^T / sqrt(d)) is an f2 x f1 affinity matrix, the same object label propagation uses at test time:
predicting f2 means learning to copy patches of f1 to where they moved.

Loss (Sec. 3 "Decoder", MAE's norm_pix_loss), over the masked patches M of f2:
    L = 1/|M| sum_{i in M} 1/P ||pred_i - (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6)||^2
with x_i the i-th p x p patch of f2 flattened to P = p*p*3 values.

Train: python train.py --method siammae --preset tiny
"""
from dataclasses import dataclass

import torch
import torch.nn as nn

import vit


@dataclass
class Config:
    # --- encoder: the shared tiny ViT (paper: ViT-S/16 on 224 px, Sec. 4.1) ---
    img_size: int = 64          # paper 224; tiny 64, a frame a CPU encodes quickly
    patch: int = 8              # paper 16; tiny 8 -> 8x8 = 64 tokens per frame
    dim: int = 128              # paper 384 (ViT-S)
    depth: int = 4              # paper 12
    heads: int = 4              # paper 6
    mlp_ratio: float = 4.0      # paper 4 (ViT)
    encoder: str = "siamese"    # "siamese" (paper) | "joint": one ViT pass over f1 + visible f2 (Table 2a/2b)
    # --- decoder (Sec. 3 "Decoder"); App. A: MAE's defaults unless stated ---
    decoder: str = "cross_self"  # "cross_self" (paper) | "cross" | "joint" (Table 2b)
    decoder_dim: int = 128      # paper: MAE's 512 (CropMAE's ViT-S uses 256); tiny 128
    decoder_depth: int = 2      # paper: MAE's 8 (CropMAE 4); tiny 2
    decoder_heads: int = 4      # paper: MAE's 16 (CropMAE 8); tiny 4
    # --- the pretext task ---
    mask_ratio: float = 0.95    # of f2's patches (Sec. 3 "Masking", Table 2d); f1 is never masked
    norm_pix_loss: bool = True  # target = per-patch normalized pixels (Sec. 3, MAE); False = raw pixels
    gap_min: int = 2            # paper 4 frames at 30 fps (Table 4a); tiny: over 2-8 frames toyworld.py's shapes
    gap_max: int = 8            # move up to a patch or two, far enough that copying f1 in place fails, near enough to
    #                             stay in view. Paper 48
    clip_len: int = 16          # frames the loader supplies; needs >= gap_max + 1 (the widest gap)
    # --- optimizer (App. A, Table 4a: MAE's recipe, AdamW + cosine) ---
    blr: float = 0.032          # paper 1.5e-4 per 256 clips (lr = blr * B / 256) over 400-2000 epochs; tiny 0.032 as
    #                             SIGMA's: at 4e-3 a short CPU run barely trains (docs/experiments.md, pattern world)
    weight_decay: float = 0.05  # paper 0.05
    betas: tuple = (0.9, 0.95)  # paper (0.9, 0.95)
    warmup_steps: int = 100     # paper 40 epochs (of 400/2000); tiny: a small share of a short run
    grad_clip: float = 1.0      # paper 0 (MAE does not clip); tiny 1.0 guards its larger lr

    def __post_init__(self):
        vit.check_vit_config(self)          # widths, heads, mask ratio: one line naming the field
        vit.check_int(self, "clip_len", 1)
        if self.encoder not in ("siamese", "joint"):
            raise ValueError(f"encoder must be 'siamese' or 'joint'; got {self.encoder!r}")
        if self.decoder not in ("cross_self", "cross", "joint"):
            raise ValueError(f"decoder must be 'cross_self', 'cross' or 'joint'; got {self.decoder!r}")
        if not 1 <= self.gap_min <= self.gap_max:
            raise ValueError(f"need 1 <= gap_min <= gap_max; got [{self.gap_min}, {self.gap_max}]")
        if self.clip_len < self.gap_max + 1:
            raise ValueError(f"clip_len={self.clip_len} cannot hold a gap of {self.gap_max}; "
                             f"need >= {self.gap_max + 1}")

    @classmethod
    def tiny(cls):
        return cls()

    @classmethod
    def small(cls):
        # ViT-S/16 on 224 px with the paper's settings (Sec. 4.1, App. A, Table 4a)
        return cls(img_size=224, patch=16, dim=384, depth=12, heads=6, decoder_dim=512, decoder_depth=8,
                   decoder_heads=16, gap_min=4, gap_max=48, clip_len=49, blr=1.5e-4, grad_clip=0.0,
                   warmup_steps=5000)  # paper: 40 of 400-2000 epochs (2-10%); 5% of a 100k-step run


def sample(clip, cfg, generator):
    """Sec. 3 "Patchify" / Table 3b: from each clip (B, T, 3, H, W) pick two frames f1 < f2 whose gap is uniform in
    [gap_min, gap_max], f1 uniform among the starts that fit, and draw the noise (B, N) that masks f2
    (fresh per sample). The clip-level crop and flip were applied by the data pipeline, so both frames share them. All
    randomness comes from `generator`, in this order: gap, start, noise."""
    vit.check_frames(clip, cfg.patch, "clip", ndim=5)
    B, T, _, H, W = clip.shape
    if T < cfg.gap_max + 1:
        raise ValueError(f"clip has {T} frames; a gap of up to {cfg.gap_max} needs >= {cfg.gap_max + 1} (clip_len)")
    gen_device = generator.device
    gap = torch.randint(cfg.gap_min, cfg.gap_max + 1, (B,), generator=generator, device=gen_device)  # (B,)
    t1 = (torch.rand(B, generator=generator, device=gen_device) * (T - gap)).long()  # (B,) in [0, T-1-gap]
    t2 = t1 + gap                                                                    # (B,)
    noise = torch.rand(B, (H // cfg.patch) * (W // cfg.patch), generator=generator, device=gen_device)  # (B, N)
    rows = torch.arange(B, device=clip.device)
    return {"f1": clip[rows, t1.to(clip.device)].cpu(), "f2": clip[rows, t2.to(clip.device)].cpu(),  # (B, 3, H, W)
            "noise": noise.cpu(), "t1": t1.cpu(), "t2": t2.cpu()}


# ----------------------------------------------------------------------------
# the model


class SiamMAE(nn.Module):
    """One ViT for both frames, a decoder that predicts f2's masked patches from its visible ones and f1 (Fig. 1)."""

    def __init__(self, cfg=None):
        super().__init__()
        self.cfg = cfg = cfg or Config()
        # Sec. 3 "Encoder": one ViT for both frames (sin-cos positions, [CLS], no temporal position)
        self.encoder = vit.ViT(cfg.img_size, cfg.patch, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio)
        # Sec. 3 "Decoder": linear projection, [MASK] token, decoder positions, blocks, pixel head
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        grid = cfg.img_size // cfg.patch
        self.register_buffer("decoder_pos", vit.sincos_pos_2d(grid, grid, cfg.decoder_dim)[None],
                             persistent=False)            # (1, N, Dd), fixed
        if cfg.decoder == "joint":   # self-attention over both frames' tokens
            blocks = [vit.Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)]
        else:                        # f2 queries f1: cross-attn -> MLP (-> self-attn for cross_self)
            blocks = [vit.CrossBlock(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio,
                                     self_attn=cfg.decoder == "cross_self") for _ in range(cfg.decoder_depth)]
        self.decoder_blocks = nn.ModuleList(blocks)
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, cfg.patch ** 2 * 3)
        self.apply(vit.init_weights)
        nn.init.normal_(self.encoder.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def check_batch(self, batch):
        """f1, f2 (B, 3, H, W) of one shape and noise (B, N), or a ValueError."""
        patch = self.cfg.patch
        f1, f2, noise = batch["f1"], batch["f2"], batch["noise"]
        vit.check_frames(f1, patch, "f1")
        vit.check_frames(f2, patch, "f2")
        B, _, H, W = f2.shape
        N = (H // patch) * (W // patch)
        if f1.shape != f2.shape or tuple(noise.shape) != (B, N):
            got = ", ".join(f"{k} {tuple(batch[k].shape)}" for k in ("f1", "f2", "noise"))
            raise ValueError(f"f1 and f2 must both be (B, 3, H, W) and noise (B, N) = ({B}, {N}); got {got}")
        return f1, f2, noise

    def encode(self, f1, f2, ids_keep):
        """Sec. 3 "Encoder". f1, f2 (B, 3, H, W), ids_keep (B, n) the visible patches of f2 -> x1 (B, 1 + N, D), x2
        (B, 1 + n, D), [CLS] first. siamese: each frame through the ViT on its own (shared weights). joint: f1's N
        patches and f2's n visible patches in one sequence, so tokens of one frame attend to the other (Table 2b, worse:
        at test time frames are encoded alone)."""
        if self.cfg.encoder == "siamese":
            return self.encoder(f1), self.encoder(f2, ids_keep)                  # (B, 1+N, D), (B, 1+n, D)
        t1, t2 = self.encoder.embed(f1), self.encoder.embed(f2, ids_keep)        # (B, N, D), (B, n, D)
        # both frames carry the same 2D positions: no temporal position embedding (Sec. 3)
        x = self.encoder.encode_tokens(torch.cat([t1, t2], dim=1))              # (B, 1+N+n, D)
        N = t1.shape[1]
        return x[:, :1 + N], torch.cat([x[:, :1], x[:, 1 + N:]], dim=1)          # (B, 1+N, D), (B, 1+n, D)

    def decoder_tokens(self, x, ids_restore, h, w):
        """Sec. 3 "Decoder": project encoder output x (B, 1 + n, D) to the decoder width, put the n visible tokens back
        in place among [MASK] tokens (when ids_restore (B, N) is given; f1 has none masked) and add decoder positions to
        all N patch tokens, as MAE's decoder does. -> (B, 1 + N, Dd), [CLS] first."""
        x = self.decoder_embed(x)                                                # (B, 1+n, Dd)
        patches = x[:, 1:] if ids_restore is None else vit.restore_tokens(x[:, 1:], ids_restore, self.mask_token)
        pos = vit.sincos_pos_for(self.decoder_pos, self.encoder.grid, (h, w))   # (1, N, Dd)
        return torch.cat([x[:, :1], patches + pos], dim=1)                       # (B, 1+N, Dd)

    def decode(self, x1, x2, ids_restore, h, w):
        """x1 (B, 1 + N, D), x2 (B, 1 + n, D), ids_restore (B, N) -> the prediction for every patch of f2 (B, N, p*p*3)
        (Table 2b decoders)."""
        # f1's tokens get decoder positions too, as f2's: Sec. 3 "Decoder" prepares each frame's full token set the same
        # way (projection, [MASK] tokens, position embeddings) before all three decoders, and in the joint decoder both
        # frames' tokens meet in one self-attention where the added positions mark which of them share a place.
        # CropMAE's SiamMAE and RVM's official decoder add none to f1's tokens, the keys/values (they carry the
        # encoder's positions): we follow the paper's text; the two were not compared here.
        y1 = self.decoder_tokens(x1, None, h, w)                                 # (B, 1+N, Dd)
        y2 = self.decoder_tokens(x2, ids_restore, h, w)                          # (B, 1+N, Dd)
        if self.cfg.decoder == "joint":
            # vanilla blocks over the concatenation of both frames' full token sets
            y = torch.cat([y1, y2], dim=1)                                       # (B, 2(1+N), Dd)
            for block in self.decoder_blocks:
                y = block(y)
            y2 = y[:, y1.shape[1]:]                                              # (B, 1+N, Dd), f2's half
        else:
            # f2's tokens query f1's (the affinity f2 x f1); f1's tokens stay fixed, as the encoder memory of a
            # Transformer decoder. "cross" has no f2-to-f2 attention, so every f2 patch is predicted on its own
            # (spatially incoherent, Sec. 4.3).
            for block in self.decoder_blocks:
                y2 = block(y2, y1)                                               # (B, 1+N, Dd)
        return self.decoder_pred(self.decoder_norm(y2))[:, 1:]                   # (B, N, p*p*3), drop [CLS]

    def loss(self, pred, f2, mask):
        """Sec. 3: l2 between prediction and (normalized) pixels of f2, on the masked patches only. pred (B, N, P), f2
        (B, 3, H, W), mask (B, N), 1 = masked -> {"loss"}."""
        return {"loss": vit.masked_mse(pred, vit.patch_targets(f2, self.cfg.patch, self.cfg.norm_pix_loss), mask)}

    def predict(self, batch):
        """The shared path of forward and reconstruct -> vit.Prediction: pred (B, N, P), mask (B, N), frames f2, latent
        x2 (B, 1+n, D)."""
        f1, f2, noise = self.check_batch(batch)
        B, _, H, W = f2.shape
        h, w = H // self.cfg.patch, W // self.cfg.patch
        # Sec. 3 "Masking": f1 0%, f2 95%, one fresh random mask per sample (noise drawn in `sample`)
        ids_keep, ids_restore, mask = vit.random_masking(B, h * w, self.cfg.mask_ratio, noise=noise, device=f2.device)
        x1, x2 = self.encode(f1, f2, ids_keep)                                   # (B, 1+N, D), (B, 1+n, D)
        return vit.Prediction(self.decode(x1, x2, ids_restore, h, w), mask, f2, x2)   # pred (B, N, P)

    def forward(self, batch):
        out = self.predict(batch)
        losses = self.loss(out.pred, out.frames, out.mask)
        with torch.no_grad():
            # what copying f1's patch at the same place would score: the model must beat it by modelling motion
            # (it is 0 where nothing moves)
            f1 = vit.patch_targets(batch["f1"], self.cfg.patch, self.cfg.norm_pix_loss)   # (B, N, P)
            copy = self.loss(f1, out.frames, out.mask)["loss"]
        return {**losses, "loss_copy_f1": copy}

    @torch.no_grad()
    def features(self, video):
        """(B, T, 3, H, W) -> (B, T, h, w, D): every frame encoded on its own, unmasked, patch tokens after the final
        norm (what label propagation uses)."""
        return vit.frame_features(video, self.cfg.patch, self.encoder)          # (B, T, h, w, D)

    @torch.no_grad()
    def reconstruct(self, batch):
        """For display: f1, f2, the prediction for every patch of f2 in pixels ("pred", de-normalized with the true
        patches' statistics when norm_pix_loss), "paste" = f2's visible patches + predicted masked ones, and the mask
        (B, N), 1 = masked."""
        out = self.predict(batch)                                                # pred (B, N, P), mask (B, N)
        pred, paste = vit.paste_patches(out.pred, out.frames, out.mask, self.cfg.patch, self.cfg.norm_pix_loss)
        return {"f1": batch["f1"], "f2": out.frames, "pred": pred, "paste": paste, "mask": out.mask}   # (B, 3, H, W)
