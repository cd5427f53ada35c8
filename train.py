"""One training script for all four methods: CPU, one GPU, or many with torchrun.

Examples:
    python train.py --method rvm --preset tiny                        # CPU, minutes (make demo)
    python train.py --method siammae --preset small --data PATH        # one GPU
    torchrun --standalone --nproc_per_node 8 train.py --method sigma --preset small --data PATH --dist fsdp
    torchrun --nnodes 2 --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
             --nproc_per_node 8 train.py ...                           # on each of 2 nodes
    python train.py --method rvm --out runs/rvm-tiny --resume          # continue a run exactly

It reads top to bottom in the order of a run: the settings (the command line), the data, the model, the optimizer,
the checkpoint, the loop, and `main`, which calls them in that order. The method file owns the method (its Config,
its frame-sampling rule `sample`, its loss); this file only optimizes. runs.py owns what a run folder is.

Why distributed training and resuming are exact: a method's `sample` draws all the randomness of a step (frames,
mask noise) from a generator seeded by (seed, dataset index), and its forward pass is a pure function of the batch.
Step s always sees the dataset items [s * batch, (s + 1) * batch), however they are split over processes and
micro-steps, so 2 DDP processes make the same update as 1 process with the whole batch (up to float summation
order), and a run resumed from a checkpoint (which stores the step) continues as if it had never stopped.
"""
import argparse
import dataclasses
import enum
import json
import math
import os
import platform
import random
import signal
import sys
import time
from contextlib import nullcontext, suppress
from datetime import timedelta
from functools import partial

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.flop_counter import FlopCounterMode

import data
import methods
import runs
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
EXIT_CODES = """exit codes: 0 done (or --stop-at), 1 error (a bad loss, a full disk), 2 bad arguments,
128 + signal (130 Ctrl-C, 143 SIGTERM): interrupted, saved, continue with --resume"""
# settings that define a run: taken from the checkpoint on --resume (and must not contradict it)
RUN_KEYS = ("preset", "data", "batch_size", "accum", "seed", "set")
MAX_SEED = 2 ** 63 - 1   # torch.manual_seed and the data's generators take a signed 64-bit seed


# ----------------------------------------------------------------------------
# settings: the command line (and, on --resume, the checkpoint), fixed once read


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that defines this run besides the method's Config. Frozen: read once, then only read."""
    method: str
    preset: str
    data: str
    set: tuple
    steps: int
    batch_size: int
    accum: int
    seed: int
    out: str
    resume: bool
    overwrite: bool
    log_every: int
    ckpt_every: int
    stop_at: int
    device: str
    dist: str
    precision: str
    compile: bool
    workers: int
    peak_tflops: float
    verbose: bool

    @property
    def ckpt_path(self):
        return os.path.join(self.out, runs.CKPT_NAME)


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
    p.add_argument("--seed", type=int, help="seed of the model's init and of the data stream, 0..2^63-1 (default 0)")
    p.add_argument("--out", help="run folder for ckpt.pt, metrics.jsonl, loss.png (default runs/METHOD-PRESET); "
                   "a fresh run needs a folder that holds no run")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint, exactly")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds a run, after moving that run aside to OUT.old-TIME")
    p.add_argument("--auto-resume", action="store_true",
                   help="--resume if --out holds a checkpoint (nothing to do if it is finished), else start afresh "
                        "(a run cut before its first checkpoint moved aside): what make demo uses")
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
    p.add_argument("--verbose", action="store_true",
                   help="the method's own diagnostics on the log line too (they are always in metrics.jsonl)")
    return p


def bad_input(message):
    """Bad input ends here: argparse's usage line and one `error:` line, exit 2."""
    get_parser().error(message)


def print0(*args, **kwargs):
    if int(os.environ.get("RANK", 0)) == 0:
        print(*args, **kwargs, flush=True)


