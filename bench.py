"""Benchmark: training-step speed, memory and MFU of every method, and RVM's linear cost in time.

    python bench.py --method all                      # the tiny preset on this machine
    python bench.py --method rvm --profile            # + the top ops of one step (torch.profiler)
    python bench.py --method all --preset small --compile --precision bf16   # one GPU
    python bench.py --gpu-check                       # every GPU path on one CUDA device, < 8 min on an H100
    python bench.py --decoders DIR                    # real videos: clips/s of each video decoder (a few minutes)

What it measures, per method:
* a training step as train.py runs it: `model(batch)["loss"].backward()`, grad clip, AdamW step,
  on one batch made by the method's own `sample` from random clips (the content does not change
  the cost); warm-up steps first, then the median of the timed steps, split into forward,
  backward and optimizer (synchronized between phases on CUDA);
* peak memory of one more step: bytes allocated above what was live before it (activations,
  gradients, temporaries): CUDA max_memory_allocated; CPU torch.profiler's memory events;
* FLOPs: measured, as train.py measures them: torch's FlopCounterMode over one forward and backward
  (the matmuls, convolutions and attention of whatever the method runs, so no second description of
  each architecture here), per second, over the FLOP/s of one large matmul in the same dtype timed
  right after each timed step ("peak", their median): the MFU is the median of the steps' ratios,
  so a host whose speed drifts (a shared CPU's can halve within a minute) slows both sides of each
  ratio. With activation checkpointing (RVM's `checkpoint`) the recomputed forward is counted too;
* "matmuls alone": the MFU the step would reach if only those counted ops took time, each replayed
  alone at its own shapes and strides: what fusing away every other op could give at most.
And RVM's `features` (a recurrent core: cost linear in T) against a joint space-time encoder
(SIGMA's TubeViT over the whole video, no windows: attention ~ T^2), for each T of --frames.
Output: a Markdown table on stdout, and bench.md, bench.json, rvm_scaling.png in --out.

--gpu-check (issue 44 sec. 4) runs every GPU path of the project on one CUDA device, a row each: for each method's
small preset, 30 training steps with bf16 autocast and SDPA (the attention kernel that ran, from the profiler's op
names), eager, under train.py's FSDP2 over a world of one process, and torch.compile'd; tokens/s, MFU over the bf16
matmul peak measured in the same run, peak memory; then train.py for 5 steps, evaluate.py's probes on that
checkpoint and the DAVIS fixture through evaluate.py --davis, all on the device. It writes gpu_check.json and
gpu_check.md in --out and the GPU section of docs/performance.md, after every row.

--decoders DIR (issue 44 sec. 2) reads clips of the video files under DIR as train.py's pipeline does (the preset's
clip length and size, default RVM small: 64 frames at 256 px, augmented, through data.make_loader) with each video
decoder: data.read_clip (imageio-ffmpeg's ffmpeg in a pipe, the one the project uses), PyAV and torchcodec where they
import (the same seek, and each frame made by data.frame_tensor, so only the decoding differs). Per decoder: clips/s
for each --workers count, and the seconds of a 16-frame clip at the start and at the end of a 10-minute video made
for the run (a key-frame interval apart when the reader seeks; decoding the whole video takes seconds). Writes
decoders.md in --out.
"""
import argparse
import collections
import dataclasses
import importlib
import importlib.metadata
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from functools import partial

# torch.profiler (peak_memory on the CPU, --profile) runs on Kineto, which logs every profiler start and stop
# ("USDT: ... profiler_start") to stderr between the tables; level 6 is above its highest (USDT = 5). Read when the
# first profiler starts, so setting it here is enough; a KINETO_LOG_LEVEL of the user's own is kept.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

import imageio_ffmpeg  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, flop_registry  # noqa: E402

import data  # noqa: E402
import methods  # noqa: E402
import runs  # noqa: E402
import sigma  # noqa: E402
import vit  # noqa: E402

# ----------------------------------------------------------------------------
# FLOPs: counted, not modelled


