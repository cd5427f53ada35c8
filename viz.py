"""See what a model learned: PCA, k-means, the moving noise square, reconstructions, the gallery.

    python viz.py --ckpt runs/rvm/ckpt.pt --video noise_square --out runs/rvm/viz
    python viz.py --ckpt runs/rvm/ckpt.pt --ckpt runs/siammae/ckpt.pt --video shapes --out runs/compare
    python viz.py --ckpt runs/sigma/ckpt.pt --video shapes:pattern=true:side=20,40 --remove position --out runs/v
    python viz.py --ckpt runs/rvm/ckpt.pt --video my_clip.mp4 --frames 128 --out runs/rvm/viz-real
    python viz.py --gallery --ckpt runs/rvm/ckpt.pt --ckpt runs/sigma/ckpt.pt --out runs/gallery

--video is any toy world train.py's --data accepts (noise_square, shapes, with
options: noise_square:grain=1, shapes:pattern=true:side=20,40, ...; a held-out
video of it), noise_square_paper (RVM Fig. 6: a half-frame square crossing the
frame once), or the path of a video file or a folder of frames. --ckpt may
repeat: every figure then shows the checkpoints side by side (RVM Fig. 6/7
layout). Pictures are drawn as RVM's official notebook draws them: the PCA
whitened (--pca minmax: each component min-max scaled instead), k-means K = 5.
Writes into --out:

    pca.png          input frames, then per checkpoint the top 3 principal
                     components of its features as RGB (RVM Sec. 4.4, Fig. 5)
    kmeans.png       per checkpoint: k-means (K = 5) over all tokens of all
                     frames, colour-coded, and overlaid on the input
    demo.png         RVM Fig. 6: input / the true mask (when there is one) /
                     each checkpoint's k-means / the first checkpoint's
                     feature map, over time. On a noise-square video the
                     cluster that best matches the square is outlined (the
                     ground truth only picks which cluster to outline). The
                     feature map is the principal component that best follows
                     the motion in the pixels (`feature_map`: no ground
                     truth), so give RVM first
    demo.gif, .mp4   the same rows, animated over every frame
    recon_NAME.png   source frame(s) | masked target | prediction | target;
                     SIGMA: the prototypes of the masked tubes

--gallery writes gallery.png instead: per checkpoint, a held-out video of the
world it trained on (its checkpoint's --data), k-means and PCA of its
features, and the same for its random-init twin (`make gallery`).

--remove position draws every picture on the "position removed" view (each
token minus the mean feature at its place over held-out videos of the same
world, evaluate.PositionRemoved); every title says which view it shows.

Features of long videos: RVM streams frame by frame (constant memory), frame
models encode each frame, SIGMA goes in windows of its num_frames (see
methods.video_features). The metric code (k-means, PCA) is metrics.py's.
"""
import argparse
import os
import textwrap

import matplotlib
matplotlib.use("Agg")                     # files only, no display
import matplotlib.pyplot as plt
import imageio.v3 as iio
import numpy as np
import torch

import data
import evaluate
import methods
import metrics
import runs
import toyworld

VIZ_SEED = toyworld.EVAL_SEED + 300_000   # held-out videos, a block of seeds no probe uses (toyworld.py)
REFERENCE_SEED = VIZ_SEED + 50_000         # --remove position's reference videos, none of the shown ones

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


def outline(images, region, p, colour=(1.0, 1.0, 1.0)):
    """images (T, H, W, 3), region (T, h, w) bool on the token grid -> a copy with the region's border drawn in
    `colour`: its pixels that have a 4-neighbour outside it (the frame's edge counts as outside)."""
    inside = np.pad(upsample(np.asarray(region, dtype=bool), p), ((0, 0), (1, 1), (1, 1)))   # (T, H + 2, W + 2)
    core = inside[:, 1:-1, 1:-1]
    edge = core & ~(inside[:, :-2, 1:-1] & inside[:, 2:, 1:-1] & inside[:, 1:-1, :-2] & inside[:, 1:-1, 2:])
    out = images.copy()
    out[edge] = colour
    return out


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


def is_noise_square(spec):
    """A noise-square world: its ground truth is the square's mask."""
    return spec == "noise_square_paper" or spec.partition(":")[0] == "noise_square"


def is_world(spec, size):
    """A toy world (noise_square_paper or one that train.py's --data accepts), whose held-out videos viz can make."""
    return spec == "noise_square_paper" or data.world_spec(spec, size)[0] in data.SyntheticVideos.KINDS


