"""One training script for all four methods: CPU, one GPU, or many with torchrun.

Examples:
    python train.py --method rvm --preset tiny                        # CPU, minutes (make demo)
    python train.py --method siammae --preset small --data PATH        # one GPU
    torchrun --standalone --nproc_per_node 8 train.py --method sigma --preset small --data PATH --dist fsdp
    torchrun --nnodes 2 --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
             --nproc_per_node 8 train.py ...                           # on each of 2 nodes
    python train.py --method rvm --out runs/rvm-tiny --resume          # continue a run exactly

It reads top to bottom like nanoGPT's train.py: setup, data, model,
optimizer, loop, checkpoint. The method file owns the method (its Config,
its frame-sampling rule `sample`, its loss); this file only optimizes.

Why distributed training and resuming are exact: a method's `sample` draws
all the randomness of a step (frames, mask noise) from a generator seeded by
(seed, dataset index), and its forward pass is a pure function of the batch.
Step s always sees the dataset items [s * batch, (s + 1) * batch), however
they are split over processes and micro-steps, so 2 DDP processes make the
same update as 1 process with the whole batch (up to float summation order),
and a run resumed from a checkpoint (which stores the step) continues as if
it had never stopped.
"""
import argparse
import dataclasses
import json
import math
import os
import platform
import random
import signal
import sys
import time
from contextlib import nullcontext
from datetime import timedelta
from functools import partial

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.flop_counter import FlopCounterMode

import data
import methods
import vit
from methods import METHODS, MODELS, build_config, read_checkpoint

# training defaults per preset (the model's are in each method's Config.tiny() / .small()).
# tiny: a few minutes per method on a laptop CPU; `make demo` runs RVM for longer (Makefile).
PRESETS = {
    "tiny": dict(steps=600, batch_size=8, log_every=20, ckpt_every=200),
    "small": dict(steps=100_000, batch_size=128, log_every=50, ckpt_every=2000),
}
TINY_STEPS = {"sigma": 2500}   # longer than SIGMA's Psi warm-up (sigma.Config.psi_warmup_steps), with room after it
# dense bf16 peak of one GPU, for the MFU in the log line (--peak-tflops for others)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
CKPT_NAME = "ckpt.pt"
EXIT_CODES = """exit codes: 0 done (or --stop-at), 1 error (a bad loss, a full disk), 2 bad arguments,
128 + signal (130 Ctrl-C, 143 SIGTERM): interrupted, saved, continue with --resume"""


# ----------------------------------------------------------------------------
# data: one dataset item -> the method's sampled frames


def sample_item(name, cfg, seed, item, index):
    """The loader's per-item transform: the method's frame-sampling rule on this
    item's clip, with all its randomness from a generator seeded by (seed, index).
    The raw clip and its ground-truth mask are dropped (the model never sees
    them); other keys (is_image, index, ...) are kept."""
    g = data.item_generator(seed, index, data.SAMPLE)
    sampled = METHODS[name].sample(item["video"][None], cfg, g)          # {key: (1, ...)}
    out = {k: v for k, v in item.items() if k not in ("video", "mask")}
    out.update({k: v[0] for k, v in sampled.items()})                    # {key: (...)}
    return out


def make_dataset(spec, cfg, seed):
    """--data: noise_square | shapes (either with :key=value options) | mixed | a folder of videos."""
    kind, options = data.world_spec(spec, cfg.img_size)
    if kind in data.SyntheticVideos.KINDS:
        return data.SyntheticVideos(kind, cfg.clip_len, cfg.img_size, seed=seed, **options)
    if spec == "mixed":   # moving shapes and still images (ViC-MAE, Fig. 2), in the method's proportion
        videos = data.SyntheticVideos("shapes", cfg.clip_len, cfg.img_size, seed=seed)
        images = data.StillImages(cfg.clip_len, cfg.img_size, seed=seed)
        return data.Mixed(videos, images, getattr(cfg, "image_fraction", 0.5), seed=seed)
    return data.VideoFolder(spec, cfg.clip_len, cfg.img_size, seed=seed)


# ----------------------------------------------------------------------------
# optimizer: AdamW, weight decay on matrices only, warmup + cosine