def step_flops(model, batch, autocast=nullcontext()):
    """FLOPs of one training step's forward and backward, `model(batch)["loss"].backward()`, counted by torch's
    FlopCounterMode as train.py counts them (the optimizer's elementwise work is not counted, nor norms, GELU and
    softmax). Gradients are cleared after. On the CPU attention runs on its math backend while counting: the
    counter knows the CUDA flash and memory-efficient kernels but not the CPU's fused one, which it would count
    as 0 FLOPs; the math path is the same QK^T and AV matmuls."""
    on_cpu = next(model.parameters()).device.type == "cpu"
    with (sdpa_kernel(SDPBackend.MATH) if on_cpu else nullcontext()), FlopCounterMode(display=False) as counter:
        with autocast:
            loss = model(batch)["loss"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


class CountedOps(TorchDispatchMode):
    """Every op of one step that FlopCounterMode counts (matmuls, convolutions, attention), with its FLOPs and what
    its arguments look like (shape, strides, dtype): `matmul_ceiling` replays each one alone."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()    # (op, args, kwargs) described -> how many times the step ran it
        self.flops = {}                       # the same key -> FLOPs of one call

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._overloadpacket in flop_registry:
            key = (func, describe(args), describe(kwargs))
            self.calls[key] += 1
            self.flops[key] = flop_registry[func._overloadpacket](*args, **kwargs, out_val=out)
        return out


class Described(tuple):
    """A tensor argument as what a copy of it needs: (shape, strides, dtype)."""


def describe(x):
    """An op's arguments, hashable: each tensor Described, lists and dicts as tuples."""
    if isinstance(x, torch.Tensor):
        return Described((tuple(x.shape), x.stride(), x.dtype))
    if isinstance(x, (list, tuple)):
        return tuple(describe(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, describe(v)) for k, v in x.items())
    return x


def rebuild(x, device):
    """Arguments from `describe` made again: each tensor random with its strides (0 for an expanded one too)."""
    if isinstance(x, Described):
        shape, stride, dtype = x
        size = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if all(shape) else 0
        return torch.randn(size, device=device).to(dtype).as_strided(shape, stride)
    if isinstance(x, tuple):
        return [rebuild(v, device) for v in x]
    return x


def matmul_ceiling(model, batch, device, rate, autocast=nullcontext(), min_s=0.02):
    """The MFU of one training step if only its counted ops (matmuls, attention) cost time, each as fast as it runs
    alone at its own shapes: what the step could reach with every norm, activation, copy and the optimizer fused away
    or free, a bound on fusing set by the shapes (a 64-wide matmul does not run at a 1024-wide one's speed). Each
    distinct call is replayed alone and the large matmul `rate` (matmul_timer) timed right after it, so the call's
    time is worth t x rate FLOPs at the peak of that moment: ceiling = counted FLOPs / sum over the step's calls of
    t x rate. Counted as step_flops counts (the CPU's attention on its math backend: the same QK^T and AV matmuls).
    -> (ceiling, counted FLOPs)."""
    on_cpu = device.type == "cpu"
    recorder = CountedOps()
    with (sdpa_kernel(SDPBackend.MATH) if on_cpu else nullcontext()), recorder:
        with autocast:
            loss = model(batch)["loss"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    at_peak = 0.0                                              # FLOPs the peak would do in the calls' time
    for key, count in recorder.calls.items():
        func, args, kwargs = key[0], rebuild(key[1], device), dict(rebuild(key[2], device))
        func(*args, **kwargs)                                  # warm-up
        times, total = [], 0.0
        while total < min_s or len(times) < 5:
            sync(device)
            t0 = time.perf_counter()
            func(*args, **kwargs)
            sync(device)
            times.append(time.perf_counter() - t0)
            total += times[-1]
        at_peak += count * statistics.median(times) * rate()
    flops = sum(recorder.flops[key] * count for key, count in recorder.calls.items())
    return flops / at_peak, flops


# ----------------------------------------------------------------------------
# timing and memory helpers


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn, device):
    """Peak bytes allocated while fn() runs, above what was allocated before it (activations,
    gradients, temporaries): CUDA's allocator counters; on CPU the running sum of torch.profiler's
    memory events (the RSS would not see memory that malloc reuses from its free lists)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    return max(itertools.accumulate((e.self_cpu_memory_usage for e in events), initial=0))


def matmul_timer(device, dtype):
    """One large square matmul in `dtype`, the machine's practical peak -> a function that times it once: FLOP/s."""
    n, reps = (8192, 10) if device.type == "cuda" else (1024, 1)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))

    def rate():
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        return 2 * n ** 3 * reps / (time.perf_counter() - t0)
    return rate


def matmul_peak(device, dtype, rate=None):
    """FLOP/s of one large square matmul in `dtype` (or of `rate`, a matmul_timer): the median of 10 timings after 2
    warm-up ones."""
    rate = rate or matmul_timer(device, dtype)
    return statistics.median([rate() for _ in range(12)][2:])


def machine_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


# ----------------------------------------------------------------------------
# one method: build, make a batch, time the training step


