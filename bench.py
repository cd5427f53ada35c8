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

--gpu-check and --decoders DIR are bench_gpu.py's and bench_decoders.py's: their docstrings say what they
measure.
"""
import argparse
import collections
import itertools
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext

# torch.profiler (peak_memory on the CPU, --profile) runs on Kineto, which logs every profiler start and stop
# ("USDT: ... profiler_start") to stderr between the tables; level 6 is above its highest (USDT = 5). Read when the
# first profiler starts, so setting it here is enough; a KINETO_LOG_LEVEL of the user's own is kept.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, flop_registry  # noqa: E402

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
# main


ROOT = os.path.dirname(os.path.abspath(__file__))
GPU_CHECK_BUDGET_S = 420   # --gpu-check: rows start while they fit here (the 8 minutes less start-up, writes)

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
        import bench_gpu   # here: the plain benchmark needs none of it
        return bench_gpu.main_gpu_check(parser, args, argv)
    if args.decoders:
        try:
            args.workers = [int(w) for w in args.workers.split(",")]
        except ValueError:
            args.workers = [-1]
        if min(args.workers) < 0 or args.clips < 1:
            parser.error("--workers expects comma-separated counts >= 0, e.g. 1,4; --clips >= 1")
        import bench_decoders
        return bench_decoders.main_decoders(parser, args)
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



if __name__ == "__main__":
    main()