def read_resume(ckpt_path, method):
    """The checkpoint to continue, checked to be one of train.py's loop for this method."""
    try:
        resume = read_checkpoint(ckpt_path)
    except (FileNotFoundError, ValueError) as e:
        bad_input(f"--resume: {e}")
    if resume["method"] != method:
        bad_input(f"--resume: {ckpt_path} is a {resume['method']} run, not {method}")
    missing = [k for k in ("optimizer", "rng", "train") if k not in resume]
    if "train" in resume:
        missing += [f"train.{k}" for k in RUN_KEYS + ("steps",) if k not in resume["train"]]
    if missing:
        bad_input(f"--resume: {ckpt_path} lacks {', '.join(missing)}: not a checkpoint of train.py's loop")
    return resume


def parse_args(argv):
    """The command line -> (Settings with every default filled in, the method's Config, the checkpoint to resume
    from or None). Bad input ends here in one line, before any process group, model or folder exists."""
    a = get_parser().parse_args(argv)
    out = a.out or f"runs/{a.method}-{a.preset or 'tiny'}"
    if a.auto_resume and not (a.resume or a.overwrite) and runs.check_out_folder(out) is None:
        a.resume = os.path.isfile(os.path.join(out, runs.CKPT_NAME))
        a.overwrite = not a.resume and runs.holds_run(out)
    if a.overwrite and a.resume:
        bad_input("--overwrite starts afresh and --resume continues: give one of them")
    reason = runs.check_run_folder(out, resume=a.resume or a.overwrite)
    if reason:
        bad_input(reason)
    resume = read_resume(os.path.join(out, runs.CKPT_NAME), a.method) if a.resume else None
    given = {"preset": a.preset, "data": a.data, "batch_size": a.batch_size, "accum": a.accum, "seed": a.seed,
             "set": a.set}
    if resume:
        for key, saved in ((k, resume["train"][k]) for k in RUN_KEYS):
            if given[key] not in (None, []) and given[key] != saved:
                bad_input(f"--resume: --{key.replace('_', '-')} {given[key]} contradicts the checkpoint's {saved}")
            given[key] = saved
    preset = given["preset"] or "tiny"
    defaults = dict(PRESETS[preset], steps=(resume["train"]["steps"] if resume else
                                            TINY_STEPS.get(a.method, PRESETS["tiny"]["steps"]) if preset == "tiny"
                                            else PRESETS[preset]["steps"]))
    pick = lambda value, key: defaults[key] if value is None else value
    s = Settings(method=a.method, preset=preset, data=given["data"] or "noise_square", set=tuple(given["set"]),
                 steps=pick(a.steps, "steps"), batch_size=pick(given["batch_size"], "batch_size"),
                 accum=1 if given["accum"] is None else given["accum"],
                 seed=0 if given["seed"] is None else given["seed"], out=out, resume=a.resume,
                 overwrite=a.overwrite, log_every=pick(a.log_every, "log_every"),
                 ckpt_every=pick(a.ckpt_every, "ckpt_every"), stop_at=a.stop_at, device=a.device, dist=a.dist,
                 precision=a.precision, compile=a.compile, workers=a.workers, peak_tflops=a.peak_tflops,
                 verbose=a.verbose)
    if a.auto_resume and resume and resume["step"] >= s.steps:
        print0(f"{s.ckpt_path} is finished (step {resume['step']} of {s.steps}): nothing to do")
        raise SystemExit(0)
    check_numbers(s, resume["step"] if resume else 0)
    return s, make_config(s, resume), resume


def check_numbers(s, start):
    """The numeric flags' ranges, each error naming its flag."""
    for key in ("steps", "batch_size", "accum", "log_every"):
        if getattr(s, key) < 1:
            bad_input(f"--{key.replace('_', '-')} must be >= 1; got {getattr(s, key)}")
    if s.ckpt_every < 0 or (s.workers or 0) < 0:
        bad_input("--ckpt-every and --workers must be >= 0")
    if not 0 <= s.seed <= MAX_SEED:
        bad_input(f"--seed must be in [0, 2^63 - 1]; got {s.seed}")
    if s.steps <= start:
        bad_input(f"--steps {s.steps}: the checkpoint is at step {start} already; give more steps to continue")
    if s.stop_at is not None and not start < s.stop_at <= s.steps:
        bad_input(f"--stop-at {s.stop_at} is never reached: it must be in ({start}, {s.steps}]")
    if s.peak_tflops is not None and not (math.isfinite(s.peak_tflops) and s.peak_tflops > 0):
        bad_input(f"--peak-tflops must be a number > 0; got {s.peak_tflops}")
    try:
        methods.device_for(s.device)   # the message for cuda asked for and absent (setup picks the rank's GPU)
    except ValueError as e:
        bad_input(str(e))


