"""DAVIS-2017 video object segmentation by label propagation: the J&F every paper in this family reports.

    python davis.py --make-fixture runs/davis-toy        # a DAVIS-format toy dataset, to try the command
    python evaluate.py --davis runs/davis-toy --ckpt runs/rvm-tiny/ckpt.pt --davis-size 64,64 --out results/davis
    python evaluate.py --davis DAVIS --ckpt CKPT [--ckpt ...] --lp-protocol rvm --out results/davis   # the real one

The task (Pont-Tuset et al. 2017, semi-supervised): the first frame's object masks are given; predict every later
frame's. A self-supervised model is never trained for it: its frozen features carry the first frame's labels forward
by affinity (label propagation, metrics.label_propagation), and the predicted masks are scored per object with

* J, the region similarity: the IoU of the predicted and true masks (1 where both are empty);
* F, the boundary measure: the F-score of the masks' boundaries matched within 0.008 of the image diagonal
  (metrics.boundary_F, the definition of davisvideochallenge/davis2017-evaluation),

each averaged over the frames between the first (given) and the last (excluded by that evaluation), then over all
objects of all sequences; J&F-Mean is their mean.

One sequence goes through four steps (`segment`, `score_sequence`):
1. its frames are resized to a processing size (480 x 880 by default, RVM's notebook; --davis-size for a tiny model),
   and the model turns them into features (T, h, w, D) on the h x w token grid;
2. the first frame's mask becomes soft labels on that grid, one channel per id it shows (`first_labels`);
3. label propagation carries them through the video, under one of two protocols (`--lp-protocol`):
   - dino: DINO's eval_video_segmentation.py, the one SiamMAE (App. A) and CropMAE report: the queue of past frames
     starts empty, a square neighbourhood restricts every context frame, each label's map is min-max normalized
     before the argmax, and the first mask is sampled to the grid by nearest neighbour;
   - rvm: RVM's official evaluation notebook (google-deepmind/representations4d): the queue starts filled with 20
     copies of the first frame, a disc neighbourhood restricts the queue frames but not the first frame, the argmax
     takes the labels as they are, and the first mask is one-hot at the processing size, then resized bilinearly;
   both with SiamMAE's DAVIS settings (App. A Table 4b: queue 20, top-k 7, neighbourhood 20 tokens), which are
   also the notebook's, and the notebook's temperature 0.7 (SiamMAE gives none; DINO's code divides by 0.1):
   `LP_SETTINGS`;
4. the soft labels are upsampled bilinearly to the processing size, the argmax taken, and the label map resized back
   to the frame's own size (nearest), where it is scored.

Objects are the ids the first frame's annotation shows (the official code counts 1 .. its largest id, the same set
on DAVIS-2017, whose ids are consecutive); 255 (void) counts as background, as the official code has it for this
task. The layout read is the one DAVIS-2017 is distributed in: JPEGImages/480p/<seq>/*.jpg,
Annotations/480p/<seq>/*.png (palette PNGs, pixel value = object id), ImageSets/2017/val.txt.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import methods
import metrics
import runs
import toyworld
import vit

FRAMES, MASKS, SPLITS = "JPEGImages/480p", "Annotations/480p", "ImageSets/2017"
LP_SETTINGS = dict(n_context=20, topk=7, radius=20, temperature=0.7)   # SiamMAE App. A Table 4b; RVM's notebook
DEFAULT_SIZE = (480, 880)                                              # RVM's notebook's processing size
VOID = 255                                                             # DAVIS's "void" id


def palette():
    """The DAVIS (= PASCAL VOC) palette, 256 RGB colours as one flat list: id i's colour spreads the bits of i over
    the high bits of R, G and B in turn (0 black, 1 dark red, 2 dark green, 3 olive, ...)."""
    colours = []
    for i in range(256):
        rgb, c = [0, 0, 0], i
        for bit in range(7, -1, -1):                   # the lowest three bits of i land in the highest bit of R, G, B
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << bit
            c >>= 3
        colours += rgb
    return colours


# ----------------------------------------------------------------------------
# the dataset on disk


def index(root, split="val", only=None):
    """The sequences of `split` under `root` -> [(name, frame paths, annotation paths)], checked before any work:
    a missing folder or file list, a sequence without frames or without one annotation per frame is a ValueError
    naming it. only: the first `only` sequences."""
    if not os.path.isdir(root):
        raise ValueError(f"--davis {root}: no such folder")
    listing = os.path.join(root, SPLITS, f"{split}.txt")
    if not os.path.isfile(listing):
        raise ValueError(f"--davis {root}: no {SPLITS}/{split}.txt (the DAVIS-2017 layout: {FRAMES}/<seq>/*.jpg, "
                         f"{MASKS}/<seq>/*.png, {SPLITS}/{split}.txt)")
    with open(listing) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"{listing} lists no sequence")
    out = []
    for name in names[:only]:
        frames_dir, masks_dir = os.path.join(root, FRAMES, name), os.path.join(root, MASKS, name)
        frames = sorted(f for f in os.listdir(frames_dir) if f.endswith(".jpg")) if os.path.isdir(frames_dir) else []
        masks = sorted(f for f in os.listdir(masks_dir) if f.endswith(".png")) if os.path.isdir(masks_dir) else []
        if not frames:
            raise ValueError(f"sequence {name}: no frames in {frames_dir}")
        if not masks:
            raise ValueError(f"sequence {name}: no annotations in {masks_dir}")
        missing = sorted({os.path.splitext(f)[0] for f in frames} - {os.path.splitext(m)[0] for m in masks})
        if missing:
            raise ValueError(f"sequence {name}: {len(missing)} frames without an annotation in {masks_dir} "
                             f"(first: {missing[0]}.png)")
        if len(frames) < 3:
            raise ValueError(f"sequence {name} has {len(frames)} frames; DAVIS scores frames 1 .. T-2, so it needs 3")
        frames = [os.path.join(frames_dir, f) for f in frames]
        masks = [os.path.join(masks_dir, os.path.splitext(os.path.basename(f))[0] + ".png") for f in frames]
        check_headers(name, frames, masks)
        out.append((name, frames, masks))
    return out


def check_headers(name, frame_paths, mask_paths):
    """Every image of a sequence opens, all of one size, and every annotation is a palette (or grey) PNG of ids:
    read from the files' headers only, so a broken sequence stops the command before any work, not midway."""
    sizes = set()
    for p in frame_paths + mask_paths:
        try:
            with Image.open(p) as img:
                sizes.add(img.size)
                mode = img.mode
        except OSError as e:
            raise ValueError(f"sequence {name}: {p} does not open as an image ({runs.first_line(e)})") from None
        if p in mask_paths and mode not in ("P", "L"):
            raise ValueError(f"sequence {name}: {p} is a {mode} image, not a palette PNG of object ids")
    if len(sizes) > 1:
        raise ValueError(f"sequence {name}: frames and annotations of different sizes {sorted(sizes)}")


