"""Kernels of the dynamic family: ops on sizes known only at run time.

Sizes are lists whose entries are ints, ``-1`` (one entry: whatever is left) or ``["in", k]``
(the run-time size of axis ``k`` of the op's first input).
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from .registry import register

__all__: list[str] = []


def _tf():
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf
    return None


def _sizes(x, dims: Sequence) -> list:
    shape = ops.shape(x)
    return [shape[d[1]] if isinstance(d, (list, tuple)) else int(d) for d in dims]


def _set_static(y, static: Sequence):
    """Tell the graph the sizes that are static (no op: TensorFlow's shape inference cannot see
    through sizes computed at run time)."""
    if static is not None and hasattr(y, "set_shape") and _tf() is not None:
        y.set_shape([None if d is None or d == -1 else int(d) for d in static])
    return y


def _reshape_dims(x, dims):
    return ops.reshape(x, _sizes(x, dims))


def _broadcast_dims(x, dims):
    return ops.broadcast_to(x, _sizes(x, dims))


def _reshape_to(x, sizes, static):
    tf = _tf()
    y = tf.reshape(x, tf.cast(sizes, "int32")) if tf is not None else ops.reshape(x, sizes)
    return _set_static(y, static)


def _broadcast_to(x, sizes, static):
    tf = _tf()
    y = tf.broadcast_to(x, tf.cast(sizes, "int32")) if tf is not None else ops.broadcast_to(x, sizes)
    return _set_static(y, static)


def _dim(x, axis):
    tf = _tf()
    if tf is not None:
        return tf.shape(x, out_type="int32")[axis]
    return ops.convert_to_tensor(ops.shape(x)[axis], "int32")


def _slice_dynamic(x, start, end, axis, step):
    tf = _tf()
    if tf is not None:
        start, end = tf.cast(start, "int32"), tf.cast(end, "int32")  # (plain tensors: not stored weights)
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _update_slice(x, update, start, axis):
    """x with update's rows written at ``start`` along ``axis`` (keras.ops.slice_update: clamped
    into range on TensorFlow and JAX, as the IR op is)."""
    starts = [0] * len(x.shape)
    starts[axis] = ops.cast(ops.reshape(start, ()), "int32")
    return ops.slice_update(x, starts, update)


def _arange(start, end, step, dtype):
    tf = _tf()
    if tf is not None:
        return ops.cast(tf.range(start, end, step), dtype)
    return ops.cast(ops.arange(start, end, step), dtype)


register({
    "dim": _dim,
    "reshape_dims": _reshape_dims,
    "broadcast_dims": _broadcast_dims,
    "reshape_to": _reshape_to,
    "broadcast_to": _broadcast_to,
    "slice_dynamic": _slice_dynamic,
    "update_slice": _update_slice,
    "arange": _arange,
})
