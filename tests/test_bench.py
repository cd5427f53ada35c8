"""bench.py's FLOPs are counted (torch's FlopCounterMode over a training step's forward and backward, as train.py
counts them), not modelled: the count of one transformer block and of one patch embedding against a hand count,
every method's step counted, and the command's own output: the count in bench.json, no profiler lines between the
tables."""
import dataclasses
import json

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
    assert 0 < row["mfu"] == pytest.approx(counted / (row["step_ms"] / 1e3) / json.loads(
        (out / "bench.json").read_text())["peak_flops"])
