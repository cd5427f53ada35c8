"""Each paper's headline claim tried in the toy world: the runs, the probe, a verdict rule fixed before the runs.

    python claims.py --list                      # the claims: statement, runs, probe, rule
    python claims.py --claim rvm_fig6            # train its runs (cached, resumable), measure, write the table
    python claims.py --all                       # every claim -> docs/claims.md and claims.json
    python claims.py --all --train-only          # only train (measure later, e.g. on another machine)
    python claims.py --all --device cuda --preset small   # the same claims with the small model

This file is the registry: the runs (RUNS: each one train.py command, trained for seeds 0 .. --seeds-1 into
runs/claims/PRESET/RUN-sSEED), the verdict rule, and each claim's text beside the function that measures it.
claimrun.py trains the runs and reads them back (resumed when cut, probe values cached); the probes are evaluate.py's.
A verdict compares seed means with the spread over seeds (`above`): a claim needs at least two seeds.
"""
import argparse
import json
import math
import os
import shlex
import sys
import time

import torch

import claimrun
import evaluate
import runs

ROOT = os.path.dirname(os.path.abspath(__file__))

# The shapes world of the claims: each kind wears its own pattern (toyworld._pattern), so no linear function of
# a patch tells the kinds apart, and big shapes fill the frame (at the default sizes a masked tube has few visible
# tubes of its own object). On the default shapes world random-init features propagate labels as well as trained
# ones (docs/claims.md, docs/experiments.md).
PATTERN_WORLD = "shapes:pattern=true:side=20,40"

# run name -> train.py arguments (without --seed and --out; each names its --steps); docs/claims.md gives each
# claim's minutes
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
    "siammae-shapes": f"--method siammae --data {PATTERN_WORLD} --steps 1000",
    "siammae-shapes-m75": f"--method siammae --data {PATTERN_WORLD} --steps 1000 --set mask_ratio=0.75",
    "siammae-shapes-m50": f"--method siammae --data {PATTERN_WORLD} --steps 1000 --set mask_ratio=0.5",
    "siammae-shapes-joint": f"--method siammae --data {PATTERN_WORLD} --steps 1000 --set decoder=joint",
    "vicmae-shapes": f"--method vicmae --data {PATTERN_WORLD} --steps 1000",
    "vicmae-shapes-lam0": f"--method vicmae --data {PATTERN_WORLD} --steps 1000 --set lam=0",  # MAE alone
    "vicmae-shapes-con": f"--method vicmae --data {PATTERN_WORLD} --steps 1000 --set recon_weight=0",
    "sigma-shapes": f"--method sigma --data {PATTERN_WORLD} --steps 2500",
    "sigma-shapes-l2": f"--method sigma --data {PATTERN_WORLD} --steps 2500 --set loss=l2",
    "sigma-shapes-pixels": f"--method sigma --data {PATTERN_WORLD} --steps 2500 --set loss=pixels",   # VideoMAE
}


def run_words(run, opts):
    """The train.py arguments of a fresh run (without --seed and --out): its RUNS entry, --steps if given, the
    preset."""
    words = shlex.split(RUNS[run])
    if opts.steps:
        del words[words.index("--steps"):words.index("--steps") + 2]
        words += ["--steps", str(opts.steps)]
    return words + ["--preset", opts.preset]


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
# the claims: each one's text (paper, statement, the paper's number, runs, probe, and the rule, fixed before the
# runs) above the function that measures it: measure(R), R a claimrun.Runs -> ours, baselines, checks [(rule,
# held)], values (seed lists)

CLAIMS = {}
TEXT = ("paper", "runs", "statement", "paper_value", "probe", "rule")


def claim(name, **text):
    """Register the decorated measure(R) as claim `name`, with its text (every key of TEXT)."""
    if set(text) != set(TEXT):
        raise TypeError(f"claim {name}: needs {', '.join(TEXT)}; got {', '.join(text)}")

    def register(measure):
        CLAIMS[name] = {**text, "measure": measure}
        return measure
    return register


