"""Tests for davis.py and the DAVIS pieces of metrics.py, without DAVIS: a generated DAVIS-format fixture, J and F
on hand-computed cases and against loop re-implementations of davis2017-evaluation's definitions, each label
propagation protocol against a re-implementation written from its source's algorithm (DINO's
eval_video_segmentation.py, RVM's evaluation notebook), and evaluate.py --davis end to end."""
import json
import math
from collections import deque

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import davis
import evaluate
import metrics
import toyworld
from helpers import tiny_model, write_ckpt


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """The DAVIS-format toy dataset, written through the command line; and what was written, from the function."""
    root = tmp_path_factory.mktemp("davis") / "data"
    davis.main(["--make-fixture", str(root)])
    return root, davis.make_fixture(tmp_path_factory.mktemp("again"))


# ----------------------------------------------------------------------------
# the dataset on disk


def test_fixture_reads_back_exactly(fixture):
    root, written = fixture
    seqs = davis.index(str(root))
    assert [name for name, _, _ in seqs] == list(written) == ["toy-one", "toy-gaps", "toy-leaves"]
    for name, frame_paths, mask_paths in seqs:
        frames, masks = davis.read_sequence(name, frame_paths, mask_paths)
        want_frames, want_masks = written[name]                    # the same seed: the same videos
        assert torch.equal(masks, want_masks)                      # palette PNGs: the ids exactly
        assert frames.shape == want_frames.shape and frames.shape[1:3] == (72, 96)   # not square, as DAVIS
        assert (frames.float() - want_frames.float()).abs().mean().item() < 4   # JPEG: close, not exact
        img = Image.open(mask_paths[0])
        assert img.mode == "P" and img.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]   # DAVIS's colours
    objects = {name: sorted(set(written[name][1][0].unique().tolist()) - {0}) for name in written}
    assert objects == {"toy-one": [1], "toy-gaps": [2, 5], "toy-leaves": [1, 2, 3]}   # 1-3, with gaps in ids
    leaves = written["toy-leaves"][1]
    assert (leaves[0] == 3).sum() >= 20 and not (leaves[-4:] == 3).any()                # object 3 leaves the frame


def test_palette_is_pascal_vocs():
    colours = np.array(davis.palette()).reshape(256, 3)
    assert colours[:6].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128]]
    assert len({tuple(c) for c in colours}) == 256


# ----------------------------------------------------------------------------
# J and F


def square(size, top, left, side):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[top:top + side, left:left + side] = True
    return m


def test_J_and_F_of_a_shifted_square_by_hand():
    # a 10 x 10 square and the same moved 2 px right, on 40 x 40 (tolerance ceil(0.008 * 56.6) = 1 px).
    # J = 8 * 10 / (12 * 10). The boundary of a side-s square is a ring of 4s pixels; of the moved ring s + 1 pixels
    # of each of its top and bottom rows are within 1 px of the other ring but 1 (its far end), and 2 of its inner
    # column (the ends next to the other ring's rows), none of its outer one: (2s + 2) / 4s both ways, F = 0.55.
    truth, pred = square(40, 10, 10, 10), square(40, 10, 12, 10)
    assert metrics.iou(pred, truth).item() == pytest.approx(2 / 3)
    assert metrics.boundary_map(truth).sum() == 40
    assert metrics.boundary_F(pred, truth).item() == pytest.approx(0.55)


def test_J_and_F_of_empty_masks():
    truth, empty = square(40, 10, 10, 10), torch.zeros(40, 40, dtype=torch.bool)
    assert metrics.iou(empty, truth).item() == 0 and metrics.boundary_F(empty, truth).item() == 0   # object missed
    assert metrics.iou(truth, empty).item() == 0 and metrics.boundary_F(truth, empty).item() == 0   # none there
    assert metrics.iou(empty, empty).item() == 1 and metrics.boundary_F(empty, empty).item() == 1   # gone, and seen so


