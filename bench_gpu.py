"""bench.py --gpu-check (issue 44 sec. 4): every GPU path of the project on one CUDA device, a row each, within the
eight minutes the issue gives. For each method's small preset, 30 training steps with bf16 autocast and SDPA (the
attention kernel that ran, from the profiler's op names), eager, under train.py's FSDP2 over a world of one process,
and torch.compile'd; tokens/s, MFU over the bf16 matmul peak measured in the same run, peak memory; then train.py for
5 steps, evaluate.py's probes on that checkpoint and the DAVIS fixture through evaluate.py --davis, all on the
device. It writes gpu_check.json and gpu_check.md in --out and the GPU section of docs/performance.md, after every
row.

    python bench.py --gpu-check [--preset small] [--out runs/bench] [--doc docs/performance.md]
"""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from functools import partial

import torch
import torch.distributed as dist

import bench
import methods
import runs


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
        bench.sync(device)
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
    batch = bench.make_batch(name, cfg, B, device)
    torch.manual_seed(0)
    plain = methods.MODELS[name](cfg).to(device)
    flops = bench.step_flops(plain, batch, autocast)   # the same FLOPs in every mode; the counter sees the plain model
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
        bench.sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step()                     # the first step: allocations, kernel choices, and with compile the compilation
    bench.sync(device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    bench.sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    bench.sync(device)
    per_step = (time.perf_counter() - t0) / steps
    peak_mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    attention = profile_attention(step, device)
    return {"batch": B, "steps": steps, "ms_per_step": 1e3 * per_step,
            "tokens_per_s": B * bench.frame_patches(batch, cfg.patch) / per_step, "gflop_per_step": flops / 1e9,
            "mfu": flops / per_step / peak, "peak_mem_GiB": peak_mem, "attention": attention, "first_step_s": first}


def run_command(cmd, timeout):
    """One of the project's commands in a subprocess (its output printed here when it ends) -> {"status"}: "ok", or
    "failed" with its exit code and the last line it printed."""
    try:
        res = subprocess.run(cmd, cwd=bench.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
    if not os.path.exists(os.path.join(bench.ROOT, "davis.py")):
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
    peak = bench.matmul_peak(device, torch.bfloat16)
    peak_n = 8192 if device.type == "cuda" else 1024   # bench.matmul_peak's size
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
    sm = ".".join(map(str, torch.cuda.get_device_capability(device))) if device.type == "cuda" else ""
    meta = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "command": "python bench.py " + " ".join(argv),
            "device": bench.machine_name(device) + (f" (sm {sm})" if sm else ""),
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
