"""See what a model learned: PCA, k-means, the moving noise square, reconstructions.

    python viz.py --ckpt runs/rvm/ckpt.pt --video noise_square --out runs/rvm/viz
    python viz.py --ckpt runs/rvm/ckpt.pt --ckpt runs/siammae/ckpt.pt --video shapes --out runs/compare
    python viz.py --ckpt runs/rvm/ckpt.pt --video my_clip.mp4 --frames 128 --out runs/rvm/viz-real

--video is noise_square (a held-out video like the training ones),
noise_square_paper (RVM Fig. 6: a half-frame square crossing the frame once),
shapes, or the path of a video file or a folder of frames. --ckpt may repeat:
every figure then shows the checkpoints side by side (RVM Fig. 6/7 layout).
Writes into --out:

    pca.png          input frames, then per checkpoint the top 3 principal
                     components of its features as RGB (RVM Sec. 4.4, Fig. 5)
    kmeans.png       per checkpoint: k-means (K = 5) over all tokens of all
                     frames, colour-coded, and overlaid on the input
    demo.png         RVM Fig. 6: input / the true mask (when there is one) /
                     each checkpoint's k-means / the first checkpoint's
                     feature map, over time. The feature map is the principal
                     component that best follows the motion in the pixels
                     (`feature_map`: no ground truth), so give RVM first
    demo.gif, .mp4   the same rows, animated over every frame
    recon_NAME.png   source frame(s) | masked target | prediction | target;
                     SIGMA: the prototypes of the masked tubes

Features of long videos: RVM streams frame by frame (constant memory), frame
models encode each frame, SIGMA goes in windows of its num_frames (see
methods.video_features). The metric code (k-means, PCA) is metrics.py's.
"""
import argparse
import os

import matplotlib
matplotlib.use("Agg")                     # files only, no display
import matplotlib.pyplot as plt
import imageio.v3 as iio
import numpy as np
import torch

import data
import methods
import metrics
import toyworld

VIZ_SEED = toyworld.EVAL_SEED + 300_000   # held-out videos, a block of seeds no probe uses (toyworld.py)

# ----------------------------------------------------------------------------
# small image helpers: everything is float numpy (..., H, W, 3) in [0, 1] until saved


def upsample(x, p, rgb=False):
    """Token grid -> pixels, nearest: (..., h, w) -> (..., h*p, w*p), or with
    rgb=True (..., h, w, 3) -> (..., h*p, w*p, 3)."""
    axis = x.ndim - (3 if rgb else 2)
    return x.repeat(p, axis).repeat(p, axis + 1)


def palette(k, seed=0):
    """(k, 3) colours: matplotlib's tab10 for k <= 10, fixed random ones above (SIGMA's prototypes)."""
    if k <= 10:
        return np.array(plt.get_cmap("tab10").colors[:k])
    return np.random.default_rng(seed).uniform(0.1, 0.95, (k, 3))


def colorize(labels, k):
    """int labels (...) -> (..., 3); -1 (nothing to show) is grey."""
    colours = np.concatenate([palette(k), [[0.5, 0.5, 0.5]]])          # index -1 -> last row, grey
    return colours[labels]


def frames_np(video):
    """(T, 3, H, W) tensor -> (T, H, W, 3) numpy."""
    return video.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy()


def masked(image, mask, p):
    """image (H, W, 3), mask (h, w) 1 = removed -> removed patches grey."""
    return np.where(upsample(np.asarray(mask, dtype=bool), p)[..., None], 0.5, image)


def motion_energy(video, p):
    """(T, 3, H, W) -> (T, h, w): each token's mean |x_t - x_(t-1)| over its pixels (frame 0 takes frame 1's).
    What moves, from the pixels alone: no ground truth."""
    d = (video[1:] - video[:-1]).abs().mean(1) if len(video) > 1 else torch.zeros_like(video[:, 0])   # (T-1, H, W)
    d = torch.cat([d[:1], d])                                                                            # (T, H, W)
    return torch.nn.functional.avg_pool2d(d[:, None].float(), p)[:, 0]