def make_batch(name, cfg, B, device, seed=0):
    """B items as train.py makes them: the method's `sample` on one random clip per item, collated."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(B):
        clip = torch.rand(1, cfg.clip_len, 3, cfg.img_size, cfg.img_size, generator=g)   # (1, T, 3, H, W)
        items.append(methods.METHODS[name].sample(clip, cfg, g))
    return {k: torch.cat([it[k] for it in items]).to(device) for k in items[0]}


def frame_patches(batch, patch):
    """Patches of all frames of one clip (masked ones too): the "tokens" of tokens/s."""
    frames = [v for v in batch.values() if v.dim() >= 4 and v.shape[-3] == 3]        # (B, [T,] 3, H, W)
    return sum(v[0].numel() // 3 for v in frames) // patch ** 2


def bench_method(name, args, device, rate):
    """One method's row. `rate` (matmul_timer) is timed after every timed step and the MFU is the median over the
    steps of each step's own ratio: on a shared machine the host's speed drifts within seconds, and a peak measured
    once at the start would hold the steps to another speed."""
    cfg = getattr(methods.METHODS[name].Config, args.preset)()
    torch.manual_seed(0)
    model = raw = methods.MODELS[name](cfg).to(device)
    if args.compile:
        model = torch.compile(model)
    model.train()
    B = args.batch_size if args.batch_size is not None else {"tiny": 8, "small": 32}[args.preset]
    kind = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[args.adamw]
    optimizer = torch.optim.AdamW(methods.param_groups(raw, cfg.weight_decay), lr=1e-4, betas=cfg.betas, **kind)
    batch = make_batch(name, cfg, B, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    flops = step_flops(raw, batch, autocast)   # the un-compiled model: the same FLOPs, and the counter sees them

    def step():
        """One training step as train.py runs it -> (forward, backward, optimizer) seconds."""
        sync(device)
        t0 = time.perf_counter()
        with autocast:
            loss = model(batch)["loss"]
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        t2 = time.perf_counter()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    for _ in range(args.warmup):
        step()
    times, peaks = [], []
    for _ in range(args.steps):
        times.append(step())
        peaks.append(rate())
    peak = statistics.median(peaks)
    ceiling, _ = matmul_ceiling(raw, batch, device, rate, autocast)
    mem = peak_memory(step, device)
    fwd, bwd, opt = (statistics.median(t[i] for t in times) for i in range(3))
    total = statistics.median(sum(t) for t in times)
    if args.profile:
        profile_step(name, step, device, args.out)
    return {"method": name, "preset": args.preset, "batch": B, "precision": args.precision,
            "compile": args.compile, "adamw": args.adamw, "params_M": vit.count_params(raw) / 1e6,
            "step_ms": 1e3 * total, "fwd_ms": 1e3 * fwd, "bwd_ms": 1e3 * bwd, "opt_ms": 1e3 * opt,
            "clips_per_s": B / total, "tokens_per_s": B * frame_patches(batch, cfg.patch) / total,
            "gflop_per_step": flops / 1e9, "gflops": flops / total / 1e9, "peak_gflops": peak / 1e9,
            "mfu": statistics.median(flops / sum(t) / p for t, p in zip(times, peaks)), "ceiling": ceiling,
            "peak_mem_MiB": mem / 2 ** 20}


def profile_step(name, step, device, out):
    """torch.profiler over 3 steps: the ops that take the time, printed and saved to profile_<name>.txt."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                    if device.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(3):
            step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=15)
    print(f"\n--- {name}: top ops over 3 steps ---\n{table}")
    with open(os.path.join(out, f"profile_{name}.txt"), "w") as f:
        f.write(table)


# ----------------------------------------------------------------------------
# RVM's cost in time: recurrent features vs a joint space-time encoder


@torch.no_grad()
def bench_scaling(args, device):
    """features(video) wall time and peak memory for each T: RVM (state carried frame to frame)
    and SIGMA's TubeViT built for the whole T-frame video (every tube attends to every tube).
    The repeats go round all T in turn, so a busy spell of a shared machine hits every T alike."""
    rcfg, scfg = (getattr(module.Config, args.preset)() for module in (methods.METHODS["rvm"], sigma))
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    rvm_model = methods.MODELS["rvm"](rcfg).to(device).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else nullcontext()
    models, videos = {}, {}
    for T in args.frames:
        videos[T] = torch.rand(1, T, 3, rcfg.img_size, rcfg.img_size, generator=g).to(device)   # (1, T, 3, H, W)
        models["rvm", T] = rvm_model.features
        models["joint", T] = vit.TubeViT(scfg.img_size, T, scfg.patch, scfg.tubelet, scfg.dim, scfg.depth,
                                         scfg.heads, scfg.mlp_ratio).to(device).eval()

    def run(key):
        with autocast:
            models[key](videos[key[1]])

    run(("rvm", args.frames[0]))              # warm-up: first calls allocate and pick kernels
    run(("joint", args.frames[0]))
    times = {key: [] for key in models}
    for _ in range(args.repeats):
        for key in models:
            sync(device)
            t0 = time.perf_counter()
            run(key)
            sync(device)
            times[key].append(time.perf_counter() - t0)
    results = {"frames": args.frames}
    for name in ("rvm", "joint"):
        results[name] = [{"T": T, "ms": 1e3 * statistics.median(times[name, T]),
                          "peak_mem_MiB": peak_memory(lambda: run((name, T)), device) / 2 ** 20}
                         for T in args.frames]
        results[f"{name}_ratio"] = results[name][-1]["ms"] / results[name][0]["ms"]
    return results


