"""Tests for evaluate.py: the feature extractors and probes on oracle features
with known scores, then the script end to end on a randomly initialized tiny model."""
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

import evaluate as ev
import metrics
import toyworld
from helpers import tiny_model, write_ckpt


# ----------------------------------------------------------------------------
# features, probes, and the script end to end (tiny random-init checkpoints)


def test_raw_pixels_are_patches():
    video = torch.rand(2, 3, 3, 16, 24)
    feats = ev.RawPixels(8).features(video)
    assert feats.shape == (2, 3, 2, 3, 192)
    assert torch.equal(feats[1, 2, 1, 0], video[1, 2, :, 8:16, 0:8].permute(1, 2, 0).reshape(-1))


def test_random_init_is_fresh_and_deterministic():
    model, cfg = tiny_model("rvm")
    a, b = ev.random_init("rvm", cfg, seed=1), ev.random_init("rvm", cfg, seed=1)
    state = torch.get_rng_state()
    ev.random_init("rvm", cfg, seed=2)
    assert torch.equal(torch.get_rng_state(), state)                 # global RNG untouched
    pa, pb, pm = (dict(m.named_parameters()) for m in (a, b, model))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert any(not torch.equal(pa[k], pm[k]) for k in pa)


class Oracle(torch.nn.Module):
    """A feature extractor that knows the answer: it looks each video up in a
    table and returns the given features (the probes' plumbing must then
    score perfectly)."""

    def __init__(self, videos, feats):
        super().__init__()
        self.videos, self.feats = videos, feats

    def features(self, video):
        return torch.stack([next(f for v, f in zip(self.videos, self.feats) if torch.equal(v, x)) for x in video])


def test_noise_square_probe_scores_oracle_features_perfectly():
    videos, masks, classes = toyworld.noise_square_set(3, 5, 64, toyworld.EVAL_SEED)
    assert videos.shape == (3, 5, 3, 64, 64) and masks.shape == (3, 5, 64, 64) and classes.tolist() == [0, 1, 2]
    square = metrics.token_fractions(masks.long(), 8, 2)[..., 1] > 0.5     # (V, T, h, w) the scored ground truth
    truth = F.one_hot(square.long(), 2).float()                      # features that know the square
    out = ev.probe_noise_square(Oracle(videos, truth), 8, videos, masks, torch.device("cpu"), "")
    assert out["iou"] == pytest.approx(1.0) and out["iou_late"] == pytest.approx(1.0)
    assert out["iou_pixel"] == pytest.approx(1.0) and out["iou_pixel_ceiling"] == pytest.approx(1.0)  # on the grid
    videos, masks, _ = toyworld.noise_square_set(3, 5, 64, toyworld.EVAL_SEED, square=28)    # a side off the token grid
    truth = F.one_hot((metrics.token_fractions(masks.long(), 8, 2)[..., 1] > 0.5).long(), 2).float()
    off = ev.probe_noise_square(Oracle(videos, truth), 8, videos, masks, torch.device("cpu"), "")
    assert off["iou"] == pytest.approx(1.0) and off["iou_pixel"] == pytest.approx(off["iou_pixel_ceiling"])
    assert off["iou_pixel_ceiling"] < 1
    pixels = ev.probe_noise_square(ev.RawPixels(8), 8, videos, masks, torch.device("cpu"), "")
    assert pixels["iou"] < 0.5                                        # frames are noise: pixels cannot see it


