"""The implement exercises' checks: for each exercise, named property checks first (shapes, invariants, limiting
cases, symmetry, conservation), each with its own hint pointing at the concept and the paper's equation, then the
comparison with the project's own implementation on random inputs.

check.py runs a student's file through `grade` in a subprocess of its own (python exercises/checks.py --grade
NAME --file PATH --fd N): a time limit, sys.exit or an endless loop in the student's code cannot fool or hang the
checker. Tests call `run_checks` on functions directly.
"""
import argparse
import functools
import importlib.util
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]   # the project's modules (a stub may import metrics), and lab.py beside this file

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import metrics  # noqa: E402
import rvm  # noqa: E402
import sigma  # noqa: E402
import vicmae  # noqa: E402
import vit  # noqa: E402


class Fail(Exception):
    """One failed check: its name, what was expected, what the code gave, the error's size and pattern, a hint."""

    def __init__(self, what, expected, got, hint, error="", pattern=""):
        super().__init__(what)
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        self.error, self.pattern = error, pattern


def show(x, n=6):
    """A short text of a value for a message: a number as a number, a tensor as its shape and first entries."""
    if torch.is_tensor(x):
        if x.dim() == 0:
            return f"{x.item():.6g}" if x.is_floating_point() else str(x.item())
        flat = x.detach().flatten()[:n].tolist()
        flat = [round(v, 4) if isinstance(v, float) else v for v in flat]
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}, first entries {flat}"
    if isinstance(x, tuple):
        return "(" + ", ".join(show(v, n) for v in x) + ")"
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x)


def pattern_of(got, want, bad, axes):
    """One line on what the shape of a mismatch usually means."""
    if not torch.isfinite(got).all():
        return "NaN or inf in your result: a division by zero, a log of 0 or an exp that overflows"
    if want.numel() > 1 and torch.allclose(got.flatten().sort().values, want.flatten().sort().values,
                                           atol=1e-5, rtol=1e-4):
        return "the right values in the wrong places: an order, a transpose, an index or an axis is off"
    if not got.abs().max() > 1e-12:
        return "your result is all zeros: an empty mask, a factor 0, or a value never written"
    denom = (want * want).sum()
    if denom > 0:
        c = ((got * want).sum() / denom).item()
        if abs(c - 1) > 1e-3 and torch.allclose(got, c * want, atol=1e-5, rtol=1e-3):
            return (f"your values are {c:.4g} times the expected ones: a missing or extra factor (a temperature, "
                    f"a mean instead of a sum, a normalization)")
    if want.numel() > 1:
        shift = (got - want).flatten()
        if (shift - shift[0]).abs().max() < 1e-5:
            return f"off by the same constant {shift[0].item():.4g} everywhere: a missing or extra offset"
        for axis in range(want.dim()):
            rows = bad.flatten(0, axis - 1).any(0) if axis else bad
            rows = rows.flatten(1).any(1) if rows.dim() > 1 else rows
            if want.shape[axis] > 1 and rows.sum() == 1:
                k = int(rows.nonzero()[0])
                return f"only {axes[axis]}={k} differs: look at what is special there (a first or last one, an edge)"
        if bad.float().mean() < 0.1:
            return "a few elements differ: an edge case (a boundary, a tie, an empty set)"
    return "wrong almost everywhere: a step of the formula differs"


