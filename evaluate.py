"""Measure what each method learned, in the toy world: five probes and their cost, one table.

    python evaluate.py --ckpt runs/rvm/ckpt.pt [--ckpt runs/siammae/ckpt.pt ...] --out results/

Every row of the table is a feature extractor (B, T, 3, H, W) -> (B, T, h, w, D):
each checkpoint, a randomly initialized model of the same method and config
("random-init", what the architecture gives for free), and raw pixels (each
token's feature is its p x p x 3 patch). The probes:

1. Noise-square IoU (RVM Sec. 4.4, Fig. 6). Every frame of a noise-square
   video is white noise on its own; only motion tells the square from the
   background. k-means with K = 2 on all tokens of a video, clusters matched
   to square/background by the best assignment, IoU of the square per frame.
   Scored on the token grid (a token is "square" when more than half its
   pixels are; ceiling 1.0), with the pixel-level IoU and its oracle ceiling
   (the token-grid ground truth upsampled) beside it, and split by frame
   position and by the videos' direction (axis / diagonal). Beside it, the
   best single cluster of k-means with K = 5 (RVM Sec. 4.4 draws K = 5, and
   Fig. 6's square is one of those clusters): is one cluster the square?
2. Motion probe: a linear classifier on the mean-pooled features of a video
   predicts the square's direction of motion (8 classes, chance 1/8).
3. Label propagation (SiamMAE Sec. 4, App. A Table 4b; RVM Sec. 4): the first
   frame's instance mask of a shapes video is carried forward by feature
   affinities; J = region IoU per object, averaged over frames and objects.
4. Long-horizon stability (RVM Fig. 4): J over the first 16, 32, 48, 64
   frames, divided by the 16-frame J.
5. Shape-kind probe (semantic features, SIGMA Sec. 1): a linear classifier of
   each token's class (background / square / disc / triangle) on held-out
   shapes videos, mean recall over classes (chance 1/4).
Beside them, the cost: seconds of feature extraction per video.

Views (--remove): "position" scores every row on its features minus, at each
token's place, the mean feature there over held-out reference videos of the
probe's world (`PositionRemoved`): a position-dependent component the model
adds whatever the content (Denoising Vision Transformers, Yang et al. 2024,
removes the same kind of artifact). The table's first line names the view. A
view is admissible only if the random-init twins and raw pixels stay at chance
under it (docs/results.md).

Held-out data (toyworld.py): training items draw their video's seed at random
from [0, 2**62); the videos here are made directly from the seeds
toyworld.EVAL_SEED + i (one block of seeds per probe, SEED_BLOCKS), with the
training world's options, so they are new videos of the training
distribution. The metric functions are metrics.py's; what the table shows for
the demo checkpoints, and the reference points of the IoU (random-init twins,
raw pixels, a one-line motion detector), are in docs/results.md.

Real videos: `--davis ROOT` scores DAVIS-2017 J&F instead (davis.py), under
`--lp-protocol dino` (DINO's, as SiamMAE reports) or `rvm` (RVM's notebook).
The probes claims.py, exercises/ and scripts/ use are here too, by name
(noise_square_iou, iou16, j16, token_kinds, video_kinds, ...).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn

import data
import davis
import methods
import metrics
import runs
import toyworld
import vit


# ----------------------------------------------------------------------------
# feature extractors: checkpoints, random-init twins, raw pixels


class RawPixels(nn.Module):
    """The raw-pixel baseline: a token's feature is its p x p x 3 patch
    (vit.patchify), the same grid the models see."""

    def __init__(self, patch):
        super().__init__()
        self.patch = patch

    def features(self, video):
        return vit.frame_features(video, self.patch, lambda frames: vit.patchify(frames, self.patch))


def random_init(method, cfg, seed=0):
    """The same method and config with fresh weights (a fixed seed; the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return methods.MODELS[method](cfg).eval()


@torch.no_grad()
def random_twins(checkpoints, seeds=1):
    """checkpoints: [(row name, method, cfg)] -> one (name, random-init model, patch)
    per distinct random-init feature map and init seed (0 .. seeds-1; with more than
    one, the spread of the twins). Twins are told apart by their features on one
    fixed random video, not by their configs: two checkpoints whose configs differ
    only where features do not look (a loss, a schedule) share one twin, and one
    row in the table."""
    twins, seen = [], []
    for (name, method, cfg), seed in ((c, s) for c in checkpoints for s in range(seeds)):
        twin = random_init(method, cfg, seed)
        g = torch.Generator().manual_seed(0)
        video = torch.rand(1, 2 * getattr(cfg, "num_frames", 2), 3, cfg.img_size, cfg.img_size, generator=g)
        feats = methods.video_features(twin, video)
        if any(m == method and f.shape == feats.shape and torch.equal(f, feats) for m, f in seen):
            continue
        seen.append((method, feats))
        twins.append((f"random-init {name}" + (f" seed {seed}" if seeds > 1 else ""), twin, cfg.patch))
    return twins


class PositionRemoved(nn.Module):
    """The "position removed" view of a feature extractor (--remove position): every token's feature minus the mean
    feature at its place (h, w), over all frames of held-out reference videos of the same world. What a model adds
    at a place whatever the content (its position code, and in the noise square the static texture it keeps there)
    goes; what changes with the content stays (Denoising Vision Transformers, Yang et al. 2024, remove the same kind
    of position artifact). reference (V, T, 3, H, W): videos none of the scored ones."""

    def __init__(self, model, reference, device, batch_size=8):
        super().__init__()
        self.model = model
        self.mean = extract(model, reference, device, batch_size)[0].mean((0, 1))   # (h, w, D) per place

    def features(self, video):
        return features(self.model, video) - self.mean.to(video.device)          # (B, T, h, w, D)


def features(model, video):
    """methods.video_features of a model or of a view (PositionRemoved): a view passes whole videos on, so that a
    recurrent model still sees every frame in order."""
    if isinstance(model, PositionRemoved):
        return model.features(video)
    return methods.video_features(model, video)


def extract(model, videos, device, batch_size=8, label=""):
    """videos (V, T, 3, H, W) -> features (V, T, h, w, D) on the CPU and
    seconds of feature extraction per video (bf16 autocast on CUDA)."""
    out, start = [], time.perf_counter()
    for i in range(0, len(videos), batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(features(model, videos[i:i + batch_size].to(device)).float().cpu())
        if label and len(videos) > batch_size:
            print(f"    {label}: features {min(i + batch_size, len(videos))}/{len(videos)} videos", flush=True)
    return torch.cat(out), (time.perf_counter() - start) / len(videos)


# ----------------------------------------------------------------------------
# the probes

BEST_K = 5   # the k-means of RVM Sec. 4.4's pictures (Fig. 5, 6): the best single cluster's IoU is scored beside K = 2


def probe_noise_square(model, patch, videos, masks, device, label, directions=None):
    """Metric 1 (RVM Fig. 6): k-means K = 2 per video, best match, IoU of
    the square per frame on the token grid; the pixel-level IoU beside it,
    with its ceiling (the token-grid ground truth scored at pixel level), and
    the IoU of the best single cluster of a K = 5 k-means (`metrics.best_cluster`).
    With the videos' direction classes (V,), also the IoU of the videos moving
    along an axis and of those moving diagonally: an axis move keeps the square
    in one band of rows (or columns); in the default world (4 x 4 square tokens
    on an 8 x 8 torus) that band is half the frame, and every background token
    of it is at most two tokens from the square."""
    if directions is not None and len(directions) != len(videos):
        raise ValueError(f"need one direction class per video ({len(videos)}); got {len(directions)}")
    feats, sec = extract(model, videos, device, label=label)              # (V, T, h, w, D)
    V, T, h, w, D = feats.shape
    up = lambda m: m.repeat_interleave(patch, -2).repeat_interleave(patch, -1)   # token grid -> pixels, nearest
    tok, pix, ceiling, best = [], [], [], []
    for v in range(V):
        truth = metrics.token_fractions(masks[v].long(), patch, 2)[..., 1] > 0.5  # (T, h, w) square: most pixels
        pred, per_frame = metrics.square_iou(feats[v], truth, seed=v)             # (T, h, w), (T,)
        tok.append(per_frame)
        clusters = metrics.kmeans(feats[v].reshape(-1, D), min(BEST_K, T * h * w), seed=v)[0].reshape(T, h, w)
        best.append(metrics.best_cluster(clusters, truth)[1].mean())
        pix.append(metrics.iou(up(pred), masks[v], dims=(-2, -1)))
        ceiling.append(metrics.iou(up(truth), masks[v], dims=(-2, -1)))
    tok = torch.stack(tok)                                                # (V, T)
    per_frame = tok.mean(0)                                               # (T,) averaged over videos
    out = {"iou": per_frame.mean().item(), "iou_early": per_frame[:4].mean().item(),
           "iou_late": per_frame[T // 2:].mean().item(), "iou_per_frame": [round(x, 4) for x in per_frame.tolist()],
           "iou_pixel": torch.stack(pix).mean().item(), "iou_pixel_ceiling": torch.stack(ceiling).mean().item(),
           "iou_best_cluster_k5": torch.stack(best).mean().item(), "sec_per_video": sec}
    if directions is not None:
        per_video = tok.mean(1)                                           # (V,)
        diagonal = torch.tensor([toyworld.DIRECTIONS[int(c)] % 90 != 0 for c in directions])
        for key, sel in (("iou_axis", ~diagonal), ("iou_diagonal", diagonal)):
            out[key] = per_video[sel].mean().item() if sel.any() else None
    return out


def probe_motion(model, train_set, test_set, device, label):
    """Metric 2: mean-pool each video's features over frames and tokens, fit
    a linear classifier of the direction on the train videos, report the
    accuracy on the test videos (chance 1 / 8). Sets: (videos, classes)."""
    (xtr, ytr), (xte, yte) = [(extract(model, v, device, label=label)[0].mean((1, 2, 3)).double(), y)
                              for v, y in (train_set, test_set)]          # (V, D) pooled
    return {"motion_acc": metrics.linear_probe(xtr, ytr, xte, yte), "motion_chance": 1 / len(toyworld.DIRECTIONS)}


def probe_propagation(model, patch, shapes, device, lengths, lp, label):
    """Metrics 3 and 4: propagate the first frame's instance mask through
    each shapes video on the token grid, decode the soft labels to pixels
    (DINO's protocol, `labels_to_pixels`), score J on the first L frames for
    every L in `lengths`. Propagation is causal, so the J of the
    first L frames of a long video is the J of an L-frame video."""
    videos, masks = shapes
    feats, _ = extract(model, videos, device, label=label)                # (V, T, h, w, D)
    H, W = masks.shape[-2:]
    J = {L: [] for L in lengths}
    for v in range(len(videos)):
        C = int(masks[v].max()) + 1
        objects = [int(o) for o in masks[v, 0].unique() if o != 0]       # only what frame 0 shows can be propagated
        first = metrics.token_fractions(masks[v, 0], patch, C)           # (h, w, C)
        soft = metrics.label_propagation(feats[v], first, **lp)          # (T, h, w, C)
        pred = metrics.labels_to_pixels(soft, H, W)                      # (T, H, W)
        for L in lengths:
            J[L].append(metrics.region_J(pred[:L], masks[v, :L], objects)[0])
    J = {L: sum(j) / len(j) for L, j in J.items()}
    J0 = J[lengths[0]]
    return {"J": J0, "J_by_length": J, "stability": {L: J[L] / J0 if J0 > 0 else None for L in lengths}}


def probe_kinds(model, patch, train_set, test_set, device, label):
    """Metric 5 (semantic features, SIGMA Sec. 1, Fig. 1): a linear classifier of each
    token's class, background / square / disc / triangle (the object most of its pixels
    show), fit on the tokens of the train shapes videos and scored on the test videos'
    as the mean recall over classes (chance 1/4). Colours are random and a token is
    smaller than a shape, so its class needs the shape's outline: context, not pixels.
    Sets: (videos, semantic maps (V, T, H, W))."""
    xs, ys, C = [], [], len(toyworld.SHAPE_KINDS) + 1
    for videos, classes in (train_set, test_set):
        feats = extract(model, videos, device, label=label)[0]                        # (V, T, h, w, D)
        ys.append(metrics.token_fractions(classes, patch, C).argmax(-1).flatten())    # (V*T*h*w,) majority
        xs.append(feats.flatten(0, 3).double())
    return {"kind_acc": metrics.linear_probe(xs[0], ys[0], xs[1], ys[1], balanced=True), "kind_chance": 1 / C}


# ----------------------------------------------------------------------------
# the probes by name, on their own held-out sets: (model, cfg[, world]) -> a number. What claims.py,
# exercises/ and scripts/ measure; cfg needs img_size and patch, world is a shapes world's options
# (data.world_spec of the run's --data; {} for the default shapes world)


def device_of(model):
    """Where a model's weights are (raw pixels have none: the CPU)."""
    return next(model.parameters(), torch.empty(0)).device


def noise_square_iou(model, cfg, T=16, n=16, window=None):
    """The noise-square IoU of probe_noise_square (k-means K = 2, Hungarian-matched, every frame) on n held-out
    T-frame videos; window (frames, step): k-means run on each window of the video alone instead, the frames
    of SIGMA's features windows (`sigma_windows`), so the clusters need not agree across windows."""
    videos, masks, _ = toyworld.noise_square_set(n, T, cfg.img_size, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["iou"])
    if window is None:
        return probe_noise_square(model, cfg.patch, videos, masks, device_of(model), "")["iou"]
    feats = extract(model, videos, device_of(model))[0]                      # (V, T, h, w, D)
    scores = []
    for v in range(n):
        truth = metrics.token_fractions(masks[v].long(), cfg.patch, 2)[..., 1] > 0.5   # (T, h, w)
        for frames in sigma_windows(T, *window):
            scores.append(metrics.square_iou(feats[v, frames], truth[frames], seed=v)[1].mean().item())
    return sum(scores) / len(scores)


def sigma_windows(T, num_frames, stride):
    """The frames of each features window of SIGMA.features on a T-frame video: per phase < stride, the
    frames phase, phase + stride, ... in runs of num_frames."""
    out = []
    for phase in range(min(stride, T)):
        frames = list(range(phase, T, stride))
        out += [frames[i:i + num_frames] for i in range(0, len(frames), num_frames)]
    return out


def propagation(model, cfg, world, T=16, n=24, lengths=(16,)):
    """Label propagation J (probe_propagation, default settings) on n held-out T-frame videos of the shapes world
    the model trained on -> {"L": J of the first L frames} (string keys, as they come back from a JSON cache)."""
    shapes = toyworld.shapes_set(n, T, cfg.img_size, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["shapes"], **world)
    out = probe_propagation(model, cfg.patch, shapes, device_of(model), list(lengths), {}, "")
    return {str(L): J for L, J in out["J_by_length"].items()}


def iou16(model, cfg, world):
    """noise_square_iou on its default 16 videos of 16 frames (the world is not used: one noise-square world)."""
    return noise_square_iou(model, cfg)


def j16(model, cfg, world):
    """Label propagation J on 24 held-out 16-frame videos of the model's shapes world."""
    return propagation(model, cfg, world)["16"]


def token_kinds(model, cfg, world, n=16, T=8):
    """The shape-kind probe (probe_kinds): a linear classifier of each token's class (background, square, disc,
    triangle), balanced mean recall on held-out videos of the model's shapes world (chance 1/4)."""
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["kinds"]
    train_set, test_set = (toyworld.shapes_set(n, T, cfg.img_size, s, with_kinds=True, **world)[::2]
                           for s in (seed, seed + n))
    return probe_kinds(model, cfg.patch, train_set, test_set, device_of(model), "")["kind_acc"]


def video_kinds(model, cfg, world, n=96, T=8):
    """A video-level label: shapes videos with one shape, whose kind (square, disc, triangle) is the video's
    class (toyworld.video_label); a linear classifier on the features pooled over frames and tokens, accuracy
    on held-out videos (chance 1/3)."""
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["video_kind"]
    xs, ys = [], []
    for s in (seed, seed + n):
        videos, _, kinds = toyworld.shapes_set(n, T, cfg.img_size, s, with_kinds=True, **{**world, "n_shapes": 1})
        xs.append(extract(model, videos, device_of(model))[0].mean((1, 2, 3)).double())   # (n, D) pooled
        ys.append(toyworld.video_label(kinds))
    return metrics.linear_probe(xs[0], ys[0], xs[1], ys[1])


@torch.no_grad()
def features_ms(model, cfg, T, repeats=3):
    """Median milliseconds of model.features on one T-frame video, one thread: for the growth with T (a ratio of
    two calls), not the speed (bench.py measures that)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        video = torch.rand(1, T, 3, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0))
        video = video.to(device_of(model))
        model.features(video[:, :2])   # warm-up: the first call allocates
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.features(video)
            if video.is_cuda:
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - t0))
        return sorted(times)[len(times) // 2]
    finally:
        torch.set_num_threads(threads)


def last_logged(out, key):
    """The last logged value of `key` in the metrics.jsonl of the run folder `out` (a measure that needs no
    model: SIGMA's phi_std at the end of training)."""
    rows = (json.loads(line) for line in runs.read_metrics(os.path.join(out, runs.METRICS_NAME)))
    values = [row[key] for row in rows if key in row]
    if not values:
        raise ValueError(f"{out}/{runs.METRICS_NAME} logs no {key!r}")
    return values[-1]


# ----------------------------------------------------------------------------
# the table

VIEWS = {"none": "the features as they are",
         "position": "position removed (each token minus the mean feature at its place over held-out reference "
                     "videos of the probe's world)"}
REFERENCE_OFFSET = 50_000   # --remove position's reference videos: seeds this far into each probe's block


def evaluate_all(entries, args, device):
    """entries: [(name, model, patch)] -> one row (dict) per entry."""
    size, T, lengths = args.size, args.frames, args.lengths
    base = {k: toyworld.EVAL_SEED + v for k, v in toyworld.SEED_BLOCKS.items()}
    K = len(toyworld.DIRECTIONS)
    print(f"held-out data: {args.iou_videos} noise-square videos of {T} frames, {args.probe_train}+{args.probe_test} "
          f"probe videos of {args.probe_frames} frames per direction, {args.shapes_videos} shapes videos of "
          f"{max(lengths)} frames", flush=True)
    world = dict(args.world)                                              # --world's options (square via --square)
    square = args.square or world.pop("square", None)
    iou_vids, iou_masks, iou_dirs = toyworld.noise_square_set(args.iou_videos, T, size, base["iou"], square, **world)
    videos, _, classes = toyworld.noise_square_set(K * args.probe_train, args.probe_frames, size, base["probe"],
                                                   square, **world)
    probe_train = (videos, classes)
    videos, _, classes = toyworld.noise_square_set(K * args.probe_test, args.probe_frames, size, base["probe"] + 50_000,
                                                   square, **world)
    probe_test = (videos, classes)
    shapes = toyworld.shapes_set(args.shapes_videos, max(lengths), size, base["shapes"])
    kinds = [toyworld.shapes_set(args.kind_videos, args.kind_frames, size, base["kinds"] + first, with_kinds=True)
             for first in (0, 50_000)]                                     # train, test
    kinds_train, kinds_test = [(v, c) for v, _, c in kinds]
    lp = dict(n_context=args.lp_context, radius=args.lp_radius, topk=args.lp_topk, temperature=args.lp_temperature)
    if args.remove == "position":   # reference videos of each probe's world, seeds none of the scored ones use
        noise_ref = toyworld.noise_square_set(args.reference_videos, T, size, base["iou"] + REFERENCE_OFFSET, square,
                                              **world)[0]
        shapes_ref = toyworld.shapes_set(args.reference_videos, args.kind_frames, size,
                                         base["shapes"] + REFERENCE_OFFSET)[0]
    rows = []
    for name, model, patch in entries:
        start = time.perf_counter()
        model = model.to(device).eval()
        noise_view = shapes_view = model
        if args.remove == "position":
            print(f"[{name}] the mean feature at each place over {args.reference_videos} reference videos", flush=True)
            noise_view = PositionRemoved(model, noise_ref, device)
            shapes_view = PositionRemoved(model, shapes_ref, device)
        print(f"[{name}] noise-square IoU", flush=True)
        row = {"model": name, "view": VIEWS[args.remove],
               **probe_noise_square(noise_view, patch, iou_vids, iou_masks, device, name, iou_dirs)}
        print(f"[{name}] motion probe", flush=True)
        row.update(probe_motion(noise_view, probe_train, probe_test, device, name))
        print(f"[{name}] label propagation", flush=True)
        row.update(probe_propagation(shapes_view, patch, shapes, device, lengths, lp, name))
        print(f"[{name}] shape-kind probe", flush=True)
        row.update(probe_kinds(shapes_view, patch, kinds_train, kinds_test, device, name))
        row["eval_seconds"] = time.perf_counter() - start
        print(f"[{name}] IoU {row['iou']:.3f} (K={BEST_K} best cluster {row['iou_best_cluster_k5']:.3f})  "
              f"motion {row['motion_acc']:.3f}  J {row['J']:.3f}  "
              f"kind {row['kind_acc']:.3f}  "
              f"({row['eval_seconds']:.0f} s)", flush=True)
        rows.append(row)
    return rows


def markdown(rows, args):
    L0, T = args.lengths[0], args.frames
    head = ["model", "noise-sq IoU", f"IoU K={BEST_K} best cluster", "IoU t<4", f"IoU t>={T // 2}",
            "IoU axis / diagonal", "pixel IoU (ceiling)", "motion acc", f"J ({L0} fr)",
            *[f"J{L}/J{L0}" for L in args.lengths[1:]], "kind acc", f"s/video ({T} fr)"]
    view = VIEWS[args.remove] + (f", {args.reference_videos} per world" if args.remove != "none" else "")
    lines = [f"View: {view}.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        split = " / ".join("n/a" if r.get(k) is None else f"{r[k]:.3f}" for k in ("iou_axis", "iou_diagonal"))
        cells = [r["model"], f"{r['iou']:.3f}", f"{r['iou_best_cluster_k5']:.3f}", f"{r['iou_early']:.3f}",
                 f"{r['iou_late']:.3f}", split,
                 f"{r['iou_pixel']:.3f} ({r['iou_pixel_ceiling']:.3f})", f"{r['motion_acc']:.3f}", f"{r['J']:.3f}",
                 *["n/a" if r["stability"][L] is None else f"{r['stability'][L]:.3f}" for L in args.lengths[1:]],
                 f"{r['kind_acc']:.3f}", f"{r['sec_per_video']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    square = args.square or args.world.get("square") or toyworld.noise_square_options(args.size)["square"]
    notes = [
        f"- noise-sq IoU: k-means K=2 on each of {args.iou_videos} held-out videos of the world {args.world_spec} "
        f"({T} frames, {square}-px square on {args.size}-px frames), clusters matched to square / background, "
        f"IoU on the token grid (ceiling 1). "
        f"IoU K={BEST_K} best cluster: k-means K={BEST_K} on each video, the IoU of the one cluster that best "
        f"matches the square (RVM Sec. 4.4 draws K={BEST_K}). "
        f"IoU axis / diagonal: the videos moving along an axis / diagonally. "
        f"Pixel IoU: the same at pixel level (ceiling: the token-grid ground truth).",
        f"- motion acc: linear probe on mean-pooled features, {args.probe_train} train / {args.probe_test} test "
        f"videos of {args.probe_frames} frames per direction (chance {1 / len(toyworld.DIRECTIONS):.3f}).",
        f"- J: label propagation of the first frame's instance mask on {args.shapes_videos} shapes videos (queue "
        f"{args.lp_context}, radius {args.lp_radius}, top-k {args.lp_topk}, temperature {args.lp_temperature}), "
        f"scored at pixel level. J{{L}}/J{L0}: J over the first L frames / J over the first {L0} (stability).",
        f"- kind acc: linear probe of each token's class (background / square / disc / triangle) on the tokens of "
        f"{args.kind_videos} train / {args.kind_videos} test shapes videos of {args.kind_frames} frames, mean recall "
        f"over classes (chance {1 / (len(toyworld.SHAPE_KINDS) + 1):.3f}).",
        f"- s/video: seconds of feature extraction per {T}-frame video on {args.device_name}.",
        f"- Held-out seeds from {toyworld.EVAL_SEED}. Command: `"
        + " ".join(["python evaluate.py"] + sys.argv[1:]) + "`"]
    return "\n".join(lines + [""] + notes) + "\n"


def get_parser():
    p = argparse.ArgumentParser(description="Evaluate checkpoints in the toy world: noise-square IoU, motion probe, "
                                "label propagation, long-horizon stability, shape-kind probe, cost; one table "
                                "(+ random-init and raw-pixel baselines).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", action="append", required=True, help="a train.py checkpoint (repeat to compare)")
    p.add_argument("--out", default="results", help="folder for results.md and results.json")
    p.add_argument("--iou-videos", type=int, default=16, help="held-out noise-square videos for the IoU")
    p.add_argument("--frames", type=int, default=16, help="frames per noise-square IoU video")
    p.add_argument("--square", type=int, default=None, help="noise-square side in pixels (default: train.py's)")
    p.add_argument("--world", default="noise_square", help="the noise-square world of the IoU and motion probes, "
                   "as train.py's --data: e.g. noise_square:grain=1 (per-pixel noise) or noise_square:boundary=bounce")
    p.add_argument("--probe-train", type=int, default=8, help="motion-probe training videos per direction")
    p.add_argument("--probe-test", type=int, default=8, help="motion-probe test videos per direction")
    p.add_argument("--probe-frames", type=int, default=8, help="frames per motion-probe video")
    p.add_argument("--shapes-videos", type=int, default=6, help="shapes videos for label propagation")
    p.add_argument("--kind-videos", type=int, default=24, help="shape-kind probe: train and test videos each")
    p.add_argument("--kind-frames", type=int, default=16, help="frames per shape-kind probe video")
    p.add_argument("--lengths", default="16,32,48,64", help="video lengths for long-horizon J (first = reference)")
    p.add_argument("--lp-context", type=int, default=20, help="label propagation: queue of last frames")
    p.add_argument("--lp-radius", type=int, default=3, help="label propagation: neighbourhood radius in tokens")
    p.add_argument("--lp-topk", type=int, default=7, help="label propagation: neighbours kept per token")
    p.add_argument("--lp-temperature", type=float, default=0.7, help="label propagation: softmax temperature")
    p.add_argument("--twin-seeds", type=int, default=1, help="random-init twins per checkpoint, seeds 0.. (spread)")
    p.add_argument("--remove", choices=list(VIEWS), default="none", help="the view every row is scored on; position: "
                   "each token minus the mean feature at its place over reference videos of the probe's world")
    p.add_argument("--reference-videos", type=int, default=16, help="--remove position: held-out reference videos "
                   "per world")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    # DAVIS-2017 J&F (davis.py) instead of the toy-world probes
    p.add_argument("--davis", metavar="ROOT", default=None, help="score DAVIS-2017 label propagation J&F on the "
                   "dataset at ROOT (JPEGImages/480p, Annotations/480p, ImageSets/2017/val.txt) instead of the probes")
    p.add_argument("--davis-size", default=None, help="--davis: frames resized to H,W for the features "
                   "(default 480,880 as RVM's notebook; a tiny model: e.g. 64,64)")
    p.add_argument("--lp-protocol", choices=metrics.LP_PROTOCOLS, default="dino", help="--davis: label propagation "
                   "as DINO's code (SiamMAE's numbers) or RVM's evaluation notebook")
    p.add_argument("--davis-sequences", type=int, default=None, help="--davis: only the first N sequences")
    p.add_argument("--davis-videos", action="store_true", help="--davis: also write each prediction over its frames "
                   "as an MP4 (--out/davis-videos)")
    return p


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.davis is not None:   # DAVIS-2017 J&F: its own inputs, loop and table (davis.py)
        return davis.evaluate_davis(args, parser.error)
    reason = runs.check_out_folder(args.out)   # before any work: a bad --out never costs an evaluation
    if reason:
        parser.error(reason)
    try:
        args.lengths = [int(x) for x in args.lengths.split(",")]
    except ValueError:
        parser.error(f"--lengths must be comma-separated integers; got {args.lengths!r}")
    if min(args.iou_videos, args.frames, args.probe_train, args.probe_test, args.probe_frames, args.shapes_videos,
           args.kind_videos, args.kind_frames, args.twin_seeds, args.reference_videos) < 1:
        parser.error("video counts, --frames, --probe-frames, --kind-frames, --twin-seeds and --reference-videos "
                     "must be >= 1")
    if min(args.lengths) < 2:   # J leaves out the given first frame: one frame scores nothing (J = nan)
        parser.error(f"--lengths must be frame counts >= 2 (J scores the frames after the given first); "
                     f"got {','.join(map(str, args.lengths))}")
    if args.lp_topk < 1 or args.lp_context < 0 or args.lp_radius < 0:
        parser.error(f"--lp-topk must be >= 1 and --lp-context, --lp-radius >= 0; got --lp-topk {args.lp_topk}, "
                     f"--lp-context {args.lp_context}, --lp-radius {args.lp_radius}")
    if not (math.isfinite(args.lp_temperature) and args.lp_temperature > 0):   # 0: a softmax of inf, J = 0 silently
        parser.error(f"--lp-temperature must be a number > 0; got {args.lp_temperature}")
    if args.square is not None and args.square < 1:
        parser.error(f"--square must be a side in pixels >= 1; got {args.square}")
    try:
        device = methods.device_for(args.device)
    except ValueError as e:
        parser.error(str(e))
    args.device_name = str(device)
    loaded = []
    for path in args.ckpt:
        try:
            model, cfg, meta = methods.load_checkpoint(path)
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))
        loaded.append((path, model, cfg, meta["method"]))
    sizes = {cfg.img_size for _, _, cfg, _ in loaded}
    if len(sizes) > 1:
        parser.error(f"the checkpoints differ in img_size {sorted(sizes)}; evaluate them separately")
    args.size = sizes.pop()
    if args.square is not None and args.square > args.size:
        parser.error(f"--square must be a side in pixels from 1 to the frame's {args.size}; got {args.square}")
    try:   # the noise-square world of the IoU and motion probes, as train.py's --data (options checked here)
        kind, world = data.world_spec(args.world, args.size)
    except ValueError as e:
        parser.error(f"--world: {e}")
    if kind != "noise_square":
        parser.error(f"--world must be noise_square[:key=value...]; got {args.world!r}")
    if world.pop("mix", False):
        parser.error("--world: mix=true is a training distribution; evaluate one world at a time")
    args.world_spec, args.world = args.world, world
    names = [m for _, _, _, m in loaded]
    entries = []
    for path, model, cfg, method in loaded:
        entries.append((method if names.count(method) == 1 else f"{method} ({path})", model, cfg.patch))
    entries += random_twins([(name, method, cfg) for (name, _, _), (_, _, cfg, method) in zip(entries, loaded)],
                            args.twin_seeds)
    entries += [("raw pixels", RawPixels(loaded[0][2].patch), loaded[0][2].patch)]
    rows = evaluate_all(entries, args, device)
    table = markdown(rows, args)
    print("\n" + table)
    os.makedirs(args.out, exist_ok=True)
    runs.write_atomic(os.path.join(args.out, "results.md"), table)
    runs.write_atomic(os.path.join(args.out, "results.json"), json.dumps(
        {"rows": rows, "checkpoints": args.ckpt, "eval_seed": toyworld.EVAL_SEED, "seed_blocks": toyworld.SEED_BLOCKS,
         "settings": {k: v for k, v in vars(args).items() if k != "ckpt"}}, indent=1))
    print(f"wrote {os.path.join(args.out, 'results.md')} and results.json", flush=True)


if __name__ == "__main__":
    main()