def test_best_cluster_at_k5_and_the_position_view_on_an_oracle():
    """Issue 41: a position code (10x larger, the same in every video) plus a square indicator. K-means on the
    features as they are splits the code; the position-removed view (the mean at each place over other videos of
    the world taken away) must hand back the indicator: K = 2 and the best cluster of K = 5 score 1 on it."""
    cpu = torch.device("cpu")
    videos, masks, _ = toyworld.noise_square_set(4, 6, 64, toyworld.EVAL_SEED)
    reference, ref_masks, _ = toyworld.noise_square_set(8, 6, 64, toyworld.EVAL_SEED + ev.REFERENCE_OFFSET)
    code = 10 * torch.randn(8, 8, 4, generator=torch.Generator().manual_seed(0))       # (h, w, 4) per place
    feats = lambda m: torch.cat([code.expand(*m.shape[:2], -1, -1, -1),
                                 (metrics.token_fractions(m.long(), 8, 2)[..., 1:] > 0.5).float()], -1)
    oracle = Oracle(torch.cat([videos, reference]), torch.cat([feats(masks), feats(ref_masks)]))
    raw = ev.probe_noise_square(oracle, 8, videos, masks, cpu, "")
    view = ev.probe_noise_square(ev.PositionRemoved(oracle, reference, cpu), 8, videos, masks, cpu, "")
    assert raw["iou"] < 0.5 and raw["iou_best_cluster_k5"] < 0.5
    assert view["iou"] == pytest.approx(1.0)
    # K = 5 on the view's one dimension (indicator minus its place's mean) cuts the square in value bands: better
    # than on the raw features, not whole
    assert view["iou_best_cluster_k5"] > raw["iou_best_cluster_k5"] + 0.2
    # the indicator alone: one cluster of K = 5 is the square exactly
    indicator = Oracle(videos, feats(masks)[..., 4:])
    assert ev.probe_noise_square(indicator, 8, videos, masks, cpu, "")["iou_best_cluster_k5"] == pytest.approx(1.0)


class FrameDifference(torch.nn.Module):
    """A one-line motion detector: a token's feature is its patch of
    |x_t - x_(t-1)|. Static background cancels, the moving square does not."""

    def features(self, video):
        prev = torch.cat([video[:, :1], video[:, :-1]], dim=1)
        return ev.RawPixels(8).features((video - prev).abs())


def test_noise_square_probe_rewards_seeing_motion():
    videos, masks, _ = toyworld.noise_square_set(8, 12, 64, toyworld.EVAL_SEED)
    cpu = torch.device("cpu")
    motion = ev.probe_noise_square(FrameDifference(), 8, videos, masks, cpu, "")
    pixels = ev.probe_noise_square(ev.RawPixels(8), 8, videos, masks, cpu, "")
    assert motion["iou_per_frame"][0] == 0.0                          # frame 0 has no previous frame
    # the metric sees what motion gives (measured 0.69 vs 0.21 on the default world)
    assert motion["iou_late"] > 0.5 and pixels["iou"] < 0.25 and motion["iou_late"] > 2.5 * pixels["iou"]


def test_noise_square_iou_by_direction():
    # features that mark the square and the strip it uncovered this frame (what a change detector sees):
    # 4 x 4 square tokens, one token a frame, so the strip is 4 tokens on an axis move and 7 (an L) on a
    # king's move; frame 0 has no strip. Known answers: 16/20 and 16/23 after the first frame.
    T = 5
    videos, masks, classes = toyworld.noise_square_set(8, T, 64, toyworld.EVAL_SEED)
    square = metrics.token_fractions(masks.long(), 8, 2)[..., 1] > 0.5           # (V, T, 8, 8)
    changed = square | torch.cat([square[:, :1], square[:, :-1]], dim=1)
    out = ev.probe_noise_square(Oracle(videos, F.one_hot(changed.long(), 2).float()), 8, videos, masks,
                                torch.device("cpu"), "", classes)
    assert out["iou_axis"] == pytest.approx((1 + (T - 1) * 16 / 20) / T)
    assert out["iou_diagonal"] == pytest.approx((1 + (T - 1) * 16 / 23) / T)
    assert out["iou"] == pytest.approx((out["iou_axis"] + out["iou_diagonal"]) / 2)   # 4 videos each
    no_split = ev.probe_noise_square(Oracle(videos, F.one_hot(changed.long(), 2).float()), 8, videos, masks,
                                     torch.device("cpu"), "")
    assert "iou_axis" not in no_split and no_split["iou"] == pytest.approx(out["iou"])
    with pytest.raises(ValueError, match="one direction class per video"):
        ev.probe_noise_square(Oracle(videos, changed.float()[..., None]), 8, videos, masks, torch.device("cpu"),
                              "", classes[:3])