def close(what, got, want, hint, axes=None, atol=1e-5, rtol=1e-4, exact=False):
    """got must be a tensor of want's shape (and kind: integer or float), equal or close to it. A mismatch
    reports the max absolute and relative error, the worst element by its named axes (`axes`), and its pattern."""
    if not torch.is_tensor(got):
        raise Fail(what, show(want), f"{type(got).__name__}: {show(got)}", "return a torch tensor")
    if tuple(got.shape) != tuple(want.shape):
        raise Fail(what, f"shape {tuple(want.shape)}", f"shape {tuple(got.shape)}", hint)
    if got.is_floating_point() != want.is_floating_point():
        raise Fail(what, f"dtype like {want.dtype}", f"dtype {got.dtype}", hint)
    g, w = got.detach().cpu().double(), want.detach().cpu().double()
    ok = torch.equal(g, w) if exact else torch.allclose(g, w, atol=atol, rtol=rtol)
    if ok:
        return
    diff = (g - w).abs().nan_to_num(float("inf"))
    bad = diff > (0 if exact else atol + rtol * w.abs())
    if w.dim() == 0:
        error = f"abs error {diff.item():.3g}" + (f", rel error {diff.item() / abs(w.item()):.3g}"
                                                   if abs(w.item()) > 1e-8 else "")
        raise Fail(what, show(w), show(g), hint, error, pattern_of(g, w, bad, ()))
    axes = list(axes or []) + [f"dim{i}" for i in range(len(axes or []), w.dim())]
    index = []
    flat = int(diff.flatten().argmax())
    for size in reversed(w.shape):
        index.insert(0, flat % size)
        flat //= size
    at = ", ".join(f"{a}={i}" for a, i in zip(axes, index))
    sizeable = w.abs() > 1e-8                                             # a relative error of 0 means nothing
    rel = f", max rel error {(diff[sizeable] / w.abs()[sizeable]).max().item():.3g}" if sizeable.any() else ""
    error = (f"max abs error {diff.max().item():.3g}{rel}; worst at ({at}): "
             f"got {g[tuple(index)].item():.6g}, expected {w[tuple(index)].item():.6g}")
    raise Fail(what, show(want), show(got), hint, error, pattern_of(g, w, bad, axes))


def expect(cond, what, expected, got, hint):
    if not cond:
        raise Fail(what, expected, got, hint)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tensor_shape(what, x, shape, hint, integer=None):
    """x must be a tensor of `shape`; integer True/False: of an integer/floating dtype."""
    expect(torch.is_tensor(x), what, f"a tensor of shape {shape}", type(x).__name__, hint)
    expect(tuple(x.shape) == tuple(shape), what, f"shape {tuple(shape)}", f"shape {tuple(x.shape)}", hint)
    if integer is not None:
        expect(x.is_floating_point() != integer, what, "an integer dtype" if integer else "a floating dtype",
               f"dtype {x.dtype}", hint)


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
    out = f["random_masking"](noise, 0.75)
    expect(isinstance(out, tuple) and len(out) == 3, "the result", "three tensors (ids_keep, ids_restore, mask)",
           show(out), "return ids_keep, ids_restore and mask, in this order")
    ids_keep, ids_restore, mask = out
    hint = "4 of 16 tokens kept: ids_keep (B, n) and ids_restore (B, N) are indices, mask (B, N) is 0/1 floats"
    tensor_shape("ids_keep's shape and dtype for noise (3, 16), ratio 0.75", ids_keep, (3, 4), hint, integer=True)
    tensor_shape("ids_restore's shape and dtype", ids_restore, (3, 16), hint, integer=True)
    tensor_shape("mask's shape and dtype", mask, (3, 16), hint, integer=False)
    n_kept = f["random_masking"](torch.rand(2, 100, generator=gen(1)), 0.9)[0].shape
    expect(tuple(n_kept) == (2, 10), "tokens kept of N = 100 at ratio 0.9", "10 a row", f"shape {tuple(n_kept)}",
           "N * (1 - ratio) is computed in floating point and can land just below a whole number (MAE keeps 10)")
    expect(torch.equal(ids_restore.sort(1).values, torch.arange(16).expand(3, 16)),
           "ids_restore is a permutation of the tokens 0..N-1 in every row", "each token index once",
           show(ids_restore), "ids_restore says where each token went in the sorted order: every token once")
    kept = torch.gather(noise, 1, ids_keep)
    removed = noise.masked_fill(torch.zeros_like(noise, dtype=torch.bool).scatter(1, ids_keep, True), float("inf"))
    expect(bool((kept.max(1).values < removed.min(1).values).all()), "the kept tokens are those of smallest noise",
           "every kept token's noise below every removed token's", f"kept noise {show(kept)}",
           "MAE Sec. 3: sort the noise in ascending order; small noise is kept, large noise is removed")
    close("mask: 1 on the removed tokens, 0 on the kept ones, indexed by token", mask.gather(1, ids_keep),
          torch.zeros(3, 4), "mask[b, i] is about token i of the image, not about the i-th token of the sorted order",
          axes=("b", "kept"))
    x = torch.arange(16.0)[None].expand(3, 16)                            # token i carries the number i
    shuffled = torch.gather(x, 1, torch.argsort(noise, dim=1))
    close("ids_restore undoes the shuffle: gathering the sorted tokens with it puts every token back",
          torch.gather(shuffled, 1, ids_restore), x,
          "ids_restore is the INVERSE of the sorting permutation (MAE: unshuffle before the decoder)",
          axes=("b", "token"), exact=True)
    want_keep, want_restore, want_mask = vit.random_masking(3, 16, 0.75, noise=noise)
    close("compared with the reference: ids_keep", ids_keep, want_keep,
          "the properties hold but the order differs: ids_keep lists the kept tokens in order of increasing noise",
          axes=("b", "kept"), exact=True)
    close("compared with the reference: mask", mask, want_mask, "mask is 1 where a token is removed",
          axes=("b", "token"), exact=True)


