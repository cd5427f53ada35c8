"""exercises/: every implement exercise's checks pass on the project's reference, fail on the shipped stub
and on plausible wrong answers, each at the named check whose hint names its bug; a student's file is graded in
a subprocess that sys.exit, an endless loop or a torch NotImplementedError cannot fool; students work on copies
in a work folder (never read here: every test gets its own); a student's part trains through the model's
constructor, on train.py's own path; the prepare queue; the experiment exercises' verdicts follow their ranges."""
import importlib.util
import inspect
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import metrics
import methods
import rvm
import train
import vicmae
import vit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXERCISES = os.path.join(ROOT, "exercises")


def load(name):
    spec = importlib.util.spec_from_file_location(f"exercises_{name}", os.path.join(EXERCISES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, EXERCISES)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(EXERCISES)
    return module


check = load("check")
checks = load("checks")
experiments = load("experiments")
lab = load("lab")


@pytest.fixture(autouse=True)
def own_folders(tmp_path, monkeypatch):
    """Every test gets its own work and runs folders: a student's exercises/work/ is never read or written."""
    monkeypatch.setenv("EXERCISES_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("EXERCISES_RUNS", str(tmp_path / "runs"))


# ----------------------------------------------------------------------------
# plausible wrong answers, one or more per exercise (each a common slip)


def masking_descending(noise, ratio):                  # keeps the LARGEST noise
    return vit.random_masking(*noise.shape, ratio, noise=-noise)


def masking_mask_in_sorted_order(noise, ratio):        # the mask is never gathered back to token order
    ids_keep, ids_restore, _ = vit.random_masking(*noise.shape, ratio, noise=noise)
    mask = torch.ones_like(noise)
    mask[:, :ids_keep.shape[1]] = 0
    return ids_keep, ids_restore, mask


def masking_no_epsilon(noise, ratio):                  # int(N * (1 - ratio)) keeps 9 of 100 at 0.9
    B, N = noise.shape
    keep = int(N * (1 - ratio))
    ids_shuffle = noise.argsort(1)
    ids_restore = ids_shuffle.argsort(1)
    mask = torch.ones(B, N)
    mask[:, :keep] = 0
    return ids_shuffle[:, :keep], ids_restore, torch.gather(mask, 1, ids_restore)


def patchify_channel_first(x, p):                      # a valid pair, but not MAE's token layout
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)


def unpatchify_channel_first(t, p, h, w):
    B = t.shape[0]
    return t.reshape(B, h, w, 3, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, 3, h * p, w * p)


def block_self_first(x, ctx, b):                       # self-attention before cross-attention
    x = x + b.attn(b.norm3(x))
    x = x + b.cross(b.norm_q(x), b.norm_kv(ctx))
    return x + b.mlp(b.norm2(x))


def block_queries_from_f1(x, ctx, b):                  # f1 queries f2: the roles of the two frames swapped
    y = b.cross(b.norm_q(ctx), b.norm_kv(x))[:, :x.shape[1]]
    x = x + y
    x = x + b.mlp(b.norm2(x))
    return x + b.attn(b.norm3(x))


def gru_gates_swapped(e, s, w_eu, w_su, w_er, w_sr, norm, tx):   # update and reset gates swapped
    u = torch.sigmoid(w_er(e) + w_sr(s))
    r = torch.sigmoid(w_eu(e) + w_su(s))
    return (1 - u) * s + u * tx(e, r * norm(s))


def gru_blend_reversed(e, s, w_eu, w_su, w_er, w_sr, norm, tx):  # u weighs the old state
    u = torch.sigmoid(w_eu(e) + w_su(s))
    r = torch.sigmoid(w_er(e) + w_sr(s))
    return u * s + (1 - u) * tx(e, r * norm(s))


def nce_no_negatives(p, z, tau, gather=None, rank=0):          # pulls pairs together, pushes nothing apart
    return -(p * z).sum(1).mean() / tau


def nce_cross_view_only(p, z, tau, gather=None, rank=0):       # N - 1 negatives from the other view only
    logits = p @ z.T / tau
    return F.cross_entropy(logits, torch.arange(len(p)))


def sinkhorn_rows_only(scores, epsilon=0.05, n_iters=10):      # a softmax: no equipartition over prototypes
    return torch.softmax(scores.detach().float() / epsilon, dim=1)


def sinkhorn_row_max(scores, epsilon=0.05, n_iters=10):        # per-row max subtracted: another algorithm at few
    with torch.no_grad():                                      # iterations (the rows start rescaled)
        s = scores.detach().float()
        q = torch.exp((s - s.max(1, keepdim=True).values) / epsilon)
        for _ in range(n_iters):
            q = q / (q.shape[1] * q.sum(0, keepdim=True))
            q = q / (q.shape[0] * q.sum(1, keepdim=True))
        return q / q.sum(1, keepdim=True)


def swapped_wrong_axis(s_phi, s_psi, q_phi, q_psi, t):         # softmax over the tubes, not the prototypes
    ce = lambda s, q: -(q * F.log_softmax(s / t, dim=0)).sum(1).mean()
    return ce(s_phi, q_psi), ce(s_psi, q_phi)


def swapped_not_swapped(s_phi, s_psi, q_phi, q_psi, t):        # each branch predicts its own clusters
    ce = lambda s, q: -(q * F.log_softmax(s / t, dim=1)).sum(1).mean()
    return ce(s_phi, q_phi), ce(s_psi, q_psi)


def iou_no_matching(feats, square, seed=0):                    # cluster 1 is taken to be the square
    T, h, w, D = feats.shape
    pred = metrics.kmeans(feats.reshape(-1, D), 2, seed=seed)[0].reshape(T, h, w) == 1
    return pred, metrics.iou(pred, square, dims=(-2, -1))


def iou_match_per_frame(feats, square, seed=0):                # a fresh match in every frame flatters the model
    T, h, w, D = feats.shape
    clusters = metrics.kmeans(feats.reshape(-1, D), 2, seed=seed)[0].reshape(T, h, w)
    pred = torch.stack([metrics.match_square(clusters[t], square[t]) for t in range(T)])
    return pred, metrics.iou(pred, square, dims=(-2, -1))


def lp_no_window(feats, first, n_context=20, radius=3, topk=7, temperature=0.7):   # every token within reach
    return metrics.label_propagation(feats, first, n_context, max(feats.shape[1:3]), topk, temperature)


def lp_without_first_frame(feats, first, n_context=20, radius=3, topk=7, temperature=0.7):   # queue only
    T, h, w, D = feats.shape
    f = F.normalize(feats.float().reshape(T, h * w, D), dim=-1)
    near = metrics.neighbourhood(h, w, radius)
    labels = [first.reshape(h * w, -1).float()]
    for t in range(1, T):
        ctx = list(range(max(0, t - n_context), t))
        sim = torch.einsum("qd,cnd->qcn", f[t], f[ctx]).masked_fill(~near[:, None], float("-inf")).reshape(h * w, -1)
        top, idx = sim.topk(min(topk, sim.shape[1]), dim=1)
        ctx_labels = torch.stack([labels[c] for c in ctx]).reshape(-1, labels[0].shape[1])
        labels.append((torch.softmax(top / temperature, 1)[..., None] * ctx_labels[idx]).sum(1))
    return torch.stack(labels).reshape(T, h, w, -1)


def masking_two_outputs(noise, ratio):                 # forgets ids_restore
    ids_keep, _, mask = vit.random_masking(*noise.shape, ratio, noise=noise)
    return ids_keep, mask


def masking_bool_mask(noise, ratio):                   # the mask as bool, not MAE's 0/1 floats
    ids_keep, ids_restore, mask = vit.random_masking(*noise.shape, ratio, noise=noise)
    return ids_keep, ids_restore, mask.bool()


def masking_restore_is_the_shuffle(noise, ratio):      # the sorting permutation itself, not its inverse
    ids_keep, _, mask = vit.random_masking(*noise.shape, ratio, noise=noise)
    return ids_keep, noise.argsort(1), mask


def masking_keep_in_token_order(noise, ratio):         # the right tokens, listed by index, not by noise
    ids_keep, ids_restore, mask = vit.random_masking(*noise.shape, ratio, noise=noise)
    return ids_keep.sort(1).values, ids_restore, mask


def patchify_unfold_layout(x, p):                      # (B, p*p*3, N): F.unfold's layout, one column per patch
    return patchify_channel_first(x, p).transpose(1, 2)


def patchify_column_major(x, p):                       # the grid read column by column
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 3, 5, 1).reshape(B, -1, p * p * C)


