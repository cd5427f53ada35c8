"""The exercise checker: python exercises/check.py NAME [--solution] [--file PATH] [--runs DIR]

An implement exercise (exercises/NAME.py): property tests and a comparison with
the project's own implementation on random inputs. Each failure says what was
expected, what the code gave, and a hint. --solution runs the project's
reference through the same checks.

An experiment exercise: reads the runs under runs/exercises/NAME/ (the commands
are in exercises/README.md, and printed when a run is missing) and says whether
the measured result falls in the expected range.

Exit status 0 on a pass, 1 on a fail. `--list` lists the exercises.
"""
import argparse
import importlib.util
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]   # the project's modules, and experiments.py beside this file

import torch  # noqa: E402

import metrics  # noqa: E402
import rvm  # noqa: E402
import sigma  # noqa: E402
import vicmae  # noqa: E402
import vit  # noqa: E402


class Fail(Exception):
    """One failed check: what was checked, what was expected, what the code gave, a hint."""

    def __init__(self, what, expected, got, hint):
        super().__init__(what)
        self.what, self.expected, self.got, self.hint = what, expected, got, hint


def show(x, n=6):
    """A short text of a value for a message: a tensor's shape and first entries."""
    if torch.is_tensor(x):
        flat = x.detach().flatten()[:n].tolist()
        flat = [round(v, 4) if isinstance(v, float) else v for v in flat]
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}, first entries {flat}"
    if isinstance(x, tuple):
        return "(" + ", ".join(show(v, n) for v in x) + ")"
    return repr(x)


def close(what, got, want, hint, atol=1e-5, rtol=1e-4, exact=False):
    """got must be a tensor of want's shape (and kind: integer or float), equal or close to it."""
    if not torch.is_tensor(got):
        raise Fail(what, show(want), f"{type(got).__name__}: {show(got)}", "return a torch tensor")
    if tuple(got.shape) != tuple(want.shape):
        raise Fail(what, f"shape {tuple(want.shape)}", f"shape {tuple(got.shape)}", hint)
    if got.is_floating_point() != want.is_floating_point():
        raise Fail(what, f"dtype like {want.dtype}", f"dtype {got.dtype}", hint)
    got_c, want_c = got.detach().cpu().double(), want.detach().cpu().double()
    ok = torch.equal(got_c, want_c) if exact else torch.allclose(got_c, want_c, atol=atol, rtol=rtol)
    if not ok:
        worst = (got_c - want_c).abs().flatten().argmax().item()
        raise Fail(what, f"{show(want)}; at flat index {worst}: {want_c.flatten()[worst].item():.6g}",
                   f"{show(got)}; at flat index {worst}: {got_c.flatten()[worst].item():.6g}", hint)


def expect(cond, what, expected, got, hint):
    if not cond:
        raise Fail(what, expected, got, hint)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------
# implement exercises: name -> its functions, minutes, goal, the reference, the checks


IMPLEMENT = {}


def implement(name, functions, minutes, goal, reference, needs=""):
    """Register the checks of exercises/NAME.py (defining `functions`); reference: a dict of the
    project's functions with the same signatures; needs: the prerequisites, for the README's table."""
    def register(checks):
        IMPLEMENT[name] = {"functions": functions, "minutes": minutes, "goal": goal, "reference": reference,
                           "needs": needs, "checks": checks}
        return checks
    return register


@implement("masking", ["random_masking"], 20, "MAE's random masking by argsort of noise",
           {"random_masking": lambda noise, ratio: vit.random_masking(*noise.shape, ratio, noise=noise)})