@implement("patchify", ["patchify", "unpatchify"], 20, "images to tokens and back, in MAE's layout",
           {"patchify": vit.patchify, "unpatchify": vit.unpatchify})
def check_patchify(f):
    x = torch.rand(2, 3, 16, 24, generator=gen(0))
    tokens = f["patchify"](x, 4)
    tensor_shape("patchify's shape for (2, 3, 16, 24) with p = 4", tokens, (2, 24, 48),
                 "one row per patch: (B, h*w tokens, p*p*3 values), h = H / p, w = W / p", integer=False)
    close("unpatchify(patchify(x)) == x", f["unpatchify"](tokens, 4, 4, 6), x,
          "unpatchify must undo exactly what patchify did, step by step in reverse",
          axes=("b", "channel", "y", "x"))
    same = tokens[:, 1].sort(-1).values, x[:, :, 0:4, 4:8].flatten(1).sort(-1).values
    close("token 1 holds the pixels of the patch right of token 0 (tokens in row-major order)", *same,
          "tokens are numbered row by row over the h x w grid (ViT, MAE): w tokens to a row",
          axes=("b", "value"))
    close("inside a token: (row in patch, column in patch, channel), the channel varying fastest",
          tokens[:, 1].reshape(2, 4, 4, 3), x[:, :, 0:4, 4:8].permute(0, 2, 3, 1),
          "MAE's token layout puts the 3 colour values of a pixel next to each other (channel last)",
          axes=("b", "row", "col", "channel"))
    close("compared with the reference: patchify", tokens, vit.patchify(x, 4), "MAE's patchify",
          axes=("b", "token", "value"))
    t = torch.rand(2, 24, 48, generator=gen(1))
    close("compared with the reference: unpatchify of reference tokens", f["unpatchify"](t, 4, 4, 6),
          vit.unpatchify(t, 4, 4, 6), "read each token as (row in patch, column in patch, channel)",
          axes=("b", "channel", "y", "x"))


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
        got = f["cross_self_block"](x, ctx, block)
        tensor_shape("the output's shape for x (2, 5, 16), ctx (2, 7, 16)", got, (2, 5, 16),
                     "one output token per token of x (f2): the block updates f2's tokens", integer=False)
        close("cross-attention does not care about the order of f1's tokens", f["cross_self_block"](x, ctx.flip(1),
              block), got, "f1 (ctx) gives only keys and values; the queries are f2's tokens (x)",
              axes=("b", "token", "d"))
        other = f["cross_self_block"](x, torch.randn(2, 7, 16, generator=gen(3)), block)
        expect(not torch.allclose(other, got), "the output depends on f1 (ctx)", "another output for another ctx",
               "the same output", "SiamMAE Sec. 3: f2's tokens attend to f1's through cross-attention")
        quiet = cross_block(0)
        for layer in (quiet.cross.proj, quiet.mlp.fc2, quiet.attn.proj):   # each sublayer's last linear to 0
            layer.weight.zero_()
            layer.bias.zero_()
        close("with every sublayer silenced (output projections 0), the block passes x through",
              f["cross_self_block"](x, ctx, quiet), x,
              "each sublayer ADDS its output to x (a residual connection around every layer)",
              axes=("b", "token", "d"))
        close("compared with the reference", got, block(x, ctx),
              "the order of the layers (SiamMAE Sec. 3: cross-attention, then self-attention; the MLP between), "
              "each reading its own LayerNorm of the current x", axes=("b", "token", "d"))


def gru_parts(seed=0):
    torch.manual_seed(seed)
    core = rvm.GatedTransformerCore(16, 1, 2, 2.0)
    with torch.no_grad():
        core.state_scale.uniform_(0.5, 1.5)
    return (core.w_input_update, core.w_state_update, core.w_input_reset, core.w_state_reset, core.state_norm,
            core.tx)