def unpatchify_column_major(t, p, h, w):
    B = t.shape[0]
    return t.reshape(B, w, h, p, p, 3).permute(0, 5, 2, 3, 1, 4).reshape(B, 3, h * p, w * p)


def block_concat(x, ctx, b):                           # f2 and f1 in one sequence, every token returned
    y = torch.cat([x, ctx], 1)
    y = y + b.attn(b.norm3(y))
    return y + b.mlp(b.norm2(y))


def block_no_cross(x, ctx, b):                         # never reads f1
    x = x + b.mlp(b.norm2(x))
    return x + b.attn(b.norm3(x))


def block_no_residual(x, ctx, b):                      # each layer replaces x instead of adding to it
    x = b.cross(b.norm_q(x), b.norm_kv(ctx))
    x = b.mlp(b.norm2(x))
    return b.attn(b.norm3(x))


def gru_no_complement(e, s, w_eu, w_su, w_er, w_sr, norm, tx):   # s + u h: the old state never fades
    u = torch.sigmoid(w_eu(e) + w_su(s))
    r = torch.sigmoid(w_er(e) + w_sr(s))
    return s + u * tx(e, r * norm(s))


def gru_no_reset(e, s, w_eu, w_su, w_er, w_sr, norm, tx):        # Tx always sees the whole memory
    u = torch.sigmoid(w_eu(e) + w_su(s))
    return (1 - u) * s + u * tx(e, norm(s))


def gru_reset_before_norm(e, s, w_eu, w_su, w_er, w_sr, norm, tx):   # LN(r s): the norm undoes the gate
    u = torch.sigmoid(w_eu(e) + w_su(s))
    r = torch.sigmoid(w_er(e) + w_sr(s))
    return (1 - u) * s + u * tx(e, norm(r * s))


