"""The experiment exercises: the runs each one needs, what check.py measures in them, the expected range.

Every run is one train.py command writing to runs/exercises/RUN (RUNS below);
experiments share runs, so a class trains each one once. check.py NAME
measures the runs NAME needs on held-out videos and compares the result with
the range, which comes from the project's own measured runs (exercises/SOLUTIONS.md).
"""
import os

import torch

import data
import evaluate
import methods
import siammae
import lab
import toyworld

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "python train.py"

# run name -> (the train.py arguments after `python train.py` and before `--out DIR/RUN`, the minutes on 2 cores
# the ETA of `run.py --prepare` starts from before this machine's own speed is known: SOLUTIONS.md gives the
# measured minutes). Shared by name: the 4-source GRU RVM serves three experiments and trains once. Each run is
# as short as its experiment's point allows (SOLUTIONS.md, "The prepare queue"): RVM needs its 5000 steps to see
# the square; SiamMAE's mask-ratio runs show the same "no effect" at 600 steps as at 3000 (docs/experiments.md).
RUNS = {
    "rvm": ("--method rvm --data noise_square --steps 5000", 7.4),          # make demo's run
    "siammae": ("--method siammae --data noise_square --steps 600", 1.0),
    "rvm-n1": ("--method rvm --data noise_square --steps 5000 --set n_source=1", 4.0),
    "rvm-sa": ("--method rvm --data noise_square --steps 5000 --set core=sa", 6.7),
    "sigma": ("--method sigma --data shapes --steps 2500", 7.1),
    "sigma-l2": ("--method sigma --data shapes --steps 2500 --set loss=l2", 7.1),
    "siammae-m95": ("--method siammae --data shapes --steps 600", 1.4),
    "siammae-m50": ("--method siammae --data shapes --steps 600 --set mask_ratio=0.5", 1.4),
}


def command(run, runs_root="runs/exercises"):
    return f"{PY} {RUNS[run][0]} --out {runs_root}/{run}"


# ----------------------------------------------------------------------------
# what is measured in a run


iou = evaluate.noise_square_iou          # the noise-square IoU of evaluate.py's table: 16 held-out 16-frame videos
last = evaluate.last_logged              # the last logged value of a key in a run's metrics.jsonl
features_ms = evaluate.features_ms       # median ms of model.features on one T-frame video, one thread


@torch.no_grad()
def past_frame_use(model, cfg, world, n=64):
    """How much SiamMAE's prediction of f2 rests on f1: the loss on n held-out clips of its shapes world with
    f1 taken from another clip, over the loss with the true f1 (1: f1 is not used). Each at its own mask ratio."""
    seed = toyworld.EVAL_SEED + toyworld.SEED_BLOCKS["probe"]
    clips, _ = toyworld.shapes_set(n, cfg.clip_len, cfg.img_size, seed, **world)
    batch = siammae.sample(clips, cfg, torch.Generator().manual_seed(0))
    true = model(batch)["loss"].item()
    other = model({**batch, "f1": batch["f1"].roll(1, 0)})["loss"].item()
    return other / true


# ----------------------------------------------------------------------------
# the experiments: question, runs, what to look at, the range and its rule


def frame_model(get):
    rvm_iou, siam_iou = iou(*get("rvm")), iou(*get("siammae"))
    ok = siam_iou <= 0.35 and rvm_iou >= siam_iou + 0.05
    return "pass" if ok else "outside", f"noise-square IoU: RVM {rvm_iou:.3f}, SiamMAE {siam_iou:.3f}"


def rvm_sources(get):
    n4, n1 = iou(*get("rvm")), iou(*get("rvm-n1"))
    ok = n1 <= 0.35 and n4 >= n1 + 0.05
    return "pass" if ok else "outside", f"noise-square IoU: 4 source frames {n4:.3f}, 1 source frame {n1:.3f}"


