"""Reductions: sum/mean/max/min/prod/any/all, arg-reductions, variance, softmax, vector norms and
distances, bucketing and histograms."""

from __future__ import annotations

import builtins
from typing import Optional

import numpy as np

from ...ir import Value
from ..registry import LoweringContext, lowering
from .common import aten, binary, norm_axes, norm_axis, numel, slice_, vector_norm_last

_NORM_OPS = ("abs", "reduce", "ne", "sqrt", "mul", "pow")  # vector_norm_last
# what the histogram helpers emit: the range (min/max of the data where not given), bin edges
# (torch's linspace), bin positions (counts of edges below), one-hot counts
_HISTOGRAM_OPS = ("reduce", "eq", "where", "sub", "add", "div", "mul", "trunc", "minimum", "slice", "le", "ge",
                  "logical_and")


def reduce(ctx: LoweringContext, kind: str, x: Value, dim, keepdim: bool, dtype=None) -> Value:
    rank = x.type.rank
    if rank == 0:  # reducing a single element
        return ctx.cast(x, ctx.out_dtype)
    axes = None if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0) else \
        norm_axes([dim] if isinstance(dim, int) else dim, rank)
    if kind in ("sum", "mean", "prod"):
        x = ctx.cast(x, ctx.out_dtype)
    out = ctx.emit("reduce", [x], kind=kind, axes=axes, keepdim=bool(keepdim))
    return ctx.cast(out, ctx.out_dtype)


def _reduction(kind):
    def lower_reduction(ctx, x, dim=None, keepdim=False, *, dtype=None):
        return reduce(ctx, kind, x, dim, keepdim)

    lower_reduction.__name__ = f"lower_{kind}"
    return lower_reduction


lowering(aten.sum.dim_IntList, emits=("reduce",))(_reduction("sum"))
lowering(aten.mean.dim, emits=("reduce",))(_reduction("mean"))
lowering(aten.amax.default, emits=("reduce",))(_reduction("max"))
lowering(aten.amin.default, emits=("reduce",))(_reduction("min"))
lowering(aten.any.dim, aten.any.dims, emits=("reduce",))(_reduction("any"))
lowering(aten.all.dim, aten.all.dims, emits=("reduce",))(_reduction("all"))
lowering(aten.prod.dim_int, emits=("reduce",))(_reduction("prod"))


@lowering(aten.sum.default, aten.mean.default, aten.max.default, aten.min.default, aten.prod.default,
          aten.any.default, aten.all.default, emits=("reduce",))
def lower_full_reduction(ctx, x, *, dtype=None):
    kind = ctx.loc.op.split(".")[1]
    return reduce(ctx, kind, x, None, False)


@lowering(aten.max.dim, aten.min.dim, emits=("reduce", "argreduce"))
def lower_max_dim(ctx, x, dim, keepdim=False):
    kind = ctx.loc.op.split(".")[1]
    if x.type.rank == 0:
        return x, ctx.const(0, "i64")
    values = reduce(ctx, kind, x, dim, keepdim)
    indices = ctx.emit("argreduce", [x], kind=f"arg{kind}", axes=[norm_axis(dim, x.type.rank)], keepdim=bool(keepdim))
    return values, indices


@lowering(aten.argmax.default, aten.argmin.default, emits=("argreduce",))
def lower_argmax(ctx, x, dim=None, keepdim=False):
    kind = ctx.loc.op.split(".")[1]
    if x.type.rank == 0:
        return ctx.const(0, "i64")
    if dim is None:
        x = ctx.reshape(x, [x.type.numel])
        out = ctx.emit("argreduce", [x], kind=kind, axes=[0], keepdim=False)
        return ctx.reshape(out, ctx.out_type.shape)
    return ctx.emit("argreduce", [x], kind=kind, axes=[norm_axis(dim, x.type.rank)], keepdim=bool(keepdim))