def check_masking(f):
    noise = torch.rand(3, 16, generator=gen(0))
    ids_keep, ids_restore, mask = f["random_masking"](noise, 0.75)
    want_keep, want_restore, want_mask = vit.random_masking(3, 16, 0.75, noise=noise)
    close("ids_keep for noise (3, 16), ratio 0.75: the 4 tokens of smallest noise per row", ids_keep, want_keep,
          "keep the SMALLEST noise, in increasing order: torch.argsort(noise, dim=1)[:, :n]", exact=True)
    close("ids_restore: the inverse of the sorting permutation", ids_restore, want_restore,
          "argsort the sorting permutation itself: torch.argsort(ids_shuffle, dim=1)", exact=True)
    close("mask: 1 on removed tokens, in token order", mask, want_mask,
          "build it in sorted order (n zeros, then ones) and gather it back with ids_restore; "
          "or set 1 everywhere and 0 at ids_keep", exact=True)
    x = torch.arange(16.0)[None].expand(3, 16)                            # token i carries the number i
    shuffled = torch.gather(x, 1, torch.argsort(noise, dim=1))
    close("gathering the shuffled tokens with ids_restore puts every token back", torch.gather(shuffled, 1, ids_restore),
          x, "ids_restore[b, i] must be the position of token i in the sorted order", exact=True)
    noise = torch.rand(2, 100, generator=gen(1))
    ids_keep = f["random_masking"](noise, 0.9)[0]
    expect(tuple(ids_keep.shape) == (2, 10), "tokens kept of N = 100 at ratio 0.9", "10 a row",
           f"shape {tuple(ids_keep.shape)}", "100 * (1 - 0.9) is 9.999999999999998: add 1e-6 before int()")


@implement("patchify", ["patchify", "unpatchify"], 20, "images to tokens and back, in MAE's layout",
           {"patchify": vit.patchify, "unpatchify": vit.unpatchify})
def check_patchify(f):
    x = torch.rand(2, 3, 16, 24, generator=gen(0))
    tokens = f["patchify"](x, 4)
    close("patchify of (2, 3, 16, 24) with p = 4", tokens, vit.patchify(x, 4),
          "(B, 3, h, p, w, p) -> permute to (B, h, w, p, p, 3) -> (B, h*w, p*p*3): channel LAST in a token")
    close("token 1 is the patch right of token 0 (row-major grid)", tokens[:, 1].reshape(2, 4, 4, 3),
          x[:, :, 0:4, 4:8].permute(0, 2, 3, 1), "the grid is row-major: w patches per row")
    close("unpatchify(patchify(x)) == x", f["unpatchify"](tokens, 4, 4, 6), x,
          "undo the same reshape and permute in reverse order")
    t = torch.rand(2, 24, 48, generator=gen(1))
    close("unpatchify of reference tokens", f["unpatchify"](t, 4, 4, 6), vit.unpatchify(t, 4, 4, 6),
          "read each token as (row in patch, column in patch, channel)")


def cross_block(seed, dim=16):
    torch.manual_seed(seed)
    block = vit.CrossBlock(dim, 2, 2.0)
    for p in block.parameters():
        if p.ndim < 2:                                # LayerNorms and biases away from (1, 0): each one shows
            torch.nn.init.normal_(p, std=0.3)
    return block


@implement("decoder_block", ["cross_self_block"], 15, "SiamMAE's cross-self decoder block",
           {"cross_self_block": lambda x, ctx, block: vit.CrossBlock.forward(block, x, ctx)})
def check_decoder_block(f):
    block = cross_block(0)
    x, ctx = torch.randn(2, 5, 16, generator=gen(1)), torch.randn(2, 7, 16, generator=gen(2))
    with torch.no_grad():
        got, want = f["cross_self_block"](x, ctx, block), block(x, ctx)
    close("the block on x (2, 5, 16), ctx (2, 7, 16)", got, want,
          "x + cross(norm_q(x), norm_kv(ctx)), then x + mlp(norm2(x)), then x + attn(norm3(x))")
    with torch.no_grad():
        moved = f["cross_self_block"](x, ctx.flip(1), block)
    close("cross-attention does not care about the order of f1's tokens", moved, got,
          "the keys and values come from ctx, the queries from x")


