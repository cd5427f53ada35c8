"""SIGMA's plateau, the oracle check (issue 25): replace phi by a feature with a known answer
and train Psi alone (phi's term held) on the swapped-prediction loss. If Psi cannot learn to
predict an oracle's clusters, the masking and Psi plumbing (or the world) is at fault, not phi.

Oracles, per tube, as a fixed random unit vector per value:
    position  the tube's spatial index: Psi's decoder knows it, so it must be learned (plumbing);
    object    the front-most object id on the tube's first frame (shapes world): is what lies
              under the mask predictable from the visible tubes in this world at this mask ratio?
    kind      the class (background, square, disc, triangle) on the tube's first frame (shapes world;
              with --pattern each kind wears its own pattern): the clusters the token-kind probe reads.
    moving    whether most pixels of the tube's first frame change in the next clip frame
              (noise_square_video with its default options).

Prints, every --log-every steps, ce_psi (log K: nothing predicted), the agreement K <q_phi, q_Psi>
(1: independent) and the entropy of q_phi (the floor of ce_psi), averaged since the last line;
with --probe, at the end, the token-kind probe of Psi's encoder (evaluate.token_kinds) on its world.

    python scripts/sigma_oracle.py --oracle position
    python scripts/sigma_oracle.py --oracle object --set mask_ratio=0.75
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import evaluate  # noqa: E402
import sigma  # noqa: E402
import toyworld  # noqa: E402
import vit  # noqa: E402
from methods import build_config  # noqa: E402


def world_batch(oracle, cfg, B, seed, n_shapes=3, side=None, pattern=False):
    """B clips of clip_len frames with a per-pixel label (T, H, W) from the world's ground truth."""
    clips, labels = [], []
    for i in range(B):
        if oracle == "moving":
            video, _ = toyworld.noise_square_video(T=cfg.clip_len, size=cfg.img_size, seed=seed * 1000 + i)
            moved = torch.zeros(cfg.clip_len, cfg.img_size, cfg.img_size, dtype=torch.long)
            moved[:-1] = ((video[1:] - video[:-1]).abs().sum(1) > 0).long()
            clips.append(video), labels.append(moved)
        else:
            video, ids, kinds = toyworld.shapes_video(T=cfg.clip_len, size=cfg.img_size, seed=seed * 1000 + i,
                                                      n_shapes=n_shapes, side=side, pattern=pattern, with_kinds=True)
            clips.append(video), labels.append(kinds[ids] if oracle == "kind" else ids)
    return torch.stack(clips), torch.stack(labels)


def tube_labels(labels, batch, cfg, oracle):
    """(B, clip_len, H, W) labels -> (B, t*N) one value per tube (of the sampled frames)."""
    B, p, k = labels.shape[0], cfg.patch, cfg.tubelet
    idx = batch["start"][:, None] + cfg.stride * torch.arange(cfg.num_frames)            # (B, T)
    lab = labels[torch.arange(B)[:, None], idx][:, ::k]                                  # (B, t, H, W) first frames
    t, H, W = lab.shape[1:]
    if oracle == "position":
        return torch.arange(H // p * (W // p)).repeat(t)[None].expand(B, -1)
    cells = lab.reshape(B, t, H // p, p, W // p, p).permute(0, 1, 2, 4, 3, 5).flatten(4)  # (B, t, h, w, p*p)
    if oracle == "moving":
        return (cells.float().mean(-1) > 0.5).long().flatten(1)
    return cells.mode(-1).values.flatten(1)                                              # majority id / kind


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--oracle", choices=["position", "object", "kind", "moving"], default="position")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--shapes", type=int, default=3, help="shapes per video (object oracle)")
    ap.add_argument("--side", type=int, nargs=2, default=None, help="shape side range in px (object, kind)")
    ap.add_argument("--pattern", action="store_true", help="each kind wears its own pattern (object, kind)")
    ap.add_argument("--probe", action="store_true", help="at the end, the token-kind probe of Psi's encoder and of "
                    "its random-init twin (object, kind)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a sigma.Config field of the "
                    "tiny preset (repeatable)")
    args = ap.parse_args(argv)
    for flag in ("steps", "batch_size", "log_every", "shapes"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1; got {getattr(args, flag)}")
    if not args.lr > 0:
        ap.error(f"--lr must be a number > 0; got {args.lr}")
    if args.side is not None and not 1 <= args.side[0] <= args.side[1]:
        ap.error(f"--side expects two sizes in px, 1 <= LO <= HI; got {args.side[0]} {args.side[1]}")
    torch.manual_seed(0)
    try:
        cfg = build_config("sigma", "tiny", args.set + [f"psi_warmup_steps={args.steps + 1}"])   # phi's term held
    except ValueError as e:
        ap.error(str(e) if str(e).startswith("--set") else f"--set: {e}")
    model = sigma.SIGMA(cfg)
    codes = F.normalize(torch.randn(4096, cfg.feat_dim, generator=torch.Generator().manual_seed(1)), dim=1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    g, sums, n, t0 = torch.Generator().manual_seed(0), {}, 0, time.time()
    for step in range(args.steps):
        clip, labels = world_batch(args.oracle, cfg, args.batch_size, step, args.shapes, args.side, args.pattern)
        batch = sigma.sample(clip, cfg, g)
        pred = model.predict(batch)
        x_psi, ids_mask = pred.pred, pred.ids_mask
        target = codes[tube_labels(labels, batch, cfg, args.oracle)]                     # (B, t*N, F)
        out = model.loss(vit.gather_tokens(x_psi, ids_mask), vit.gather_tokens(target, ids_mask),
                         torch.tensor(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        for k in ("ce_psi", "agreement", "entropy_q_phi", "entropy_q_psi", "spread_psi"):
            sums[k] = sums.get(k, 0.0) + out[k].item()
        n += 1
        if (step + 1) % args.log_every == 0:
            print(f"step {step + 1:4d} | " + " ".join(f"{k} {v / n:.3f}" for k, v in sums.items())
                  + f" | log K {torch.tensor(float(cfg.num_prototypes)).log():.3f} | {time.time() - t0:.0f} s",
                  flush=True)
            sums, n = {}, 0
    if args.probe and args.oracle in ("object", "kind"):
        world = {"n_shapes": args.shapes, "side": args.side, "pattern": args.pattern}
        model.eval()
        twin = evaluate.random_init("sigma", cfg)
        print(f"token-kind probe of Psi's encoder: {evaluate.token_kinds(model, cfg, world):.3f}; its random-init "
              f"twin: {evaluate.token_kinds(twin, cfg, world):.3f} (chance 0.25)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
