"""Tests for toyworld.py: the noise square's and the shapes' ground truth, the held-out sets."""
import math

import numpy as np
import pytest
import torch

import toyworld

pytestmark = pytest.mark.usefixtures("one_thread")   # conftest.py


# ---------------------------------------------------------------- noise square

def test_noise_square_shapes_and_range():
    video, mask = toyworld.noise_square_video(T=5, size=32, square=8, seed=0)
    assert video.shape == (5, 3, 32, 32) and video.dtype == torch.float32
    assert mask.shape == (5, 32, 32) and mask.dtype == torch.bool
    assert 0 <= video.min() and video.max() <= 1
    assert toyworld.DIRECTIONS == [0, 45, 90, 135, 180, 225, 270, 315]


@pytest.mark.parametrize("color", [False, True])
def test_single_frame_statistics_inside_and_outside_are_indistinguishable(color):
    # the point of the stimulus: no single-frame statistic reveals the square
    for seed in range(4):
        video, mask = toyworld.noise_square_video(T=1, size=64, square=32, color=color, seed=seed)
        frame, m = video[0], mask[0]
        inside, outside = frame[:, m].flatten(), frame[:, ~m].flatten()
        if not color:
            inside, outside = frame[0, m], frame[0, ~m]
        se_mean = math.sqrt(inside.var() / inside.numel() + outside.var() / outside.numel())
        assert abs(inside.mean() - outside.mean()) < 4 * se_mean
        # standard error of a std for uniform noise (kurtosis 1.8): sigma * sqrt(0.8 / (4 n))
        se_std = 0.2887 * math.sqrt(0.2 / inside.numel() + 0.2 / outside.numel())
        assert abs(inside.std() - outside.std()) < 4 * se_std


def test_grey_has_three_equal_channels_and_color_does_not():
    video, _ = toyworld.noise_square_video(T=2, size=32, square=8, seed=0)
    assert torch.equal(video[:, 0], video[:, 1]) and torch.equal(video[:, 0], video[:, 2])
    video, _ = toyworld.noise_square_video(T=2, size=32, square=8, color=True, seed=0)
    assert not torch.equal(video[:, 0], video[:, 1])


@pytest.mark.parametrize("angle", toyworld.DIRECTIONS)
def test_mask_centroid_moves_by_the_velocity(angle):
    T, speed = 6, 2.0
    _, mask = toyworld.noise_square_video(T=T, size=64, square=8, angle=angle, speed=speed, start=(28.0, 28.0))
    ys, xs = torch.arange(64.0)[:, None], torch.arange(64.0)[None, :]
    cy = (mask * ys).sum((1, 2)) / mask.sum((1, 2))
    cx = (mask * xs).sum((1, 2)) / mask.sum((1, 2))
    t = torch.arange(T)
    vy, vx = speed * math.sin(math.radians(angle)), speed * math.cos(math.radians(angle))
    # positions are rounded to whole pixels each frame: at most half a pixel off the exact path
    assert torch.allclose(cy - cy[0], t * vy, atol=0.5 + 1e-6)
    assert torch.allclose(cx - cx[0], t * vx, atol=0.5 + 1e-6)
    assert (cx[-1] - cx[0]) * vx >= 0 and (cy[-1] - cy[0]) * vy >= 0  # moving the right way


@pytest.mark.parametrize("angle, speed, step", [(0, 3.0, (0, 3)), (90, 2.0, (2, 0)), (225, 2 * math.sqrt(2), (-2, -2))])
def test_texture_moves_rigidly_and_background_is_static(angle, speed, step):
    video, mask = toyworld.noise_square_video(T=20, size=32, square=8, angle=angle, speed=speed, boundary="wrap",
                                              seed=3)
    for t in range(video.shape[0] - 1):
        assert torch.equal(mask[t + 1], torch.roll(mask[t], step, dims=(0, 1)))
        shifted = torch.roll(video[t], step, dims=(1, 2))  # texture at t moved by one step of motion
        assert torch.equal(video[t + 1][:, mask[t + 1]], shifted[:, mask[t + 1]])
    never_covered = ~mask.any(0)
    assert never_covered.sum() > 0
    assert torch.equal(video[:, :, never_covered], video[:1, :, never_covered].expand_as(video[:, :, never_covered]))


