"""bench.py --decoders DIR: real videos at training speed (issue 44 sec. 2), data.read_clip's ffmpeg pipe against PyAV
and torchcodec.

It reads clips of the video files under DIR as train.py's pipeline does (the preset's clip length and size, default
RVM small: 64 frames at 256 px, augmented, through data.make_loader) with each video decoder: data.read_clip
(imageio-ffmpeg's ffmpeg in a pipe, the one the project uses), PyAV and torchcodec where they import (the same seek,
and each frame made by data.frame_tensor, so only the decoding differs). Per decoder: clips/s for each --workers
count, and the seconds of a 16-frame clip at the start and at the end of a 10-minute video made for the run (a key-
frame interval apart when the reader seeks; decoding the whole video takes seconds). Writes decoders.md in --out.

    python bench.py --decoders DIR [--workers 1,4] [--clips 24] [--out runs/bench]
"""
import importlib
import importlib.metadata
import os
import subprocess
import tempfile
import time

import imageio_ffmpeg
import torch
from torch.utils.data import Dataset

import bench
import data
import methods
import runs


def read_clip_av(path, start, num_frames, size=None, fps=None):
    """data.read_clip through PyAV, in this process: seek to the key frame at or before the clip's first frame,
    decode from there and drop the frames before it, as ffmpeg's input seeking does; each frame as data makes it."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = (start - 0.5) / (fps or float(stream.average_rate))   # seconds; half a frame early, as read_clip
        if start > 0:
            container.seek(int(first / stream.time_base), stream=stream, backward=True)
        frames = []
        for frame in container.decode(stream):
            if frame.time >= first:
                frames.append(data.frame_tensor(frame.to_ndarray(format="rgb24"), path, size))
            if len(frames) == num_frames:
                break
    return torch.stack(frames)   # (n, 3, H, W)


def read_clip_torchcodec(path, start, num_frames, size=None, fps=None):
    """data.read_clip through torchcodec, by frame index. "approximate" seeking takes frame i at i / fps of the
    header's rate, as read_clip does ("exact" would first scan the whole file to index it); fps is not used."""
    from torchcodec.decoders import VideoDecoder
    decoder = VideoDecoder(str(path), seek_mode="approximate", dimension_order="NHWC")
    frames = decoder.get_frames_in_range(start, min(start + num_frames, decoder.metadata.num_frames)).data
    return torch.stack([data.frame_tensor(f, path, size) for f in frames.numpy()])   # (n, 3, H, W)


# name -> (reader with data.read_clip's signature, the module it needs, its distribution for the version)
DECODERS = {"imageio": (data.read_clip, "imageio_ffmpeg", "imageio-ffmpeg"),
            "av": (read_clip_av, "av", "av"),
            "torchcodec": (read_clip_torchcodec, "torchcodec.decoders", "torchcodec")}


def decoder_version(name):
    """(version, None) for a decoder whose package imports, else (None, why not, in one line)."""
    _, module, dist = DECODERS[name]
    try:
        importlib.import_module(module)
    except Exception as e:   # ImportError when absent; torchcodec raises RuntimeError without FFmpeg's libraries
        return None, f"{type(e).__name__}: {runs.first_line(e)}"
    return importlib.metadata.version(dist), None


class DecodedClips(Dataset):
    """The same clips for every decoder: item i is clips[i % len(clips)], a (path, start, fps), read by `read` at
    `size` and augmented as VideoFolder augments it (train.py's pipeline for a folder of videos)."""

    def __init__(self, clips, clip_len, size, read):
        self.clips, self.clip_len, self.size, self.read = clips, clip_len, size, read

    def __len__(self):
        return data.ENDLESS

    def __getitem__(self, index):
        path, start, fps = self.clips[index % len(self.clips)]
        clip = self.read(path, start, self.clip_len, self.size, fps)   # (T, 3, size, size)
        return {"video": data.augment_clip(clip, data.item_generator(0, index), out_size=self.size)}


def draw_clips(root, clip_len, size, n, seed=0):
    """n clips (path, start, fps) of the video files under root, the videos in turn, each start uniform as in
    VideoFolder (which indexes them from their headers)."""
    videos = [v for v in data.VideoFolder(root, clip_len, size).videos if isinstance(v, tuple)]   # not GIFs
    if not videos:
        raise ValueError(f"no video file under {root} (GIFs and frame folders have no decoder to compare)")
    g = torch.Generator().manual_seed(seed)
    return [(path, int(torch.randint(frames - clip_len + 1, (), generator=g)), fps)
            for path, frames, fps in (videos[i % len(videos)] for i in range(n))]