def read_sequence(name, frame_paths, mask_paths):
    """-> frames (T, H, W, 3) uint8 and annotations (T, H, W) int64, object ids as stored in the palette PNGs."""
    try:
        frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in frame_paths])
        masks = []
        for p in mask_paths:
            img = Image.open(p)
            if img.mode not in ("P", "L"):
                raise ValueError(f"{p} is a {img.mode} image, not a palette PNG of object ids")
            masks.append(np.asarray(img))
        masks = np.stack(masks)
    except (OSError, ValueError) as e:   # a broken file, or frames of different sizes (np.stack)
        raise ValueError(f"sequence {name}: {runs.first_line(e)}") from None
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"sequence {name}: annotations of size {masks.shape[1:]} for frames of {frames.shape[1:3]}")
    return torch.from_numpy(frames), torch.from_numpy(masks.astype(np.int64))


def write_sequence(root, name, frames, masks, quality=95):
    """Write one sequence in the DAVIS layout: frames (T, H, W, 3) uint8 as JPEGs, masks (T, H, W) ids as palette
    PNGs, named 00000, 00001, ..."""
    for sub in (FRAMES, MASKS):
        os.makedirs(os.path.join(root, sub, name), exist_ok=True)
    for t in range(len(frames)):
        Image.fromarray(frames[t].numpy()).save(os.path.join(root, FRAMES, name, f"{t:05d}.jpg"), quality=quality,
                                                subsampling=0)   # full-resolution colour: the toy world's grain
        png = Image.fromarray(masks[t].numpy().astype(np.uint8))   # mode L ...
        png.putpalette(palette())                                  # ... becomes P: the ids, drawn in DAVIS colours
        png.save(os.path.join(root, MASKS, name, f"{t:05d}.png"))


