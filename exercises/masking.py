"""Exercise: MAE random masking (MAE Sec. 3; SiamMAE Sec. 3 "Asymmetric masking"; RVM Sec. 3.1).

Goal: hide a random `ratio` of the N patch tokens of each image, without
replacement, by sorting one random number per token, the way MAE does it, so
that the encoder sees only the kept tokens and the decoder can put every token
back in its place.

Time: 20 min.  Check: python exercises/check.py masking
Reference (read it after): vit.random_masking.
"""
import torch


def random_masking(noise, ratio):
    """noise (B, N): one uniform random number per token; ratio in [0, 1).

    Keep n = int(N * (1 - ratio) + 1e-6) tokens per row (the 1e-6: 100 * (1 - 0.9)
    is 9.999999999999998 in floating point, and MAE keeps 10): the n with the
    SMALLEST noise. Return
        ids_keep    (B, n) int64  the kept tokens, in order of increasing noise
        ids_restore (B, N) int64  the inverse of the sorting permutation: if
                                  x_shuffled = tokens in order of increasing noise,
                                  then x_shuffled[ids_restore] is the tokens in place
        mask        (B, N) float  1 for removed tokens, 0 for kept ones, in token order

    Hint: torch.argsort twice; the second argsort inverts the first.
    """
    raise NotImplementedError("random_masking")
