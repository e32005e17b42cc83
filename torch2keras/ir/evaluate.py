"""A numpy reference implementation of IR ops on logical values, for constant folding.

``evaluate(op, arrays, attrs)`` returns the list of results, or raises ``NotImplementedError``
for ops it does not cover (folding then leaves the node alone).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = ["evaluate", "EVALUATORS"]

_erf = np.vectorize(math.erf, otypes=[np.float64])

EVALUATORS: dict[str, Callable] = {
    "identity": lambda x: x, "neg": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log,
    "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0).astype(x.dtype),
    "floor": np.floor, "ceil": np.ceil, "round": np.round, "trunc": np.trunc, "reciprocal": lambda x: 1 / x,
    "sign": np.sign, "logical_not": np.logical_not, "erf": lambda x: _erf(x).astype(x.dtype),
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum, "minimum": np.minimum,
    "pow": np.power, "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal, "logical_and": np.logical_and, "logical_or": np.logical_or,
    "where": np.where, "square": np.square,
}


def _div(x, y):
    if np.issubdtype(np.result_type(x, y), np.integer):
        raise NotImplementedError("integer true division")
    return np.divide(x, y)


def _slice(x, axis, start, end, step):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, end, step)
    return x[tuple(index)]


def _reduce(x, kind, axes, keepdim):
    axes = tuple(range(x.ndim)) if axes is None else tuple(axes)
    fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod,
          "any": np.any, "all": np.all}[kind]
    return fn(x, axis=axes, keepdims=keepdim)


def evaluate(op: str, args: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    a = attrs
    if op in EVALUATORS:
        out = EVALUATORS[op](*args)
    elif op == "div":
        out = _div(*args)
    elif op == "cast":
        from .types import dtype_to_numpy

        out = args[0].astype(dtype_to_numpy(a["dtype"]))
    elif op == "clamp":
        out = np.clip(args[0], a["min"], a["max"])
    elif op == "reshape":
        out = args[0].reshape(a["shape"])
    elif op == "permute":
        out = np.transpose(args[0], a["perm"])
    elif op == "relayout":
        out = args[0]  # logically the identity
    elif op == "expand":
        shape = [d if d != -1 else s for d, s in zip(a["shape"], (1,) * (len(a["shape"]) - args[0].ndim) + args[0].shape)]
        out = np.broadcast_to(args[0], shape)
    elif op == "tile":
        out = np.tile(args[0], a["reps"])
    elif op == "slice":
        out = _slice(args[0], a["axis"], a["start"], a["end"], a["step"])
    elif op == "concat":
        out = np.concatenate(args, axis=a["axis"])
    elif op == "flip":
        out = np.flip(args[0], axis=a["axes"])
    elif op == "reduce":
        out = _reduce(args[0], a["kind"], a["axes"], a["keepdim"])
    elif op == "index_select":
        out = np.take(args[0], args[1], axis=a["axis"])
    elif op == "linear":
        out = args[0] @ args[1].T + (args[2] if len(args) > 2 else 0)
    elif op == "matmul":
        out = np.matmul(args[0], args[1])
    elif op == "pad" and a["mode"] == "constant":
        pads = [(a["pads"][2 * i], a["pads"][2 * i + 1]) for i in range(args[0].ndim)]
        out = np.pad(args[0], pads, constant_values=a["value"])
    else:
        raise NotImplementedError(op)
    return [np.asarray(out)]
