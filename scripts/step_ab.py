"""What the fusions that issue 44 sec. 5 names would buy on the CPU, measured A/B (docs/performance.md, "The fusions
of section 5, measured A/B").

Variants, each the same function as the code it replaces (the first step's loss is printed beside the base's):
    gates_fused    RVM's four gate projections (Sec. 3.2: W_e^u e + W_s^u s, W_e^r e + W_s^r s) as ONE matmul of
                   [e, s] by the (2D, 2D) block matrix of the four W
    gates_hoisted  the input side W_e e_t of both gates for all source frames in one matmul before the time loop
                   (as cuDNN's GRU does); only W_s s_(t-1) stays in the loop
    attn_manual    vit.Attention's softmax(Q K^T / sqrt(d)) V written out (two batched matmuls and a softmax) instead of
                   F.scaled_dot_product_attention, every method

The steps of all variants of a method are interleaved (base, variant, base, variant, ...), so a host whose speed drifts
slows all of them alike; each row is the median of --steps training steps as bench.py times them (forward, backward,
grad clip, fused AdamW) at the tiny preset, batch 8, fp32.

    python scripts/step_ab.py [--steps 25] [--method rvm --method sigma]
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench  # noqa: E402
import methods  # noqa: E402
import rvm  # noqa: E402
import vit  # noqa: E402


def gates_fused(self, e, s):
    """GatedTransformerCore.forward with u and r from one matmul: [e, s] (.., 2D) @ [[W_e^u, W_s^u], [W_e^r, W_s^r]]^T."""
    w = torch.cat([torch.cat([self.w_input_update.weight, self.w_state_update.weight], 1),
                   torch.cat([self.w_input_reset.weight, self.w_state_reset.weight], 1)], 0)   # (2D, 2D)
    u, r = torch.sigmoid(F.linear(torch.cat([e, s], -1), w)).chunk(2, -1)
    return (1 - u) * s + u * self.tx(e, r * self.state_norm(s))


def gates_hoisted(self, x_src, state=None):
    """RVM.unroll with W_e^u e_t and W_e^r e_t for every t computed before the loop."""
    core, (B, T, L, _) = self.core, x_src.shape
    s = self.init_state(B, L - 1) if state is None else state
    w_input = torch.cat([core.w_input_update.weight, core.w_input_reset.weight], 0)          # (2D, D)
    w_state = torch.cat([core.w_state_update.weight, core.w_state_reset.weight], 0)          # (2D, D)
    from_input = F.linear(x_src, w_input)                                                    # (B, T, L, 2D)
    outs = []
    for t in range(T):
        u, r = torch.sigmoid(from_input[:, t] + F.linear(s, w_state)).chunk(2, -1)
        s = (1 - u) * s + u * core.tx(x_src[:, t], r * core.state_norm(s))
        outs.append(s)
    return torch.stack(outs, dim=1), s


def attn_manual(self, x, context=None):
    """vit.Attention.forward with the attention written out."""
    B, L, D = x.shape
    context = x if context is None else context
    S, nh = context.shape[1], self.heads
    q = self.q(x).view(B, L, nh, D // nh).transpose(1, 2)
    k, v = self.kv(context).view(B, S, 2, nh, D // nh).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) * (D // nh) ** -0.5, dim=-1)
    return self.proj((weights @ v).transpose(1, 2).reshape(B, L, D))


# variant -> (the class, the method it replaces, the replacement, the methods it applies to)
VARIANTS = {"gates_fused": (rvm.GatedTransformerCore, "forward", gates_fused, ["rvm"]),
            "gates_hoisted": (rvm.RVM, "unroll", gates_hoisted, ["rvm"]),
            "attn_manual": (vit.Attention, "forward", attn_manual, list(methods.MODELS))}


def make_step(name, cfg, batch, variant):
    """A training step of a fresh model (seed 0) with `variant` (None = the code as it is) patched in for its call."""
    torch.manual_seed(0)
    model = methods.MODELS[name](cfg)
    optimizer = torch.optim.AdamW(methods.param_groups(model, cfg.weight_decay), lr=1e-4, betas=cfg.betas, fused=True)
    cls, attr, fn, _ = VARIANTS[variant] if variant else (None, None, None, None)

    def step():
        real = getattr(cls, attr) if cls else None
        if cls:
            setattr(cls, attr, fn)
        try:
            loss = model(batch)["loss"]
            loss.backward()
        finally:
            if cls:
                setattr(cls, attr, real)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()
    return step


def compare(name, steps, batch_size=8, warmup=3, cfg=None):
    """-> {variant (None = base): (first step's loss, median ms per step)} for the variants that apply to `name`."""
    cfg = cfg or methods.build_config(name, "tiny", [])
    batch = bench.make_batch(name, cfg, batch_size, torch.device("cpu"))
    kinds = [None] + [v for v, (*_, names) in VARIANTS.items() if name in names]
    run = {v: make_step(name, cfg, batch, v) for v in kinds}
    first = {v: run[v]() for v in kinds}
    for _ in range(warmup):
        for v in kinds:
            run[v]()
    times = {v: [] for v in kinds}
    for _ in range(steps):
        for v in kinds:
            t0 = time.perf_counter()
            run[v]()
            times[v].append(time.perf_counter() - t0)
    return {v: (first[v], 1e3 * statistics.median(times[v]) if times[v] else float("nan")) for v in kinds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", action="append", choices=list(methods.MODELS), help="default: all four")
    p.add_argument("--steps", type=int, default=25, help="timed steps of each variant (default 25)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1; got {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, tiny preset, batch 8, fp32")
    print("| method | variant | first loss | ms/step | vs base |\n|---|---|---|---|---|")
    for name in args.method or list(methods.MODELS):
        rows = compare(name, args.steps)
        base = rows[None][1]
        for v, (loss, ms) in rows.items():
            print(f"| {name} | {v or 'base'} | {loss:.6f} | {ms:.1f} | {ms / base - 1:+.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