def check_optimizer(cfg):
    """The optimizer's fields of a method's Config (blr, weight_decay, grad_clip, warmup_steps, betas): a one-line
    ValueError naming the field, before AdamW fails on it."""
    vit.check_number(cfg, "blr", positive=True)
    for k in ("weight_decay", "grad_clip", "warmup_steps"):
        vit.check_number(cfg, k)
    if not (isinstance(cfg.betas, (tuple, list)) and len(cfg.betas) == 2 and
            all(isinstance(b, (int, float)) and 0 <= b < 1 for b in cfg.betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), e.g. 0.9,0.95; got {cfg.betas!r}")


def make_config(s, resume):
    """The method's Config: the preset with --set, or on --resume the checkpoint's own (fields it lacks, from a
    checkpoint older than the code, are named and filled by methods.config_from_checkpoint)."""
    try:
        cfg, filled = methods.config_from_checkpoint(resume) if resume else \
            (build_config(s.method, s.preset, list(s.set)), [])
        check_optimizer(cfg)
    except (ValueError, TypeError) as e:
        bad_input(f"--resume: {s.ckpt_path}: {e}" if resume else str(e))
    if filled:
        print0(f"note: {s.ckpt_path} predates config fields {', '.join(filled)}; they take the values it was "
               f"trained with (or the {s.preset} preset's)", file=sys.stderr)
    return cfg


# ----------------------------------------------------------------------------
# where the run happens: processes, device, precision


@dataclasses.dataclass(frozen=True)
class Place:
    """One process, or one of many under torchrun."""
    distributed: bool
    own_group: bool   # we made the process group (tests make their own, which we reuse)
    use_cuda: bool
    device: torch.device
    rank: int
    world: int
    micro: int        # clips per process per micro-step
    bf16: bool

    @property
    def master(self):
        return self.rank == 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()


def setup(s):
    """Device, process group and precision for this process."""
    distributed = "RANK" in os.environ or (dist.is_available() and dist.is_initialized())
    use_cuda = s.device == "cuda" or (s.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
    own_group = distributed and not dist.is_initialized()
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if own_group:
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=10))
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if s.batch_size % (world * s.accum):
        bad_input(f"--batch-size {s.batch_size} must be divisible by processes x accum = {world * s.accum}")
    return Place(distributed=distributed, own_group=own_group, use_cuda=use_cuda, device=device, rank=rank,
                 world=world, micro=s.batch_size // (world * s.accum),
                 bf16=s.precision == "bf16" or (s.precision == "auto" and use_cuda))


# ----------------------------------------------------------------------------
# data: one dataset item -> the method's sampled frames