# ----------------------------------------------------------------------------
# a DAVIS-format toy dataset (tests, and a first run without DAVIS)


def _exiting_square(video, ids, new_id, side, g):
    """Paint a textured square in front of everything, entering at the left third and sliding right until it has
    left the frame by two thirds of the video; its pixels get `new_id`. video (T, 3, H, W), ids (T, H, W)."""
    T, _, H, W = video.shape
    texture = (torch.rand(3, 1, 1, generator=g) + 0.3 * (torch.rand(3, side, side, generator=g) - 0.5)).clamp(0, 1)
    top, speed = (H - side) // 2, (W - W // 3 + 1) / max(1, (2 * T) // 3)   # gone (x >= W) by frame 2T/3
    for t in range(T):
        x = W // 3 + round(t * speed)
        if x < W:
            right = min(W, x + side)
            video[t, :, top:top + side, x:right] = texture[:, :, :right - x]
            ids[t, top:top + side, x:right] = new_id


FIXTURE = [   # (name, shapes drawn by toyworld, the ids they get in order, an exiting square's id or None)
    ("toy-one", 1, [1], None),
    ("toy-gaps", 2, [2, 5], None),      # non-consecutive ids
    ("toy-leaves", 2, [1, 2], 3),       # three objects, the third leaves the frame
]


