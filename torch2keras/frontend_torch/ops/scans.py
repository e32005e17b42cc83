"""Sorting, order statistics and scans: sort, top-k, kthvalue, median, mode, cumsum, cumprod,
cummax/cummin, logcumsumexp."""

from __future__ import annotations

import numpy as np

from ...ir import Value
from ..registry import LoweringContext, lowering
from .common import aten, binary, norm_axis, permute, slice_

_PICK_OPS = ("slice", "dynamic_slice")  # _pick (an axis of run-time size slices at run time)
_MEDIAN_OPS = ("sort", "isnan", "where", "gather", "reduce", "logical_not", "sub", "floor_divide",
               "maximum") + _PICK_OPS  # _median


def reduce(ctx, kind: str, x: Value, axes, keepdim: bool) -> Value:
    """A reduction in x's own dtype (reduction.reduce would cast to the call's result dtype)."""
    return ctx.emit("reduce", [x], kind=kind, axes=list(axes), keepdim=bool(keepdim))


def _rank1(ctx, x: Value) -> tuple[Value, bool]:
    return (ctx.reshape(x, [1]), True) if x.type.rank == 0 else (x, False)


def sort(ctx: LoweringContext, x: Value, dim: int = -1, descending: bool = False) -> tuple[Value, Value]:
    x, scalar = _rank1(ctx, x)
    values, indices = ctx.emit("sort", [x], axis=norm_axis(dim, x.type.rank), descending=bool(descending))
    if scalar:
        return ctx.reshape(values, []), ctx.reshape(indices, [])
    return values, indices


@lowering(aten.sort.default, emits=("sort",))
def lower_sort(ctx, x, dim=-1, descending=False):
    return sort(ctx, x, dim, descending)


@lowering(aten.sort.stable, emits=("sort",))
def lower_sort_stable(ctx, x, *, stable=None, dim=-1, descending=False):
    return sort(ctx, x, dim, descending)


@lowering(aten.topk.default, emits=("topk", "permute"))
def lower_topk(ctx, x, k, dim=-1, largest=True, sorted=True):
    if x.type.rank == 0:
        return x, ctx.const(0, "i64")
    axis = norm_axis(dim, x.type.rank)
    if axis == x.type.rank - 1:
        return ctx.emit("topk", [x], k=k, axis=axis, largest=bool(largest))
    perm = [a for a in range(x.type.rank) if a != axis] + [axis]  # top-k runs along the last axis: there and back
    back = [perm.index(a) for a in range(x.type.rank)]
    values, indices = ctx.emit("topk", [permute(ctx, x, perm)], k=k, axis=-1, largest=bool(largest))
    return permute(ctx, values, back), permute(ctx, indices, back)


# ----------------------------------------------------------------------------- order statistics


def _pick(ctx, values: Value, indices: Value, axis: int, k: int, keepdim: bool) -> tuple[Value, Value]:
    """Element k along axis of (values, indices), keeping or dropping the axis."""
    v, i = slice_(ctx, values, axis, k, k + 1), slice_(ctx, indices, axis, k, k + 1)
    if not keepdim:
        shape = [d for a, d in enumerate(values.type.shape) if a != axis]
        v, i = ctx.reshape(v, shape), ctx.reshape(i, shape)
    return v, i


@lowering(aten.kthvalue.default, emits=("sort",) + _PICK_OPS)
def lower_kthvalue(ctx, x, k, dim=-1, keepdim=False):
    if x.type.rank == 0:
        return x, ctx.const(np.int64(0), "i64")
    axis = norm_axis(dim, x.type.rank)
    values, indices = sort(ctx, x, axis)
    return _pick(ctx, values, indices, axis, k - 1, keepdim)