def lr_at(step, base_lr, warmup, total):
    """Linear warmup to base_lr over `warmup` steps, then cosine to 0 (MAE), per step."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


# ----------------------------------------------------------------------------
# checkpoints: one plain dict, written atomically, read with weights_only=True


def rng_state():
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, ckpt):
    """Write to a temporary file, then rename it over `path`: a crash or a full
    disk mid-write leaves the previous checkpoint intact."""
    tmp = path + ".tmp"
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:   # a full disk surfaces from torch's zip writer as a RuntimeError
        if os.path.exists(tmp):
            os.remove(tmp)
        reason = runs.first_line(e)
        kept = "the previous checkpoint is kept" if os.path.exists(path) else "no checkpoint was written"
        raise OSError(f"could not write {path} ({reason}); {kept}") from None


# torch.distributed.checkpoint is imported where used: it costs ~1 s, which a
# run that never saves (a failed argument check) need not pay.


def full_state(raw_model, optimizer):
    """Unsharded fp32 CPU state dicts of model and optimizer, keyed by parameter
    name, the same format in every mode (so any checkpoint loads anywhere).
    Under FSDP a collective: every rank calls it; rank 0 gets the full dicts."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return (get_model_state_dict(raw_model, options=opts),
            get_optimizer_state_dict(raw_model, optimizer, options=opts))


def load_full_state(raw_model, optimizer, ckpt):
    """The inverse of full_state, in place, into a plain, DDP-wrapped or
    FSDP-sharded model (each rank copies its shard out of the full tensors)."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(raw_model, ckpt["model"], options=opts)
    set_optimizer_state_dict(raw_model, optimizer, ckpt["optimizer"], options=opts)


def plot_losses(metrics_path, png_path):
    """loss.png: the logged loss against the step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(metrics_path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=os.path.basename(os.path.dirname(png_path)))
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------
# command line


def get_parser():
    p = argparse.ArgumentParser(prog="train.py", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                usage="%(prog)s --method NAME [options] (-h for all)",
                                epilog=EXIT_CODES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=list(METHODS), help="which method file to train")
    p.add_argument("--preset", choices=list(PRESETS), help="model and run size: tiny (CPU, default) or small (GPU)")
    p.add_argument("--data", help="noise_square (default) | shapes | mixed (videos + still images) | a video folder; "
                   "a toy world takes options: shapes:texture=0:n_shapes=4 (data.SyntheticVideos)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the method's Config, e.g. --set mask_ratio=0.5 (repeatable)")
    p.add_argument("--steps", type=int, help=f"optimizer steps (default: tiny {PRESETS['tiny']['steps']} "
                                             f"(sigma {TINY_STEPS['sigma']}), "
                                             f"small {PRESETS['small']['steps']})")
    p.add_argument("--batch-size", type=int, help="clips per optimizer step, all processes together "
                                                  f"(default: tiny {PRESETS['tiny']['batch_size']}, "
                                                  f"small {PRESETS['small']['batch_size']})")
    p.add_argument("--accum", type=int, help="micro-steps per optimizer step, gradient accumulation (default 1)")
    p.add_argument("--seed", type=int, help="seed of the model's init and of the data stream (default 0)")
    p.add_argument("--out", help="run folder for ckpt.pt, metrics.jsonl, loss.png (default runs/METHOD-PRESET)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint, exactly")
    p.add_argument("--log-every", type=int, help="steps between log lines (default: the preset's)")
    p.add_argument("--ckpt-every", type=int, help="steps between checkpoints, 0: only at the end (default: preset's)")
    p.add_argument("--stop-at", type=int, help="save and stop after this step, as an interruption would")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto (default): cuda if any")
    p.add_argument("--dist", choices=["ddp", "fsdp"], default="ddp", help="under torchrun: DDP (default) or FSDP2")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto (default): bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (no gain on CPU, slow start)")
    p.add_argument("--workers", type=int, help="data loader processes (default: 0 on CPU, 8 on CUDA)")
    p.add_argument("--peak-tflops", type=float, help="one device's peak TFLOP/s, for the MFU (known: H100, H200, A100)")
    return p


def print0(*args, **kwargs):
    if int(os.environ.get("RANK", 0)) == 0:
        print(*args, **kwargs, flush=True)


# settings that define a run: taken from the checkpoint on --resume (and must not contradict it)
RUN_KEYS = ("preset", "data", "batch_size", "accum", "seed", "set")


