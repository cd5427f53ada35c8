"""Data: the toy world as datasets, a real-video reader, augmentation, loaders.

The toy world itself (noise square, moving shapes, their ground truth and the
held-out sets) is toyworld.py; `SyntheticVideos` makes a dataset of it.
Real data: `read_video` reads video files and folders of frames via imageio,
`read_clip` one clip of a video file by seeking (ffmpeg); `VideoFolder` turns a
directory of them into clips. ViC-MAE's images:
`StillImages`, mixed with videos by `Mixed`.

Datasets are endless and every item is a pure function of (seed, index): it
has its own `torch.Generator` (item_generator), so the same item comes out on
any rank, in any worker, in any order. `make_loader` maps (step, rank) to
indices, so the whole state of the data stream is the step number (exact
resume, DDP == one process).
"""

import math
import re
import signal
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

import runs
import toyworld
from toyworld import DIRECTIONS, generator, new_seed, randint, uniform

VIDEO_EXTS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".gif")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")  # frames of a frame folder, and still images
ENDLESS = 2**31 - 1  # __len__ of every dataset here: any index >= 0 is a valid item

# -----------------------------------------------------------------------------
# item seeds: one stream per (seed, index, salt)

# salts: a dataset's own items, Mixed's coin, and train.py's per-item frame sampling get independent
# streams even when all three use the run's seed
ITEM, COIN, SAMPLE = 0, 1, 2


def item_seed(seed, index, salt=ITEM):
    """A generator seed for item `index` of a stream seeded `seed`: a fixed
    odd-multiplier mix, so nearby (seed, index, salt) triples get unrelated streams."""
    return (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB + 1) % 2**63


def item_generator(seed, index, salt=ITEM):
    return generator(item_seed(seed, index, salt))


# -----------------------------------------------------------------------------
# reading real videos and images

def _natural_key(path):
    # "frame10.png" sorts after "frame9.png": digit runs compare as numbers
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def _to_rgb(frame, path):
    """(H, W[, C]) array of any imageio dtype -> (3, H, W) float32 in [0, 1]."""
    x = np.asarray(frame)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255
    elif x.dtype == np.uint16:
        x = x.astype(np.float32) / 65535
    else:
        x = x.astype(np.float32)  # bool or float frames are taken to be in [0, 1] already
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{path}: expected an (H, W) or (H, W, 1-4) frame; got shape {np.shape(frame)}")
    if x.shape[-1] in (2, 4):
        x = x[..., :-1]  # drop alpha (grey+alpha, RGBA)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)  # grey -> RGB
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).clamp(0, 1)  # (3, H, W)


def _pair(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def _interp(x, hw):
    """Bilinear antialiased resize of (..., C, H, W) to hw."""
    H, W = x.shape[-2:]
    if (H, W) == tuple(hw):
        return x
    shrink = hw[0] < H or hw[1] < W  # antialiasing only matters when shrinking, and costs ~4x
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=tuple(hw), mode="bilinear", antialias=shrink)
    return y.clamp(0, 1).reshape(*x.shape[:-2], *y.shape[-2:])  # clamp: float round-off may step outside [0, 1]


def _resize(x, size):
    """int: shorter side to `size`, then centre crop size x size; (H, W): resize to exactly that."""
    if not isinstance(size, int):
        return _interp(x, size)
    H, W = x.shape[-2:]
    h, w = max(size, round(H * size / min(H, W))), max(size, round(W * size / min(H, W)))
    top, left = (h - size) // 2, (w - size) // 2
    return _interp(x, (h, w))[..., top:top + size, left:left + size]


def frame_tensor(frame, path, size=None):
    """One decoded frame or image ((H, W[, C]) array of any imageio dtype) -> (3, H, W) float32 in [0, 1], resized
    to `size` as in read_video: what every reader here makes of a frame. `path` names the file in errors."""
    frame = _to_rgb(frame, path)
    return frame if size is None else _resize(frame, size)