def nce_reference(p, z, tau, gather=None, rank=0):
    return vicmae.info_nce(p, z, tau)


def nce_per_anchor(p, z, tau, gather=None, rank=0):            # the 2N losses, not their mean
    logits = torch.cat([p, z]) @ torch.cat([p, z]).T / tau
    n = len(p)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(logits, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]), reduction="none")


def nce_no_self_mask(p, z, tau, gather=None, rank=0):          # each anchor counts itself as a negative
    n = len(p)
    logits = torch.cat([p, z]) @ torch.cat([p, z]).T / tau
    return F.cross_entropy(logits, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))


def nce_times_tau(p, z, tau, gather=None, rank=0):             # the temperature multiplies the logits
    return vicmae.info_nce(p, z, 1 / tau)


def pool_unnormalized(x, head, kind="mean", p=3.0):           # P(Omega(x)) without the division by its norm
    return head(vicmae.pool(x, kind, p))


def pool_with_cls(x, head, kind="mean", p=3.0):               # [CLS] pooled with the patch tokens
    return F.normalize(head(vicmae.pool(torch.cat([x[:, :1], x], 1), kind, p)), dim=-1)


def pool_last_token(x, head, kind="mean", p=3.0):             # the last token as the summary
    return F.normalize(head(x[:, -1]), dim=-1)


def pool_gem_no_root(x, head, kind="mean", p=3.0):            # GeM without the p-th root
    if kind != "gem":
        return F.normalize(head(vicmae.pool(x, kind, p)), dim=-1)
    return F.normalize(head(x[:, 1:].clamp(min=1e-6).pow(p).mean(1)), dim=-1)


def pool_sum(x, head, kind="mean", p=3.0):                    # a sum over the tokens, not a mean
    return F.normalize(head(x[:, 1:].sum(1) if kind == "mean" else vicmae.pool(x, kind, p)), dim=-1)


def sinkhorn_with_grad(scores, epsilon=0.05, n_iters=10):    # the targets carry a gradient
    q = torch.exp((scores - scores.max()) / epsilon)
    for _ in range(n_iters):
        q = q / (q.shape[1] * q.sum(0, keepdim=True))
        q = q / (q.shape[0] * q.sum(1, keepdim=True))
    return q / q.sum(1, keepdim=True)


def sinkhorn_rows_first(scores, epsilon=0.05, n_iters=10):   # the samples' step before the prototypes'
    with torch.no_grad():
        q = torch.exp((scores.detach() - scores.max()) / epsilon)
        for _ in range(n_iters):
            q = q / (q.shape[0] * q.sum(1, keepdim=True))
            q = q / (q.shape[1] * q.sum(0, keepdim=True))
        return q / q.sum(1, keepdim=True)


def sinkhorn_no_last_rows(scores, epsilon=0.05, n_iters=10):  # rows left at 1/B: not distributions
    with torch.no_grad():
        q = torch.exp((scores.detach() - scores.max()) / epsilon)
        for _ in range(n_iters):
            q = q / (q.shape[1] * q.sum(0, keepdim=True))
            q = q / (q.shape[0] * q.sum(1, keepdim=True))
        return q


def swapped_one_number(s_phi, s_psi, q_phi, q_psi, t):        # Eq. 7's sum instead of its two terms
    return sum(swapped_reference(s_phi, s_psi, q_phi, q_psi, t))


def swapped_reference(s_phi, s_psi, q_phi, q_psi, t):
    ce = lambda s, q: -(q * F.log_softmax(s / t, dim=1)).sum(1).mean()
    return ce(s_phi, q_psi), ce(s_psi, q_phi)


def swapped_sum_over_tubes(s_phi, s_psi, q_phi, q_psi, t):    # a sum over the M tubes, not a mean
    ce = lambda s, q: -(q * F.log_softmax(s / t, dim=1)).sum()
    return ce(s_phi, q_psi), ce(s_psi, q_phi)


def iou_nan_when_empty(feats, square, seed=0):                # 0 / 0 where neither mask has a token
    pred, _ = metrics.square_iou(feats, square, seed)
    inter, union = (pred & square).sum((1, 2)).double(), (pred | square).sum((1, 2)).double()
    return pred, inter / union


def iou_pred_as_cluster_ids(feats, square, seed=0):           # the matched cluster's ids, not a mask
    pred, iou = metrics.square_iou(feats, square, seed)
    return pred.long(), iou


def lp(feats, first, n_context=20, radius=3, topk=7, temperature=0.7, window=True, with_first=True,
       normalize=True, softmax=True, start=1):
    """Label propagation with one part switchable off: the wrong answers below."""
    T, h, w, D = feats.shape
    f = feats.float().reshape(T, h * w, D)
    f = F.normalize(f, dim=-1) if normalize else f
    near = metrics.neighbourhood(h, w, radius if window else max(h, w))
    labels = [first.reshape(h * w, -1).float()]
    for t in range(start, T):
        ctx = ([0] if with_first else []) + list(range(max(1, t - n_context), t))
        ctx = ctx or [0]
        sim = torch.einsum("qd,cnd->qcn", f[t], f[ctx]).masked_fill(~near[:, None], float("-inf")).reshape(h * w, -1)
        top, idx = sim.topk(min(topk, sim.shape[1]), dim=1)
        weights = torch.softmax(top / temperature, 1) if softmax else top.clamp(min=0)
        ctx_labels = torch.stack([labels[c] for c in ctx]).reshape(-1, labels[0].shape[1])
        labels.append((weights[..., None] * ctx_labels[idx]).sum(1))
    return torch.stack(labels[-T:]).reshape(T, h, w, -1)