@implement("rvm_core", ["gru_step"], 20, "RVM's GRU-gated core step (Sec. 3.2)", {"gru_step": rvm.gru_step})
def check_rvm_core(f):
    parts = gru_parts()
    e, s = torch.randn(2, 5, 16, generator=gen(1)), torch.randn(2, 5, 16, generator=gen(2)) * 2 + 1
    axes = ("b", "token", "d")
    shut = lambda _: torch.full_like(e, -60.0)                            # sigmoid(-60 + ...) = 0
    wide = lambda _: torch.full_like(e, 60.0)                             # sigmoid(60 + ...) = 1
    with torch.no_grad():
        got = f["gru_step"](e, s, *parts)
        tensor_shape("the new state's shape for e, s (2, 5, 16)", got, (2, 5, 16),
                     "the state keeps its shape from step to step", integer=False)
        close("update gate shut (W_e^u e = -60, so u = 0): the old state passes through unchanged",
              f["gru_step"](e, s, shut, *parts[1:]), s,
              "RVM Sec. 3.2: u_t weighs the NEW candidate h_t and 1 - u_t the old state; which W make u?",
              axes=axes, atol=1e-4)
        seven = lambda q, kv: torch.full_like(q, 7.0)                     # a candidate h_t = 7 everywhere
        close("update gate open (W_e^u e = +60, so u = 1) and a Tx that returns 7: the new state is 7 everywhere",
              f["gru_step"](e, s, wide, *parts[1:5], seven), torch.full_like(s, 7.0),
              "a GRU blends old and new: the two weights of the blend add up to 1", axes=axes, atol=1e-4)
        blank = lambda _: torch.full_like(s, -60.0)                       # r = 0: the memory is hidden
        norm = torch.nn.LayerNorm(16)
        torch.nn.init.normal_(norm.bias, std=1.0)                         # LN(0) = its bias, not 0
        reads = lambda q, kv: kv                                          # a Tx that returns what it reads
        shut_reset = (*parts[:2], blank, parts[3], norm, reads)
        close("reset gate shut (W_e^r e = -60, so r = 0) and a Tx that returns what it reads: the candidate h is 0",
              f["gru_step"](e, s, *shut_reset), rvm.gru_step(e, s, *shut_reset),
              "the reset gate scales the NORMALIZED state that Tx reads as its keys and values: r = 0 must hide it "
              "completely", axes=axes, atol=1e-4)
        close("compared with the reference", got, rvm.gru_step(e, s, *parts),
              "RVM Sec. 3.2: the gates read both e_t and s_{t-1}; Tx's queries are e_t", axes=axes)


@implement("info_nce", ["info_nce"], 25, "ViC-MAE's InfoNCE with in-batch negatives (Eq. 3)",
           {"info_nce": vicmae.info_nce})
def check_info_nce(f):
    unit = lambda n, k, seed: F.normalize(torch.randn(n, k, generator=gen(seed)), dim=-1)
    p, z = unit(6, 8, 1), unit(6, 8, 2)
    loss = f["info_nce"](p, z, 0.2)
    expect(torch.is_tensor(loss) and loss.dim() == 0, "the loss for N = 6 pairs", "one number (a 0-d tensor)",
           show(loss), "the loss is the MEAN over the 2N anchors: one number")
    close("swapping the views (p <-> z) gives the same loss", f["info_nce"](z, p, 0.2), loss,
          "ViC-MAE Eq. 3 in its symmetric form: the frames of BOTH views are anchors")
    same = F.normalize(torch.ones(4, 8), dim=-1)
    close("all 2N embeddings equal: the positive is no better than any negative, loss log(2N - 1)",
          f["info_nce"](same, same, 0.5), torch.tensor(7.0).log(),
          "Eq. 3's denominator runs over the 2N - 1 OTHER embeddings (the positive and the 2N - 2 negatives): "
          "an anchor is never its own negative")
    eye = torch.eye(4, 8)
    close("perfect pairs far apart (p = z = orthogonal rows, tau 0.05): the loss is ~0",
          f["info_nce"](eye, eye, 0.05), vicmae.info_nce(eye, eye, 0.05),
          "a positive at cosine 1 against negatives at cosine 0 must win by far at a small temperature: Eq. 3's "
          "logits are the cosines DIVIDED by tau", atol=1e-6)
    for n, tau in ((2, 0.5), (6, 0.1), (9, 1.0)):
        p, z = unit(n, 8, n), unit(n, 8, 100 + n)
        close(f"compared with the reference: N = {n} pairs, tau = {tau}", f["info_nce"](p, z, tau),
              vicmae.info_nce(p, z, tau), "the logits are cosines divided by the temperature tau")