def test_a_perfect_prediction_scores_one(fixture):
    for name, (_, masks) in fixture[1].items():
        objects = [int(o) for o in masks[0].unique() if o]
        scores = davis.score_sequence(masks, masks, objects)
        assert set(scores) == set(objects)
        for J, Fb, per_frame_J, per_frame_F in scores.values():
            assert J == Fb == 1 and len(per_frame_J) == len(per_frame_F) == len(masks) - 2   # first, last left out


def test_scores_leave_out_the_first_and_last_frames():
    truth = torch.stack([square(24, 4, 4, 8).long()] * 5)
    pred = truth.clone()
    pred[0], pred[-1] = 0, 0                                      # wrong only where the evaluation does not look
    assert davis.score_sequence(pred, truth, [1])[1][:2] == (1, 1)
    pred[2] = 0
    J, Fb, _, _ = davis.score_sequence(pred, truth, [1])[1]
    assert J == pytest.approx(2 / 3) and Fb == pytest.approx(2 / 3)


def seg2bmap_reference(seg):
    """davis2017-evaluation's _seg2bmap, re-written with its arrays: e, s, se the east, south and south-east
    neighbours (zero outside), the last row and column recomputed, the corner cleared."""
    seg = seg.numpy().astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def f_measure_reference(pred, truth, bound_th=0.008):
    """The boundary F written from the definition with loops: a disc of radius ceil(bound_th * diagonal), matches
    counted pixel by pixel, the empty cases as davis2017-evaluation's f_measure sets them."""
    H, W = truth.shape
    r = bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(H, W))   # >= 1: pixels
    pb, tb = seg2bmap_reference(pred), seg2bmap_reference(truth)

    def near(point, boundary):
        y, x = point
        return any(boundary[y + dy, x + dx] for dy in range(-r, r + 1) for dx in range(-r, r + 1)
                   if dy * dy + dx * dx <= r * r and 0 <= y + dy < H and 0 <= x + dx < W)

    n_p, n_t = pb.sum(), tb.sum()
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    precision = sum(near(p, tb) for p in zip(*np.nonzero(pb))) / n_p
    recall = sum(near(p, pb) for p in zip(*np.nonzero(tb))) / n_t
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def blob(H, W, seed):
    """A random smooth mask (a thresholded upsampled noise), with holes and several parts."""
    g = torch.Generator().manual_seed(seed)
    noise = F.interpolate(torch.rand(1, 1, H // 8, W // 8, generator=g), size=(H, W), mode="bilinear")[0, 0]
    return noise > 0.55


def test_boundary_map_and_F_match_the_reference_on_random_masks():
    for seed in range(4):
        pred, truth = blob(64, 88, seed), blob(64, 88, seed + 100)   # tolerance ceil(0.008 * 109) = 1 px
        assert np.array_equal(metrics.boundary_map(truth).numpy(), seg2bmap_reference(truth))
        assert metrics.boundary_F(pred, truth).item() == pytest.approx(f_measure_reference(pred, truth))
    pred, truth = blob(96, 160, 7), blob(96, 160, 8)                  # 2 px: the disc is more than a cross
    assert metrics.boundary_F(pred, truth).item() == pytest.approx(f_measure_reference(pred, truth))
    assert metrics.boundary_F(pred, truth, bound_th=3).item() == pytest.approx(f_measure_reference(pred, truth, 3))
    batch = torch.stack([blob(64, 88, s) for s in range(3)])          # frames at once, as score_sequence passes them
    assert torch.allclose(metrics.boundary_F(batch, batch.flip(0)),
                          torch.stack([metrics.boundary_F(batch[i], batch[2 - i]) for i in range(3)]))


# ----------------------------------------------------------------------------
# label propagation: the two protocols, each against its source's algorithm


def dino_reference(feats, first, n_last, radius, topk, temperature):
    """DINO's eval_video_segmentation.py re-written: a queue.Queue of the last n frames, starting empty; per frame
    an affinity exp(cos / temperature) multiplied by a 0/1 square window, every source under the k-th largest value
    set to 0, the columns normalized, the labels mixed by a matrix product."""
    T, h, w, D = feats.shape
    f = F.normalize(feats.reshape(T, h * w, D), dim=-1)
    rows, cols = np.divmod(np.arange(h * w), w)
    window = torch.tensor((np.abs(rows[:, None] - rows[None]) <= radius) & (np.abs(cols[:, None] - cols[None])
                                                                             <= radius), dtype=torch.float32)
    que, out = [], [first.reshape(h * w, -1)]
    for t in range(1, T):
        srcs = [(f[0], out[0])] + que
        aff = torch.stack([torch.exp(f[t] @ sf.T / temperature) * window for sf, _ in srcs])   # (ctx, tar, src)
        aff = aff.transpose(2, 1).reshape(-1, h * w)                                          # (ctx*src, tar)
        kth = aff.topk(topk, dim=0).values.min(0).values
        aff[aff < kth] = 0
        aff = aff / aff.sum(0, keepdim=True)
        seg = torch.cat([s for _, s in srcs]).T @ aff                                          # (C, tar)
        if len(que) == n_last:
            que.pop(0)
        que.append((f[t], seg.T))
        out.append(seg.T)
    return torch.stack(out).reshape(T, h, w, -1)


def rvm_reference(feats, heatmap, n_context, radius, topk, temperature):
    """RVM's evaluation notebook re-written: a deque of n_context (features, labels) pairs filled with the first
    frame, every frame from the first propagated, an additive -1e10 outside a Euclidean radius on the queue frames
    only, softmax over the top-k of affinity / temperature."""
    T, h, w, D = feats.shape
    feats = F.normalize(feats, dim=-1)
    gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    dist = ((gy[:, :, None, None] - gy[None, None]) ** 2 + (gx[:, :, None, None] - gx[None, None]) ** 2).float().sqrt()
    penalty = torch.where(dist < radius, 0.0, -1e10)                                  # (h, w, h, w)
    que = deque([(feats[0], heatmap)] * n_context, maxlen=n_context)
    preds = []
    for t in range(T):
        ctx_f = torch.stack([feats[0]] + [q[0] for q in que])
        ctx_l = torch.stack([heatmap] + [q[1] for q in que])
        aff = torch.einsum("hwc,tmnc->hwtmn", feats[t], ctx_f) / temperature
        aff[:, :, 1:] += penalty[:, :, None]
        weights, ids = aff.reshape(h, w, -1).topk(topk, dim=-1)
        weights = weights.softmax(-1)
        pred = torch.einsum("hwlk,hwl->hwk", ctx_l.reshape(-1, ctx_l.shape[-1])[ids], weights)
        que.append((feats[t], pred))
        preds.append(pred)
    return torch.stack(preds)


def random_video(seed, T=9, h=5, w=6, D=8, C=3):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(T, h, w, D, generator=g)
    return feats, torch.softmax(3 * torch.randn(h, w, C, generator=g), -1)


@pytest.mark.parametrize("seed", [0, 1])
def test_dino_protocol_matches_dinos_algorithm(seed):
    feats, first = random_video(seed)
    got = metrics.label_propagation(feats, first, n_context=3, radius=1, topk=4, temperature=0.1, protocol="dino")
    assert torch.allclose(got, dino_reference(feats, first, 3, 1, 4, 0.1), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_rvm_protocol_matches_the_notebooks_algorithm(seed):
    feats, first = random_video(seed)
    got = metrics.label_propagation(feats, first, n_context=3, radius=2, topk=4, temperature=0.7, protocol="rvm")
    want = rvm_reference(feats, first, 3, 2, 4, 0.7)
    assert torch.allclose(got[1:], want[1:], atol=1e-5) and torch.equal(got[0], first)   # frame 0: as given


def test_the_protocols_differ_and_are_named():
    feats, first = random_video(2, T=12, h=8, w=8)
    a, b = [metrics.label_propagation(feats, first, radius=3, protocol=p).argmax(-1) for p in ("dino", "rvm")]
    assert (a[1:] != b[1:]).any()
    with pytest.raises(ValueError, match="protocol must be one of"):
        metrics.label_propagation(feats, first, protocol="crw")
    soft = torch.tensor([0.7, 0.3]).repeat(1, 2, 2, 1)                 # (T=1, h=2, w=2, C=2)
    soft[0, 0, 0] = torch.tensor([0.6, 0.4])
    assert metrics.labels_to_pixels(soft, 8, 8)[0, 0, 0] == 1           # min-max: the relatively high label wins
    assert (metrics.labels_to_pixels(soft, 8, 8, normalize=False) == 0).all()   # as they are: background everywhere


@pytest.mark.parametrize("protocol", ["dino", "rvm"])
def test_segment_is_metrics_label_propagation_on_the_toy_world(protocol):
    """At a processing size equal to the frame's, davis.segment is metrics.label_propagation + labels_to_pixels with
    LP_SETTINGS and the protocol's first labels, whatever the objects' ids are."""
    model, cfg = tiny_model("siammae")
    video, ids = toyworld.shapes_video(T=6, size=64, n_shapes=3, seed=5)
    feats = model.features(video[None])[0]                             # (T, 8, 8, D)
    C = int(ids.max()) + 1
    if protocol == "dino":   # each token's centre pixel, one-hot (DINO's nearest resize to the grid)
        first = F.one_hot(ids[0, 4::8, 4::8], C).float()
    else:                    # one-hot at full size, then bilinear to the grid: the mean of each token's centre 2 x 2
        first = F.avg_pool2d(F.one_hot(ids[0], C).permute(2, 0, 1).float()[None, :, 3:, 3:], 2, 8)[0].permute(1, 2, 0)
    soft = metrics.label_propagation(feats, first, protocol=protocol, **davis.LP_SETTINGS)
    want = metrics.labels_to_pixels(soft, 64, 64, normalize=protocol == "dino")
    want[0] = ids[0]
    assert torch.equal(davis.segment(feats, ids[0], (64, 64), protocol), want)
    assert torch.equal(davis.segment(feats, 3 * ids[0], (64, 64), protocol), 3 * want)   # ids 0, 3, 6, 9


def test_segment_resizes_to_and_from_the_processing_size():
    """Frames 48 x 72 processed at 32 x 48 (a 4 x 6 grid of 8 px tokens, 12 px of the frame each), features that
    are the truth itself: the prediction comes back at 48 x 72 with the object's id, and wrong only within a few
    pixels of its edge (bilinear upsampling rounds the object's corners, the nearest resize moves edges <= 1 px)."""
    truth = torch.zeros(3, 48, 72, dtype=torch.int64)
    truth[:, 12:36, 24:48] = 4                                          # tokens (1-2, 2-3) exactly
    feats = F.one_hot(davis.resize_labels(truth, (4, 6), "nearest-exact"), 5).float()
    for protocol in ("dino", "rvm"):
        pred = davis.segment(feats, truth[0], (32, 48), protocol)
        assert pred.shape == truth.shape and set(pred.unique().tolist()) == {0, 4}
        wrong = pred != truth
        assert wrong[1:].any() and not (wrong & ~metrics.dilate(metrics.boundary_map(truth == 4), 4)).any()


# ----------------------------------------------------------------------------
# evaluate.py --davis


def test_evaluate_davis_end_to_end(fixture, tmp_path):
    ckpt = write_ckpt(tmp_path, "rvm")
    out = tmp_path / "out"
    evaluate.main(["--davis", str(fixture[0]), "--ckpt", ckpt, "--davis-size", "64,64", "--lp-protocol", "rvm",
                   "--davis-videos", "--out", str(out)])
    report = json.loads((out / "davis.json").read_text())
    assert report["protocol"] == "rvm" and report["size"] == [64, 64]
    assert [r["model"] for r in report["rows"]] == ["rvm", "random-init rvm", "raw pixels"]
    for r in report["rows"]:
        assert 0 <= r["J-Mean"] <= 1 and 0 <= r["F-Mean"] <= 1
        assert r["J&F-Mean"] == pytest.approx((r["J-Mean"] + r["F-Mean"]) / 2)
        objects = report["per_object"][r["model"]]                        # the mean is over objects, not sequences
        assert sorted(objects) == ["toy-gaps_2", "toy-gaps_5", "toy-leaves_1", "toy-leaves_2", "toy-leaves_3",
                                   "toy-one_1"]
        assert r["J-Mean"] == pytest.approx(sum(o["J"] for o in objects.values()) / 6)
    assert [s["sequence"] for s in report["sequences"]] == ["toy-one", "toy-gaps", "toy-leaves"]
    table = (out / "davis.md").read_text()
    assert "protocol **rvm**" in table and "| toy-leaves | 16 | 3 |" in table
    assert (out / "davis-videos" / "raw-pixels" / "toy-gaps.mp4").stat().st_size > 0


@pytest.fixture(scope="module")
def broken(tmp_path_factory, fixture):
    """Folders that are not DAVIS: no split list; a sequence listed without annotations, one with RGB annotations,
    one with annotations of another size than its frames; and a file."""
    root = tmp_path_factory.mktemp("broken")
    (root / "nolist" / "JPEGImages" / "480p").mkdir(parents=True)
    (root / "noanno" / "ImageSets" / "2017").mkdir(parents=True)
    (root / "noanno" / "ImageSets" / "2017" / "val.txt").write_text("seq\n")
    (root / "noanno" / "JPEGImages" / "480p" / "seq").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "noanno" / "JPEGImages" / "480p" / "seq" / "00000.jpg")
    for case, mask_mode, mask_size in (("rgbanno", "RGB", (16, 16)), ("sizes", "P", (16, 12))):
        (root / case / "ImageSets" / "2017").mkdir(parents=True)
        (root / case / "ImageSets" / "2017" / "val.txt").write_text("seq\n")
        for sub in ("JPEGImages", "Annotations"):
            (root / case / sub / "480p" / "seq").mkdir(parents=True)
        for t in range(3):
            Image.new("RGB", (16, 16)).save(root / case / "JPEGImages" / "480p" / "seq" / f"{t:05d}.jpg")
            Image.new(mask_mode, mask_size).save(root / case / "Annotations" / "480p" / "seq" / f"{t:05d}.png")
    (root / "file").write_text("")
    write_ckpt(root, "rvm")
    return root


BAD = [   # (arguments; D = the fixture, B = the broken folders; a piece of the one error line)
    (["--davis", "B/missing"], "no such folder"),
    (["--davis", "B/nolist"], "no ImageSets/2017/val.txt"),
    (["--davis", "B/noanno"], "sequence seq: no annotations in"),
    (["--davis", "B/rgbanno"], "is a RGB image, not a palette PNG of object ids"),
    (["--davis", "B/sizes"], "frames and annotations of different sizes"),
    (["--davis", "D", "--davis-size", "64"], "--davis-size must be two positive integers"),
    (["--davis", "D", "--davis-size", "0,64"], "--davis-size must be two positive integers"),
    (["--davis", "D", "--davis-size", "a,b"], "--davis-size must be two positive integers"),
    (["--davis", "D", "--davis-size", "60,64"], "is not divisible by the models' patch 8"),
    (["--davis", "D", "--davis-sequences", "0"], "--davis-sequences must be >= 1"),
    (["--davis", "D", "--out", "B/file"], "is a file, not a folder"),
    (["--davis", "D", "--lp-protocol", "crw"], "invalid choice: 'crw'"),
    (["--davis", "D", "--ckpt", "B/missing.pt"], "no checkpoint at"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_is_one_error_line(fixture, broken, tmp_path, capsys, args, message):
    args = [a.replace("D", str(fixture[0])) if a == "D" else a.replace("B/", f"{broken}/") for a in args]
    args = args + ([] if "--ckpt" in args else ["--ckpt", str(broken / "rvm.pt")])
    args = args + ([] if "--out" in args else ["--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        evaluate.main(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert e.value.code == 2 and len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()   # nothing written before the checks


def test_make_fixture_refuses_a_file(broken, capsys):
    with pytest.raises(SystemExit) as e:
        davis.main(["--make-fixture", str(broken / "file")])
    assert e.value.code == 2 and "error: --make-fixture" in capsys.readouterr().err
