"""Tests for viz.py: the image helpers on hand-made inputs, every method's
reconstruction layout, and the script end to end on random-init checkpoints."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import methods
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
    ckpts = [write_ckpt(tmp_path, n) for n in ["rvm", "siammae", "vicmae", "sigma"]]
    for video in ["shapes", "noise_square_paper"]:
        out = tmp_path / video
        viz.main(sum([["--ckpt", c] for c in ckpts], []) + ["--video", video, "--frames", "64", "--out", str(out)])
        assert iio.imread(out / "demo.gif").shape[0] == 64
        assert len(list(out.glob("recon_*.png"))) == 4


def test_viz_says_only_what_it_wrote(tmp_path, capsys):
    video = tmp_path / "short.gif"                                   # 6 frames: shorter than RVM's clip
    iio.imwrite(video, (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8), duration=100)
    out = tmp_path / "viz"
    viz.main(["--ckpt", write_ckpt(tmp_path, "rvm"), "--video", str(video), "--frames", "6", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "no reconstruction" in printed and not (out / "recon_rvm.png").exists()
    assert f"wrote pca.png kmeans.png demo.png demo.gif demo.mp4 to {out}" in printed
