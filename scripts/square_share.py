"""Why k-means misses a noise square that the features hold (docs/experiments.md, issue 26 item 2).

For each checkpoint, on held-out videos of each noise-square variant:
    IoU         evaluate.py's metric: k-means K = 2 over all tokens of all frames of a video, best match
    IoU - blank the same on the features less those of a blank grey video (each token's position code and the
                state's drift with time, what any video shows there): an analysis, not the metric
    linear IoU  a per-token linear probe of square / background, trained on other held-out videos of the variant
    shares      how each video's feature variance splits: the square's (between its tokens and the background's),
                the position's (each token's mean over the video's frames: its place and the static texture there)
                and the frame's (each frame's mean), averaged over videos. K-means K = 2 takes the largest split.
A change detector is scored beside them: per token the mean |x_t - x_(t-1)| (one number, 0 at t = 0), what frame
differencing alone reaches with RVM's causal view.

    python scripts/square_share.py --ckpt runs/rvm/ckpt.pt [--ckpt ...] [--videos 16] [--frames 16] [--device cuda]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import evaluate  # noqa: E402
import methods  # noqa: E402
import metrics  # noqa: E402
import toyworld  # noqa: E402

# the held-out variants of issue 26 (evaluate.py --world) at 64-px frames, the default world, and held-out draws of
# the mix; at larger frames the off-grid variant scales with the frame (8 px a frame at 256 px)
VARIANTS = {"default": {}, "per-pixel": {"grain": 1, "lattice": 1},
            "2 px a frame off the grid": {"grain": 2, "lattice": 2, "speed": 2},
            "bounce": {"boundary": "bounce"}, "mix": None}


def variant_options(variant, size):
    scale = max(1, size // 64)
    return {k: v * scale if k in ("grain", "lattice", "speed") and v > 1 else v for k, v in VARIANTS[variant].items()}


def mix_set(n, T, size, first_seed):
    """n held-out videos of the training distribution noise_square:mix=true, video i drawn from seed
    first_seed + i, moving along DIRECTIONS[i % 8] -> videos (n, T, 3, H, W), masks (n, T, H, W)."""
    pairs = []
    for i in range(n):
        world = toyworld.noise_square_mix(size, torch.Generator().manual_seed(first_seed + i))
        pairs.append(toyworld.noise_square_along(T, size, i % len(toyworld.DIRECTIONS), seed=first_seed + i, **world))
    return torch.stack([v for v, _ in pairs]), torch.stack([m for _, m in pairs])


def held_out(variant, n, T, size, train=False):
    """Videos and masks of one variant: the test videos from evaluate.py's IoU block of seeds (the mix: its own
    block), the probe's training videos (train=True) from the motion probe's block (the mix: 50_000 further on)."""
    if VARIANTS[variant] is None:
        return mix_set(n, T, size, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["mix"] + 50_000 * train)
    first = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["probe" if train else "iou"]
    videos, masks, _ = toyworld.noise_square_set(n, T, size, first, **variant_options(variant, size))
    return videos, masks


def change_features(videos, patch):
    """The change detector: (V, T, 3, H, W) -> (V, T, h, w, 1), per token the mean |x_t - x_(t-1)| over its pixels
    and channels; 0 at t = 0, where nothing has moved yet."""
    diff = torch.zeros_like(videos)
    diff[:, 1:] = (videos[:, 1:] - videos[:, :-1]).abs()
    V, T = videos.shape[:2]
    tok = F.avg_pool2d(diff.mean(2).flatten(0, 1)[:, None], patch)           # (V*T, 1, h, w)
    return tok.view(V, T, *tok.shape[-2:], 1)


def variance_shares(feats, square):
    """One video's features (T, h, w, D) and its square (T, h, w) bool -> the shares of the total variance (summed
    over dimensions) taken by the square / background split, by each position's mean over frames, and by each
    frame's mean: (square, position, frame) floats in [0, 1]."""
    D = feats.shape[-1]
    x, y = feats.reshape(-1, D).double(), square.reshape(-1)
    total = x.var(0, unbiased=False).sum()
    p = y.double().mean()
    gap = x[y].mean(0) - x[~y].mean(0) if 0 < p < 1 else torch.zeros(D, dtype=x.dtype)
    position = feats.double().mean(0).reshape(-1, D).var(0, unbiased=False).sum()
    frame = feats.double().mean((1, 2)).var(0, unbiased=False).sum()
    return tuple((v / total).item() for v in (p * (1 - p) * gap.pow(2).sum(), position, frame))


