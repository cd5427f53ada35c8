"""The runs of claims.py: trained (one train.py per run, --jobs at a time, continued when cut) and read back
(models, probe values cached beside each checkpoint, training minutes).

A run is a name, its train.py arguments (claims.RUNS) and a seed; it trains into ROOT/RUN-sSEED. train.py is exact
and seeded, so a rerun gives the same numbers; an interrupted run continues with --resume; a finished one is not
trained again. A probe's value is cached in the run's probes.json and measured again when the checkpoint changes.
"""
import concurrent.futures
import json
import math
import os
import shlex
import subprocess
import sys

import torch

import data
import evaluate
import methods
import runs

ROOT = os.path.dirname(os.path.abspath(__file__))


def run_dir(root, run, seed):
    return os.path.join(root, f"{run}-s{seed}")


def flag_value(words, flag):
    """The value after `flag` in a train.py command's words."""
    return words[words.index(flag) + 1]


def run_command(words, seed, out, device):
    """The train.py command of one run (words: its arguments without --seed and --out): a fresh one, or --resume of
    an interrupted one."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py")]
    if os.path.exists(os.path.join(out, runs.CKPT_NAME)):   # the checkpoint holds everything else that defines the run
        cmd += ["--method", flag_value(words, "--method"), "--resume"]
    else:   # a run killed before its first checkpoint left only metrics: moved aside, never deleted
        cmd += words + ["--seed", str(seed)] + (["--overwrite"] if runs.holds_run(out) else [])
    return cmd + ["--out", out, "--device", device]


def finished(out, steps=None):
    """True when out/ckpt.pt is a run trained to its last step. steps: the steps asked for; a run folder
    trained (or training) for another number is an error, never silently reused."""
    path = os.path.join(out, runs.CKPT_NAME)
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


def train_run(run, words, seed, opts):
    """Train (or finish) one run, its output shown and kept in out/train.log. A failed run ends claims.py
    with one line naming its log. opts: root, jobs, device, verbose."""
    out = run_dir(opts.root, run, seed)
    if finished(out, int(flag_value(words, "--steps"))):
        return
    os.makedirs(out, exist_ok=True)
    cmd = run_command(words, seed, out, opts.device)
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
    """Train [(run, words, seed)] in order, --jobs of them at a time (each in a thread that runs train.py and
    relays its output). Ctrl-C reaches the train.py children too: each saves its checkpoint, and claims.py
    ends with one line."""
    try:
        with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
            futures = []
            for i, (run, words, seed) in enumerate(todo):
                print(f"[claims] run {i + 1}/{len(todo)}: {run} seed {seed}", flush=True)
                futures.append(pool.submit(train_run, run, words, seed, opts))
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
    for row in map(json.loads, runs.read_metrics(os.path.join(out, runs.METRICS_NAME))):
        minutes += (row["step"] - prev) * row["ms_per_step"] * (row.get("threads", 1) if cores else 1) / 6e4
        prev = row["step"]
    return minutes


# ----------------------------------------------------------------------------
# the trained runs read back: models, cached probe values


class Runs:
    """The trained runs of the claims (one per seed), loaded once; probe values cached in each run's
    probes.json, keyed by probe name and kept while the checkpoint is unchanged."""

    def __init__(self, root, seeds, device="cpu"):
        self.root, self.seeds, self.device, self.models = root, list(seeds), torch.device(device), {}

    def model(self, run, seed):
        """(model, cfg, shapes-world options) of one run."""
        return self._load(run, seed)[:3]

    def _load(self, run, seed):
        """(model, cfg, shapes-world options, method) of one run, loaded once."""
        if (run, seed) not in self.models:
            path = os.path.join(run_dir(self.root, run, seed), runs.CKPT_NAME)
            if not finished(run_dir(self.root, run, seed)):
                raise SystemExit(f"claims.py: {path} is not a finished run; train it first (without --train-only "
                                 "claims.py trains what it measures)")
            try:
                model, cfg, meta = methods.load_checkpoint(path, self.device)
            except ValueError as e:
                raise SystemExit(f"claims.py: {e}")
            kind, options = data.world_spec(meta.get("data", {}).get("spec", ""), cfg.img_size)   # its --data
            self.models[run, seed] = (model, cfg, options if kind == "shapes" else {}, meta["method"])
        return self.models[run, seed]

    def _cached(self, run, seed, key, compute):
        if self.device.type != "cpu":   # CUDA features run under bf16: their values are their own
            key = f"{key} [{self.device.type}]"
        out = run_dir(self.root, run, seed)
        if not os.path.exists(os.path.join(out, runs.CKPT_NAME)):
            self.model(run, seed)   # a run not trained: its one-line error
        stamp = os.stat(os.path.join(out, runs.CKPT_NAME)).st_mtime_ns
        path = os.path.join(out, "probes.json")
        try:
            with open(path) as f:
                cache = json.load(f)
        except (OSError, ValueError):   # none yet, or not readable: measured again
            cache = {}
        if not isinstance(cache, dict) or cache.get("ckpt_mtime_ns") != stamp:
            cache = {"ckpt_mtime_ns": stamp, "values": {}}
        if key not in cache["values"]:
            cache["values"][key] = compute()
            try:   # whole or not at all: a cut write leaves the old cache, never half a file
                runs.write_atomic(path, json.dumps(cache, indent=1))
            except OSError as e:
                raise SystemExit(f"claims.py: {e}")
        return cache["values"][key]

    def probe(self, run, key, fn):
        """fn(model, cfg, world) on each seed's trained model -> [value per seed]."""
        return [self._cached(run, s, key, lambda s=s: fn(*self.model(run, s))) for s in self.seeds]

    def twin(self, run, key, fn):
        """fn on each seed's random-init twin (the run's method and config, fresh weights of that seed)."""
        def compute(seed):
            _, cfg, world, method = self._load(run, seed)
            return fn(evaluate.random_init(method, cfg, seed).to(self.device), cfg, world)
        return [self._cached(run, s, "random-init " + key, lambda s=s: compute(s)) for s in self.seeds]

    def raw(self, run, fn):
        """fn on raw pixels (evaluate.RawPixels on the run's patch grid): one value, no seed."""
        _, cfg, world = self.model(run, self.seeds[0])
        return [fn(evaluate.RawPixels(cfg.patch), cfg, world)]

    def logged(self, run, key):
        """The last logged `key` of each seed's run."""
        return [evaluate.last_logged(run_dir(self.root, run, s), key) for s in self.seeds]

    def minutes(self, names):
        """Training minutes of these runs over the seeds: core-minutes on the CPU, minutes on a GPU."""
        cores = self.device.type == "cpu"
        return sum(train_minutes(run_dir(self.root, r, s), cores) for r in names for s in self.seeds)
