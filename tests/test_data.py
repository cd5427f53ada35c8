"""Tests for data.py: the toy-world datasets, the reader, augmentation, loaders."""

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import imageio.v3 as iio
import imageio_ffmpeg

# plain `pytest` (unlike `python -m pytest`) does not put the repo root on sys.path
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import data  # noqa: E402
import toyworld  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest.py


# ---------------------------------------------------------------- read_video

def _smooth_clip(T=6, H=48, W=64):
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    r = 0.5 + 0.4 * np.sin(x / 9 + t / 3)
    g = 0.5 + 0.4 * np.cos(y / 7)
    b = 0.5 + 0.3 * np.sin((x + y) / 11 - t / 4)
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)  # (T, H, W, 3)


def test_read_gif_round_trip(tmp_path):
    # a few flat colours: the GIF palette holds them exactly
    frames = np.zeros((5, 32, 40, 3), np.uint8)
    for t in range(5):
        frames[t, :, :20] = (255, 0, 0)
        frames[t, :, 20:] = (0, 0, 255)
        frames[t, 8 + t:16 + t, 4:12] = (0, 255, 0)
    iio.imwrite(tmp_path / "a.gif", frames, duration=100, loop=0)
    video = data.read_video(tmp_path / "a.gif")
    assert video.shape == (5, 3, 32, 40) and video.dtype == torch.float32
    assert torch.allclose(video, torch.from_numpy(frames).permute(0, 3, 1, 2) / 255, atol=2 / 255)
    assert data.read_video(tmp_path / "a.gif", max_frames=2).shape[0] == 2


def test_read_mp4_round_trip(tmp_path):
    frames = _smooth_clip()
    iio.imwrite(tmp_path / "a.mp4", frames, fps=10)
    video = data.read_video(tmp_path / "a.mp4")
    assert video.shape == (6, 3, 48, 64)
    expected = torch.from_numpy(frames).permute(0, 3, 1, 2) / 255
    assert (video - expected).abs().mean() < 0.03  # lossy codec, smooth pattern
    assert data.read_video(tmp_path / "a.mp4", size=32, max_frames=4).shape == (4, 3, 32, 32)
    assert data.read_video(tmp_path / "a.mp4", size=(24, 40)).shape == (6, 3, 24, 40)


def test_read_frame_folder_in_natural_order(tmp_path):
    frames = _smooth_clip(T=11)
    for t in range(11):  # frame_2 must come before frame_10
        iio.imwrite(tmp_path / f"frame_{t}.png", frames[t])
    video = data.read_video(tmp_path)
    assert torch.equal(video, torch.from_numpy(frames).permute(0, 3, 1, 2) / 255)
    small = data.read_video(tmp_path, size=16, max_frames=3)
    assert small.shape == (3, 3, 16, 16) and 0 <= small.min() and small.max() <= 1


def test_read_grey_and_rgba_frames(tmp_path):
    grey = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint8)
    (tmp_path / "g").mkdir()
    iio.imwrite(tmp_path / "g" / "0.png", grey)
    video = data.read_video(tmp_path / "g")
    assert video.shape == (1, 3, 16, 16) and torch.equal(video[0, 0], video[0, 2])
    (tmp_path / "a").mkdir()
    rgba = np.concatenate([_smooth_clip(1, 16, 16)[0], np.full((16, 16, 1), 7, np.uint8)], -1)
    iio.imwrite(tmp_path / "a" / "0.png", rgba)
    assert torch.equal(data.read_video(tmp_path / "a")[0], torch.from_numpy(rgba[..., :3]).permute(2, 0, 1) / 255)