def sample_item(name, cfg, seed, item, index):
    """The loader's per-item transform: the method's frame-sampling rule on this item's clip, with all its randomness
    from a generator seeded by (seed, index). The raw clip and its ground-truth mask are dropped (the model never sees
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


def check_memory(s, cfg, place):
    """Refuse a micro-batch whose sampled frames alone exceed the free memory (the activations need several times
    more), before the loader spends minutes making it. A batch that fits this floor and not the activations is
    caught as it fails (main)."""
    clip = torch.zeros(1, cfg.clip_len, 3, cfg.img_size, cfg.img_size)
    one = sum(v.nbytes for v in METHODS[s.method].sample(clip, cfg, torch.Generator().manual_seed(0)).values())
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):   # not on Linux: no floor to check
        return
    if place.micro * one > free:
        bad_input(f"--batch-size {s.batch_size}: its {place.micro} clips per micro-step need "
                  f"{place.micro * one / 2**30:.1f} GiB for the frames alone, and {free / 2**30:.1f} GiB are free; "
                  f"give a smaller --batch-size, or --accum N to split it")


def make_data(s, cfg, place, start):
    """The items of step s are [s * batch, (s+1) * batch), split over ranks and micro-steps; the loader starts at
    step `start`."""
    try:
        dataset = make_dataset(s.data, cfg, s.seed)
    except (ValueError, FileNotFoundError) as e:
        bad_input(f"--data: {e}")
    workers = s.workers if s.workers is not None else (8 if place.use_cuda else 0)
    return data.make_loader(dataset, place.micro, rank=place.rank, world_size=place.world, workers=workers,
                            start_step=start * s.accum, seed=s.seed,
                            transform=partial(sample_item, s.method, cfg, s.seed))


# ----------------------------------------------------------------------------
# model: the same init on every rank; FSDP shards it, DDP checks it


def make_model(s, cfg, place, parts):
    """-> (model to call, the raw module underneath: its parameters, state dicts, clipping).
    parts: the model's constructor's keyword arguments (main's `parts`)."""
    torch.manual_seed(s.seed)
    try:   # a config that passes its own checks but not a layer's: still one line
        model = raw_model = MODELS[s.method](cfg, **parts).to(place.device)
    except ValueError as e:
        bad_input(f"--set: {e}")
    torch.manual_seed(s.seed + place.rank)                        # anything random from here on differs per rank
    if place.distributed and place.use_cuda:   # BatchNorm (ViC-MAE's heads) over the global batch, as in one
        raw_model = model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)   # process; gloo lacks it
    if place.distributed and s.dist == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mesh = init_device_mesh(place.device.type, (place.world,))
        # bf16 compute copies of fp32 master weights; gradients reduced in fp32
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if place.bf16 else \
            MixedPrecisionPolicy()
        for m in raw_model.modules():
            if isinstance(m, (vit.Block, vit.CrossBlock)):
                fully_shard(m, mesh=mesh, mp_policy=mp)
        # the root does not cast the batch: mask noise and pixel targets stay fp32 (autocast does the rest)
        fully_shard(raw_model, mesh=mesh, mp_policy=dataclasses.replace(mp, cast_forward_inputs=False))
    if s.compile:
        model = torch.compile(model)
    if place.distributed and s.dist == "ddp":
        model = DDP(model, device_ids=[place.device.index] if place.use_cuda else None)
    return model, raw_model


# ----------------------------------------------------------------------------
# optimizer: AdamW, weight decay on matrices only, warmup + cosine


def lr_at(step, base_lr, warmup, total):
    """Linear warmup to base_lr over `warmup` steps, then cosine to 0 (MAE), per step."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def warmup_for(s, cfg):
    """The lr warm-up of this run. MAE's warm-up is a share of the whole schedule (40 of 400-800 epochs), and each
    Config gives it in steps for its preset's full-length run (PRESETS, TINY_STEPS). A shorter run (claims.py trains
    the small preset for a few thousand steps) warms up over the same share of its own length, so it reaches its peak
    lr and decays; a run as long or longer keeps the Config's steps."""
    full = TINY_STEPS.get(s.method, PRESETS["tiny"]["steps"]) if s.preset == "tiny" else PRESETS[s.preset]["steps"]
    if cfg.warmup_steps == 0 or s.steps >= full:
        return cfg.warmup_steps
    return max(1, round(cfg.warmup_steps * s.steps / full))


def make_optimizer(s, cfg, raw_model, resume):
    """AdamW, lr = blr * global batch / 256 (MAE's scaling rule); on --resume the model, optimizer and RNG states
    come back from the checkpoint."""
    base_lr = cfg.blr * s.batch_size / 256
    # fused: one kernel for all parameters (CPU and CUDA), faster than the per-tensor loop (bench.py)
    optimizer = torch.optim.AdamW(methods.param_groups(raw_model, cfg.weight_decay), lr=base_lr,
                                  betas=tuple(cfg.betas), fused=True)
    if resume:
        try:
            load_full_state(raw_model, optimizer, resume)   # full state dicts load into any mode
        except (RuntimeError, KeyError, ValueError) as e:   # torch lists every mismatched key: keep the first line
            bad_input(f"--resume: the weights in {s.ckpt_path} do not fit {s.method} with its config "
                      f"({runs.first_line(e)})")
        set_rng_state(resume["rng"])
    return optimizer, base_lr