def load_video(spec, T, size, seed):
    """--video -> video (T, 3, H, W) in [0, 1] and its ground truth (T, H, W) (the square's mask, the shapes'
    instance ids) or None. spec: noise_square_paper, a toy world as train.py's --data (`data.world_spec` types and
    checks its options as there: noise_square:grain=1, shapes:pattern=true:side=20,40), or a video file or folder
    of frames."""
    if spec == "noise_square_paper":
        return toyworld.noise_square_paper(T=T, size=size, seed=seed)
    kind, options = data.world_spec(spec, size)
    if kind == "noise_square":
        if options.pop("mix", False):   # one world drawn from the mix, as each of the mix's training clips is
            options = toyworld.noise_square_mix(size, toyworld.generator(seed))
        videos, masks, _ = toyworld.noise_square_set(1, T, size, seed, **options)
        return videos[0], masks[0]
    if kind == "shapes":
        return toyworld.shapes_video(T=T, size=size, seed=seed, **options)
    return data.read_video(spec, size=size, max_frames=T), None


def reference_videos(spec, n, T, size):
    """--remove position's reference: n held-out videos (n, T, 3, H, W) of the world `spec`, none of the shown ones."""
    return torch.stack([load_video(spec, T, size, REFERENCE_SEED + i)[0] for i in range(n)])


def world_of(meta, size, fallback):
    """The toy world a checkpoint trained on (train.py's --data, kept in the checkpoint), or `fallback` when it
    trained on real videos or does not say."""
    spec = (meta.get("train") or {}).get("data")
    try:
        return spec if isinstance(spec, str) and is_world(spec, size) else fallback
    except ValueError:   # options this version of the code does not know
        return fallback


def load_models(paths, device, parts=None):
    """[(name, model, cfg, method, meta)]; names are the method, numbered when repeated."""
    out = []
    for i, path in enumerate(paths):
        model, cfg, meta = methods.load_checkpoint(path, device, parts)
        names = [m[0] for m in out]
        name = meta["method"] if meta["method"] not in names else f"{meta['method']}-{i + 1}"
        out.append((name, model, cfg, meta["method"], meta))
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
    ncols = max(len(r) for r in rows)
    width = (left + ncols * (W + pad)) / inch                             # inches
    # 9-pt text is about 0.07 in a character: wrap the title to the canvas
    title = "\n".join(textwrap.fill(line, max(20, int(width / 0.07))) for line in title.split("\n"))
    top = round((0.2 + 0.15 * (title.count("\n") + 1)) * inch)           # room for the title, line by line
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
    dpi = max(100, round(2 * inch))                                       # >= 2 output pixels per video pixel
    runs.write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
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
    runs.write_atomic(stem + ".gif", lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps,
                                                             loop=0))
    # H.264 wants sides divisible by 16 (imageio would resize): pad with white instead
    H, W = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, -H % 16), (0, -W % 16), (0, 0)), constant_values=255)
    runs.write_atomic(stem + ".mp4", lambda tmp: write_mp4(tmp, padded, fps))


def write_mp4(path, frames, fps):
    """frames (T, H, W, 3) uint8 -> an H.264 file at `path`, whatever its name: ffmpeg picks its container by the
    name's extension, so it writes PATH.mp4 first (removed if it fails)."""
    try:
        iio.imwrite(path + ".mp4", frames, fps=fps)
        os.replace(path + ".mp4", path)
    finally:
        if os.path.exists(path + ".mp4"):
            os.remove(path + ".mp4")


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


def dense_features(model, video, device, reference=None):
    """One model's features (T, h, w, D) of one video (T, 3, H, W), on the CPU; with reference videos, on the
    position-removed view (evaluate.PositionRemoved: each token minus its place's mean over the reference)."""
    if reference is not None:
        model = evaluate.PositionRemoved(model, reference, device)
    return evaluate.features(model, video[None].to(device))[0].float().cpu()


def pca_and_kmeans(feats, args):
    """feats (T, h, w, D) -> the PCA as RGB (T, h, w, 3) (whitened unless --pca minmax) and the k-means labels
    (T, h, w) with K = --k over all tokens of all frames."""
    T, h, w, D = feats.shape
    labels = metrics.kmeans(feats.reshape(-1, D), args.k, seed=args.seed)[0].reshape(T, h, w)
    return metrics.pca_rgb(feats, whiten=args.pca == "whitened").numpy(), labels