WRONG = {   # exercise -> [(functions, the name of the check that must catch it)]
    "masking": [({"random_masking": masking_descending}, "the kept tokens are those of smallest noise"),
                ({"random_masking": masking_mask_in_sorted_order}, "mask: 1 on the removed tokens"),
                ({"random_masking": masking_no_epsilon}, "tokens kept of N = 100 at ratio 0.9"),
                ({"random_masking": masking_two_outputs}, "the result"),
                ({"random_masking": masking_bool_mask}, "mask's shape and dtype"),
                ({"random_masking": masking_restore_is_the_shuffle}, "ids_restore undoes the shuffle"),
                ({"random_masking": masking_keep_in_token_order}, "compared with the reference: ids_keep")],
    "patchify": [({"patchify": patchify_channel_first, "unpatchify": unpatchify_channel_first}, "inside a token"),
                 ({"patchify": vit.patchify, "unpatchify": unpatchify_channel_first}, "unpatchify(patchify(x)) == x"),
                 ({"patchify": patchify_unfold_layout, "unpatchify": vit.unpatchify}, "patchify's shape"),
                 ({"patchify": patchify_column_major, "unpatchify": unpatchify_column_major}, "token 1 holds")],
    "decoder_block": [({"cross_self_block": block_self_first}, "compared with the reference"),
                      ({"cross_self_block": block_queries_from_f1}, "does not care about the order of f1"),
                      ({"cross_self_block": block_concat}, "the output's shape"),
                      ({"cross_self_block": block_no_cross}, "the output depends on f1"),
                      ({"cross_self_block": block_no_residual}, "with every sublayer silenced")],
    "rvm_core": [({"gru_step": gru_gates_swapped}, "update gate shut"),
                 ({"gru_step": gru_blend_reversed}, "update gate shut"),
                 ({"gru_step": gru_no_complement}, "update gate open"),
                 ({"gru_step": gru_no_reset}, "reset gate shut"),
                 ({"gru_step": gru_reset_before_norm}, "reset gate shut")],
    "info_nce": [({"info_nce": nce_no_negatives}, "all 2N embeddings equal"),
                 ({"info_nce": nce_cross_view_only}, "swapping the views"),
                 ({"info_nce": nce_per_anchor}, "the loss for N = 6 pairs"),
                 ({"info_nce": nce_no_self_mask}, "all 2N embeddings equal"),
                 ({"info_nce": nce_times_tau}, "perfect pairs far apart")],
    "vicmae_pooling": [({"global_embedding": pool_unnormalized}, "unit length"),
                       ({"global_embedding": pool_with_cls}, "changing the [CLS] token"),
                       ({"global_embedding": pool_last_token}, "the order of the visible tokens"),
                       ({"global_embedding": pool_gem_no_root}, "gem pooling of six equal tokens"),
                       ({"global_embedding": pool_sum}, "compared with the reference: mean")],
    "sinkhorn": [({"sinkhorn": sinkhorn_rows_only}, "equipartition"),
                 ({"sinkhorn": sinkhorn_row_max}, "compared with the reference"),
                 ({"sinkhorn": sinkhorn_with_grad}, "q carries no gradient"),
                 ({"sinkhorn": sinkhorn_no_last_rows}, "rows of q sum to 1"),
                 ({"sinkhorn": sinkhorn_rows_first}, "the prototypes' step comes first")],
    "swapped_prediction": [({"swapped_prediction": swapped_wrong_axis}, "confident and right"),
                           ({"swapped_prediction": swapped_not_swapped}, "does not depend on phi's own targets"),
                           ({"swapped_prediction": swapped_one_number}, "the result"),
                           ({"swapped_prediction": swapped_sum_over_tubes}, "compared with the reference: ce_phi")],
    "square_iou": [({"square_iou": iou_no_matching}, "perfect features (the square's one-hot)"),
                   ({"square_iou": iou_match_per_frame}, "compared with the reference: pred"),
                   ({"square_iou": iou_nan_when_empty}, "no square and nothing predicted"),
                   ({"square_iou": iou_pred_as_cluster_ids}, "pred's dtype")],
    "label_propagation": [({"label_propagation": lp_no_window}, "within `radius` rows and columns"),
                          ({"label_propagation": lp_without_first_frame}, "compared with the reference"),
                          ({"label_propagation": lambda *a, **k: lp(*a, **k, start=0)}, "frame 0 is the given"),
                          ({"label_propagation": lambda *a, **k: lp(*a, **k, softmax=False)}, "sum to 1"),
                          ({"label_propagation": lambda *a, **k: lp(*a, **k, normalize=False)}, "a still video")],
}