@claim("rvm_fig6", paper="RVM Fig. 6, Sec. 4.4",
       runs=["rvm", "siammae", "vicmae", "sigma"],
       statement="RVM sees a white-noise square moving on white noise; image models (SiamMAE) cannot; "
                 "a windowed video model (the paper shows VideoMAE; here SIGMA's encoder) sees it but "
                 "reassigns its clusters across windows",
       paper_value="qualitative (k-means pictures, ViT-L/16)",
       probe="noise-square IoU (k-means K = 2, Hungarian-matched, every frame) on 16 held-out 32-frame videos; "
             "SIGMA also with k-means inside each of its features windows",
       rule="RVM above its random-init twin, SiamMAE and ViC-MAE by 2 sd; both at chance (mean <= 0.35); SIGMA "
            "inside its windows above its random-init twin by 2 sd, and its drop from inside to across windows "
            "above its twin's drop by 2 sd")
def rvm_fig6(R):
    models = ("rvm", "siammae", "vicmae", "sigma")
    iou32 = lambda mo, c, w: evaluate.noise_square_iou(mo, c, T=32)
    q = {m: R.probe(m, "iou T32", iou32) for m in models}
    _, scfg, _ = R.model("sigma", R.seeds[0])
    win = (scfg.num_frames, scfg.stride)
    windows = lambda mo, c, w: evaluate.noise_square_iou(mo, c, T=32, window=win)
    sig_win, twin_win = R.probe("sigma", "iou T32 windows", windows), R.twin("sigma", "iou T32 windows", windows)
    twin, twin_sigma = R.twin("rvm", "iou T32", iou32), R.twin("sigma", "iou T32", iou32)
    raw = R.raw("rvm", iou32)
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


@claim("rvm_fig4", paper="RVM Fig. 4, Sec. 4.2.3",
       runs=["rvm-shapes", "siammae-shapes", "sigma-shapes"],
       statement="RVM's label propagation decays least from 16 to 64 frames",
       paper_value="DAVIS J&F normalized to 16 frames: RVM decays substantially less than video and image models",
       probe="label propagation J on 16 held-out 64-frame videos of the pattern world trained on; J64 / J16",
       rule="RVM's J16 above raw pixels'; RVM's J64/J16 above SiamMAE's and above SIGMA's (a windowed video "
            "model) by 2 sd")
def rvm_fig4(R):
    models = ("rvm-shapes", "siammae-shapes", "sigma-shapes")
    J = lambda mo, c, w: evaluate.propagation(mo, c, w, T=64, n=16, lengths=(16, 64))
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


@claim("rvm_tab3a", paper="RVM Table 3a",
       runs=["rvm-n1", "rvm-n2", "rvm"],
       statement="more source frames help, most on a task that needs motion",
       paper_value="SSv2 41.0 / 47.2 / 52.3 for 1 / 2 / 4 source frames",
       probe="noise-square IoU on 16 held-out 16-frame videos (the square exists only in motion)",
       rule="2 source frames above 1, and 4 above 2, each by 2 sd")
def rvm_tab3a(R):
    q = {n: R.probe(run, "iou T16", evaluate.iou16) for n, run in ((1, "rvm-n1"), (2, "rvm-n2"), (4, "rvm"))}
    twin, raw = R.twin("rvm", "iou T16", evaluate.iou16), R.raw("rvm", evaluate.iou16)
    checks = [("2 source frames above 1 by 2 sd", above(q[2], q[1])),
              ("4 source frames above 2 by 2 sd", above(q[4], q[2]))]
    ours = "IoU: " + ", ".join(f"{n} source {fmt(v)}" for n, v in q.items())
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks,
                values={f"n{n}": v for n, v in q.items()} | {"twin": twin, "raw": raw})


