"""Attention: scaled dot-product attention over the last two axes."""

from __future__ import annotations

import math

import numpy as np

from ..types import TensorType
from .schema import define

FAMILY = "attention"


def _sdpa_type(types, a):
    q, v = types[0], types[2]
    return [TensorType([*q.shape[:-1], v.shape[-1]], q.dtype)]


def _sdpa(q, k, v, mask=None, *, scale, is_causal):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.astype(np.float64) @ np.swapaxes(k, -1, -2)) * scale
    if is_causal:
        scores = scores + np.triu(np.full(scores.shape[-2:], -np.inf), 1)
    if mask is not None:
        scores = scores + mask
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return ((scores / scores.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)


define("sdpa", FAMILY, ["q", "k", "v", "mask?"], _sdpa_type, "fixed",
       {"scale": ("float", None), "is_causal": ("bool", False)}, reference=_sdpa, tflite=("BATCH_MATMUL", "SOFTMAX"),
       doc="softmax(q @ k^T * scale + mask) @ v over the last two axes")
