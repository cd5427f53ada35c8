"""Each paper's headline claim tried in the toy world: the runs, the probe, a verdict rule fixed before the runs.

    python claims.py --list                      # the claims: statement, runs, probe, rule
    python claims.py --claim rvm_fig6            # train its runs (cached, resumable), measure, write the table
    python claims.py --all                       # every claim -> docs/claims.md and claims.json
    python claims.py --all --train-only          # only train (measure later, e.g. on another machine)
    python claims.py --all --device cuda --preset small   # the same claims with the small model

Every run is one train.py command (RUNS), trained for seeds 0 .. --seeds-1 into
runs/claims/PRESET/RUN-sSEED. train.py is exact and seeded, so a rerun gives the
same numbers; an interrupted run continues with --resume; a finished one is not
trained again. A probe's result is cached beside its checkpoint (probes.json)
and measured again when the checkpoint changes. A verdict compares seed means
with the spread over seeds (`above`): a claim needs at least two seeds.
"""
import argparse
import concurrent.futures
import json
import math
import os
import shlex
import subprocess
import sys
import time

import torch

import data
import evaluate
import methods
import metrics
import toyworld

ROOT = os.path.dirname(os.path.abspath(__file__))

# The shapes world of the claims: each kind wears its own pattern (toyworld._pattern), so no linear function of
# a patch tells the kinds apart, and shapes of 20-40 px fill the frame (at the default 10-21 px a masked tube has
# few visible tubes of its own object). On the default shapes world random-init features propagate labels as
# well as trained ones (docs/claims.md, docs/experiments.md).
PATTERN_WORLD = "shapes:pattern=true:side=20,40"
# SiamMAE's and ViC-MAE's tiny lr (blr 4e-3: 1.25e-4 at batch 8) leaves them near their random init after 1000
# steps; lr 1e-3 at batch 8, SIGMA's tiny lr (docs/experiments.md). The tiny preset's only: --preset small keeps
# the paper's blr (run_command drops it)
FRAME_LR = "--set blr=0.032"

# run name -> train.py arguments (without --seed and --out); docs/claims.md gives each claim's minutes
RUNS = {
    # the noise-square world of RVM Fig. 6 (make demo's)
    "rvm": "--method rvm --data noise_square --steps 5000",
    "rvm-n1": "--method rvm --data noise_square --steps 5000 --set n_source=1",
    "rvm-n2": "--method rvm --data noise_square --steps 5000 --set n_source=2",
    "rvm-sa": "--method rvm --data noise_square --steps 5000 --set core=sa",
    "siammae": "--method siammae --data noise_square --steps 600",
    "vicmae": "--method vicmae --data noise_square --steps 600",
    "sigma": "--method sigma --data noise_square --steps 2500",
    # the pattern world (PATTERN_WORLD): big shapes whose kind is told only by the direction of the local contrast
    "rvm-shapes": f"--method rvm --data {PATTERN_WORLD} --steps 2000",
    "siammae-shapes": f"--method siammae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR}",
    "siammae-shapes-m75": f"--method siammae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR} --set mask_ratio=0.75",
    "siammae-shapes-m50": f"--method siammae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR} --set mask_ratio=0.5",
    "siammae-shapes-joint": f"--method siammae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR} --set decoder=joint",
    "vicmae-shapes": f"--method vicmae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR}",
    "vicmae-shapes-lam0": f"--method vicmae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR} --set lam=0",  # MAE alone
    "vicmae-shapes-con": f"--method vicmae --data {PATTERN_WORLD} --steps 1000 {FRAME_LR} --set recon_weight=0",
    "sigma-shapes": f"--method sigma --data {PATTERN_WORLD} --steps 2500",
    "sigma-shapes-l2": f"--method sigma --data {PATTERN_WORLD} --steps 2500 --set loss=l2",
    "sigma-shapes-pixels": f"--method sigma --data {PATTERN_WORLD} --steps 2500 --set loss=pixels",   # VideoMAE
}


def run_method(run):
    words = shlex.split(RUNS[run])
    return words[words.index("--method") + 1]


def run_dir(root, run, seed):
    return os.path.join(root, f"{run}-s{seed}")