def parse_args(argv):
    """The command line -> (args with every default filled in, the method's
    Config, the checkpoint dict to resume from or None). Bad input ends here
    with a one-line usage error, before any process group or model exists."""
    parser = get_parser()
    args = parser.parse_args(argv)
    args.fail = parser.error
    args.out = args.out or f"runs/{args.method}-{args.preset or 'tiny'}"
    args.ckpt_path, resume = os.path.join(args.out, CKPT_NAME), None
    if args.resume:
        try:
            resume = read_checkpoint(args.ckpt_path)
        except (FileNotFoundError, ValueError) as e:
            parser.error(f"--resume: {e}")
        if resume["method"] != args.method:
            parser.error(f"--resume: {args.ckpt_path} is a {resume['method']} run, not {args.method}")
        missing = [k for k in ("optimizer", "rng", "train") if k not in resume]
        if "train" in resume:
            missing += [f"train.{k}" for k in RUN_KEYS + ("steps",) if k not in resume["train"]]
        if missing:
            parser.error(f"--resume: {args.ckpt_path} lacks {', '.join(missing)}: not a checkpoint of train.py's loop")
        for key in RUN_KEYS:
            given, saved = getattr(args, key), resume["train"][key]
            if given not in (None, []) and given != saved:
                parser.error(f"--resume: --{key.replace('_', '-')} {given} contradicts the checkpoint's {saved}")
            setattr(args, key, saved)
    preset = dict(PRESETS[args.preset or "tiny"])
    if (args.preset or "tiny") == "tiny":
        preset["steps"] = TINY_STEPS.get(args.method, preset["steps"])
    args.preset, args.data = args.preset or "tiny", args.data or "noise_square"
    args.seed = 0 if args.seed is None else args.seed
    args.accum = 1 if args.accum is None else args.accum
    for key in ("steps", "batch_size", "log_every", "ckpt_every"):
        if getattr(args, key) is None:
            setattr(args, key, resume["train"][key] if resume and key == "steps" else preset[key])
    for key in ("steps", "batch_size", "accum", "log_every"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1; got {getattr(args, key)}")
    if args.ckpt_every < 0 or (args.workers or 0) < 0:
        parser.error("--ckpt-every and --workers must be >= 0")
    start = resume["step"] if resume else 0
    if args.steps <= start:
        parser.error(f"--steps {args.steps}: the checkpoint is at step {start} already; give more steps to continue")
    if args.stop_at is not None and not start < args.stop_at <= args.steps:
        parser.error(f"--stop-at {args.stop_at} is never reached: it must be in ({start}, {args.steps}]")
    try:
        methods.device_for(args.device)   # the message for cuda asked for and absent (setup picks the rank's GPU)
    except ValueError as e:
        parser.error(str(e))
    try:   # a resumed run keeps its own config, even if the method's defaults changed since
        cfg = METHODS[args.method].Config(**resume["config"]) if resume else \
            build_config(args.method, args.preset, args.set)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    return args, cfg, resume


def setup(args):
    """One process, or one of many under torchrun: device, process group, precision.
    -> a namespace: distributed, use_cuda, device, own_group, rank, world, master,
    micro (clips per process per micro-step), bf16, autocast."""
    run = argparse.Namespace()
    run.distributed = "RANK" in os.environ or (dist.is_available() and dist.is_initialized())
    run.use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    run.device = torch.device(f"cuda:{local_rank}" if run.use_cuda else "cpu")
    run.own_group = run.distributed and not dist.is_initialized()   # tests create their own group; we reuse it
    if run.use_cuda:
        torch.cuda.set_device(run.device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if run.own_group:
        dist.init_process_group("nccl" if run.use_cuda else "gloo", timeout=timedelta(minutes=10))
    run.rank, run.world = (dist.get_rank(), dist.get_world_size()) if run.distributed else (0, 1)
    run.master = run.rank == 0
    if args.batch_size % (run.world * args.accum):
        args.fail(f"--batch-size {args.batch_size} must be divisible by processes x accum = {run.world * args.accum}")
    run.micro = args.batch_size // (run.world * args.accum)
    run.bf16 = args.precision == "bf16" or (args.precision == "auto" and run.use_cuda)
    run.autocast = torch.autocast(run.device.type, dtype=torch.bfloat16) if run.bf16 else nullcontext()
    return run


def make_data(args, cfg, run, start):
    """The items of step s are [s * batch, (s+1) * batch), split over ranks and
    micro-steps; the loader starts at step `start`."""
    try:
        dataset = make_dataset(args.data, cfg, args.seed)
    except (ValueError, FileNotFoundError) as e:
        args.fail(f"--data: {e}")
    workers = args.workers if args.workers is not None else (8 if run.use_cuda else 0)
    return data.make_loader(dataset, run.micro, rank=run.rank, world_size=run.world, workers=workers,
                            start_step=start * args.accum, seed=args.seed,
                            transform=partial(sample_item, args.method, cfg, args.seed))


def make_model(args, cfg, run):
    """The same init on every rank (FSDP shards it; DDP checks it) -> (model to
    call, the raw module underneath: its parameters, state dicts, clipping).
    args.parts: the model's constructor's keyword arguments (main's `parts`)."""
    torch.manual_seed(args.seed)
    model = raw_model = MODELS[args.method](cfg, **args.parts).to(run.device)
    torch.manual_seed(args.seed + run.rank)                       # anything random from here on differs per rank
    if run.distributed and run.use_cuda:   # BatchNorm (ViC-MAE's heads) over the global batch, as in one process;
        raw_model = model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)   # CPU/gloo lacks it
    if run.distributed and args.dist == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mesh = init_device_mesh(run.device.type, (run.world,))
        # bf16 compute copies of fp32 master weights; gradients reduced in fp32
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if run.bf16 else \
            MixedPrecisionPolicy()
        for m in raw_model.modules():
            if isinstance(m, (vit.Block, vit.CrossBlock)):
                fully_shard(m, mesh=mesh, mp_policy=mp)
        # the root does not cast the batch: mask noise and pixel targets stay fp32 (autocast does the rest)
        fully_shard(raw_model, mesh=mesh, mp_policy=dataclasses.replace(mp, cast_forward_inputs=False))
    if args.compile:
        model = torch.compile(model)
    if run.distributed and args.dist == "ddp":
        model = DDP(model, device_ids=[run.device.index] if run.use_cuda else None)
    return model, raw_model


def make_optimizer(args, cfg, raw_model, resume):
    """AdamW, lr = blr * global batch / 256 (MAE's scaling rule); on --resume the
    model, optimizer and RNG states come back from the checkpoint."""
    base_lr = cfg.blr * args.batch_size / 256
    # fused: one kernel for all parameters (CPU and CUDA), faster than the per-tensor loop (bench.py)
    optimizer = torch.optim.AdamW(methods.param_groups(raw_model, cfg.weight_decay), lr=base_lr,
                                  betas=tuple(cfg.betas), fused=True)
    if resume:
        try:
            load_full_state(raw_model, optimizer, resume)   # full state dicts load into any mode
        except (RuntimeError, KeyError, ValueError) as e:   # torch lists every mismatched key: keep the first line
            args.fail(f"--resume: the weights in {args.ckpt_path} do not fit {args.method} with its config "
                      f"({runs.first_line(e)})")
        set_rng_state(resume["rng"])
    return optimizer, base_lr


def checkpoint(args, cfg, run, raw_model, optimizer, step):
    """Model, optimizer, step, RNG, data stream, config, versions: a collective
    under FSDP (every rank calls it); rank 0 writes."""
    model_state, optim_state = full_state(raw_model, optimizer)
    if run.master:
        save_checkpoint(args.ckpt_path, {
            "model": model_state, "optimizer": optim_state, "step": step, "method": args.method,
            "config": dataclasses.asdict(cfg), "train": {k: getattr(args, k) for k in RUN_KEYS + ("steps",)},
            "rng": rng_state(), "data": {"spec": args.data, "seed": args.seed, "next_item": step * args.batch_size},
            "parts": {k: f"{f.__module__}.{f.__qualname__}" for k, f in args.parts.items()},
            "versions": {"torch": str(torch.__version__), "numpy": np.__version__,
                         "python": platform.python_version()}})


def read_metrics(path, up_to):
    """The lines of metrics.jsonl with step <= up_to. A line that does not parse
    (a crash mid-append leaves half a line) is dropped with a warning."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                step = json.loads(line)["step"] if line.strip() else None
            except (ValueError, KeyError, TypeError):
                print0(f"warning: {path} line {n} is not a metrics row (cut off by a crash?); dropped")
                continue
            if step is not None and step <= up_to:
                rows.append(line if line.endswith("\n") else line + "\n")
    return rows


def open_metrics(args, run, start):
    """metrics.jsonl: one line per log step; a resumed run drops the lines after
    its checkpoint. Rewritten to a temporary file and renamed over the old one,
    as save_checkpoint does: a full disk mid-write keeps the old history."""
    path = os.path.join(args.out, "metrics.jsonl")
    if run.master:
        rows = read_metrics(path, start) if start and os.path.exists(path) else []
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.writelines(rows)
            os.replace(tmp, path)
        except OSError as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise OSError(f"could not rewrite {path} ({e.strerror or e}); the previous one is kept") from None
    return path


def catch_signals():
    """SIGINT / SIGTERM set a flag: the loop finishes its step, saves and exits
    cleanly. -> (the flag, the previous handlers, restored at the end)."""
    stop = {"signal": None}

    def on_signal(signum, frame):
        stop["signal"] = signal.Signals(signum).name
    return stop, {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def format_eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train_loop(args, cfg, run, model, raw_model, optimizer, loader, base_lr, start, metrics_path, stop):
    """Optimizer steps from `start` to args.steps -> (the last step, why the loop
    ended early or None)."""
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items()
                                     if run.use_cuda and k in torch.cuda.get_device_name(run.device)), None)
    step, keys, flops_per_step = start, None, None
    saved = start if start else None   # the step of the checkpoint on disk, if any
    t_log, steps_since_log = time.time(), 0
    t_mean, steps_mean = None, 0   # the ETA's running mean of step time, from the end of the first step
    model.train()
    while step < args.steps:
        lr = lr_at(step, base_lr, cfg.warmup_steps, args.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        sums = None
        for micro_step in range(args.accum):
            batch = next(loader)
            batch = {k: v.to(run.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            batch["step"] = torch.tensor(step, device=run.device)     # for the methods' own schedules
            last = micro_step == args.accum - 1
            # gradients are averaged over processes only on the last micro-step
            if run.distributed and args.dist == "fsdp":
                raw_model.set_requires_gradient_sync(last)
            sync = model.no_sync() if run.distributed and args.dist == "ddp" and not last else nullcontext()
            count = step == start and micro_step == 0 and peak is not None and not args.compile
            counter = FlopCounterMode(display=False) if count else nullcontext()
            with sync, counter:
                with run.autocast:   # forward and loss only, never the optimizer step
                    outputs = model(batch)
                (outputs["loss"] / args.accum).backward()
            if count:
                flops_per_step = counter.get_total_flops() * args.accum
            keys = keys or [k for k in outputs if k != "loss"]
            vals = torch.stack([outputs["loss"].detach().float()] + [outputs[k].detach().float() for k in keys])
            sums = vals / args.accum if sums is None else sums + vals / args.accum
        # one small all-reduce: the logged means over the global batch, and every rank's stop flag
        stats = torch.cat([sums, torch.tensor([float(stop["signal"] is not None)], device=run.device)])
        if run.distributed:
            dist.all_reduce(stats)
            stats[:-1] /= run.world
        stats = stats.tolist()
        if not math.isfinite(stats[0]):   # before the update: the parameters and checkpoint stay good
            on_disk = (f"{args.ckpt_path} holds step {saved} (its losses are in metrics.jsonl: check them "
                       f"before resuming)" if saved is not None else "no checkpoint was written")
            return step, f"loss is {stats[0]} at step {step + 1}; stopped before the update, {on_disk}"
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_since_log += 1
        if t_mean is None:
            t_mean = time.time()   # the first step (warm-up, compilation) stays out of the ETA's mean
        else:
            steps_mean += 1

        if step % args.log_every == 0 or step == args.steps or step == start + 1:
            now = time.time()
            dt, t_log, steps_since_log = (now - t_log) / steps_since_log, now, 0
            mean_dt = (now - t_mean) / steps_mean if steps_mean else dt
            row = {"step": step, "loss": stats[0], **dict(zip(keys, stats[1:-1])), "lr": lr,
                   "ms_per_step": 1000 * dt, "clips_per_s": args.batch_size / dt, "threads": torch.get_num_threads()}
            line = f"step {step:>{len(str(args.steps))}}/{args.steps} | loss {stats[0]:.4f}"
            line += "".join(f" {k} {v:.4g}" for k, v in zip(keys, stats[1:-1]))
            line += f" | lr {lr:.2e} | {1000 * dt:.0f} ms/step | {args.batch_size / dt:.1f} clips/s"
            if flops_per_step:
                row["mfu"] = flops_per_step / dt / (peak * 1e12)
                line += f" | MFU {100 * row['mfu']:.1f}%"
            print0(line + f" | ETA {format_eta(mean_dt * (args.steps - step))}")
            if run.master:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
        if stats[-1] > 0 or step == args.stop_at:   # a signal on any rank, or --stop-at
            why = stop["signal"] or ("--stop-at" if step == args.stop_at else "a signal to another rank")
            return step, f"stopped by {why} at step {step}; continue with --resume"
        if args.ckpt_every and step % args.ckpt_every == 0 and step < args.steps:
            checkpoint(args, cfg, run, raw_model, optimizer, step)
            saved = step
    return step, None


def main(argv=None, parts=None):
    """parts {method: {keyword: function}}: a method's part replaced through its constructor (e.g.
    {"rvm": {"core_step": f}}, exercises/run.py); the same training path as the reference's."""
    args, cfg, resume = parse_args(argv)
    args.parts = (parts or {}).get(args.method, {})
    if resume and set(resume.get("parts", {})) != set(args.parts):   # a student's part is not in the checkpoint
        print0(f"note: the checkpoint was trained with parts {resume.get('parts', {})}; resuming with "
               f"{sorted(args.parts) or 'the reference'}", file=sys.stderr)
    run = setup(args)
    start = resume["step"] if resume else 0
    loader = make_data(args, cfg, run, start)
    try:   # a config that passes its own checks but not a layer's: still one line
        model, raw_model = make_model(args, cfg, run)
    except ValueError as e:
        args.fail(f"--set: {e}")
    optimizer, base_lr = make_optimizer(args, cfg, raw_model, resume)
    if run.master:   # after data, model and resume are checked: a run that fails its input leaves no folder
        os.makedirs(args.out, exist_ok=True)
    print0(f"{args.method} ({args.preset}): {vit.count_params(raw_model) / 1e6:.2f}M parameters | "
           f"{run.world} x {run.device.type}{' ' + args.dist if run.distributed else ''} | "
           f"{'bf16' if run.bf16 else 'fp32'} | batch {args.batch_size} = {run.world} x {args.accum} x {run.micro} | "
           f"lr {base_lr:.2e} | data {args.data} | steps {start}->{args.steps} | out {args.out}")
    metrics_path = open_metrics(args, run, start)
    stop, handlers = catch_signals()
    try:   # the handlers go back even when a write fails (a full disk) half-way through the end
        step, ended = train_loop(args, cfg, run, model, raw_model, optimizer, loader, base_lr, start, metrics_path,
                                 stop)
        # the end: a final checkpoint (unless the loss went bad), the loss curve, the process group
        failed = ended is not None and ended.startswith("loss is")
        if not failed:
            checkpoint(args, cfg, run, raw_model, optimizer, step)
        if run.master and os.path.getsize(metrics_path) > 0:
            plot_losses(metrics_path, os.path.join(args.out, "loss.png"))
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    if run.own_group:
        dist.barrier()
        dist.destroy_process_group()
    if failed:
        print0(f"error: {ended}", file=sys.stderr)
        sys.exit(1)
    print0(ended or f"done: {step} steps; checkpoint {args.ckpt_path}, metrics {metrics_path}, loss curve "
           f"{os.path.join(args.out, 'loss.png')}")
    if ended and "--stop-at" not in ended:   # interrupted: saved, but not finished (as shells: 128 + signal)
        sys.exit(128 + (signal.Signals[stop["signal"]] if stop["signal"] else signal.SIGINT))


if __name__ == "__main__":
    try:
        main()
    except OSError as e:   # a full disk, an unwritable --out: one line; what is on disk stays as the message says
        print0(f"error: {e}", file=sys.stderr)
        sys.exit(1)