def feature_map(feats, motion, n=8):
    """The feature row of the demo: of the top `n` principal components of feats (T, h, w, D), fit over all
    frames and tokens, the one whose map correlates most (in absolute value) with the motion energy
    (T, h, w) of the pixels, signed so that moving tokens are bright, min-max scaled, in viridis.
    -> (T, h, w, 3), the component's rank (0 = largest variance), its correlation."""
    x = feats.reshape(-1, feats.shape[-1]).float()
    x = x - x.mean(0)
    comps = torch.linalg.svd(x, full_matrices=False)[2][:n]                  # (n, D) principal directions
    y = x @ comps.T                                                           # (M, n)
    z = lambda a: (a - a.mean(0)) / a.std(0).clamp(min=1e-8)
    m = motion.reshape(-1, 1).float()
    corr = (z(y) * z(m)).mean(0) if m.std() > 0 else torch.zeros(y.shape[1])  # (n,) Pearson, per component
    i = int(corr.abs().argmax())
    v = y[:, i] * (1 if corr[i] >= 0 else -1)
    v = ((v - v.min()) / (v.max() - v.min()).clamp(min=1e-8)).reshape(feats.shape[:-1])
    return plt.get_cmap("viridis")(v.numpy())[..., :3], i, float(corr[i].abs())


# ----------------------------------------------------------------------------
# videos and models


def load_video(kind, T, size, seed):
    """-> video (T, 3, H, W) in [0, 1] and the ground-truth mask (T, H, W) or None."""
    if kind == "noise_square":
        videos, masks, _ = toyworld.noise_square_set(1, T, size, seed)
        return videos[0], masks[0]
    if kind == "noise_square_paper":
        return toyworld.noise_square_paper(T=T, size=size, seed=seed)
    if kind == "shapes":
        return toyworld.shapes_video(T=T, size=size, seed=seed)
    video = data.read_video(kind, size=size, max_frames=T)
    return video, None


def load_models(paths, device, parts=None):
    """[(name, model, cfg, method)]; names are the method, numbered when repeated."""
    out = []
    for i, path in enumerate(paths):
        model, cfg, meta = methods.load_checkpoint(path, device, parts)
        names = [m for _, _, _, m in out]
        name = meta["method"] if meta["method"] not in names else f"{meta['method']}-{i + 1}"
        out.append((name, model, cfg, meta["method"]))
    return out


# ----------------------------------------------------------------------------
# figures


def panel_figure(rows, path, title, labels=None):
    """rows: [[(caption, image (H, W, 3))]] -> one PNG, with an optional label
    left of each row. Drawn as ONE image with text on it: a matplotlib axes
    per panel costs ~0.1 s, and a strip has dozens of panels."""
    H, W = rows[0][0][1].shape[:2]
    inch = H / 1.2                                                        # canvas pixels per inch: panels 1.2 in
    gap, pad = round(0.3 * inch), round(0.06 * inch)                      # room for captions; between panels
    left = round(1.3 * inch) if labels else pad
    top = round((0.2 + 0.15 * (title.count("\n") + 1)) * inch)           # room for the title, line by line
    ncols = max(len(r) for r in rows)
    canvas = np.ones((top + len(rows) * (H + gap), left + ncols * (W + pad), 3))
    fig = plt.figure(figsize=(canvas.shape[1] / inch, canvas.shape[0] / inch))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.axis("off")
    for r, row in enumerate(rows):
        y = top + r * (H + gap) + gap
        for c, (caption, image) in enumerate(row):
            x = left + c * (W + pad)
            canvas[y:y + H, x:x + W] = np.clip(image, 0, 1)
            ax.text(x + W / 2, y - pad, caption, ha="center", va="bottom", fontsize=7)
        if labels:
            ax.text(left - pad, y + H / 2, labels[r], ha="right", va="center", fontsize=7)
    ax.imshow(canvas, interpolation="nearest")
    ax.text(canvas.shape[1] / 2, top / 2, title, ha="center", va="center", fontsize=9)
    fig.savefig(path, dpi=max(100, round(2 * inch)))                      # >= 2 output pixels per video pixel
    plt.close(fig)