def run_command(run, seed, out, opts):
    """The train.py command of one run: a fresh one, or --resume of an interrupted one."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py")]
    if os.path.exists(os.path.join(out, "ckpt.pt")):   # the checkpoint holds everything else that defines the run
        cmd += ["--method", run_method(run), "--resume"]
    else:
        # FRAME_LR is the tiny preset's: --preset small keeps the paper's blr
        words = shlex.split(RUNS[run] if opts.preset == "tiny" else RUNS[run].replace(FRAME_LR, ""))
        if opts.steps and "--steps" in words:
            del words[words.index("--steps"):words.index("--steps") + 2]
        cmd += words + (["--steps", str(opts.steps)] if opts.steps else []) + ["--seed", str(seed)]
        cmd += ["--preset", opts.preset]
    return cmd + ["--out", out, "--device", opts.device]


def run_steps(run, opts):
    """The steps a run trains for: --steps, else its own in RUNS."""
    words = shlex.split(RUNS[run])
    return opts.steps or int(words[words.index("--steps") + 1])


def finished(out, steps=None):
    """True when out/ckpt.pt is a run trained to its last step. steps: the steps asked for; a run folder
    trained (or training) for another number is an error, never silently reused."""
    path = os.path.join(out, "ckpt.pt")
    if not os.path.exists(path):
        return False
    try:
        ckpt = methods.read_checkpoint(path)
    except (ValueError, OSError, RuntimeError) as e:
        raise SystemExit(f"claims.py: cannot read {path} ({e}); remove the folder to train it again")
    target = ckpt.get("train", {}).get("steps", math.inf)
    if steps is not None and target != steps:
        raise SystemExit(f"claims.py: {out} holds a run of {target} steps, not the {steps} asked for; "
                         f"remove it, or give another --runs folder")
    return ckpt["step"] >= target


def train_run(run, seed, opts):
    """Train (or finish) one run, its output shown and kept in out/train.log. A failed run ends claims.py
    with one line naming its log."""
    out = run_dir(opts.root, run, seed)
    if finished(out, run_steps(run, opts)):
        return
    os.makedirs(out, exist_ok=True)
    cmd = run_command(run, seed, out, opts)
    print(f"[claims] training {run} seed {seed}: {shlex.join(cmd[1:])}", flush=True)
    with open(os.path.join(out, "train.log"), "a") as log:
        # each of --jobs runs gets its share of the cores, fixed, so a rerun with the same --jobs on the same
        # machine repeats the same floating-point sums
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // opts.jobs))}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            if opts.verbose or line.startswith(("step", "done", "error", "warning")):
                print(f"  {run} s{seed}: {line.rstrip()}", flush=True)
        rc = proc.wait()
    if rc in (130, 143, -2, -15):   # train.py saved and stopped on SIGINT / SIGTERM (128 + signal), or was killed
        raise SystemExit("claims.py: interrupted; the same command continues each run from its checkpoint")
    if rc != 0:
        raise SystemExit(f"claims.py: training {run} seed {seed} ended with exit code {rc}; "
                         f"its log: {os.path.join(out, 'train.log')}")


def train_all(todo, opts):
    """Train (run, seed) pairs in order, --jobs of them at a time (each in a thread that runs train.py and
    relays its output). Ctrl-C reaches the train.py children too: each saves its checkpoint, and claims.py
    ends with one line."""
    try:
        with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
            futures = []
            for i, (run, seed) in enumerate(todo):
                print(f"[claims] run {i + 1}/{len(todo)}: {run} seed {seed}", flush=True)
                futures.append(pool.submit(train_run, run, seed, opts))
                while sum(not f.done() for f in futures) >= opts.jobs:   # submit as slots free up: none queued
                    # wait on the running ones only: a finished future in the list would make this loop spin
                    concurrent.futures.wait([f for f in futures if not f.done()],
                                            return_when=concurrent.futures.FIRST_COMPLETED)
                    for f in futures:
                        if f.done():
                            f.result()   # a failed run ends claims.py with its one line
            for f in futures:
                f.result()
    except KeyboardInterrupt:
        raise SystemExit("claims.py: interrupted; the same command continues each run from its checkpoint")


def train_minutes(out, cores=False):
    """Minutes of training of a run, from its metrics.jsonl: ms per step times the steps since the last row;
    cores: times the threads it ran on (core-minutes: two one-thread runs side by side take half their sum of
    core-minutes on 2 cores; rows of a train.py that did not log its threads count one)."""
    minutes, prev = 0.0, 0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for row in (json.loads(line) for line in f if line.strip()):
            minutes += (row["step"] - prev) * row["ms_per_step"] * (row.get("threads", 1) if cores else 1) / 6e4
            prev = row["step"]
    return minutes


# ----------------------------------------------------------------------------
# the verdict rule: seed means against the spread over seeds


def mean_sd(xs):
    """(mean, sample standard deviation) over seeds; the sd of one value is 0."""
    xs = [float(x) for x in xs]
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def above(a, b, k=2.0):
    """True when mean(a) - mean(b) exceeds k times the larger of the two spreads (sample sd over seeds):
    a difference that the choice of seed does not explain."""
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    return ma - mb > k * max(sa, sb)


def at_most(a, bound):
    """True when mean(a) <= bound."""
    return mean_sd(a)[0] <= bound


def verdict(checks):
    """checks [(text, bool)] -> 'reproduced' (all hold), 'not reproduced' (none), 'partly reproduced'."""
    held = sum(bool(ok) for _, ok in checks)
    return "reproduced" if held == len(checks) else "not reproduced" if held == 0 else "partly reproduced"


def fmt(xs, digits=3):
    """Seed values -> 'mean ± sd' (sd over seeds); one value (raw pixels: no seed) -> the value."""
    m, s = mean_sd(xs)
    return f"{m:.{digits}f}" if len(xs) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


# ----------------------------------------------------------------------------
# probes on held-out videos (toyworld's EVAL_SEED blocks, never seen in training)


def device_of(model):
    """Where a model's weights are (raw pixels have none: the CPU)."""
    return next(model.parameters(), torch.empty(0)).device