@implement("vicmae_pooling", ["global_embedding"], 15, "ViC-MAE's pooling and projection (Sec. 3.2)",
           {"global_embedding": lambda x, head, kind="mean", p=3.0:
            F.normalize(head(vicmae.pool(x, kind, p)).float(), dim=-1)})
def check_vicmae_pooling(f):
    x = torch.randn(3, 1 + 6, 8, generator=gen(0))                       # [CLS] + 6 visible tokens
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 5)
    with torch.no_grad():
        got = f["global_embedding"](x, head)
        tensor_shape("the embedding's shape for x (3, 1+6, 8), a head 8 -> 5", got, (3, 5),
                     "one vector per view: pool the tokens to (B, D), then the head to (B, K)", integer=False)
        close("each embedding has unit length", got.norm(dim=-1), torch.ones(3),
              "Sec. 3.2: p_i = P(Omega(f(x))) / ||P(Omega(f(x)))||_2", axes=("b",))
        moved = x.clone()
        moved[:, 0] = 100.0
        close("changing the [CLS] token changes nothing", f["global_embedding"](moved, head), got,
              "Omega pools the visible PATCH tokens; the [CLS] token (the first) is not one of them", axes=("b", "k"))
        order = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(6, generator=gen(1))])
        close("the order of the visible tokens does not matter", f["global_embedding"](x[:, order], head), got,
              "a global pooling (mean, max, GeM) treats the tokens as a set", axes=("b", "k"))
        v = torch.linspace(0.1, 1.0, 8)                                   # one token, repeated six times
        flat = torch.cat([torch.zeros(3, 1, 8), v.expand(3, 6, 8)], dim=1)
        ident = torch.nn.Identity()
        for kind in ("mean", "max", "gem"):
            close(f"{kind} pooling of six equal tokens is that token", f["global_embedding"](flat, ident, kind),
                  F.normalize(v.expand(3, 8), dim=-1), "every pooling of equal values is that value "
                  "(Table 3b's mean, max and GeM)", axes=("b", "d"))
        for kind in ("mean", "max", "gem"):
            close(f"compared with the reference: {kind} pooling", f["global_embedding"](x, head, kind),
                  F.normalize(head(vicmae.pool(x, kind)), dim=-1),
                  "mean and max over the tokens; GeM: the p-th root of the mean of x^p, x clamped to >= 1e-6 first",
                  axes=("b", "k"))


@implement("sinkhorn", ["sinkhorn"], 25, "SIGMA's Sinkhorn-Knopp (Eq. 3-4)",
           {"sinkhorn": lambda scores, epsilon=0.05, n_iters=10: sigma.sinkhorn(scores, epsilon, n_iters, False)})
def check_sinkhorn(f):
    grad = torch.rand(4, 3, requires_grad=True)
    q = f["sinkhorn"](grad, 0.5, 3)
    tensor_shape("q's shape for scores (4, 3)", q, (4, 3), "one soft assignment per sample and prototype",
                 integer=False)
    expect(not q.requires_grad, "q carries no gradient", "requires_grad False", "requires_grad True",
           "SIGMA Sec. 3.3 (as SwAV): the targets are constants for the loss; no gradient flows into them")
    s = torch.rand(12, 5, generator=gen(0)) * 2 - 1                       # cosines in [-1, 1]
    s[:3, 0] += 1.0                                                        # a quarter of the samples on prototype 0
    q = f["sinkhorn"](s, 0.5, 200)
    close("rows of q sum to 1", q.sum(1), torch.ones(12), "each sample's q is a distribution over the K prototypes",
          axes=("sample",))
    close("equipartition: after 200 iterations each prototype gets B / K of the mass", q.sum(0),
          torch.full((5,), 2.4), "Eq. 4: the prototypes' marginal is uniform, r = 1/K; rescale the prototypes' mass "
          "too, not only the samples'", axes=("prototype",), atol=1e-3)
    level = torch.rand(12, 5, generator=gen(1)) * 2 - 1
    level[:, 2] = 1.0                                                      # every sample's best score is 1
    level[:3, 0] = 0.99
    close("one iteration on scores whose rows share their max: the prototypes' step comes first",
          f["sinkhorn"](level, 0.5, 1), sigma.sinkhorn(level, 0.5, 1, False),
          "SIGMA's loop (as SwAV's): each iteration rescales the prototypes' mass to 1/K first, then the samples' "
          "to 1/B (Eq. 4's two marginals)", axes=("sample", "prototype"), atol=1e-5)
    for iters in (1, 3, 10):
        close(f"compared with the reference: skewed scores (12, 5), epsilon 0.5, n_iters {iters}",
              f["sinkhorn"](s, 0.5, iters), sigma.sinkhorn(s, 0.5, iters, False),
              "at few iterations the start matters: exp(scores / epsilon) shifted by ONE constant for the whole "
              "matrix (a shift per sample changes the result)", axes=("sample", "prototype"), atol=1e-5)