def test_the_wrong_answers_cover_every_exercise():
    assert set(WRONG) == set(checks.IMPLEMENT) and len(checks.IMPLEMENT) >= 10
    implement = {n for n, kind, _, _ in lab.SYLLABUS if kind == "implement"}
    assert implement == set(checks.IMPLEMENT) and set(lab.KIND) == implement | set(experiments.EXPERIMENTS)
    assert {name for name, _ in lab.QUESTIONS} <= set(lab.KIND) and set(lab.CORE) <= set(lab.KIND)


@pytest.mark.parametrize("name", list(checks.IMPLEMENT))
def test_checks_pass_on_the_reference(name):
    status, message = checks.grade(name, solution=True)
    assert status == "pass", message


@pytest.mark.parametrize("name", list(checks.IMPLEMENT))
def test_the_shipped_stub_is_not_implemented_yet(name):
    status, message = checks.grade(name, os.path.join(EXERCISES, f"{name}.py"))
    assert status == "not implemented" and message.startswith("not implemented yet") and "Traceback" not in message


@pytest.mark.parametrize("name", list(checks.IMPLEMENT))
def test_each_wrong_answer_fails_at_the_check_whose_hint_names_its_bug(name):
    for functions, at in WRONG[name]:
        status, message = checks.run_checks(name, functions)
        label = [getattr(f, "__name__", "?") for f in functions.values()]
        assert status == "fail", f"{name}: {label} passed: {message}"
        first = message.splitlines()[0]
        assert first.startswith(f"FAIL {name}: ") and at in first, f"{name}: {label} failed elsewhere:\n{message}"
        assert "expected:" in message and "hint:" in message


def test_no_hint_gives_the_solution_away():
    source = inspect.getsource(checks)
    hints = [h for h in source.split("hint") if "torch." in h.split("\n")[0]]
    assert not hints, hints   # a hint names the concept and the equation, never a torch call
    for needle in ("argsort(ids_shuffle", "(1 - u) * s + u * h", "s.max()"):
        assert needle not in source.split("# grading a student's file")[0].replace("# ", ""), needle


def test_a_mismatch_reports_its_size_its_worst_element_by_name_and_its_pattern():
    want = torch.zeros(4, 3, 3, 2)
    got = want.clone()
    got[3, 1, 2, 1] = 0.5
    with pytest.raises(checks.Fail) as e:
        checks.close("labels", got, want, "hint", axes=("t", "row", "col", "class"))
    assert "max abs error 0.5" in e.value.error and "(t=3, row=1, col=2, class=1)" in e.value.error
    assert e.value.pattern.startswith("only t=3 differs")
    with pytest.raises(checks.Fail) as e:
        checks.close("loss", torch.tensor(2.0), torch.tensor(1.0), "hint")
    assert e.value.expected == "1" and e.value.got == "2" and "tensor" not in e.value.got   # scalars as numbers
    assert "2 times the expected" in e.value.pattern
    with pytest.raises(checks.Fail) as e:
        checks.close("q", torch.arange(6.0).flip(0), torch.arange(6.0), "hint")
    assert "wrong places" in e.value.pattern


def test_a_crash_in_the_students_code_is_one_line_pointing_at_their_line(tmp_path):
    path = tmp_path / "sinkhorn.py"
    path.write_text("import torch\n\ndef sinkhorn(scores, epsilon=0.05, n_iters=10):\n"
                    "    return scores @ torch.ones(7, 7)\n")
    status, message = checks.grade("sinkhorn", str(path))
    assert status == "crash" and "raised RuntimeError" in message and "line 4 of" in message and "\n" not in message
    path.write_text("def sinkhorn(:\n")
    assert "does not import: SyntaxError" in checks.grade("sinkhorn", str(path))[1]
    path.write_text("def other():\n    pass\n")
    assert "defines no function sinkhorn" in checks.grade("sinkhorn", str(path))[1]


@pytest.mark.parametrize("body, words", [
    ("import sys\nsys.exit(0)\n", "called sys.exit(0) while importing"),
    ("import sys\ndef sinkhorn(scores, epsilon=0.05, n_iters=10):\n    sys.exit(0)\n", "called sys.exit(0) inside"),
    ("def sinkhorn(scores, epsilon=0.05, n_iters=10):\n    raise KeyboardInterrupt\n", "raised KeyboardInterrupt"),
    ("def sinkhorn(scores, epsilon=0.05, n_iters=10):\n    raise BaseException('x')\n", "raised BaseException"),
    ("import torch\ndef sinkhorn(scores, epsilon=0.05, n_iters=10):\n"
     "    return torch.empty(2, device='meta').tolist()\n", "raised NotImplementedError"),
])
def test_exits_interrupts_and_torchs_not_implemented_are_a_fail_never_a_pass(tmp_path, body, words):
    path = tmp_path / "sinkhorn.py"
    path.write_text(body)
    status, message = checks.grade("sinkhorn", str(path))
    assert status == "crash" and message.startswith("FAIL sinkhorn: your code") and words in message, message
    assert "\n" not in message and "not implemented yet" not in message


