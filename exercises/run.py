"""Train with your own part, or prepare the experiments' runs.

    python exercises/run.py rvm_core      # RVM with your gru_step, on the noise square, then the demo pictures
    python exercises/run.py sinkhorn      # SIGMA with your sinkhorn, on shapes videos
    python exercises/run.py info_nce      # ViC-MAE with your info_nce, on shapes videos

    python exercises/run.py --prepare                  # every experiment's runs, one after another
    python exercises/run.py --prepare sigma_collapse   # one experiment's runs

Your part is your work copy (exercises/work/NAME.py; --file PATH for another
file, --solution for the project's reference). It goes into the model through
its constructor (rvm.RVM(cfg, gru_step=...), sigma.SIGMA(cfg, sinkhorn=...),
vicmae.ViCMAE(cfg, info_nce=...)): training runs train.py's own code with it,
and viz.py draws with it. Your file is checked first (exercises/check.py NAME);
--force trains even when a check fails. Anything after NAME goes to train.py
(e.g. --steps 500); the run folder is runs/exercises/NAME-yours unless you give --out (a previous
run there is moved aside, never deleted).

--prepare trains the runs the experiments need, each once even when several
experiments share it, one at a time, with one progress line and an ETA for the
whole queue; finished runs are skipped and interrupted ones continued, so it
can be stopped (Ctrl-C) and started again. The runs go to runs/exercises/, or
$EXERCISES_RUNS, or --runs DIR: a teacher can prepare once and copy the folder
to every laptop, where check.py reads it from the same place.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import check
import lab

# exercise -> (method, the function in exercises/NAME.py, train.py arguments, viz video); the constructor
# keyword is the function's name (rvm.RVM(cfg, gru_step=...))
PARTS = {
    "rvm_core": ("rvm", "gru_step", ["--data", "noise_square", "--steps", "5000"], "noise_square"),
    "sinkhorn": ("sigma", "sinkhorn", ["--data", "shapes"], "shapes"),
    "info_nce": ("vicmae", "info_nce", ["--data", "shapes"], "shapes"),
}


def train_with_part(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="other options go to train.py",
                                     allow_abbrev=False)   # so that train.py's --set, --steps, ... pass through
    parser.add_argument("name", choices=list(PARTS), help="the exercise whose part to train with")
    parser.add_argument("--file", help="your file (default: your work copy, exercises/work/NAME.py)")
    parser.add_argument("--solution", action="store_true", help="train with the project's reference instead")
    parser.add_argument("--force", action="store_true", help="train even when a check fails")
    args, rest = parser.parse_known_args(argv)
    method, function, train_args, video = PARTS[args.name]
    path = os.path.abspath(args.file or lab.work_copy(args.name))
    status, message = check.check_implement(args.name, path, args.solution)
    print(message)
    if status != "pass" and not args.force:
        print(f"fix {os.path.relpath(path)} first (or add --force to train with it anyway)", file=sys.stderr)
        return 1
    import checks
    if args.solution:
        part = checks.IMPLEMENT[args.name]["reference"][function]
    else:
        try:
            part = getattr(checks.load_student(args.name, path), function)
        except BaseException as e:   # --force on a file that does not import, or exits as it imports
            print(f"error: {os.path.relpath(path)}: {type(e).__name__}: {e}; nothing was trained", file=sys.stderr)
            return 1
        part = checks.guarded(part, function)   # a sys.exit in it becomes an error, never a finished run
    parts = {method: {function: part}}
    default = os.path.join(os.path.relpath(check.ROOT), "runs", "exercises", f"{args.name}-yours")
    out = rest[rest.index("--out") + 1] if "--out" in rest[:-1] else default
    import runs
    import train
    import viz
    if not {"--resume", "--overwrite"} & set(rest) and os.path.isdir(out) and runs.holds_run(out):
        rest = [*rest, "--overwrite"]   # a student trains again after a fix: the old run is moved, never deleted
        print(f"note: {out} holds your previous run; train.py moves it aside (--overwrite)")
    try:
        train.main(["--method", method, *train_args, "--out", out, *rest], parts=parts)   # a later --out wins
    except SystemExit as e:   # train.py's own exit codes (2 bad arguments, 130 interrupted, ...)
        code = e.code if isinstance(e.code, int) else 1
        print(f"error: training ended early (exit status {e.code!r}): see the lines above", file=sys.stderr)
        return code or 1
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not os.path.isfile(os.path.join(out, "ckpt.pt")):
        print(f"error: training wrote no checkpoint in {out}: nothing to draw", file=sys.stderr)
        return 1
    viz.main(["--ckpt", os.path.join(out, "ckpt.pt"), "--video", video, "--out", os.path.join(out, "viz")],
             parts=parts)
    print(f"{method} trained with {'the reference' if args.solution else 'your'} {function}: the pictures are in "
          f"{os.path.join(out, 'viz')} (demo.png, kmeans.png, pca.png); compare them with make demo's")
    return 0


# ----------------------------------------------------------------------------
# --prepare: the experiments' runs, one queue


def queue(names):
    """The runs of experiments `names`, each once, in the order of the experiments."""
    import experiments
    out = []
    for name in names:
        out += [r for r in experiments.EXPERIMENTS[name]["runs"] if r not in out]
    return out


def run_args(run, steps=None):
    """The train.py words of a run (steps: every run that many steps instead, a rehearsal) and its steps."""
    import experiments
    words = shlex.split(experiments.RUNS[run][0])
    if steps:
        words[words.index("--steps") + 1] = str(steps)
    return words, int(words[words.index("--steps") + 1])


def run_state(folder):
    """(step, steps) of the run in `folder` from its checkpoint; (0, None) when it has none."""
    path = os.path.join(folder, "ckpt.pt")
    if not os.path.isfile(path):
        return 0, None
    import methods
    try:
        ckpt = methods.read_checkpoint(path)
    except (ValueError, OSError, RuntimeError) as e:
        raise SystemExit(f"error: cannot read {path} ({str(e).splitlines()[0]}); move {folder} away and prepare "
                         f"again")
    return ckpt["step"], ckpt.get("train", {}).get("steps")


def logged_step(folder):
    """The last step in a run's metrics.jsonl (the progress of a run in training), or 0."""
    try:
        with open(os.path.join(folder, "metrics.jsonl"), "rb") as f:
            f.seek(max(0, os.path.getsize(f.name) - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        return int(json.loads(lines[-1]).get("step", 0)) if lines else 0
    except (OSError, ValueError, IndexError):
        return 0


def minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 1):.0f} s"