@implement("swapped_prediction", ["swapped_prediction"], 15, "SIGMA's swapped-prediction loss (Eq. 5-7)",
           {"swapped_prediction": sigma.swapped_prediction})
def check_swapped_prediction(f):
    s_phi, s_psi = torch.randn(10, 6, generator=gen(0)), torch.randn(10, 6, generator=gen(1))
    q_phi, q_psi = (torch.softmax(torch.randn(10, 6, generator=gen(k)) * 3, 1) for k in (2, 3))
    got = f["swapped_prediction"](s_phi, s_psi, q_phi, q_psi, 0.1)
    expect(isinstance(got, tuple) and len(got) == 2 and all(torch.is_tensor(v) and v.dim() == 0 for v in got),
           "the result", "a pair of numbers (ce_phi, ce_psi)", show(got),
           "Eq. 7 has two terms, each a mean over the M tubes: return both")
    sure = torch.eye(6)[torch.arange(10) % 6] * 50                         # scores peaked on the target's prototype
    hard = torch.eye(6)[torch.arange(10) % 6]
    close("confident and right: the loss is ~0", torch.stack(list(f["swapped_prediction"](sure, sure, hard, hard,
          1.0))), torch.zeros(2), "Eq. 5: p is a softmax over the K PROTOTYPES of one tube's scores",
          axes=("term",), atol=1e-6)
    other = f["swapped_prediction"](s_phi, s_psi, torch.softmax(torch.randn(10, 6, generator=gen(4)), 1), q_psi, 0.1)
    close("ce_phi does not depend on phi's own targets q_phi", other[0], got[0],
          "Eq. 7: swapped prediction: each branch's scores are scored against the OTHER branch's targets")
    want = sigma.swapped_prediction(s_phi, s_psi, q_phi, q_psi, 0.1)
    close("compared with the reference: ce_phi", got[0], want[0],
          "Eq. 6: the cross-entropy -sum_k q_k log p_k, with p from the scores over the temperature")
    close("compared with the reference: ce_psi", got[1], want[1], "Psi's scores against phi's targets")


@implement("square_iou", ["square_iou"], 25, "the noise-square IoU: k-means, best match, IoU per frame",
           {"square_iou": metrics.square_iou})