def read_image(path, size=None):
    """Image file -> (3, H, W) float32 in [0, 1]; `size` as in read_video."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        frame = iio.imread(path, index=0, plugin="pillow")  # pillow reads jpg/png; no fallbacks to guess with
    except Exception as e:  # imageio raises OSError, ValueError, ... depending on the backend
        raise ValueError(f"cannot read image {path}: {runs.first_line(e)}") from e
    return frame_tensor(frame, path, size)


def read_video(path, size=None, max_frames=None, min_frames=None):
    """Video file (.mp4 .webm .avi .mov .mkv .gif) or folder of .jpg/.jpeg/.png frames
    (natural name order) -> (T, 3, H, W) float32 in [0, 1].

    size: None (as stored), an int (shorter side to size, then centre crop to
    size x size) or (H, W). max_frames: read at most this many frames.
    min_frames: raise ValueError if the video has fewer frames.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video file or frame folder at {path}")
    if max_frames is not None and min_frames is not None and max_frames < min_frames:
        raise ValueError(f"max_frames={max_frames} < min_frames={min_frames}")
    frames = []
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTS), key=_natural_key)
        if not files:
            raise ValueError(f"frame folder {path} has no {'/'.join(IMAGE_EXTS)} frames")
        frames = [read_image(f, size) for f in files[:max_frames]]
        if len({f.shape for f in frames}) > 1:
            raise ValueError(f"frames in {path} differ in size: {sorted({tuple(f.shape) for f in frames})}")
    elif path.suffix.lower() in VIDEO_EXTS:
        try:
            for frame in iio.imiter(path):
                # resize as we go: a long HD video never sits in memory at full resolution
                frames.append(frame_tensor(frame, path, size))
                if len(frames) == max_frames:
                    break
        except Exception as e:  # the backends raise OSError, ValueError, RuntimeError...
            raise ValueError(f"cannot read video {path}: {runs.first_line(e)}") from e
    else:
        raise ValueError(f"unsupported file {path}: expected a video ({' '.join(VIDEO_EXTS)}) "
                         f"or a folder of {' '.join(IMAGE_EXTS)} frames")
    if len(frames) < max(1, min_frames or 0):
        raise ValueError(f"video {path} has {len(frames)} frames, need at least {max(1, min_frames or 0)}")
    return torch.stack(frames)  # (T, 3, H, W)


def video_info(path):
    """A video file's frame count and frame rate from its header (ffmpeg reads the container, decodes nothing):
    -> (frames, fps). The count is duration x fps, which a variable frame rate makes approximate: read_clip says
    when a clip runs past the real end. Raises ValueError for a file ffmpeg cannot open."""
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
        fps, duration = float(meta["fps"]), float(meta["duration"])
    except Exception as e:  # imageio_ffmpeg raises OSError, RuntimeError, ... and a header without fps KeyError
        raise ValueError(f"cannot read video {path}: {runs.first_line(e)}") from e
    if not (fps > 0 and duration > 0 and math.isfinite(fps * duration)):
        raise ValueError(f"cannot read video {path}: no frame rate or duration in its header")
    return int(duration * fps + 1e-6), fps