def hold_queue(root):
    """Take root/.prepare.pid for this process -> None, or the pid of a live --prepare that holds it (one queue
    a folder: two would train the same runs side by side). A stale file, from a killed queue, is taken over."""
    path = os.path.join(root, ".prepare.pid")
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(open(path).read().strip() or 0)
                os.kill(pid, 0)
                return pid
            except (ValueError, ProcessLookupError):
                os.remove(path)   # stale: its process is gone
                continue
            except PermissionError:   # alive, another user's
                return pid
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return None
    return -1


def release_queue(root):
    try:
        os.remove(os.path.join(root, ".prepare.pid"))
    except FileNotFoundError:
        pass


def prepare(argv=None):
    import experiments
    parser = argparse.ArgumentParser(prog="run.py --prepare", description="train the experiments' runs, one queue")
    parser.add_argument("names", nargs="*", metavar="EXPERIMENT", help="only these experiments' runs (default all)")
    parser.add_argument("--runs", help="where the runs go (default $EXERCISES_RUNS, else runs/exercises)")
    parser.add_argument("--steps", type=int, help="train every run this many steps instead (a rehearsal)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in experiments.EXPERIMENTS]
    if unknown:
        parser.error(f"no experiment {', '.join(map(repr, unknown))}; they are {', '.join(experiments.EXPERIMENTS)}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be a positive number of steps; got {args.steps}")
    root = lab.runs_dir(args.runs)
    if os.path.exists(root) and not os.path.isdir(root):
        parser.error(f"--runs {root} is a file, not a folder")
    todo = queue(args.names or list(experiments.EXPERIMENTS))
    plan = []   # (run, train.py words, steps, estimated seconds)
    for run in todo:
        words, steps = run_args(run, args.steps)
        step, target = run_state(os.path.join(root, run))
        if target is not None and step >= target:
            note = "" if target == steps else f" (a run of {target} steps, kept; move it away to train {steps})"
            print(f"done already: {run}{note}")
            continue
        plan.append((run, words, steps, 60 * experiments.RUNS[run][1] * steps / run_args(run)[1]))
    if not plan:
        print(f"every run is trained: {root}")
        return 0
    os.makedirs(root, exist_ok=True)
    holder = hold_queue(root)
    if holder:
        print(f"error: another run.py --prepare (process {holder}) is training the runs in {root}: wait for it "
              f"(its progress is in its terminal), or stop it first", file=sys.stderr)
        return 1
    try:
        return train_queue(root, plan)
    finally:
        release_queue(root)


def train_queue(root, plan):
    """Train the runs of `plan` one after another, with one progress line and an ETA for the whole queue."""
    estimate = sum(p[3] for p in plan)
    print(f"{len(plan)} run{'s' * (len(plan) > 1)} to train in {root}, one after another: "
          f"{', '.join(p[0] for p in plan)} "
          f"(about {minutes(estimate)} on 2 cores; the ETA follows this machine's speed). Logs: {root}/RUN.log")
    speed = [0.0, 0.0]   # seconds measured, seconds estimated, over the runs finished here
    for i, (run, words, steps, est) in enumerate(plan):
        folder = os.path.join(root, run)
        step, _ = run_state(folder)
        if step:
            cmd = ["--method", words[words.index("--method") + 1], "--resume"]
        else:
            if os.path.isdir(folder) and os.listdir(folder):   # a start killed before its first checkpoint
                aside = f"{folder}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}"
                os.rename(folder, aside)
                print(f"\nmoved {folder} (no checkpoint) aside to {aside}")
            cmd = words
        cmd = [sys.executable, os.path.join(check.ROOT, "train.py"), *cmd, "--out", folder]
        with open(os.path.join(root, f"{run}.log"), "a") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=check.ROOT)
            t0, shown = time.monotonic(), 0.0
            try:
                while proc.poll() is None:
                    time.sleep(0.5)
                    now = time.monotonic()
                    if now - shown < (1 if sys.stdout.isatty() else 30):
                        continue
                    shown = now
                    done = logged_step(folder) / steps
                    rate = speed[0] / speed[1] if speed[1] else ((now - t0) / (done * est) if done > 0.05 else 1.0)
                    left = rate * (est * (1 - done) + sum(p[3] for p in plan[i + 1:]))
                    total = sum(p[3] for p in plan)
                    queue_done = (sum(p[3] for p in plan[:i]) + done * est) / total
                    line = (f"[{i + 1}/{len(plan)}] {run}: step {logged_step(folder)}/{steps} | queue "
                            f"{100 * queue_done:.0f}% | about {minutes(left)} left")
                    print(f"\r{line:<90}" if sys.stdout.isatty() else line, end="" if sys.stdout.isatty() else "\n",
                          flush=True)
            except KeyboardInterrupt:
                proc.wait()   # train.py saves its checkpoint on Ctrl-C
                print(f"\ninterrupted at {run}: run the same command again to continue")
                return 130
        if proc.returncode != 0:
            print(f"\nerror: {run} failed (exit status {proc.returncode}); its log: {root}/{run}.log", file=sys.stderr)
            return 1
        speed[0] += time.monotonic() - t0
        speed[1] += est * (1 - step / steps)
        line = f"[{i + 1}/{len(plan)}] {run}: trained in {minutes(time.monotonic() - t0)}"
        print(f"\r{line:<90}" if sys.stdout.isatty() else line, flush=True)
    print(f"every run is trained: {root}; check each experiment with python exercises/check.py NAME")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--prepare" in argv:
        argv.remove("--prepare")
        return prepare(argv)
    return train_with_part(argv)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
