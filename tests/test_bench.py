"""bench.py's FLOPs are counted (torch's FlopCounterMode over a training step's forward and backward, as train.py
counts them), not modelled: the count of one transformer block and of one patch embedding against a hand count,
every method's step counted, the "matmuls alone" ceiling's replay, and the command's own output: the count in
bench.json, no profiler lines between the tables."""
import dataclasses
import itertools
import json
import os

import pytest
import torch

import bench
import methods
import vit

SHRINK = dict(dim=32, depth=1, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2)
EXTRA = {"rvm": dict(core_depth=1), "vicmae": dict(head_hidden=64), "sigma": dict(proj_hidden=(64,),
                                                                                   num_prototypes=16)}
CASES = [("rvm", {}), ("rvm", dict(core="sa")), ("siammae", {}), ("siammae", dict(encoder="joint")),
         ("vicmae", {}), ("sigma", {}), ("sigma", dict(loss="l2"))]


class Loss(torch.nn.Module):
    """layer(batch["x"]) squared and averaged: a one-layer "model" with the methods' forward(batch) -> {"loss"}."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, batch):
        return {"loss": self.layer(batch["x"]).square().mean()}


def test_the_count_of_one_block_is_the_hand_count():
    """vit.Block on B x N tokens of width D, 2 m k n per matmul: q, kv, QK^T, AV, proj, the MLP's two layers. The
    backward of each matmul is two more of its size (the input's gradient and the weight's): 3 x the forward.
    The attention matmuls count too (on the CPU only because step_flops counts on the math backend)."""
    B, N, D, r = 2, 17, 32, 4
    model = Loss(vit.Block(D, heads=2, mlp_ratio=r))
    forward = B * (2 * N * D * D + 2 * N * D * 2 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * 2 * N * D * r * D)
    assert bench.step_flops(model, {"x": torch.randn(B, N, D)}) == 3 * forward
    assert all(p.grad is None for p in model.parameters())   # the count leaves no gradients behind


def test_a_layer_that_reads_pixels_has_no_input_gradient_to_count():
    """The patch embedding (a p x p convolution with stride p: one matmul per patch) reads data that needs no
    gradient: its backward is the weight's gradient only, 2 x the forward, not 3 x."""
    B, size, p, D = 2, 32, 8, 16
    model = Loss(vit.PatchEmbed(p, D))
    forward = B * 2 * (size // p) ** 2 * (3 * p * p) * D
    assert bench.step_flops(model, {"x": torch.rand(B, 3, size, size)}) == 2 * forward


@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}-{v}" if v else n for n, v in CASES])
def test_every_method_step_is_counted(name, variant):
    """A method's step counts more than its encoder's blocks alone, and twice the clips count twice the FLOPs (the
    methods whose loss compares the clips of a batch with each other, ViC-MAE's InfoNCE, a little more)."""
    cfg = dataclasses.replace(methods.METHODS[name].Config.tiny(), **SHRINK, **EXTRA.get(name, {}), **variant)
    torch.manual_seed(0)
    model = methods.MODELS[name](cfg)
    flops = {B: bench.step_flops(model, bench.make_batch(name, cfg, B, torch.device("cpu"))) for B in (2, 4)}
    tokens = (cfg.img_size // cfg.patch) ** 2
    block = 3 * 2 * (4 * tokens * cfg.dim ** 2 + 2 * tokens ** 2 * cfg.dim)   # one block on one frame, attention only
    assert flops[2] > 2 * block
    if name == "vicmae":
        assert 2 * flops[2] < flops[4] < 2.01 * flops[2]
    else:
        assert flops[4] == 2 * flops[2]


def test_a_described_tensor_is_made_again_with_its_shape_strides_and_dtype():
    """What the ceiling replays: a transposed view, an expanded one (stride 0) and a bf16 tensor, in nested args."""
    base = torch.randn(4, 6)
    args = ([base.t(), base[:1].expand(5, 6)], {"x": base.to(torch.bfloat16)}, 3, None)
    made = bench.rebuild(bench.describe(args), torch.device("cpu"))
    for old, new in ((args[0][0], made[0][0]), (args[0][1], made[0][1]), (args[1]["x"], dict(made[1])["x"])):
        assert (new.shape, new.stride(), new.dtype) == (old.shape, old.stride(), old.dtype)
    assert made[2:] == [3, None]


def test_the_matmul_ceiling_weighs_each_counted_call_by_its_time_alone(monkeypatch):
    """A known answer: two D x D linear layers on data that needs no gradient run five counted matmuls a step of 2 B D^2
    FLOPs each, in three shapes: the forward's (twice), then the two weight gradients' (one shape, twice) and the
    second layer's input gradient. With a clock that reads 1 ms more at every look, each replayed call takes 1 ms, and
    the large matmul timed after each shape reads 2, then 1 and 1 GFLOP/s: the calls were worth 2 x 2e6 + 3 x 1e6 FLOPs
    at the peak of their moment, and the ceiling is 5 x 2 B D^2 over 7e6 (each shape counted as often as the step runs
    it, each against the peak timed beside it)."""
    B, D = 16, 32
    model = Loss(torch.nn.Sequential(torch.nn.Linear(D, D), torch.nn.Linear(D, D)))
    clock, rates = iter(range(10 ** 6)), iter([2e9, 1e9, 1e9])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock) * 1e-3)
    ceiling, flops = bench.matmul_ceiling(model, {"x": torch.randn(B, D)}, torch.device("cpu"), lambda: next(rates))
    assert flops == 5 * 2 * B * D * D
    assert ceiling == pytest.approx(flops / 7e6)


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_the_ceiling_replays_every_op_the_step_counts(name):
    """Every counted op of a method's step is recorded for the replay: the same FLOPs as step_flops."""
    cfg = dataclasses.replace(methods.METHODS[name].Config.tiny(), **SHRINK, **EXTRA.get(name, {}))
    torch.manual_seed(0)
    model = methods.MODELS[name](cfg)
    batch = bench.make_batch(name, cfg, 2, torch.device("cpu"))
    ceiling, flops = bench.matmul_ceiling(model, batch, torch.device("cpu"), lambda: 1e9, min_s=0)
    assert flops == bench.step_flops(model, batch) and ceiling > 0