def noise_square_iou(model, cfg, T=16, n=16, window=None):
    """The noise-square IoU of evaluate.py (k-means K = 2, Hungarian-matched, every frame) on n held-out
    T-frame videos; window (frames, step): k-means run on each window of the video alone instead, the frames
    of SIGMA's features windows (`sigma_windows`), so the clusters need not agree across windows."""
    videos, masks, _ = toyworld.noise_square_set(n, T, cfg.img_size, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["iou"])
    if window is None:
        return evaluate.probe_noise_square(model, cfg.patch, videos, masks, device_of(model), "")["iou"]
    feats = evaluate.extract(model, videos, device_of(model))[0]               # (V, T, h, w, D)
    scores = []
    for v in range(n):
        truth = metrics.token_fractions(masks[v].long(), cfg.patch, 2)[..., 1] > 0.5   # (T, h, w)
        for frames in sigma_windows(T, *window):
            scores.append(metrics.square_iou(feats[v, frames], truth[frames], seed=v)[1].mean().item())
    return sum(scores) / len(scores)


def sigma_windows(T, num_frames, stride):
    """The frames of each features window of SIGMA.features on a T-frame video: per phase < stride, the
    frames phase, phase + stride, ... in runs of num_frames."""
    out = []
    for phase in range(min(stride, T)):
        frames = list(range(phase, T, stride))
        out += [frames[i:i + num_frames] for i in range(0, len(frames), num_frames)]
    return out


def propagation(model, cfg, world, T=16, n=24, lengths=(16,)):
    """Label propagation J (evaluate.py's, default settings) on n held-out T-frame videos of the shapes world
    the model trained on -> {"L": J of the first L frames} (string keys, as they come back from the cache)."""
    shapes = toyworld.shapes_set(n, T, cfg.img_size, toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["shapes"], **world)
    out = evaluate.probe_propagation(model, cfg.patch, shapes, device_of(model), list(lengths), {}, "")
    return {str(L): J for L, J in out["J_by_length"].items()}


def token_kinds(model, cfg, world, n=16, T=8):
    """evaluate.py's shape-kind probe: a linear classifier of each token's class (background, square, disc,
    triangle), balanced mean recall on held-out videos of the model's shapes world (chance 1/4)."""
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["kinds"]
    train_set, test_set = (toyworld.shapes_set(n, T, cfg.img_size, s, with_kinds=True, **world)[::2]
                           for s in (seed, seed + n))
    return evaluate.probe_kinds(model, cfg.patch, train_set, test_set, device_of(model), "")["kind_acc"]


def video_kinds(model, cfg, world, n=96, T=8):
    """A video-level label: shapes videos with one shape, whose kind (square, disc, triangle) is the video's
    class (toyworld.video_label); a linear classifier on the features pooled over frames and tokens, accuracy
    on held-out videos (chance 1/3)."""
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["video_kind"]
    xs, ys = [], []
    for s in (seed, seed + n):
        videos, _, kinds = toyworld.shapes_set(n, T, cfg.img_size, s, with_kinds=True, **{**world, "n_shapes": 1})
        xs.append(evaluate.extract(model, videos, device_of(model))[0].mean((1, 2, 3)).double())   # (n, D)
        ys.append(toyworld.video_label(kinds))
    return metrics.linear_probe(xs[0], ys[0], xs[1], ys[1])


@torch.no_grad()
def features_ms(model, cfg, T, repeats=3):
    """Median milliseconds of model.features on one T-frame video, one thread (the growth with T, not the
    speed: bench.py measures that)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        video = torch.rand(1, T, 3, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(0))
        video = video.to(device_of(model))
        model.features(video[:, :2])
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.features(video)
            if video.is_cuda:
                torch.cuda.synchronize()
            times.append(1e3 * (time.perf_counter() - t0))
        return sorted(times)[len(times) // 2]
    finally:
        torch.set_num_threads(threads)


def last_logged(out, key):
    """The last logged value of `key` in a run's metrics.jsonl."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        values = [row[key] for row in (json.loads(line) for line in f if line.strip()) if key in row]
    if not values:
        raise ValueError(f"{out}/metrics.jsonl logs no {key!r}")
    return values[-1]


# ----------------------------------------------------------------------------
# a claim's runs, models and cached probe values