def test_motion_probe_oracle_and_pixels():
    tr = toyworld.noise_square_set(16, 4, 32, toyworld.EVAL_SEED)
    te = toyworld.noise_square_set(8, 4, 32, toyworld.EVAL_SEED + 100)
    onehot = lambda c: F.one_hot(c, 8).float()[:, None, None, None, :].expand(-1, 4, 4, 4, -1)   # direction features
    oracle = Oracle(torch.cat([tr[0], te[0]]), torch.cat([onehot(tr[2]), onehot(te[2])]))
    out = ev.probe_motion(oracle, (tr[0], tr[2]), (te[0], te[2]), torch.device("cpu"), "")
    assert out["motion_acc"] == 1.0 and out["motion_chance"] == 1 / 8


def test_propagation_probe_with_oracle_features():
    videos, masks = toyworld.shapes_set(2, 12, 64, toyworld.EVAL_SEED)
    truth = metrics.token_fractions(masks, 8, int(masks.max()) + 1)       # (V, T, h, w, C) the true soft labels
    lp = dict(n_context=20, radius=3, topk=7, temperature=0.7)
    out = ev.probe_propagation(Oracle(videos, truth), 8, (videos, masks), torch.device("cpu"), [6, 12], lp, "")
    assert set(out["J_by_length"]) == {6, 12} and out["stability"][6] == 1.0
    assert out["J"] > 0.5                                              # bounded by 8 px tokens, not by the features
    pixels = ev.probe_propagation(ev.RawPixels(8), 8, (videos, masks), torch.device("cpu"), [6, 12], lp, "")
    assert pixels["J"] < out["J"]


def test_kind_probe_oracle_and_constant_features():
    tr = toyworld.shapes_set(3, 4, 64, toyworld.EVAL_SEED, with_kinds=True)
    te = toyworld.shapes_set(3, 4, 64, toyworld.EVAL_SEED + 10, with_kinds=True)
    truth = lambda c: F.one_hot(metrics.token_fractions(c, 8, 4).argmax(-1), 4).float()   # (V, T, h, w, 4) the class
    oracle = Oracle(torch.cat([tr[0], te[0]]), torch.cat([truth(tr[2]), truth(te[2])]))
    out = ev.probe_kinds(oracle, 8, (tr[0], tr[2]), (te[0], te[2]), torch.device("cpu"), "")
    assert out["kind_acc"] == 1.0 and out["kind_chance"] == 0.25
    const = Oracle(torch.cat([tr[0], te[0]]), torch.zeros(6, 4, 8, 8, 3))
    assert ev.probe_kinds(const, 8, (tr[0], tr[2]), (te[0], te[2]), torch.device("cpu"), "")["kind_acc"] == 0.25


def test_random_twins_one_per_distinct_feature_map():
    _, cfg = tiny_model("sigma")
    loss_only = dataclasses.replace(cfg, temperature=0.5, hard_targets=True)      # features do not look here
    wider = dataclasses.replace(cfg, dim=48)
    twins = ev.random_twins([("sigma (a)", "sigma", cfg), ("sigma (b)", "sigma", loss_only),
                             ("sigma (c)", "sigma", wider)])
    assert [name for name, _, _ in twins] == ["random-init sigma (a)", "random-init sigma (c)"]
    _, rcfg = tiny_model("rvm")
    assert len(ev.random_twins([("sigma", "sigma", cfg), ("rvm", "rvm", rcfg)])) == 2
    seeded = ev.random_twins([("sigma (a)", "sigma", cfg), ("sigma (b)", "sigma", loss_only)], seeds=2)
    assert [name for name, _, _ in seeded] == ["random-init sigma (a) seed 0", "random-init sigma (a) seed 1"]
    weights = [dict(twin.named_parameters())["encoder.tube_embed.proj.weight"] for _, twin, _ in seeded]
    assert not torch.equal(*weights)                                   # two inits, not one twin twice


