"""Measure what each method learned, in the toy world: five probes, one table.

    python evaluate.py --ckpt runs/rvm/ckpt.pt [--ckpt runs/siammae/ckpt.pt ...] --out results/

Every row of the table is a feature extractor (B, T, 3, H, W) -> (B, T, h, w, D):
each checkpoint, a randomly initialized model of the same method and config
("random-init", what the architecture gives for free), and raw pixels (each
token's feature is its p x p x 3 patch). The probes (issue 8):

1. Noise-square IoU (RVM Fig. 6). Every frame of a noise-square video is white
   noise on its own; only motion tells the square from the background. k-means
   with K = 2 on all tokens of a video, clusters matched to square/background
   by the best assignment, IoU of the square per frame. Scored on the token
   grid (a token is "square" when more than half its pixels are; ceiling 1.0),
   with the pixel-level IoU and its oracle ceiling beside it (DESIGN.md), and
   split by frame position and by the videos' direction (axis / diagonal).
2. Motion probe: a linear classifier on the mean-pooled features of a video
   predicts the square's direction of motion (8 classes, chance 1/8).
3. Label propagation (SiamMAE Sec. 4, App. A Table 4b; RVM Sec. 4): the first
   frame's instance mask of a shapes video is carried forward by feature
   affinities; J = region IoU per object, averaged over frames and objects.
4. Long-horizon stability (RVM Fig. 4): J over the first 16, 32, 48, 64
   frames, divided by the 16-frame J.
5. Cost: seconds of feature extraction per video.

Held-out data: a training item `index` of a run with `--seed S` (default 0)
is drawn by data.SyntheticVideos from a generator seeded S * 1_000_003 +
index, which picks the video's own seed at random from [0, 2**62). The videos
here are made directly from the seeds EVAL_SEED = 10**9 + i (one block of
seeds per probe, SEED_BLOCKS), with the training options (square side, speed,
texel grain, lattice, wrapping borders; the noise square is not augmented in
training either), so they are new videos of the training distribution.
Reference points for the IoU with the default world (a half-frame square,
1/4 of the frame, one token a frame on the token grid): random-init frame
encoders score 0.24-0.26, raw pixels 0.23 (chance: k-means splits on
texture), a random-init RVM 0.05 (its state grows from s_0 = 0, so k-means
splits early frames from late ones: IoU 0 on late frames), and a one-line
motion detector (each token's |x_t - x_(t-1)| patch, see the tests) 0.69
after the first frame. The square is on the token grid, so the token-grid
ground truth scores 1 at pixel level too.

The metric functions (kmeans, pca_rgb, hungarian_best_match, iou, region_J,
label_propagation, linear_probe) are written here once; viz.py imports them.
"""
import argparse
import dataclasses
import itertools
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import data
import methods
import vit

EVAL_SEED = 10**9                 # held-out seeds start here (training videos get random 62-bit seeds)
SEED_BLOCKS = {"iou": 0, "probe": 100_000, "shapes": 200_000}   # one block of seeds per probe

# ----------------------------------------------------------------------------
# metric functions (shared with viz.py)


