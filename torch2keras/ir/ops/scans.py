"""Sorting, top-k and running scans along one axis (cumsum, cumprod, logcumsumexp, cummax/cummin)."""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from .common import norm_axis, same
from .schema import define

FAMILY = "scans"


def _values_and_indices(types, a):
    x = types[0]
    norm_axis(a["axis"], x.rank)
    return [x.replace(layout=None), TensorType(x.shape, "i64")]


def _topk_type(types, a):
    x = types[0]
    ax = norm_axis(a["axis"], x.rank)
    shape = list(x.shape)
    shape[ax] = a["k"]
    return [TensorType(shape, x.dtype), TensorType(shape, "i64")]


def _sort(x, axis, descending):
    key = -x if descending and x.dtype != np.bool_ else (~x if descending else x)
    idx = np.argsort(key, axis=axis, kind="stable")
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


def _topk(x, k, axis, largest):
    values, idx = _sort(x, axis, descending=largest)
    return np.take(values, range(k), axis=axis), np.take(idx, range(k), axis=axis)


def _cumulative(x, axis, kind):
    if kind == "prod":
        return np.cumprod(x, axis=axis)
    if kind == "logsumexp":
        return np.logaddexp.accumulate(x, axis=axis)
    raise NotImplementedError(f"cumulative kind {kind!r}")


def _cumulative_extreme(x, axis, kind):
    """Running max/min and the index it was found at (the latest one on ties, as torch)."""
    moved = np.moveaxis(x, axis, 0)
    values, indices = np.empty_like(moved), np.empty(moved.shape, np.int64)
    best, where = moved[0], np.zeros(moved.shape[1:], np.int64)
    better = np.greater_equal if kind == "max" else np.less_equal
    for i in range(moved.shape[0]):
        take = better(moved[i], best) | (np.isnan(moved[i]) if moved.dtype.kind == "f" else False)
        best, where = np.where(take, moved[i], best), np.where(take, i, where)
        values[i], indices[i] = best, where
    return np.moveaxis(values, 0, axis), np.moveaxis(indices, 0, axis)


define("cumsum", FAMILY, ["x"], same, "axis", {"axis": ("int",)},
       reference=lambda x, axis: np.cumsum(x, axis=axis, dtype=x.dtype), tflite=("CUMSUM",))
define("cumulative", FAMILY, ["x"], same, "axis", {"axis": ("int",), "kind": ("str",)}, reference=_cumulative,
       tflite=("MUL", "CONCATENATION", "SELECT_V2"), doc="inclusive scan along `axis`; kind: prod | logsumexp")
define("cumulative_extreme", FAMILY, ["x"], _values_and_indices, "axis", {"axis": ("int",), "kind": ("str",)},
       num_outputs=2, reference=_cumulative_extreme,
       doc="running max/min along `axis` and the index where it was (the last one on ties, as torch)")
define("sort", FAMILY, ["x"], _values_and_indices, "axis", {"axis": ("int",), "descending": ("bool", False)},
       num_outputs=2, reference=_sort, tflite=("TOPK_V2",),
       doc="sorted values and their indices along `axis` (ties keep their order)")
define("topk", FAMILY, ["x"], _topk_type, "fixed", {"k": ("int",), "axis": ("int", -1), "largest": ("bool", True)},
       num_outputs=2, reference=_topk, tflite=("TOPK_V2",),
       delegate_notes={"all": {"TOPK_V2": "sort / take the top-k on the host from the model's output"}})