class Runs:
    """The trained runs of the claims (one per seed), loaded once; probe values cached in each run's
    probes.json, keyed by probe name and kept while the checkpoint is unchanged."""

    def __init__(self, root, seeds, device="cpu"):
        self.root, self.seeds, self.device, self.models = root, list(seeds), torch.device(device), {}

    def model(self, run, seed):
        """(model, cfg, shapes-world options) of one run."""
        if (run, seed) not in self.models:
            path = os.path.join(run_dir(self.root, run, seed), "ckpt.pt")
            if not finished(run_dir(self.root, run, seed)):
                raise SystemExit(f"claims.py: {path} is not a finished run; train it first (without --train-only "
                                 "claims.py trains what it measures)")
            try:
                model, cfg, meta = methods.load_checkpoint(path, self.device)
            except ValueError as e:
                raise SystemExit(f"claims.py: {e}")
            kind, options = data.world_spec(meta.get("data", {}).get("spec", ""), cfg.img_size)   # its --data
            self.models[run, seed] = (model, cfg, options if kind == "shapes" else {})
        return self.models[run, seed]

    def _cached(self, run, seed, key, compute):
        if self.device.type != "cpu":   # CUDA features run under bf16: their values are their own
            key = f"{key} [{self.device.type}]"
        out = run_dir(self.root, run, seed)
        if not os.path.exists(os.path.join(out, "ckpt.pt")):
            self.model(run, seed)   # a run not trained: its one-line error
        stamp = os.stat(os.path.join(out, "ckpt.pt")).st_mtime_ns
        path = os.path.join(out, "probes.json")
        cache = json.load(open(path)) if os.path.exists(path) else {}
        if cache.get("ckpt_mtime_ns") != stamp:
            cache = {"ckpt_mtime_ns": stamp, "values": {}}
        if key not in cache["values"]:
            cache["values"][key] = compute()
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(cache, f, indent=1)
            os.replace(tmp, path)   # a cut write leaves the old cache, never half a file
        return cache["values"][key]

    def probe(self, run, key, fn):
        """fn(model, cfg, world) on each seed's trained model -> [value per seed]."""
        return [self._cached(run, s, key, lambda s=s: fn(*self.model(run, s))) for s in self.seeds]

    def twin(self, run, key, fn):
        """fn on each seed's random-init twin (the run's method and config, fresh weights of that seed)."""
        def compute(seed):
            _, cfg, world = self.model(run, seed)
            return fn(evaluate.random_init(run_method(run), cfg, seed).to(self.device), cfg, world)
        return [self._cached(run, s, "random-init " + key, lambda s=s: compute(s)) for s in self.seeds]

    def raw(self, run, fn):
        """fn on raw pixels (evaluate.RawPixels on the run's patch grid): one value, no seed."""
        _, cfg, world = self.model(run, self.seeds[0])
        return [fn(evaluate.RawPixels(cfg.patch), cfg, world)]

    def logged(self, run, key):
        """The last logged `key` of each seed's run."""
        return [last_logged(run_dir(self.root, run, s), key) for s in self.seeds]

    def minutes(self, runs):
        """Training minutes of these runs over the seeds: core-minutes on the CPU, minutes on a GPU."""
        return sum(train_minutes(run_dir(self.root, r, s), self.device.type == "cpu") for r in runs for s in self.seeds)


# ----------------------------------------------------------------------------
# the claims: each measure(R) -> ours, baselines, checks [(rule, held)], values (seed lists)


def rvm_fig6(R):
    models = ("rvm", "siammae", "vicmae", "sigma")
    q = {m: R.probe(m, "iou T32", lambda mo, c, w: noise_square_iou(mo, c, T=32)) for m in models}
    _, scfg, _ = R.model("sigma", R.seeds[0])
    win = (scfg.num_frames, scfg.stride)
    sig_win = R.probe("sigma", "iou T32 windows", lambda mo, c, w: noise_square_iou(mo, c, T=32, window=win))
    twin_win = R.twin("sigma", "iou T32 windows", lambda mo, c, w: noise_square_iou(mo, c, T=32, window=win))
    twin = R.twin("rvm", "iou T32", lambda mo, c, w: noise_square_iou(mo, c, T=32))
    twin_sigma = R.twin("sigma", "iou T32", lambda mo, c, w: noise_square_iou(mo, c, T=32))
    raw = R.raw("rvm", lambda mo, c, w: noise_square_iou(mo, c, T=32))
    # k-means inside a window scores at least as well as across windows for any features (fewer tokens to
    # split, each window matched alone): SIGMA's loss across windows counts only beyond its twin's
    lost, twin_lost = ([a - b for a, b in zip(x, y)] for x, y in ((sig_win, q["sigma"]), (twin_win, twin_sigma)))
    checks = [("RVM above its random-init twin by 2 sd", above(q["rvm"], twin))]
    checks += [(f"RVM above {m} by 2 sd", above(q["rvm"], q[m])) for m in ("siammae", "vicmae")]
    checks += [(f"{m} at chance (<= 0.35)", at_most(q[m], 0.35)) for m in ("siammae", "vicmae")]
    checks += [("SIGMA inside its windows above its random-init twin by 2 sd", above(sig_win, twin_win)),
               ("SIGMA's drop from inside its windows to across them above its twin's drop by 2 sd",
                above(lost, twin_lost))]
    ours = (f"IoU, 32 frames: RVM {fmt(q['rvm'])}, SiamMAE {fmt(q['siammae'])}, ViC-MAE {fmt(q['vicmae'])}, "
            f"SIGMA {fmt(q['sigma'])} (inside its windows {fmt(sig_win)})")
    return dict(ours=ours, twin=f"RVM {fmt(twin)}; SIGMA inside windows {fmt(twin_win)}", raw=fmt(raw),
                checks=checks, values={**q, "sigma_windows": sig_win, "twin_rvm": twin, "twin_sigma": twin_sigma,
                                       "twin_sigma_windows": twin_win, "raw": raw})