def clips_per_s(dataset, workers, clips):
    """Clips per second through data.make_loader (batches of one clip) with `workers` loader workers: the time of
    `clips` batches after 2 per worker of warm-up (start-up, imports, a full prefetch queue)."""
    loader = data.make_loader(dataset, 1, workers=workers)
    for _ in range(max(1, 2 * workers)):
        next(loader)
    t0 = time.perf_counter()
    for _ in range(clips):
        next(loader)
    return clips / (time.perf_counter() - t0)


def make_long_video(path, minutes=10, fps=25):
    """A test video of `minutes` (ffmpeg's testsrc2 pattern, 160 x 120, H.264 with B-frames and a key frame every
    250 frames), made by imageio-ffmpeg's ffmpeg in a few seconds -> (path, frames, fps)."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=160x120:rate={fps}", "-t", str(60 * minutes), "-c:v", "libx264", "-preset",
                    "veryfast", "-g", "250", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=600)
    return path, round(60 * minutes * fps), fps


def seek_seconds(read, path, start, fps, repeats=3):
    """Seconds to read the 16 frames at `start` of a video at its own size: the best of `repeats`."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        read(path, start, 16, None, fps)
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_decoders(drawn, clip_len, size, workers, clips, long_video, decoders=DECODERS):
    """One row per decoder: clips/s of the `drawn` clips (clip_len frames at size x size) for each loader worker
    count, and the seconds of a 16-frame clip at the start and 60 frames before the end of long_video (path,
    frames, fps). A decoder that does not import gets a row that says why."""
    long_path, long_frames, long_fps = long_video
    rows = []
    for name, (read, _, _) in decoders.items():
        version, why = decoder_version(name) if name in DECODERS else ("fake", None)   # tests pass fake decoders
        row = {"decoder": name, "version": version, "error": why}
        if why is None:
            dataset = DecodedClips(drawn, clip_len, size, read)
            row["clips_per_s"] = {w: clips_per_s(dataset, w, clips) for w in workers}
            row["first_s"] = seek_seconds(read, long_path, 0, long_fps)
            row["late_s"] = seek_seconds(read, long_path, long_frames - 60, long_fps)
            print(f"{name}: " + ", ".join(f"{r:.2f} clips/s ({w} workers)" for w, r in row["clips_per_s"].items())
                  + f", late clip {row['late_s']:.3f} s", flush=True)
        rows.append(row)
    return rows


def decoder_markdown(rows, workers):
    """The --decoders table; each rate with its ratio to the first row's (imageio's) at the same worker count."""
    base = rows[0].get("clips_per_s", {})
    lines = ["| decoder | version | " + " | ".join(f"clips/s, {w} worker{'s' * (w != 1)}" for w in workers)
             + " | s per first 16-frame clip | s per late 16-frame clip |", "|" + "---|" * (len(workers) + 4)]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['decoder']} | not usable: {r['error']} |" + " |" * (len(workers) + 2))
            continue
        rates = [f"{r['clips_per_s'][w]:.2f}" + (f" ({r['clips_per_s'][w] / base[w]:.2f}x)" if w in base else "")
                 for w in workers]
        lines.append(f"| {r['decoder']} | {r['version']} | " + " | ".join(rates)
                     + f" | {r['first_s']:.3f} | {r['late_s']:.3f} |")
    return "\n".join(lines)


def main_decoders(parser, args):
    """--decoders: the clip readers on the videos under args.decoders at the preset's clip length and size."""
    cfg = getattr(methods.METHODS["rvm" if args.method == "all" else args.method].Config, args.preset)()
    # one thread, as in a loader worker (DataLoader sets it there): the seek timings run in this process, and on a
    # busy machine two threads that wait for each other made 16 frames' conversion cost 0.4 s instead of 0.01 s
    torch.set_num_threads(1)
    try:
        drawn = draw_clips(args.decoders, cfg.clip_len, cfg.img_size, args.clips)
    except (ValueError, FileNotFoundError) as e:
        parser.error(f"--decoders: {runs.first_line(e)}")
    load = os.getloadavg()[0]
    header = (f"{bench.machine_name(torch.device('cpu'))}, load {load:.1f} | torch {torch.__version__} | "
              f"{args.preset} preset: clips of {cfg.clip_len} frames at {cfg.img_size} px, augmented | "
              f"{args.clips} clips per measure, loader batches of one")
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-decoders-") as work:
        long_video = make_long_video(os.path.join(work, "ten_minutes.mp4"))
        rows = bench_decoders(drawn, cfg.clip_len, cfg.img_size, args.workers, args.clips, long_video)
    header += f" | load after {os.getloadavg()[0]:.1f}"
    table = decoder_markdown(rows, args.workers)
    print("\n" + header + "\n\n" + table)
    os.makedirs(args.out, exist_ok=True)
    runs.write_atomic(os.path.join(args.out, "decoders.md"), header + "\n\n" + table + "\n")
    print(f"\nwrote {args.out}/decoders.md")

