"""Kernels of the scans family: cumulative sums, products, log-sum-exps and extremes, ``sort``
and ``topk``.

Scans Keras has no op for, and cumprod (TFLite has no CUMPROD), run as a Hillis-Steele scan
(log2(n) steps of elementwise ops), which converts to plain TFLite builtins.
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


def _cumulative(x, axis, kind):
    if kind == "prod":  # (TFLite has no CUMPROD builtin; products of the same factors, zeros and signs exact)
        return _scan((x,), axis, lambda e, l: (e[0] * l[0],))[0]
    if kind == "logsumexp":
        return _scan((x,), axis, lambda e, l: (_logaddexp(e[0], l[0]),))[0]
    raise ValueError(kind)


def _cumulative_extreme(x, axis, kind):
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
