"""Kernels of the scans family: cumulative sums, products, log-sum-exps and extremes, ``sort``
and ``topk``.

Scans Keras has no op for, and cumprod (TFLite has no CUMPROD), run as a Hillis-Steele scan
(log2(n) steps of elementwise ops), which converts to plain TFLite builtins. Along an axis of
run-time size (a dynamic batch) the number of steps is unknown: there every prefix is reduced at
once, over an [n, n] mask of the positions j <= i (n^2 elements, plain builtins again).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .elementwise import dtype_name, is_integer
from .registry import register

__all__: list[str] = []


def _sort(x, axis, descending):
    key = ops.cast(x, "int32") if dtype_name(x) in ("bool", "uint8", "int8", "int16") else x
    if descending:
        key = -key
    index = ops.argsort(key, axis=axis)
    return ops.take_along_axis(x, index, axis=axis), ops.cast(index, "int64")


def _topk(x, k, largest):
    values, indices = ops.top_k(x if largest else -x, k)
    return (values if largest else -values), ops.cast(indices, "int64")


def _positions(x, axis):
    n = x.shape[axis]
    shape = [1] * len(x.shape)
    shape[axis] = n
    return ops.reshape(ops.arange(n, dtype="int32"), shape)


def _shifted(x, axis, k):
    """x moved k places towards higher indices along axis (the first k places repeat x[0])."""
    n = x.shape[axis]
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(0, n - k)
    head = [slice(None)] * len(x.shape)
    head[axis] = slice(0, k)
    return ops.concatenate([x[tuple(head)], x[tuple(index)]], axis=axis)


def _scan(values, axis, combine):
    """Inclusive scan (Hillis-Steele, log2(n) steps) of ``combine(earlier, later)`` over a tuple."""
    n = values[0].shape[axis]
    if n is None:
        raise ValueError(f"a running scan along axis {axis}, whose size is only known at run time, is not "
                         f"supported (its steps depend on the size): make that dimension static in dynamic_shapes")
    pos = _positions(values[0], axis)
    k = 1
    while k < n:
        earlier = tuple(_shifted(v, axis, k) for v in values)
        merged = combine(earlier, values)
        has = pos >= k
        values = tuple(ops.where(has, m, v) for m, v in zip(merged, values))
        k *= 2
    return values


def _logaddexp(a, b):
    m = ops.maximum(a, b)
    out = m + ops.log1p(ops.exp(-ops.abs(a - b)))
    return ops.where(ops.equal(m, -np.inf), m, ops.where(ops.isinf(m), m, out))


def _prefixes(x, axis, fill):
    """x with its ``axis`` last and a new axis before it: element [..., i, j] is x[..., j] where
    j <= i, else ``fill`` (each row i holds the prefix ending at i), and the positions j."""
    moved = ops.moveaxis(x, axis, -1)
    pos = ops.arange(ops.shape(moved)[-1], dtype="int32")
    before = ops.less_equal(pos[None, :], pos[:, None])
    return ops.where(before, ops.expand_dims(moved, -2), ops.cast(fill, x.dtype)), before, pos


def _prefix_reduced(x, axis, kind):
    """The scan ``kind`` (prod | logsumexp) along an axis of run-time size: every prefix reduced."""
    rows, _, _ = _prefixes(x, axis, 1 if kind == "prod" else -np.inf)
    out = ops.prod(rows, axis=-1) if kind == "prod" else ops.logsumexp(rows, axis=-1)
    return ops.moveaxis(out, -1, axis)


def _prefix_extreme(x, axis, kind):
    """cummax / cummin along an axis of run-time size: each prefix's extreme and the last position
    holding it (the last NaN where the prefix has one, as the step-wise scan takes)."""
    floating = not is_integer(x)
    if floating:
        low = -np.inf if kind == "max" else np.inf
    else:
        info = np.iinfo(dtype_name(x)) if dtype_name(x) != "bool" else np.iinfo(np.int8)
        low = info.min if kind == "max" else info.max
    clean = ops.where(ops.isnan(x), ops.cast(low, x.dtype), x) if floating else x
    rows, before, pos = _prefixes(clean, axis, low)
    value = (ops.max if kind == "max" else ops.min)(rows, axis=-1)
    at = ops.logical_and(before, ops.equal(rows, ops.expand_dims(value, -1)))
    index = ops.max(ops.where(at, pos, -1), axis=-1)
    if floating:
        nan = ops.logical_and(before, ops.expand_dims(ops.isnan(ops.moveaxis(x, axis, -1)), -2))
        seen = ops.any(nan, axis=-1)
        value = ops.where(seen, ops.cast(np.nan, x.dtype), value)
        index = ops.where(seen, ops.max(ops.where(nan, pos, -1), axis=-1), index)
    return ops.moveaxis(value, -1, axis), ops.cast(ops.moveaxis(index, -1, axis), "int64")


def _cumulative(x, axis, kind):
    if x.shape[axis] is None:
        return _prefix_reduced(x, axis, kind)
    if kind == "prod":  # (TFLite has no CUMPROD builtin; products of the same factors, zeros and signs exact)
        return _scan((x,), axis, lambda e, l: (e[0] * l[0],))[0]
    if kind == "logsumexp":
        return _scan((x,), axis, lambda e, l: (_logaddexp(e[0], l[0]),))[0]
    raise ValueError(kind)


def _cumulative_extreme(x, axis, kind):
    if x.shape[axis] is None:
        return _prefix_extreme(x, axis, kind)
    index = ops.zeros_like(x, dtype="int32") + _positions(x, axis)  # (x's batch may be dynamic)
    floating = not is_integer(x)

    def combine(earlier, later):
        (a, ia), (b, ib) = earlier, later
        take_later = b >= a if kind == "max" else b <= a
        if floating:
            take_later = ops.logical_or(ops.isnan(b), ops.logical_and(ops.logical_not(ops.isnan(a)), take_later))
        return ops.where(take_later, b, a), ops.where(take_later, ib, ia)

    values, index = _scan((x, index), axis, combine)
    return values, ops.cast(index, "int64")


register({
    "cumsum": lambda x, axis: ops.cumsum(x, axis=axis),
    "cumulative": _cumulative, "cumulative_extreme": _cumulative_extreme,
    "sort": _sort, "topk": _topk,
})
