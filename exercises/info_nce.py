"""Exercise: ViC-MAE's InfoNCE with in-batch negatives (ViC-MAE Sec. 3.2, Eq. 3).

Goal: pull the two frames of one video together and push every other frame of
the batch away. p_i and z_i are the l2-normalized embeddings of two frames of
video i (predictor and target head). Over the 2N embeddings [p; z] every one is
an anchor: its positive is its pair, and the other 2N - 2 are its negatives
("the other 2(N - 1) examples are treated as negative examples"):
    L(a) = -log exp(a . pos(a) / tau) / sum_{k != a} exp(a . e_k / tau)
where e_1..e_2N = [p; z] and the sum leaves out only the anchor itself (the
indicator 1[p_i != z_k] of Eq. 3). The loss is the mean over the 2N anchors
(the symmetric NT-Xent form of SimCLR).

Time: 25 min.  Check: python exercises/check.py info_nce
Then train ViC-MAE with your loss: python exercises/run.py info_nce
Reference (read it after): vicmae.info_nce.
"""
import torch
import torch.nn.functional as F


def info_nce(p, z, tau, gather=None, rank=0):
    """p, z (N, K) l2-normalized, row i of p and row i of z a positive pair;
    tau > 0 the temperature -> the scalar loss.

    gather and rank are for training on several processes (other processes'
    rows as more negatives); on one process gather is None and rank 0, and this
    exercise only asks for that case.

    Hint: one (2N, 2N) matrix of logits, the diagonal masked out with -inf,
    then F.cross_entropy with the index of each anchor's positive.
    """
    raise NotImplementedError("info_nce")