def score(train, test, blank, patch):
    """Features and masks of the probe's videos and of the test videos, ((V, T, h, w, D), (V, T, H, W)) each, and the
    features of a blank video (T, h, w, D) -> {"iou", "iou_blank", "linear_iou", "square", "position", "frame"} over
    the test videos."""
    truth = lambda masks: metrics.token_fractions(masks.long(), patch, 2)[..., 1] > 0.5   # (V, T, h, w) as evaluate
    (ftr, mtr), (fte, mte) = train, test
    ytr, yte = truth(mtr), truth(mte)
    D = fte.shape[-1]
    kmeans_iou = lambda f: torch.stack([metrics.square_iou(f[v], yte[v], seed=v)[1].mean() for v in range(len(f))])
    pred = metrics.linear_probe(ftr.reshape(-1, D).double(), ytr.reshape(-1).long(), fte.reshape(-1, D).double(),
                                yte.reshape(-1).long(), balanced=True, predict=True).view(yte.shape).bool()
    shares = torch.tensor([variance_shares(fte[v], yte[v]) for v in range(len(fte))]).mean(0)
    return {"iou": kmeans_iou(fte).mean().item(), "iou_blank": kmeans_iou(fte - blank).mean().item(),
            "linear_iou": metrics.iou(pred, yte, dims=(-2, -1)).mean().item(),
            **dict(zip(("square", "position", "frame"), shares.tolist()))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", action="append", default=[], help="a train.py checkpoint of a noise-square world")
    ap.add_argument("--videos", type=int, default=16, help="test videos per variant (as many more train the probe)")
    ap.add_argument("--frames", type=int, default=16, help="frames per video (evaluate.py's default)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    args = ap.parse_args(argv)
    try:
        device = methods.device_for(args.device)
    except ValueError as e:
        ap.error(str(e))
    if args.videos < 2 or args.frames < 2:
        ap.error("need --videos >= 2 and --frames >= 2")
    models = []
    for path in args.ckpt:
        try:
            model, cfg, meta = methods.load_checkpoint(path)
        except (FileNotFoundError, ValueError) as e:
            ap.error(str(e))
        models.append((path, model.to(device).eval(), cfg))
    size = models[0][2].img_size if models else 64
    if any(cfg.img_size != size for _, _, cfg in models):
        ap.error("the checkpoints see frames of different sizes; score them one at a time")
    patch = models[0][2].patch if models else 8
    print("| features | variant | IoU (k-means) | IoU - blank | linear IoU | square share | position share | "
          "frame share |\n|---|---|---|---|---|---|---|---|", flush=True)
    blank = torch.full((1, args.frames, 3, size, size), 0.5)             # the worlds' grey, nothing in it
    blanks = [change_features(blank, patch)[0]]                          # (T, h, w, D) per row below
    blanks += [evaluate.extract(model, blank, device)[0][0] for _, model, _ in models]
    for variant in VARIANTS:
        sets = [held_out(variant, args.videos, args.frames, size, train) for train in (True, False)]
        t0 = time.perf_counter()
        rows = [("change detector", [(change_features(v, patch), m) for v, m in sets])]
        rows += [(path, [(evaluate.extract(model, v, device)[0], m) for v, m in sets])
                 for path, model, _ in models]
        for (name, (train, test)), blank_features in zip(rows, blanks):
            r = score(train, test, blank_features, patch)
            print(f"| {name} | {variant} | {r['iou']:.3f} | {r['iou_blank']:.3f} | {r['linear_iou']:.3f} | "
                  f"{r['square']:.2f} | {r['position']:.2f} | {r['frame']:.2f} |", flush=True)
        print(f"   ({variant}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