def check_square_iou(f):
    square = torch.zeros(4, 6, 6, dtype=torch.bool)
    for t in range(4):
        square[t, 1:4, t:t + 2] = True
    feats = F.one_hot(square.long(), 2).float() * 5 + torch.randn(4, 6, 6, 2, generator=gen(0)) * .1
    out = f["square_iou"](feats, square)
    expect(isinstance(out, tuple) and len(out) == 2, "the result", "a pair (pred, iou)", show(out),
           "return the predicted square and the IoU per frame")
    pred, iou = out
    tensor_shape("pred's shape for feats (4, 6, 6, 2)", pred, (4, 6, 6), "pred is one bool per token, like square")
    expect(pred.dtype == torch.bool, "pred's dtype", "torch.bool", str(pred.dtype), "pred is a mask: bool")
    close("perfect features (the square's one-hot): IoU 1 in every frame", iou, torch.ones(4, dtype=torch.float64),
          "cluster ids are arbitrary: decide which cluster is the square by agreement with the truth", axes=("t",))
    close("... and with the truth flipped (the background as 'square')", f["square_iou"](feats, ~square)[1], iou,
          "try both assignments of the two clusters and keep the one that agrees with more tokens", axes=("t",))
    empty = torch.zeros(2, 3, 3, dtype=torch.bool)
    close("no square and nothing predicted: IoU 1", f["square_iou"](torch.zeros(2, 3, 3, 1) + 1, empty)[1],
          torch.ones(2, dtype=torch.float64), "where the union is empty there is nothing to get wrong: the IoU is 1",
          axes=("t",))
    feats = torch.randn(4, 6, 6, 3, generator=gen(1)) + square[..., None] * 0.8
    for seed in (0, 3):
        want_pred, want_iou = metrics.square_iou(feats, square, seed)
        pred, iou = f["square_iou"](feats, square, seed)
        close(f"compared with the reference: pred for noisy features (seed {seed})", pred, want_pred,
              "RVM Sec. 4.4: the clusters are matched once for the whole video, not frame by frame",
              axes=("t", "row", "col"), exact=True)
        close(f"compared with the reference: IoU per frame (seed {seed})", iou, want_iou,
              "per frame: the overlap of pred and square over their union", axes=("t",))


@implement("label_propagation", ["label_propagation"], 45, "label propagation by feature affinity (DAVIS)",
           {"label_propagation": metrics.label_propagation}, needs="square_iou (masks on the token grid)")
def check_label_propagation(f):
    feats = torch.randn(6, 5, 5, 8, generator=gen(0))
    first = torch.softmax(torch.randn(5, 5, 3, generator=gen(1)) * 2, -1)
    axes = ("t", "row", "col", "class")
    got = f["label_propagation"](feats, first)
    tensor_shape("the labels' shape for feats (6, 5, 5, 8), 3 classes", got, (6, 5, 5, 3),
                 "one soft label vector per token of every frame", integer=False)
    close("frame 0 is the given labels", got[0], first, "frame 0's labels are given, not propagated",
          axes=axes[1:])
    close("every token's labels sum to 1", got.sum(-1), torch.ones(6, 5, 5),
          "a weighted average of distributions is a distribution: the weights of the top-k must sum to 1",
          axes=axes[:3])
    static = feats[:1].expand(6, -1, -1, -1)                               # a still video
    close("a still video with topk 1: each token keeps its own label", f["label_propagation"](static, first, topk=1),
          first.expand(6, -1, -1, -1), "similarity is the cosine of l2-normalized features: a token is most "
          "similar to itself", axes=axes)
    twin = torch.randn(1, 5, 5, 8, generator=gen(2)).expand(2, -1, -1, -1).clone()
    twin[1, 0, 0] = twin[0, 4, 4]                                          # the corner's best match: 4 rows away
    corner = torch.zeros(5, 5, dtype=torch.long)
    corner[4, 4] = 1                                                       # class 1 only at the far corner
    one_hot = F.one_hot(corner, 2).float()
    close("a token only looks within `radius` rows and columns of its place",
          f["label_propagation"](twin, one_hot, radius=1, topk=1)[1, 0, 0],
          metrics.label_propagation(twin, one_hot, radius=1, topk=1)[1, 0, 0],
          "the spatial window: objects move little between frames (SiamMAE App. A); mask the far tokens before "
          "the top-k", axes=("class",))
    for kw in ({}, {"n_context": 2, "radius": 1, "topk": 3, "temperature": 0.2}, {"n_context": 1, "radius": 0}):
        close(f"compared with the reference: random features (6, 5, 5, 8), {kw or 'default settings'}",
              f["label_propagation"](feats, first, **kw), metrics.label_propagation(feats, first, **kw),
              "the context of frame t: frame 0 with its given labels, ALWAYS, and the last n_context frames before "
              "t with their predicted labels; softmax over the top-k cosines / temperature", axes=axes)


# ----------------------------------------------------------------------------
# grading a student's file