def rvm_fig4(R):
    models = ("rvm-shapes", "siammae-shapes", "sigma-shapes")
    J = lambda mo, c, w: propagation(mo, c, w, T=64, n=16, lengths=(16, 64))
    ratio = lambda js: [j["64"] / max(j["16"], 1e-9) for j in js]
    js = {m: R.probe(m, "J T64", J) for m in models}
    stab = {m: ratio(v) for m, v in js.items()}
    twin, raw = ratio(R.twin("rvm-shapes", "J T64", J)), ratio(R.raw("rvm-shapes", J))
    name = lambda m: m.split("-")[0]
    raw16 = [j["16"] for j in R.raw("rvm-shapes", J)]
    # a feature that labels nothing keeps its (low) J at every length: stability counts only above raw pixels
    checks = [("RVM's J16 above raw pixels' J16", mean_sd([j["16"] for j in js["rvm-shapes"]])[0] > raw16[0])]
    checks += [(f"RVM's J64/J16 above {name(m)}'s by 2 sd", above(stab["rvm-shapes"], stab[m]))
               for m in ("siammae-shapes", "sigma-shapes")]
    ours = "J64/J16: " + ", ".join(f"{name(m)} {fmt(stab[m])} (J16 {fmt([j['16'] for j in js[m]])})" for m in models)
    return dict(ours=ours, twin=f"RVM {fmt(twin)}", raw=fmt(raw), checks=checks,
                values={**stab, "twin_rvm": twin, "raw": raw})


def iou16(model, cfg, world):
    return noise_square_iou(model, cfg)


def rvm_tab3a(R):
    q = {n: R.probe(run, "iou T16", iou16) for n, run in ((1, "rvm-n1"), (2, "rvm-n2"), (4, "rvm"))}
    twin, raw = R.twin("rvm", "iou T16", iou16), R.raw("rvm", iou16)
    checks = [("2 source frames above 1 by 2 sd", above(q[2], q[1])),
              ("4 source frames above 2 by 2 sd", above(q[4], q[2]))]
    ours = "IoU: " + ", ".join(f"{n} source {fmt(v)}" for n, v in q.items())
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks,
                values={f"n{n}": v for n, v in q.items()} | {"twin": twin, "raw": raw})


def rvm_tab3b(R):
    q = {run: R.probe(run, "iou T16", iou16) for run in ("rvm", "rvm-sa")}
    growth = {run: R.probe(run, "features time 128 / 16 frames",
                           lambda mo, c, w: features_ms(mo, c, 128) / features_ms(mo, c, 16)) for run in q}
    twin, raw = R.twin("rvm", "iou T16", iou16), R.raw("rvm", iou16)
    g, s = mean_sd(growth["rvm"])[0], mean_sd(growth["rvm-sa"])[0]
    checks = [("GRU's IoU at least self-attention's (not below it by 2 sd)", not above(q["rvm-sa"], q["rvm"])),
              ("GRU's time linear in T: x12 or less for 8x the frames", g <= 12),
              ("self-attention's time grows faster: at least 1.5 times the GRU's growth", s >= 1.5 * g)]
    ours = (f"IoU: GRU {fmt(q['rvm'])}, self-attention {fmt(q['rvm-sa'])}; features time 16 -> 128 frames: "
            f"GRU x{g:.1f}, self-attention x{s:.1f}")
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks,
                values={"gru": q["rvm"], "sa": q["rvm-sa"], "growth_gru": growth["rvm"],
                        "growth_sa": growth["rvm-sa"], "twin": twin, "raw": raw})


def j16(model, cfg, world):
    return propagation(model, cfg, world)["16"]


def siammae_masking(R):
    runs = {"mask 0.95": "siammae-shapes", "mask 0.75": "siammae-shapes-m75", "mask 0.5": "siammae-shapes-m50",
            "joint decoder": "siammae-shapes-joint"}
    J = {k: R.probe(run, "J T16", j16) for k, run in runs.items()}
    twin, raw = R.twin("siammae-shapes", "J T16", j16), R.raw("siammae-shapes", j16)
    checks = [(f"mask 0.95 above {k} by 2 sd", above(J["mask 0.95"], J[k])) for k in ("mask 0.75", "mask 0.5")]
    checks += [("cross-self decoder (mask 0.95) above the joint one by 2 sd",
                above(J["mask 0.95"], J["joint decoder"]))]
    ours = "J: " + ", ".join(f"{k} {fmt(v)}" for k, v in J.items())
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks, values={**J, "twin": twin, "raw": raw})


def vicmae_lambda(R):
    runs = {"MAE + contrastive": "vicmae-shapes", "MAE alone": "vicmae-shapes-lam0",
            "contrastive alone": "vicmae-shapes-con"}
    acc = {k: R.probe(run, "video kind", video_kinds) for k, run in runs.items()}
    twin, raw = R.twin("vicmae-shapes", "video kind", video_kinds), R.raw("vicmae-shapes", video_kinds)
    checks = [(f"MAE + contrastive above {k} by 2 sd", above(acc["MAE + contrastive"], acc[k]))
              for k in ("MAE alone", "contrastive alone")]
    ours = "video-kind accuracy (chance 0.333): " + ", ".join(f"{k} {fmt(v)}" for k, v in acc.items())
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks, values={**acc, "twin": twin, "raw": raw})


