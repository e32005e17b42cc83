"""Kernels of the indexing family: ``gather`` (along an axis), ``take`` (index_select and
embedding lookups of computed tables) and ``scatter_flat`` (scatter with a reduction)."""

from __future__ import annotations

import numpy as np
from keras import ops

from .elementwise import dtype_name, is_integer
from .registry import register

__all__: list[str] = []


def _gather(x, index, axis):
    """torch.gather: the index may be smaller than x on the other axes (it reads x's leading part
    there; take_along_axis would broadcast instead), so x is cut to the index's extent first."""
    axis = axis % len(x.shape)
    cut = tuple(slice(None) if k == axis or n is None or m == n else slice(0, n)
                for k, (m, n) in enumerate(zip(x.shape, index.shape)))
    if any(c != slice(None) for c in cut):
        x = x[cut]
    return ops.take_along_axis(x, ops.cast(index, "int32"), axis=axis)


def _take(x, index, axis):
    return ops.take(x, ops.cast(index, "int32"), axis=axis)


def _scatter_flat(x, index, src, reduce, include_self):
    shape = tuple(x.shape)
    if None in shape:  # (a dynamic batch: as many segments as x has elements at run time)
        shape = tuple(ops.shape(x))
        n = ops.prod(ops.convert_to_tensor(shape, "int32"))
    else:
        n = int(np.prod(shape)) if shape else 1
    xf = ops.reshape(x, (-1,))
    if tuple(src.shape) != tuple(index.shape):
        same = len(src.shape) == len(index.shape) and all(s is None or s == i for s, i in zip(src.shape, index.shape))
        # (a src of index's sizes, some known at run time only: its static shape; else broadcast)
        src = ops.reshape(src, tuple(index.shape)) if same and None not in index.shape else \
            ops.broadcast_to(src, tuple(index.shape))
    ids = ops.reshape(ops.cast(index, "int32"), (-1,))
    u = ops.reshape(ops.cast(src, x.dtype), (-1,))
    m = ids.shape[0] if ids.shape[0] is not None else ops.shape(ids)[0]  # (a dynamic count of updates)
    kind = dtype_name(x)
    work = "int32" if kind == "bool" else kind
    xw, uw = ops.cast(xf, work), ops.cast(u, work)
    count = ops.segment_sum(ops.ones((m,), "int32"), ids, num_segments=n)
    touched = count > 0
    if reduce == "none":
        last = ops.segment_max(ops.arange(m, dtype="int32"), ids, num_segments=n)
        out = ops.where(touched, ops.take(uw, ops.maximum(last, 0)), xw)
    elif reduce == "sum":
        s = ops.segment_sum(uw, ids, num_segments=n)
        out = xw + s if include_self else ops.where(touched, s, xw)
    elif reduce == "prod":
        s = ops.segment_prod(uw, ids, num_segments=n)
        out = xw * s if include_self else ops.where(touched, s, xw)
    elif reduce in ("amax", "amin"):
        seg, pick = (ops.segment_max, ops.maximum) if reduce == "amax" else (ops.segment_min, ops.minimum)
        s = seg(uw, ids, num_segments=n)
        out = ops.where(touched, pick(xw, s) if include_self else s, xw)
    elif reduce == "mean":
        s = ops.segment_sum(uw, ids, num_segments=n)
        c = count + (1 if include_self else 0)
        total = s + xw if include_self else s
        c = ops.cast(ops.maximum(c, 1), work)
        mean = ops.floor_divide(total, c) if is_integer(xw) else total / c
        out = ops.where(touched, mean, xw)
    else:
        raise ValueError(f"unknown scatter reduction {reduce!r}")
    return ops.reshape(ops.cast(out, kind), shape)


register({"gather": _gather, "take": _take, "scatter_flat": _scatter_flat})