def test_the_grader_subprocess_fails_an_exit_and_times_out_an_endless_loop(tmp_path):
    exits = tmp_path / "exits.py"
    exits.write_text("import os\ndef sinkhorn(scores, epsilon=0.05, n_iters=10):\n    os._exit(0)\n")
    status, message = check.run_grader("sinkhorn", str(exits))
    assert status == "crash" and "ended the checker's process (exit status 0)" in message
    loops = tmp_path / "loops.py"
    loops.write_text("def sinkhorn(scores, epsilon=0.05, n_iters=10):\n    while True:\n        pass\n")
    status, message = check.run_grader("sinkhorn", str(loops), floor=1)
    assert status == "timeout" and "ran longer than" in message and "\n" not in message


def test_check_py_exit_codes(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, os.path.join(EXERCISES, "check.py"), *a],
                                    capture_output=True, text=True, cwd=ROOT)
    exits = tmp_path / "sinkhorn.py"
    exits.write_text("import sys\nsys.exit(0)\n")            # exited 0 with no output before issue 40
    exited, unknown = run("sinkhorn", "--file", str(exits)), run("nope")
    assert exited.returncode == 1 and "FAIL sinkhorn" in exited.stdout and "sys.exit(0)" in exited.stdout
    assert "Traceback" not in exited.stderr
    assert unknown.returncode == 2 and "no exercise 'nope'" in unknown.stderr   # (a pass: the --start test)


# ----------------------------------------------------------------------------
# students work on copies: --start, answers.md, the report


def test_start_copies_the_stub_and_checks_read_the_copy(tmp_path, capsys):
    work = tmp_path / "work"
    stub = open(os.path.join(EXERCISES, "masking.py")).read()
    assert check.main(["masking"]) == 1 and "not started yet" in capsys.readouterr().out
    assert check.main(["masking", "--start"]) == 0
    assert (work / "masking.py").read_text() == stub and (work / "answers.md").exists()
    (work / "masking.py").write_text("import vit\n\ndef random_masking(noise, ratio):\n"
                                     "    return vit.random_masking(*noise.shape, ratio, noise=noise)\n")
    assert check.main(["masking", "--start"]) == 0 and "already started" in capsys.readouterr().out   # kept
    assert check.main(["masking"]) == 0 and "PASS masking" in capsys.readouterr().out
    assert open(os.path.join(EXERCISES, "masking.py")).read() == stub          # the shipped stub stays a stub
    answers = (work / "answers.md").read_text()
    (work / "answers.md").write_text(answers.replace(lab.PLACEHOLDER, "Each frame alone is noise.", 1))
    assert check.main(["--report"]) == 0
    table = capsys.readouterr().out
    row = lambda name: next(line for line in table.splitlines() if f"| {name} |" in line)
    assert "| pass | 1 |" in row("masking") and "not started" in row("sinkhorn")
    assert "1 yes" in row("frame_model") and "2 no" in row("rvm_sources")
    assert "1 of 15 exercises passed; 1 of 7 questions answered" in table


def test_answers_md_has_every_question_with_a_slot_and_is_never_overwritten(tmp_path):
    path = lab.ensure_answers()
    text = open(path).read()
    assert all(f"## {i}. {name}" in text for i, (name, _) in enumerate(lab.QUESTIONS, 1))
    assert not any(lab.answered().values())
    open(path, "a").write("extra\n")
    assert lab.ensure_answers() == path and open(path).read().endswith("extra\n")
    assert lab.answered()[len(lab.QUESTIONS)]


def test_gitignore_keeps_the_work_folder_out():
    assert "exercises/work/" in open(os.path.join(ROOT, ".gitignore")).read().split()


# ----------------------------------------------------------------------------
# use your own code: the part goes in through the constructor and trains on train.py's own path


def counting(function, calls):
    def part(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)
    return part


def test_a_students_part_trains_through_the_constructor(tmp_path, capsys):
    import rvm
    calls = []
    part = counting(rvm.gru_step, calls)
    sets = ["dim=32", "depth=1", "core_depth=1", "decoder_depth=1", "decoder_dim=32", "n_source=2"]
    argv = ["--method", "rvm", "--out", str(tmp_path), "--steps", "2", "--batch-size", "2", "--log-every", "1",
            *[a for kv in sets for a in ("--set", kv)]]
    train.main(argv, parts={"rvm": {"gru_step": part}})
    assert len(calls) == 2 * 2                                   # 2 steps x n_source core steps
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ckpt["parts"] == {"gru_step": f"{part.__module__}.{part.__qualname__}"}
    # the same seed without the part: the same weights, so the part is the only thing that changed
    train.main([*argv[:3], str(tmp_path / "ref"), *argv[4:]])
    ref = torch.load(tmp_path / "ref" / "ckpt.pt", weights_only=True)
    assert all(torch.equal(ckpt["model"][k], ref["model"][k]) for k in ref["model"])
    capsys.readouterr()
    model, _, _ = methods.load_checkpoint(str(tmp_path / "ckpt.pt"))   # rebuilt without the part: says so
    assert "trained with" in capsys.readouterr().err and model.core.gru_step is rvm.gru_step
    model, _, _ = methods.load_checkpoint(str(tmp_path / "ckpt.pt"), parts={"rvm": {"gru_step": part}})
    assert model.core.gru_step is part