def sigma_tab7b(R):
    std = {run: R.logged(run, "phi_std") for run in ("sigma-shapes", "sigma-shapes-l2")}
    J = {run: R.probe(run, "J T16", j16) for run in std}
    twin, raw = R.twin("sigma-shapes-l2", "J T16", j16), R.raw("sigma-shapes", j16)
    checks = [("l2: phi collapses (phi_std < 0.01 at the end)", mean_sd(std["sigma-shapes-l2"])[0] < 0.01),
              ("Sinkhorn: phi does not collapse (phi_std > 0.1)", mean_sd(std["sigma-shapes"])[0] > 0.1),
              ("l2's features at or below random-init (not above it by 2 sd)", not above(J["sigma-shapes-l2"], twin)),
              ("Sinkhorn's features above l2's by 2 sd", above(J["sigma-shapes"], J["sigma-shapes-l2"]))]
    ours = (f"phi_std: Sinkhorn {fmt(std['sigma-shapes'], 4)}, l2 {fmt(std['sigma-shapes-l2'], 6)}; J: Sinkhorn "
            f"{fmt(J['sigma-shapes'])}, l2 {fmt(J['sigma-shapes-l2'])}")
    return dict(ours=ours, twin=f"l2 {fmt(twin)}", raw=fmt(raw), checks=checks,
                values={"phi_std_sinkhorn": std["sigma-shapes"], "phi_std_l2": std["sigma-shapes-l2"],
                        "J_sinkhorn": J["sigma-shapes"], "J_l2": J["sigma-shapes-l2"], "twin_l2": twin, "raw": raw})


def sigma_vs_pixels(R):
    J = {run: R.probe(run, "J T16", j16) for run in ("sigma-shapes", "sigma-shapes-pixels")}
    twin, raw = R.twin("sigma-shapes", "J T16", j16), R.raw("sigma-shapes", j16)
    checks = [("SIGMA above its random-init twin by 2 sd", above(J["sigma-shapes"], twin)),
              ("SIGMA above raw pixels by 2 sd", above(J["sigma-shapes"], raw)),
              ("SIGMA above VideoMAE (its pixel-target twin) by 2 sd",
               above(J["sigma-shapes"], J["sigma-shapes-pixels"]))]
    ours = f"J: SIGMA {fmt(J['sigma-shapes'])}, VideoMAE {fmt(J['sigma-shapes-pixels'])}"
    return dict(ours=ours, twin=f"SIGMA {fmt(twin)}", raw=fmt(raw), checks=checks,
                values={"sigma": J["sigma-shapes"], "videomae": J["sigma-shapes-pixels"], "twin": twin, "raw": raw})


# ----------------------------------------------------------------------------
# the registry: paper, statement, the paper's number, runs, probe, and the rule, fixed before the runs

CLAIMS = {
    "rvm_fig6": dict(
        paper="RVM Fig. 6, Sec. 4.4", measure=rvm_fig6,
        runs=["rvm", "siammae", "vicmae", "sigma"],
        statement="RVM sees a white-noise square moving on white noise; image models (SiamMAE) cannot; "
                  "a windowed video model (the paper shows VideoMAE; here SIGMA's encoder) sees it but "
                  "reassigns its clusters across windows",
        paper_value="qualitative (k-means pictures, ViT-L/16)",
        probe="noise-square IoU (k-means K = 2, Hungarian-matched, every frame) on 16 held-out 32-frame videos; "
              "SIGMA also with k-means inside each of its features windows",
        rule="RVM above its random-init twin, SiamMAE and ViC-MAE by 2 sd; both at chance (mean <= 0.35); SIGMA "
             "inside its windows above its random-init twin by 2 sd, and its drop from inside to across windows "
             "above its twin's drop by 2 sd"),
    "rvm_fig4": dict(
        paper="RVM Fig. 4, Sec. 4.2.3", measure=rvm_fig4,
        runs=["rvm-shapes", "siammae-shapes", "sigma-shapes"],
        statement="RVM's label propagation decays least from 16 to 64 frames",
        paper_value="DAVIS J&F normalized to 16 frames: RVM decays substantially less than video and image models",
        probe="label propagation J on 16 held-out 64-frame videos of the pattern world trained on; J64 / J16",
        rule="RVM's J16 above raw pixels'; RVM's J64/J16 above SiamMAE's and above SIGMA's (a windowed video "
             "model) by 2 sd"),
    "rvm_tab3a": dict(
        paper="RVM Table 3a", measure=rvm_tab3a,
        runs=["rvm-n1", "rvm-n2", "rvm"],
        statement="more source frames help, most on a task that needs motion",
        paper_value="SSv2 41.0 / 47.2 / 52.3 for 1 / 2 / 4 source frames",
        probe="noise-square IoU on 16 held-out 16-frame videos (the square exists only in motion)",
        rule="2 source frames above 1, and 4 above 2, each by 2 sd"),
    "rvm_tab3b": dict(
        paper="RVM Table 3b, Sec. 4.3", measure=rvm_tab3b,
        runs=["rvm", "rvm-sa"],
        statement="the GRU core is at least as good as full self-attention over the source frames, and cheaper",
        paper_value="SSv2 52.3 (RNN) vs 49.1 (SA); SA costs more FLOPs",
        probe="noise-square IoU (16 videos, 16 frames; SA, trained on 4 source frames, attends over all 16 at "
              "once); model.features time on 16 and 128 frames, one thread",
        rule="GRU's IoU not below SA's by 2 sd; GRU's time x12 or less for 8x the frames; SA's growth at least "
             "1.5 times the GRU's"),
    "siammae_masking": dict(
        paper="SiamMAE Table 2b, 2d", measure=siammae_masking,
        runs=["siammae-shapes", "siammae-shapes-m75", "siammae-shapes-m50", "siammae-shapes-joint"],
        statement="a high mask ratio of the future frame (95%) beats 75% and 50%; the cross-self decoder beats the "
                  "joint one",
        paper_value="DAVIS J&F 49.0 / 55.3 / 58.4 / 58.1 at mask 0.5 / 0.75 / 0.9 / 0.95; decoder joint 56.7, "
                    "cross-self 58.1",
        probe="label propagation J on 24 held-out 16-frame videos of the pattern world trained on",
        rule="mask 0.95 above 0.75 and above 0.5 by 2 sd; cross-self above joint by 2 sd"),
    "vicmae_lambda": dict(
        paper="ViC-MAE Sec. 3.2, 4.1", measure=vicmae_lambda,
        runs=["vicmae-shapes", "vicmae-shapes-lam0", "vicmae-shapes-con"],
        statement="MAE plus the contrastive loss beats MAE alone and contrastive alone on a linear probe",
        paper_value="IN1K linear: ViC-MAE 74.0 against other papers' models, MAE 68, SimCLR 73.5 (no lambda "
                    "ablation in the paper)",
        probe="linear probe of a video-level label: the kind (here its pattern) of the one shape in held-out "
              "pattern-world videos (96 train, 96 test, 8 frames; chance 1/3), features pooled over frames and tokens",
        rule="MAE + contrastive above MAE alone and above contrastive alone by 2 sd"),
    "sigma_tab7b": dict(
        paper="SIGMA Table 7b", measure=sigma_tab7b,
        runs=["sigma-shapes", "sigma-shapes-l2"],
        statement="an l2 loss on learned targets collapses to a trivial solution; Sinkhorn's does not",
        paper_value="mini-SSv2 fine-tuning acc. (ViT-S): SIGMA-MLP with L2 36.4, with Eq. 7 60.3",
        probe="phi_std at the end of training; label propagation J on 24 held-out 16-frame videos of the pattern "
              "world trained on",
        rule="l2 phi_std < 0.01 and Sinkhorn > 0.1; l2's J not above its random-init twin's by 2 sd; "
             "Sinkhorn's above l2's by 2 sd"),
    "sigma_vs_pixels": dict(
        paper="SIGMA Table 7 (VideoMAE row), Sec. 3.1-3.2", measure=sigma_vs_pixels,
        runs=["sigma-shapes", "sigma-shapes-pixels"],
        statement="learned (Sinkhorn-clustered) targets give more semantic features than VideoMAE's pixel targets",
        paper_value="mini-SSv2 fine-tuning acc. (ViT-S): VideoMAE (pixels, L2) 56.9, SIGMA-MLP 60.3",
        probe="label propagation J on 24 held-out 16-frame videos of the pattern world trained on; VideoMAE is "
              "sigma.py with loss=pixels (the same Psi, each masked tube's normalized pixels as its target)",
        rule="SIGMA above its random-init twin and above raw pixels by 2 sd; SIGMA above VideoMAE by 2 sd"),
}