def read_clip(path, start, num_frames, size=None, fps=None):
    """Frames [start, start + num_frames) of a video file, or fewer where the video ends first -> (n, 3, H, W)
    float32 in [0, 1]; `size` as in read_video. ffmpeg's input seeking (`-ss` before `-i`) jumps to the key frame
    at or before the first frame's time and decodes from there, dropping the frames before it, and `-frames:v`
    stops it after the clip: a clip late in a long video costs a key-frame interval of decoding, not the whole
    video before it. The seek time is half a frame before the frame's timestamp, so rounding never skips it.
    `-fps_mode passthrough` hands on the decoded frames as they are: ffmpeg's default for a pipe (constant frame
    rate) repeated the first frame of a clip after a seek in a video with an audio track (the clip one frame late).
    The option needs ffmpeg 5.1 or later, as imageio-ffmpeg ships it."""
    if start < 0 or num_frames < 1:
        raise ValueError(f"a clip needs start >= 0 and num_frames >= 1; got {start}, {num_frames}")
    fps = fps or video_info(path)[1]
    seek = ["-ss", f"{(start - 0.5) / fps:.6f}"] if start > 0 else []
    try:
        reader = imageio_ffmpeg.read_frames(str(path), input_params=seek,
                                            output_params=["-frames:v", str(num_frames), "-fps_mode", "passthrough"])
        w, h = next(reader)["size"]
        frames = [frame_tensor(np.frombuffer(raw, np.uint8).reshape(h, w, 3), path, size) for raw in reader]
    except Exception as e:  # as read_video: the backends raise OSError, RuntimeError, ...
        raise ValueError(f"cannot read video {path}: {runs.first_line(e)}") from e
    if not frames:
        raise ValueError(f"video {path} has no frame {start}")
    return torch.stack(frames)  # (n, 3, H, W)


# -----------------------------------------------------------------------------
# augmentation (torch only)