def strip_figure(rows, times, path, title):
    """rows: [(label, frames (T, H, W, 3))] -> one PNG, a row per entry and a
    column per time in `times` (captioned in the first row)."""
    cells = [[(f"t={t}" if r == 0 else "", frames[t]) for t in times] for r, (_, frames) in enumerate(rows)]
    panel_figure(cells, path, title, labels=[label for label, _ in rows])


def save_animation(rows, stem, scale, fps):
    """rows: [frames (T, H, W, 3)] -> stem.gif and stem.mp4, each frame the
    rows stacked top to bottom (the PNG strip's rows), scaled up (nearest)."""
    T, W = len(rows[0]), rows[0].shape[2]
    frames = []
    for t in range(T):
        img = np.concatenate(sum([[r[t], np.ones((2, W, 3))] for r in rows], [])[:-1], 0)   # (H', W, 3)
        img = img.repeat(scale, 0).repeat(scale, 1)
        frames.append((img * 255).round().astype(np.uint8))
    frames = np.stack(frames)                                             # (T, H', W', 3)
    iio.imwrite(stem + ".gif", frames, duration=1000 / fps, loop=0)
    # H.264 wants sides divisible by 16 (imageio would resize): pad with white instead
    H, W = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, -H % 16), (0, -W % 16), (0, 0)), constant_values=255)
    iio.imwrite(stem + ".mp4", padded, fps=fps)


# ----------------------------------------------------------------------------
# reconstructions, one layout per method (what each `reconstruct` returns)


def rvm_rows(batch, out, p):
    src = [(f"source {i + 1}", frames_np(batch["source"][0])[i]) for i in range(batch["source"].shape[1])]
    rows = [src]
    pred, target = frames_np(out["pred"][0]), frames_np(out["target"][0])
    h = target.shape[1] // p
    for k in range(len(target)):
        d = int(batch["delta"][0, k])
        err = np.abs(pred[k] - target[k]).mean(-1)                               # (H, W) where it hedges
        rows.append([(f"target +{d}, masked", masked(target[k], out["mask"][0, k].view(h, -1).cpu(), p)),
                     ("prediction", pred[k]), (f"target +{d}", target[k]),
                     ("|prediction - target|", plt.get_cmap("magma")(err / max(err.max(), 1e-8))[..., :3])])
    return rows


def siammae_rows(batch, out, p):
    f1, f2 = frames_np(out["f1"])[0], frames_np(out["f2"])[0]
    h = f2.shape[0] // p
    return [[("source f1", f1), ("f2 masked", masked(f2, out["mask"][0].view(h, -1).cpu(), p)),
             ("prediction", frames_np(out["pred"])[0]), ("visible + predicted", frames_np(out["paste"])[0]),
             ("target f2", f2)]]


def vicmae_rows(batch, out, p):
    rows = []
    for v, key in enumerate(("f1", "f2")):
        frame = frames_np(out[key])[0]
        h = frame.shape[0] // p
        rows.append([(f"view {v + 1} masked", masked(frame, out["mask"][0, v].view(h, -1).cpu(), p)),
                     ("prediction", frames_np(out["pred"][:, v])[0]),
                     ("visible + predicted", frames_np(out["paste"][:, v])[0]), (f"view {v + 1}", frame)])
    return rows