def test_subpixel_speed_still_rigid():
    video, mask = toyworld.noise_square_video(T=9, size=32, square=8, speed=0.5, start=(4.0, 4.0), boundary="wrap")
    xs = [m.nonzero()[:, 1].min().item() for m in mask]
    assert xs[-1] - xs[0] == 4 and set(np.diff(xs)) <= {0, 1}  # 0.5 px/frame: one pixel every other frame
    texture = video[0][:, mask[0]].view(3, 8, 8)
    for t in range(9):
        assert torch.equal(video[t][:, mask[t]].view(3, 8, 8), texture)


@pytest.mark.parametrize("boundary", ["wrap", "bounce"])
def test_grain_square_stays_on_the_texel_lattice(boundary):
    # any speed, angle and start: the square snaps to the grain lattice, so every frame is
    # constant grain x grain blocks (no texel edge out of phase with the background's)
    video, mask = toyworld.noise_square_video(T=12, size=32, square=8, grain=4, angle=45, speed=1.7,
                                          boundary=boundary, seed=1)
    blocks = video[:, :, ::4, ::4].repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert torch.equal(video, blocks)
    assert video[0, 0, :4, :4].unique().numel() == 1 and video[0, 0, :, :8].unique().numel() > 1
    assert torch.equal(mask, mask[:, ::4, ::4].repeat_interleave(4, 1).repeat_interleave(4, 2))
    corners = {tuple(m.nonzero().min(0).values.tolist()) for m in mask if not (m[:, 0].any() and m[:, -1].any())}
    assert len(corners) > 3 and all(y % 4 == 0 and x % 4 == 0 for y, x in corners)   # it moved, on the lattice


@pytest.mark.parametrize("boundary", ["wrap", "bounce"])
def test_square_snaps_to_a_coarser_lattice_than_its_texels(boundary):
    video, mask = toyworld.noise_square_video(T=12, size=32, square=16, grain=2, lattice=8, angle=45, speed=3.3,
                                          boundary=boundary, seed=4)
    assert torch.equal(video, video[:, :, ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3))  # 2-px texels
    assert torch.equal(mask, mask[:, ::8, ::8].repeat_interleave(8, 1).repeat_interleave(8, 2))        # 8-px cells
    assert len({tuple(m.nonzero().min(0).values.tolist()) for m in mask}) > 2                        # it moved


def test_bounce_keeps_square_inside_and_turns_around():
    _, mask = toyworld.noise_square_video(T=30, size=32, square=8, angle=0, speed=4.0, start=(10.0, 20.0))
    xs = []
    for m in mask:
        rows, cols = m.nonzero().unbind(1)
        assert m.sum() == 64 and cols.max() - cols.min() == 7 and rows.max() - rows.min() == 7  # one piece
        xs.append(cols.min().item())
    assert max(xs) == 24 and min(xs) == 0  # touched both walls, never crossed them


def test_wrap_keeps_area_and_crosses_the_border():
    _, mask = toyworld.noise_square_video(T=16, size=32, square=8, angle=45, speed=3.0, boundary="wrap", seed=2)
    assert (mask.sum((1, 2)) == 64).all()
    assert any(m[:, 0].any() and m[:, -1].any() for m in mask)  # split over the left/right edge