@lowering(aten.var.correction, aten.var.dim, aten.std.correction, aten.std.dim, emits=("var", "sqrt"))
def lower_var(ctx, x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if "correction" not in ctx.loc.op:
        correction = 1.0 if unbiased in (None, True) else 0.0
    correction = 1.0 if correction is None else float(correction)
    axes = None if dim is None or len(dim) == 0 else norm_axes(dim, x.type.rank)
    out = ctx.emit("var", [x], axes=axes, correction=correction, keepdim=bool(keepdim))
    return ctx.emit("sqrt", [out]) if ".std." in f".{ctx.loc.op}." or "aten.std" in ctx.loc.op else out


@lowering(aten.var_mean.correction, aten.var_mean.dim, emits=("var", "reduce"))
def lower_var_mean(ctx, x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if "correction" not in ctx.loc.op:
        correction = 1.0 if unbiased in (None, True) else 0.0
    correction = 1.0 if correction is None else float(correction)
    axes = None if dim is None or len(dim) == 0 else norm_axes(dim, x.type.rank)
    var = ctx.emit("var", [x], axes=axes, correction=correction, keepdim=bool(keepdim))
    mean = ctx.emit("reduce", [x], kind="mean", axes=axes, keepdim=bool(keepdim))
    return var, mean


# ----------------------------------------------------------------------------- softmax


@lowering(aten.softmax.int, keep_whole=True, emits=("softmax",))
@lowering(aten._softmax.default, emits=("softmax",))
def lower_softmax(ctx, x, dim, half_to_float=None):
    if x.type.rank == 0:
        return ctx.reshape(lower_softmax(ctx, ctx.reshape(x, [1]), 0), [])
    return ctx.emit("softmax", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


@lowering(aten.log_softmax.int, keep_whole=True, emits=("log_softmax",))
@lowering(aten._log_softmax.default, emits=("log_softmax",))
def lower_log_softmax(ctx, x, dim, half_to_float=None):
    if x.type.rank == 0:
        return ctx.reshape(lower_log_softmax(ctx, ctx.reshape(x, [1]), 0), [])
    return ctx.emit("log_softmax", [ctx.cast(x, ctx.out_dtype)], axis=norm_axis(dim, x.type.rank))


# ----------------------------------------------------------------------------- norms and distances


@lowering(aten.linalg_vector_norm.default, emits=_NORM_OPS)
def lower_vector_norm(ctx, x, ord=2, dim=None, keepdim=False, *, dtype=None):
    out_dtype = ctx.out_dtype
    x = ctx.cast(x, out_dtype)
    axes = None if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0) else \
        norm_axes([dim] if isinstance(dim, int) else dim, max(x.type.rank, 1))
    if x.type.rank == 0:
        x = ctx.reshape(x, [1])
        axes = [0] if axes is not None else None
    mag = ctx.emit("abs", [x])
    keepdim = bool(keepdim) and ctx.out_type.rank > 0

    def red(kind, v):
        out = ctx.emit("reduce", [v], kind=kind, axes=axes, keepdim=keepdim)
        return ctx.reshape(out, ctx.out_type.shape)

    if ord == float("inf"):
        return red("max", mag)
    if ord == float("-inf"):
        return red("min", mag)
    if ord == 0:
        return red("sum", ctx.cast(binary(ctx, "ne", x, 0.0, out_dtype), out_dtype))
    if ord == 1:
        return red("sum", mag)
    if ord == 2:
        return ctx.emit("sqrt", [red("sum", ctx.emit("mul", [mag, mag]))])
    powered = binary(ctx, "pow", mag, float(ord), out_dtype)
    return binary(ctx, "pow", red("sum", powered), 1.0 / float(ord), out_dtype)


@lowering(aten._cdist_forward.default, emits=("sub",) + _NORM_OPS)
def lower_cdist(ctx, x1, x2, p, compute_mode=None):
    """||x1[..., i, :] - x2[..., j, :]||_p for every pair (i, j)."""
    a = ctx.reshape(x1, list(x1.type.shape[:-1]) + [1, x1.type.shape[-1]])
    b = ctx.reshape(x2, list(x2.type.shape[:-2]) + [1] + list(x2.type.shape[-2:]))
    return vector_norm_last(ctx, ctx.emit("sub", [a, b]), float(p))


@lowering(aten._pdist_forward.default, emits=("index_select", "sub") + _NORM_OPS)
def lower_pdist(ctx, x, p=2.0):
    """||x[i] - x[j]||_p for the pairs i < j, in row-major order."""
    n = x.type.shape[0]
    i, j = np.triu_indices(n, 1)
    a = ctx.emit("index_select", [x, ctx.const(i.astype(np.int64), "i64")], axis=0)
    b = ctx.emit("index_select", [x, ctx.const(j.astype(np.int64), "i64")], axis=0)
    return vector_norm_last(ctx, ctx.emit("sub", [a, b]), float(p))


@lowering(aten.dist.default, emits=("sub",) + _NORM_OPS)
def lower_dist(ctx, x, other, p=2):
    diff = ctx.emit("sub", [ctx.cast(x, ctx.out_dtype), ctx.cast(other, ctx.out_dtype)])
    flat = ctx.reshape(diff, [1, diff.type.numel])
    return ctx.reshape(vector_norm_last(ctx, flat, float(p)), [])


# ----------------------------------------------------------------------------- bucketing and histograms


def _count_below(ctx, values: Value, edges: Value, inclusive: bool, dtype: str) -> Value:
    """For each value, how many of the (sorted) edges along the last axis are < value (<= when
    inclusive), with the edges broadcast against the values' leading axes."""
    v = ctx.reshape(values, list(values.type.shape) + [1])
    if edges.type.rank > 1:  # one sorted row per leading index: [..., 1, E] against [..., V, 1]
        edges = ctx.reshape(edges, list(edges.type.shape[:-1]) + [1, edges.type.shape[-1]])
    hit = ctx.emit("le" if inclusive else "lt", [edges, v])
    return ctx.emit("reduce", [ctx.cast(hit, dtype)], kind="sum", axes=[v.type.rank - 1], keepdim=False)


@lowering(aten.bucketize.Tensor, emits=("le", "lt", "reduce"))
def lower_bucketize(ctx, x, boundaries, *, out_int32=False, right=False):
    return _count_below(ctx, x, boundaries, bool(right), "i32" if out_int32 else "i64")


@lowering(aten.searchsorted.Tensor, emits=("gather", "le", "lt", "reduce"))
def lower_searchsorted(ctx, sorted_sequence, x, *, out_int32=False, right=False, side=None, sorter=None):
    if sorter is not None:
        sorted_sequence = ctx.emit("gather", [sorted_sequence, sorter], axis=sorted_sequence.type.rank - 1)
    inclusive = bool(right) or side == "right"
    return _count_below(ctx, x, sorted_sequence, inclusive, "i32" if out_int32 else "i64")


def _range(ctx, x: Value, low, high, widen: float) -> tuple[Value, Value]:
    """torch's histogram range: the given one, else the data's min and max (widened when equal)."""
    dtype = x.type.dtype
    if low != high:
        return ctx.const(float(low), dtype), ctx.const(float(high), dtype)
    lo = ctx.emit("reduce", [x], kind="min", axes=None, keepdim=False)
    hi = ctx.emit("reduce", [x], kind="max", axes=None, keepdim=False)
    same = ctx.emit("eq", [lo, hi])
    lo = ctx.emit("where", [same, binary(ctx, "sub", lo, widen, dtype), lo])
    hi = ctx.emit("where", [same, binary(ctx, "add", hi, widen, dtype), hi])
    return lo, hi


def _one_hot_counts(ctx, pos: Value, keep: Value, bins: int, weight: Optional[Value], dtype: str) -> Value:
    flat_pos = ctx.reshape(pos, [pos.type.numel, 1])
    hit = ctx.emit("logical_and", [ctx.emit("eq", [flat_pos, ctx.const(np.arange(bins, dtype=np.int64)[None], "i64")]),
                                   ctx.reshape(keep, [keep.type.numel, 1])])
    hit = ctx.cast(hit, dtype)
    if weight is not None:
        hit = ctx.emit("mul", [hit, ctx.reshape(ctx.cast(weight, dtype), [weight.type.numel, 1])])
    return ctx.emit("reduce", [hit], kind="sum", axes=[0], keepdim=False)


@lowering(aten.histc.default, emits=_HISTOGRAM_OPS)
def lower_histc(ctx, x, bins=100, min=0, max=0):
    """Counts per bin of [min, max] (torch's bin index: trunc((x - min) * bins / (max - min)))."""
    dtype = x.type.dtype
    lo, hi = _range(ctx, x, min, max, 1.0)
    scaled = ctx.emit("div", [binary(ctx, "mul", ctx.emit("sub", [x, lo]), float(bins), dtype),
                              ctx.emit("sub", [hi, lo])])
    pos = ctx.cast(ctx.emit("trunc", [scaled]), "i64")
    pos = binary(ctx, "minimum", pos, bins - 1, "i64")
    keep = ctx.emit("logical_and", [ctx.emit("ge", [x, lo]), ctx.emit("le", [x, hi])])
    return _one_hot_counts(ctx, pos, keep, bins, None, dtype)


def _linspace_edges(ctx, lo: Value, hi: Value, bins: int) -> Value:
    """torch.linspace(lo, hi, bins + 1) with lo, hi as values (torch's two-sided formula)."""
    dtype = lo.type.dtype
    steps = bins + 1
    step = binary(ctx, "div", ctx.emit("sub", [hi, lo]), float(bins), dtype)
    i = np.arange(steps)
    half = steps // 2
    front = ctx.emit("add", [lo, ctx.emit("mul", [step, ctx.const(i.astype(np.float32), dtype)])])
    back = ctx.emit("sub", [hi, ctx.emit("mul", [step, ctx.const((steps - i - 1).astype(np.float32), dtype)])])
    return ctx.emit("where", [ctx.const(i < half, "bool"), front, back])


@lowering(aten.histogram.bin_ct, emits=_HISTOGRAM_OPS)
def lower_histogram(ctx, x, bins=100, *, range=None, weight=None, density=False):
    """Counts per bin (the last bin closed), and the bin edges; an element goes to the last edge
    at or below it (what torch's search among the edges finds)."""
    dtype = x.type.dtype
    lo, hi = _range(ctx, x, *(range if range is not None else (0, 0)), 0.5)
    edges = _linspace_edges(ctx, ctx.reshape(lo, [1]), ctx.reshape(hi, [1]), bins)
    inner = slice_(ctx, edges, 0, 1, bins)
    pos = _count_below(ctx, ctx.reshape(x, [x.type.numel]), inner, True, "i64")
    keep = ctx.emit("logical_and", [ctx.emit("ge", [x, lo]), ctx.emit("le", [x, hi])])
    hist = _one_hot_counts(ctx, pos, keep, bins, weight, dtype)
    if density:
        width = ctx.emit("sub", [slice_(ctx, edges, 0, 1, bins + 1), slice_(ctx, edges, 0, 0, bins)])
        total = ctx.emit("reduce", [hist], kind="sum", axes=None, keepdim=False)
        hist = ctx.emit("div", [hist, ctx.emit("mul", [width, total])])
    return hist, edges


def _histogram_counts(ctx, columns: list, edges: list, weight: Optional[Value], density: bool, dtype: str) -> Value:
    """Counts of the points (one column per dimension) in the cells of the given edges (each
    bin half-open but the last closed), as torch's histogramdd."""
    bins = [e.type.shape[0] - 1 for e in edges]
    strides = [numel(bins[d + 1:]) for d in range(len(bins))]
    linear, keep = None, None
    for col, e, b, stride in zip(columns, edges, bins, strides):
        pos = _count_below(ctx, col, slice_(ctx, e, 0, 1, b), True, "i64")
        inside = ctx.emit("logical_and", [ctx.emit("ge", [col, slice_(ctx, e, 0, 0, 1)]),
                                          ctx.emit("le", [col, slice_(ctx, e, 0, b, b + 1)])])
        part = binary(ctx, "mul", pos, stride, "i64") if stride != 1 else pos
        linear = part if linear is None else ctx.emit("add", [linear, part])
        keep = inside if keep is None else ctx.emit("logical_and", [keep, inside])
    hist = ctx.reshape(_one_hot_counts(ctx, linear, keep, numel(bins), weight, dtype), bins)
    if density:
        volume = None
        for d, e in enumerate(edges):
            width = ctx.emit("sub", [slice_(ctx, e, 0, 1, bins[d] + 1), slice_(ctx, e, 0, 0, bins[d])])
            width = ctx.reshape(width, [1] * d + [bins[d]] + [1] * (len(bins) - d - 1))
            volume = width if volume is None else ctx.emit("mul", [volume, width])
        total = ctx.emit("reduce", [hist], kind="sum", axes=None, keepdim=False)
        hist = ctx.emit("div", [hist, ctx.emit("mul", [volume, total])])
    return hist


@lowering(aten.histogram.bins_tensor, emits=_HISTOGRAM_OPS)
def lower_histogram_edges(ctx, x, bins, *, weight=None, density=False):
    flat = ctx.reshape(x, [x.type.numel])
    return _histogram_counts(ctx, [flat], [bins], weight, density, x.type.dtype), bins


def _histogramdd_edges(ctx, x: Value, bins, range_) -> list:
    n, dims = x.type.shape
    edges = []
    for d in range(dims):
        col = ctx.reshape(slice_(ctx, x, 1, d, d + 1), [n])
        low, high = (range_[2 * d], range_[2 * d + 1]) if range_ is not None else (0, 0)
        lo, hi = _range(ctx, col, low, high, 0.5)
        edges.append(_linspace_edges(ctx, ctx.reshape(lo, [1]), ctx.reshape(hi, [1]), bins[d]))
    return edges


@lowering(aten._histogramdd_bin_edges.default, emits=_HISTOGRAM_OPS)
def lower_histogramdd_bin_edges(ctx, x, bins, *, range=None, weight=None, density=False):
    return _histogramdd_edges(ctx, x, bins, range)


@lowering(aten._histogramdd_from_bin_cts.default, emits=_HISTOGRAM_OPS)
def lower_histogramdd(ctx, x, bins, *, range=None, weight=None, density=False):
    n, dims = x.type.shape
    columns = [ctx.reshape(slice_(ctx, x, 1, d, d + 1), [n]) for d in builtins.range(dims)]
    return _histogram_counts(ctx, columns, _histogramdd_edges(ctx, x, bins, range), weight, density, x.type.dtype)


@lowering(aten._histogramdd_from_bin_tensors.default, emits=_HISTOGRAM_OPS)
def lower_histogramdd_tensors(ctx, x, bins, *, weight=None, density=False):
    n, dims = x.type.shape
    columns = [ctx.reshape(slice_(ctx, x, 1, d, d + 1), [n]) for d in builtins.range(dims)]
    return _histogram_counts(ctx, columns, list(bins), weight, density, x.type.dtype)
