"""The experiment exercises: the runs each one needs, what check.py measures in them, the expected range.

Every run is one train.py command writing to runs/exercises/RUN (RUNS below);
experiments share runs, so a class trains each one once. check.py NAME
measures the runs NAME needs on held-out videos and compares the result with
the range, which comes from the project's own measured runs (exercises/SOLUTIONS.md).
"""
import os

import torch

import claims
import data
import methods
import siammae
import toyworld

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "python train.py"

# run name -> the train.py arguments after `python train.py` (and `--out runs/exercises/RUN`)
RUNS = {
    "rvm": "--method rvm --data noise_square --steps 5000",                        # make demo's run, ~4.5 min
    "rvm-n1": "--method rvm --data noise_square --steps 5000 --set n_source=1",    # ~2.5 min
    "rvm-sa": "--method rvm --data noise_square --steps 5000 --set core=sa",       # ~4 min
    "siammae": "--method siammae --data noise_square",                             # ~1 min
    "sigma": "--method sigma --data shapes",                                       # ~3.2 min
    "sigma-l2": "--method sigma --data shapes --set loss=l2",                      # ~3.2 min
    "siammae-m95": "--method siammae --data shapes --steps 3000",                  # ~4.5 min
    "siammae-m50": "--method siammae --data shapes --steps 3000 --set mask_ratio=0.5",   # ~4.5 min
}


def command(run):
    return f"{PY} {RUNS[run]} --out runs/exercises/{run}"


# ----------------------------------------------------------------------------
# what is measured in a run


iou = claims.noise_square_iou          # the noise-square IoU of evaluate.py's table: 16 held-out 16-frame videos
last = claims.last_logged              # the last logged value of a key in a run's metrics.jsonl
features_ms = claims.features_ms       # median ms of model.features on one T-frame video, one thread


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
    return ok, f"noise-square IoU: RVM {rvm_iou:.3f}, SiamMAE {siam_iou:.3f}"


def rvm_sources(get):
    n4, n1 = iou(*get("rvm")), iou(*get("rvm-n1"))
    return n1 <= 0.35 and n4 >= n1 + 0.05, f"noise-square IoU: 4 source frames {n4:.3f}, 1 source frame {n1:.3f}"


def gru_vs_attention(get):
    (gru, gcfg), (sa, scfg) = get("rvm"), get("rvm-sa")
    q_gru, q_sa = iou(gru, gcfg), iou(sa, scfg)
    growth = {name: features_ms(m, c, 128) / features_ms(m, c, 16) for name, m, c in (("gru", gru, gcfg),
                                                                                       ("sa", sa, scfg))}
    ok = growth["gru"] <= 12 and growth["sa"] >= 1.5 * growth["gru"] and q_gru >= 0.3
    return ok, (f"noise-square IoU: GRU core {q_gru:.3f}, self-attention core {q_sa:.3f}; features time from 16 "
                f"to 128 frames (8x): GRU x{growth['gru']:.1f}, self-attention x{growth['sa']:.1f}")


def sigma_collapse(get):
    std = {run: last(os.path.join(get.root, run), "phi_std") for run in ("sigma", "sigma-l2")}
    ok = std["sigma-l2"] < 0.01 and std["sigma"] > 0.1
    return ok, f"phi_std at the end: Sinkhorn {std['sigma']:.4f}, l2 {std['sigma-l2']:.6f}"


def propagation_J(model, cfg, world):
    """Label propagation J on 24 held-out 16-frame videos of the shapes world the model trained on."""
    return claims.propagation(model, cfg, world)["16"]


def siammae_masking(get):
    (m95, c95), (m50, c50) = get("siammae-m95"), get("siammae-m50")
    w95, w50 = get.world("siammae-m95"), get.world("siammae-m50")
    use95, use50 = past_frame_use(m95, c95, w95), past_frame_use(m50, c50, w50)
    j95, j50 = propagation_J(m95, c95, w95), propagation_J(m50, c50, w50)
    ok = 0.8 <= use95 / use50 <= 1.25 and abs(j95 - j50) <= 0.05   # the toy world's measured outcome: no effect
    return ok, (f"loss with another clip's f1 / with the true f1: mask 0.95 x{use95:.2f}, 0.5 x{use50:.2f}; "
                f"label propagation J: 0.95 {j95:.3f}, 0.5 {j50:.3f}")


EXPERIMENTS = {
    "frame_model": {
        "minutes": 6, "runs": ["rvm", "siammae"], "measure": frame_model,
        "question": "Why can a frame model not see the moving noise square?",
        "range": "SiamMAE IoU <= 0.35 (chance) and RVM at least 0.05 above it"},
    "rvm_sources": {
        "minutes": 7, "runs": ["rvm", "rvm-n1"], "measure": rvm_sources,
        "question": "Does RVM need several source frames (Table 3a)?",
        "range": "1 source frame IoU <= 0.35 and 4 source frames at least 0.05 above it"},
    "gru_vs_attention": {
        "minutes": 10, "runs": ["rvm", "rvm-sa"], "measure": gru_vs_attention,
        "question": "GRU core or full self-attention (Table 3b): quality, and cost against T?",
        "range": "GRU IoU >= 0.3; features time x12 or less for 8x the frames (GRU), the self-attention "
                 "core's growth at least 1.5 times the GRU's"},
    "sigma_collapse": {
        "minutes": 7, "runs": ["sigma", "sigma-l2"], "measure": sigma_collapse,
        "question": "Why does SIGMA need Sinkhorn, and not an l2 loss on learned targets (Table 7b)?",
        "range": "phi_std at the end: l2 < 0.01 (collapsed), Sinkhorn > 0.1"},
    "siammae_masking": {
        "minutes": 9, "runs": ["siammae-m95", "siammae-m50"], "measure": siammae_masking,
        "question": "Why does SiamMAE mask 95% of the future frame (Table 2d)?",
        "range": "no effect in the toy world (not Table 2d): the past-frame ratios within 0.8-1.25 times each "
                 "other and J within 0.05"},
}


def check(name, runs_root=None):
    """Measure experiment `name` in its runs -> (passed, message)."""
    ex = EXPERIMENTS[name]
    root = runs_root or os.path.join(ROOT, "runs", "exercises")
    missing = [r for r in ex["runs"] if not os.path.exists(os.path.join(root, r, "ckpt.pt"))]
    if missing:
        return False, (f"{name}: {ex['question']}\nrun first (from the project folder):\n" +
                       "\n".join(f"  {command(r)}" for r in missing) + f"\n(looked in {root})")
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
        ok, result = ex["measure"](get)
    except (OSError, ValueError, KeyError) as e:   # a run that does not load (an older code's checkpoint, a cut file)
        return False, f"{name}: {e}; rerun it with the command in exercises/README.md"
    verdict = "PASS" if ok else "OUTSIDE THE RANGE"
    return ok, f"{verdict} {name}: {result}\n  expected: {ex['range']}"