@claim("rvm_tab3b", paper="RVM Table 3b, Sec. 4.3",
       runs=["rvm", "rvm-sa"],
       statement="the GRU core is at least as good as full self-attention over the source frames, and cheaper",
       paper_value="SSv2 52.3 (RNN) vs 49.1 (SA); SA costs more FLOPs",
       probe="noise-square IoU (16 videos, 16 frames; SA, trained on 4 source frames, attends over all 16 at "
             "once); model.features time on 16 and 128 frames, one thread",
       rule="GRU's IoU not below SA's by 2 sd; GRU's time x12 or less for 8x the frames; SA's growth at least "
            "1.5 times the GRU's")
def rvm_tab3b(R):
    q = {run: R.probe(run, "iou T16", evaluate.iou16) for run in ("rvm", "rvm-sa")}
    grows = lambda mo, c, w: evaluate.features_ms(mo, c, 128) / evaluate.features_ms(mo, c, 16)
    growth = {run: R.probe(run, "features time 128 / 16 frames", grows) for run in q}
    twin, raw = R.twin("rvm", "iou T16", evaluate.iou16), R.raw("rvm", evaluate.iou16)
    g, s = mean_sd(growth["rvm"])[0], mean_sd(growth["rvm-sa"])[0]
    checks = [("GRU's IoU at least self-attention's (not below it by 2 sd)", not above(q["rvm-sa"], q["rvm"])),
              ("GRU's time linear in T: x12 or less for 8x the frames", g <= 12),
              ("self-attention's time grows faster: at least 1.5 times the GRU's growth", s >= 1.5 * g)]
    ours = (f"IoU: GRU {fmt(q['rvm'])}, self-attention {fmt(q['rvm-sa'])}; features time 16 -> 128 frames: "
            f"GRU x{g:.1f}, self-attention x{s:.1f}")
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks,
                values={"gru": q["rvm"], "sa": q["rvm-sa"], "growth_gru": growth["rvm"],
                        "growth_sa": growth["rvm-sa"], "twin": twin, "raw": raw})


@claim("siammae_masking", paper="SiamMAE Table 2b, 2d",
       runs=["siammae-shapes", "siammae-shapes-m75", "siammae-shapes-m50", "siammae-shapes-joint"],
       statement="a high mask ratio of the future frame (95%) beats 75% and 50%; the cross-self decoder beats the "
                 "joint one",
       paper_value="DAVIS J&F 49.0 / 55.3 / 58.4 / 58.1 at mask 0.5 / 0.75 / 0.9 / 0.95; decoder joint 56.7, "
                   "cross-self 58.1",
       probe="label propagation J on 24 held-out 16-frame videos of the pattern world trained on",
       rule="mask 0.95 above 0.75 and above 0.5 by 2 sd; cross-self above joint by 2 sd")
def siammae_masking(R):
    arms = {"mask 0.95": "siammae-shapes", "mask 0.75": "siammae-shapes-m75", "mask 0.5": "siammae-shapes-m50",
            "joint decoder": "siammae-shapes-joint"}
    J = {k: R.probe(run, "J T16", evaluate.j16) for k, run in arms.items()}
    twin, raw = R.twin("siammae-shapes", "J T16", evaluate.j16), R.raw("siammae-shapes", evaluate.j16)
    checks = [(f"mask 0.95 above {k} by 2 sd", above(J["mask 0.95"], J[k])) for k in ("mask 0.75", "mask 0.5")]
    checks += [("cross-self decoder (mask 0.95) above the joint one by 2 sd",
                above(J["mask 0.95"], J["joint decoder"]))]
    ours = "J: " + ", ".join(f"{k} {fmt(v)}" for k, v in J.items())
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks, values={**J, "twin": twin, "raw": raw})


