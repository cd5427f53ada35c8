"""Exercise: SiamMAE's cross-self decoder block (SiamMAE Sec. 3 "Decoder", Table 2b).

Goal: the block that lets the masked future frame f2 read the past frame f1.
"Each decoder block consists of a cross-attention layer and a self-attention
layer. The tokens from f2 attend to the tokens from f1 via the cross-attention
layer and then attend to each other via the self-attention layer." The
cross-attention plays the part of the affinity matrix of correspondence
learning: which patch of f1 went where in f2.

The block is pre-norm, with a residual around every layer, in this order:
    x = x + CrossAttn(q = LN_q(x), kv = LN_kv(ctx))
    x = x + MLP(LN_2(x))
    x = x + SelfAttn(LN_3(x))
x: f2's decoder tokens (B, L, D); ctx: f1's decoder tokens (B, S, D).

Time: 15 min.  Check: python exercises/check.py decoder_block
Reference (read it after): vit.CrossBlock.forward, used by siammae.SiamMAE.decode.
"""


def cross_self_block(x, ctx, block):
    """x (B, L, D), ctx (B, S, D), block a vit.CrossBlock -> (B, L, D).

    Use the block's layers: block.norm_q, block.norm_kv, block.norm2, block.norm3
    (LayerNorms), block.cross and block.attn (vit.Attention: attn(q_tokens) is
    self-attention, attn(q_tokens, kv_tokens) attends from q to kv), block.mlp.

    Hint: three residual lines; only the first one reads ctx.
    """
    raise NotImplementedError("cross_self_block")
