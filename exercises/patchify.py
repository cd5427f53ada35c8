"""Exercise: patchify / unpatchify (MAE Sec. 3, ViT Sec. 3.1).

Goal: cut a batch of images into non-overlapping p x p patches, one flat
vector per patch (a token), and put them back. Every method here reconstructs
patches in this layout, so the order of the numbers inside a token matters: it
must match MAE's, (row in patch, column in patch, channel).

Time: 20 min.  Check: python exercises/check.py patchify
Reference (read it after): vit.patchify, vit.unpatchify.
"""
import torch


def patchify(x, p):
    """x (B, 3, H, W), H and W divisible by p -> tokens (B, N, p*p*3), N = (H/p) * (W/p).

    Tokens in row-major order of the patch grid (token 1 is the patch right of
    token 0). Inside a token: tokens[b, n].reshape(p, p, 3)[i, j, c] is pixel
    (i, j) of the patch in channel c.

    Hint: reshape to (B, 3, h, p, w, p), permute, reshape.
    """
    raise NotImplementedError("patchify")


def unpatchify(tokens, p, h, w):
    """tokens (B, h*w, p*p*3) -> images (B, 3, h*p, w*p), the exact inverse of patchify."""
    raise NotImplementedError("unpatchify")