@claim("vicmae_lambda", paper="ViC-MAE Sec. 3.2, 4.1",
       runs=["vicmae-shapes", "vicmae-shapes-lam0", "vicmae-shapes-con"],
       statement="MAE plus the contrastive loss beats MAE alone and contrastive alone on a linear probe",
       paper_value="IN1K linear: ViC-MAE 74.0 against other papers' models, MAE 68, SimCLR 73.5 (no lambda "
                   "ablation in the paper)",
       probe="linear probe of a video-level label: the kind (here its pattern) of the one shape in held-out "
             "pattern-world videos (96 train, 96 test, 8 frames; chance 1/3), features pooled over frames and tokens",
       rule="MAE + contrastive above MAE alone and above contrastive alone by 2 sd")
def vicmae_lambda(R):
    arms = {"MAE + contrastive": "vicmae-shapes", "MAE alone": "vicmae-shapes-lam0",
            "contrastive alone": "vicmae-shapes-con"}
    acc = {k: R.probe(run, "video kind", evaluate.video_kinds) for k, run in arms.items()}
    twin = R.twin("vicmae-shapes", "video kind", evaluate.video_kinds)
    raw = R.raw("vicmae-shapes", evaluate.video_kinds)
    checks = [(f"MAE + contrastive above {k} by 2 sd", above(acc["MAE + contrastive"], acc[k]))
              for k in ("MAE alone", "contrastive alone")]
    ours = "video-kind accuracy (chance 0.333): " + ", ".join(f"{k} {fmt(v)}" for k, v in acc.items())
    return dict(ours=ours, twin=fmt(twin), raw=fmt(raw), checks=checks, values={**acc, "twin": twin, "raw": raw})


@claim("sigma_tab7b", paper="SIGMA Table 7b",
       runs=["sigma-shapes", "sigma-shapes-l2"],
       statement="an l2 loss on learned targets collapses to a trivial solution; Sinkhorn's does not",
       paper_value="mini-SSv2 fine-tuning acc. (ViT-S): SIGMA-MLP with L2 36.4, with Eq. 7 60.3",
       probe="phi_std at the end of training; label propagation J on 24 held-out 16-frame videos of the pattern "
             "world trained on",
       rule="l2 phi_std < 0.01 and Sinkhorn > 0.1; l2's J not above its random-init twin's by 2 sd; "
            "Sinkhorn's above l2's by 2 sd")
def sigma_tab7b(R):
    std = {run: R.logged(run, "phi_std") for run in ("sigma-shapes", "sigma-shapes-l2")}
    J = {run: R.probe(run, "J T16", evaluate.j16) for run in std}
    twin, raw = R.twin("sigma-shapes-l2", "J T16", evaluate.j16), R.raw("sigma-shapes", evaluate.j16)
    checks = [("l2: phi collapses (phi_std < 0.01 at the end)", mean_sd(std["sigma-shapes-l2"])[0] < 0.01),
              ("Sinkhorn: phi does not collapse (phi_std > 0.1)", mean_sd(std["sigma-shapes"])[0] > 0.1),
              ("l2's features at or below random-init (not above it by 2 sd)", not above(J["sigma-shapes-l2"], twin)),
              ("Sinkhorn's features above l2's by 2 sd", above(J["sigma-shapes"], J["sigma-shapes-l2"]))]
    ours = (f"phi_std: Sinkhorn {fmt(std['sigma-shapes'], 4)}, l2 {fmt(std['sigma-shapes-l2'], 6)}; J: Sinkhorn "
            f"{fmt(J['sigma-shapes'])}, l2 {fmt(J['sigma-shapes-l2'])}")
    return dict(ours=ours, twin=f"l2 {fmt(twin)}", raw=fmt(raw), checks=checks,
                values={"phi_std_sinkhorn": std["sigma-shapes"], "phi_std_l2": std["sigma-shapes-l2"],
                        "J_sinkhorn": J["sigma-shapes"], "J_l2": J["sigma-shapes-l2"], "twin_l2": twin, "raw": raw})


