"""Exercise: SIGMA's Sinkhorn-Knopp (SIGMA Sec. 3.3, Eq. 3-4; SwAV Sec. 3.1).

Goal: turn the scores of B samples against K prototypes into soft cluster
assignments q that use every prototype equally over the batch (equipartition),
the entropy-regularised optimal transport of Eq. 3 with marginals r = 1/K for
the prototypes and c = 1/B for the samples (Eq. 4), solved by alternately
rescaling the prototypes' and the samples' total mass.

The algorithm (the official SIGMA / SwAV loop; epsilon = 1/lambda):
    Q = exp(scores / epsilon)                 (B, K)
    repeat n_iters times:
        divide each column (prototype) by its sum, then by K     (mass 1/K each)
        divide each row (sample) by its sum, then by B           (mass 1/B each)
    return Q with every row divided by its sum (each row sums to 1)
For numerical safety subtract the GLOBAL max of the scores before exp: a global
constant cancels in the first column step, a per-row one would not.

Time: 25 min.  Check: python exercises/check.py sinkhorn
Then train SIGMA with your Sinkhorn: python exercises/run.py sinkhorn
Reference (read it after): sigma.sinkhorn.
"""
import torch


def sinkhorn(scores, epsilon=0.05, n_iters=10):
    """scores (B, K) -> q (B, K), rows summing to 1, computed without gradient
    (wrap it in torch.no_grad() and work on scores.detach().float()).

    Hint: after many iterations every column of q sums to B / K.
    """
    raise NotImplementedError("sinkhorn")