# ----------------------------------------------------------------------------
# checkpoints: one plain dict, written atomically (runs.write_atomic), read with weights_only=True


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
    """Whole or not at all: a crash or a full disk mid-write leaves the previous checkpoint as it was."""
    runs.write_atomic(path, lambda tmp: torch.save(ckpt, tmp))


# torch.distributed.checkpoint is imported where used: it costs ~1 s, which a run that never saves (a failed
# argument check) need not pay.


def full_state(raw_model, optimizer):
    """Unsharded fp32 CPU state dicts of model and optimizer, keyed by parameter name, the same format in every mode
    (so any checkpoint loads anywhere). Under FSDP a collective: every rank calls it; rank 0 gets the full dicts."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return (get_model_state_dict(raw_model, options=opts),
            get_optimizer_state_dict(raw_model, optimizer, options=opts))


def load_full_state(raw_model, optimizer, ckpt):
    """The inverse of full_state, in place, into a plain, DDP-wrapped or FSDP-sharded model (each rank copies its
    shard out of the full tensors)."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)
    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(raw_model, ckpt["model"], options=opts)
    set_optimizer_state_dict(raw_model, optimizer, ckpt["optimizer"], options=opts)


def checkpoint(s, cfg, place, raw_model, optimizer, step, parts):
    """Model, optimizer, step, RNG, data stream, config, versions: a collective under FSDP (every rank calls it);
    rank 0 writes."""
    model_state, optim_state = full_state(raw_model, optimizer)
    if place.master:
        save_checkpoint(s.ckpt_path, {
            "model": model_state, "optimizer": optim_state, "step": step, "method": s.method,
            "config": dataclasses.asdict(cfg), "train": {k: list(v) if k == "set" else v for k, v in
                                                         ((k, getattr(s, k)) for k in RUN_KEYS + ("steps",))},
            "rng": rng_state(), "data": {"spec": s.data, "seed": s.seed, "next_item": step * s.batch_size},
            "parts": {k: f"{f.__module__}.{f.__qualname__}" for k, f in parts.items()},
            "versions": {"torch": str(torch.__version__), "numpy": np.__version__,
                         "python": platform.python_version()}})


# ----------------------------------------------------------------------------
# the run folder: claimed (checked, locked) before the first step; metrics and the loss curve


def claim_folder(s, place):
    """Rank 0 takes the run folder: a fresh run's folder must hold no run (parse_args checked it; --overwrite moves
    the old run aside first), and one process at a time writes it (runs.RunLock). -> the held lock, or None."""
    if not place.master:
        return None
    try:
        if s.overwrite and runs.holds_run(s.out):
            runs.RunLock(s.out).acquire()   # never while another process trains into it; the lock moves along
            moved = runs.move_aside(s.out)
            os.remove(os.path.join(moved, runs.LOCK_NAME))
            print0(f"note: --overwrite: the run that was in {s.out} is now in {moved}", file=sys.stderr)
        created = not os.path.isdir(s.out)
        os.makedirs(s.out, exist_ok=True)
        lock = runs.RunLock(s.out).acquire()
    except RuntimeError as e:
        bad_input(str(e))
    lock.created = created
    if not s.resume and runs.holds_run(s.out):   # another fresh run got here between our check and our lock
        lock.release()
        bad_input(runs.check_run_folder(s.out, resume=False))
    return lock


def open_metrics(s, place, start):
    """metrics.jsonl: one line per log step; a resumed run drops the lines after its checkpoint (rewritten whole or
    not at all: a full disk keeps the old history)."""
    path = os.path.join(s.out, runs.METRICS_NAME)
    if place.master:
        rows = runs.read_metrics(path, start, warn=print0) if start and os.path.exists(path) else []
        runs.write_atomic(path, "".join(rows))
    return path