def kmeans(x, k, seed=0, iters=50):
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007).
    x (M, D) -> labels (M,) int64, centers (k, D). Every random draw comes
    from a CPU generator seeded with `seed`, so the result is deterministic."""
    x = x.float()
    M = x.shape[0]
    if not 1 <= k <= M:
        raise ValueError(f"k-means needs 1 <= k <= number of points; got k={k}, x of shape {tuple(x.shape)}")
    g = torch.Generator().manual_seed(seed)
    # k-means++: the first center uniformly, each next one with probability ~ squared distance to the nearest center
    first = torch.randint(M, (1,), generator=g).item()
    centers = x[first:first + 1]                                          # (1, D)
    d2 = (x - centers[0]).pow(2).sum(1)                                   # (M,)
    for _ in range(1, k):
        w = d2.double().cpu()
        pick = torch.multinomial(w / w.sum(), 1, generator=g) if w.sum() > 0 else torch.randint(M, (1,), generator=g)
        centers = torch.cat([centers, x[pick.item()][None]])              # (j + 1, D)
        d2 = torch.minimum(d2, (x - centers[-1]).pow(2).sum(1))
    # Lloyd: assign every point to its nearest center, move each center to the mean of its points
    for _ in range(iters):
        labels = torch.cdist(x, centers).argmin(1)                        # (M,)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)         # (k, D)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)[:, None]  # (k, 1)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centers)  # an empty cluster keeps its center
        if torch.equal(new, centers):
            break
        centers = new
    return torch.cdist(x, centers).argmin(1), centers


def pca_rgb(features):
    """(..., D) -> (..., 3) in [0, 1] (RVM Sec. 4.4): the top three principal
    components, fit over ALL rows (every frame and position together, so
    colours mean the same thing across time), each min-max scaled to [0, 1]."""
    lead, D = features.shape[:-1], features.shape[-1]
    x = features.reshape(-1, D).float()
    x = x - x.mean(0)                                                     # (M, D) centred
    _, _, Vh = torch.linalg.svd(x, full_matrices=False)                   # rows of Vh: principal directions
    comps = Vh[:3]                                                        # (c, D), c = min(3, M, D)
    # a direction's sign is arbitrary: make its largest loading positive, so colours are reproducible
    comps = comps * comps.gather(1, comps.abs().argmax(1, keepdim=True)).sign()
    y = x @ comps.T                                                       # (M, c)
    y = F.pad(y, (0, 3 - y.shape[1]))                                     # (M, 3) fewer than 3 components: zeros
    lo, hi = y.min(0).values, y.max(0).values
    return ((y - lo) / (hi - lo).clamp(min=1e-8)).reshape(*lead, 3)


def hungarian_best_match(confusion):
    """The assignment of predicted clusters (rows) to true labels (columns)
    that maximizes the matched count, i.e. what the Hungarian algorithm
    finds. For K <= 8 we simply try every permutation (8! = 40320), which is
    fast and obviously right. confusion (K_pred, K_true) -> match (K_pred,)
    int64: the true label of each cluster, -1 for a cluster left unmatched
    (when K_pred > K_true)."""
    C = torch.as_tensor(confusion, dtype=torch.float64).cpu()
    kp, kt = C.shape
    n = max(kp, kt)
    if n > 8:
        raise ValueError(f"brute-force matching is for K <= 8; got confusion of shape {(kp, kt)}")
    square = torch.zeros(n, n, dtype=torch.float64)
    square[:kp, :kt] = C                                                  # zero padding: dummy rows/columns
    perms = torch.tensor(list(itertools.permutations(range(n))))         # (n!, n) row i -> column perms[:, i]
    scores = square[torch.arange(n), perms].sum(1)                        # (n!,)
    best = perms[scores.argmax()][:kp]
    return torch.where(best < kt, best, torch.full_like(best, -1))


def confusion_matrix(pred, target, kp, kt):
    """(kp, kt) counts of (predicted cluster, true label) pairs."""
    idx = pred.reshape(-1).long() * kt + target.reshape(-1).long()
    return torch.bincount(idx, minlength=kp * kt).reshape(kp, kt)


def iou(pred, target, dims=None):
    """Intersection over union of two boolean masks, reduced over `dims`
    (all dims when None). Where both masks are empty the IoU is 1."""
    pred, target = pred.bool(), target.bool()
    dims = tuple(range(pred.dim())) if dims is None else dims
    inter = (pred & target).sum(dims).double()
    union = (pred | target).sum(dims).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def match_square(clusters, square):
    """The noise-square segmentation of one video: clusters (T, h, w) int, the
    k-means cluster of every token; square (T, h, w) bool, the ground truth.
    Clusters are matched to {background, square} once for the whole video
    (the best assignment, so cluster ids do not matter) -> (T, h, w) bool,
    the tokens whose cluster is matched to the square."""
    k = int(clusters.max()) + 1
    match = hungarian_best_match(confusion_matrix(clusters, square, k, 2))   # (k,) cluster -> 0 / 1 / -1
    return match[clusters.long()] == 1


def token_fractions(labels, patch, num_classes):
    """Label maps (..., H, W) int -> (..., h, w, C): the fraction of each
    p x p token's pixels that carry each label (the soft labels of the token
    grid; a token's majority label is their argmax)."""
    lead, (H, W) = labels.shape[:-2], labels.shape[-2:]
    onehot = F.one_hot(labels.long().reshape(-1, H, W), num_classes).permute(0, 3, 1, 2).float()  # (L, C, H, W)
    frac = F.avg_pool2d(onehot, patch)                                    # (L, C, h, w)
    return frac.permute(0, 2, 3, 1).reshape(*lead, H // patch, W // patch, num_classes)


def region_J(pred, target, objects=None, skip_first=True):
    """DAVIS region similarity J (Pont-Tuset et al. 2017): per object, the
    IoU of its predicted and true masks, averaged over frames. pred, target
    (T, H, W) int label maps, 0 = background. The first frame is the given
    one in label propagation, so it is not scored (skip_first). Returns
    (mean J over objects, (n_objects,) J per object)."""
    if skip_first:
        pred, target = pred[1:], target[1:]
    if objects is None:
        objects = [int(o) for o in target.unique() if o != 0]
    per_object = torch.stack([iou(pred == o, target == o, dims=(-2, -1)).mean() for o in objects])
    return per_object.mean().item(), per_object


def neighbourhood(h, w, radius):
    """(N, N) bool: token j lies within `radius` rows and columns of token i
    (the square window of the DINO / CRW label-propagation code)."""
    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)   # (N,) row-major
    return ((rows[:, None] - rows[None]).abs() <= radius) & ((cols[:, None] - cols[None]).abs() <= radius)