def gru_vs_attention(get):
    """Quality where it is fair: both cores on videos as long as their training clips (n_source frames: the
    self-attention core attends over that many frames at once). The long videos (16 frames), the point of the
    exercise, are reported beside it: the GRU streams them, the self-attention core meets a length it never saw."""
    (gru, gcfg), (sa, scfg) = get("rvm"), get("rvm-sa")
    short = {name: iou(m, c, T=c.n_source) for name, m, c in (("gru", gru, gcfg), ("sa", sa, scfg))}
    long = {name: iou(m, c) for name, m, c in (("gru", gru, gcfg), ("sa", sa, scfg))}
    growth = {name: features_ms(m, c, 128) / features_ms(m, c, 16) for name, m, c in (("gru", gru, gcfg),
                                                                                       ("sa", sa, scfg))}
    ok = (short["gru"] >= short["sa"] - 0.05 and long["gru"] >= 0.3 and growth["gru"] <= 12
          and growth["sa"] >= 1.5 * growth["gru"])
    return "pass" if ok else "outside", (
        f"noise-square IoU on {gcfg.n_source}-frame videos (the length both trained on): GRU core {short['gru']:.3f}, "
        f"self-attention core {short['sa']:.3f}\n  on 16-frame videos (longer than training): GRU core "
        f"{long['gru']:.3f}, self-attention core {long['sa']:.3f}\n  features time from 16 to 128 frames (8x): GRU "
        f"x{growth['gru']:.1f}, self-attention x{growth['sa']:.1f}")


def sigma_collapse(get):
    std = {run: last(os.path.join(get.root, run), "phi_std") for run in ("sigma", "sigma-l2")}
    ok = std["sigma-l2"] < 0.01 and std["sigma"] > 0.1
    return "pass" if ok else "outside", f"phi_std at the end: Sinkhorn {std['sigma']:.4f}, l2 {std['sigma-l2']:.6f}"


def propagation_J(model, cfg, world):
    """Label propagation J on 24 held-out 16-frame videos of the shapes world the model trained on."""
    return evaluate.propagation(model, cfg, world)["16"]


def siammae_masking(get):
    (m95, c95), (m50, c50) = get("siammae-m95"), get("siammae-m50")
    w95, w50 = get.world("siammae-m95"), get.world("siammae-m50")
    use95, use50 = past_frame_use(m95, c95, w95), past_frame_use(m50, c50, w50)
    j95, j50 = propagation_J(m95, c95, w95), propagation_J(m50, c50, w50)
    # no effect, the toy world's measured outcome, between two models that did learn to use f1 (an untrained
    # pair would show "no effect" trivially)
    none = min(use95, use50) > 1.2 and 0.8 <= use95 / use50 <= 1.25 and abs(j95 - j50) <= 0.05
    return "no effect" if none else "outside", (
        f"loss with another clip's f1 / with the true f1: mask 0.95 x{use95:.2f}, 0.5 x{use50:.2f}; "
        f"label propagation J: 0.95 {j95:.3f}, 0.5 {j50:.3f}")


# "expect": "a difference" (PASS when the range holds) or "no effect" (the toy world's honest outcome: said as
# such, with the number of the question that asks why, never as PASS)
EXPERIMENTS = {
    "frame_model": {
        "minutes": 10, "runs": ["rvm", "siammae"], "measure": frame_model, "expect": "a difference",
        "question": "Why can a frame model not see the moving noise square?",
        "range": "SiamMAE IoU <= 0.35 (chance) and RVM at least 0.05 above it"},
    "rvm_sources": {
        "minutes": 5, "runs": ["rvm", "rvm-n1"], "measure": rvm_sources, "expect": "a difference",
        "question": "Does RVM need several source frames (Table 3a)?",
        "range": "1 source frame IoU <= 0.35 and 4 source frames at least 0.05 above it"},
    "gru_vs_attention": {
        "minutes": 10, "runs": ["rvm", "rvm-sa"], "measure": gru_vs_attention, "expect": "a difference",
        "question": "GRU core or full self-attention (Table 3b): quality, and cost against T?",
        "range": "on the training length, GRU IoU not below self-attention's by more than 0.05; GRU IoU >= 0.3 on "
                 "16 frames; features time x12 or less for 8x the frames (GRU), the self-attention core's growth "
                 "at least 1.5 times the GRU's"},
    "sigma_collapse": {
        "minutes": 5, "runs": ["sigma", "sigma-l2"], "measure": sigma_collapse, "expect": "a difference",
        "question": "Why does SIGMA need Sinkhorn, and not an l2 loss on learned targets (Table 7b)?",
        "range": "phi_std at the end: l2 < 0.01 (collapsed), Sinkhorn > 0.1"},
    "siammae_masking": {
        "minutes": 10, "runs": ["siammae-m95", "siammae-m50"], "measure": siammae_masking, "expect": "no effect",
        "question": "Why does SiamMAE mask 95% of the future frame (Table 2d)?",
        "range": "no effect in the toy world (not Table 2d): both models use f1 (past-frame ratios above 1.2), "
                 "the ratios within 0.8-1.25 times each other and J within 0.05"},
}


