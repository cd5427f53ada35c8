"""Tests for metrics.py: every metric on hand-made inputs with known answers."""
import math

import pytest
import torch
import torch.nn.functional as F

import metrics


# ----------------------------------------------------------------------------
# k-means


def blobs(centers, n, std, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.as_tensor(centers, dtype=torch.float32)
    x = centers.repeat_interleave(n, 0) + std * torch.randn(len(centers) * n, centers.shape[1], generator=g)
    return x, torch.arange(len(centers)).repeat_interleave(n)


def same_partition(a, b):
    """True when label vectors a and b split the points the same way (up to renaming)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_finds_obvious_clusters_and_their_means():
    x, truth = blobs([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], 50, 0.3)
    labels, centers = metrics.kmeans(x, 4, seed=0)
    assert same_partition(labels, truth)
    for c in range(4):   # each center is the mean of its points
        assert torch.allclose(centers[c], x[labels == c].mean(0), atol=1e-5)


def test_kmeans_is_deterministic_by_seed():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))   # no structure: the init decides
    a, ca = metrics.kmeans(x, 5, seed=3)
    b, cb = metrics.kmeans(x, 5, seed=3)
    assert torch.equal(a, b) and torch.equal(ca, cb)
    others = [metrics.kmeans(x, 5, seed=s)[1] for s in range(4, 8)]
    assert any(not torch.allclose(ca, c) for c in others)   # the seed is really used


def test_kmeans_plus_plus_seeding_isolates_a_far_outlier():
    # 200 points in a tight blob and one point far away: k-means++ picks the outlier as the
    # second center with probability ~1; a uniform pick would almost never, and Lloyd
    # started from two blob points would split the blob instead.
    x, _ = blobs([[0.0, 0.0]], 200, 1.0)
    x = torch.cat([x, torch.tensor([[1000.0, 1000.0]])])
    for seed in range(5):
        labels, _ = metrics.kmeans(x, 2, seed=seed)
        assert (labels == labels[-1]).sum() == 1


def test_kmeans_rejects_bad_k():
    with pytest.raises(ValueError, match="k-means"):
        metrics.kmeans(torch.randn(3, 2), 4)


# ----------------------------------------------------------------------------
# PCA


def test_pca_rgb_recovers_planted_directions():
    g = torch.Generator().manual_seed(0)
    D = 16
    u, v = torch.linalg.qr(torch.randn(D, 2, generator=g))[0].T               # two orthonormal directions
    # coefficients with zero mean and zero sample correlation, so the principal axes are exactly u, v
    ab = torch.randn(120, 2, generator=g)
    ab = torch.linalg.qr(ab - ab.mean(0))[0] * 11                        # centred, orthogonal columns
    a, b = ab[:, 0].reshape(4, 5, 6), ab[:, 1].reshape(4, 5, 6)
    x = 10 * a[..., None] * u + 3 * b[..., None] * v + 0.001 * torch.randn(4, 5, 6, D, generator=g)
    rgb = metrics.pca_rgb(x)
    assert rgb.shape == (4, 5, 6, 3)
    flat = rgb.reshape(-1, 3)
    assert torch.allclose(flat.min(0).values, torch.zeros(3)) and torch.allclose(flat.max(0).values, torch.ones(3))
    corr = lambda p, q: torch.corrcoef(torch.stack([p.flatten(), q.flatten()]))[0, 1]
    assert corr(rgb[..., 0], a) > 0.999 or corr(rgb[..., 0], a) < -0.999   # red = the largest-variance direction
    assert abs(corr(rgb[..., 1], b)) > 0.999                                # green = the second
    assert torch.equal(metrics.pca_rgb(x), rgb)                                  # deterministic, signs fixed


def test_pca_rgb_pads_when_fewer_than_three_components():
    rgb = metrics.pca_rgb(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    assert rgb.shape == (3, 3)
    assert torch.allclose(rgb[:, 0].sort().values, torch.tensor([0.0, 0.5, 1.0]), atol=1e-6)


# ----------------------------------------------------------------------------
# matching, IoU, J


def best_by_subsets(C):
    """Independent reference for the assignment problem: dynamic programming
    over subsets of columns (each row gets a distinct column or none)."""
    kp, kt = C.shape
    best = {0: 0.0}                                        # used-columns bitmask -> best score so far
    for i in range(kp):
        nxt = {}
        for used, score in best.items():
            nxt[used] = max(nxt.get(used, -math.inf), score)               # row i unmatched
            for j in range(kt):
                if not used >> j & 1:
                    key = used | 1 << j
                    nxt[key] = max(nxt.get(key, -math.inf), score + C[i, j].item())
        best = nxt
    return max(best.values())


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (5, 5), (6, 4), (3, 6), (8, 8)])
def test_hungarian_matches_exhaustive_reference(shape):
    g = torch.Generator().manual_seed(sum(shape))
    C = torch.randint(0, 20, shape, generator=g)
    match = metrics.hungarian_best_match(C)
    assert match.shape == (shape[0],)
    used = [int(m) for m in match if m >= 0]
    assert len(used) == len(set(used)) == min(shape)                     # a one-to-one assignment
    score = sum(C[i, m].item() for i, m in enumerate(match.tolist()) if m >= 0)
    assert score == best_by_subsets(C)


def test_hungarian_beats_greedy():
    C = torch.tensor([[10, 9], [9, 0]])        # greedy takes 10 then 0; the best is 9 + 9
    assert metrics.hungarian_best_match(C).tolist() == [1, 0]
    with pytest.raises(ValueError, match="K <= 8"):
        metrics.hungarian_best_match(torch.zeros(9, 9))


def test_iou_known_values():
    a = torch.zeros(4, 4, dtype=torch.bool)
    b = a.clone()
    a[0, :4] = True                            # 4 pixels
    b[0, 2:] = True
    b[1, :2] = True                            # 4 pixels, 2 shared -> 2 / 6
    assert metrics.iou(a, b).item() == pytest.approx(2 / 6)
    assert metrics.iou(a, a).item() == 1 and metrics.iou(a, ~a).item() == 0
    empty = torch.zeros(4, 4, dtype=torch.bool)
    assert metrics.iou(empty, empty).item() == 1
    per_frame = metrics.iou(torch.stack([a, a]), torch.stack([a, b]), dims=(-2, -1))
    assert per_frame.tolist() == pytest.approx([1.0, 2 / 6])


def square_video(T=6, h=8, w=8, side=4):
    m = torch.zeros(T, h, w, dtype=torch.bool)
    for t in range(T):
        m[t, t % 4:t % 4 + side, 1:1 + side] = True
    return m                                    # the square covers 16 of 64 tokens


def test_match_square_perfect_swapped_and_random():
    sq = square_video()
    score = lambda c, m: metrics.iou(metrics.match_square(c, m), m, dims=(-2, -1))     # per-frame IoU
    assert torch.allclose(score(sq.long(), sq), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(score(1 - sq.long(), sq), torch.ones(6, dtype=torch.float64))    # swapped ids
    three = torch.where(sq, 2, torch.randint(0, 2, sq.shape, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(metrics.match_square(three, sq), sq)                      # K = 3: one cluster is the square
    # random 50/50 clusters on a square of area q = 1/4: IoU -> (q/2) / (q + (1-q)/2) = 0.2
    big = square_video(T=400, h=16, w=16, side=8)
    rand = torch.randint(0, 2, big.shape, generator=torch.Generator().manual_seed(0))
    assert score(rand, big).mean().item() == pytest.approx(0.2, abs=0.02)


def test_token_fractions_and_majority():
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    labels[0, :5, :] = 1                         # token row 0 all 1; token row 1: 1 of 4 rows -> 0.25
    frac = metrics.token_fractions(labels, 4, 2)
    assert frac.shape == (2, 2, 2, 2)
    assert frac[0, 0, :, 1].tolist() == [1.0, 1.0] and frac[0, 1, :, 1].tolist() == [0.25, 0.25]
    assert torch.allclose(frac.sum(-1), torch.ones(2, 2, 2))


def test_region_J_known_values():
    gt = torch.zeros(3, 4, 4, dtype=torch.long)
    gt[:, :2, :2], gt[:, 2:, 2:] = 1, 2
    J, per = metrics.region_J(gt.clone(), gt)
    assert J == 1.0 and per.tolist() == [1.0, 1.0]
    pred = gt.clone()
    pred[1:, 2:, 2:] = 0                        # object 2 lost after frame 0
    pred[1:, 2:, 3] = 2                         # ... but half of it kept in frame 2 only
    pred[1, 2:, 3] = 0
    J, per = metrics.region_J(pred, gt)              # frame 0 not scored: object 2 -> (0 + 0.5) / 2
    assert per.tolist() == [1.0, 0.25] and J == pytest.approx(0.625)
    swapped = torch.where(gt == 1, 2, torch.where(gt == 2, 1, gt))
    assert metrics.region_J(swapped, gt)[0] == 0.0   # identities come from frame 0: no re-matching


# ----------------------------------------------------------------------------
# label propagation


def moving_objects(T=12, h=8, w=8):
    lab = torch.zeros(T, h, w, dtype=torch.long)
    for t in range(T):
        c = t % 5
        lab[t, 1:4, c:c + 3] = 1               # a 3 x 3 object sliding right
        lab[t, 5:8, 4 - c // 2:7 - c // 2] = 2  # another one sliding left, slower
    return lab


def test_label_propagation_copies_labels_with_identity_features():
    lab = moving_objects()
    feats = F.one_hot(lab, 3).float()                                  # (T, h, w, 3): feature = object identity
    out = metrics.label_propagation(feats, F.one_hot(lab[0], 3).float())
    assert out.shape == (12, 8, 8, 3)
    assert torch.allclose(out, F.one_hot(lab, 3).float(), atol=1e-5)   # every later frame exactly
    assert metrics.region_J(out.argmax(-1), lab)[0] == 1.0


def reference_propagation_step(f_query, f_ctx, l_ctx, h, w, radius, topk, tau):
    """One frame of label propagation written with explicit loops (the
    protocol's definition), for a check independent of the vectorized code."""
    out = []
    for q in range(h * w):
        cand = []
        for c in range(len(f_ctx)):
            for n in range(h * w):
                if abs(q // w - n // w) <= radius and abs(q % w - n % w) <= radius:
                    sim = (F.normalize(f_query[q], dim=0) @ F.normalize(f_ctx[c][n], dim=0)).item()
                    cand.append((sim, l_ctx[c][n]))
        cand.sort(key=lambda s: -s[0])
        top = cand[:topk]
        wts = torch.softmax(torch.tensor([s for s, _ in top]) / tau, 0)
        out.append(sum(wt * lab for wt, (_, lab) in zip(wts, top)))
    return torch.stack(out)


def test_label_propagation_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    T, h, w, D, C = 4, 4, 5, 6, 3
    feats = torch.randn(T, h, w, D, generator=g)
    first = torch.softmax(torch.randn(h, w, C, generator=g), -1)
    out = metrics.label_propagation(feats, first, n_context=2, radius=1, topk=3, temperature=0.7)
    f = feats.reshape(T, h * w, D)
    labels = [first.reshape(-1, C)]
    for t in range(1, T):
        ctx = [0] + list(range(max(1, t - 2), t))
        labels.append(reference_propagation_step(f[t], [f[c] for c in ctx], [labels[c] for c in ctx],
                                                 h, w, 1, 3, 0.7))
    assert torch.allclose(out.reshape(T, -1, C), torch.stack(labels), atol=1e-5)


def test_labels_to_pixels_keeps_a_diluted_small_object():
    soft = torch.tensor([1.0, 0.0]).repeat(1, 2, 2, 1)                 # (T=1, h=2, w=2, C=2) background...
    soft[0, 0, 0] = torch.tensor([0.7, 0.3])                          # ... but 30% of one token is the object
    pred = metrics.labels_to_pixels(soft, 16, 16)
    assert pred.shape == (1, 16, 16)
    assert pred[0, 0, 0] == 1 and pred[0, 15, 15] == 0                 # a plain argmax would lose the object
    assert (soft.argmax(-1) == 0).all()
    one_hot = F.one_hot(torch.tensor([[[0, 1], [1, 0]]]), 2).float()
    assert torch.equal(metrics.labels_to_pixels(one_hot, 4, 4)[0], torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1],
                                                                              [1, 1, 0, 0], [1, 1, 0, 0]]))