def model_maps(name, model, cfg, video, mask, args, device, reference=None):
    """One model on one video (T, 3, H, W) -> its PCA, k-means and feature maps, each (T, H, W, 3), the feature
    map's rule, and the demo row's k-means: on a noise-square video, with the cluster that best matches the square
    outlined (the ground truth picks only which cluster to outline), and its caption. There it also prints the
    IoU of a K = 2 k-means with the square and of the best single cluster of the K = --k one (evaluate.py's
    probe 1, one video)."""
    p, T = cfg.patch, len(video)
    feats = dense_features(model, video, device, reference)                   # (T, h, w, D)
    h, w, D = feats.shape[1:]
    pca, labels = pca_and_kmeans(feats, args)
    km = upsample(colorize(labels.numpy(), args.k), p, True)
    demo_km, caption = km, f"{name} k-means"
    if mask is not None and is_noise_square(args.video):
        square = metrics.token_fractions(mask.long(), p, 2)[..., 1] > 0.5   # (T, h, w)
        two = metrics.kmeans(feats.reshape(-1, D), 2, seed=args.seed)[0].reshape(T, h, w)
        score = metrics.iou(metrics.match_square(two, square), square, dims=(-2, -1))
        c, best = metrics.best_cluster(labels, square)
        print(f"[{name}] noise-square IoU of this video (token grid): k-means K=2 {score.mean():.3f} "
              f"(frames t>={T // 2}: {score[T // 2:].mean():.3f}); the best single cluster of K={args.k}: "
              f"{best.mean():.3f}", flush=True)
        demo_km = outline(km, (labels == c).numpy(), p)
        caption += f"\noutlined: the\nbest cluster\nIoU {best.mean():.2f}"
    fmap, rank, corr = feature_map(feats, motion_energy(video, p))
    return (upsample(pca, p, True), km, upsample(fmap, p, True), f"PC {rank + 1}, r = {corr:.2f}",
            (caption, demo_km))