def measure(name, R):
    """One claim -> its row: the registry entry's text, the measured result, verdict, minutes."""
    c = CLAIMS[name]
    row = {"claim": name, **{k: c[k] for k in ("paper", "statement", "paper_value", "probe", "rule", "runs")},
           "seeds": R.seeds, "command": f"python claims.py --claim {name}"}
    t0 = time.perf_counter()
    result = c["measure"](R)
    return {**row, **result, "verdict": verdict(result["checks"]),
            "checks": [[text, bool(ok)] for text, ok in result["checks"]],
            "train_minutes": R.minutes(c["runs"]), "probe_minutes": (time.perf_counter() - t0) / 60}


# ----------------------------------------------------------------------------
# the table


def markdown(rows, opts):
    """docs/claims.md: one table row per claim, then each claim's statement, rule, checks and command."""
    when = time.strftime("%Y-%m-%d")
    lines = ["# The papers' claims in the toy world", "",
             f"Measured {when} by `python claims.py {' '.join(opts.argv) or '--all'}` (preset {opts.preset}, "
             f"seeds {', '.join(map(str, opts.seed_list))}, device {opts.device}); claims.json holds every value. "
             "Values are mean ± sd over seeds; a verdict compares seed means with that spread (claims.py `above`): "
             "A beats B when mean(A) - mean(B) exceeds twice the larger sd. Minutes: training plus measuring. "
             + ("On the CPU, the training's core-minutes (each run's minutes times its threads, from its "
                "metrics.jsonl) over 2: the minutes the claim's runs take side by side on 2 cores (`--jobs 2`); "
                if opts.device == "cpu" else "Training minutes from each run's metrics.jsonl; ")
             + f"runs shared between claims count in each; measuring ({os.cpu_count()} cores here) counts the probes "
             "computed in this call (a cached value costs none).", "",
             f"| claim | paper | paper's value | ours | random-init twin | raw pixels | verdict | "
             f"{'min on 2 cores' if opts.device == 'cpu' else 'cuda min'} |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        minutes = r["train_minutes"] / (2 if opts.device == "cpu" else 1) + r["probe_minutes"]
        lines.append(f"| [{r['claim']}](#{r['claim']}) | {r['paper']} | {r['paper_value']} | "
                     f"{r['ours']} | {r['twin']} | {r['raw']} | **{r['verdict']}** | {minutes:.0f} |")
    for r in rows:
        lines += ["", f"## {r['claim']}", "",
                  f"*{r['paper']}*: {r['statement']}.", "",
                  f"- probe: {r['probe']}", f"- rule (fixed before the runs): {r['rule']}",
                  f"- runs: {', '.join(r['runs']) or 'none'}; `{r['command']}`"]
        lines += [f"- {'holds' if ok else 'does not hold'}: {text}" for text, ok in r["checks"]]
        lines.append(f"- verdict: **{r['verdict']}**")
    return "\n".join(lines) + "\n"


def merge(rows, old, setting):
    """rows of the claims just measured, and the other claims' rows of the table at `old` when it was
    measured with the same preset, seeds and device (else they are left out, with a note)."""
    try:
        table = json.load(open(old)) if os.path.exists(old) else {"claims": []}
        kept = [r for r in table["claims"] if r["claim"] not in {r["claim"] for r in rows}]
    except (ValueError, KeyError, TypeError, OSError) as e:
        print(f"[claims] note: {old} unreadable ({e}); the table holds the claims just measured only")
        return rows
    if kept and any(table.get(k) != v for k, v in setting.items()):
        print(f"[claims] note: {old} was measured with {({k: table.get(k) for k in setting})}, not {setting}; "
              "its other claims are left out")
        kept = []
    return sorted(kept + rows, key=lambda r: list(CLAIMS).index(r["claim"]) if r["claim"] in CLAIMS else len(CLAIMS))


def write_atomic(path, text):
    """Write to path.tmp, then rename: an interruption or a full disk leaves the old file whole."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise SystemExit(f"claims.py: cannot write {path}: {e}")


def describe(name):
    c = CLAIMS[name]
    runs = "\n".join(f"      {run}: python train.py {RUNS[run]} --seed SEED" for run in c["runs"]) or "      (none)"
    return (f"{name}  ({c['paper']})\n  {c['statement']}\n  paper: {c['paper_value']}\n  probe: {c['probe']}\n"
            f"  rule: {c['rule']}\n  runs:\n{runs}")


def get_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                epilog="claims: " + ", ".join(CLAIMS))
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", action="store_true", help="print each claim: statement, runs, probe, rule")
    which.add_argument("--claim", action="append", choices=list(CLAIMS), metavar="NAME", help="one claim (repeatable)")
    which.add_argument("--all", action="store_true", help="every claim")
    p.add_argument("--seeds", type=int, default=3, help="seeds per run, 0 .. N-1 (default 3; at least 2)")
    p.add_argument("--preset", choices=["tiny", "small"], default="tiny", help="train.py's preset (default tiny)")
    p.add_argument("--steps", type=int, help="train every run for this many steps (default: each run's own)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="for training and probes (default cpu)")
    p.add_argument("--runs", help="folder of the runs (default runs/claims/PRESET)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once, each on its share of the cores "
                   "(default 1; 2 on 2 cores trains more runs an hour)")
    p.add_argument("--train-only", action="store_true", help="train the runs, measure nothing")
    p.add_argument("--out", default=None, help="the table, docs/claims.md, and claims.json go here "
                   "(default: the project folder; docs/ inside it)")
    p.add_argument("--verbose", action="store_true", help="show every line of train.py's output")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = get_parser()
    opts = parser.parse_args(argv)
    if opts.list:
        print("\n\n".join(describe(n) for n in CLAIMS))
        return 0
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if opts.seeds < 2:
        parser.error("--seeds must be at least 2: a verdict compares differences with the spread over seeds")
    if opts.jobs < 1:
        parser.error("--jobs must be at least 1")
    if opts.steps is not None and opts.steps < 1:
        parser.error("--steps must be at least 1")
    opts.argv, opts.seed_list = argv, list(range(opts.seeds))
    # absolute: train.py runs in ROOT, the caller may be elsewhere
    opts.root = os.path.abspath(opts.runs or os.path.join(ROOT, "runs", "claims", opts.preset))
    names = list(CLAIMS) if opts.all else list(dict.fromkeys(opts.claim))
    runs = list(dict.fromkeys(r for n in names for r in CLAIMS[n]["runs"]))
    train_all([(r, s) for s in opts.seed_list for r in runs], opts)   # seed by seed: a cut leaves whole seeds
    if opts.train_only:
        return 0
    R, rows = Runs(opts.root, opts.seed_list, opts.device), []
    for name in names:
        print(f"[claims] measuring {name} ...", flush=True)
        rows.append(measure(name, R))
        print(f"[claims] {name}: {rows[-1]['verdict']}: {rows[-1]['ours']}", flush=True)
    out = opts.out or ROOT
    setting = {"preset": opts.preset, "seeds": opts.seed_list, "device": opts.device}
    if not opts.all:   # a partial run keeps the other claims' rows of the last table, if measured the same way
        rows = merge(rows, os.path.join(out, "claims.json"), setting)
    write_atomic(os.path.join(out, "claims.json"), json.dumps({**setting, "claims": rows}, indent=1) + "\n")
    write_atomic(os.path.join(out, "docs", "claims.md"), markdown(rows, opts))
    print(f"[claims] wrote {os.path.join(out, 'docs', 'claims.md')} and {os.path.join(out, 'claims.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