def test_read_video_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        data.read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        data.read_video(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*\.mp4.*\.gif"):
        data.read_video(tmp_path / "notes.txt")
    (tmp_path / "bad.mp4").write_bytes(b"definitely not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        data.read_video(tmp_path / "bad.mp4")
    (tmp_path / "badframes").mkdir()
    (tmp_path / "badframes" / "0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="0.png"):
        data.read_video(tmp_path / "badframes")
    iio.imwrite(tmp_path / "short.gif", _smooth_clip(T=5, H=16, W=16), duration=100)
    with pytest.raises(ValueError, match="has 5 frames, need at least 8"):
        data.read_video(tmp_path / "short.gif", min_frames=8)


# ---------------------------------------------------------------- augmentation

def test_augment_clip_is_the_same_on_every_frame():
    frame = torch.rand(3, 32, 32)
    for seed in range(5):
        out = data.augment_clip(frame.expand(4, -1, -1, -1), torch.Generator().manual_seed(seed), out_size=24)
        assert out.shape == (4, 3, 24, 24)
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4))


def test_augment_clip_masks_follow_the_crop_and_flip():
    # 16x16 blocks, each with its own grey level = block id / 15: the mask is the block id
    ids = torch.arange(16).view(4, 4).repeat_interleave(16, 0).repeat_interleave(16, 1)  # (64, 64)
    clip = (ids.float() / 15).expand(2, 3, -1, -1)
    masks = ids.expand(2, -1, -1)
    for seed in range(8):
        out, m = data.augment_clip(clip, torch.Generator().manual_seed(seed), masks=masks)
        assert m.dtype == torch.int64 and torch.equal(m[0], m[1])
        agree = ((out[0, 0] * 15 - m[0]).abs() < 0.01).float().mean()
        assert agree > 0.8  # only pixels on block edges blend under bilinear resize


def test_augment_clip_flips_for_some_seeds():
    clip = torch.rand(2, 3, 16, 16)
    flipped = same = 0
    for seed in range(20):
        out = data.augment_clip(clip, torch.Generator().manual_seed(seed), scale=(1, 1), ratio=(1, 1))
        flipped += torch.equal(out, clip.flip(-1))
        same += torch.equal(out, clip)
    assert flipped > 0 and same > 0 and flipped + same == 20
    out = data.augment_clip(clip, torch.Generator().manual_seed(0), scale=(1, 1), ratio=(1, 1), flip=False)
    assert torch.equal(out, clip)


def test_augment_image():
    image, _ = toyworld.shapes_image(size=32, seed=0)
    views = [data.augment_image(image, torch.Generator().manual_seed(s), out_size=24) for s in (0, 0, 1)]
    assert views[0].shape == (3, 24, 24) and 0 <= views[0].min() and views[0].max() <= 1
    assert torch.equal(views[0], views[1]) and not torch.equal(views[0], views[2])


# ---------------------------------------------------------------- datasets

def _assert_same_item(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_synthetic_videos_items():
    ns = data.SyntheticVideos("noise_square", clip_len=4, size=32, seed=0)
    item = ns[7]
    assert item["video"].shape == (4, 3, 32, 32) and item["mask"].shape == (4, 32, 32)
    assert item["mask"].dtype == torch.int64 and item["index"] == 7 and not item["is_image"]
    assert 0 <= item["direction"] < len(toyworld.DIRECTIONS)
    assert len({ns[i]["direction"].item() for i in range(24)}) > 3
    sh = data.SyntheticVideos("shapes", clip_len=4, size=32, seed=0, n_shapes=2)
    assert sh[0]["mask"].max() <= 2 and sh[0]["direction"] == -1
    assert sh[0].keys() == item.keys()
    assert len(ns) >= 2**31 - 1
    with pytest.raises(ValueError, match="noise_square"):
        data.SyntheticVideos("cubes", clip_len=4, size=32)
    with pytest.raises(ValueError, match="squares"):
        data.SyntheticVideos("noise_square", clip_len=4, size=32, squares=3)


def test_a_toy_world_takes_typed_options_from_its_spec():
    assert data.world_spec("shapes:texture=0:n_shapes=2", 64) == ("shapes", {"texture": 0.0, "n_shapes": 2})
    assert data.world_spec("noise_square:boundary=bounce:color=true", 64)[1] == {"boundary": "bounce", "color": True}
    assert data.world_spec("shapes", 64) == ("shapes", {}) and data.world_spec("my/videos", 64) == ("my/videos", {})
    assert data.world_spec("shapes:side=24,40", 64) == ("shapes", {"side": (24, 40)})
    assert data.world_spec("shapes:pattern=true:side=20,40", 64) == ("shapes", {"pattern": True, "side": (20, 40)})
    with pytest.raises(ValueError, match="key one of n_shapes, texture, side, pattern; got 'speed=3'"):
        data.world_spec("shapes:speed=3", 64)
    # side: each shape's bounding box
    ids = data.SyntheticVideos("shapes", 2, 64, augment=False, n_shapes=1, side=(30, 30))[0]["mask"][0]
    ys, xs = (ids == 1).nonzero(as_tuple=True)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 == 30
    with pytest.raises(ValueError, match="side must be"):
        data.SyntheticVideos("shapes", 2, 64, side=(3,))
    # texture 0: plain colours, so neighbouring pixels differ far less than in the default world
    plain, grainy = (data.SyntheticVideos("shapes", 2, 64, augment=False, texture=t)[0]["video"] for t in (0.0, 0.4))
    step = lambda v: (v[..., 1:] - v[..., :-1]).abs().mean().item()
    assert step(plain) < 0.5 * step(grainy)


def test_the_mixed_noise_square_world_draws_a_world_per_clip_with_true_masks():
    ds = data.SyntheticVideos("noise_square", clip_len=6, size=64, seed=0, mix=True)
    worlds = set()
    for i in range(24):
        g = data.item_generator(0, i)
        direction, world = toyworld.randint(g, 8), toyworld.noise_square_mix(64, g)   # the draws item() makes
        item = ds[i]
        assert item["direction"] == direction
        # the ground truth: the square's whole area in every frame (a torus or a bounce never cuts it)
        assert (item["mask"].flatten(1).sum(1) == world["square"] ** 2).all()
        worlds.add((world["grain"], world["speed"], world["boundary"], world["square"]))
        assert world["lattice"] == world["grain"] and 1 <= world["grain"] <= 8 and 2 <= world["speed"] <= 8
    assert len(worlds) > 12 and {b for _, _, b, _ in worlds} == {"wrap", "bounce"}
    # the default world is untouched by the new option
    assert torch.equal(data.SyntheticVideos("noise_square", 6, 64, seed=0)[3]["video"],
                       data.SyntheticVideos("noise_square", 6, 64, seed=0, mix=False)[3]["video"])


def test_noise_square_dataset_without_augment_matches_its_direction():
    ds = data.SyntheticVideos("noise_square", clip_len=4, size=32, augment=False)   # lattice = speed = 4 px
    for i in range(8):
        item = ds[i]
        angle = math.radians(toyworld.DIRECTIONS[item["direction"]])
        m = item["mask"].bool()
        dy, dx = 4 * round(math.sin(angle)), 4 * round(math.cos(angle))    # one cell per frame, a king's move
        assert all(torch.equal(m[t + 1], torch.roll(m[t], (dy, dx), dims=(0, 1))) for t in range(3))
        assert not torch.equal(m[1], torch.roll(m[0], (-dy, -dx), dims=(0, 1)))  # not the opposite way


def test_still_images_two_views():
    ds = data.StillImages(clip_len=4, size=32, seed=0)
    item = ds[3]
    v = item["video"]
    assert v.shape == (4, 3, 32, 32) and item["is_image"] and item["direction"] == -1
    assert torch.equal(v[0], v[1]) and torch.equal(v[2], v[3]) and not torch.equal(v[0], v[2])
    assert (item["mask"] == 0).all() and item["mask"].dtype == torch.int64
    assert item.keys() == data.SyntheticVideos("shapes", clip_len=4, size=32)[0].keys()
    with pytest.raises(ValueError, match="clip_len"):
        data.StillImages(clip_len=1, size=32)


def test_still_images_from_a_folder(tmp_path):
    for i in range(3):
        iio.imwrite(tmp_path / f"{i}.png", _smooth_clip(T=1, H=40, W=50)[0])
    item = data.StillImages(clip_len=2, size=16, root=tmp_path)[0]
    assert item["video"].shape == (2, 3, 16, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        data.StillImages(clip_len=2, size=16, root=tmp_path / "empty")


def test_mixed():
    videos = data.SyntheticVideos("noise_square", clip_len=4, size=32, seed=0)
    images = data.StillImages(clip_len=4, size=32, seed=0)
    mixed = data.Mixed(videos, images, image_fraction=0.5, seed=0)
    kinds = [mixed[i]["is_image"].item() for i in range(16)]
    assert 0 < sum(kinds) < 16
    assert kinds == [mixed[i]["is_image"].item() for i in range(16)]
    assert not any(data.Mixed(videos, images, 0.0)[i]["is_image"] for i in range(4))
    assert all(data.Mixed(videos, images, 1.0)[i]["is_image"] for i in range(4))
    batch = next(data.make_loader(mixed, batch_size=6))
    assert batch["video"].shape == (6, 4, 3, 32, 32) and batch["is_image"].dtype == torch.bool
    with pytest.raises(ValueError, match="clip_len"):
        data.Mixed(videos, data.StillImages(clip_len=6, size=32), 0.5)


@pytest.mark.parametrize("make", [
    lambda s: data.SyntheticVideos("noise_square", clip_len=3, size=32, seed=s),
    lambda s: data.SyntheticVideos("shapes", clip_len=3, size=32, seed=s),
    lambda s: data.StillImages(clip_len=2, size=32, seed=s),
    lambda s: data.Mixed(data.SyntheticVideos("shapes", clip_len=2, size=32, seed=s),
                         data.StillImages(clip_len=2, size=32, seed=s), 0.5, seed=s),
])
def test_datasets_are_deterministic(make):
    a, b, c = make(0), make(0), make(1)
    _assert_same_item(a[5], b[5])
    assert not torch.equal(a[5]["video"], c[5]["video"])
    assert not torch.equal(a[5]["video"], a[6]["video"])


def _write_gif(path, T, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.repeat(np.repeat(rng.integers(0, 4, (T, 4, 4, 1)) * 80, 8, 1), 8, 2).repeat(3, -1)
    iio.imwrite(path, frames.astype(np.uint8), duration=100)


def test_video_folder(tmp_path, capsys):
    _write_gif(tmp_path / "good.gif", T=10)
    _write_gif(tmp_path / "short.gif", T=2)
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "sub" / "frames").mkdir(parents=True)
    for t in range(6):
        iio.imwrite(tmp_path / "sub" / "frames" / f"{t}.png", _smooth_clip(T=1, H=32, W=32)[0])
    ds = data.VideoFolder(tmp_path, clip_len=4, size=16, seed=0)
    assert sorted(p.name for p in ds.paths) == ["frames", "good.gif"]
    skipped = dict(ds.skipped)
    assert set(os.path.basename(p) for p in skipped) == {"corrupt.mp4", "short.gif"}
    assert "has 2 frames, need at least 4" in skipped[str(tmp_path / "short.gif")]
    out = capsys.readouterr().out
    assert "corrupt.mp4" in out and "short.gif" in out
    item = ds[0]
    assert item["video"].shape == (4, 3, 16, 16) and item["mask"].shape == (4, 16, 16)
    assert not item["is_image"] and item.keys() == data.StillImages(4, 16)[0].keys()
    again = data.VideoFolder(tmp_path, clip_len=4, size=16, seed=0)
    _assert_same_item(ds[3], again[3])
    assert not torch.equal(ds[3]["video"], data.VideoFolder(tmp_path, clip_len=4, size=16, seed=1)[3]["video"])


def test_video_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.VideoFolder(tmp_path / "missing", clip_len=4, size=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        data.VideoFolder(tmp_path / "empty", clip_len=4, size=16)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp4").write_bytes(b"junk")
    with pytest.raises(ValueError, match="x.mp4"):
        data.VideoFolder(tmp_path / "bad", clip_len=4, size=16)


def test_item_seeds_differ_for_neighbouring_seeds_indices_and_salts():
    seeds = {data.item_seed(s, i, salt) for s in range(8) for i in range(64) for salt in (data.ITEM, data.COIN,
                                                                                         data.SAMPLE)}
    assert len(seeds) == 8 * 64 * 3 and all(0 <= x < 2**63 for x in seeds)
    assert data.item_seed(3, 5, data.SAMPLE) == data.item_seed(3, 5, data.SAMPLE)
    a, b = data.item_generator(0, 0), data.item_generator(0, 1)
    assert not torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


# ---------------------------------------------------------------- make_loader

def _tiny_dataset():
    return data.SyntheticVideos("noise_square", clip_len=2, size=16, square=4, seed=0)


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _stamp(item, index):  # a transform: module level so workers can pickle it
    item["stamp"] = torch.tensor(index * 10)
    return item


def test_loader_indices_and_ranks_partition_the_global_batch():
    ds = _tiny_dataset()
    single = _take(data.make_loader(ds, batch_size=4), 3)
    ranks = [_take(data.make_loader(ds, batch_size=2, rank=r, world_size=2), 3) for r in range(2)]
    for step in range(3):
        assert single[step]["index"].tolist() == list(range(4 * step, 4 * step + 4))
        for k in single[step]:
            assert torch.equal(single[step][k], torch.cat([ranks[0][step][k], ranks[1][step][k]]))


def test_loader_resumes_from_start_step():
    ds = _tiny_dataset()
    full = _take(data.make_loader(ds, batch_size=3), 4)
    resumed = _take(data.make_loader(ds, batch_size=3, start_step=2), 2)
    for a, b in zip(full[2:], resumed):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_loader_workers_give_the_same_batches():
    ds = _tiny_dataset()
    plain = _take(data.make_loader(ds, batch_size=2, transform=_stamp), 3)
    workers = _take(data.make_loader(ds, batch_size=2, workers=2, transform=_stamp), 3)
    for a, b in zip(plain, workers):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert plain[1]["stamp"].tolist() == [20, 30]


def test_loader_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        data.make_loader(_tiny_dataset(), batch_size=2, rank=2, world_size=2)


def test_noise_square_defaults_scale_with_the_frame():
    for size in (32, 64):
        ds = data.SyntheticVideos("noise_square", clip_len=6, size=size)
        o, g = ds.options, size // 16
        assert not ds.augment and data.SyntheticVideos("shapes", clip_len=2, size=size).augment
        assert (o["square"], o["grain"], o["lattice"], o["speed"]) == (size // 2, g, size // 8, size // 8)
        item = ds[1]
        v, m = item["video"], item["mask"]
        assert torch.equal(v, v[..., ::g, ::g].repeat_interleave(g, -2).repeat_interleave(g, -1))   # texels, unblurred
        assert (m.sum((1, 2)) == (size // 2) ** 2).all()                                             # no crop


# ---------------------------------------------------------------- seeking in a long video (issue 44 sec. 2)

LONG_FPS, LONG_MINUTES, LONG_SIDE = 10, 10, 32


def _frame_colours(i):
    """Frame i's flat colour: its index in base 16 (red, green) and 256 (blue), steps wide enough for a lossy
    codec's error, so a decoded frame says which frame it is."""
    return np.stack([i % 16 * 16, i // 16 % 16 * 16, i // 256 * 10], -1)


def _frame_index(video):
    """(T, 3, H, W) in [0, 1] of _frame_colours frames -> the T frame indices."""
    r, g, b = (video.mean((2, 3)) * 255).T.tolist()
    return [round(x / 16) + 16 * round(y / 16) + 256 * round(z / 10) for x, y, z in zip(r, g, b)]


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """A 10-minute video, 32 x 32 at 10 fps (6000 frames, ~0.3 MB), each frame a flat colour naming its index."""
    n = LONG_FPS * 60 * LONG_MINUTES
    frames = np.broadcast_to(_frame_colours(np.arange(n))[:, None, None, :], (n, LONG_SIDE, LONG_SIDE, 3))
    path = tmp_path_factory.mktemp("long") / "ten_minutes.mp4"
    iio.imwrite(path, np.ascontiguousarray(frames, dtype=np.uint8), fps=LONG_FPS)
    return path


def test_a_late_clip_of_a_ten_minute_video_is_read_by_seeking(long_video):
    n = LONG_FPS * 60 * LONG_MINUTES
    assert data.video_info(long_video) == (n, LONG_FPS)   # from the header
    # the clip is the frames a decode from the start gives, for starts before, on and after key frames
    head = data.read_video(long_video, max_frames=300)
    assert _frame_index(head) == list(range(300))
    for start in (0, 1, 7, 249, 250, 251, 283):
        assert torch.equal(data.read_clip(long_video, start, 16), head[start:start + 16]), start
    late = data.read_clip(long_video, n - 30, 16)
    assert late.shape == (16, 3, LONG_SIDE, LONG_SIDE) and _frame_index(late) == list(range(n - 30, n - 14))
    assert _frame_index(data.read_clip(long_video, n - 5, 16)) == list(range(n - 5, n))   # cut at the end
    assert data.read_clip(long_video, 4000, 4, size=16).shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="no frame 6000"):
        data.read_clip(long_video, n, 16)


def test_a_late_clip_costs_far_less_than_decoding_the_video(long_video):
    """Seeking decodes a key-frame interval, not the 5200 frames before the clip: a clip near the end costs about
    what the first clip costs (ffmpeg's start-up and one interval at most; start 5200 is 200 frames after a key
    frame of the encoder's default 250-frame interval), and a fraction of decoding up to it. The best of three
    tries each, so a busy spell of a shared machine does not decide it."""
    def best(fn):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    first = best(lambda: data.read_clip(long_video, 0, 16, fps=LONG_FPS))
    late = best(lambda: data.read_clip(long_video, 5200, 16, fps=LONG_FPS))
    whole = best(lambda: data.read_video(long_video, max_frames=5216))
    assert late < 2 * first and late < whole / 4, (first, late, whole)


def test_a_clip_of_a_video_with_sound_starts_on_its_frame(tmp_path):
    """A video with an audio track (most real ones): ffmpeg's constant-frame-rate default for a pipe repeated a
    seeked clip's first frame (frames 30, 30, 31, ... for a clip at 30); read_clip passes the frames through."""
    n = 60
    frames = np.broadcast_to(_frame_colours(np.arange(n))[:, None, None, :], (n, LONG_SIDE, LONG_SIDE, 3))
    iio.imwrite(tmp_path / "silent.mp4", np.ascontiguousarray(frames, dtype=np.uint8), fps=LONG_FPS)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", tmp_path / "silent.mp4", "-f", "lavfi",
                    "-i", "sine=duration=6", "-c:v", "copy", "-c:a", "aac", "-shortest", tmp_path / "sound.mp4"],
                   check=True, timeout=60)
    for start in (1, 7, 30):
        assert _frame_index(data.read_clip(tmp_path / "sound.mp4", start, 5)) == list(range(start, start + 5))


def test_video_folder_streams_clips_of_a_long_video(long_video):
    ds = data.VideoFolder(long_video, clip_len=16, size=LONG_SIDE, seed=0, augment=False)
    assert ds.videos == [(long_video, LONG_FPS * 60 * LONG_MINUTES, LONG_FPS)]   # indexed, nothing decoded or held
    for index in range(3):
        frames = _frame_index(ds[index]["video"])
        assert frames == list(range(frames[0], frames[0] + 16))
    _assert_same_item(ds[1], data.VideoFolder(long_video, clip_len=16, size=LONG_SIDE, seed=0, augment=False)[1])
    capped = data.VideoFolder(long_video, clip_len=16, size=LONG_SIDE, seed=0, augment=False, max_frames=40)
    assert capped.videos[0][1] == 40 and all(_frame_index(capped[i]["video"])[-1] < 40 for i in range(3))
