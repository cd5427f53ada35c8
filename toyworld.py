"""The toy world: videos with ground truth that a laptop trains on in minutes.

* Noise square (RVM Sec. 4.4, Fig. 6): a static white-noise background and
  a square of *another* white noise sliding rigidly over it. Background and
  square texels are i.i.d. uniform [0, 1], so every frame on its own is pure
  noise: no single-frame statistic tells square from background. Only motion
  gives the square away. A frame model (SiamMAE, ViC-MAE) cannot segment it;
  a model that integrates time (RVM, SIGMA's tubes) can.
* Moving shapes: textured squares, discs and triangles gliding over a textured
  background in a fixed depth order, with instance masks of the visible
  object per pixel: the toy world's "DAVIS" for label propagation. With
  pattern=True each kind wears its own stripes or checkerboard over a random
  colour, so that only second-order statistics tell the kinds apart.
* Held-out sets: the videos evaluate.py and viz.py score on, made from seeds
  that training never draws (EVAL_SEED upward).

Every video is a pure function of its arguments and a seed: all randomness
comes from an explicit torch.Generator. torch only; data.py wraps this world
into datasets (SyntheticVideos) next to real videos, augmentation and loaders.
"""
import math

import torch
import torch.nn.functional as F

DIRECTIONS = list(range(0, 360, 45))  # motion classes in degrees, image coords: 0 right, 90 down
SHAPE_KINDS = ("square", "disc", "triangle")
EVAL_SEED = 10**9                     # held-out seeds start here (training videos get random 62-bit seeds)
SEED_BLOCKS = {"iou": 0, "probe": 100_000, "shapes": 200_000, "kinds": 400_000,
               "video_kind": 500_000, "mix": 600_000}   # per probe (viz: 300_000)


# -----------------------------------------------------------------------------
# randomness: everything draws from an explicit torch.Generator

def generator(seed):
    return torch.Generator().manual_seed(int(seed) % 2**63)


def uniform(g, lo, hi):
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def randint(g, n):
    return int(torch.randint(n, (), generator=g))


def new_seed(g):
    return randint(g, 2**62)