@implement("rvm_core", ["gru_step"], 20, "RVM's GRU-gated core step (Sec. 3.2)", {"gru_step": rvm.gru_step})
def check_rvm_core(f):
    torch.manual_seed(0)
    core = rvm.GatedTransformerCore(16, 1, 2, 2.0)
    with torch.no_grad():
        core.state_scale.uniform_(0.5, 1.5)
    e, s = torch.randn(2, 5, 16, generator=gen(1)), torch.randn(2, 5, 16, generator=gen(2)) * 2 + 1
    parts = (core.w_input_update, core.w_state_update, core.w_input_reset, core.w_state_reset, core.state_norm, core.tx)
    with torch.no_grad():
        close("s_t for e, s (2, 5, 16)", f["gru_step"](e, s, *parts), rvm.gru_step(e, s, *parts),
              "u = sigmoid(W_e^u e + W_s^u s), r = sigmoid(W_e^r e + W_s^r s), "
              "h = tx(e, r * state_norm(s)), s_t = (1 - u) * s + u * h")
        shut = lambda _: torch.full_like(e, -60.0)                        # u = sigmoid(-60 + ...) = 0
        close("update gate shut (u = 0): the state passes through", f["gru_step"](e, s, shut, *parts[1:]), s,
              "s_t = (1 - u) * s_{t-1} + u * h_t: u weighs the NEW candidate h, 1 - u the old state", atol=1e-4)
        blank = lambda _: torch.full_like(s, -60.0)                       # r = 0: the memory is hidden
        close("reset gate shut (r = 0): Tx sees a blank memory",
              f["gru_step"](e, s, *parts[:2], blank, *parts[3:]),
              rvm.gru_step(e, s, *parts[:2], blank, *parts[3:]),
              "the reset gate multiplies the (normalized) state before Tx: kv = r * state_norm(s)", atol=1e-4)


@implement("info_nce", ["info_nce"], 25, "ViC-MAE's InfoNCE with in-batch negatives (Eq. 3)",
           {"info_nce": vicmae.info_nce})
def check_info_nce(f):
    unit = lambda n, k, seed: torch.nn.functional.normalize(torch.randn(n, k, generator=gen(seed)), dim=-1)
    for n, tau in ((2, 0.5), (6, 0.1), (9, 1.0)):
        p, z = unit(n, 8, n), unit(n, 8, 100 + n)
        close(f"the loss for N = {n} pairs, tau = {tau}", f["info_nce"](p, z, tau), vicmae.info_nce(p, z, tau),
              "2N anchors [p; z] against the 2N keys [p; z], the anchor itself masked out (-inf), "
              "the positive of p_i is z_i and of z_i is p_i; mean over the 2N anchors")
    p, z = unit(6, 8, 1), unit(6, 8, 2)
    close("swapping the views (p <-> z) gives the same loss", f["info_nce"](z, p, 0.2), f["info_nce"](p, z, 0.2),
          "both views are anchors: the loss is symmetric")
    eye = torch.eye(4, 8)
    close("perfect pairs far apart (p = z = orthogonal rows, tau 0.05): the loss is ~0",
          f["info_nce"](eye, eye, 0.05), vicmae.info_nce(eye, eye, 0.05), "an anchor's own logit is left out, "
          "not its positive: exp(1/tau) against 2N - 2 negatives at exp(0)", atol=1e-6)


@implement("sinkhorn", ["sinkhorn"], 25, "SIGMA's Sinkhorn-Knopp (Eq. 3-4)",
           {"sinkhorn": lambda scores, epsilon=0.05, n_iters=10: sigma.sinkhorn(scores, epsilon, n_iters, False)})
def check_sinkhorn(f):
    s = torch.rand(12, 5, generator=gen(0)) * 2 - 1                       # cosines in [-1, 1]
    s[:3, 0] += 1.0                                                        # a quarter of the samples on prototype 0
    for iters in (1, 3, 10):
        close(f"q for skewed scores (12, 5), epsilon 0.5, n_iters {iters}", f["sinkhorn"](s, 0.5, iters),
              sigma.sinkhorn(s, 0.5, iters, False), "start from exp((s - s.max()) / epsilon) (the GLOBAL max); "
              "each iteration: columns to 1/K, then rows to 1/B; at the end rows to sum 1", atol=1e-5)
    q = f["sinkhorn"](s, 0.5, 200)
    close("rows of q sum to 1", q.sum(1), torch.ones(12), "divide every row by its sum at the end")
    close("equipartition: after 200 iterations each prototype gets B / K of the mass", q.sum(0), torch.full((5,), 2.4),
          "normalize the columns (prototypes) too, not only the rows", atol=1e-3)
    grad = torch.rand(4, 3, requires_grad=True)
    expect(not f["sinkhorn"](grad, 0.5, 3).requires_grad, "q carries no gradient", "requires_grad False",
           "requires_grad True", "compute it under torch.no_grad() from scores.detach()")