def test_sigma_and_vicmae_take_their_part():
    import sigma
    calls = []
    model = sigma.SIGMA(sigma.Config(depth=1, decoder_depth=1), sinkhorn=counting(sigma.sinkhorn, calls))
    clip = torch.rand(2, 15, 3, 64, 64)
    model(sigma.sample(clip, model.cfg, torch.Generator().manual_seed(0)))
    assert len(calls) == 2                                       # one Sinkhorn per branch
    calls.clear()
    model = vicmae.ViCMAE(vicmae.Config(depth=1, decoder_depth=1), info_nce=counting(vicmae.info_nce, calls))
    model(vicmae.sample(torch.rand(2, 16, 3, 64, 64), model.cfg, torch.Generator().manual_seed(0)))
    assert len(calls) == 1
    with pytest.raises(ValueError, match="gru_step"):
        import rvm
        rvm.RVM(rvm.Config(core="sa"), gru_step=lambda *a: None)


# ----------------------------------------------------------------------------
# experiment exercises


def write_run(root, name, phi_std):
    os.makedirs(root / name)
    torch.save({"model": {}, "config": {}, "method": "sigma", "step": 2500, "train": {"steps": 2500}},
               root / name / "ckpt.pt")                  # finished (the collapse reads only metrics.jsonl)
    with open(root / name / "metrics.jsonl", "w") as f:
        for step, v in ((1, 0.45), (2500, phi_std)):
            f.write(json.dumps({"step": step, "loss": 1.0, "phi_std": v}) + "\n")


def test_an_experiment_with_missing_runs_says_how_to_prepare_them(tmp_path):
    status, message = experiments.check("sigma_collapse", str(tmp_path))
    assert status == "missing runs" and "sigma, sigma-l2" in message
    assert "python exercises/run.py --prepare sigma_collapse" in message


@pytest.mark.parametrize("sinkhorn_std, l2_std, passed", [(1.4, 0.0002, True), (1.4, 0.2, False), (0.05, 0.0, False)])
def test_the_collapse_experiment_follows_its_range(tmp_path, sinkhorn_std, l2_std, passed):
    write_run(tmp_path, "sigma", sinkhorn_std)
    write_run(tmp_path, "sigma-l2", l2_std)
    status, message = experiments.check("sigma_collapse", str(tmp_path))
    assert (status == "pass") is passed and message.startswith("PASS" if passed else "OUTSIDE THE RANGE")


