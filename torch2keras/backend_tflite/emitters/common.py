"""Helpers the direct backend's emitters of several families share: binary arithmetic with a
fused activation, reductions over stored axes, batched matrix products, and the geometry of 2-d
sliding windows (convolutions and pools) with torch's padding mapped to TFLite's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..context import Context
from ..schema import fb

__all__ = ["BINARY_OPTIONS", "Window", "batch_matmul", "binary", "matmul_shape", "padding_mode", "reduce",
           "same_pad_before"]

# the binary builtins that take an options table (with a fused activation)
BINARY_OPTIONS = {"ADD": fb.AddOptionsT, "SUB": fb.SubOptionsT, "MUL": fb.MulOptionsT, "DIV": fb.DivOptionsT}
_SAME, _VALID = fb.Padding.SAME, fb.Padding.VALID


def binary(ctx: Context, op: str, x: int, y: int, out: int, activation: int = 0) -> int:
    """``out = op(x, y)`` (a binary builtin) with a fused activation if it takes one."""
    options_class = BINARY_OPTIONS.get(op)
    options = options_class() if options_class is not None else None
    if options is not None:
        options.fusedActivationFunction = activation
    ctx.op(op, [x, y], [out], options)
    return out


def reduce(ctx: Context, op: str, x: int, axes: Sequence[int], keep_dims: bool, out: int) -> int:
    """``out`` = the reducer builtin ``op`` (SUM, MEAN, ...) of ``x`` over stored ``axes``."""
    options = fb.ReducerOptionsT()
    options.keepDims = keep_dims
    ctx.op(op, [x, ctx.ints(sorted(axes), "axes")], [out], options)
    return out


def matmul_shape(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The shape of BATCH_MATMUL(a, b): the batch axes broadcast, then [rows of a, columns of b]."""
    batch = list(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])))
    return batch + [a[-2], b[-1]]


def batch_matmul(ctx: Context, a: int, b: int, out: int, adj_y: bool = False) -> int:
    """``out = a @ b`` (``b`` transposed in its last two axes with ``adj_y``) over broadcast batch axes."""
    options = fb.BatchMatMulOptionsT()
    options.adjY = adj_y
    ctx.op("BATCH_MATMUL", [a, b], [out], options)
    return out


def same_pad_before(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) of TensorFlow's ``SAME`` padding along one axis."""
    out = -(-size // stride)
    effective = dilation * (kernel - 1) + 1
    total = max((out - 1) * stride + effective - size, 0)
    return out, total // 2


class Window:
    """A 2-d sliding window's geometry (height, width), torch's padding as (before, after) pairs."""

    def __init__(self, size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], pads: Sequence[int],
                 dilation: Sequence[int], out: Sequence[int]) -> None:
        self.size, self.kernel, self.stride = list(size), list(kernel), list(stride)
        self.pads, self.dilation, self.out = list(pads), list(dilation), list(out)

    @property
    def padded(self) -> bool:
        return any(self.pads)

    def same(self) -> bool:
        """Whether TFLite's SAME padding places the windows as torch's padding does."""
        for i in range(2):
            out, before = same_pad_before(self.size[i], self.kernel[i], self.stride[i], self.dilation[i])
            if out != self.out[i] or before != self.pads[2 * i]:
                return False
        return True


def padding_mode(ctx: Context, x: int, window: Window, value: float = 0.0) -> tuple[int, int]:
    """(input tensor, SAME or VALID): the input padded by an explicit PAD/PADV2 (with ``value``)
    where neither padding mode places the windows as torch does."""
    if not window.padded:
        return x, _VALID
    if window.same():
        return x, _SAME
    p = window.pads
    paddings = ctx.ints([[0, 0], [p[0], p[1]], [p[2], p[3]], [0, 0]], "paddings")
    n, h, w, c = ctx.shape(x)
    padded = ctx.temp([n, h + p[0] + p[1], w + p[2] + p[3], c], ctx.dtype(x), "pad")
    if value == 0.0:
        ctx.op("PAD", [x, paddings], [padded])
    else:
        ctx.op("PADV2", [x, paddings, ctx.scalar(value, ctx.dtype(x), "pad_value")], [padded])
    return padded, _VALID