def load_student(name, path):
    """The module at `path`, imported on its own."""
    spec = importlib.util.spec_from_file_location(f"student_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def where(err, path):
    """' (line N of FILE: code)' for the deepest frame of the traceback inside the student's file, else ''."""
    frames = [fr for fr in traceback.extract_tb(err.__traceback__) if path and os.path.abspath(fr.filename) == path]
    return f" (line {frames[-1].lineno} of {os.path.relpath(path)}: {frames[-1].line})" if frames else ""


def is_stub(err, path):
    """The stub's own NotImplementedError: raised by a `raise NotImplementedError` line of the student's file
    itself (one from torch, e.g. on a meta tensor, is a crash in their code)."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(path and frames and os.path.abspath(frames[-1].filename) == path
                and (frames[-1].line or "").startswith("raise NotImplementedError"))


def stopped(name, err, path, when):
    """One line for a BaseException that is not an Exception (sys.exit, KeyboardInterrupt, ...) from student code."""
    what = f"called sys.exit({err.code!r})" if isinstance(err, SystemExit) else f"raised {type(err).__name__}"
    return f"FAIL {name}: your code {what} {when}{where(err, path)}: a check passes only when every check ran"


def run_checks(name, functions, path=""):
    """Run exercise `name`'s checks on {function name: callable} -> (status, message), status one of pass,
    fail, not implemented, crash. path: the student's file, to name their line in a crash."""
    path = os.path.abspath(path) if path else ""
    try:
        IMPLEMENT[name]["checks"](functions)
    except Fail as fail:
        lines = [f"FAIL {name}: {fail.what}", f"  expected: {fail.expected}", f"  got:      {fail.got}"]
        lines += [f"  error:    {fail.error}"] * bool(fail.error) + [f"  pattern:  {fail.pattern}"] * bool(fail.pattern)
        return "fail", "\n".join(lines + [f"  hint:     {fail.hint}"])
    except NotImplementedError as e:
        if is_stub(e, path):
            return "not implemented", (f"not implemented yet ({e}) in {os.path.relpath(path)}: write your code "
                                       f"where the stub raises NotImplementedError, then run this check again.")
        return "crash", f"FAIL {name}: your code raised NotImplementedError: {e}{where(e, path)}"
    except Exception as e:   # the student's code raised: one line, pointing at their line
        return "crash", f"FAIL {name}: your code raised {type(e).__name__}: {e}{where(e, path)}"
    except BaseException as e:   # sys.exit, KeyboardInterrupt in their function: a fail, never a pass
        return "crash", stopped(name, e, path, "inside the check")
    return "pass", f"PASS {name}: every check holds."


def guarded(function, name):
    """`function`, with a BaseException that is not an Exception (sys.exit in a student's part) turned into a
    RuntimeError, so that it cannot end a caller (run.py's training) as if it had finished."""
    @functools.wraps(function)
    def part(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception:
            raise
        except BaseException as e:
            raise RuntimeError(f"your {name} raised {type(e).__name__} ({e}); nothing was trained") from None
    return part


def grade(name, path=None, solution=False):
    """Check exercise `name` on the file `path` (or the reference) in this process -> (status, message)."""
    ex = IMPLEMENT[name]
    if solution:
        return run_checks(name, ex["reference"])
    path = os.path.abspath(path)
    if not os.path.exists(path):
        return "fail", f"FAIL {name}: no file {path}"
    try:
        module = load_student(name, path)
    except Exception as e:
        return "crash", f"FAIL {name}: {os.path.relpath(path)} does not import: {type(e).__name__}: {e}{where(e, path)}"
    except BaseException as e:
        return "crash", stopped(name, e, path, "while importing")
    missing = [fn for fn in ex["functions"] if not callable(getattr(module, fn, None))]
    if missing:
        return "fail", f"FAIL {name}: {os.path.relpath(path)} defines no function {', '.join(missing)}"
    return run_checks(name, {fn: getattr(module, fn) for fn in ex["functions"]}, path)


def worker(argv=None):
    """The grading subprocess: reports {"event": "ready", "reference_s"} once the reference has run through the
    checks (so the parent can time the student's code against it), then {"event": "result", status, message}."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--grade", required=True)
    parser.add_argument("--file")
    parser.add_argument("--solution", action="store_true")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    out = os.fdopen(args.fd, "w")

    def send(**message):
        out.write(json.dumps(message) + "\n")
        out.flush()
    t0 = time.perf_counter()
    run_checks(args.grade, IMPLEMENT[args.grade]["reference"])
    send(event="ready", reference_s=time.perf_counter() - t0)
    status, message = grade(args.grade, args.file, args.solution)
    send(event="result", status=status, message=message)
    out.close()
    os._exit(0)   # the student's module may have left threads or atexit hooks; the result is sent


if __name__ == "__main__":
    worker()