def test_noise_square_paper_preset():
    video, mask = toyworld.noise_square_paper(T=16, size=64, seed=0)
    assert video.shape == (16, 3, 64, 64) and (mask.sum((1, 2)) == 32 * 32).all()
    rows = mask.any(2)
    assert rows[:, 16:48].all() and not rows[:, :16].any() and not rows[:, 48:].any()  # centred vertically
    xs = [m.nonzero()[:, 1].min().item() for m in mask]
    assert xs[:3] == [0, 4, 8]  # crosses the 64-px width in 16 frames


@pytest.mark.parametrize("kwargs, match", [
    (dict(square=64, size=64), "square"), (dict(square=0), "square"), (dict(grain=3), "grain"),
    (dict(grain=32, square=16), "grain"), (dict(boundary="reflect"), "boundary"), (dict(T=0), "T"),
    (dict(grain=4, lattice=6), "lattice"), (dict(size=64, square=24, lattice=16), "lattice"),
])
def test_noise_square_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toyworld.noise_square_video(**kwargs)


# ---------------------------------------------------------------- shapes

def test_shapes_video_masks():
    n = 3
    video, ids = toyworld.shapes_video(T=8, size=48, n_shapes=n, seed=4)
    assert video.shape == (8, 3, 48, 48) and ids.shape == (8, 48, 48) and ids.dtype == torch.int64
    assert 0 <= video.min() and video.max() <= 1
    assert ids.min() >= 0 and ids.max() <= n
    for t in range(8):
        assert set(ids[t].unique().tolist()) == set(range(n + 1))  # background and every object visible
    # background pixels are static: where the mask says background in both frames, the video agrees
    both_bg = (ids[0] == 0) & (ids[5] == 0)
    assert torch.equal(video[0][:, both_bg], video[5][:, both_bg])
    # the front-most object is never occluded: its pixels translate rigidly with its mask
    front0, front1 = ids[0] == n, ids[1] == n
    assert front0.sum() == front1.sum()
    assert torch.equal(video[0][:, front0], video[1][:, front1])
    moved = [(ids[t] == k).nonzero().float().mean(0) for t in (0, 7) for k in range(1, n + 1)]
    assert any((a - b).abs().max() > 1 for a, b in zip(moved[:n], moved[n:]))  # things move


def test_shapes_stay_visible_in_a_crowded_scene():
    # 6 shapes on 32x32 would often hide one completely; layouts are redrawn until none is
    for seed in range(8):
        _, ids = toyworld.shapes_video(T=12, size=32, n_shapes=6, seed=seed)
        assert all(set(ids[t].unique().tolist()) == set(range(7)) for t in range(12))


def test_shapes_image():
    image, ids = toyworld.shapes_image(size=32, n_shapes=2, seed=1)
    assert image.shape == (3, 32, 32) and ids.shape == (32, 32)
    assert set(ids.unique().tolist()) == {0, 1, 2}