@implement("swapped_prediction", ["swapped_prediction"], 15, "SIGMA's swapped-prediction loss (Eq. 5-7)",
           {"swapped_prediction": sigma.swapped_prediction})
def check_swapped_prediction(f):
    s_phi, s_psi = torch.randn(10, 6, generator=gen(0)), torch.randn(10, 6, generator=gen(1))
    q_phi, q_psi = (torch.softmax(torch.randn(10, 6, generator=gen(k)) * 3, 1) for k in (2, 3))
    got = f["swapped_prediction"](s_phi, s_psi, q_phi, q_psi, 0.1)
    expect(isinstance(got, tuple) and len(got) == 2, "the result", "a pair (ce_phi, ce_psi)", show(got),
           "return both terms of Eq. 7")
    want = sigma.swapped_prediction(s_phi, s_psi, q_phi, q_psi, 0.1)
    close("ce_phi = CE(s_phi, q_psi)", got[0], want[0],
          "phi's scores against PSI's targets, softmax over the K prototypes (dim 1), mean over the M tubes")
    close("ce_psi = CE(s_psi, q_phi)", got[1], want[1], "Psi's scores against PHI's targets")
    sure = torch.eye(6)[torch.arange(10) % 6] * 50                         # scores peaked on the target's prototype
    hard = torch.eye(6)[torch.arange(10) % 6]
    ce = f["swapped_prediction"](sure, sure, hard, hard, 1.0)
    close("confident and right: the loss is ~0", torch.stack(list(ce)), torch.zeros(2),
          "CE(s, q) = -sum_k q_k log softmax(s / tau)_k", atol=1e-6)


@implement("square_iou", ["square_iou"], 25, "the noise-square IoU: k-means, best match, IoU per frame",
           {"square_iou": metrics.square_iou})
def check_square_iou(f):
    square = torch.zeros(4, 6, 6, dtype=torch.bool)
    for t in range(4):
        square[t, 1:4, t:t + 2] = True
    feats = torch.nn.functional.one_hot(square.long(), 2).float() * 5 + torch.randn(4, 6, 6, 2, generator=gen(0)) * .1
    pred, iou = f["square_iou"](feats, square)
    close("perfect features (the square's one-hot): IoU 1 in every frame", iou, torch.ones(4, dtype=torch.float64),
          "match the two clusters to {background, square} by which choice agrees with more tokens")
    close("... and with the truth flipped (the background as 'square')", f["square_iou"](feats, ~square)[1], iou,
          "cluster ids are arbitrary: try both assignments and keep the one that agrees with more tokens")
    feats = torch.randn(4, 6, 6, 3, generator=gen(1)) + square[..., None] * 0.8
    for seed in (0, 3):
        want_pred, want_iou = metrics.square_iou(feats, square, seed)
        pred, iou = f["square_iou"](feats, square, seed)
        close(f"pred for noisy features (seed {seed})", pred, want_pred,
              "one match for the whole video, not one per frame", exact=True)
        close(f"IoU per frame (seed {seed})", iou, want_iou, "per frame: |pred & square| / |pred | square|")
    empty = torch.zeros(2, 3, 3, dtype=torch.bool)
    close("no square and nothing predicted: IoU 1", f["square_iou"](torch.zeros(2, 3, 3, 1) + 1, empty)[1],
          torch.ones(2, dtype=torch.float64), "where the union is empty, the IoU is 1")


@implement("label_propagation", ["label_propagation"], 45, "label propagation by feature affinity (DAVIS)",
           {"label_propagation": metrics.label_propagation}, needs="square_iou (masks on the token grid)")
