"""claims.py and claimrun.py: the verdict rule on known numbers; every probe of the claims (evaluate.py's)
gives an oracle feature (the ground truth itself) its known score and a constant feature a low one; SIGMA's
windows as sigma.features cuts them; the one-shape world's video label; each claim's rule on the papers'
numbers and their reverse; runs trained once, resumed when cut, and measured to the same table."""
import concurrent.futures
import importlib.util
import json
import os
import sys
import time
import types

import pytest
import torch
import torch.nn.functional as F

import claimrun
import claims
import data
import evaluate
import methods
import metrics
import sigma
import toyworld
from helpers import write_ckpt

CFG = types.SimpleNamespace(img_size=64, patch=8)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# the verdict rule


def test_mean_sd_is_the_sample_sd():
    assert claims.mean_sd([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert claims.mean_sd([0.5]) == (0.5, 0.0)


def test_above_needs_the_gap_to_exceed_twice_the_larger_spread():
    a, b = [0.60, 0.62, 0.64], [0.30, 0.30, 0.30]            # sd 0.02 and 0: gap 0.32 > 0.04
    assert claims.above(a, b) and not claims.above(b, a)
    wide = [0.3, 0.6, 0.9]                                    # sd 0.3: a gap of 0.3 is not enough
    assert not claims.above(wide, b)
    assert claims.above([0.50, 0.51, 0.52], [0.47, 0.47, 0.47])   # gap 0.04 > 2 * 0.01
    assert not claims.above([0.50, 0.51, 0.52], [0.495, 0.495])     # gap 0.015 < 2 * 0.01
    assert claims.above([0.50, 0.51, 0.52], [0.495, 0.495], k=1)    # ... > 1 * 0.01
    assert not claims.above([0.5, 0.5], [0.5, 0.5])          # equal: no gap, even with no spread


def test_verdict_counts_the_checks_that_hold():
    assert claims.verdict([("a", True), ("b", True)]) == "reproduced"
    assert claims.verdict([("a", False), ("b", False)]) == "not reproduced"
    assert claims.verdict([("a", True), ("b", False)]) == "partly reproduced"
    assert claims.at_most([0.3, 0.4], 0.35) and not claims.at_most([0.4, 0.4], 0.35)
    assert claims.fmt([1.0, 2.0, 3.0], 1) == "2.0 ± 1.0"


# ----------------------------------------------------------------------------
# oracle features: every probe must give the ground truth its known score


class Oracle(torch.nn.Module):
    """features(video) = the ground truth of that video, found by its pixels among `videos`: per token the
    fractions of its pixels under each label (labels (V, T, H, W)); or with `classes` (V,), the video's
    class one-hot at every token. scale 0 gives a constant feature (it knows nothing)."""

    def __init__(self, videos, labels=None, classes=None, num_classes=2, scale=1.0):
        super().__init__()
        self.videos, self.scale = videos, scale
        V, T, _, H, W = videos.shape
        if classes is not None:
            one_hot = F.one_hot(classes, num_classes).float()
            self.truth = one_hot[:, None, None, None].expand(V, T, H // 8, W // 8, num_classes)
        else:
            self.truth = metrics.token_fractions(labels, 8, num_classes)          # (V, T, h, w, C)

    def features(self, video):
        out = []
        for v in video:
            i = next(i for i, known in enumerate(self.videos) if torch.equal(known[:len(v)], v))
            out.append(self.truth[i, :len(v)] * self.scale)
        return torch.stack(out)


def noise_square_truth(T, n=16):
    return toyworld.noise_square_set(n, T, 64, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["iou"])[:2]


def test_the_noise_square_iou_of_the_truth_is_1_and_of_a_constant_low():
    videos, masks = noise_square_truth(16)
    square = (metrics.token_fractions(masks.long(), 8, 2)[..., 1] > 0.5).long()   # the IoU's token-grid truth
    oracle = Oracle(videos, square.repeat_interleave(8, -2).repeat_interleave(8, -1), num_classes=2)
    assert evaluate.noise_square_iou(oracle, CFG) == pytest.approx(1.0)
    assert evaluate.noise_square_iou(oracle, CFG, window=(8, 2)) == pytest.approx(1.0)
    constant = Oracle(videos, masks.long(), scale=0.0)
    assert evaluate.noise_square_iou(constant, CFG) < 0.35


def shapes_truth(T, n, first_seed, **world):
    return toyworld.shapes_set(n, T, 64, first_seed, with_kinds=True, **world)


PATTERN = data.world_spec(claims.PATTERN_WORLD, 64)[1]   # the claims' shapes world


@pytest.mark.parametrize("world", [{}, PATTERN], ids=["shapes", "pattern"])
def test_label_propagation_of_the_truth_reaches_the_token_grid_ceiling(world):
    videos, masks, _ = shapes_truth(16, 24, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["shapes"], **world)
    oracle = Oracle(videos, masks, num_classes=int(masks.max()) + 1)
    J = evaluate.propagation(oracle, CFG, world)["16"]
    ceiling = []   # the truth's own token fractions decoded to pixels: what a perfect propagation gives
    for v in range(len(videos)):
        soft = metrics.token_fractions(masks[v], 8, int(masks[v].max()) + 1)
        objects = [int(o) for o in masks[v, 0].unique() if o != 0]
        ceiling.append(metrics.region_J(metrics.labels_to_pixels(soft, 64, 64), masks[v], objects)[0])
    ceiling = sum(ceiling) / len(ceiling)
    assert ceiling - 0.1 < J <= ceiling + 1e-6   # mixed edge tokens cost a little: shapes are 1-3 tokens wide
    constant = Oracle(videos, masks, num_classes=int(masks.max()) + 1, scale=0.0)
    assert evaluate.propagation(constant, CFG, world)["16"] < J - 0.3


def test_the_token_kind_probe_of_the_truth_is_1():
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["kinds"]
    sets = [shapes_truth(8, 16, s) for s in (seed, seed + 16)]
    videos = torch.cat([v for v, _, _ in sets])
    oracle = Oracle(videos, torch.cat([k for _, _, k in sets]), num_classes=4)
    assert evaluate.token_kinds(oracle, CFG, {}) == pytest.approx(1.0, abs=0.01)
    constant = Oracle(videos, torch.cat([k for _, _, k in sets]), num_classes=4, scale=0.0)
    assert evaluate.token_kinds(constant, CFG, {}) == pytest.approx(0.25, abs=0.05)   # chance: 1 / 4 classes


class ContrastDirection(torch.nn.Module):
    """Per token, the mean |difference| of the grey image between vertical neighbours and between horizontal
    ones, and the mean colour: the second-order statistic that tells the pattern world's kinds apart."""

    def features(self, video):
        B, T = video.shape[:2]
        x = video.flatten(0, 1)                                                   # (B*T, 3, H, W)
        grey = x.mean(1, keepdim=True)
        down = F.pad((grey[..., 1:, :] - grey[..., :-1, :]).abs(), (0, 0, 0, 1))
        across = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs(), (0, 1))
        f = F.avg_pool2d(torch.cat([down, across, x], 1), 8)                      # (B*T, 5, h, w)
        return f.permute(0, 2, 3, 1).reshape(B, T, *f.shape[-2:], 5)


def test_in_the_pattern_world_raw_pixels_miss_the_kinds_and_the_contrast_direction_finds_them():
    """The world's point, with known answers: no linear function of a patch tells the kinds apart (raw pixels near
    chance on the token-kind probe), the direction of the local contrast does (near the truth's 1)."""
    raw = evaluate.token_kinds(evaluate.RawPixels(8), CFG, PATTERN)
    assert raw < 0.4 and evaluate.token_kinds(ContrastDirection(), CFG, PATTERN) > 0.9


@pytest.mark.parametrize("world", [{}, PATTERN], ids=["shapes", "pattern"])
def test_the_video_kind_probe_of_the_truth_is_1_and_a_constant_at_chance(world):
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["video_kind"]
    sets = [shapes_truth(8, 96, s, **{**world, "n_shapes": 1}) for s in (seed, seed + 96)]
    videos = torch.cat([v for v, _, _ in sets])
    classes = torch.cat([toyworld.video_label(k) for _, _, k in sets])
    assert evaluate.video_kinds(Oracle(videos, classes=classes, num_classes=3), CFG, world) == 1.0
    assert evaluate.video_kinds(Oracle(videos, classes=classes, num_classes=3, scale=0.0), CFG, world) < 0.5


def test_video_label_is_the_drawn_shape_kind():
    for seed in range(6):
        _, mask, kinds = toyworld.shapes_video(T=4, n_shapes=1, seed=seed, with_kinds=True)
        assert toyworld.video_label(kinds[mask][None]).item() == kinds[1].item() - 1
    with pytest.raises(ValueError, match="no shape"):
        toyworld.video_label(torch.zeros(1, 2, 8, 8, dtype=torch.long))


# ----------------------------------------------------------------------------
# SIGMA's windows


def test_sigma_windows_are_the_frames_sigma_features_sees_together():
    """A frame changed in one window changes the features of that window's frames and of no other."""
    cfg = sigma.Config.tiny()
    cfg.dim, cfg.depth, cfg.heads = 32, 1, 2
    torch.manual_seed(0)
    model = sigma.SIGMA(cfg).eval()
    T = 2 * cfg.num_frames * cfg.stride
    windows = evaluate.sigma_windows(T, cfg.num_frames, cfg.stride)
    assert sorted(f for w in windows for f in w) == list(range(T)) and len(windows) == 2 * cfg.stride
    video = torch.rand(1, T, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model.features(video)
        for w in windows:
            changed = video.clone()
            changed[:, w[0]] = torch.rand(3, 64, 64)
            moved = (model.features(changed) - base).abs().flatten(2).amax(-1)[0] > 1e-6   # (T,) frame changed
            assert set(moved.nonzero().flatten().tolist()) == set(w)


class FakeRuns:
    """Runs with made-up probe values: table[(run, key)] (twins: ("twin " + run, key); raw pixels: ("raw", run);
    logged: ("logged " + run, key)), each spread over 3 seeds by +-0.01 so that the 2 sd rule has a spread."""

    seeds = [0, 1, 2]

    def __init__(self, table):
        self.table = table

    def _seeds(self, value):
        if isinstance(value, dict):
            return [{k: v + d for k, v in value.items()} for d in (-0.01, 0.0, 0.01)]
        return [value + d for d in (-0.01, 0.0, 0.01)]

    def model(self, run, seed):
        return None, types.SimpleNamespace(num_frames=8, stride=2), {}

    def probe(self, run, key, fn):
        return self._seeds(self.table[run, key])

    def twin(self, run, key, fn):
        return self._seeds(self.table["twin " + run, key])

    def raw(self, run, fn):
        return [self.table["raw", run]]

    def logged(self, run, key):
        return [self.table["logged " + run, key] * (1 + d) for d in (-0.01, 0.0, 0.01)]

    def minutes(self, runs):
        return 0.0


def paper_world(claim, paper):
    """Probe values as the paper says they are (paper=True) or the other way round: a rule comparing the
    wrong lists or pointing the wrong way gives the wrong verdict on one of the two."""
    hi, lo = (0.6, 0.25) if paper else (0.25, 0.6)
    J = lambda j16, j64: {"16": j16, "64": j64}
    return {
        "rvm_fig6": {**{(m, "iou T32"): lo for m in ("siammae", "vicmae")}, ("rvm", "iou T32"): hi,
                     ("sigma", "iou T32"): 0.3, ("sigma", "iou T32 windows"): hi + 0.05 if paper else 0.3,
                     ("twin rvm", "iou T32"): 0.25, ("twin sigma", "iou T32"): 0.2,
                     ("twin sigma", "iou T32 windows"): 0.3, ("raw", "rvm"): 0.24},
        "rvm_fig4": {("rvm-shapes", "J T64"): J(0.5, 0.45 if paper else 0.2),
                     **{(m, "J T64"): J(0.5, 0.2 if paper else 0.45) for m in ("siammae-shapes", "sigma-shapes")},
                     ("twin rvm-shapes", "J T64"): J(0.4, 0.3), ("raw", "rvm-shapes"): J(0.3, 0.29)},
        "rvm_tab3a": {("rvm-n1", "iou T16"): 0.2 if paper else 0.6, ("rvm-n2", "iou T16"): 0.4,
                      ("rvm", "iou T16"): 0.6 if paper else 0.2, ("twin rvm", "iou T16"): 0.15, ("raw", "rvm"): 0.23},
        "rvm_tab3b": {("rvm", "iou T16"): hi, ("rvm-sa", "iou T16"): lo,
                      ("rvm", "features time 128 / 16 frames"): 8.0 if paper else 30.0,
                      ("rvm-sa", "features time 128 / 16 frames"): 30.0 if paper else 8.0,
                      ("twin rvm", "iou T16"): 0.15, ("raw", "rvm"): 0.23},
        "siammae_masking": {("siammae-shapes", "J T16"): hi, ("twin siammae-shapes", "J T16"): 0.3,
                            ("raw", "siammae-shapes"): 0.3,
                            **{(r, "J T16"): lo for r in ("siammae-shapes-m75", "siammae-shapes-m50",
                                                           "siammae-shapes-joint")}},
        "vicmae_lambda": {("vicmae-shapes", "video kind"): hi, ("twin vicmae-shapes", "video kind"): 0.4,
                          ("raw", "vicmae-shapes"): 0.4,
                          **{(r, "video kind"): lo for r in ("vicmae-shapes-lam0", "vicmae-shapes-con")}},
        "sigma_tab7b": {("logged sigma-shapes", "phi_std"): 1.4 if paper else 1e-4,
                        ("logged sigma-shapes-l2", "phi_std"): 1e-4 if paper else 1.4,
                        ("sigma-shapes", "J T16"): hi, ("sigma-shapes-l2", "J T16"): lo,
                        ("twin sigma-shapes-l2", "J T16"): 0.4, ("raw", "sigma-shapes"): 0.3},
        "sigma_vs_pixels": {("sigma-shapes", "J T16"): hi, ("sigma-shapes-pixels", "J T16"): 0.5 if paper else hi,
                            ("twin sigma-shapes", "J T16"): 0.5 if paper else hi, ("raw", "sigma-shapes"): 0.3},
    }[claim]


def test_each_claim_is_reproduced_on_the_papers_numbers_and_not_on_the_reverse():
    assert len(claims.CLAIMS) == 8
    for name in claims.CLAIMS:
        good = claims.measure(name, FakeRuns(paper_world(name, True)))
        bad = claims.measure(name, FakeRuns(paper_world(name, False)))
        assert good["verdict"] == "reproduced", (name, good["checks"])
        assert bad["verdict"] != "reproduced", (name, bad["checks"])
        assert len(good["checks"]) == len(bad["checks"]) >= 2


# ----------------------------------------------------------------------------
# runs: trained once, resumed when cut, the same numbers on a rerun


@pytest.fixture
def one_claim(monkeypatch):
    monkeypatch.setattr(claims, "RUNS", {"tiny-siammae": "--method siammae --data noise_square --steps 2"})
    measured = []

    def measure(R):
        q = R.probe("tiny-siammae", "iou T16", evaluate.iou16)
        measured.append(q)
        twin = R.twin("tiny-siammae", "iou T16", evaluate.iou16)
        return dict(ours=claims.fmt(q), twin=claims.fmt(twin), raw="-", values={"q": q},
                    checks=[("trained IoU at chance", claims.at_most(q, 0.35))])
    monkeypatch.setattr(claims, "CLAIMS", {"tiny": dict(
        paper="-", statement="s", paper_value="-", probe="p", rule="r", runs=["tiny-siammae"], measure=measure)})
    return measured


def test_claims_train_cache_resume_and_write_the_same_table(tmp_path, one_claim, capsys, monkeypatch):
    runs, out = tmp_path / "runs", tmp_path / "out"
    argv = ["--claim", "tiny", "--seeds", "2", "--runs", str(runs), "--out", str(out)]
    cut = runs / "tiny-siammae-s1"
    # seed 1 cut after its first step, as an interruption would: claims.py continues it with --resume
    opts = types.SimpleNamespace(root=str(runs), steps=None, preset="tiny", device="cpu", verbose=False, jobs=1)
    words = claims.run_words("tiny-siammae", opts) + ["--stop-at", "1"]
    claimrun.train_run("tiny-siammae", words, 1, opts)
    assert torch.load(cut / "ckpt.pt", weights_only=False)["step"] == 1 and not claimrun.finished(str(cut))
    capsys.readouterr()
    assert claims.main(argv + ["--jobs", "2"]) == 0              # seed 0 trained while seed 1 is continued
    said = capsys.readouterr().out
    assert "training tiny-siammae seed 1:" in said and "--resume" in said and claimrun.finished(str(cut))
    table = json.load(open(out / "claims.json"))
    row = table["claims"][0]
    assert row["verdict"] in ("reproduced", "not reproduced") and row["seeds"] == [0, 1]
    assert (out / "docs" / "claims.md").read_text().count("| [tiny](#tiny) |") == 1
    stamps = [os.stat(runs / f"tiny-siammae-s{s}" / "ckpt.pt").st_mtime_ns for s in (0, 1)]
    probes = json.load(open(runs / "tiny-siammae-s0" / "probes.json"))["values"]
    assert set(probes) == {"iou T16", "random-init iou T16"}
    assert claims.main(argv) == 0                                 # the rerun: nothing trained, the same numbers
    assert "training" not in capsys.readouterr().out
    assert [os.stat(runs / f"tiny-siammae-s{s}" / "ckpt.pt").st_mtime_ns for s in (0, 1)] == stamps
    assert json.load(open(out / "claims.json"))["claims"][0]["values"] == row["values"]
    for s in (0, 1):                                               # measured again from scratch: the same numbers
        os.remove(runs / f"tiny-siammae-s{s}" / "probes.json")
    assert claims.main(argv) == 0 and json.load(open(out / "claims.json"))["claims"][0]["values"] == row["values"]
    assert one_claim[0] == one_claim[1] == one_claim[2]
    monkeypatch.chdir(tmp_path)                                    # --runs relative to where claims.py is called
    assert claims.main(["--claim", "tiny", "--seeds", "2", "--runs", "runs", "--out", "out"]) == 0
    assert "training" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="holds a run of 2 steps, not the 3 asked for"):
        claims.main(argv + ["--steps", "3"])                       # a finished run is never silently reused


def test_train_minutes_count_each_row_at_its_threads(tmp_path):
    """ms per step times the steps since the last row; core-minutes weigh each row by the threads it ran on."""
    rows = [{"step": 100, "ms_per_step": 60.0, "threads": 2}, {"step": 400, "ms_per_step": 120.0, "threads": 1},
            {"step": 500, "ms_per_step": 60.0}]                           # an older train.py: no threads logged
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    assert claimrun.train_minutes(str(tmp_path)) == pytest.approx((6000 + 36000 + 6000) / 6e4)
    assert claimrun.train_minutes(str(tmp_path), cores=True) == pytest.approx((12000 + 36000 + 6000) / 6e4)


def test_a_partial_table_keeps_the_other_claims_only_when_measured_the_same_way(tmp_path):
    old, setting = tmp_path / "claims.json", {"preset": "tiny", "seeds": [0, 1], "device": "cpu"}
    names = list(claims.CLAIMS)
    old.write_text(json.dumps({**setting, "claims": [{"claim": names[0], "v": "old"}, {"claim": names[2]}]}))
    merged = claims.merge([{"claim": names[1]}, {"claim": names[0], "v": "new"}], str(old), setting)
    assert [r["claim"] for r in merged] == names[:3] and merged[0]["v"] == "new"
    assert claims.merge([{"claim": names[1]}], str(old), {**setting, "preset": "small"}) == [{"claim": names[1]}]
    old.write_text("{cut")
    assert claims.merge([{"claim": names[1]}], str(old), setting) == [{"claim": names[1]}]


def test_run_commands_take_each_preset_s_own_lr(tmp_path):
    """No run overrides the lr: the tiny preset's SiamMAE and ViC-MAE train at SIGMA's tiny blr (which claims.py
    passed them as --set blr=0.032 before it became their default, so the runs are the same), the small preset at
    the paper's."""
    opts = lambda preset: types.SimpleNamespace(steps=None, preset=preset, device="cpu")
    tiny, small = (claimrun.run_command(claims.run_words("siammae-shapes", opts(p)), 0, str(tmp_path), "cpu")
                   for p in ("tiny", "small"))
    assert not any("blr" in w for w in tiny + small) and small[small.index("--preset") + 1] == "small"
    blr = lambda m, preset: methods.build_config(m, preset, []).blr
    assert blr("siammae", "tiny") == blr("vicmae", "tiny") == blr("sigma", "tiny") == 0.032
    assert blr("siammae", "small") == blr("vicmae", "small") == 1.5e-4


def test_train_all_sleeps_until_a_run_ends(monkeypatch):
    """With --jobs 2 the scheduler waits on the running runs only: waiting on a finished one returns at once, and
    the loop spun a core beside the runs whose minutes it was timing."""
    calls, real = [], concurrent.futures.wait
    monkeypatch.setattr(claimrun.concurrent.futures, "wait", lambda fs, **kw: calls.append(1) or real(fs, **kw))
    monkeypatch.setattr(claimrun, "train_run", lambda run, words, seed, opts: time.sleep(0.05 if seed == 0 else 0.3))
    todo = [("run", [], s) for s in range(4)]
    claimrun.train_all(todo, types.SimpleNamespace(jobs=2))
    assert 0 < len(calls) <= len(todo)                          # one wait per freed slot, not a busy loop


def test_a_failed_run_ends_with_one_line_naming_its_log(tmp_path, monkeypatch):
    words = "--method siammae --data noise_square --steps 2 --set nope=1".split()
    opts = types.SimpleNamespace(root=str(tmp_path), steps=None, preset="tiny", device="cpu", verbose=False, jobs=1)
    with pytest.raises(SystemExit, match="exit code 2; its log: .*bad-s0.*train.log"):
        claimrun.train_run("bad", words, 0, opts)
    # a run stopped by Ctrl-C (train.py saves and exits 130) is an interruption to continue, not a failure
    monkeypatch.setattr(claimrun, "run_command", lambda *a: [sys.executable, "-c", "import sys; sys.exit(130)"])
    with pytest.raises(SystemExit, match="interrupted; the same command continues"):
        claimrun.train_run("bad", words, 0, opts)


def test_an_unreadable_probe_cache_is_measured_again(tmp_path):
    """probes.json cut or garbled (by hand, or by a claims.py older than its atomic write) is a cache miss, not a
    traceback; the value measured is written whole."""
    (tmp_path / "run-s0").mkdir()
    (tmp_path / "run-s0" / "ckpt.pt").write_bytes(b"only its time stamp is read here")
    (tmp_path / "run-s0" / "probes.json").write_text('{"ckpt_mtime_ns": 1, "val')
    assert claimrun.Runs(str(tmp_path), [0])._cached("run", 0, "probe", lambda: 0.5) == 0.5
    assert json.load(open(tmp_path / "run-s0" / "probes.json"))["values"] == {"probe": 0.5}


def test_measuring_a_run_not_trained_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="rvm-s0/ckpt.pt is not a finished run"):
        claimrun.Runs(str(tmp_path), [0]).probe("rvm", "iou T16", evaluate.iou16)


def test_bad_arguments_are_one_line_errors(capsys):
    for argv, message in ((["--all", "--seeds", "1"], "at least 2"), (["--claim", "nope"], "invalid choice"),
                          (["--all", "--steps", "0"], "at least 1"),
                          (["--all", "--jobs", "0"], "at least 1")):
        with pytest.raises(SystemExit):
            claims.main(argv)
        assert message in capsys.readouterr().err


def test_probe_world_script_scores_a_checkpoint_on_its_own_world(tmp_path, capsys):
    """scripts/probe_world.py (the pattern world's pilot in docs/experiments.md): the checkpoint, its twin and raw
    pixels on the world of its --data; a checkpoint of another world is one line."""
    spec = importlib.util.spec_from_file_location("probe_world", os.path.join(ROOT, "scripts", "probe_world.py"))
    probe_world = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe_world)
    path = write_ckpt(tmp_path, "siammae")
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "data": {"spec": claims.PATTERN_WORLD}}, path)
    assert probe_world.main(["--ckpt", path, "--probe", "J16"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if claims.PATTERN_WORLD in line]
    assert len(rows) == 3 and all(0 <= float(r.split("|")[3]) <= 1 for r in rows)   # checkpoint, twin, raw
    torch.save({**ckpt, "data": {"spec": "noise_square"}}, path)
    with pytest.raises(SystemExit):
        probe_world.main(["--ckpt", path])
    assert "need a shapes world" in capsys.readouterr().err


def test_every_claim_names_known_runs_and_says_its_rule():
    for name, c in claims.CLAIMS.items():
        assert set(c["runs"]) <= set(claims.RUNS), name
        assert c["rule"] and c["probe"] and c["paper_value"] and c["measure"].__name__ == name
    assert all("--steps" in words.split() for words in claims.RUNS.values())   # claimrun needs a run's steps
    assert claims.main(["--list"]) == 0
    with pytest.raises(TypeError, match="needs paper"):   # a claim registered without its text
        claims.claim("nope", paper="-")