def _median(ctx, x: Value, axis: int, keepdim: bool, ignore_nan: bool) -> tuple[Value, Value]:
    """The lower median along axis (torch's): sort, then take element (n - 1) // 2 -- of the
    non-NaN elements for nanmedian; a NaN anywhere makes median's result NaN (as torch's)."""
    n = x.type.shape[axis]
    floating = x.type.dtype in ("f16", "bf16", "f32", "f64")
    if not floating:
        values, indices = sort(ctx, x, axis)
        return _pick(ctx, values, indices, axis, (n - 1) // 2, keepdim)
    nan = ctx.emit("isnan", [x])
    key = ctx.emit("where", [nan, ctx.const(np.inf, x.type.dtype), x])  # NaNs sort last
    _, order = sort(ctx, key, axis)
    values = ctx.emit("gather", [x, order], axis=axis)
    if ignore_nan:
        count = reduce(ctx, "sum", ctx.cast(ctx.emit("logical_not", [nan]), "i64"), [axis], True)
        k = binary(ctx, "floor_divide", binary(ctx, "sub", count, 1, "i64"), 2, "i64")
        k = binary(ctx, "maximum", k, 0, "i64")
        v = ctx.emit("gather", [values, k], axis=axis)
        i = ctx.emit("gather", [order, k], axis=axis)
        if not keepdim:
            shape = [d for a, d in enumerate(x.type.shape) if a != axis]
            v, i = ctx.reshape(v, shape), ctx.reshape(i, shape)
        return v, i
    v, i = _pick(ctx, values, order, axis, (n - 1) // 2, keepdim)
    any_nan = ctx.emit("reduce", [nan], kind="any", axes=[axis], keepdim=bool(keepdim))
    return ctx.emit("where", [any_nan, ctx.const(np.nan, x.type.dtype), v]), i


@lowering(aten.median.default, aten.nanmedian.default, emits=_MEDIAN_OPS)
def lower_median_all(ctx, x):
    flat = ctx.reshape(x, [max(x.type.numel, 1)])
    v, _ = _median(ctx, flat, 0, False, "nanmedian" in ctx.loc.op)
    return v


@lowering(aten.median.dim, aten.nanmedian.dim, emits=_MEDIAN_OPS)
def lower_median_dim(ctx, x, dim=-1, keepdim=False):
    if x.type.rank == 0:
        return x, ctx.const(np.int64(0), "i64")
    return _median(ctx, x, norm_axis(dim, x.type.rank), keepdim, "nanmedian" in ctx.loc.op)


@lowering(aten.mode.default, emits=("sort", "eq", "reduce", "where", "add", "sub", "gather"))
def lower_mode(ctx, x, dim=-1, keepdim=False):
    """The most frequent value along dim (the smallest on ties) and the index of its last
    occurrence, from pairwise equality counts."""
    if x.type.rank == 0:
        return x, ctx.const(np.int64(0), "i64")
    axis = norm_axis(dim, x.type.rank)
    n = x.type.shape[axis]
    values, order = sort(ctx, x, axis)
    a = ctx.reshape(values, list(values.type.shape[:axis + 1]) + [1] + list(values.type.shape[axis + 1:]))
    b = ctx.reshape(values, list(values.type.shape[:axis]) + [1] + list(values.type.shape[axis:]))
    counts = reduce(ctx, "sum", ctx.cast(ctx.emit("eq", [a, b]), "i64"), [axis + 1], False)  # per sorted element
    # the first sorted position with the largest count is the smallest most frequent value; the
    # last sorted position of that value is its last occurrence (the sort is stable)
    best = reduce(ctx, "max", counts, [axis], True)
    pos = ctx.const(np.arange(n, dtype=np.int64).reshape([n] + [1] * (x.type.rank - axis - 1)), "i64")
    first = reduce(ctx, "min", ctx.emit("where", [ctx.emit("eq", [counts, best]), pos,
                                                   ctx.const(np.int64(n), "i64")]), [axis], True)
    last = binary(ctx, "sub", ctx.emit("add", [first, best]), 1, "i64")
    v = ctx.emit("gather", [values, first], axis=axis)
    i = ctx.emit("gather", [order, last], axis=axis)
    if not keepdim:
        shape = [d for k, d in enumerate(x.type.shape) if k != axis]
        v, i = ctx.reshape(v, shape), ctx.reshape(i, shape)
    return v, i


# ----------------------------------------------------------------------------- scans


@lowering(aten.cumsum.default, emits=("cumsum",))
def lower_cumsum(ctx, x, dim, *, dtype=None):
    if x.type.rank == 0:
        return ctx.cast(x, ctx.out_dtype)
    return ctx.emit("cumsum", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


@lowering(aten.cumprod.default, emits=("cumulative",))
def lower_cumprod(ctx, x, dim, *, dtype=None):
    x, scalar = _rank1(ctx, ctx.cast(x, ctx.out_dtype))
    out = ctx.emit("cumulative", [x], axis=norm_axis(dim, x.type.rank), kind="prod")
    return ctx.reshape(out, []) if scalar else out


@lowering(aten.logcumsumexp.default, emits=("cumulative",))
def lower_logcumsumexp(ctx, x, dim):
    x, scalar = _rank1(ctx, ctx.cast(x, ctx.out_dtype))
    out = ctx.emit("cumulative", [x], axis=norm_axis(dim, x.type.rank), kind="logsumexp")
    return ctx.reshape(out, []) if scalar else out


@lowering(aten.cummax.default, aten.cummin.default, emits=("cumulative_extreme",))
def lower_cummax(ctx, x, dim):
    kind = "max" if "cummax" in ctx.loc.op else "min"
    x, scalar = _rank1(ctx, x)
    if x.type.dtype == "bool":
        v, i = ctx.emit("cumulative_extreme", [ctx.cast(x, "i32")], axis=norm_axis(dim, x.type.rank), kind=kind)
        v = ctx.cast(v, "bool")
    else:
        v, i = ctx.emit("cumulative_extreme", [x], axis=norm_axis(dim, x.type.rank), kind=kind)
    return (ctx.reshape(v, []), ctx.reshape(i, [])) if scalar else (v, i)
