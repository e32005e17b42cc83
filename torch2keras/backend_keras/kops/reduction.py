"""Kernels of the reduction family: ``reduce``, ``argreduce``, ``var`` and the softmaxes."""

from __future__ import annotations

import keras
from keras import ops

from .registry import register

__all__: list[str] = []


def _reduce(x, kind, axes, keepdims):
    fn = {"sum": ops.sum, "mean": ops.mean, "max": ops.max, "min": ops.min, "prod": ops.prod,
          "any": ops.any, "all": ops.all}[kind]
    return fn(x, axis=axes, keepdims=keepdims)


def _argreduce(x, kind, axis, keepdims):
    if keras.backend.backend() == "tensorflow":
        # keras.ops.argmax tells -0.0 from 0.0 (PyTorch does not) with a BitwiseAnd TFLite has no
        # builtin for; TensorFlow's own becomes ARG_MAX / ARG_MIN
        import tensorflow as tf

        index = (tf.math.argmax if kind == "argmax" else tf.math.argmin)(x, axis=axis)
        return ops.cast(ops.expand_dims(index, axis) if keepdims else index, "int64")
    fn = ops.argmax if kind == "argmax" else ops.argmin
    return ops.cast(fn(x, axis=axis, keepdims=keepdims), "int64")


def _var(x, axes, correction, keepdims):
    n = 1
    for a in axes:
        n *= x.shape[a] if x.shape[a] is not None else ops.cast(ops.shape(x)[a], x.dtype)  # (a run-time size)
    v = ops.var(x, axis=axes, keepdims=keepdims)
    if not correction:
        return v
    dof = max(n - correction, 1e-12) if isinstance(n, int) else ops.maximum(n - correction, 1e-12)  # (n: a tensor)
    return v * (n / dof)


register({
    "reduce": _reduce, "argreduce": _argreduce, "var": _var,
    "softmax": lambda x, axis: ops.softmax(x, axis=axis),
    "log_softmax": lambda x, axis: ops.log_softmax(x, axis=axis),
})
