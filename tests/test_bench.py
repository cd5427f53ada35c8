"""bench.py's analytic FLOP count against torch's FlopCounterMode on a real training step.

Forward: the same matmuls, so the counts must agree to within 1%. Training: bench.py counts
3 x forward less the input gradient of the matmuls that read pixels (patch / tube embedding,
SIGMA's projector, RVM's one-hot time offset), which is what autograd runs: within 1% too.
(The plain "3 x forward" rule would be 1-16% high here: these layers matter more in a narrow model.)
Attention runs on the math backend here: on CPU the counter does not count the fused
flash-attention kernel (it reports 0 FLOPs for it), while the math path is plain bmm's.
"""
import dataclasses

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import bench
import methods

SHRINK = dict(dim=32, depth=1, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2)
EXTRA = {"rvm": dict(core_depth=1), "vicmae": dict(head_hidden=64), "sigma": dict(proj_hidden=(64,),
                                                                                   num_prototypes=16)}
CASES = [("rvm", {}), ("rvm", dict(core="sa")), ("siammae", {}), ("siammae", dict(encoder="joint")),
         ("siammae", dict(decoder="joint")), ("siammae", dict(decoder="cross")), ("vicmae", {}),
         ("sigma", {}), ("sigma", dict(loss="l2"))]


@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}-{v}" if v else n for n, v in CASES])
def test_analytic_flops_match_flop_counter(name, variant):
    cfg = dataclasses.replace(methods.METHODS[name].Config.tiny(), **SHRINK, **EXTRA.get(name, {}), **variant)
    B = 3
    torch.manual_seed(0)
    model = methods.MODELS[name](cfg)
    batch = bench.make_batch(name, cfg, B, torch.device("cpu"))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss = model(batch)["loss"]
        forward = counter.get_total_flops()
        loss.backward()
    step = counter.get_total_flops()
    analytic = bench.forward_flops(name, cfg, B)
    assert forward == pytest.approx(analytic, rel=0.01)
    assert step == pytest.approx(bench.train_flops(name, cfg, B), rel=0.01)
    assert step < 3 * forward


def test_flops_grow_with_what_they_count():
    """The count is not a constant: more clips, more tokens or a deeper model cost more, as the formula says."""
    cfg = methods.METHODS["siammae"].Config.tiny()
    f = bench.forward_flops("siammae", cfg, 4)
    assert bench.forward_flops("siammae", cfg, 8) == 2 * f
    assert bench.forward_flops("siammae", dataclasses.replace(cfg, img_size=128), 4) > 3.9 * f
    deeper = bench.forward_flops("siammae", dataclasses.replace(cfg, depth=cfg.depth + 1), 4)
    N, n, D = 64, 3, cfg.dim        # one more encoder block on f1 (1+N tokens) and on f2 (1+n visible)
    assert deeper - f == 4 * (bench.block(1 + N, D, 4.0) + bench.block(1 + n, D, 4.0))
