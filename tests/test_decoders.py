"""bench.py --decoders (issue 44 sec. 2): its table, its measurement on a fake decoder, and PyAV's and torchcodec's
readers against data.read_clip where they are installed (skipped where not: CI has requirements.txt only)."""
import numpy as np
import pytest
import torch

import imageio.v3 as iio

import bench_decoders
import data
from test_data import _frame_colours, _frame_index


def test_the_table_gives_each_rate_against_imageio_and_why_a_decoder_is_missing():
    rows = [{"decoder": "imageio", "version": "0.8.1", "error": None, "clips_per_s": {1: 1.0, 4: 2.0},
             "first_s": 0.05, "late_s": 0.06},
            {"decoder": "av", "version": "18.1.0", "error": None, "clips_per_s": {1: 1.5, 4: 2.5},
             "first_s": 0.02, "late_s": 0.03},
            {"decoder": "torchcodec", "version": None, "error": "RuntimeError: Could not load libtorchcodec."}]
    lines = bench_decoders.decoder_markdown(rows, [1, 4]).splitlines()
    assert lines[0] == ("| decoder | version | clips/s, 1 worker | clips/s, 4 workers | s per first 16-frame clip "
                        "| s per late 16-frame clip |")
    assert lines[2] == "| imageio | 0.8.1 | 1.00 (1.00x) | 2.00 (1.00x) | 0.050 | 0.060 |"
    assert lines[3] == "| av | 18.1.0 | 1.50 (1.50x) | 2.50 (1.25x) | 0.020 | 0.030 |"
    assert lines[4] == "| torchcodec | not usable: RuntimeError: Could not load libtorchcodec. | | | | |"
    assert {line.count("|") for line in lines} == {7}


def test_a_decoder_that_does_not_import_says_why_in_one_line(monkeypatch):
    monkeypatch.setitem(bench_decoders.DECODERS, "missing", (None, "no_such_decoder_module", "no-such-decoder"))
    assert bench_decoders.decoder_version("missing") == (
        None, "ModuleNotFoundError: No module named 'no_such_decoder_module'")
    version, why = bench_decoders.decoder_version("imageio")   # always there: requirements.txt
    assert why is None and version


def _fake_read(path, start, num_frames, size=None, fps=None):
    """data.read_clip's signature and shapes, no decoding."""
    side = size or 8
    return torch.zeros(num_frames, 3, side, side)


def test_the_measurement_runs_every_decoder_on_the_same_clips(tmp_path):
    for name, T in (("a.mp4", 12), ("b.mp4", 20)):
        iio.imwrite(tmp_path / name, np.zeros((T, 16, 16, 3), np.uint8), fps=10)
    drawn = bench_decoders.draw_clips(tmp_path, clip_len=4, size=8, n=6)
    assert [p.name for p, _, _ in drawn] == ["a.mp4", "b.mp4"] * 3                  # the videos in turn
    assert all(0 <= s <= (12 if p.name == "a.mp4" else 20) - 4 for p, s, _ in drawn)
    assert drawn == bench_decoders.draw_clips(tmp_path, clip_len=4, size=8, n=6)    # the same for every decoder
    long_video = bench_decoders.make_long_video(tmp_path / "long.mp4", minutes=0.1)
    assert long_video[1:] == (150, 25) and data.video_info(long_video[0]) == (150, 25)
    rows = bench_decoders.bench_decoders(drawn, 4, 8, [0, 1], 2, long_video,
                                         decoders={"fake": (_fake_read, None, None)})
    assert rows[0]["decoder"] == "fake" and set(rows[0]["clips_per_s"]) == {0, 1}
    assert all(r > 0 for r in rows[0]["clips_per_s"].values()) and rows[0]["late_s"] > 0
    item = bench_decoders.DecodedClips(drawn, 4, 8, data.read_clip)[7]
    assert item["video"].shape == (4, 3, 8, 8)


@pytest.fixture(scope="module")
def indexed_video(tmp_path_factory):
    """300 frames, 32 x 32 at 10 fps, each a flat colour naming its index (a key frame every 250 frames)."""
    n = 300
    frames = np.broadcast_to(_frame_colours(np.arange(n))[:, None, None, :], (n, 32, 32, 3))
    path = tmp_path_factory.mktemp("indexed") / "indexed.mp4"
    iio.imwrite(path, np.ascontiguousarray(frames, dtype=np.uint8), fps=10)
    return path


@pytest.mark.parametrize("name", ["av", "torchcodec"])
def test_a_decoder_reads_the_clip_read_clip_reads(name, indexed_video):
    """Same count, same first frame after a seek (before, on and after the key frame at 250, and cut at the end),
    frames within a level or two of imageio's (the same FFmpeg conversion to RGB, or a close one)."""
    _, why = bench_decoders.decoder_version(name)
    if why:
        pytest.skip(f"{name} not usable here: {why}")
    read = bench_decoders.DECODERS[name][0]
    for start, size in ((0, None), (1, None), (7, 16), (249, None), (250, None), (251, 16), (290, None)):
        expected, clip = data.read_clip(indexed_video, start, 16, size, 10), read(indexed_video, start, 16, size, 10)
        assert clip.shape == expected.shape, (start, clip.shape, expected.shape)
        assert _frame_index(clip)[0] == start and _frame_index(clip) == _frame_index(expected)
        assert (clip - expected).abs().max() <= 2 / 255, start
