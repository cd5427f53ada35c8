"""Exercise: the noise-square IoU (RVM Sec. 4.4, Fig. 6), the suite's motion metric.

Goal: score how well a model's features separate the moving white-noise square
from the background. Cluster the features of every token of every frame of one
video into K = 2 groups with k-means, match the two clusters to {background,
square} once for the whole video (the assignment with the most agreeing
tokens, since cluster ids are arbitrary), and report the IoU of the square per
frame.

Time: 25 min.  Check: python exercises/check.py square_iou
Reference (read it after): metrics.square_iou (used by evaluate.py).
"""
import torch

import metrics


def square_iou(feats, square, seed=0):
    """feats (T, h, w, D): one video's features on the token grid; square (T, h, w)
    bool: the square's tokens -> (pred (T, h, w) bool, iou (T,) float64).

    1. labels = metrics.kmeans(feats.reshape(-1, D), 2, seed=seed)[0]  (use this
       call as it is, so your clusters are the reference's)
    2. pick which cluster is the square: the choice under which more tokens of
       the whole video agree with `square`; pred = tokens of that cluster
    3. per frame t: |pred_t & square_t| / |pred_t | square_t|, and 1.0 where
       both are empty.
    """
    raise NotImplementedError("square_iou")
