"""Exercise: label propagation by feature affinity (SiamMAE Sec. 4 and App. A; RVM Sec. 4).

Goal: the video object segmentation probe of SiamMAE and RVM (the protocol of
CRW and DINO on DAVIS). Given the first frame's labels, carry them through the
video: every token of frame t takes the labels of the context tokens whose
features are most similar to its own.

For every frame t = 1..T-1:
  * l2-normalize the features;
  * the context frames: frame 0 (its given labels) and the last n_context
    frames before t, frames max(1, t - n_context) .. t-1 (their predicted labels);
  * a token may only look at context tokens within `radius` rows and columns
    of its own position (metrics.neighbourhood(h, w, radius) gives that (N, N)
    mask, tokens in row-major order);
  * it keeps its topk most similar (cosine) context tokens and averages their
    labels with weights softmax(cosine / temperature) over those topk.

Time: 45 min.  Check: python exercises/check.py label_propagation
Reference (read it after): metrics.label_propagation (used by evaluate.py).
"""
import torch
import torch.nn.functional as F

import metrics


def label_propagation(feats, first_labels, n_context=20, radius=3, topk=7, temperature=0.7):
    """feats (T, h, w, D); first_labels (h, w, C) soft labels of frame 0 ->
    (T, h, w, C) soft labels of every frame, frame 0 = first_labels.

    Hint: out-of-reach context tokens get similarity -inf before the top-k, so
    their softmax weight is 0.
    """
    raise NotImplementedError("label_propagation")