def plot_losses(metrics_path, png_path):
    """loss.png: the logged loss against the step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [json.loads(line) for line in runs.read_metrics(metrics_path)]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=os.path.basename(os.path.dirname(png_path)))
    fig.tight_layout()
    runs.write_atomic(png_path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


# ----------------------------------------------------------------------------
# the loop


class Status(enum.Enum):
    """Why the loop ended."""
    FINISHED = "finished"
    SIGNAL = "stopped by a signal"
    STOP_AT = "stopped at --stop-at"
    NONFINITE = "the loss is not finite"
    OUT_OF_MEMORY = "out of memory"


@dataclasses.dataclass
class Ended:
    status: Status
    step: int            # the last step whose update was applied (the one a checkpoint then holds)
    detail: str = ""     # the signal's name, or the bad loss


class StepAbandoned(Exception):
    """Raised by the signal handler inside a step's forward/backward (one process only)."""


class Signals:
    """SIGINT / SIGTERM stop the run. Between steps they set a flag the loop reads after each step. In one process,
    a signal during a step's data, forward or backward also abandons that step at once (StepAbandoned), so a very long
    step ends within seconds: the parameters change only in the optimizer's update, which is never cut, so the model
    is the last step's. Under torchrun every rank must finish the step's collectives, so there only the flag is set
    (and all-reduced: all ranks stop after the same step)."""

    def __init__(self, abandon_steps):
        self.name, self.in_step, self.abandon_steps, self.previous = None, False, abandon_steps, {}

    def handle(self, signum, frame):
        self.name = signal.Signals(signum).name
        if self.abandon_steps and self.in_step:
            self.in_step = False
            raise StepAbandoned(self.name)

    def __enter__(self):
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)