def label_propagation(feats, first_labels, n_context=20, radius=3, topk=7, temperature=0.7):
    """Semi-supervised video label propagation by feature affinity, the
    protocol of CRW (Jabri et al. 2020, test.py) and DINO's
    eval_video_segmentation that SiamMAE (Sec. 4, App. A Table 4b: top-k 7,
    queue 20) and RVM (Sec. 4, Fig. 4) report on DAVIS.

    feats (T, h, w, D) one video's features; first_labels (h, w, C) the first
    frame's soft labels on the token grid (one-hot, or pixel fractions from
    `token_fractions`). For every later frame t: l2-normalize features; the
    context is frame 0 (its true labels) plus the last `n_context` frames
    (their predicted soft labels); each query token looks only at context
    tokens within `radius` rows/columns of itself, keeps its `topk` most
    similar ones and averages their labels with weights
    softmax(cosine / temperature). Returns (T, h, w, C) soft labels, frame 0
    = first_labels."""
    T, h, w, D = feats.shape
    N, C = h * w, first_labels.shape[-1]
    f = F.normalize(feats.float().reshape(T, N, D), dim=-1)               # (T, N, D)
    labels = [first_labels.float().reshape(N, C).to(f.device)]            # per frame (N, C)
    near = neighbourhood(h, w, radius).to(f.device)                       # (N, N)
    for t in range(1, T):
        ctx = [0] + list(range(max(1, t - n_context), t))                 # first frame + queue of the last frames
        sim = torch.einsum("qd,cnd->qcn", f[t], f[ctx])                   # (N, n_ctx, N) cosine similarities
        sim = sim.masked_fill(~near[:, None, :], float("-inf")).reshape(N, -1)   # (N, n_ctx*N)
        top, idx = sim.topk(min(topk, sim.shape[1]), dim=1)               # (N, k)
        weight = torch.softmax(top / temperature, dim=1)                  # (N, k); -inf (out of reach) -> 0
        ctx_labels = torch.stack([labels[c] for c in ctx]).reshape(-1, C)  # (n_ctx*N, C)
        labels.append((weight[..., None] * ctx_labels[idx]).sum(1))       # (N, C)
    return torch.stack(labels).reshape(T, h, w, C)


def labels_to_pixels(soft, H, W):
    """Token-grid soft labels (T, h, w, C) -> pixel label map (T, H, W), as
    DINO's eval_video_segmentation does: bilinear upsampling, then every
    label's map min-max normalized per frame (its `norm_mask`, which keeps
    small objects, whose soft labels are diluted by the background, from
    vanishing), then the argmax."""
    up = F.interpolate(soft.permute(0, 3, 1, 2).float(), size=(H, W), mode="bilinear",
                       align_corners=False)                               # (T, C, H, W)
    lo, hi = up.amin((-2, -1), keepdim=True), up.amax((-2, -1), keepdim=True)
    return ((up - lo) / (hi - lo).clamp(min=1e-8)).argmax(1)              # (T, H, W)


