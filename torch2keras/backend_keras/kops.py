"""Physical-tensor implementations of the ops that have no built-in Keras layer.

Each entry is ``fn(xs, **params)`` over ``keras.ops``: ``xs`` are tensors in their *stored*
layout and every axis/shape parameter is already physical (the emitter translated them). This
module imports neither torch nor anything of the compiler: saved models need only it and
``layers.py``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

__all__ = ["KOPS"]


def _hardsigmoid(x):
    return ops.relu6(x + 3.0) / 6.0


def _hardswish(x):
    return x * ops.relu6(x + 3.0) / 6.0  # the form TFLite's converter fuses into HARD_SWISH


def _slice(x, axis, start, end, step):
    index = [slice(None)] * len(x.shape)
    index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _slice_scatter(x, src, axis, start, end, step):
    size = x.shape[axis]
    if step == 1:
        parts = [p for p in (_slice(x, axis, 0, start, 1), src, _slice(x, axis, end, size, 1)) if p.shape[axis]]
        return ops.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]
    # interleave src with zeros so element j lands at start + j * step, then select with a mask
    n = src.shape[axis]
    spread = ops.stack([src] + [ops.zeros_like(src)] * (step - 1), axis=axis + 1)
    shape = list(src.shape)
    shape[axis] = n * step
    spread = ops.reshape(spread, shape)
    spread = _slice(spread, axis, 0, min(n * step, size - start), 1)
    pads = [[0, 0] for _ in x.shape]
    pads[axis] = [start, size - start - spread.shape[axis]]
    spread = ops.pad(spread, pads)
    mask = np.zeros(size, bool)
    mask[start:end:step] = True
    mask_shape = [1] * len(x.shape)
    mask_shape[axis] = size
    return ops.where(ops.convert_to_tensor(mask.reshape(mask_shape)), spread, x)


def _var(x, axes, correction, keepdims):
    n = 1
    for a in axes:
        n *= x.shape[a] if x.shape[a] is not None else ops.cast(ops.shape(x)[a], x.dtype)  # (a run-time size)
    v = ops.var(x, axis=axes, keepdims=keepdims)
    return v * (n / max(n - correction, 1e-12)) if correction else v


def _sdpa(q, k, v, mask=None, scale=None, is_causal=False):
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * scale
    if is_causal:
        lq, lk = q.shape[-2], k.shape[-2]
        if lq is None or lk is None:  # run-time lengths
            from .kops_dynamic import causal_mask

            causal = causal_mask(q, k)
        else:
            causal = np.triu(np.full((lq, lk), -np.inf, np.float32), 1)
        scores = scores + causal
    if mask is not None:
        scores = scores + mask
    return ops.matmul(ops.softmax(scores, axis=-1), v)


def _depth_to_space(x, block):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.depth_to_space(x, block)
    n, h, w, c = x.shape
    x = ops.reshape(x, (n, h, w, block, block, c // (block * block)))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (n, h * block, w * block, c // (block * block)))


def _space_to_depth(x, block):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.nn.space_to_depth(x, block)
    n, h, w, c = x.shape
    x = ops.reshape(x, (n, h // block, block, w // block, block, c))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (n, h // block, w // block, c * block * block))


def _reduce(x, kind, axes, keepdims):
    fn = {"sum": ops.sum, "mean": ops.mean, "max": ops.max, "min": ops.min, "prod": ops.prod,
          "any": ops.any, "all": ops.all}[kind]
    return fn(x, axis=axes, keepdims=keepdims)


def _argreduce(x, kind, axis, keepdims):
    if keras.backend.backend() == "tensorflow" and not keepdims:
        # keras.ops.argmax tells -0.0 from 0.0 with bitwise ops TFLite has no float kernels for
        import tensorflow as tf

        return ops.cast((tf.math.argmax if kind == "argmax" else tf.math.argmin)(x, axis=axis), "int64")
    fn = ops.argmax if kind == "argmax" else ops.argmin
    return ops.cast(fn(x, axis=axis, keepdims=keepdims), "int64")


def _topk(x, k, largest):
    values, indices = ops.top_k(x if largest else -x, k)
    return (values if largest else -values), ops.cast(indices, "int64")


def _add(x, y):
    """``x + y``. keras.ops.add (TensorFlow backend) turns an add whose second operand has one
    non-1 axis matching x's second or last axis into ``bias_add`` over the axis it guesses, which
    is wrong when the operand's axis is another one (e.g. [5, 5, 5] + [1, 5, 1]), and has no integer
    TFLite kernel: then subtract the negation, which is exact."""
    y_shape, x_rank = tuple(y.shape), len(x.shape)
    big = [i for i, d in enumerate(y_shape) if d != 1]
    if len(big) == 1 and x_rank > 1:
        axis = big[0] + x_rank - len(y_shape)
        guessed = x_rank - 1 if x.shape[-1] == y_shape[big[0]] else 1
        if axis != guessed or "int" in keras.backend.standardize_dtype(x.dtype):
            return ops.subtract(x, ops.negative(y))
    return ops.add(x, y)


def _floor_divide(x, y):
    return ops.floor_divide(x, y)


def _remainder(x, y):  # python/torch sign convention (result has the divisor's sign)
    return x - ops.floor_divide(x, y) * y


def _fmod(x, y):
    q = x / y if "float" in str(x.dtype) else ops.cast(x, "float32") / ops.cast(y, "float32")
    return x - ops.cast(ops.trunc(q), x.dtype) * y


def _softplus(x, beta, threshold):
    return ops.where(x * beta > threshold, x, ops.softplus(x * beta) / beta)


def _elu(x, alpha, scale, input_scale):
    xs = x * input_scale
    return scale * ops.where(x > 0, x, alpha * (ops.exp(xs) - 1.0))


def _gather(x, index, axis):
    return ops.take_along_axis(x, ops.cast(index, "int32"), axis=axis)


def _take(x, index, axis):
    return ops.take(x, ops.cast(index, "int32"), axis=axis)


def _max_pool_pad(x, pads, value):
    return ops.pad(x, pads, constant_values=value)


KOPS = {
    # unary
    "identity": lambda x: x,
    "neg": ops.negative, "abs": ops.abs, "exp": ops.exp, "expm1": ops.expm1, "log": ops.log, "log1p": ops.log1p,
    "log2": ops.log2, "sqrt": ops.sqrt, "rsqrt": ops.rsqrt, "sin": ops.sin, "cos": ops.cos, "tan": ops.tan,
    "asin": ops.arcsin, "acos": ops.arccos, "atan": ops.arctan, "sinh": ops.sinh, "cosh": ops.cosh,
    "tanh": ops.tanh, "asinh": ops.arcsinh, "acosh": ops.arccosh, "atanh": ops.arctanh,
    "sigmoid": ops.sigmoid, "relu": ops.relu, "silu": ops.silu, "erf": ops.erf, "floor": ops.floor,
    "ceil": ops.ceil, "round": ops.round, "trunc": ops.trunc, "reciprocal": lambda x: 1.0 / x,
    "sign": ops.sign, "bitwise_not": ops.bitwise_invert, "logical_not": ops.logical_not,
    "isnan": ops.isnan, "isinf": ops.isinf, "square": ops.square,
    "hardsigmoid": _hardsigmoid, "hardswish": _hardswish,
    "mish": lambda x: x * ops.tanh(ops.softplus(x)),
    "gelu": lambda x, approximate: ops.gelu(x, approximate=approximate == "tanh"),
    "clamp": lambda x, min, max: ops.clip(x, -np.inf if min is None else min, np.inf if max is None else max)
    if (min is None or max is None) else ops.clip(x, min, max),
    "leaky_relu": lambda x, slope: ops.where(x >= 0, x, x * slope),
    "elu": _elu, "softplus": _softplus,
    "cast": lambda x, dtype: ops.cast(x, dtype),
    # binary
    "add": _add, "sub": ops.subtract, "mul": ops.multiply, "div": ops.divide, "pow": ops.power,
    "maximum": ops.maximum, "minimum": ops.minimum, "atan2": ops.arctan2,
    "floor_divide": _floor_divide, "remainder": _remainder, "fmod": _fmod,
    "bitwise_and": ops.bitwise_and, "bitwise_or": ops.bitwise_or, "bitwise_xor": ops.bitwise_xor,
    "eq": ops.equal, "ne": ops.not_equal, "lt": ops.less, "le": ops.less_equal, "gt": ops.greater,
    "ge": ops.greater_equal, "logical_and": ops.logical_and, "logical_or": ops.logical_or,
    "logical_xor": ops.logical_xor, "where": ops.where,
    # axis / shape
    "softmax": lambda x, axis: ops.softmax(x, axis=axis),
    "log_softmax": lambda x, axis: ops.log_softmax(x, axis=axis),
    "cumsum": lambda x, axis: ops.cumsum(x, axis=axis),
    "flip": lambda x, axes: ops.flip(x, axis=axes) if len(axes) == 1 else _flip_many(x, axes),
    "reduce": _reduce, "argreduce": _argreduce, "var": _var,
    "slice": _slice, "slice_scatter": _slice_scatter,
    "concat": lambda *xs, axis: ops.concatenate(list(xs), axis=axis),
    "stack": lambda *xs, axis: ops.stack(list(xs), axis=axis),
    "pad": lambda x, pads, mode, value: ops.pad(x, pads, mode=mode, constant_values=ops.cast(value, x.dtype))
    if mode == "constant" else ops.pad(x, pads, mode=mode),
    "reshape": lambda x, shape: ops.reshape(x, shape),
    "transpose": lambda x, perm: ops.transpose(x, perm),
    "expand": lambda x, shape: ops.broadcast_to(x, shape),
    "tile": lambda x, reps: ops.tile(x, reps),
    "matmul": ops.matmul,
    "gather": _gather, "take": _take,
    "sdpa": _sdpa, "topk": _topk,
    "depth_to_space": _depth_to_space, "space_to_depth": _space_to_depth,
    "resize": lambda x, size, interpolation: ops.image.resize(x, size, interpolation=interpolation,
                                                              data_format="channels_last"),
}


def _flip_many(x, axes):
    for a in axes:
        x = ops.flip(x, axis=a)
    return x


from . import kops_extra  # noqa: E402,F401  (registers more entries into KOPS)
from . import kops_dynamic  # noqa: E402,F401  (ops on sizes known at run time)
