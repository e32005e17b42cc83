"""Normalisations: batch norm (inference), group norm and layer norm."""

from __future__ import annotations

import numpy as np

from .common import same
from .schema import define

FAMILY = "norm"


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm(x, mean, var, w=None, b=None, *, eps):
    out = (x - _per_channel(mean, x.ndim)) / np.sqrt(_per_channel(var, x.ndim) + eps)
    if w is not None:
        out = out * _per_channel(w, x.ndim)
    if b is not None:
        out = out + _per_channel(b, x.ndim)
    return out.astype(x.dtype)


def _group_norm(x, w=None, b=None, *, groups, eps):
    grouped = x.reshape(x.shape[0], groups, -1).astype(np.float64)
    mean = grouped.mean(axis=-1, keepdims=True)
    var = grouped.var(axis=-1, keepdims=True)
    out = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    if w is not None:
        out = out * _per_channel(w, x.ndim)
    if b is not None:
        out = out + _per_channel(b, x.ndim)
    return out.astype(x.dtype)


def _layer_norm(x, w=None, b=None, *, num_axes, eps):
    axes = tuple(range(x.ndim - num_axes, x.ndim))
    x64 = x.astype(np.float64)
    out = (x64 - x64.mean(axis=axes, keepdims=True)) / np.sqrt(x64.var(axis=axes, keepdims=True) + eps)
    if w is not None:
        out = out * w
    if b is not None:
        out = out + b
    return out.astype(x.dtype)


define("batch_norm", FAMILY, ["x", "mean", "var", "w?", "b?"], same, "channel", {"eps": ("float", 1e-5)},
       reference=_batch_norm)
define("group_norm", FAMILY, ["x", "w?", "b?"], same, "channel", {"groups": ("int",), "eps": ("float", 1e-5)},
       reference=_group_norm)
define("layer_norm", FAMILY, ["x", "w?", "b?"], same, "last_axis", {"num_axes": ("int",), "eps": ("float", 1e-5)},
       reference=_layer_norm,
       doc="normalizes over the last `num_axes` axes")