def test_a_no_effect_experiment_says_so_never_pass(tmp_path, monkeypatch, capsys):
    for run in ("siammae-m95", "siammae-m50"):
        write_run(tmp_path, run, 0.0)
    monkeypatch.setitem(experiments.EXPERIMENTS["siammae_masking"], "measure", lambda get: ("no effect", "J ..."))
    monkeypatch.setitem(sys.modules, "experiments", experiments)
    assert check.main(["siammae_masking", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    n = lab.question_numbers("siammae_masking")[0]
    assert "AS EXPECTED HERE: NO EFFECT siammae_masking" in out and f"question {n} in answers.md asks why" in out
    assert "PASS" not in out
    monkeypatch.setitem(experiments.EXPERIMENTS["siammae_masking"], "measure", lambda get: ("outside", "J ..."))
    assert check.main(["siammae_masking", "--runs", str(tmp_path)]) == 1
    assert "an effect where none was expected" in capsys.readouterr().out


def test_every_experiment_is_in_the_readme_and_the_handout():
    readme = open(os.path.join(EXERCISES, "README.md")).read()
    student = open(os.path.join(EXERCISES, "STUDENT.md")).read()
    for name, ex in experiments.EXPERIMENTS.items():
        assert f"check.py {name}" in readme and ex["range"] in readme, name
        assert all(experiments.command(r) in readme for r in ex["runs"]), name   # the commands --prepare runs
        assert f"check.py {name}" in student, name
    for name in checks.IMPLEMENT:
        assert f"check.py {name}" in readme and f"check.py {name} --start" in student, name
    for i, (name, text) in enumerate(lab.QUESTIONS, 1):
        assert f"{i}. " in student, i


def test_the_prepare_queue_trains_each_shared_run_once_and_skips_finished_ones(tmp_path, capsys, monkeypatch):
    run = load("run")
    assert run.queue(["frame_model", "rvm_sources", "gru_vs_attention"]) == ["rvm", "siammae", "rvm-n1", "rvm-sa"]
    everything = run.queue(list(experiments.EXPERIMENTS))
    assert len(everything) == len(set(everything)) == len(experiments.RUNS)
    assert all("blr" not in experiments.RUNS[r][0] for r in everything)   # the tiny default lr trains them
    # the queue's mechanics on one small run (each run is a train.py process): the module run.py imports
    real = sys.modules.get("experiments") or load("experiments")
    monkeypatch.setitem(sys.modules, "experiments", real)
    monkeypatch.setitem(real.RUNS, "small", ("--method siammae --data noise_square --steps 600 --batch-size 2 "
                                             "--set depth=1 --set decoder_depth=1", 1.0))
    monkeypatch.setitem(real.EXPERIMENTS, "small_one", {"runs": ["small"]})
    runs = tmp_path / "runs"
    assert run.main(["--prepare", "small_one", "--steps", "2"]) == 0      # $EXERCISES_RUNS (the fixture)
    out = capsys.readouterr().out
    assert "1 run to train" in out and "every run is trained" in out
    assert torch.load(runs / "small" / "ckpt.pt", weights_only=True)["step"] == 2 and (runs / "small.log").exists()
    assert run.main(["--prepare", "small_one", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "done already: small" in out and "to train" not in out
    with pytest.raises(SystemExit):
        run.main(["--prepare", "nope"])
    assert "no experiment 'nope'" in capsys.readouterr().err


def test_run_py_trains_with_the_part_and_draws(tmp_path):
    run = load("run")
    out = tmp_path / "run"
    os.makedirs(out)
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')    # the student's previous try, kept aside
    assert run.main(["sinkhorn", "--solution", "--steps", "2", "--batch-size", "2", "--log-every", "1",
                     "--set", "depth=1", "--set", "decoder_depth=1", "--out", str(out)]) == 0
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 2 and set(ckpt["parts"]) == {"sinkhorn"}
    assert (out / "viz" / "demo.png").exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and (aside[0] / "metrics.jsonl").read_text() == '{"step": 1, "loss": 1.0}\n'
    assert run.main(["sinkhorn", "--out", str(tmp_path / "stub")]) == 1      # not started: checked, not trained
    assert not (tmp_path / "stub").exists()


@pytest.mark.parametrize("body", ["import sys\nsys.exit(0)\n",
                                  "import sys\ndef sinkhorn(scores, epsilon=0.05, n_iters=10):\n    sys.exit(0)\n"])
def test_run_py_never_exits_0_when_the_students_code_exits(tmp_path, body, capsys):
    run = load("run")
    path = tmp_path / "mine.py"
    path.write_text(body)
    out = tmp_path / "out"
    assert run.main(["sinkhorn", "--file", str(path), "--force", "--steps", "2", "--batch-size", "2",
                     "--set", "depth=1", "--set", "decoder_depth=1", "--out", str(out)]) == 1
    assert "nothing was trained" in capsys.readouterr().err
    assert not (out / "viz").exists()


def test_the_motion_experiments_fail_on_untrained_runs(monkeypatch):
    # random-init models in place of the runs: none of RVM's claims holds, so each verdict must say so. Fewer
    # videos, and a features time that grows alike for both cores (timing 128 frames of full attention is slow)
    from helpers import tiny_model
    import dataclasses
    import evaluate
    monkeypatch.setattr(experiments, "iou", lambda m, c, T=16: evaluate.noise_square_iou(m, c, T=T, n=2))
    monkeypatch.setattr(experiments, "features_ms", lambda m, c, T: float(T))
    models = {"rvm": tiny_model("rvm"), "rvm-n1": tiny_model("rvm"), "siammae": tiny_model("siammae")}
    sa_cfg = dataclasses.replace(models["rvm"][1], core="sa")
    models["rvm-sa"] = (rvm.RVM(sa_cfg).eval(), sa_cfg)
    get = lambda run: models[run]
    for name in ("frame_model", "rvm_sources", "gru_vs_attention"):
        status, result = experiments.EXPERIMENTS[name]["measure"](get)
        assert status == "outside" and "IoU" in result, (name, result)
    assert "frame videos (the length both trained on)" in result and "on 16-frame videos" in result


@pytest.mark.parametrize("use, verdict", [((1.7, 1.5), "no effect"), ((1.0, 1.0), "outside"), ((2.6, 1.3), "outside")])
def test_no_effect_needs_two_models_that_use_the_past_frame(monkeypatch, use, verdict):
    # an untrained pair shows "no effect" trivially (ratio 1): the verdict asks that both models use f1
    ratios = iter(use)
    monkeypatch.setattr(experiments, "past_frame_use", lambda *a: next(ratios))
    monkeypatch.setattr(experiments, "propagation_J", lambda *a: 0.45)
    get = lambda run: (None, None)
    get.world = lambda run: {}
    assert experiments.siammae_masking(get)[0] == verdict


def test_an_interrupted_run_is_not_measured(tmp_path):
    import dataclasses
    from helpers import tiny_model
    for run in ("sigma", "sigma-l2"):
        model, cfg = tiny_model("sigma")
        os.makedirs(tmp_path / run)
        torch.save({"model": model.state_dict(), "config": dataclasses.asdict(cfg), "method": "sigma", "step": 40,
                    "train": {"steps": 2500}}, tmp_path / run / "ckpt.pt")
    status, message = experiments.check("sigma_collapse", str(tmp_path))
    assert status == "missing runs" and "sigma stopped at step 40 of 2500" in message, message


def test_one_prepare_queue_a_runs_folder(tmp_path, capsys):
    run = load("run")
    root = tmp_path / "shared-runs"
    os.makedirs(root)
    (root / ".prepare.pid").write_text(str(os.getpid()))                      # a live queue holds the folder
    assert run.main(["--prepare", "siammae_masking", "--runs", str(root)]) == 1
    assert f"another run.py --prepare (process {os.getpid()})" in capsys.readouterr().err
    assert not (root / "siammae-m95").exists()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (root / ".prepare.pid").write_text(gone.stdout.strip())                   # a killed queue's file: taken over
    assert run.hold_queue(str(root)) is None and (root / ".prepare.pid").read_text() == str(os.getpid())
    run.release_queue(str(root))
    assert not (root / ".prepare.pid").exists()
