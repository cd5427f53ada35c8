"""Exercise: ViC-MAE's global embedding, pooling and projection (ViC-MAE Sec. 3.2, Table 3b).

Goal: the bridge between ViC-MAE's two losses. The MAE branch gives local
features, one per visible patch token; the contrastive loss (Eq. 3) needs one
vector per frame. ViC-MAE pools the encoder's output tokens with a global
pooling operator Omega, passes the pooled vector through a head (the predictor
P for one view, the target T for the other) and l2-normalizes it:
    p_i = P(Omega(f(x_i))) / ||P(Omega(f(x_i)))||_2
The encoder's output starts with the [CLS] token, then the n visible patch
tokens; Omega pools the patch tokens only. Table 3b compares three operators:
    mean   the mean over the tokens (the paper's choice)
    max    the maximum over the tokens, per feature
    gem    generalized mean: (mean of x^p)^(1/p), with x clamped to >= 1e-6
           first (GeM is defined for non-negative features)

Time: 15 min.  Check: python exercises/check.py vicmae_pooling
Reference (read it after): vicmae.pool and vicmae.ViCMAE.heads.
"""
import torch


def global_embedding(x, head, kind="mean", p=3.0):
    """x (B, 1 + n, D): the encoder's output, [CLS] first; head: a module (B, D) -> (B, K);
    kind: "mean", "max" or "gem"; p: GeM's exponent -> (B, K), every row of unit length.

    Hint: three steps, in the order of the equation above.
    """
    raise NotImplementedError("global_embedding")