def sigma_rows(batch, out, p):
    video, mask = frames_np(out["video"][0]), out["mask"][0].cpu().numpy()   # (T, H, W, 3), (T, h, w)
    rows = []
    for t in range(0, len(video), max(1, len(video) // 4)):
        row = [(f"frame {t}", video[t]), ("masked tubes", masked(video[t], mask[t], p))]
        if "assign_phi" in out:   # prototype ids: the targets phi gives, what Psi predicts on masked tubes
            K = int(out["assign_phi"].max()) + 1
            K = max(K, int(out["assign_psi"].max()) + 1)
            row += [("phi: target prototype", upsample(colorize(out["assign_phi"][0, t].cpu().numpy(), K), p, True)),
                    ("Psi: predicted (masked)", upsample(colorize(out["assign_psi"][0, t].cpu().numpy(), K), p, True))]
        rows.append(row)
    return rows


RECONSTRUCTIONS = {"rvm": rvm_rows, "siammae": siammae_rows, "vicmae": vicmae_rows, "sigma": sigma_rows}


# ----------------------------------------------------------------------------
# main


def model_maps(name, model, cfg, video, mask, args, device):
    """One model on one video (T, 3, H, W) -> its PCA, k-means and feature
    maps, each (T, H, W, 3). On a noise-square video, also prints the IoU of
    a K = 2 k-means with the square (evaluate.py's metric 1, one video)."""
    p, T = cfg.patch, len(video)
    feats = methods.video_features(model, video[None].to(device))[0].cpu()   # (T, h, w, D)
    h, w, D = feats.shape[1:]
    labels = metrics.kmeans(feats.reshape(-1, D), args.k, seed=args.seed)[0].reshape(T, h, w).numpy()
    if args.video in ("noise_square", "noise_square_paper"):
        square = metrics.token_fractions(mask.long(), p, 2)[..., 1] > 0.5   # (T, h, w)
        two = metrics.kmeans(feats.reshape(-1, D), 2, seed=args.seed)[0].reshape(T, h, w)
        score = metrics.iou(metrics.match_square(two, square), square, dims=(-2, -1))
        print(f"[{name}] noise-square IoU of this video (k-means K=2, token grid): {score.mean():.3f} "
              f"(frames t>={T // 2}: {score[T // 2:].mean():.3f})", flush=True)
    fmap, rank, corr = feature_map(feats, motion_energy(video, p))
    return (upsample(metrics.pca_rgb(feats).numpy(), p, True), upsample(colorize(labels, args.k), p, True),
            upsample(fmap, p, True), f"PC {rank + 1}, r = {corr:.2f}")


def save_reconstruction(name, model, cfg, method, video, args, device):
    """recon_NAME.png: the method's own frame sampling (its `sample`) on the
    first clip_len frames of the video, then its `reconstruct`. -> the file
    name, or None when the video is too short for the method's sampling."""
    if len(video) < cfg.clip_len:
        print(f"[{name}] no reconstruction: the video has {len(video)} frames, {method} samples from "
              f"{cfg.clip_len}", flush=True)
        return None
    batch = methods.METHODS[method].sample(video[None, :cfg.clip_len], cfg, torch.Generator().manual_seed(args.seed))
    batch = {k: v.to(device) for k, v in batch.items()}
    rows = RECONSTRUCTIONS[method](batch, model.reconstruct(batch), cfg.patch)
    title = f"{name}: reconstruction ({args.video})"
    if method == "rvm" and args.video.startswith("noise_square"):   # the L2-optimal guess is the mean where unknown
        title += ("\nunder L2 the model paints the mean (grey) where it is unsure of the pixels;"
                  "\nthe error sits where the square is at the target, not where it was last seen:"
                  "\nthe model has moved the square, so it tracks it")
    panel_figure(rows, os.path.join(args.out, f"recon_{name}.png"), title)
    return f"recon_{name}.png"


def get_parser():
    p = argparse.ArgumentParser(description="Visualize what checkpoints learned: PCA, k-means, the noise-square "
                                "demo (GIF/MP4/PNG), reconstructions.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", action="append", required=True, help="a train.py checkpoint (repeat to compare)")
    p.add_argument("--video", default="noise_square",
                   help="noise_square | noise_square_paper | shapes | a video file or folder of frames")
    p.add_argument("--frames", type=int, default=64, help="frames to show (RVM streams any number)")
    p.add_argument("--out", default="viz", help="output folder")
    p.add_argument("--k", type=int, default=5, help="k-means clusters (RVM Sec. 4.4 uses 5)")
    p.add_argument("--cols", type=int, default=8, help="time steps shown in the PNG strips")
    p.add_argument("--seed", type=int, default=0, help="which held-out synthetic video (and k-means seed)")
    p.add_argument("--scale", type=int, default=2, help="pixel scale of the GIF/MP4")
    p.add_argument("--fps", type=int, default=8, help="GIF/MP4 frames per second")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    return p


def main(argv=None, parts=None):
    """parts: as train.main's, for checkpoints trained with them (exercises/run.py)."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.frames < 1 or args.k < 1 or args.cols < 1 or args.scale < 1 or args.fps < 1:
        parser.error("--frames, --k, --cols, --scale and --fps must be >= 1")
    try:
        device = methods.device_for(args.device)
    except ValueError as e:
        parser.error(str(e))
    try:
        models = load_models(args.ckpt, device, parts)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    sizes = {cfg.img_size for _, _, cfg, _ in models}
    if len(sizes) > 1:
        parser.error(f"the checkpoints differ in img_size {sorted(sizes)}; show them separately")
    size = sizes.pop()
    clip_len = max(cfg.clip_len for _, _, cfg, _ in models)
    try:   # one video, long enough for the features and for every method's training clip
        full, full_mask = load_video(args.video, max(args.frames, clip_len), size, VIZ_SEED + args.seed)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    video, mask = full[:args.frames], None if full_mask is None else full_mask[:args.frames]
    T = len(video)
    os.makedirs(args.out, exist_ok=True)
    times = sorted(set(np.linspace(0, T - 1, min(args.cols, T)).round().astype(int).tolist()))
    inp = frames_np(video)
    pca_rows, km_rows, demo_rows = [("input", inp)], [("input", inp)], [("input", inp)]
    if mask is not None:   # the noise square's mask or the shapes' instance ids, colour-coded
        demo_rows.append(("true mask", colorize(mask.long().numpy(), max(2, int(mask.max()) + 1))))
    written, feature_row = ["pca.png", "kmeans.png", "demo.png", "demo.gif", "demo.mp4"], None
    for name, model, cfg, method in models:
        print(f"[{name}] features of {T} frames", flush=True)
        pca, km, fmap, rule = model_maps(name, model, cfg, video, mask, args, device)
        pca_rows.append((f"{name} PCA", pca))
        km_rows += [(f"{name} k-means", km), (f"{name} overlay", 0.5 * inp + 0.5 * km)]
        demo_rows.append((f"{name} k-means", km))
        feature_row = feature_row or (f"{name} feature\n" + rule.replace(", ", "\n"), fmap)   # the first one's
        written.append(save_reconstruction(name, model, cfg, method, full, args, device))
    demo_rows.append(feature_row)
    strip_figure(pca_rows, times, os.path.join(args.out, "pca.png"), "PCA of features, top 3 components as RGB")
    strip_figure(km_rows, times, os.path.join(args.out, "kmeans.png"), f"k-means, K={args.k}, over all frames")
    strip_figure(demo_rows, times, os.path.join(args.out, "demo.png"),
                 f"input / k-means (K={args.k}) per checkpoint / the first one's feature map: of its top 8 principal "
                 f"components, the one that best follows the motion in the pixels (no ground truth)")
    save_animation([frames for _, frames in demo_rows], os.path.join(args.out, "demo"), args.scale, args.fps)
    print(f"wrote {' '.join(w for w in written if w)} to {args.out}", flush=True)


if __name__ == "__main__":
    main()