def make_fixture(root, frames=16, width=96, height=72, seed=0):
    """A small dataset in the DAVIS-2017 layout from the toy world's shapes videos (toyworld.shapes_video, drawn at
    width x width and cropped to height rows, so frames are not square as DAVIS's are not): FIXTURE's sequences,
    1-3 objects each, one with non-consecutive ids, one with an object that leaves the frame. Seeds are tried from
    `seed` up until every object shows in the crop's first frame (it could not be propagated otherwise).
    Returns {name: (frames (T, H, W, 3) uint8, annotations (T, H, W) int64)}, what was written."""
    g, written = torch.Generator().manual_seed(seed), {}
    top = (width - height) // 2
    for i, (name, n_shapes, new_ids, exiting) in enumerate(FIXTURE):
        s = seed + 1000 * i
        while True:
            video, ids = toyworld.shapes_video(T=frames, size=width, n_shapes=n_shapes, seed=s)
            video, ids = video[:, :, top:top + height].clone(), ids[:, top:top + height].clone()
            remapped = torch.zeros_like(ids)
            for k, new in enumerate(new_ids, start=1):
                remapped[ids == k] = new
            if exiting is not None:
                _exiting_square(video, remapped, exiting, height // 4, g)
            if all((remapped[0] == k).sum() >= 20 for k in new_ids + [exiting] if k is not None):
                break
            s += 1
        pixels = (video.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)   # (T, H, W, 3)
        write_sequence(root, name, pixels, remapped)
        written[name] = (pixels, remapped)
    os.makedirs(os.path.join(root, SPLITS), exist_ok=True)
    with open(os.path.join(root, SPLITS, "val.txt"), "w") as f:
        f.write("".join(name + "\n" for name in written))
    return written


# ----------------------------------------------------------------------------
# one sequence: features, propagation, scores


def resize_labels(labels, size, mode):
    """Label maps (..., H, W) int -> (..., size) by `mode`: "nearest-exact" samples each output pixel's centre
    (PIL's NEAREST, cv2's INTER_NEAREST_EXACT); "nearest" the pixel at its top-left corner (cv2's INTER_NEAREST)."""
    lead = labels.shape[:-2]
    x = labels.reshape(-1, 1, *labels.shape[-2:]).float()
    return F.interpolate(x, size=tuple(size), mode=mode).round().long().reshape(*lead, *size)


def first_labels(mask, ids, grid, size, protocol):
    """The first frame's annotation (H, W) -> soft labels (h, w, C) on the token grid, channel c = ids[c].
    dino (DINO's read_seg): the annotation sampled at the grid by nearest neighbour, one-hot.
    rvm (the notebook's mask2heatmap): resized to the processing size (nearest), one-hot, then resized to the grid
    bilinearly, so a token on an object's edge carries a mix of labels."""
    if protocol == "dino":
        small = resize_labels(mask, grid, "nearest-exact")                           # (h, w)
        return (small[..., None] == ids).float()                                     # (h, w, C)
    big = (resize_labels(mask, size, "nearest")[..., None] == ids).float()           # (Hp, Wp, C)
    soft = F.interpolate(big.permute(2, 0, 1)[None], size=tuple(grid), mode="bilinear", align_corners=False)
    return soft[0].permute(1, 2, 0)                                                  # (h, w, C)


def segment(feats, first_mask, size, protocol, settings=LP_SETTINGS):
    """Propagate the first frame's objects through a video: feats (T, h, w, D), the features of its frames at the
    processing size `size` (Hp, Wp); first_mask (H, W), the first annotation at the frame's own size. Returns the
    predicted label map (T, H, W) int64 of object ids (frame 0: the given annotation), on feats' device."""
    first_mask = torch.where(first_mask == VOID, 0, first_mask).to(feats.device)
    ids = first_mask.unique()                                                        # (C,) sorted: 0 first
    soft = metrics.label_propagation(feats, first_labels(first_mask, ids, feats.shape[1:3], size, protocol),
                                     protocol=protocol, **settings)                  # (T, h, w, C)
    ids, pred = ids.to(soft.device), []
    for s in range(0, len(soft), 8):   # a few frames at a time: (T, C, Hp, Wp) upsampled labels need not fit at once
        index = metrics.labels_to_pixels(soft[s:s + 8], *size, normalize=protocol == "dino")   # (t, Hp, Wp) channels
        pred.append(resize_labels(ids[index], first_mask.shape, "nearest-exact"))            # (t, H, W) ids
    pred = torch.cat(pred)
    pred[0] = first_mask
    return pred


def score_sequence(pred, truth, objects):
    """J and F of each object over frames 1 .. T-2 (the first is given, the last excluded, as the official
    evaluation does): pred, truth (T, H, W) ids -> {object id: (J mean, F mean, J per frame, F per frame)}."""
    pred, truth = pred[1:-1], torch.where(truth[1:-1] == VOID, 0, truth[1:-1])
    out = {}
    for o in objects:
        J = metrics.iou(pred == o, truth == o, dims=(-2, -1))                        # (T - 2,)
        Fb = metrics.boundary_F(pred == o, truth == o)                               # (T - 2,)
        out[o] = (J.mean().item(), Fb.mean().item(), J.tolist(), Fb.tolist())
    return out


@torch.no_grad()
def video_features(model, frames, size, device):
    """frames (T, H, W, 3) uint8 -> features (T, h, w, D) float32 on `device`, where propagation and scoring run
    too: the frames resized to `size` (bilinear, antialiased), in [0, 1], through the model (bf16 autocast on CUDA,
    as evaluate.py)."""
    video = frames.to(device).permute(0, 3, 1, 2).float().div(255)                  # (T, 3, H, W)
    video = F.interpolate(video, size=tuple(size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        feats = methods.video_features(model, video[None])                          # (1, T, h, w, D)
    return feats[0].float()


def overlay(frames, pred):
    """frames (T, H, W, 3) uint8, pred (T, H, W) ids -> (T, H, W, 3) uint8: each object in its DAVIS colour at half
    opacity over the frame."""
    colours = torch.tensor(palette(), dtype=torch.float32).reshape(256, 3)
    blend = 0.5 * frames.float() + 0.5 * colours[pred.clamp(0, 255)]
    return torch.where(pred[..., None] > 0, blend, frames.float()).round().to(torch.uint8)


def write_mp4(path, frames, fps=10):
    """(T, H, W, 3) uint8 -> an MP4 (H.264 wants sides divisible by 16, and imageio would resize: pad with black)."""
    import imageio.v3 as iio
    frames = frames.numpy()
    H, W = frames.shape[1:3]
    iio.imwrite(path, np.pad(frames, ((0, 0), (0, -H % 16), (0, -W % 16), (0, 0))), fps=fps)


# ----------------------------------------------------------------------------
# evaluate.py --davis: checkpoints (with a random-init twin each and raw pixels), every sequence, one table


class RawPixels(torch.nn.Module):
    """The raw-pixel baseline: a token's feature is its p x p x 3 patch."""

    def __init__(self, patch):
        super().__init__()
        self.patch = patch

    def features(self, video):
        return vit.frame_features(video, self.patch, lambda frames: vit.patchify(frames, self.patch))


def parse_size(text):
    """--davis-size "H,W" -> (H, W), or a ValueError."""
    try:
        size = tuple(int(x) for x in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"--davis-size must be two positive integers H,W (e.g. 480,880); got {text!r}")
    return size


def evaluate_davis(args, error):
    """evaluate.py --davis ROOT: every input checked first (error(message) ends the command with one line), then
    each sequence through every model, a progress line each; writes davis.md and davis.json into --out."""
    try:
        size = parse_size(args.davis_size) if args.davis_size else DEFAULT_SIZE
        if args.davis_sequences is not None and args.davis_sequences < 1:
            raise ValueError(f"--davis-sequences must be >= 1; got {args.davis_sequences}")
        reason = runs.check_out_folder(args.out)
        if reason:
            raise ValueError(reason)
        sequences = index(args.davis, only=args.davis_sequences)
        device = methods.device_for(args.device)
        loaded = [(path, *methods.load_checkpoint(path)) for path in args.ckpt]   # (path, model, cfg, meta)
        names = [meta["method"] for _, _, _, meta in loaded]
        entries, twins, patches = [], [], set()
        for path, model, cfg, meta in loaded:
            name = meta["method"] if names.count(meta["method"]) == 1 else f"{meta['method']} ({path})"
            entries.append((name, model))
            patches.add(cfg.patch)
            if (meta["method"], cfg) not in twins:   # one random-init twin per method and config
                twins.append((meta["method"], cfg))
                with torch.random.fork_rng():        # a fixed seed, the global RNG left as it was
                    torch.manual_seed(0)
                    entries.append((f"random-init {name}", methods.MODELS[meta["method"]](cfg).eval()))
        if len(patches) > 1:
            raise ValueError(f"the checkpoints differ in patch size {sorted(patches)}; evaluate them separately")
        patch = patches.pop()
        if size[0] % patch or size[1] % patch:
            raise ValueError(f"--davis-size {size[0]},{size[1]} is not divisible by the models' patch {patch}")
    except (FileNotFoundError, ValueError) as e:
        error(runs.first_line(e))
    entries.append(("raw pixels", RawPixels(patch)))
    os.makedirs(args.out, exist_ok=True)
    protocol, start = args.lp_protocol, time.perf_counter()
    print(f"DAVIS {args.davis}: {len(sequences)} sequences at {size[0]}x{size[1]}, protocol {protocol}, "
          f"{len(entries)} feature extractors on {device}", flush=True)
    per_object = {name: {} for name, _ in entries}            # model -> "seq_id" -> (J, F)
    per_sequence = []
    for i, (seq, frame_paths, mask_paths) in enumerate(sequences, 1):
        try:   # the headers were checked; a file broken inside still ends the command in one line
            frames, truth = read_sequence(seq, frame_paths, mask_paths)
        except ValueError as e:
            error(runs.first_line(e))
        objects = [int(o) for o in truth[0].unique() if o not in (0, VOID)]
        row = {"sequence": seq, "frames": len(frames), "objects": objects, "models": {}}
        for name, model in entries:
            model = model.to(device).eval()
            pred = segment(video_features(model, frames, size, device), truth[0], size, protocol)
            scores = score_sequence(pred, truth.to(device), objects)
            for o, (J, Fb, _, _) in scores.items():
                per_object[name][f"{seq}_{o}"] = (J, Fb)
            row["models"][name] = {"J": _mean([s[0] for s in scores.values()]),
                                   "F": _mean([s[1] for s in scores.values()]),
                                   "objects": {o: {"J": s[0], "F": s[1]} for o, s in scores.items()}}
            if args.davis_videos:
                folder = os.path.join(args.out, "davis-videos", name.replace("/", "_").replace(" ", "-"))
                os.makedirs(folder, exist_ok=True)
                write_mp4(os.path.join(folder, f"{seq}.mp4"), overlay(frames, pred.cpu()))
        per_sequence.append(row)
        print(f"[{i}/{len(sequences)}] {seq}: {len(frames)} frames, {len(objects)} objects, J&F "
              + ", ".join(f"{n} {(r['J'] + r['F']) / 2:.3f}" for n, r in row["models"].items() if r["J"] is not None)
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = []
    for name, _ in entries:
        J = _mean([j for j, _ in per_object[name].values()])
        Fb = _mean([f for _, f in per_object[name].values()])
        rows.append({"model": name, "J&F-Mean": None if J is None else (J + Fb) / 2, "J-Mean": J, "F-Mean": Fb})
    table = markdown(rows, per_sequence, args, size)
    print("\n" + table)
    runs.write_atomic(os.path.join(args.out, "davis.md"), table)
    runs.write_atomic(os.path.join(args.out, "davis.json"), json.dumps(
        {"protocol": protocol, "settings": LP_SETTINGS, "size": list(size), "root": args.davis,
         "checkpoints": args.ckpt, "rows": rows, "sequences": per_sequence,
         "per_object": {n: {k: {"J": j, "F": f} for k, (j, f) in d.items()} for n, d in per_object.items()}},
        indent=1))
    print(f"wrote {os.path.join(args.out, 'davis.md')} and davis.json", flush=True)
    return rows


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def markdown(rows, per_sequence, args, size):
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"
    lines = [f"DAVIS-2017 label propagation, protocol **{args.lp_protocol}** ({PROTOCOL_NAMES[args.lp_protocol]})",
             "", "| model | J&F-Mean | J-Mean | F-Mean |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {fmt(r['J&F-Mean'])} | {fmt(r['J-Mean'])} | {fmt(r['F-Mean'])} |" for r in rows]
    names = [r["model"] for r in rows]
    lines += ["", "Per sequence, J / F (mean over the sequence's objects):", "",
              "| sequence | frames | objects | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for s in per_sequence:
        cells = [f"{fmt(s['models'][n]['J'])} / {fmt(s['models'][n]['F'])}" for n in names]
        lines.append(f"| {s['sequence']} | {s['frames']} | {len(s['objects'])} | " + " | ".join(cells) + " |")
    settings = ", ".join(f"{k} {v}" for k, v in LP_SETTINGS.items())
    notes = [f"- Frames resized to {size[0]}x{size[1]} for the features, predictions resized back; J and F per object "
             f"over frames 1 .. T-2, then averaged over all objects (davis2017-evaluation); F's boundary tolerance "
             f"0.008 of the image diagonal. Label propagation: {settings}.",
             "- random-init: the same method and config with fresh weights (seed 0); raw pixels: each token's "
             "p x p x 3 patch.",
             "- Command: `" + " ".join(["python evaluate.py"] + sys.argv[1:]) + "`"]
    return "\n".join(lines + [""] + notes) + "\n"


PROTOCOL_NAMES = {"dino": "DINO's eval_video_segmentation, as SiamMAE reports",
                  "rvm": "RVM's official evaluation notebook"}


def main(argv=None):
    p = argparse.ArgumentParser(description="DAVIS-2017 tools. The evaluation itself: evaluate.py --davis ROOT.")
    p.add_argument("--make-fixture", metavar="DIR", required=True,
                   help="write a small DAVIS-format dataset of toy-world videos into DIR")
    p.add_argument("--seed", type=int, default=0, help="the fixture's first toy-world seed")
    args = p.parse_args(argv)
    reason = runs.check_out_folder(args.make_fixture, "--make-fixture")
    if reason:
        runs.fail(reason)
    names = list(make_fixture(args.make_fixture, seed=args.seed))
    print(f"wrote {len(names)} sequences ({', '.join(names)}) into {args.make_fixture}; try:\n"
          f"  python evaluate.py --davis {args.make_fixture} --ckpt CKPT --davis-size 64,64 --out results/davis")


if __name__ == "__main__":
    main()