def plot_scaling(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    T = res["frames"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("rvm", "RVM features (recurrent core)"), ("joint", "joint space-time encoder")):
        ax1.plot(T, [r["ms"] for r in res[key]], "o-", label=f"{label}: x{res[f'{key}_ratio']:.1f}")
        ax2.plot(T, [r["peak_mem_MiB"] for r in res[key]], "o-", label=label)
    t0 = res["rvm"][0]["ms"]
    ax1.plot(T, [t0 * t / T[0] for t in T], "k:", label="linear in T")
    for ax, ylabel in ((ax1, "wall time (ms)"), (ax2, "peak memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(T, [str(t) for t in T])
        ax.set_yscale("log")
        ax.set_xlabel("frames T")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    ax1.set_title(f"time({T[-1]}) / time({T[0]}) in the legend")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------
# real videos at training speed (issue 44 sec. 2): data.read_clip's ffmpeg pipe against PyAV and torchcodec


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
    header = (f"{machine_name(torch.device('cpu'))}, load {load:.1f} | torch {torch.__version__} | "
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


# ----------------------------------------------------------------------------
# the GPU check (issue 44 sec. 4): every GPU path of the project, one row each, within the eight minutes the issue gives


ROOT = os.path.dirname(os.path.abspath(__file__))
GPU_CHECK_BUDGET_S = 420   # rows start only while they fit here: the 8 minutes less start-up and the writes
GPU_SECTION = "## GPU check"   # the heading docs/performance.md's GPU section starts with (replaced on each run)
# the aten op F.scaled_dot_product_attention dispatched to (forward or backward) -> the kernel family that ran
ATTENTION_OPS = {"_scaled_dot_product_flash_attention": "flash",
                 "_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
                 "_scaled_dot_product_efficient_attention": "memory-efficient",
                 "_scaled_dot_product_cudnn_attention": "cudnn",
                 "_scaled_dot_product_fused_attention_overrideable": "fused (overrideable)",
                 "_scaled_dot_product_attention_math": "math",
                 "_scaled_dot_product_attention_math_for_mps": "math"}


def attention_family(op):
    """The SDPA kernel family of one aten op name (forward or backward, "aten::" or not), or None."""
    op = op.split("::")[-1]
    return ATTENTION_OPS.get(op[:-len("_backward")] if op.endswith("_backward") else op)


def kernel_family(kernel):
    """The SDPA kernel family of one CUDA kernel's name, or None, by the words the libraries name their kernels
    with (pytorch_flash::flash_fwd_kernel, fmha_cutlassF_..._sm80 of PyTorchMemEffAttention, cudnn's sdpa kernels,
    which say "flash" too: cudnn is tested first)."""
    low = kernel.lower()
    if "cudnn" in low and any(w in low for w in ("sdpa", "fmha", "attention", "flash")):
        return "cudnn"
    if "flash" in low:
        return "flash"
    if any(w in low for w in ("fmha", "memeff", "mem_eff", "efficient_attention")):
        return "memory-efficient"
    return None


def attention_kernels(ops, kernels=()):
    """The SDPA kernel families that ran, e.g. "flash" or "flash, math", from the profiler's aten op names, or
    where none of those is an attention op (a compiled graph's own kernels), from its CUDA kernel names; "none
    seen" if neither says."""
    found = {f for f in map(attention_family, ops) if f} or {f for f in map(kernel_family, kernels) if f}
    return ", ".join(sorted(found)) or "none seen"


def profile_attention(step, device):
    """Which attention kernel one call of step() ran, from torch.profiler's op and kernel names."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                    if device.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof:
        step()
        sync(device)
    events = prof.events()
    return attention_kernels({e.name for e in events if e.name.startswith("aten::")},
                             {e.name for e in events if e.device_type == torch.autograd.DeviceType.CUDA})


class OneProcessGroup:
    """A world of one process for FSDP2 on one device (nccl on CUDA, gloo on the CPU) over a file:// rendezvous
    in a fresh temporary folder (no port to race for); a group that exists already (a test's) is used and kept."""

    def __init__(self, device):
        self.device, self.made, self.folder = device, False, None

    def __enter__(self):
        if not dist.is_initialized():
            self.folder = tempfile.mkdtemp(prefix="bench-pg-")
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", rank=0, world_size=1,
                                    init_method=f"file://{os.path.join(self.folder, 'rendezvous')}")
            self.made = True
        return self

    def __exit__(self, *exc):
        if self.made:
            dist.destroy_process_group()
            shutil.rmtree(self.folder, ignore_errors=True)


def fsdp_model(name, cfg, B, device):
    """train.py's own FSDP2 model (train.make_model: each Block and CrossBlock sharded, then the root, with the
    bf16 MixedPrecisionPolicy of a bf16 run) over the current process group -> the sharded module."""
    import train   # here: bench.py's other paths need nothing of train.py
    settings = dict.fromkeys(f.name for f in dataclasses.fields(train.Settings))
    settings.update(method=name, seed=0, dist="fsdp", compile=False)
    place = train.Place(distributed=True, own_group=False, use_cuda=device.type == "cuda", device=device,
                        rank=dist.get_rank(), world=dist.get_world_size(), micro=B, bf16=True)
    _, raw = train.make_model(train.Settings(**settings), cfg, place, {})
    return raw


def check_train_row(name, mode, cfg, B, device, peak, steps, warmup):
    """One row of the check: `steps` timed training steps of method `name` as train.py runs them (bf16 autocast
    around forward and loss, fused AdamW, grad clip), mode "eager", "compile" (torch.compile of the whole model, as
    train.py --compile) or "fsdp2" (fsdp_model over the current process group). -> the row's numbers."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    batch = make_batch(name, cfg, B, device)
    torch.manual_seed(0)
    plain = methods.MODELS[name](cfg).to(device)
    flops = step_flops(plain, batch, autocast)   # the same FLOPs in every mode; the counter sees the plain model
    if mode == "fsdp2":
        del plain                                 # not in the row's memory
        raw = fsdp_model(name, cfg, B, device)
    else:
        raw = plain
    model = torch.compile(raw) if mode == "compile" else raw
    model.train()
    optimizer = torch.optim.AdamW(methods.param_groups(raw, cfg.weight_decay), lr=1e-4, betas=tuple(cfg.betas),
                                  fused=True)

    def step():
        with autocast:
            loss = model(batch)["loss"]
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step()                     # the first step: allocations, kernel choices, and with compile the compilation
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    per_step = (time.perf_counter() - t0) / steps
    peak_mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    attention = profile_attention(step, device)
    return {"batch": B, "steps": steps, "ms_per_step": 1e3 * per_step,
            "tokens_per_s": B * frame_patches(batch, cfg.patch) / per_step, "gflop_per_step": flops / 1e9,
            "mfu": flops / per_step / peak, "peak_mem_GiB": peak_mem, "attention": attention, "first_step_s": first}


def run_command(cmd, timeout):
    """One of the project's commands in a subprocess (its output printed here when it ends) -> {"status"}: "ok", or
    "failed" with its exit code and the last line it printed."""
    try:
        res = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        print(out, end="", flush=True)
        return {"status": f"failed: no end in {timeout} s"}
    print(res.stdout, end="", flush=True)
    last = next((line.strip() for line in reversed(res.stdout.splitlines()) if line.strip()), "")
    return {"status": "ok" if res.returncode == 0 else f"failed (exit {res.returncode}): {last}"}


def command_plan(preset, device, work, method="rvm"):
    """The check's command rows: train.py on the device for a few steps (the small checkpoint the probes read),
    evaluate.py's probes on it (fewer videos than its defaults: this checks that the probes run on the device, it
    does not score the model), and the DAVIS fixture through evaluate.py --davis when davis.py is here.
    -> [(label, estimate s, [commands], timeout s)], and a note when the DAVIS row is left out."""
    py, ckpt = sys.executable, os.path.join(work, "train", "ckpt.pt")
    train_cmd = [py, "train.py", "--method", method, "--preset", preset, "--steps", "5", "--batch-size", "8",
                 "--log-every", "1", "--ckpt-every", "0", "--device", device, "--out", os.path.join(work, "train")]
    eval_cmd = [py, "evaluate.py", "--ckpt", ckpt, "--device", device, "--out", os.path.join(work, "eval"),
                "--iou-videos", "4", "--frames", "8", "--probe-train", "4", "--probe-test", "4", "--probe-frames", "8",
                "--shapes-videos", "2", "--kind-videos", "8", "--kind-frames", "8", "--lengths", "8,16"]
    plan = [(f"train.py {method}, 5 steps", 60, [train_cmd], 240),
            (f"evaluate.py probes ({method}, 5-step checkpoint)", 90, [eval_cmd], 300)]
    if not os.path.exists(os.path.join(ROOT, "davis.py")):
        return plan, "DAVIS fixture: skipped, davis.py is not in this checkout"
    fixture = os.path.join(work, "davis")
    plan.append((f"DAVIS fixture, evaluate.py --davis ({method})", 60,
                 [[py, "davis.py", "--make-fixture", fixture],
                  [py, "evaluate.py", "--davis", fixture, "--ckpt", ckpt, "--device", device,
                   "--out", os.path.join(work, "davis-eval")]], 300))
    return plan, None


GPU_COLUMNS = [("row", "row", "{}"), ("batch", "batch", "{}"), ("ms_per_step", "ms/step", "{:.1f}"),
               ("speedup", "x eager", "{:.2f}"),
               ("tokens_per_s", "tokens/s", "{:,.0f}"), ("mfu", "MFU", "{:.1%}"),
               ("peak_mem_GiB", "peak GiB", "{:.2f}"),
               ("attention", "attention kernel", "{}"), ("first_step_s", "first step s", "{:.1f}"),
               ("seconds", "row s", "{:.0f}"), ("status", "status", "{}")]


def gpu_table(rows):
    """The check's rows as one Markdown table; a field a row does not have is a dash."""
    def cell(row, key, fmt):
        value = row.get(key)
        return "-" if value is None else fmt.format(value).replace("|", "/")
    lines = ["| " + " | ".join(h for _, h, _ in GPU_COLUMNS) + " |", "|" + "---|" * len(GPU_COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(cell(r, k, f) for k, _, f in GPU_COLUMNS) + " |" for r in rows])


def gpu_section(rows, meta, notes, done):
    """docs/performance.md's GPU section: dated heading, the command, the device, the table, the notes. `done`
    False: the run is still going (the section is written after every row, so a run cut short leaves its rows)."""
    state = "" if done else f"\n\n**In progress**: {len(rows)} of {meta['planned']} rows so far."
    head = (f"{GPU_SECTION}, {meta['date']}\n\n`{meta['command']}` on {meta['device']} ({meta['torch']}): preset "
            f"{meta['preset']}, bf16 autocast, batch {meta['batch']}, {meta['steps']} timed steps after the first "
            f"and {meta['warmup']} more; bf16 matmul peak {meta['peak_tflops']:.1f} TFLOP/s (one "
            f"{meta['peak_n']} x {meta['peak_n']} matmul measured in the same run), the denominator of the MFU. "
            f"tokens/s counts the patches of every frame of a clip (masked ones too); peak GiB is "
            f"torch.cuda.max_memory_allocated over the row; first step s includes compiling; x eager is the eager "
            f"row's step time over this row's (> 1: faster). The FSDP2 rows are train.py's FSDP2 (bf16 "
            f"MixedPrecisionPolicy) over a world of one process.")
    listed = "\n\n" + "\n".join(f"- {n}" for n in notes) if notes else ""
    return head + state + "\n\n" + gpu_table(rows) + listed + "\n"


def replace_section(text, section):
    """`text` (a Markdown file) with its GPU section (from its GPU_SECTION heading to the next "## " heading)
    replaced by `section`; a file without one gets it before its first dated "## " section, or at its end."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(GPU_SECTION)), None)
    if start is None:
        at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        before = "".join(lines[:at])
        sep = "" if not before or before.endswith("\n\n") else ("\n" if before.endswith("\n") else "\n\n")
        return before + sep + section + ("\n" if at < len(lines) else "") + "".join(lines[at:])
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[:start]) + section + ("\n" if end < len(lines) else "") + "".join(lines[end:])


def format_s(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def gpu_check(args, device, work, argv, names=None, kinds=("eager", "fsdp2", "commands", "compile"), configs=None):
    """The check: the bf16 matmul peak, then each row of the plan in turn (a progress line with the ETA before it,
    its result after), each row's failure caught and reported in its row, gpu_check.json and gpu_check.md in
    args.out and the GPU section of args.doc written after every row. Rows start only while their estimate fits
    the budget. names, kinds, configs ({name: Config}): a part of the plan, other models (the tests run a part
    on the CPU, on one-block models). -> the rows."""
    names = names or list(methods.METHODS)
    B = args.batch_size or {"tiny": 8, "small": 32}[args.preset]
    peak = matmul_peak(device, torch.bfloat16)
    peak_n = 8192 if device.type == "cuda" else 1024   # matmul_peak's size
    cfgs = {name: getattr(methods.METHODS[name].Config, args.preset)() for name in names}
    cfgs.update(configs or {})

    def train_row(name, mode):
        if mode != "fsdp2":
            row = check_train_row(name, mode, cfgs[name], B, device, peak, args.steps, args.warmup)
        else:
            with OneProcessGroup(device):
                row = check_train_row(name, mode, cfgs[name], B, device, peak, args.steps, args.warmup)
        eager = next((r for r in rows if r["row"] == f"{name} eager" and "ms_per_step" in r), None)
        if mode != "eager" and eager:   # the eager step time over this mode's: > 1 is faster
            row["speedup"] = eager["ms_per_step"] / row["ms_per_step"]
        return row

    def command_row(commands, timeout):
        for cmd in commands:   # a command that hangs ends with the budget, not after its own timeout
            result = run_command(cmd, max(30, min(timeout, int(args.budget - (time.perf_counter() - t_start)))))
            if result["status"] != "ok":
                break
        return {**result, "command": " && ".join(" ".join(c[1:]) for c in commands)}

    plan, notes = [], []   # (label, kind, estimate s, function)
    if "eager" in kinds:
        plan += [(f"{name} eager", "eager", 20, partial(train_row, name, "eager")) for name in names]
    if "fsdp2" in kinds:
        plan += [(f"{name} FSDP2 (1 process)", "fsdp2", 20, partial(train_row, name, "fsdp2")) for name in names]
    if "commands" in kinds:
        commands, skipped = command_plan(args.preset, device.type, work)
        plan += [(label, "commands", est, partial(command_row, cmds, timeout))
                 for label, est, cmds, timeout in commands]
        notes.append(skipped)
    if "compile" in kinds:   # last: the slowest rows, the first to go when time runs short
        plan += [(f"{name} compile", "compile", 90, partial(train_row, name, "compile")) for name in names]
    notes = [n for n in notes if n]
    meta = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "command": "python bench.py " + " ".join(argv),
            "device": machine_name(device) + (f" (sm {'.'.join(map(str, torch.cuda.get_device_capability(device)))})"
                                              if device.type == "cuda" else ""),
            "torch": f"torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if torch.version.cuda else ""),
            "preset": args.preset, "batch": B, "steps": args.steps, "warmup": args.warmup, "peak_tflops": peak / 1e12,
            "peak_n": peak_n, "planned": len(plan), "budget_s": args.budget}
    print(f"GPU check: {meta['device']}, {meta['torch']} | bf16 matmul peak {peak / 1e12:.1f} TFLOP/s | "
          f"{len(plan)} rows, budget {format_s(args.budget)}", flush=True)

    rows, spent, t_start = [], {}, time.perf_counter()

    def estimate(kind, default):   # a kind's longest row so far, once one has run
        return max(spent.get(kind, [default]))

    def write(done):
        section = gpu_section(rows, meta, notes, done)
        runs.write_atomic(os.path.join(args.out, "gpu_check.json"),
                          json.dumps({**meta, "done": done, "rows": rows, "notes": notes}, indent=1))
        runs.write_atomic(os.path.join(args.out, "gpu_check.md"), section)
        old = open(args.doc).read() if os.path.exists(args.doc) else "# Performance\n"
        runs.write_atomic(args.doc, replace_section(old, section))

    for i, (label, kind, default, fn) in enumerate(plan, 1):
        elapsed = time.perf_counter() - t_start
        left = sum(estimate(k, d) for _, k, d, _ in plan[i - 1:])
        row = {"row": label, "kind": kind}
        if elapsed + estimate(kind, default) > args.budget:
            row["status"] = f"skipped: it would end past the {args.budget} s budget"
            print(f"[{i}/{len(plan)}] {label}: {row['status']}", flush=True)
        else:
            print(f"[{i}/{len(plan)}] {label} | elapsed {format_s(elapsed)}, ETA {format_s(left)}", flush=True)
            t0 = time.perf_counter()
            try:
                row.update(fn())
                row.setdefault("status", "ok")
            except Exception as e:   # the check reports what breaks and goes on with the next row
                traceback.print_exc()
                row["status"] = f"failed: {type(e).__name__}: {runs.first_line(e)}"[:200]
            finally:
                if kind == "compile":
                    torch._dynamo.reset()   # the compiled graphs of this model go with it
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            row["seconds"] = time.perf_counter() - t0
            spent.setdefault(kind, []).append(row["seconds"])
            summary = (f"{row['ms_per_step']:.1f} ms/step, MFU {row['mfu']:.1%}, attention {row['attention']}"
                       if "ms_per_step" in row else row["status"])
            print(f"[{i}/{len(plan)}] {label}: {summary} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)
        write(done=False)
    write(done=True)
    total = time.perf_counter() - t_start
    print(f"\n{gpu_table(rows)}\n\nGPU check: {format_s(total)}; wrote {args.out}/gpu_check.json, gpu_check.md "
          f"and the GPU section of {args.doc}", flush=True)
    return rows


# ----------------------------------------------------------------------------
# main


COLUMNS = [("method", "method", "{}"), ("params_M", "params (M)", "{:.2f}"), ("batch", "batch", "{}"),
           ("step_ms", "ms/step", "{:.1f}"), ("fwd_ms", "fwd ms", "{:.1f}"), ("bwd_ms", "bwd ms", "{:.1f}"),
           ("opt_ms", "opt ms", "{:.1f}"), ("clips_per_s", "clips/s", "{:.1f}"),
           ("tokens_per_s", "tokens/s", "{:.0f}"), ("gflop_per_step", "GFLOP/step", "{:.2f}"),
           ("gflops", "GFLOP/s", "{:.1f}"), ("peak_gflops", "peak GFLOP/s", "{:.0f}"), ("mfu", "MFU", "{:.1%}"),
           ("ceiling", "matmuls alone", "{:.1%}"),
           ("peak_mem_MiB", "peak MiB", "{:.0f}")]


def markdown(rows, scaling):
    """The step table, and the scaling table (one column per T) when there is one."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt.format(r[k]) for k, _, fmt in COLUMNS) + " |" for r in rows]
    if scaling:
        T = scaling["frames"]
        lines += ["", f"| frames T | {' | '.join(map(str, T))} | time({T[-1]}) / time({T[0]}) |",
                  "|" + "---|" * (len(T) + 2)]
        for field, unit in (("ms", "ms"), ("peak_mem_MiB", "peak MiB")):
            for key, label in (("rvm", "RVM features"), ("joint", "joint space-time encoder")):
                ratio = f"{scaling[key + '_ratio']:.1f}" if field == "ms" else ""
                lines.append(f"| {label}, {unit} | " + " | ".join(f"{r[field]:.0f}" for r in scaling[key])
                             + f" | {ratio} |")
    return "\n".join(lines)


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="all", choices=["all", *methods.METHODS],
                   help="method to benchmark, or all four (default all)")
    p.add_argument("--preset", default=None, choices=["tiny", "small"],
                   help="Config preset (default tiny; small with --gpu-check)")
    p.add_argument("--batch-size", type=int, default=None, help="clips per step (default: tiny 8, small 32)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (default 3)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps; the median is reported (default 10; 30 with --gpu-check, their mean)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per point of the scaling; the median "
                                                          "is reported (default 3)")
    p.add_argument("--frames", default="16,32,64,128,256",
                   help="T values for RVM's scaling, comma-separated; '' skips it (default 16,...,256)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                   help="fp32, or bf16 autocast (default: fp32 on CPU, bf16 on CUDA)")
    p.add_argument("--adamw", default="fused", choices=["fused", "foreach", "loop"],
                   help="AdamW implementation: fused (one kernel on CPU and CUDA, default), foreach, or loop "
                        "(one op per tensor: torch's default on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up includes compiling)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice, all cores); 1 on a busy shared machine, "
                        "where threads that wait for each other make the numbers meaningless")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops of each method")
    p.add_argument("--out", default="runs/bench", help="folder for bench.md, bench.json, rvm_scaling.png "
                                                       "(gpu_check.json and gpu_check.md with --gpu-check)")
    p.add_argument("--gpu-check", action="store_true",
                   help="the GPU check on one CUDA device (see above); takes --preset, --batch-size, --steps, "
                        "--warmup, --out, --doc, --budget")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "performance.md"),
                   help="--gpu-check: the Markdown file whose GPU section it writes (default docs/performance.md)")
    p.add_argument("--decoders", default=None, metavar="DIR",
                   help="time the video decoders on the video files under DIR instead (see above); takes --preset "
                        "(default small), --method (default rvm), --workers, --clips, --out")
    p.add_argument("--workers", default="1,4", help="--decoders: loader worker counts, comma-separated (default 1,4)")
    p.add_argument("--clips", type=int, default=24, help="--decoders: timed clips per measure (default 24)")
    p.add_argument("--budget", type=int, default=GPU_CHECK_BUDGET_S,
                   help=f"--gpu-check: seconds within which rows start; a row whose estimate does not fit is "
                        f"skipped and says so (default {GPU_CHECK_BUDGET_S})")
    return p


def main(argv=None):
    parser = get_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.gpu_check and not torch.cuda.is_available():   # before any work, in one line
        runs.fail("--gpu-check needs a CUDA device; this machine has none")
    args.preset = args.preset or ("small" if args.gpu_check or args.decoders else "tiny")
    args.steps = args.steps if args.steps is not None else (30 if args.gpu_check else 10)
    if min(args.warmup + 1, args.steps, args.repeats) < 1:
        parser.error("--warmup must be >= 0, --steps and --repeats >= 1")
    try:
        args.frames = [int(t) for t in args.frames.split(",") if t.strip()]
    except ValueError:
        args.frames = [0]
    if min(args.frames, default=1) < 1:
        parser.error("--frames expects comma-separated positive integers, e.g. 16,32,64")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    reason = runs.check_out_folder(args.out)   # before any work: a file in the way costs no benchmark
    if reason:
        parser.error(reason)
    if args.gpu_check:
        return main_gpu_check(parser, args, argv)
    if args.decoders:
        try:
            args.workers = [int(w) for w in args.workers.split(",")]
        except ValueError:
            args.workers = [-1]
        if min(args.workers) < 0 or args.clips < 1:
            parser.error("--workers expects comma-separated counts >= 0, e.g. 1,4; --clips >= 1")
        return main_decoders(parser, args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = methods.device_for(args.device)
    except ValueError as e:
        parser.error(str(e))
    use_cuda = device.type == "cuda"
    if use_cuda:   # as train.py: TF32 for fp32 matmuls
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.precision = args.precision or ("bf16" if use_cuda else "fp32")
    os.makedirs(args.out, exist_ok=True)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    machine, load = machine_name(device), os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rate = matmul_timer(device, dtype)
    peak = matmul_peak(device, dtype, rate)
    header = (f"{machine}, load {load:.1f} | torch {torch.__version__} | preset {args.preset}, {args.precision}, "
              f"AdamW {args.adamw}{', compile' if args.compile else ''} | matmul peak at the start "
              f"{peak / 1e9:.1f} GFLOP/s")
    print(header, flush=True)

    names = list(methods.METHODS) if args.method == "all" else [args.method]
    rows = []
    for name in names:
        rows.append(bench_method(name, args, device, rate))
        print(f"{name}: {rows[-1]['step_ms']:.1f} ms/step, MFU {rows[-1]['mfu']:.1%} (its matmuls alone "
              f"{rows[-1]['ceiling']:.1%})", flush=True)
    scaling = None
    if args.frames and args.method in ("all", "rvm"):
        scaling = bench_scaling(args, device)
        plot_scaling(scaling, os.path.join(args.out, "rvm_scaling.png"))

    table = markdown(rows, scaling)
    print("\n" + header + "\n\n" + table)
    runs.write_atomic(os.path.join(args.out, "bench.md"), header + "\n\n" + table + "\n")
    runs.write_atomic(os.path.join(args.out, "bench.json"),
                      json.dumps({"machine": machine, "load": load, "torch": torch.__version__, "args": vars(args),
                                  "peak_flops": peak, "steps": rows, "scaling": scaling}, indent=1))
    print(f"\nwrote {args.out}/bench.md, bench.json" + (", rvm_scaling.png" if scaling else ""))


def main_gpu_check(parser, args, argv):
    """--gpu-check: its own inputs checked, then gpu_check on the current CUDA device; exit 1 if a row failed."""
    if args.budget < 1:
        parser.error(f"--budget must be >= 1 second; got {args.budget}")
    if os.path.isdir(args.doc) or runs.check_out_folder(os.path.dirname(os.path.abspath(args.doc)), "--doc"):
        parser.error(f"--doc {args.doc} must be a Markdown file in a writable folder")
    device = torch.device("cuda", torch.cuda.current_device())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True   # as train.py
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:   # the commands' runs and fixture
        rows = gpu_check(args, device, work, argv)
    failed = [r["row"] for r in rows if r["status"].startswith("failed")]
    if failed:
        print(f"failed rows: {', '.join(failed)}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
