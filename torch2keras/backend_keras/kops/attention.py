"""Kernels of the attention family: scaled dot-product attention (``sdpa``)."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from .registry import register

__all__: list[str] = []


def _causal_mask(q, k):
    """0 where key j <= query i, -inf above the diagonal, for run-time lengths of q and k."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        arange = tf.range
    else:
        arange = ops.arange
    rows = ops.expand_dims(arange(ops.shape(q)[-2]), -1)
    cols = ops.expand_dims(arange(ops.shape(k)[-2]), 0)
    return ops.where(cols > rows, float("-inf"), 0.0)


def _sdpa(q, k, v, mask=None, scale=None, is_causal=False):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * scale
    if is_causal:
        lq, lk = q.shape[-2], k.shape[-2]
        if lq is None or lk is None:  # run-time lengths
            causal = _causal_mask(q, k)
        else:
            causal = np.triu(np.full((lq, lk), -np.inf, np.float32), 1)
        scores = scores + causal
    if mask is not None:
        scores = scores + mask
    return ops.matmul(ops.softmax(scores, axis=-1), v)


register({"sdpa": _sdpa})
