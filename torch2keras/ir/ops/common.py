"""Shape-inference and reference helpers shared by the op families."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..symbolic import is_symbolic
from ..types import TensorType

__all__ = ["broadcast", "broadcast_shapes", "compare", "norm_axis", "same", "with_dtype", "take_slice"]


def broadcast_shapes(*shapes: Sequence) -> tuple:
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        dims = list(dict.fromkeys(d for d in dims if d != 1))
        static = [d for d in dims if not is_symbolic(d)]
        if len(static) > 1:
            raise ValueError(f"shapes {list(shapes)} do not broadcast")
        # a symbolic dim broadcast against another is assumed equal to it (torch checked that)
        out.append(static[0] if static else dims[0] if dims else 1)
    return tuple(out)


def norm_axis(axis: int, rank: int) -> int:
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % max(rank, 1)


def same(types, a):
    return [types[0].replace(layout=None)]


def with_dtype(dtype: str):
    def infer(types, a):
        return [TensorType(types[0].shape, dtype)]

    return infer


def broadcast(types, a):
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), types[0].dtype)]


def compare(types, a):
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), "bool")]


def take_slice(x: np.ndarray, axis: int, start: int, end: int, step: int) -> np.ndarray:
    """``x[start:end:step]`` along ``axis`` (numpy's clamping of out-of-range bounds)."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, end, step)
    return x[tuple(index)]