# ----------------------------------------------------------------------------
# linear probe


def test_linear_probe_separable_and_random():
    x, y = blobs(5 * torch.eye(4, 10), 40, 0.5, seed=0)
    xt, yt = blobs(5 * torch.eye(4, 10), 40, 0.5, seed=1)
    assert metrics.linear_probe(x, y, xt, yt) == 1.0
    g = torch.Generator().manual_seed(0)
    acc = metrics.linear_probe(torch.randn(200, 10, generator=g), torch.randint(0, 4, (200,), generator=g),
                          torch.randn(800, 10, generator=g), torch.randint(0, 4, (800,), generator=g))
    assert 0.17 < acc < 0.33                                            # chance is 0.25


def test_linear_probe_predicts_what_it_scores():
    """predict=True gives the labels behind the accuracy: their hit rate is the score."""
    x, y = blobs(2 * torch.eye(3, 6), 30, 1.0, seed=0)
    xt, yt = blobs(2 * torch.eye(3, 6), 30, 1.0, seed=1)
    pred = metrics.linear_probe(x, y, xt, yt, predict=True)
    assert pred.shape == yt.shape and pred.dtype == torch.int64
    assert (pred == yt).double().mean().item() == metrics.linear_probe(x, y, xt, yt)
    assert 0.5 < metrics.linear_probe(x, y, xt, yt) < 1.0            # noisy enough that some labels are wrong


def test_linear_probe_balanced_scores_mean_recall():
    """90% of the points are class 0 and carry no signal; class 1 is separable. A probe that
    says 0 everywhere scores 0.9 accuracy but 0.5 balanced; the weighted probe finds class 1."""
    g = torch.Generator().manual_seed(0)
    y = (torch.arange(400) % 10 == 0).long()                            # 10% class 1
    x = torch.randn(400, 5, generator=g) + 3 * y[:, None] * torch.eye(5)[0]
    yt = (torch.arange(400) % 10 == 0).long()
    xt = torch.randn(400, 5, generator=g) + 3 * yt[:, None] * torch.eye(5)[0]
    assert metrics.linear_probe(x, y, xt, yt, balanced=True) > 0.9
    const = torch.zeros(400, 5, dtype=torch.float64)
    assert metrics.linear_probe(const, y, const, yt, balanced=True) == 0.5   # chance: 1 / classes
    assert metrics.linear_probe(const, y, const, yt) == 0.9                  # plain accuracy: the majority