@claim("sigma_vs_pixels", paper="SIGMA Table 7 (VideoMAE row), Sec. 3.1-3.2",
       runs=["sigma-shapes", "sigma-shapes-pixels"],
       statement="learned (Sinkhorn-clustered) targets give more semantic features than VideoMAE's pixel targets",
       paper_value="mini-SSv2 fine-tuning acc. (ViT-S): VideoMAE (pixels, L2) 56.9, SIGMA-MLP 60.3",
       probe="label propagation J on 24 held-out 16-frame videos of the pattern world trained on; VideoMAE is "
             "sigma.py with loss=pixels (the same Psi, each masked tube's normalized pixels as its target)",
       rule="SIGMA above its random-init twin and above raw pixels by 2 sd; SIGMA above VideoMAE by 2 sd")
def sigma_vs_pixels(R):
    J = {run: R.probe(run, "J T16", evaluate.j16) for run in ("sigma-shapes", "sigma-shapes-pixels")}
    twin, raw = R.twin("sigma-shapes", "J T16", evaluate.j16), R.raw("sigma-shapes", evaluate.j16)
    checks = [("SIGMA above its random-init twin by 2 sd", above(J["sigma-shapes"], twin)),
              ("SIGMA above raw pixels by 2 sd", above(J["sigma-shapes"], raw)),
              ("SIGMA above VideoMAE (its pixel-target twin) by 2 sd",
               above(J["sigma-shapes"], J["sigma-shapes-pixels"]))]
    ours = f"J: SIGMA {fmt(J['sigma-shapes'])}, VideoMAE {fmt(J['sigma-shapes-pixels'])}"
    return dict(ours=ours, twin=f"SIGMA {fmt(twin)}", raw=fmt(raw), checks=checks,
                values={"sigma": J["sigma-shapes"], "videomae": J["sigma-shapes-pixels"], "twin": twin, "raw": raw})


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


def describe(name):
    c = CLAIMS[name]
    lines = "\n".join(f"      {run}: python train.py {RUNS[run]} --seed SEED" for run in c["runs"]) or "      (none)"
    return (f"{name}  ({c['paper']})\n  {c['statement']}\n  paper: {c['paper_value']}\n  probe: {c['probe']}\n"
            f"  rule: {c['rule']}\n  runs:\n{lines}")


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
    out = opts.out or ROOT
    names = list(CLAIMS) if opts.all else list(dict.fromkeys(opts.claim))
    needed = list(dict.fromkeys(r for n in names for r in CLAIMS[n]["runs"]))
    todo = [(r, run_words(r, opts), s) for s in opts.seed_list for r in needed]   # by seed: a cut leaves whole seeds
    # every folder checked before the first run: a file in the way is one line now, not an error from a worker later
    folders = [(opts.root, "--runs"), (out, "--out"), (os.path.join(out, "docs"), "--out")]
    for folder, flag in folders + [(claimrun.run_dir(opts.root, r, s), "--runs") for r, _, s in todo]:
        reason = runs.check_out_folder(folder, flag)
        if reason:
            parser.error(reason)
    claimrun.train_all(todo, opts)
    if opts.train_only:
        return 0
    R, rows = claimrun.Runs(opts.root, opts.seed_list, opts.device), []
    for name in names:
        print(f"[claims] measuring {name} ...", flush=True)
        rows.append(measure(name, R))
        print(f"[claims] {name}: {rows[-1]['verdict']}: {rows[-1]['ours']}", flush=True)
    setting = {"preset": opts.preset, "seeds": opts.seed_list, "device": opts.device}
    if not opts.all:   # a partial run keeps the other claims' rows of the last table, if measured the same way
        rows = merge(rows, os.path.join(out, "claims.json"), setting)
    try:
        os.makedirs(os.path.join(out, "docs"), exist_ok=True)
        runs.write_atomic(os.path.join(out, "claims.json"), json.dumps({**setting, "claims": rows}, indent=1) + "\n")
        runs.write_atomic(os.path.join(out, "docs", "claims.md"), markdown(rows, opts))
    except OSError as e:
        raise SystemExit(f"claims.py: {e}")
    print(f"[claims] wrote {os.path.join(out, 'docs', 'claims.md')} and {os.path.join(out, 'claims.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
