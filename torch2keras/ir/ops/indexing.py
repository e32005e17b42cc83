"""Indexing ops: gather, index_select, embedding lookup and scatter into a flattened tensor."""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from .common import norm_axis
from .schema import define

FAMILY = "indexing"


def _gather_type(types, a):
    x, idx = types
    return [TensorType(idx.shape, x.dtype)]


def _index_select_type(types, a):
    x, idx = types
    ax = norm_axis(a["axis"], x.rank)
    shape = list(x.shape[:ax]) + list(idx.shape) + list(x.shape[ax + 1:])
    return [TensorType(shape, x.dtype)]


def _embedding_type(types, a):
    w, idx = types
    return [TensorType([*idx.shape, w.shape[1]], w.dtype)]


def _scatter_flat(x, index, src, reduce, include_self):
    """Reference of ``scatter_flat`` (see its doc)."""
    out = np.array(x, copy=True).reshape(-1)
    idx, vals = np.asarray(index).reshape(-1), np.asarray(src).reshape(-1)
    if reduce == "none":
        for i, v in zip(idx, vals):
            out[i] = v
        return out.reshape(x.shape)
    hit = np.zeros(out.shape, bool)
    hit[idx] = True
    counts = np.zeros(out.shape, np.int64)
    np.add.at(counts, idx, 1)
    ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum, "amin": np.minimum}[reduce]
    acc = out.copy()
    if not include_self:
        acc[hit] = {"sum": 0, "mean": 0, "prod": 1}.get(reduce, 0)
        if reduce in ("amax", "amin"):
            first = {}
            for i, v in zip(idx, vals):
                first.setdefault(int(i), v)
            for i, v in first.items():
                acc[i] = v
    ufunc.at(acc, idx, vals)
    if reduce == "mean":
        divisor = counts + (1 if include_self else 0)
        acc = np.where(hit, acc / np.maximum(divisor, 1), acc)
        acc = acc.astype(out.dtype) if out.dtype.kind != "f" else acc
    return acc.astype(out.dtype).reshape(x.shape)


define("gather", FAMILY, ["x", "index"], _gather_type, "axis", {"axis": ("int",)},
       reference=lambda x, index, axis: np.take_along_axis(x, index.astype(np.int64), axis=axis),
       tflite=("GATHER_ND",),
       delegate_notes={"all": {"GATHER_ND": "replace advanced indexing with slices, or do it on the host"}},
       doc="torch.gather: out[i][j] = x[index[i][j]][j] along `axis` (index has x's rank)")
define("index_select", FAMILY, ["x", "index"], _index_select_type, "axis", {"axis": ("int",)},
       reference=lambda x, index, axis: np.take(x, index.astype(np.int64), axis=axis), tflite=("GATHER",),
       delegate_notes={"EdgeTPU": {"GATHER": "replace the gather with a slice or a one-hot matmul when the indices "
                                             "are fixed"}},
       doc="x[..., index, ...] along `axis`; keeps the rank for a 1-D index (the layout pass treats other "
           "index ranks as needing PyTorch order)")
define("embedding", FAMILY, ["w", "index"], _embedding_type, "fixed",
       reference=lambda w, index: np.take(w, index.astype(np.int64), axis=0), tflite=("GATHER",))
define("scatter_flat", FAMILY, ["x", "index", "src"], lambda t, a: [t[0].replace(layout=None)], "fixed",
       {"reduce": ("str", "none"), "include_self": ("bool", True)}, reference=_scatter_flat,
       tflite=("SCATTER_ND",),
       doc="x flattened, with element index[i] combined with src[i] (index and src of one shape; index "
           "counts in x's row-major order); reduce: none (the last write wins) | sum | prod | amax | amin | "
           "mean; include_self: whether x's own value takes part in the reduction")