def check(name, runs_root=None):
    """Measure experiment `name` in its runs -> (status, message); status: pass, outside (the range does not
    hold), no effect (the expected outcome of a no-effect experiment), missing runs, broken (a run that does not
    load)."""
    ex = EXPERIMENTS[name]
    root = lab.runs_dir(runs_root)
    missing = [r for r in ex["runs"] if not os.path.isfile(os.path.join(root, r, "ckpt.pt"))]
    if missing:
        return "missing runs", (
            f"{name}: {ex['question']}\nits runs are not trained yet: {', '.join(missing)} (looked in {root}).\n"
            f"If python exercises/run.py --prepare runs in another terminal, wait for it; else train them with: "
            f"python exercises/run.py --prepare {name}" +
            (f" --runs {root}" if runs_root else "") + "\n(or get the teacher's prepared folder and pass it with "
            "--runs DIR or EXERCISES_RUNS=DIR)")
    models, worlds = {}, {}

    def get(run):   # the run's model and config, loaded once
        if run not in models:
            model, cfg, meta = methods.load_checkpoint(os.path.join(root, run, "ckpt.pt"))
            models[run] = (model, cfg)
            kind, options = data.world_spec(meta.get("data", {}).get("spec", ""), cfg.img_size)   # its --data
            worlds[run] = options if kind == "shapes" else {}
        return models[run]
    get.root, get.world = root, lambda run: worlds[run]
    print(f"{name}: measuring {', '.join(ex['runs'])} in {root} ...", flush=True)
    try:
        for run in ex["runs"]:   # an interrupted run would measure an undertrained model
            ckpt = methods.read_checkpoint(os.path.join(root, run, "ckpt.pt"))
            if ckpt["step"] < ckpt.get("train", {}).get("steps", ckpt["step"]):
                return "missing runs", (f"{name}: {run} stopped at step {ckpt['step']} of {ckpt['train']['steps']}; "
                                        f"finish it with: python exercises/run.py --prepare {name}")
        status, result = ex["measure"](get)
    except (OSError, ValueError, KeyError, RuntimeError) as e:   # an older code's checkpoint, a cut file
        return "broken", (f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}; train it again: move "
                          f"the run folder away, then python exercises/run.py --prepare {name}")
    numbers = lab.question_numbers(name)
    asks = f"question {', '.join(map(str, numbers))} in answers.md" if numbers else "SOLUTIONS.md"
    if status == "no effect":
        return status, f"AS EXPECTED HERE: NO EFFECT {name}: {result}\n  expected: {ex['range']}\n  {asks} asks why"
    if status == "pass":
        return status, f"PASS {name}: {result}\n  expected: {ex['range']}\n  now answer {asks}"
    what = "an effect where none was expected" if ex["expect"] == "no effect" else "the range does not hold"
    return status, (f"OUTSIDE THE RANGE {name}: {result}\n  expected: {ex['range']}\n  ({what}: see SOLUTIONS.md, "
                    f"'When a run lands outside its range')")