def _crop_box(H, W, scale, ratio, g):
    """torchvision's RandomResizedCrop rule: a box with a random fraction `scale` of
    the area and a log-uniform aspect ratio in `ratio`; after 10 misses, the
    largest centred box with a legal ratio."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        area = H * W * uniform(g, *scale)
        r = math.exp(uniform(g, *log_ratio))
        w, h = round(math.sqrt(area * r)), round(math.sqrt(area / r))
        if 0 < w <= W and 0 < h <= H:
            return randint(g, H - h + 1), randint(g, W - w + 1), h, w
    h, w = H, W
    if W / H < ratio[0]:
        h = round(W / ratio[0])
    elif W / H > ratio[1]:
        w = round(H * ratio[1])
    return (H - h) // 2, (W - w) // 2, h, w


def augment_clip(clip, generator, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), flip=True, out_size=None, masks=None):
    """Random resized crop + horizontal flip, the SAME for every frame of a clip
    (T, 3, H, W), as in SiamMAE and RVM: one box for all frames keeps the motion
    intact. masks (T, H, W), if given, get the same crop (nearest) and flip and
    (clip, masks) is returned. out_size: int or (H, W); default the input size."""
    if clip.ndim != 4 or clip.shape[1] != 3:
        raise ValueError(f"clip must be (T, 3, H, W); got {tuple(clip.shape)}")
    _, _, H, W = clip.shape
    out = (H, W) if out_size is None else _pair(out_size)
    top, left, h, w = _crop_box(H, W, scale, ratio, generator)
    flip = flip and torch.rand((), generator=generator).item() < 0.5
    clip = _interp(clip[..., top:top + h, left:left + w], out)  # (T, 3, *out)
    if flip:
        clip = clip.flip(-1)
    if masks is None:
        return clip
    m = masks[:, None, top:top + h, left:left + w].float()  # (T, 1, h, w)
    # nearest because labels must not blend; "-exact" samples pixel centres, like the bilinear resize above
    m = F.interpolate(m, size=out, mode="nearest-exact")[:, 0].to(masks.dtype)  # (T, *out)
    return clip, (m.flip(-1) if flip else m)


def _grey(x):
    return (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]  # (1, H, W), ITU-R 601 luma


def _color_jitter(x, g, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1):
    # fixed order (torchvision shuffles it); each factor is uniform in [1 - a, 1 + a]
    x = (x * uniform(g, 1 - brightness, 1 + brightness)).clamp(0, 1)
    mean = _grey(x).mean()
    x = ((x - mean) * uniform(g, 1 - contrast, 1 + contrast) + mean).clamp(0, 1)
    grey = _grey(x)
    x = ((x - grey) * uniform(g, 1 - saturation, 1 + saturation) + grey).clamp(0, 1)
    # hue: rotate the chroma plane (I, Q) of YIQ around the luma axis, a linear
    # stand-in for torchvision's HSV hue shift by a fraction of the colour wheel
    theta = uniform(g, -hue, hue) * 2 * math.pi
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    c, s = math.cos(theta), math.sin(theta)
    rotate = torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    m = torch.linalg.inv(to_yiq) @ rotate @ to_yiq
    return torch.einsum("ij,jhw->ihw", m, x).clamp(0, 1)


def _gaussian_blur(x, sigma):
    """Separable Gaussian blur of (3, H, W); kernel ~10% of the image side (SimCLR)."""
    r = max(1, x.shape[-1] // 20)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x[None], (r, r, 0, 0), mode="reflect")  # (1, 3, H, W + 2r)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)  # along W -> (1, 3, H, W)
    x = F.pad(x, (0, 0, r, r), mode="reflect")  # (1, 3, H + 2r, W)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)[0]  # along H -> (3, H, W)


def augment_image(image, generator, out_size=None):
    """Strong augmentation of a still image (3, H, W), as ViC-MAE uses for images
    (the SimCLR / MoCo v2 recipe): random resized crop (scale 0.2-1), flip,
    colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with p=0.8,
    grey-scale with p=0.2, Gaussian blur (sigma 0.1-2) with p=0.5. Output in [0, 1]."""
    g = generator
    x = augment_clip(image[None], g, scale=(0.2, 1.0), out_size=out_size)[0]  # (3, *out)
    if uniform(g, 0, 1) < 0.8:
        x = _color_jitter(x, g)
    if uniform(g, 0, 1) < 0.2:
        x = _grey(x).expand(3, -1, -1)
    if uniform(g, 0, 1) < 0.5:
        x = _gaussian_blur(x, uniform(g, 0.1, 2.0))
    return x.clamp(0, 1).contiguous()


# -----------------------------------------------------------------------------
# datasets: endless, item i is a pure function of (seed, i)

def _item(video, mask, index, direction=-1, is_image=False):
    # every dataset returns exactly these keys, so any mix of them collates
    return {"video": video, "mask": mask.long(), "index": torch.tensor(index),
            "direction": torch.tensor(direction), "is_image": torch.tensor(is_image)}


class _Endless(Dataset):
    """Base: any index >= 0 is valid and builds its item from its own generator."""

    def __len__(self):
        return ENDLESS

    def __getitem__(self, index):
        index = int(index)
        if index < 0:
            raise IndexError(f"index must be >= 0; got {index}")
        return self.item(index, item_generator(self.seed, index))


def world_spec(spec, size):
    """train.py's --data: "KIND:key=value:key=value" for a toy world (SyntheticVideos.KINDS) -> (KIND, its
    options typed by their defaults, e.g. ("shapes", {"texture": 0.0})); any other spec -> (spec, {})."""
    kind, _, text = spec.partition(":")
    if kind not in SyntheticVideos.KINDS:
        return spec, {}
    defaults, options = SyntheticVideos.defaults(kind, size), {}
    for item in filter(None, text.split(":")):
        key, sep, value = item.partition("=")
        if not sep or key not in defaults:
            raise ValueError(f"{kind} options are key=value with key one of {', '.join(defaults)}; got {item!r}")
        options[key] = runs.parse_value(key, value, defaults[key])   # typed as train.py's --set
    return kind, options


class SyntheticVideos(_Endless):
    """Toy-world clips (toyworld.py): kind "noise_square" or "shapes".

    noise_square options: toyworld.noise_square_options(size) (square, speed,
    grain, lattice, color, boundary), each overridable; speed may be a (lo, hi)
    range; mix=True draws every clip's world from toyworld.noise_square_mix
    instead. Items draw a direction from DIRECTIONS (returned as "direction") and
    a start. shapes options: n_shapes (3), texture (0.4: the grain's amplitude,
    toyworld.shapes_video; 0 = plain colours), side (lo, hi: the pixels of a
    shape's bounding box, default size // 6, size // 3; shapes:side=24,40 makes
    shapes that fill the frame), pattern (False; True: each kind wears its own
    pattern, stripes or a checkerboard, told apart by no linear function of
    the pixels, toyworld._pattern). augment: augment_clip on video and mask; None =
    on for shapes, off for the noise square (a crop would leave the lattice).
    """
    KINDS = ("noise_square", "shapes")

    def __init__(self, kind, clip_len, size, seed=0, augment=None, **kwargs):
        if kind not in self.KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose from {self.KINDS}")
        augment = kind != "noise_square" if augment is None else augment
        defaults = self.defaults(kind, size)
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise ValueError(f"unknown options {unknown} for kind {kind!r}; valid: {sorted(defaults)}")
        self.kind, self.clip_len, self.size, self.seed, self.augment = kind, clip_len, size, seed, augment
        self.options = {**defaults, **kwargs}
        self[0]  # bad options fail here, in the main process, not later in a loader worker

    @staticmethod
    def defaults(kind, size):
        """The world's options and their default values (each may be overridden). noise_square's mix: every clip
        from its own world, toyworld.noise_square_mix (the other options then do not apply)."""
        if kind == "noise_square":
            return {**toyworld.noise_square_options(size), "mix": False}
        return dict(n_shapes=3, texture=0.4, side=(size // 6, size // 3), pattern=False)

    def noise_square(self, T, direction, speed, seed, square=None):
        """One noise-square video with these options along DIRECTIONS[direction] (toyworld.noise_square_along)."""
        if self.kind != "noise_square":
            raise ValueError(f"noise_square() needs kind 'noise_square'; this dataset is {self.kind!r}")
        o = {**self.options, "square": square or self.options["square"]}
        del o["speed"], o["mix"]
        return toyworld.noise_square_along(T, self.size, direction, speed, seed, **o)

    def item(self, index, g):
        o, direction = self.options, -1
        if self.kind == "noise_square" and o["mix"]:   # a world of its own (its draws only when mixing)
            direction, world = randint(g, len(DIRECTIONS)), toyworld.noise_square_mix(self.size, g)
            speed = world.pop("speed")
            video, mask = toyworld.noise_square_along(self.clip_len, self.size, direction, speed, new_seed(g), **world)
        elif self.kind == "noise_square":
            direction = randint(g, len(DIRECTIONS))
            speed = o["speed"] if isinstance(o["speed"], (int, float)) else uniform(g, *o["speed"])
            video, mask = self.noise_square(self.clip_len, direction, speed, new_seed(g))
        else:
            video, mask = toyworld.shapes_video(T=self.clip_len, size=self.size, seed=new_seed(g), **o)
        if self.augment:
            # no flip for the noise square: a mirrored clip is just another direction,
            # already sampled uniformly, and flipping would falsify the direction label
            video, mask = augment_clip(video, g, out_size=self.size, masks=mask, flip=self.kind != "noise_square")
        return _item(video, mask, index, direction)


class StillImages(_Endless):
    """ViC-MAE's image branch: images as two strongly augmented views.

    Each item takes an image (a toyworld.shapes_image, or a random .jpg/.png under `root`)
    and makes two views with augment_image. They are returned as a clip of
    `clip_len` frames: the first half is view A, the second half view B. So a
    method that draws one frame from each half of a clip (ViC-MAE's distant
    sampling) gets the two views, and images batch with video clips of the
    same length. The item has "is_image" True, a zero mask and direction -1.
    """

    def __init__(self, clip_len, size, seed=0, root=None, n_shapes=3):
        if clip_len < 2:
            raise ValueError(f"clip_len must be >= 2 to hold two views; got {clip_len}")
        self.clip_len, self.size, self.seed, self.n_shapes, self.files = clip_len, size, seed, n_shapes, None
        if root is not None:
            root = Path(root)
            if not root.is_dir():
                raise FileNotFoundError(f"no image folder at {root}")
            self.files = sorted(f for f in root.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
            if not self.files:
                raise ValueError(f"no {'/'.join(IMAGE_EXTS)} images under {root}")

    def item(self, index, g):
        if self.files is None:
            image, _ = toyworld.shapes_image(self.size, self.n_shapes, seed=new_seed(g))
        else:  # read at twice the output size so that small crops keep some detail
            image = read_image(self.files[randint(g, len(self.files))], size=2 * self.size)
        a, b = augment_image(image, g, self.size), augment_image(image, g, self.size)  # (3, H, W) each
        half = self.clip_len // 2
        video = torch.cat([a.expand(half, -1, -1, -1), b.expand(self.clip_len - half, -1, -1, -1)])  # (T, 3, H, W)
        return _item(video, torch.zeros(self.clip_len, *video.shape[-2:]), index, is_image=True)


class Mixed(_Endless):
    """Item i comes from `images` with probability image_fraction (a coin drawn
    from (seed, i)), else from `videos`; the chosen dataset builds its item i."""

    def __init__(self, videos, images, image_fraction, seed=0):
        if not 0 <= image_fraction <= 1:
            raise ValueError(f"image_fraction must be in [0, 1]; got {image_fraction}")
        for attr in ("clip_len", "size"):
            a, b = getattr(videos, attr, None), getattr(images, attr, None)
            if a is not None and b is not None and a != b:
                raise ValueError(f"videos and images must share {attr} to batch together; got {a} and {b}")
        self.videos, self.images, self.image_fraction, self.seed = videos, images, image_fraction, seed
        self.clip_len, self.size = getattr(videos, "clip_len", None), getattr(videos, "size", None)

    def __getitem__(self, index):
        if index < 0:
            raise IndexError(f"index must be >= 0; got {index}")
        coin = torch.rand((), generator=item_generator(self.seed, index, COIN)).item()
        return (self.images if coin < self.image_fraction else self.videos)[index]


def _find_videos(root, exts):
    if root.is_file():
        return [root]
    found = []
    for p in [root, *root.rglob("*")]:
        if p.is_file() and p.suffix.lower() in exts:
            found.append(p)
        elif p.is_dir() and any(f.suffix.lower() in IMAGE_EXTS for f in p.iterdir() if f.is_file()):
            found.append(p)  # a folder of frames
    return sorted(found)


class VideoFolder(_Endless):
    """Clips of `clip_len` consecutive frames from the videos under `root`.

    Finds every video file (`exts`) and every folder of .jpg/.png frames under
    `root` (recursively; root may also be a single video). A video file (not a
    GIF) is indexed from its header (video_info: frame count and rate, nothing
    decoded) and each item's clip is read by seeking to it (read_clip), so a
    16-frame clip of a 10-minute video decodes about a key-frame interval, not
    the video, and a folder of long videos is not held in memory. GIFs and frame
    folders are read once at `size` and kept as uint8. At most the first
    `max_frames` frames of each are used. Unreadable and too-short videos are
    skipped, listed in `self.skipped` as (path, reason), and reported. Item i: a
    random clip of a random video, from (seed, i).
    """

    def __init__(self, root, clip_len, size, seed=0, augment=True, exts=VIDEO_EXTS, max_frames=None):
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no video folder or file at {root}")
        self.clip_len, self.size, self.seed, self.augment = clip_len, size, seed, augment
        self.videos, self.paths, self.skipped = [], [], []
        sources = _find_videos(root, tuple(e.lower() for e in exts))
        for i, path in enumerate(sources):
            if len(sources) > 20 and i % 20 == 0:
                print(f"VideoFolder: reading {i + 1}/{len(sources)} under {root}", flush=True)
            try:
                if path.is_file() and path.suffix.lower() != ".gif":   # streamed: (path, frames, fps)
                    frames, fps = video_info(path)
                    frames = frames if max_frames is None else min(frames, max_frames)
                    if frames < clip_len:
                        raise ValueError(f"video {path} has {frames} frames, need at least {clip_len}")
                    self.videos.append((path, frames, fps))
                else:
                    video = read_video(path, size=size, max_frames=max_frames, min_frames=clip_len)
                    self.videos.append((video * 255).round().to(torch.uint8))  # 4x less memory than float32
            except ValueError as e:
                self.skipped.append((str(path), str(e)))
                continue
            self.paths.append(path)
        reasons = "\n".join(f"  {p}: {why}" for p, why in self.skipped)
        if not self.videos:
            looked_for = f"no {' '.join(exts)} files or frame folders found"
            raise ValueError(f"no usable video under {root}:\n{reasons or '  ' + looked_for}")
        if self.skipped:
            print(f"warning: VideoFolder skipped {len(self.skipped)} of {len(sources)} videos:\n{reasons}", flush=True)

    def item(self, index, g):
        video = self.videos[randint(g, len(self.videos))]
        streamed = isinstance(video, tuple)
        start = randint(g, (video[1] if streamed else len(video)) - self.clip_len + 1)
        # (T, 3, H, W)
        clip = self._read(video, start) if streamed else video[start:start + self.clip_len].float() / 255
        if self.augment:
            clip = augment_clip(clip, g, out_size=self.size)
        return _item(clip, torch.zeros(self.clip_len, *clip.shape[-2:]), index)

    def _read(self, video, start):
        """The clip at `start` of a streamed video. Its header's frame count can overshoot the real end (a variable
        frame rate): a clip that comes back short is read again so that it ends at the last frame."""
        path, _, fps = video
        clip = read_clip(path, start, self.clip_len, self.size, fps)
        if len(clip) < self.clip_len:
            end = start + len(clip)
            if end < self.clip_len:
                raise ValueError(f"video {path} ends at frame {end}, before the {self.clip_len} frames of a clip")
            clip = read_clip(path, end - self.clip_len, self.clip_len, self.size, fps)
        return clip


# -----------------------------------------------------------------------------
# loader: the data stream's state is just the step

class _StepSampler(Sampler):
    """Endless batch sampler: step s on rank r gets indices
    [(s * world_size + r) * B, (s * world_size + r + 1) * B)."""

    def __init__(self, batch_size, rank, world_size, start_step):
        self.batch_size, self.rank, self.world_size, self.start_step = batch_size, rank, world_size, start_step

    def __iter__(self):
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1


class _Transformed(Dataset):
    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __getitem__(self, index):
        return self.transform(self.dataset[index], index)


def make_loader(dataset, batch_size, rank=0, world_size=1, workers=0, start_step=0, seed=0, transform=None):
    """Endless iterator of collated batches (dicts of stacked tensors).

    Step s on rank r gets dataset indices [(s * world_size + r) * batch_size, ...
    + batch_size). The ranks of step s together hold exactly the indices one
    process with batch_size * world_size gets at step s, in rank order: DDP sees
    the same data as one process, and resuming at step s (start_step=s) replays
    the stream exactly. transform(item, index) -> item runs per item inside the
    worker (e.g. a method's frame sampling with a generator seeded from index);
    it must not use global RNG state, which differs between workers. `seed`
    seeds the DataLoader's workers (their torch/random/numpy global RNG).
    workers=0 loads in this process; workers > 0 gives identical batches.
    """
    if batch_size < 1 or not 0 <= rank < world_size or start_step < 0:
        raise ValueError(f"need batch_size >= 1, 0 <= rank < world_size, start_step >= 0; "
                         f"got {batch_size}, {rank}, {world_size}, {start_step}")
    if transform is not None:
        dataset = _Transformed(dataset, transform)
    loader = DataLoader(dataset, batch_sampler=_StepSampler(batch_size, rank, world_size, start_step),
                        num_workers=workers, generator=torch.Generator().manual_seed(seed),
                        pin_memory=torch.cuda.is_available(), worker_init_fn=_leave_ctrl_c_to_main)
    return iter(loader)


def _leave_ctrl_c_to_main(worker_id):
    """Loader workers ignore Ctrl-C: the main process gets it, saves a
    checkpoint with the batches already in flight, and then stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
