"""Exercise: SIGMA's swapped-prediction loss (SIGMA Sec. 3.3, Eq. 5-7).

Goal: each branch predicts the other's cluster assignment. phi (the projection
network) and Psi (the video model) score the same masked tubes against the K
prototypes: s_phi, s_psi (M, K). Sinkhorn turned them into targets q_phi, q_psi
(M, K). Then
    p(s) = softmax(s / tau) over the K prototypes                  (Eq. 6)
    CE(s, q) = -sum_k q_k log p(s)_k, averaged over the M tubes    (Eq. 5)
    L = CE(s_phi, q_psi) + CE(s_psi, q_phi)                        (Eq. 7)
phi predicts Psi's clusters, and Psi predicts phi's.

Time: 15 min.  Check: python exercises/check.py swapped_prediction
Reference (read it after): sigma.swapped_prediction, called in sigma.SIGMA.loss.
"""
import torch
import torch.nn.functional as F


def swapped_prediction(s_phi, s_psi, q_phi, q_psi, temperature):
    """s_phi, s_psi (M, K) scores; q_phi, q_psi (M, K) targets (rows sum to 1, no
    gradient) -> (ce_phi, ce_psi): the two terms of Eq. 7, CE(s_phi, q_psi) and
    CE(s_psi, q_phi), each a scalar.

    Hint: F.log_softmax is the stable log p; over which dimension?
    """
    raise NotImplementedError("swapped_prediction")