@pytest.mark.parametrize("make", [
    lambda s: toyworld.noise_square_video(T=3, size=32, square=8, seed=s),
    lambda s: toyworld.noise_square_paper(T=4, size=32, seed=s),
    lambda s: toyworld.shapes_video(T=3, size=32, seed=s),
    lambda s: toyworld.shapes_image(size=32, seed=s),
])
def test_generators_are_deterministic(make):
    a, b, c = make(0), make(0), make(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


# ---------------------------------------------------------------- held-out sets

def test_noise_square_along_moves_the_square_by_speed_on_each_axis():
    o = toyworld.noise_square_options(64)
    assert (o["square"], o["grain"], o["lattice"], o["speed"], o["boundary"]) == (32, 4, 8, 8, "wrap")
    o.pop("speed")
    for direction, (dy, dx) in {0: (0, 8), 2: (8, 0), 1: (8, 8), 5: (-8, -8)}.items():   # 0, 90, 45, 225 degrees
        _, mask = toyworld.noise_square_along(3, 64, direction, 8, seed=1, **o)
        assert torch.equal(mask[1], mask[0].roll((dy, dx), (0, 1)))                      # a king's move per frame
        assert torch.equal(mask[2], mask[1].roll((dy, dx), (0, 1)))


def test_noise_square_set_cycles_directions_and_is_a_function_of_its_seeds():
    videos, masks, classes = toyworld.noise_square_set(10, 3, 32, toyworld.EVAL_SEED)
    assert videos.shape == (10, 3, 3, 32, 32) and masks.shape == (10, 3, 32, 32)
    assert classes.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    assert (masks.sum((-2, -1)) == 16 ** 2).all()                             # the default side, size // 2
    again, _, _ = toyworld.noise_square_set(2, 3, 32, toyworld.EVAL_SEED + 8)
    assert torch.equal(again, videos[8:])                  # video i: seed first_seed + i, direction i % 8
    assert not torch.equal(again[0], videos[0])
    small, small_masks, _ = toyworld.noise_square_set(2, 3, 32, 0, square=8, speed=(2, 6))
    assert (small_masks.sum((-2, -1)) == 64).all()
    assert torch.equal(small_masks[0, 1], small_masks[0, 0].roll(4, 1))        # a range moves at its middle


def test_shapes_set_stacks_shapes_videos():
    videos, masks = toyworld.shapes_set(2, 4, 32, 7)
    v, m = toyworld.shapes_video(T=4, size=32, n_shapes=3, seed=8)
    assert videos.shape == (2, 4, 3, 32, 32) and torch.equal(videos[1], v) and torch.equal(masks[1], m)
    again, masks_again, classes = toyworld.shapes_set(2, 4, 32, 7, with_kinds=True)
    assert torch.equal(again, videos) and torch.equal(masks_again, masks)
    _, _, kinds = toyworld.shapes_video(T=4, size=32, n_shapes=3, seed=8, with_kinds=True)
    assert torch.equal(classes[1], kinds[m]) and kinds[0] == 0 and ((kinds[1:] >= 1) & (kinds[1:] <= 3)).all()


def test_shape_kinds_match_the_drawn_outlines():
    """A square fills its bounding box, a disc leaves its corners, a triangle its top corners."""
    for seed in range(8):
        _, ids, kinds = toyworld.shapes_video(T=1, size=64, n_shapes=1, seed=seed, with_kinds=True)
        ys, xs = (ids[0] == 1).nonzero(as_tuple=True)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        fill = len(ys) / box.item()                                   # square 1, disc pi/4, triangle ~1/2
        kind = toyworld.SHAPE_KINDS[int(kinds[1]) - 1]
        assert {"square": fill == 1.0, "disc": 0.7 < fill < 0.85, "triangle": 0.4 < fill < 0.62}[kind], (kind, fill)


def test_shapes_options_side_and_texture():
    video, ids = toyworld.shapes_video(T=2, size=64, n_shapes=1, seed=0, side=(40, 40), texture=0.0)
    ys, xs = (ids[0] == 1).nonzero(as_tuple=True)
    assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 == 40    # the bounding box's side
    assert video[0][:, ids[0] == 1].std(1).max() == 0                 # no grain: one flat colour
    with pytest.raises(ValueError, match="side"):
        toyworld.shapes_video(size=64, side=(10, 64))


def test_the_default_shapes_stream_is_pinned():
    """The default world's videos are what the documented runs trained on (docs/): a new option must leave them
    as they are. Numbers of seed 0 measured when the pattern option came in (and equal to the code before it)."""
    video, ids = toyworld.shapes_video(T=4, seed=0)
    assert video.double().sum().item() == pytest.approx(23317.968905, abs=1e-3) and ids.sum().item() == 6675


# ---------------------------------------------------------------- the pattern world

def pattern_object(seed, texture=0.4):
    """One unoccluded 32-px shape of the pattern world: (its pixels (3, H, W), its mask (H, W), its kind)."""
    video, ids, kinds = toyworld.shapes_video(T=1, size=64, n_shapes=1, seed=seed, side=(32, 32), pattern=True,
                                              texture=texture, with_kinds=True)
    return video[0], ids[0] == 1, toyworld.SHAPE_KINDS[int(kinds[1]) - 1]


def row_and_column_constant(x, mask):
    """(every row of x inside mask is one value, every column is)."""
    rows = all(x[r][mask[r]].unique().numel() <= 1 for r in range(x.shape[0]))
    cols = all(x[:, c][mask[:, c]].unique().numel() <= 1 for c in range(x.shape[1]))
    return rows, cols


def test_pattern_world_each_kind_wears_its_pattern_over_one_colour():
    """Squares are horizontal stripes (each row one value), discs vertical stripes (each column one value),
    triangles a checkerboard (neither); the pattern is the same on every channel, over the object's colour."""
    seen = set()
    for seed in range(12):
        pixels, mask, kind = pattern_object(seed)
        seen.add(kind)
        expected = {"square": (True, False), "disc": (False, True), "triangle": (False, False)}[kind]
        assert row_and_column_constant(pixels[0], mask) == expected, (seed, kind)
        offsets = (pixels[1:] - pixels[:1])[:, mask]                      # (2, M) other channels minus the first
        assert (offsets - offsets[:, :1]).abs().max() < 1e-6            # one pattern, a colour per channel
        values = pixels[0][mask]
        assert values.max() - values.min() == pytest.approx(0.4, abs=1e-6)   # +-texture / 2 around the colour
    assert seen == set(toyworld.SHAPE_KINDS)


def test_no_linear_function_tells_the_patterns_apart_but_the_direction_of_contrast_does():
    """Over its random phase every kind's pattern averages 0 at every pixel, so a linear function of a patch has
    the same mean for the three kinds; the mean |difference| between neighbours down and across does differ."""
    g = toyworld.generator(0)
    for kind, (down, across) in {"square": (0.2, 0.0), "disc": (0.0, 0.2), "triangle": (0.2, 0.2)}.items():
        p = torch.stack([toyworld._pattern(kind, 16, g, 0.4) for _ in range(400)])      # (400, 16, 16)
        assert p.unique().tolist() == pytest.approx([-0.2, 0.2])
        assert p.mean(0).abs().max() < 0.05                           # the sd of a pixel's mean is 0.01
        assert (p[:, 1:] - p[:, :-1]).abs().mean() == pytest.approx(down, abs=0.02)
        assert (p[:, :, 1:] - p[:, :, :-1]).abs().mean() == pytest.approx(across, abs=0.02)
        flipped = p.flip(-1)[0]                                       # augment_clip's flip keeps the kind
        assert row_and_column_constant(flipped, torch.ones(16, 16, dtype=torch.bool)) == \
            row_and_column_constant(p[0], torch.ones(16, 16, dtype=torch.bool))


def test_pattern_world_background_has_the_patterns_contrast_and_the_same_layout():
    """The background's grain has the patterns' std (texture / 2); the world's draws are those of the plain world
    of the same seed up to the textures (the layout, masks and kinds are the same)."""
    for seed in range(3):
        video, ids, kinds = toyworld.shapes_video(T=2, size=64, seed=seed, texture=0.2, pattern=True, with_kinds=True)
        flat, ids0, kinds0 = toyworld.shapes_video(T=2, size=64, seed=seed, texture=0.0, pattern=True,
                                                   with_kinds=True)
        assert torch.equal(ids, ids0) and torch.equal(kinds, kinds0)
        diff = (video - flat).transpose(0, 1)                            # (3, T, H, W)
        grain = diff[:, ids == 0].flatten()                              # no clamping at 0.2: 0.2 + 0.6 u +- 0.17
        assert grain.std().item() == pytest.approx(0.1, rel=0.08)
        inside = diff[:, ids > 0].flatten()
        assert inside.abs().sub(0.1).abs().max() < 1e-6                  # the patterns: exactly +-texture / 2