def check_label_propagation(f):
    feats = torch.randn(6, 5, 5, 8, generator=gen(0))
    first = torch.softmax(torch.randn(5, 5, 3, generator=gen(1)) * 2, -1)
    got = f["label_propagation"](feats, first)
    close("frame 0 is the given labels", got[0], first, "return first_labels as frame 0")
    close("every token's labels sum to 1", got.sum(-1), torch.ones(6, 5, 5),
          "weights: softmax over the top-k similarities")
    for kw in ({}, {"n_context": 2, "radius": 1, "topk": 3, "temperature": 0.2}, {"n_context": 1, "radius": 0}):
        close(f"labels for random features (6, 5, 5, 8), {kw or 'default settings'}",
              f["label_propagation"](feats, first, **kw), metrics.label_propagation(feats, first, **kw),
              "context = frame 0 + frames max(1, t - n_context) .. t-1; only tokens within radius rows/columns; "
              "top-k cosines; softmax(cosine / temperature) over those k")
    static = feats[:1].expand(6, -1, -1, -1)                               # a still video
    close("a still video with topk 1: each token keeps its own label", f["label_propagation"](static, first, topk=1),
          first.expand(6, -1, -1, -1), "a token's most similar context token is itself in frame 0")


# ----------------------------------------------------------------------------
# running a student's file


def load_student(name, path):
    """The module at `path` (default exercises/NAME.py), imported on its own."""
    spec = importlib.util.spec_from_file_location(f"student_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def where(err, path):
    """'line N of FILE' for the deepest frame of the traceback inside the student's file, else ''."""
    frames = [fr for fr in traceback.extract_tb(err.__traceback__) if os.path.abspath(fr.filename) == path]
    return f" (line {frames[-1].lineno} of {os.path.relpath(path)}: {frames[-1].line})" if frames else ""


def run_checks(name, functions, path=""):
    """Run exercise `name`'s checks on {function name: callable} -> (passed, message)."""
    try:
        IMPLEMENT[name]["checks"](functions)
    except Fail as fail:
        return False, (f"FAIL {name}: {fail.what}\n  expected: {fail.expected}\n  got:      {fail.got}\n"
                       f"  hint:     {fail.hint}")
    except NotImplementedError as e:
        return False, f"not implemented yet ({e}) in {os.path.relpath(path) if path else name}: write your code where " \
                      f"the stub raises NotImplementedError, then run this check again."
    except Exception as e:   # the student's code raised: one line, pointing at their line
        return False, f"FAIL {name}: your code raised {type(e).__name__}: {e}{where(e, os.path.abspath(path))}"
    return True, f"PASS {name}: every check holds."


def check_implement(name, solution=False, path=None):
    ex = IMPLEMENT[name]
    path = os.path.abspath(path or os.path.join(HERE, f"{name}.py"))
    if solution:
        return run_checks(name, ex["reference"], "")
    if not os.path.exists(path):
        return False, f"no file {path}"
    try:
        module = load_student(name, path)
    except Exception as e:
        return False, f"FAIL {name}: {os.path.relpath(path)} does not import: {type(e).__name__}: {e}" \
                      f"{where(e, path)}"
    missing = [fn for fn in ex["functions"] if not callable(getattr(module, fn, None))]
    if missing:
        return False, f"FAIL {name}: {os.path.relpath(path)} defines no function {', '.join(missing)}"
    return run_checks(name, {fn: getattr(module, fn) for fn in ex["functions"]}, path)


# ----------------------------------------------------------------------------
# experiment exercises (exercises/experiments.py)


def main(argv=None):
    import experiments   # the experiment exercises' runs and ranges
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="the exercise (see --list)")
    parser.add_argument("--list", action="store_true", help="list the exercises")
    parser.add_argument("--solution", action="store_true", help="check the project's reference instead")
    parser.add_argument("--file", help="the file to check (default exercises/NAME.py)")
    parser.add_argument("--runs", help="an experiment's run folder (default runs/exercises/NAME)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        print("implement (python exercises/check.py NAME):")
        for name, ex in IMPLEMENT.items():
            print(f"  {name:20s} {ex['minutes']:3d} min  {ex['goal']}")
        print("experiment (run the commands in exercises/README.md, then check.py NAME):")
        for name, ex in experiments.EXPERIMENTS.items():
            print(f"  {name:20s} {ex['minutes']:3d} min  {ex['question']}")
        return 0
    if args.name in IMPLEMENT:
        ok, message = check_implement(args.name, args.solution, args.file)
    elif args.name in experiments.EXPERIMENTS:
        if args.solution or args.file:
            parser.error("--solution and --file are for implement exercises; an experiment reads its runs")
        ok, message = experiments.check(args.name, args.runs)
    else:
        parser.error(f"no exercise {args.name!r}; --list shows them")
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
