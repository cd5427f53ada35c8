"""The metrics, written once: evaluate.py scores with them, viz.py draws with them.

* kmeans, pca_rgb: unsupervised views of a feature map (k-means with
  k-means++ seeding; the first three principal components as RGB).
* hungarian_best_match, confusion_matrix, iou, match_square, square_iou, token_fractions:
  score clusters against ground truth under the best cluster-to-class
  assignment (the noise-square IoU, RVM Sec. 4.4, Fig. 6).
* region_J, neighbourhood, label_propagation, labels_to_pixels: carry the
  first frame's labels forward by feature affinity, the DAVIS protocol of
  SiamMAE (Sec. 4, App. A) and RVM (Sec. 4), and score it with the region J.
* linear_probe: a multinomial logistic regression on frozen features.

Every function is a pure function of its tensors (and an explicit seed),
with no model and no file I/O, so each is tested against a hand-computed
answer in tests/test_metrics.py.
"""
import itertools

import torch
import torch.nn.functional as F


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


def square_iou(feats, square, seed=0):
    """The noise-square IoU of one video (RVM Fig. 6): k-means K = 2 over all
    tokens of all frames of feats (T, h, w, D), the clusters matched to the
    ground truth square (T, h, w) bool once for the video (`match_square`) ->
    (pred (T, h, w) bool, the IoU of the square per frame (T,) float64)."""
    T, h, w, D = feats.shape
    clusters = kmeans(feats.reshape(-1, D), 2, seed=seed)[0].reshape(T, h, w)   # (T, h, w)
    pred = match_square(clusters, square)
    return pred, iou(pred, square, dims=(-2, -1))


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


def linear_probe(train_x, train_y, test_x, test_y, weight_decay=1e-3, max_iter=200, balanced=False, predict=False):
    """Multinomial logistic regression on standardized features, trained to
    convergence with L-BFGS (deterministic: no minibatches, no random init).
    Returns the accuracy on the test set; balanced: the loss weighs each class
    by 1 / its train frequency and the score is the mean recall over the test
    set's classes (chance 1 / classes, however skewed the classes are).
    predict: return the predicted test labels (N_test,) int64 instead."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    C = int(max(train_y.max(), test_y.max())) + 1
    counts = torch.bincount(train_y, minlength=C).to(xtr.dtype)
    weight = (counts.sum() / (C * counts.clamp(min=1))) if balanced else None   # (C,) 1 for balanced classes
    W = torch.zeros(xtr.shape[1], C, dtype=xtr.dtype, requires_grad=True)
    b = torch.zeros(C, dtype=xtr.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ W + b, train_y, weight=weight) + weight_decay * W.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    pred = (xte @ W + b).argmax(1)
    if predict:
        return pred.detach()
    hit = (pred == test_y).double()
    if balanced:
        return torch.stack([hit[test_y == c].mean() for c in test_y.unique()]).mean().item()
    return hit.mean().item()