def linear_probe(train_x, train_y, test_x, test_y, weight_decay=1e-3, max_iter=200):
    """Multinomial logistic regression on standardized features, trained to
    convergence with L-BFGS (deterministic: no minibatches, no random init).
    Returns the accuracy on the test set."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    C = int(max(train_y.max(), test_y.max())) + 1
    W = torch.zeros(xtr.shape[1], C, dtype=xtr.dtype, requires_grad=True)
    b = torch.zeros(C, dtype=xtr.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ W + b, train_y) + weight_decay * W.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return ((xte @ W + b).argmax(1) == test_y).double().mean().item()


# ----------------------------------------------------------------------------
# feature extractors: checkpoints, random-init twins, raw pixels


class RawPixels(nn.Module):
    """The raw-pixel baseline: a token's feature is its p x p x 3 patch
    (vit.patchify), the same grid the models see."""

    def __init__(self, patch):
        super().__init__()
        self.patch = patch

    def features(self, video):
        vit.check_frames(video, self.patch, "video", ndim=5)
        B, T, _, H, W = video.shape
        x = vit.patchify(video.flatten(0, 1), self.patch)                 # (B*T, N, p*p*3)
        return x.reshape(B, T, H // self.patch, W // self.patch, -1)      # (B, T, h, w, p*p*3)


def random_init(method, cfg, seed=0):
    """The same method and config with fresh weights (a fixed seed; the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return methods.MODELS[method](cfg).eval()


def extract(model, videos, device, batch_size=8, label=""):
    """videos (V, T, 3, H, W) -> features (V, T, h, w, D) on the CPU and
    seconds of feature extraction per video (bf16 autocast on CUDA)."""
    out, start = [], time.perf_counter()
    for i in range(0, len(videos), batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(methods.video_features(model, videos[i:i + batch_size].to(device)).float().cpu())
        if label and len(videos) > batch_size:
            print(f"    {label}: features {min(i + batch_size, len(videos))}/{len(videos)} videos", flush=True)
    return torch.cat(out), (time.perf_counter() - start) / len(videos)


# ----------------------------------------------------------------------------
# held-out data (seeds from EVAL_SEED upward, see the module docstring)


def noise_square_set(n, T, size, first_seed, square=None):
    """n held-out noise-square videos like train.py's (data.SyntheticVideos'
    options: square side, grain, lattice, colour, wrapping borders, so a
    direction never changes), without augmentation and at the middle of the
    training speed range; video i moves along data.DIRECTIONS[i % 8].
    `square` overrides the side. -> videos (n, T, 3, H, W), masks (n, T, H, W),
    direction classes (n,)."""
    world = data.SyntheticVideos("noise_square", 1, size, augment=False)     # the training defaults
    o, K = world.options, len(data.DIRECTIONS)
    speed = o["speed"] if isinstance(o["speed"], (int, float)) else sum(o["speed"]) / 2
    pairs = [world.noise_square(T, i % K, speed, first_seed + i, square=square) for i in range(n)]
    return torch.stack([v for v, _ in pairs]), torch.stack([m for _, m in pairs]), torch.arange(n) % K


def shapes_set(n, T, size, first_seed):
    """n held-out shapes videos (n, T, 3, H, W) and instance masks (n, T, H, W)."""
    pairs = [data.shapes_video(T=T, size=size, n_shapes=3, seed=first_seed + i) for i in range(n)]
    return torch.stack([v for v, _ in pairs]), torch.stack([m for _, m in pairs])


# ----------------------------------------------------------------------------
# the probes


def probe_noise_square(model, patch, videos, masks, device, label, directions=None):
    """Metric 1 (RVM Fig. 6): k-means K = 2 per video, best match, IoU of
    the square per frame on the token grid; the pixel-level IoU beside it,
    with its ceiling (the token-grid ground truth scored at pixel level).
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
    tok, pix, ceiling = [], [], []
    for v in range(V):
        clusters = kmeans(feats[v].reshape(-1, D), 2, seed=v)[0].reshape(T, h, w)  # (T, h, w)
        truth = token_fractions(masks[v].long(), patch, 2)[..., 1] > 0.5  # (T, h, w) "square" = majority of pixels
        pred = match_square(clusters, truth)
        tok.append(iou(pred, truth, dims=(-2, -1)))                       # (T,)
        pix.append(iou(up(pred), masks[v], dims=(-2, -1)))
        ceiling.append(iou(up(truth), masks[v], dims=(-2, -1)))
    tok = torch.stack(tok)                                                # (V, T)
    per_frame = tok.mean(0)                                               # (T,) averaged over videos
    out = {"iou": per_frame.mean().item(), "iou_early": per_frame[:4].mean().item(),
           "iou_late": per_frame[T // 2:].mean().item(), "iou_per_frame": [round(x, 4) for x in per_frame.tolist()],
           "iou_pixel": torch.stack(pix).mean().item(), "iou_pixel_ceiling": torch.stack(ceiling).mean().item(),
           "sec_per_video": sec}
    if directions is not None:
        per_video = tok.mean(1)                                           # (V,)
        diagonal = torch.tensor([data.DIRECTIONS[int(c)] % 90 != 0 for c in directions])
        for key, sel in (("iou_axis", ~diagonal), ("iou_diagonal", diagonal)):
            out[key] = per_video[sel].mean().item() if sel.any() else None
    return out


def probe_motion(model, train_set, test_set, device, label):
    """Metric 2: mean-pool each video's features over frames and tokens, fit
    a linear classifier of the direction on the train videos, report the
    accuracy on the test videos (chance 1 / 8). Sets: (videos, classes)."""
    (xtr, ytr), (xte, yte) = [(extract(model, v, device, label=label)[0].mean((1, 2, 3)).double(), y)
                              for v, y in (train_set, test_set)]          # (V, D) pooled
    return {"motion_acc": linear_probe(xtr, ytr, xte, yte), "motion_chance": 1 / len(data.DIRECTIONS)}


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
        soft = label_propagation(feats[v], token_fractions(masks[v, 0], patch, C), **lp)   # (T, h, w, C)
        pred = labels_to_pixels(soft, H, W)                               # (T, H, W)
        for L in lengths:
            J[L].append(region_J(pred[:L], masks[v, :L], objects)[0])
    J = {L: sum(j) / len(j) for L, j in J.items()}
    J0 = J[lengths[0]]
    return {"J": J0, "J_by_length": J, "stability": {L: J[L] / J0 if J0 > 0 else None for L in lengths}}


# ----------------------------------------------------------------------------
# the table


def evaluate_all(entries, args, device):
    """entries: [(name, model, patch)] -> one row (dict) per entry."""
    size, T, lengths = args.size, args.frames, args.lengths
    base = {k: EVAL_SEED + v for k, v in SEED_BLOCKS.items()}
    K = len(data.DIRECTIONS)
    print(f"held-out data: {args.iou_videos} noise-square videos of {T} frames, {args.probe_train}+{args.probe_test} "
          f"probe videos of {args.probe_frames} frames per direction, {args.shapes_videos} shapes videos of "
          f"{max(lengths)} frames", flush=True)
    iou_vids, iou_masks, iou_dirs = noise_square_set(args.iou_videos, T, size, base["iou"], args.square)
    videos, _, classes = noise_square_set(K * args.probe_train, args.probe_frames, size, base["probe"], args.square)
    probe_train = (videos, classes)
    videos, _, classes = noise_square_set(K * args.probe_test, args.probe_frames, size, base["probe"] + 50_000,
                                          args.square)
    probe_test = (videos, classes)
    shapes = shapes_set(args.shapes_videos, max(lengths), size, base["shapes"])
    lp = dict(n_context=args.lp_context, radius=args.lp_radius, topk=args.lp_topk, temperature=args.lp_temperature)
    rows = []
    for name, model, patch in entries:
        start = time.perf_counter()
        model = model.to(device).eval()
        print(f"[{name}] noise-square IoU", flush=True)
        row = {"model": name, **probe_noise_square(model, patch, iou_vids, iou_masks, device, name, iou_dirs)}
        print(f"[{name}] motion probe", flush=True)
        row.update(probe_motion(model, probe_train, probe_test, device, name))
        print(f"[{name}] label propagation", flush=True)
        row.update(probe_propagation(model, patch, shapes, device, lengths, lp, name))
        row["eval_seconds"] = time.perf_counter() - start
        print(f"[{name}] IoU {row['iou']:.3f}  motion {row['motion_acc']:.3f}  J {row['J']:.3f}  "
              f"({row['eval_seconds']:.0f} s)", flush=True)
        rows.append(row)
    return rows


def markdown(rows, args):
    L0, T = args.lengths[0], args.frames
    head = ["model", "noise-sq IoU", "IoU t<4", f"IoU t>={T // 2}", "IoU axis / diagonal", "pixel IoU (ceiling)",
            "motion acc", f"J ({L0} fr)", *[f"J{L}/J{L0}" for L in args.lengths[1:]], f"s/video ({T} fr)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        split = " / ".join("n/a" if r.get(k) is None else f"{r[k]:.3f}" for k in ("iou_axis", "iou_diagonal"))
        cells = [r["model"], f"{r['iou']:.3f}", f"{r['iou_early']:.3f}", f"{r['iou_late']:.3f}", split,
                 f"{r['iou_pixel']:.3f} ({r['iou_pixel_ceiling']:.3f})", f"{r['motion_acc']:.3f}", f"{r['J']:.3f}",
                 *["n/a" if r["stability"][L] is None else f"{r['stability'][L]:.3f}" for L in args.lengths[1:]],
                 f"{r['sec_per_video']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    square = args.square or data.SyntheticVideos("noise_square", 1, args.size, augment=False).options["square"]
    notes = [
        f"- noise-sq IoU: k-means K=2 on each of {args.iou_videos} held-out videos ({T} frames, {square}-px square "
        f"on {args.size}-px frames), clusters matched to square / background, IoU on the token grid (ceiling 1). "
        f"IoU axis / diagonal: the videos moving along an axis / diagonally. "
        f"Pixel IoU: the same at pixel level (ceiling: the token-grid ground truth).",
        f"- motion acc: linear probe on mean-pooled features, {args.probe_train} train / {args.probe_test} test "
        f"videos of {args.probe_frames} frames per direction (chance {1 / len(data.DIRECTIONS):.3f}).",
        f"- J: label propagation of the first frame's instance mask on {args.shapes_videos} shapes videos (queue "
        f"{args.lp_context}, radius {args.lp_radius}, top-k {args.lp_topk}, temperature {args.lp_temperature}), "
        f"scored at pixel level. J{{L}}/J{L0}: J over the first L frames / J over the first {L0} (stability).",
        f"- s/video: seconds of feature extraction per {T}-frame video on {args.device_name}.",
        f"- Held-out seeds from {EVAL_SEED}. Command: `" + " ".join(["python evaluate.py"] + sys.argv[1:]) + "`"]
    return "\n".join(lines + [""] + notes) + "\n"


def get_parser():
    p = argparse.ArgumentParser(description="Evaluate checkpoints in the toy world: noise-square IoU, motion probe, "
                                "label propagation, long-horizon stability, cost; one table (+ random-init and "
                                "raw-pixel baselines).", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ckpt", action="append", required=True, help="a train.py checkpoint (repeat to compare)")
    p.add_argument("--out", default="results", help="folder for results.md and results.json")
    p.add_argument("--iou-videos", type=int, default=16, help="held-out noise-square videos for the IoU")
    p.add_argument("--frames", type=int, default=16, help="frames per noise-square IoU video")
    p.add_argument("--square", type=int, default=None, help="noise-square side in pixels (default: train.py's)")
    p.add_argument("--probe-train", type=int, default=8, help="motion-probe training videos per direction")
    p.add_argument("--probe-test", type=int, default=8, help="motion-probe test videos per direction")
    p.add_argument("--probe-frames", type=int, default=8, help="frames per motion-probe video")
    p.add_argument("--shapes-videos", type=int, default=6, help="shapes videos for label propagation")
    p.add_argument("--lengths", default="16,32,48,64", help="video lengths for long-horizon J (first = reference)")
    p.add_argument("--lp-context", type=int, default=20, help="label propagation: queue of last frames")
    p.add_argument("--lp-radius", type=int, default=3, help="label propagation: neighbourhood radius in tokens")
    p.add_argument("--lp-topk", type=int, default=7, help="label propagation: neighbours kept per token")
    p.add_argument("--lp-temperature", type=float, default=0.7, help="label propagation: softmax temperature")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda if available")
    return p


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        args.lengths = [int(x) for x in args.lengths.split(",")]
    except ValueError:
        parser.error(f"--lengths must be comma-separated integers; got {args.lengths!r}")
    if min(args.iou_videos, args.frames, args.probe_train, args.probe_test, args.probe_frames, args.shapes_videos,
           *args.lengths) < 1:
        parser.error("video counts, --frames, --probe-frames and --lengths must be >= 1")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
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
    names = [m for _, _, _, m in loaded]
    entries, twins = [], {}
    for path, model, cfg, method in loaded:
        name = method if names.count(method) == 1 else f"{method} ({path})"
        entries.append((name, model, cfg.patch))
        key = (method, json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str))
        if key not in twins:                     # one random-init twin per (method, config)
            twins[key] = (f"random-init {name}", random_init(method, cfg), cfg.patch)
    entries += list(twins.values()) + [("raw pixels", RawPixels(loaded[0][2].patch), loaded[0][2].patch)]
    rows = evaluate_all(entries, args, device)
    table = markdown(rows, args)
    print("\n" + table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"rows": rows, "checkpoints": args.ckpt, "eval_seed": EVAL_SEED, "seed_blocks": SEED_BLOCKS,
                   "settings": {k: v for k, v in vars(args).items() if k != "ckpt"}}, f, indent=1)
    print(f"wrote {os.path.join(args.out, 'results.md')} and results.json", flush=True)


if __name__ == "__main__":
    main()