def draw_gallery(models, args, device, size):
    """gallery.png: per checkpoint, a held-out video of the world it trained on at its middle and last frame:
    input | k-means | PCA of the trained model | the same for its random-init twin (evaluate.random_init)."""
    rows, labels = [], []
    for name, model, cfg, method, meta in models:
        spec = world_of(meta, size, args.video)
        video, _ = load_video(spec, args.frames, size, VIZ_SEED + args.seed)
        reference = reference_videos(spec, args.reference_videos, len(video), size) if args.remove != "none" else None
        print(f"[{name}] the gallery: {spec}, trained and random-init", flush=True)
        maps = []
        for m in (model, evaluate.random_init(method, cfg).to(device)):
            pca, km = pca_and_kmeans(dense_features(m, video, device, reference), args)
            maps += [upsample(colorize(km.numpy(), args.k), cfg.patch, True), upsample(pca, cfg.patch, True)]
        inp, T = frames_np(video), len(video)
        for t in sorted({T // 2, T - 1}):
            captions = ["input", "k-means", "PCA", "twin: k-means", "twin: PCA"] if not rows else [""] * 5
            rows.append(list(zip(captions, [inp[t]] + [m[t] for m in maps])))
            labels.append(f"{name}, t={t}\n" + spec.replace(":", "\n"))
    title = (f"per checkpoint, a held-out video of the world it trained on: k-means (K={args.k}) and "
             f"{PCA_NAMES[args.pca]}\nof the trained model, then of its random-init twin{view_note(args)}")
    panel_figure(rows, os.path.join(args.out, "gallery.png"), title, labels)
    return ["gallery.png"]


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


PCA_NAMES = {"whitened": "whitened PCA (top 3 components, each at unit variance, as RGB)",
             "minmax": "PCA (top 3 components, each min-max scaled, as RGB)"}


def view_note(args):
    """The line every title carries when a picture shows a view, not the features as they are."""
    if args.remove == "none":
        return ""
    return (f"\nview: position removed (each token minus the mean feature at its place over {args.reference_videos} "
            f"held-out videos of the same world)")


def get_parser():
    p = argparse.ArgumentParser(description="Visualize what checkpoints learned: PCA, k-means, the noise-square "
                                "demo (GIF/MP4/PNG), reconstructions, the gallery.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", action="append", required=True, help="a train.py checkpoint (repeat to compare)")
    p.add_argument("--video", default="noise_square",
                   help="noise_square_paper | a toy world as train.py's --data (noise_square, shapes, with options: "
                   "shapes:pattern=true:side=20,40) | a video file or folder of frames")
    p.add_argument("--frames", type=int, default=64, help="frames to show (RVM streams any number)")
    p.add_argument("--out", default="viz", help="output folder")
    p.add_argument("--k", type=int, default=5, help="k-means clusters (RVM Sec. 4.4 uses 5)")
    p.add_argument("--pca", choices=list(PCA_NAMES), default="whitened",
                   help="whitened: each of the top 3 components at unit variance, as RVM's official notebook; "
                   "minmax: each min-max scaled (unwhitened: its extremes set the colour range)")
    p.add_argument("--remove", choices=["none", "position"], default="none",
                   help="position: draw each token minus the mean feature at its place over held-out videos of the "
                   "same world (a toy world only); the titles say so")
    p.add_argument("--reference-videos", type=int, default=8, help="--remove position: held-out videos of the world")
    p.add_argument("--gallery", action="store_true", help="draw gallery.png only: each checkpoint on a held-out video "
                   "of the world it trained on, beside its random-init twin (make gallery)")
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
    reason = runs.check_out_folder(args.out)   # before any work: a bad --out never costs the features
    if reason:
        parser.error(reason)
    if min(args.frames, args.k, args.cols, args.scale, args.fps, args.reference_videos) < 1:
        parser.error("--frames, --k, --cols, --scale, --fps and --reference-videos must be >= 1")
    try:
        device = methods.device_for(args.device)
    except ValueError as e:
        parser.error(str(e))
    try:
        models = load_models(args.ckpt, device, parts)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    sizes = {cfg.img_size for _, _, cfg, _, _ in models}
    if len(sizes) > 1:
        parser.error(f"the checkpoints differ in img_size {sorted(sizes)}; show them separately")
    size = sizes.pop()
    clip_len = max(cfg.clip_len for _, _, cfg, _, _ in models)
    try:   # one video, long enough for the features and for every method's training clip
        full, full_mask = load_video(args.video, max(args.frames, clip_len), size, VIZ_SEED + args.seed)
    except (FileNotFoundError, ValueError) as e:
        parser.error(f"--video: {runs.first_line(e)}")
    worlds = [world_of(meta, size, args.video) for _, _, _, _, meta in models] if args.gallery else [args.video]
    if args.remove != "none" and not all(is_world(w, size) for w in worlds):
        parser.error(f"--remove {args.remove} needs a toy world (--video noise_square, shapes, ...): the mean at "
                     f"each place is taken over held-out videos of the same world; got {args.video!r}")
    T = args.frames if args.gallery else min(args.frames, len(full))
    tokens = min(T * (size // cfg.patch) ** 2 for _, _, cfg, _, _ in models)
    if args.k > tokens:
        parser.error(f"--k {args.k} is more clusters than the {tokens} tokens of {T} frames; give --k <= {tokens}")
    os.makedirs(args.out, exist_ok=True)
    if args.gallery:
        written = draw_gallery(models, args, device, size)
        print(f"wrote {' '.join(written)} to {args.out}", flush=True)
        return
    video, mask = full[:args.frames], None if full_mask is None else full_mask[:args.frames]
    reference = reference_videos(args.video, args.reference_videos, T, size) if args.remove != "none" else None
    times = sorted(set(np.linspace(0, T - 1, min(args.cols, T)).round().astype(int).tolist()))
    inp = frames_np(video)
    pca_rows, km_rows, demo_rows = [("input", inp)], [("input", inp)], [("input", inp)]
    if mask is not None:   # the noise square's mask or the shapes' instance ids, colour-coded
        demo_rows.append(("true mask", colorize(mask.long().numpy(), max(2, int(mask.max()) + 1))))
    written, feature_row, outlined = ["pca.png", "kmeans.png", "demo.png", "demo.gif", "demo.mp4"], None, False
    for name, model, cfg, method, _ in models:
        print(f"[{name}] features of {T} frames", flush=True)
        pca, km, fmap, rule, demo_row = model_maps(name, model, cfg, video, mask, args, device, reference)
        pca_rows.append((f"{name} PCA", pca))
        km_rows += [(f"{name} k-means", km), (f"{name} overlay", 0.5 * inp + 0.5 * km)]
        demo_rows.append(demo_row)
        outlined = outlined or demo_row[1] is not km
        feature_row = feature_row or (f"{name} feature\n" + rule.replace(", ", "\n"), fmap)   # the first one's
        written.append(save_reconstruction(name, model, cfg, method, full, args, device))
    demo_rows.append(feature_row)
    view = view_note(args)
    strip_figure(pca_rows, times, os.path.join(args.out, "pca.png"), f"{PCA_NAMES[args.pca]}, over all frames{view}")
    strip_figure(km_rows, times, os.path.join(args.out, "kmeans.png"), f"k-means, K={args.k}, over all frames{view}")
    square_note = (f"\noutlined: the cluster of K={args.k} that best matches the square (the ground truth only picks "
                   f"which cluster to outline)" if outlined else "")
    strip_figure(demo_rows, times, os.path.join(args.out, "demo.png"),
                 f"input / k-means (K={args.k}) per checkpoint / the first one's feature map: of its top 8 principal "
                 f"components, the one that best follows the motion in the pixels (no ground truth){square_note}{view}")
    save_animation([frames for _, frames in demo_rows], os.path.join(args.out, "demo"), args.scale, args.fps)
    print(f"wrote {' '.join(w for w in written if w)} to {args.out}", flush=True)


if __name__ == "__main__":
    main()