def forward_backward(s, place, model, raw_model, loader, step, count_flops):
    """One optimizer step's gradients over s.accum micro-steps -> (the logged outputs' means as one tensor, their
    keys, the step's FLOPs or None)."""
    sums, keys, flops = None, None, None
    for micro_step in range(s.accum):
        batch = next(loader)
        batch = {k: v.to(place.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        batch["step"] = torch.tensor(step, device=place.device)     # for the methods' own schedules
        last = micro_step == s.accum - 1
        # gradients are averaged over processes only on the last micro-step
        if place.distributed and s.dist == "fsdp":
            raw_model.set_requires_gradient_sync(last)
        sync = model.no_sync() if place.distributed and s.dist == "ddp" and not last else nullcontext()
        counter = FlopCounterMode(display=False) if count_flops and micro_step == 0 else nullcontext()
        with sync, counter:
            with place.autocast():   # forward and loss only, never the optimizer step
                outputs = model(batch)
            (outputs["loss"] / s.accum).backward()
        if isinstance(counter, FlopCounterMode):
            flops = counter.get_total_flops() * s.accum
        keys = keys or [k for k in outputs if k != "loss"]
        vals = torch.stack([outputs["loss"].detach().float()] + [outputs[k].detach().float() for k in keys])
        sums = vals / s.accum if sums is None else sums + vals / s.accum
    return sums, keys, flops


class Log:
    """The log line (step, loss, lr, ms/step, clips/s, ETA; MFU where the peak is known; the method's diagnostics
    with --verbose) and metrics.jsonl (everything, always)."""

    def __init__(self, s, place, path, start, peak):
        self.s, self.place, self.path, self.start, self.peak = s, place, path, start, peak
        self.t_log, self.since_log = time.time(), 0
        self.t_mean, self.steps_mean = None, 0   # the ETA's mean step time, from the end of the first step

    def tick(self):
        self.since_log += 1
        if self.t_mean is None:
            self.t_mean = time.time()   # the first step (warm-up, compilation) stays out of the ETA's mean
        else:
            self.steps_mean += 1

    def due(self, step):
        return step % self.s.log_every == 0 or step == self.s.steps or step == self.start + 1

    def write(self, step, loss, extras, lr, flops):
        now = time.time()
        dt, self.t_log, self.since_log = (now - self.t_log) / self.since_log, now, 0
        mean_dt = (now - self.t_mean) / self.steps_mean if self.steps_mean else dt
        s = self.s
        row = {"step": step, "loss": loss, **extras, "lr": lr, "ms_per_step": 1000 * dt,
               "clips_per_s": s.batch_size / dt, "threads": torch.get_num_threads()}
        line = f"step {step:>{len(str(s.steps))}}/{s.steps} | loss {loss:.4f}"
        if s.verbose:
            line += "".join(f" {k} {v:.4g}" for k, v in extras.items())
        line += f" | lr {lr:.2e} | {1000 * dt:.0f} ms/step | {s.batch_size / dt:.1f} clips/s"
        if flops:
            row["mfu"] = flops / dt / (self.peak * 1e12)
            line += f" | MFU {100 * row['mfu']:.1f}%"
        print0(line + f" | ETA {format_eta(mean_dt * (s.steps - step))}")
        if self.place.master:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def format_eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train_loop(s, cfg, place, model, raw_model, optimizer, loader, base_lr, start, log, signals, save):
    """Optimizer steps from `start` to s.steps -> Ended. save(step) writes a checkpoint."""
    step, flops, warmup = start, None, warmup_for(s, cfg)
    count_flops = log.peak is not None and not s.compile
    model.train()
    while step < s.steps:
        lr = lr_at(step, base_lr, warmup, s.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
            if "decay_from" in group:   # methods.param_groups: weights decayed only from that step on
                group["weight_decay"] = cfg.weight_decay if step >= group["decay_from"] else 0.0
        try:
            signals.in_step = True
            sums, keys, measured = forward_backward(s, place, model, raw_model, loader, step,
                                                    count_flops and step == start)
            signals.in_step = False
        except StepAbandoned:   # the half-made gradients go; the parameters are the last step's
            optimizer.zero_grad(set_to_none=True)
            return Ended(Status.SIGNAL, step, signals.name)
        flops = measured or flops
        # one small all-reduce: the logged means over the global batch, and every rank's stop flag
        stats = torch.cat([sums, torch.tensor([float(signals.name is not None)], device=place.device)])
        if place.distributed:
            dist.all_reduce(stats)
            stats[:-1] /= place.world
        stats = stats.tolist()
        if not math.isfinite(stats[0]):   # before the update: the parameters and checkpoint stay good
            return Ended(Status.NONFINITE, step, str(stats[0]))
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.tick()
        if log.due(step):
            log.write(step, stats[0], dict(zip(keys, stats[1:-1])), lr, flops)
        if stats[-1] > 0:   # a signal on any rank
            return Ended(Status.SIGNAL, step, signals.name or "a signal to another rank")
        if step == s.stop_at:
            return Ended(Status.STOP_AT, step)
        if s.ckpt_every and step % s.ckpt_every == 0 and step < s.steps:
            save(step)
    return Ended(Status.FINISHED, step)


# ----------------------------------------------------------------------------
# main: the sections above, in order


def is_out_of_memory(e):
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or \
        (isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e)))


def main(argv=None, parts=None):
    """parts {method: {keyword: function}}: a method's part replaced through its constructor (e.g.
    {"sigma": {"sinkhorn": f}}, exercises/run.py); the same training path as the reference's."""
    s, cfg, resume = parse_args(argv)
    parts = (parts or {}).get(s.method, {})
    if resume and set(resume.get("parts", {})) != set(parts):   # a student's part is not in the checkpoint
        print0(f"note: the checkpoint was trained with parts {resume.get('parts', {})}; resuming with "
               f"{sorted(parts) or 'the reference'}", file=sys.stderr)
    place = setup(s)
    start = resume["step"] if resume else 0
    check_memory(s, cfg, place)
    loader = make_data(s, cfg, place, start)
    model, raw_model = make_model(s, cfg, place, parts)
    optimizer, base_lr = make_optimizer(s, cfg, raw_model, resume)
    lock = claim_folder(s, place)   # after every input check: a run that fails its input leaves no folder
    try:
        ended = train_and_save(s, cfg, place, model, raw_model, optimizer, loader, base_lr, start, parts)
    finally:
        if lock:
            lock.release()
    if ended.status == Status.OUT_OF_MEMORY and lock and lock.created:   # the folder made for this run goes too
        with suppress(OSError):
            os.remove(os.path.join(s.out, runs.METRICS_NAME))
            os.rmdir(s.out)
    if place.own_group:
        dist.barrier()
        dist.destroy_process_group()
    finish(s, ended, start)


def train_and_save(s, cfg, place, model, raw_model, optimizer, loader, base_lr, start, parts):
    """The loop and what follows it: the last checkpoint (unless the loss went bad) and the loss curve -> Ended."""
    print0(f"{s.method} ({s.preset}): {vit.count_params(raw_model) / 1e6:.2f}M parameters | "
           f"{place.world} x {place.device.type}{' ' + s.dist if place.distributed else ''} | "
           f"{'bf16' if place.bf16 else 'fp32'} | batch {s.batch_size} = {place.world} x {s.accum} x {place.micro} | "
           f"lr {base_lr:.2e} | data {s.data} | steps {start}->{s.steps} | out {s.out}")
    metrics_path = open_metrics(s, place, start)
    peak = s.peak_tflops or next((v for k, v in PEAK_TFLOPS.items()
                                  if place.use_cuda and k in torch.cuda.get_device_name(place.device)), None)
    log = Log(s, place, metrics_path, start, peak)
    save = partial(checkpoint, s, cfg, place, raw_model, optimizer, parts=parts)
    with Signals(abandon_steps=not place.distributed) as signals:
        try:
            ended = train_loop(s, cfg, place, model, raw_model, optimizer, loader, base_lr, start, log, signals, save)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            ended = Ended(Status.OUT_OF_MEMORY, start, runs.first_line(e))
        if ended.status not in (Status.NONFINITE, Status.OUT_OF_MEMORY):   # the handlers stay ours until the
            # last write is done
            save(ended.step)
        if place.master and os.path.getsize(metrics_path) > 0:
            plot_losses(metrics_path, os.path.join(s.out, "loss.png"))
    return ended


def finish(s, ended, start):
    """The last line, and the exit code EXIT_CODES promises."""
    if ended.status == Status.OUT_OF_MEMORY:
        print0(f"error: --batch-size {s.batch_size} does not fit in memory ({ended.detail}); give a smaller "
               f"--batch-size, or --accum N to split it", file=sys.stderr)
        sys.exit(2)
    if ended.status == Status.NONFINITE:
        on_disk = (f"{s.ckpt_path} holds step {saved_step(s)} (its losses are in metrics.jsonl: check them before "
                   f"resuming)" if os.path.exists(s.ckpt_path) else "no checkpoint was written")
        print0(f"error: loss is {ended.detail} at step {ended.step + 1}; stopped before the update, {on_disk}",
               file=sys.stderr)
        sys.exit(1)
    if ended.status == Status.FINISHED:
        print0(f"done: {ended.step} steps; checkpoint {s.ckpt_path}, metrics {os.path.join(s.out, runs.METRICS_NAME)},"
               f" loss curve {os.path.join(s.out, 'loss.png')}")
        return
    why = "--stop-at" if ended.status == Status.STOP_AT else ended.detail
    print0(f"stopped by {why} at step {ended.step}; continue with --resume")
    if ended.status == Status.SIGNAL:   # saved, but not finished: as shells do, 128 + the signal
        sys.exit(128 + getattr(signal.Signals, ended.detail, signal.SIGINT))


def saved_step(s):
    try:
        return read_checkpoint(s.ckpt_path)["step"]
    except (FileNotFoundError, ValueError):
        return "?"


if __name__ == "__main__":
    try:
        main()
    except OSError as e:   # a full disk, an unwritable --out: one line; what is on disk stays as the message says
        print0(f"error: {e}", file=sys.stderr)
        sys.exit(1)
