"""exercises/: every implement exercise's checks pass on the project's reference, fail on the shipped stub
and on plausible wrong answers; a student's part trains through the model's constructor, on train.py's own
path; the experiment exercises' verdicts follow their ranges; check.py's exit codes."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import metrics
import methods
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
experiments = load("experiments")


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


WRONG = {
    "masking": [{"random_masking": f} for f in (masking_descending, masking_mask_in_sorted_order, masking_no_epsilon)],
    "patchify": [{"patchify": patchify_channel_first, "unpatchify": unpatchify_channel_first},
                 {"patchify": vit.patchify, "unpatchify": unpatchify_channel_first}],
    "decoder_block": [{"cross_self_block": f} for f in (block_self_first, block_queries_from_f1)],
    "rvm_core": [{"gru_step": f} for f in (gru_gates_swapped, gru_blend_reversed)],
    "info_nce": [{"info_nce": f} for f in (nce_no_negatives, nce_cross_view_only)],
    "sinkhorn": [{"sinkhorn": f} for f in (sinkhorn_rows_only, sinkhorn_row_max)],
    "swapped_prediction": [{"swapped_prediction": f} for f in (swapped_wrong_axis, swapped_not_swapped)],
    "square_iou": [{"square_iou": f} for f in (iou_no_matching, iou_match_per_frame)],
    "label_propagation": [{"label_propagation": f} for f in (lp_no_window, lp_without_first_frame)],
}


def test_the_wrong_answers_cover_every_exercise():
    assert set(WRONG) == set(check.IMPLEMENT) and len(check.IMPLEMENT) >= 8


@pytest.mark.parametrize("name", list(check.IMPLEMENT))
def test_checks_pass_on_the_reference(name):
    ok, message = check.check_implement(name, solution=True)
    assert ok, message


@pytest.mark.parametrize("name", list(check.IMPLEMENT))
def test_the_shipped_stub_is_not_implemented_yet(name):
    ok, message = check.check_implement(name)
    assert not ok and message.startswith("not implemented yet") and "Traceback" not in message


@pytest.mark.parametrize("name", list(check.IMPLEMENT))
def test_checks_fail_on_plausible_wrong_answers(name):
    for functions in WRONG[name]:
        ok, message = check.run_checks(name, functions)
        assert not ok, f"{name}: {[f.__name__ for f in functions.values()]} passed"
        assert message.startswith(f"FAIL {name}") and "expected:" in message and "hint:" in message


def test_a_crash_in_the_students_code_is_one_line_pointing_at_their_line(tmp_path):
    path = tmp_path / "sinkhorn.py"
    path.write_text("import torch\n\ndef sinkhorn(scores, epsilon=0.05, n_iters=10):\n"
                    "    return scores @ torch.ones(3, 3, 3)\n")
    ok, message = check.check_implement("sinkhorn", path=str(path))
    assert not ok and "raised RuntimeError" in message and "line 4 of" in message and "\n" not in message
    path.write_text("def sinkhorn(:\n")
    ok, message = check.check_implement("sinkhorn", path=str(path))
    assert not ok and "does not import: SyntaxError" in message
    path.write_text("def other():\n    pass\n")
    ok, message = check.check_implement("sinkhorn", path=str(path))
    assert not ok and "defines no function sinkhorn" in message


def test_check_py_exit_codes():
    run = lambda *a: subprocess.run([sys.executable, os.path.join(EXERCISES, "check.py"), *a],
                                    capture_output=True, text=True, cwd=ROOT)
    passed, stub, unknown = run("sinkhorn", "--solution"), run("sinkhorn"), run("nope")
    assert passed.returncode == 0 and "PASS sinkhorn" in passed.stdout
    assert stub.returncode == 1 and "not implemented yet" in stub.stdout and "Traceback" not in stub.stderr
    assert unknown.returncode == 2 and "no exercise 'nope'" in unknown.stderr


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
    (root / name / "ckpt.pt").write_bytes(b"")
    with open(root / name / "metrics.jsonl", "w") as f:
        for step, v in ((1, 0.45), (2500, phi_std)):
            f.write(json.dumps({"step": step, "loss": 1.0, "phi_std": v}) + "\n")


def test_an_experiment_with_missing_runs_prints_their_commands(tmp_path):
    ok, message = experiments.check("sigma_collapse", str(tmp_path))
    assert not ok and experiments.command("sigma-l2") in message and experiments.command("sigma") in message


@pytest.mark.parametrize("sinkhorn_std, l2_std, passed", [(1.4, 0.0002, True), (1.4, 0.2, False), (0.05, 0.0, False)])
def test_the_collapse_experiment_follows_its_range(tmp_path, sinkhorn_std, l2_std, passed):
    write_run(tmp_path, "sigma", sinkhorn_std)
    write_run(tmp_path, "sigma-l2", l2_std)
    ok, message = experiments.check("sigma_collapse", str(tmp_path))
    assert ok is passed and ("PASS" in message) is passed


def test_every_experiment_is_in_the_readme_with_its_range_and_runs():
    readme = open(os.path.join(EXERCISES, "README.md")).read()
    for name, ex in experiments.EXPERIMENTS.items():
        assert f"check.py {name}" in readme and ex["range"] in readme, name
        assert all(experiments.command(r) in readme for r in ex["runs"]), name
    for name in check.IMPLEMENT:
        assert f"check.py {name}" in readme, name


def test_run_py_trains_with_the_part_and_draws(tmp_path):
    run = load("run")
    out = tmp_path / "run"
    assert run.main(["sinkhorn", "--solution", "--steps", "2", "--batch-size", "2", "--log-every", "1",
                     "--set", "depth=1", "--set", "decoder_depth=1", "--out", str(out)]) == 0
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 2 and set(ckpt["parts"]) == {"sinkhorn"}
    assert (out / "viz" / "demo.png").exists()
    assert run.main(["sinkhorn", "--out", str(tmp_path / "stub")]) == 1      # the stub: checked, not trained
    assert not (tmp_path / "stub").exists()


def test_the_motion_experiments_fail_on_untrained_runs():
    # random-init models in place of the runs: none of RVM's claims holds, so each verdict must say so
    from helpers import tiny_model
    import dataclasses
    import rvm
    models = {"rvm": tiny_model("rvm"), "rvm-n1": tiny_model("rvm"), "siammae": tiny_model("siammae")}
    sa_cfg = dataclasses.replace(models["rvm"][1], core="sa")
    models["rvm-sa"] = (rvm.RVM(sa_cfg).eval(), sa_cfg)
    get = lambda run: models[run]
    for name in ("frame_model", "rvm_sources", "gru_vs_attention"):
        ok, result = experiments.EXPERIMENTS[name]["measure"](get)
        assert not ok and "IoU" in result, (name, result)
