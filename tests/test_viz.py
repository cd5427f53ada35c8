"""Tests for viz.py: the image helpers on hand-made inputs, every method's
reconstruction layout, and the script end to end on random-init checkpoints."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import methods
import metrics
import viz
from helpers import tiny_model, write_ckpt


def test_upsample_is_nearest():
    grid = np.array([[1, 2], [3, 4]])
    assert np.array_equal(viz.upsample(grid, 2), [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    rgb = np.random.rand(5, 2, 3, 3)                                      # (T, h, w, 3)
    up = viz.upsample(rgb, 4, rgb=True)
    assert up.shape == (5, 8, 12, 3)
    assert np.array_equal(up[:, 4:8, 8:12], np.broadcast_to(rgb[:, 1:2, 2:3], (5, 4, 4, 3)))


def test_colorize_masked_and_feature_map():
    colours = viz.colorize(np.array([[0, 1], [-1, 0]]), 2)
    assert colours.shape == (2, 2, 3)
    assert np.allclose(colours[1, 0], 0.5) and np.allclose(colours[0, 0], colours[1, 1])
    assert not np.allclose(colours[0, 0], colours[0, 1])
    assert len({tuple(c) for c in viz.palette(64)}) == 64                # many prototypes, distinct colours
    image = np.random.rand(16, 16, 3)
    out = viz.masked(image, np.array([[1, 0], [0, 0]]), 8)
    assert np.all(out[:8, :8] == 0.5) and np.array_equal(out[8:], image[8:])
    # the feature row: the principal component that follows the motion, not the one of largest variance
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, 16, 16, generator=g).expand(4, -1, -1, -1).clone()
    video[1:, :, :8, :8] = torch.rand(3, 3, 8, 8, generator=g)            # only the top-left token changes
    motion = viz.motion_energy(video, 8)
    assert motion.shape == (4, 2, 2) and motion[:, 0, 0].min() > 0.1 and motion[:, 1:].abs().max() == 0
    feats = torch.zeros(4, 2, 2, 3)
    feats[..., 0] = torch.randn(4, 2, 2, generator=g) * 10               # the largest variance, unrelated to motion
    feats[..., 2] = -motion                                                 # follows the motion, with the sign flipped
    fmap, rank, corr = viz.feature_map(feats, motion)
    assert fmap.shape == (4, 2, 2, 3) and rank == 1 and corr > 0.8   # (16 tokens: the PCs mix a little)
    lum = fmap.mean(-1)                                                     # viridis: brighter = larger
    assert lum[:, 0, 0].min() > lum[:, 1:].max()                            # the moving token is the bright one


@pytest.mark.parametrize("name", ["rvm", "siammae", "vicmae", "sigma"])
def test_reconstruction_layouts(name):
    model, cfg = tiny_model(name)
    clip = torch.rand(1, cfg.clip_len, 3, cfg.img_size, cfg.img_size)
    batch = methods.METHODS[name].sample(clip, cfg, torch.Generator().manual_seed(0))
    rows = viz.RECONSTRUCTIONS[name](batch, model.reconstruct(batch), cfg.patch)
    assert rows and all(rows)
    for row in rows:
        for title, image in row:
            assert isinstance(title, str) and image.shape == (cfg.img_size, cfg.img_size, 3)
            assert np.isfinite(image).all()
    titles = [t for row in rows for t, _ in row]
    assert any("masked" in t for t in titles)


def test_viz_script_end_to_end(tmp_path, capsys):
    ckpts = [write_ckpt(tmp_path, "rvm"), write_ckpt(tmp_path, "sigma")]
    out = tmp_path / "viz"
    viz.main(sum([["--ckpt", c] for c in ckpts], []) + ["--frames", "6", "--cols", "3", "--out", str(out)])
    for f in ["pca.png", "kmeans.png", "demo.png", "demo.gif", "demo.mp4", "recon_rvm.png", "recon_sigma.png"]:
        assert (out / f).stat().st_size > 0, f
    gif = iio.imread(out / "demo.gif")
    assert gif.shape[0] == 6                                              # one animation frame per video frame
    assert iio.imread(out / "demo.mp4").shape[0] == 6
    assert "noise-square IoU of this video" in capsys.readouterr().out


def test_viz_script_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        viz.main(["--ckpt", str(tmp_path / "missing.pt")])
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        viz.main(["--ckpt", write_ckpt(tmp_path, "rvm"), "--video", str(tmp_path / "nope.mp4")])
    assert "nope.mp4" in capsys.readouterr().err


@pytest.mark.slow
def test_viz_all_methods_long_video(tmp_path):
    """40 frames: past every method's clip, and RVM's features in 16-frame chunks end on a part chunk."""
    ckpts = [write_ckpt(tmp_path, n) for n in ["rvm", "siammae", "vicmae", "sigma"]]
    for video in ["shapes", "noise_square_paper"]:
        out = tmp_path / video
        viz.main(sum([["--ckpt", c] for c in ckpts], []) + ["--video", video, "--frames", "40", "--out", str(out)])
        assert iio.imread(out / "demo.gif").shape[0] == 40
        assert len(list(out.glob("recon_*.png"))) == 4


def test_viz_says_only_what_it_wrote(tmp_path, capsys):
    video = tmp_path / "short.gif"                                   # 6 frames: shorter than RVM's clip
    iio.imwrite(video, (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8), duration=100)
    out = tmp_path / "viz"
    viz.main(["--ckpt", write_ckpt(tmp_path, "rvm"), "--video", str(video), "--frames", "6", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "no reconstruction" in printed and not (out / "recon_rvm.png").exists()
    assert f"wrote pca.png kmeans.png demo.png demo.gif demo.mp4 to {out}" in printed


# ----------------------------------------------------------------------------
# issue 41: drawn as RVM's official notebook draws, any world, views that say so, the gallery


def test_whitened_pca_weighs_the_three_components_alike():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(12, 3, generator=g))[0].T              # three orthonormal directions
    coef = torch.randn(4000, 3, generator=g) * torch.tensor([100.0, 10.0, 1.0])   # variances 10^4 : 10^2 : 1
    coef[0, 1] = 200.0                                                          # one outlier on the second
    x = coef @ basis
    white = metrics.pca_rgb(x, whiten=True)
    spread = white[1:].std(0)                                                  # the outlier aside
    assert spread.max() / spread.min() < 1.1                                   # each colour spans alike
    assert 0.2 < spread.min() and white.min() >= 0 and white.max() <= 1        # +-2 sd over the channel, clipped
    assert white[0, 1] in (0.0, 1.0)                                           # the outlier saturates ...
    minmax = metrics.pca_rgb(x)
    assert minmax[1:, 1].std() < 0.5 * spread[1]                               # ... where min-max greys the rest
    assert torch.equal(metrics.pca_rgb(x, whiten=True), white)                 # deterministic, signs fixed


def test_outline_draws_the_border_of_a_token_region():
    images = np.zeros((1, 32, 32, 3))
    region = np.zeros((1, 4, 4), dtype=bool)
    region[0, 1:3, 1:3] = True                                                  # a 2 x 2-token square at pixels 8-23
    out = viz.outline(images, region, 8)
    drawn = out[0, ..., 0] == 1
    assert drawn[8, 8:24].all() and drawn[23, 8:24].all() and drawn[8:24, 8].all() and drawn[8:24, 23].all()
    assert drawn.sum() == 4 * 16 - 4 and not drawn[9:23, 9:23].any()           # only the border, one pixel wide
    assert images.max() == 0                                                    # a copy: the input is untouched


@pytest.mark.parametrize("spec", ["noise_square", "noise_square:grain=1:boundary=bounce", "noise_square:mix=true",
                                  "noise_square_paper", "shapes", "shapes:pattern=true:side=20,40"])
def test_every_world_of_train_data_is_a_video(spec):
    video, truth = viz.load_video(spec, 6, 64, viz.VIZ_SEED)
    assert video.shape == (6, 3, 64, 64) and truth.shape == (6, 64, 64) and viz.is_world(spec, 64)
    assert torch.equal(viz.load_video(spec, 6, 64, viz.VIZ_SEED)[0], video)   # the same seed, the same video
    if spec.startswith("shapes:pattern"):   # the options reach the world: shapes of 20-40 px fill the frame
        assert (truth > 0).float().mean() > 0.3
    assert viz.is_noise_square(spec) == spec.startswith("noise_square")


class SquareOracle(torch.nn.Module):
    """Features that know where the square is, under a position code 10x larger: what the diagnosis in
    docs/experiments.md finds in the trained models (the square a small share of the variance)."""

    def __init__(self, videos, masks, patch=8):
        super().__init__()
        self.table = [(v, metrics.token_fractions(m.long(), patch, 2)[..., 1] > 0.5) for v, m in zip(videos, masks)]
        g = torch.Generator().manual_seed(0)
        self.code = 10 * torch.randn(64 // patch, 64 // patch, 4, generator=g)   # (h, w, 4) per place

    def features(self, video):
        out = []
        for x in video:
            square = next(s for v, s in self.table if torch.equal(v, x)).float()   # (T, h, w)
            out.append(torch.cat([self.code.expand(len(x), -1, -1, -1), square[..., None]], -1))   # (T, h, w, 5)
        return torch.stack(out)


def test_the_demo_outlines_the_square_cluster_and_the_position_view_finds_it(capsys):
    _, cfg = tiny_model("rvm")
    T, spec, cpu = 12, "noise_square", torch.device("cpu")
    video, mask = viz.load_video(spec, T, 64, viz.VIZ_SEED)
    reference = viz.reference_videos(spec, 4, T, 64)
    masks = [viz.load_video(spec, T, 64, viz.REFERENCE_SEED + i)[1] for i in range(4)]
    oracle = SquareOracle(torch.cat([video[None], reference]), torch.stack([mask] + masks))
    args = viz.get_parser().parse_args(["--ckpt", "x", "--video", spec])
    best = lambda caption: float(caption.split("IoU ")[-1])
    # the features as they are: k-means (K = 5) splits the position code, no cluster is the square
    _, km, _, _, (caption, demo) = viz.model_maps("oracle", oracle, cfg, video, mask, args, cpu)
    assert "outlined" in caption and best(caption) < 0.5
    assert not np.array_equal(demo, km) and np.array_equal(demo[demo != 1], km[demo != 1])   # a white border, added
    assert "the best single cluster of K=5" in capsys.readouterr().out
    # position removed (the mean at each place over other videos of the world): the code goes, the square stays
    view = viz.dense_features(oracle, video, cpu, reference)
    assert view[..., :4].abs().max() < 1e-4
    two = viz.get_parser().parse_args(["--ckpt", "x", "--video", spec, "--k", "2"])   # one dimension of signal
    _, _, _, _, (caption, _) = viz.model_maps("oracle", oracle, cfg, video, mask, two, cpu, reference)
    assert best(caption) == 1.0 and "k-means K=2 1.000" in capsys.readouterr().out


@pytest.mark.slow
def test_make_gallery_trains_what_it_needs_and_draws_one_figure(tmp_path):
    """`make gallery` with 2 steps a run and 8 frames: RVM on the noise square, the others in the pattern world. A
    second call must reuse the runs: every train.py line of the recipe carries --auto-resume (whose "a finished run
    trains nothing" is tests/test_cli_errors.py's), read from make's dry run instead of paying four more starts."""
    import os
    import shlex
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = tmp_path / "gallery"
    make = ["make", "-s", "-C", root, "-o", "venv", "-o", ".venv/.installed", "gallery", f"PY={sys.executable}",
            f"DEMO_OUT={tmp_path / 'rvm'}", f"GALLERY_RUNS={runs}", "DEMO_STEPS=2", "GALLERY_STEPS=2", "SIGMA_STEPS=2",
            "GALLERY_FRAMES=8", "GALLERY_TRAIN=--batch-size 2"]
    first = subprocess.run(make, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    for run in ("siammae", "vicmae", "sigma"):
        ckpt = methods.read_checkpoint(str(runs / run / "ckpt.pt"))
        assert ckpt["method"] == run and ckpt["train"]["data"] == "shapes:pattern=true:side=20,40"
    assert methods.read_checkpoint(str(tmp_path / "rvm" / "ckpt.pt"))["train"]["data"] == "noise_square"
    figure = iio.imread(runs / "gallery.png")
    assert figure.shape[0] > figure.shape[1]                                   # a row per method and time: tall
    recipe = subprocess.run(make + ["-n"], capture_output=True, text=True, check=True).stdout
    trains = [shlex.split(line.replace("$m", "siammae")) for line in recipe.replace("\\\n", " ").splitlines()
              if "train.py" in line]
    assert len(trains) == 3 and all("--auto-resume" in words for words in trains)   # rvm, the for loop, sigma