def test_bench_reports_the_counted_flops_and_no_profiler_lines(tmp_path, capfd):
    out = tmp_path / "bench"
    bench.main(["--method", "siammae", "--steps", "1", "--warmup", "0", "--frames", "", "--batch-size", "2",
                "--out", str(out)])
    said = capfd.readouterr()
    assert "USDT" not in said.out + said.err and "profiler_start" not in said.out + said.err
    row = json.loads((out / "bench.json").read_text())["steps"][0]
    cfg = methods.METHODS["siammae"].Config.tiny()
    torch.manual_seed(0)
    model = methods.MODELS["siammae"](cfg)
    counted = bench.step_flops(model, bench.make_batch("siammae", cfg, 2, torch.device("cpu")))
    assert row["gflop_per_step"] == pytest.approx(counted / 1e9, rel=1e-12) and row["batch"] == 2
    assert 0 < row["mfu"] == pytest.approx(counted / (row["step_ms"] / 1e3) / (row["peak_gflops"] * 1e9))


def test_the_mfu_pairs_each_step_with_the_matmul_timed_after_it(monkeypatch):
    """A known answer on a host whose speed drifts: steps of 3, 12 and 6 ms (a fake clock), the large matmul timed
    after each at 1, 2 and 4 GFLOP/s. Step by step the ratios are F / 3e6, F / 24e6, F / 24e6: the MFU is their
    median, F / 24e6; the medians' ratio would say F / 12e6."""
    now, tick = [0.0], [1e-3]
    ticks = itertools.chain([(1e9, 4e-3), (2e9, 2e-3), (4e9, 1e-3)], itertools.repeat((1e9, 1e-3)))   # + ceiling

    def clock():                          # each look at the clock: one tick later (a step looks 4 times: 3 ticks)
        now[0] += tick[0]
        return now[0]

    def rate():                           # this step's matmul rate; the next step's ticks
        flops_per_s, tick[0] = next(ticks)
        return flops_per_s
    args = bench.get_parser().parse_args(["--method", "siammae", "--batch-size", "2", "--warmup", "0", "--steps", "3"])
    args.preset, args.precision = "tiny", "fp32"
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    row = bench.bench_method("siammae", args, torch.device("cpu"), rate)
    flops = row["gflop_per_step"] * 1e9
    assert row["mfu"] == pytest.approx(flops / 24e6) and row["step_ms"] == pytest.approx(6)
    assert row["peak_gflops"] == pytest.approx(2)


def test_step_ab_variants_are_the_same_step_and_leave_the_code_as_it_was(monkeypatch):
    """scripts/step_ab.py (docs/performance.md): each fusion gives the base's loss; swapping the gates' u and r, or
    dropping the 1/sqrt(d), would not. After it, the classes hold their own methods again."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
    import step_ab
    real = {v: getattr(cls, attr) for v, (cls, attr, *_) in step_ab.VARIANTS.items()}
    for name in methods.MODELS:
        cfg = methods.build_config(name, "tiny", ["depth=1"] + (["n_source=2"] if name == "rvm" else []))
        rows = step_ab.compare(name, steps=0, batch_size=2, warmup=0, cfg=cfg)
        assert len(rows) == (4 if name == "rvm" else 2)
        for v, (loss, _) in rows.items():
            assert loss == pytest.approx(rows[None][0], rel=1e-5), (name, v)
    assert {v: getattr(cls, attr) for v, (cls, attr, *_) in step_ab.VARIANTS.items()} == real