def _noise(channels, n, grain, g):
    """i.i.d. uniform [0, 1] texels of grain x grain pixels, cropped to n x n."""
    cells = -(-n // grain)  # ceil
    x = torch.rand(channels, cells, cells, generator=g)
    x = x.repeat_interleave(grain, 1).repeat_interleave(grain, 2)  # (C, cells*grain, cells*grain)
    return x[:, :n, :n]  # (C, n, n)


def _fold(p, length):
    """Where a point moving freely to p lands when it bounces between walls at 0 and length."""
    if length == 0:
        return 0.0
    p = p % (2 * length)  # a bounce trajectory is periodic with period 2 * length
    return p if p <= length else 2 * length - p


def _round(p):
    return int(math.floor(p + 0.5))  # half up, not Python's banker's rounding


# -----------------------------------------------------------------------------
# noise square (RVM Sec. 4.4, Fig. 6)

def noise_square_video(T=16, size=64, square=16, angle=0.0, speed=2.0, grain=1, color=False,
                       boundary="bounce", seed=0, start=None, lattice=None):
    """A white-noise square moving over a static white-noise background.

    angle: degrees, 0 = right, 90 = down. speed: pixels per frame; the square's
    top-left follows start + t * velocity exactly and is rounded to whole
    pixels each frame, with its texture rigidly attached. grain: texel side in
    pixels. lattice: the top-left snaps to multiples of it (default grain; a
    multiple of grain, so no texel edge is out of phase with the background's,
    a single-frame cue). color: independent noise per channel (else grey). boundary:
    "bounce" reflects the velocity at the borders, "wrap" is a torus (the square
    re-enters on the other side). start: (y, x) top-left, or None for random.
    Returns video (T, 3, H, W) float32 in [0, 1] and mask (T, H, W) bool.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1; got {T}")
    if not 0 < square < size:
        raise ValueError(f"square must be in [1, size={size}); got {square}")
    if grain < 1 or size % grain or square % grain:
        raise ValueError(f"grain={grain} must divide size={size} and square={square}")
    lattice = grain if lattice is None else lattice
    if lattice < 1 or lattice % grain or size % lattice:
        raise ValueError(f"lattice={lattice} must be a multiple of grain={grain} and divide size={size}")
    if boundary not in ("bounce", "wrap"):
        raise ValueError(f"boundary must be 'bounce' or 'wrap'; got {boundary!r}")
    if boundary == "bounce" and (size - square) % lattice:
        raise ValueError(f"bounce needs lattice={lattice} to divide size - square = {size - square}")
    g = generator(seed)
    channels = 3 if color else 1
    background = _noise(channels, size, grain, g)  # (C, H, W)
    texture = _noise(channels, square, grain, g)  # (C, S, S), same distribution: frames are pure noise
    room = size - square  # top-left positions 0..room keep the square inside
    if start is None:
        start = (uniform(g, 0, room), uniform(g, 0, room))
    vy, vx = speed * math.sin(math.radians(angle)), speed * math.cos(math.radians(angle))

    video = background.expand(T, -1, -1, -1).clone()  # (T, C, H, W)
    mask = torch.zeros(T, size, size, dtype=torch.bool)
    offsets = torch.arange(square)
    for t in range(T):
        y, x = start[0] + t * vy, start[1] + t * vx
        # positions snap to the lattice (multiples of the texel): a square off the texel lattice would show
        # texel edges out of phase with the background's, a single-frame cue that motion is meant to be
        if boundary == "bounce":
            y, x = lattice * _round(_fold(y, room) / lattice), lattice * _round(_fold(x, room) / lattice)
        else:
            y, x = lattice * _round(y / lattice) % size, lattice * _round(x / lattice) % size
        rows = ((y + offsets) % size)[:, None]  # % size: under "wrap" the square spills over the edge
        cols = ((x + offsets) % size)[None, :]
        video[t, :, rows, cols] = texture
        mask[t, rows, cols] = True
    video = video.expand(-1, 3, -1, -1).contiguous()  # (T, 3, H, W); grey: same value on 3 channels
    return video, mask


def noise_square_paper(T=16, size=64, seed=0):
    """The RVM paper's demo: a square of half the frame's side, centred vertically,
    moving right and wrapping so that it crosses the whole width once over the clip."""
    square = size // 2
    return noise_square_video(T=T, size=size, square=square, angle=0.0, speed=size / T,
                              boundary="wrap", seed=seed, start=((size - square) / 2, 0.0))


def noise_square_options(size):
    """The training world's noise-square options for a size x size frame, scaled
    to it (at 64 px, the tiny 8-px tokens): square size // 2, grain size // 16
    (4-px texels), lattice and speed size // 8, so the square steps one token a
    frame on each axis it moves on (a king's move) and its tokens are exactly
    tokens of the last frame one step back; grey; boundary "wrap" (a direction
    never changes). Sizes not divisible by 16 get per-pixel grain and lattice.
    Per-pixel noise kept the tiny models on the predict-the-mean plateau; one
    texel per token would leave a per-patch normalized target (SiamMAE,
    ViC-MAE) nothing to predict (docs/experiments.md)."""
    grain, lattice = (size // 16, size // 8) if size % 16 == 0 else (1, 1)   # both divide the square, size // 2
    return dict(square=size // 2, speed=lattice, grain=grain, lattice=lattice, color=False, boundary="wrap")


def noise_square_mix(size, g):
    """One draw from a distribution of noise-square worlds (so that a model learns to see any noise square, not its
    world's lattice): grain 1-8 px texels, the lattice = the grain (so the square moves on and off the token grid),
    speed 1/32-1/8 of the frame a frame (2-8 px at 64), wrap or bounce, a side of 3/8-5/8 of the frame. At sizes
    not divisible by 16: per-pixel grain. -> options for noise_square_along (grey, as the default world)."""
    grains = [1, 2, 4, 8] if size % 16 == 0 else [1]
    grain = grains[randint(g, len(grains))]
    square = [3 * size // 8, size // 2, 5 * size // 8][randint(g, 3)] // grain * grain
    speed = max(1, size // 32) * (1 + randint(g, 4))
    boundary = ("wrap", "bounce")[randint(g, 2)]
    return dict(square=square, speed=speed, grain=grain, lattice=grain, color=False, boundary=boundary)


def noise_square_along(T, size, direction, speed, seed, square, grain, lattice, color, boundary):
    """A noise-square video along DIRECTIONS[direction], moving `speed` px per frame
    on each axis it moves on (a diagonal: speed * sqrt(2) along the diagonal)."""
    angle = DIRECTIONS[direction]
    a = math.radians(angle)
    speed = speed / max(abs(math.cos(a)), abs(math.sin(a)))
    return noise_square_video(T=T, size=size, square=square, angle=angle, speed=speed, grain=grain,
                              lattice=lattice, color=color, boundary=boundary, seed=seed)


# -----------------------------------------------------------------------------
# moving shapes: the toy world's DAVIS

def _shape_alpha(kind, s):
    yy, xx = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")  # pixel centres
    if kind == "square":
        return torch.ones(s, s, dtype=torch.bool)
    if kind == "disc":
        return (yy - s / 2) ** 2 + (xx - s / 2) ** 2 <= (s / 2) ** 2
    return (xx - s / 2).abs() <= yy / 2  # triangle: apex at the top centre, base on the bottom row


PATTERN_PERIOD = 4   # pixels per cycle of the kinds' patterns (shapes_video(pattern=True)): two cycles a tiny token


def _pattern(kind, s, g, amplitude, period=PATTERN_PERIOD):
    """The kind's own texture (shapes_video(pattern=True)), a square wave of +-amplitude/2 at a random phase:
    square: horizontal stripes, disc: vertical stripes, triangle: a checkerboard. A horizontal flip (augment_clip)
    keeps each pattern. At a random phase every linear function of a patch's pixels has the same mean for the
    three (only second-order statistics, the direction of the local contrast, tell them apart). -> (s, s)."""
    yy, xx = torch.meshgrid(torch.arange(s) + uniform(g, 0, period), torch.arange(s) + uniform(g, 0, period),
                            indexing="ij")
    wave = lambda u: torch.where(u % period < period / 2, 1.0, -1.0)   # (s, s) +-1, half a period each
    p = wave(yy) if kind == "square" else wave(xx) if kind == "disc" else wave(yy) * wave(xx)
    return amplitude / 2 * p


def _random_shape(size, g, side, grain_amp, pattern=False):
    kind = SHAPE_KINDS[randint(g, len(SHAPE_KINDS))]
    s = side[0] + randint(g, side[1] - side[0] + 1)  # side of its bounding box
    colour = torch.rand(3, 1, 1, generator=g)
    if pattern:   # the kind's pattern, the same on every channel, over a random colour (not the kind's)
        texture = (0.2 + 0.6 * colour + _pattern(kind, s, g, grain_amp)).clamp(0, 1)   # (3, s, s)
    else:
        texture = (colour + grain_amp * (_noise(3, s, 2, g) - 0.5)).clamp(0, 1)  # (3, s, s): texture to track
    angle, speed = uniform(g, 0, 2 * math.pi), uniform(g, 0.5, 2.0)
    return dict(kind=kind, alpha=_shape_alpha(kind, s), texture=texture, side=s,
                start=(uniform(g, 0, size - s), uniform(g, 0, size - s)),
                velocity=(speed * math.sin(angle), speed * math.cos(angle)))


def _render_shapes(background, shapes, T, pixels=True):
    """-> video (T, 3, H, W) (None unless pixels) and the instance ids (T, H, W) of the front-most object."""
    size = background.shape[-1]
    video = background.expand(T, -1, -1, -1).clone() if pixels else None  # (T, 3, H, W)
    ids = torch.zeros(T, size, size, dtype=torch.int64)
    for t in range(T):
        for k, sh in enumerate(shapes, start=1):  # back to front: later shapes occlude earlier ones
            s, room = sh["side"], size - sh["side"]
            y = _round(_fold(sh["start"][0] + t * sh["velocity"][0], room))
            x = _round(_fold(sh["start"][1] + t * sh["velocity"][1], room))
            box = (slice(y, y + s), slice(x, x + s))
            if pixels:
                video[t, :, box[0], box[1]] = torch.where(sh["alpha"], sh["texture"], video[t, :, box[0], box[1]])
            ids[t, box[0], box[1]] = torch.where(sh["alpha"], k, ids[t, box[0], box[1]])
    return video, ids


def shapes_video(T=16, size=64, n_shapes=3, seed=0, min_visible=0.25, tries=50, side=None, texture=0.4,
                 with_kinds=False, pattern=False):
    """Textured shapes moving at constant velocity (bouncing at the borders) over a
    textured background, occluding each other in a fixed depth order.

    Layouts are redrawn (up to `tries` times, deterministically) until every
    shape shows at least `min_visible` of its area in every frame; otherwise the
    most visible layout is kept. side: (lo, hi) pixels of a shape's bounding box,
    default (size // 6, size // 3). texture: the amplitude of the grain on each shape's
    colour (and, times 3/4, on the background's). pattern: each kind wears its own pattern instead (`_pattern`:
    horizontal stripes, vertical stripes, a checkerboard; amplitude `texture`) over a colour drawn in the
    background's range, and the background's grain has the patterns' contrast (std texture / 2): neither colour,
    nor contrast, nor any linear function of a patch tells the kinds apart, only the direction of the local
    contrast (the claims' world: docs/experiments.md, "The pattern world").
    Returns video (T, 3, H, W) float32 in [0, 1]
    and instance_mask (T, H, W) int64: 0 background, 1..n_shapes front-most object; with_kinds:
    also kinds (n_shapes + 1,) int64, each instance's class, 0 background, 1 + SHAPE_KINDS index
    (so kinds[instance_mask] is the semantic map).
    """
    if T < 1 or n_shapes < 1 or size < 16:
        raise ValueError(f"need T >= 1, n_shapes >= 1, size >= 16; got T={T}, n_shapes={n_shapes}, size={size}")
    side = (size // 6, size // 3) if side is None else tuple(side)
    if len(side) != 2 or not 1 <= side[0] <= side[1] < size:
        raise ValueError(f"side must be (lo, hi) with 1 <= lo <= hi < size={size}; got {side}")
    g = generator(seed)
    smooth = F.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=(size, size), mode="bilinear")[0]  # (3, H, W)
    grain = math.sqrt(3) * texture if pattern else 0.75 * texture   # pattern: uniform grain of std texture / 2
    background = (0.2 + 0.6 * smooth + grain * (_noise(3, size, 2, g) - 0.5)).clamp(0, 1)
    best, best_visible = None, -1.0
    for _ in range(tries):
        shapes = [_random_shape(size, g, side, texture, pattern) for _ in range(n_shapes)]
        _, ids = _render_shapes(background, shapes, T, pixels=False)   # a layout's pixels only once it is kept
        frame_of = torch.arange(T)[:, None, None] * (n_shapes + 1)  # count ids per frame in one bincount
        counts = torch.bincount((ids + frame_of).flatten(), minlength=T * (n_shapes + 1)).view(T, n_shapes + 1)
        areas = torch.tensor([sh["alpha"].sum().item() for sh in shapes])
        visible = (counts[:, 1:] / areas).min().item()  # worst visible fraction over shapes and frames
        if visible > best_visible:
            kinds = torch.tensor([0] + [1 + SHAPE_KINDS.index(sh["kind"]) for sh in shapes])
            best, best_visible = (shapes, ids, kinds), visible
        if visible >= min_visible:
            break
    shapes, ids, kinds = best
    video = _render_shapes(background, shapes, T)[0]
    return (video, ids, kinds) if with_kinds else (video, ids)


def shapes_image(size=64, n_shapes=3, seed=0):
    """A still of the shapes world: image (3, H, W) and instance_mask (H, W)."""
    video, ids = shapes_video(T=1, size=size, n_shapes=n_shapes, seed=seed)
    return video[0], ids[0]


# -----------------------------------------------------------------------------
# held-out sets: seeds from EVAL_SEED upward, one block per probe (SEED_BLOCKS)

def noise_square_set(n, T, size, first_seed, square=None, **options):
    """n held-out noise-square videos of the training world (noise_square_options,
    overridden by `options`, e.g. a dataset's), without augmentation (the noise
    square is not augmented in training either) and at the middle of a speed
    range; video i moves along DIRECTIONS[i % 8] with seed first_seed + i.
    `square` overrides the side. -> videos (n, T, 3, H, W), masks (n, T, H, W),
    direction classes (n,)."""
    o, K = {**noise_square_options(size), **options}, len(DIRECTIONS)
    speed = o.pop("speed")
    speed = speed if isinstance(speed, (int, float)) else sum(speed) / 2
    o["square"] = square or o["square"]
    pairs = [noise_square_along(T, size, i % K, speed, first_seed + i, **o) for i in range(n)]
    return torch.stack([v for v, _ in pairs]), torch.stack([m for _, m in pairs]), torch.arange(n) % K


def shapes_set(n, T, size, first_seed, with_kinds=False, n_shapes=3, texture=0.4, side=None, pattern=False):
    """n held-out shapes videos (n, T, 3, H, W) and instance masks (n, T, H, W); with_kinds,
    also the semantic maps (n, T, H, W): 0 background, 1 + SHAPE_KINDS index of the object.
    n_shapes, texture, side, pattern: the world's options (data.SyntheticVideos), its defaults unless given."""
    items = [shapes_video(T=T, size=size, n_shapes=n_shapes, seed=first_seed + i, texture=texture, side=side,
                          with_kinds=True, pattern=pattern) for i in range(n)]
    videos, masks = torch.stack([v for v, _, _ in items]), torch.stack([m for _, m, _ in items])
    return (videos, masks, torch.stack([k[m] for _, m, k in items])) if with_kinds else (videos, masks)


def video_label(kinds):
    """Semantic maps (n, T, H, W) of one-shape videos (shapes_set(..., with_kinds=True, n_shapes=1)) -> the
    class of each video (n,): the SHAPE_KINDS index of the object its pixels show most."""
    counts = torch.stack([(kinds == 1 + c).flatten(1).sum(1) for c in range(len(SHAPE_KINDS))], 1)   # (n, kinds)
    if (counts.sum(1) == 0).any():
        raise ValueError("a video shows no shape: no class to give it")
    return counts.argmax(1)
