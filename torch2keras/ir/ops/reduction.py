"""Reductions over axes (sum, mean, max, ..., argmax, variance) and softmax / log-softmax.

The axes are logical; the backend maps them through the input's layout. Rule ``reduction``: the
result keeps the input's layout with the reduced axes dropped; softmax keeps it whole (``axis``).
"""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from .common import norm_axis, same
from .schema import define

FAMILY = "reduction"


def _reduce_type(types, a):
    t = types[0]
    axes = {norm_axis(x, t.rank) for x in (a["axes"] if a["axes"] is not None else range(t.rank))}
    shape = [1 if i in axes else d for i, d in enumerate(t.shape) if a["keepdim"] or i not in axes]
    dtype = "bool" if a.get("kind") in ("any", "all") else t.dtype
    if a.get("kind") in ("argmax", "argmin"):
        dtype = "i64"
    return [TensorType(shape, dtype)]


_REDUCERS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod, "any": np.any,
             "all": np.all}


def _axes(x: np.ndarray, axes) -> tuple:
    return tuple(range(x.ndim)) if axes is None else tuple(a % max(x.ndim, 1) for a in axes)


def _reduce(x, kind, axes, keepdim):
    return _REDUCERS[kind](x, axis=_axes(x, axes), keepdims=keepdim)


def _argreduce(x, kind, axes, keepdim):
    fn = np.argmax if kind == "argmax" else np.argmin
    return fn(x, axis=axes[0], keepdims=keepdim).astype(np.int64)


def _var(x, axes, correction, keepdim):
    axes = _axes(x, axes)
    n = int(np.prod([x.shape[a] for a in axes]))
    return np.var(x, axis=axes, keepdims=keepdim) * (n / max(n - correction, 1e-12))


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


define("reduce", FAMILY, ["x"], _reduce_type, "reduction",
       {"kind": ("str",), "axes": ("ints", None), "keepdim": ("bool", False)}, reference=_reduce,
       tflite=("SUM", "MEAN", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"),
       doc="kind: sum | mean | max | min | prod | any | all")
define("argreduce", FAMILY, ["x"], _reduce_type, "reduction",
       {"kind": ("str",), "axes": ("ints",), "keepdim": ("bool", False)}, reference=_argreduce,
       tflite=("ARG_MAX", "ARG_MIN"), doc="kind: argmax | argmin",
       delegate_notes={"all": {"ARG_MAX": "take the argmax on the host from the model's scores (return the logits "
                                          "instead)",
                               "ARG_MIN": "take the argmin on the host from the model's output"}})
define("var", FAMILY, ["x"], _reduce_type, "reduction",
       {"axes": ("ints", None), "correction": ("float", 1.0), "keepdim": ("bool", False)}, reference=_var)
define("softmax", FAMILY, ["x"], same, "axis", {"axis": ("int",)}, reference=_softmax, tflite=("SOFTMAX",))
define("log_softmax", FAMILY, ["x"], same, "axis", {"axis": ("int",)}, reference=_log_softmax,
       tflite=("LOG_SOFTMAX",))