def test_evaluate_script_end_to_end(tmp_path, capsys, monkeypatch):
    ckpt = write_ckpt(tmp_path, "rvm")
    ev.main(["--ckpt", ckpt, "--out", str(tmp_path / "res"), "--iou-videos", "2", "--frames", "4",
             "--probe-train", "1", "--probe-test", "1", "--probe-frames", "3", "--shapes-videos", "1",
             "--lengths", "4,8"])
    table = (tmp_path / "res" / "results.md").read_text()
    assert "| rvm |" in table and "| random-init rvm |" in table and "| raw pixels |" in table
    assert table.startswith("View: the features as they are.") and "| IoU K=5 best cluster |" in table
    rows = json.loads((tmp_path / "res" / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["rvm", "random-init rvm", "raw pixels"]
    for r in rows:
        assert 0 <= r["iou"] <= 1 and 0 <= r["motion_acc"] <= 1 and 0 <= r["J"] <= 1 and r["sec_per_video"] > 0
        assert len(r["iou_per_frame"]) == 4 and set(r) >= {"iou_axis", "iou_diagonal"}
        assert 0 <= r["iou_best_cluster_k5"] <= 1 and r["view"] == ev.VIEWS["none"]
    assert "noise-square IoU" in capsys.readouterr().out             # progress is printed
    # --world: the IoU and motion probes' videos come from that noise-square world (here per-pixel noise, bouncing)
    seen, real = [], ev.toyworld.noise_square_set
    monkeypatch.setattr(ev.toyworld, "noise_square_set", lambda *a, **k: seen.append(k) or real(*a, **k))
    ev.main(["--ckpt", ckpt, "--out", str(tmp_path / "res2"), "--iou-videos", "2", "--frames", "4",
             "--probe-train", "1", "--probe-test", "1", "--probe-frames", "3", "--shapes-videos", "1",
             "--lengths", "4", "--world", "noise_square:grain=1:boundary=bounce", "--remove", "position",
             "--reference-videos", "2"])
    # the IoU, the two motion-probe sets and --remove position's reference videos: all of that world
    assert len(seen) == 4 and all(k == {"grain": 1, "boundary": "bounce"} for k in seen)
    assert (tmp_path / "res2" / "results.md").read_text().startswith("View: position removed")
    rows = json.loads((tmp_path / "res2" / "results.json").read_text())["rows"]
    assert all(r["view"] == ev.VIEWS["position"] for r in rows)


def test_evaluate_script_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ev.main(["--ckpt", str(tmp_path / "missing.pt")])
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ev.main(["--ckpt", write_ckpt(tmp_path, "rvm"), "--lengths", "16,x"])
    assert "--lengths" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            ev.main(["--ckpt", write_ckpt(tmp_path, "rvm"), "--device", "cuda"])
        assert "no CUDA device here" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# scripts/square_share.py: why k-means misses a square the features hold (issue 26's search)


def _square_share():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "square_share.py")
    spec = importlib.util.spec_from_file_location("square_share", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variance_shares_know_square_position_and_frame():
    """Features that are only the square, only a token's place, or only the frame take all of their own share and
    none of the others'; scaling a part scales its share as its variance does."""
    ss = _square_share()
    T, h, w = 4, 3, 3
    square = torch.zeros(T, h, w, dtype=torch.bool)
    for t in range(T):
        square[t, t % h, :2] = True                                   # a moving 2-token bar
    place = torch.randn(1, h, w, 2, generator=torch.Generator().manual_seed(0)).expand(T, h, w, 2)
    frame = torch.arange(T, dtype=torch.float32).view(T, 1, 1, 1).expand(T, h, w, 1)
    sq, pos, fr = ss.variance_shares(square[..., None].float(), square)
    assert sq == pytest.approx(1.0) and fr == pytest.approx(0.0, abs=1e-12)   # the bar covers 2 tokens every frame
    sq, pos, fr = ss.variance_shares(place, square)
    assert pos == pytest.approx(1.0) and fr == pytest.approx(0.0, abs=1e-12)
    sq, pos, fr = ss.variance_shares(frame, square)
    assert fr == pytest.approx(1.0) and pos == pytest.approx(0.0, abs=1e-12)
    # any features: each share is 1 - (the variance left within its groups) / the total (law of total variance)
    x = torch.randn(T, h, w, 5, generator=torch.Generator().manual_seed(1)) + 2 * place[..., :1]
    flat, y = x.reshape(-1, 5).double(), square.reshape(-1)
    within = lambda groups: sum(((g - g.mean(0)) ** 2).sum() for g in groups) / flat.shape[0]
    total = within([flat])
    by_position = [x[:, i, j].double() for i in range(h) for j in range(w)]
    by_frame = [x[t].reshape(-1, 5).double() for t in range(T)]
    expected = [1 - within(groups) / total for groups in ([flat[y], flat[~y]], by_position, by_frame)]
    assert ss.variance_shares(x, square) == pytest.approx([e.item() for e in expected])


def test_change_detector_marks_what_moved():
    """One token changes at t = 1 and stays so: the detector marks it at t = 1 only (a change from the frame
    before, not from the first frame), with its mean |difference|."""
    ss = _square_share()
    video = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    video[:, 1:] = video[:, :1]                                       # a still video ...
    video[0, 1:, :, 8:, :8] = 1 - video[0, 0, :, 8:, :8]              # ... but one token changes at t = 1
    f = ss.change_features(video, 8)
    assert f.shape == (1, 3, 2, 2, 1) and f[0, 0].abs().sum() == 0 and f[0, 2].abs().sum() == 0
    changed = torch.zeros(2, 2, dtype=torch.bool)
    changed[1, 0] = True
    assert (f[0, 1, ..., 0] > 0).equal(changed)
    assert f[0, 1, 1, 0, 0] == pytest.approx((2 * video[0, 0, :, 8:, :8] - 1).abs().mean().item(), rel=1e-5)


def test_square_share_scores_the_oracle_and_runs_on_a_checkpoint(tmp_path, capsys):
    """The ground truth as a feature scores 1 on both IoUs and takes the whole variance; the mix's held-out videos
    are the mix's own draws, the same on every call; the script runs end to end on a checkpoint."""
    ss = _square_share()
    v1, m1 = ss.mix_set(3, 4, 64, 123)
    v2, m2 = ss.mix_set(3, 4, 64, 123)
    assert torch.equal(v1, v2) and torch.equal(m1, m2) and v1.shape == (3, 4, 3, 64, 64)
    assert ss.variant_options("2 px a frame off the grid", 256) == {"grain": 8, "lattice": 8, "speed": 8}
    assert ss.variant_options("per-pixel", 256) == {"grain": 1, "lattice": 1}
    sets = [ss.held_out("per-pixel", 4, 6, 64, train) for train in (True, False)]
    oracle = [((metrics.token_fractions(m.long(), 8, 2)[..., 1:] > 0.5).float(), m) for _, m in sets]   # the truth
    r = ss.score(oracle[0], oracle[1], torch.zeros(6, 8, 8, 1), 8)
    assert r["iou"] == pytest.approx(1.0) and r["linear_iou"] == pytest.approx(1.0) and r["iou_blank"] == r["iou"]
    assert r["square"] == pytest.approx(1.0)
    # a position code as large as the square drowns it for k-means, not for the probe; removing it restores it
    code = 2 * torch.randn(8, 8, 1, generator=torch.Generator().manual_seed(0)).expand(6, 8, 8, 1)   # (T, h, w, 1)
    coded = [(torch.cat([f, code.expand(len(f), -1, -1, -1, -1)], -1), m) for f, m in oracle]
    r = ss.score(*coded, torch.cat([torch.zeros(6, 8, 8, 1), code], -1), 8)
    assert r["iou"] < 0.8 and r["linear_iou"] == pytest.approx(1.0) and r["iou_blank"] == pytest.approx(1.0)
    assert r["square"] < 0.1 and r["position"] > 0.9
    assert ss.main(["--ckpt", write_ckpt(tmp_path, "rvm"), "--videos", "2", "--frames", "4"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "IoU" not in line]
    assert len(rows) == 2 * len(ss.VARIANTS)                          # the change detector and the checkpoint
    assert all(0 <= float(r.split("|")[c]) <= 1 for r in rows for c in (3, 4, 5))
    with pytest.raises(SystemExit):
        ss.main(["--ckpt", str(tmp_path / "nope.pt")])
    assert "nope.pt" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            ss.main(["--device", "cuda"])
        assert "no CUDA device" in capsys.readouterr().err
