"""Helpers the direct backend's emitters of several families share: binary arithmetic with a
fused activation, reductions over stored axes, batched matrix products, the geometry of 2-d
sliding windows (convolutions and pools) with torch's padding mapped to TFLite's, and
``Builtins``, the array namespace (``ir.formulas.ArrayOps``) in which a formula of
``ir/formulas.py`` is written as builtins.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

from ...ir import Node
from ..context import Context
from ..schema import fb

__all__ = ["BINARY_OPTIONS", "Builtins", "Tensor", "Window", "batch_matmul", "binary", "matmul_shape", "padding_mode",
           "reduce", "same_pad_before"]

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


# ---------------------------------------------------------------------------- formulas as builtins
# (each function of ``Builtins`` writes builtins into the node being emitted and returns a
# ``Tensor``, whose Python arithmetic writes ADD / SUB / MUL / DIV / NEG; Python floats and numpy
# arrays become constants. Every new tensor is an intermediate of ``ctx.node`` with the operands'
# broadcast shape; arithmetic keeps its operand's type, comparisons and logical functions give
# bools.)

Operand = Union["Tensor", float, np.ndarray]


class Tensor:
    """A TFLite tensor (``index``) of the node being emitted, with arithmetic as builtins."""

    def __init__(self, ops: "Builtins", index: int) -> None:
        self.ops, self.index = ops, index

    def __add__(self, other: Operand) -> "Tensor": return self.ops.binary("ADD", self, other)
    def __radd__(self, other: Operand) -> "Tensor": return self.ops.binary("ADD", other, self)
    def __sub__(self, other: Operand) -> "Tensor": return self.ops.binary("SUB", self, other)
    def __rsub__(self, other: Operand) -> "Tensor": return self.ops.binary("SUB", other, self)
    def __mul__(self, other: Operand) -> "Tensor": return self.ops.binary("MUL", self, other)
    def __rmul__(self, other: Operand) -> "Tensor": return self.ops.binary("MUL", other, self)
    def __truediv__(self, other: Operand) -> "Tensor": return self.ops.binary("DIV", self, other)
    def __rtruediv__(self, other: Operand) -> "Tensor": return self.ops.binary("DIV", other, self)
    def __neg__(self) -> "Tensor": return self.ops.unary("NEG", self)


class Builtins:
    """``ArrayOps`` over the builtins of ``ctx`` (a Python float: a constant of the type of the
    tensor it meets)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def tensor(self, index: int) -> Tensor:
        return Tensor(self, index)

    def result(self, node: Node, value: Tensor) -> int:
        """``value``'s tensor as ``node``'s result: named as ``Context.result`` names one."""
        self.ctx.sub.tensors[value.index].name = self.ctx.scope(node)
        return value.index

    # ------------------------------------------------------------------ writing ops

    def _new(self, op: str, operands: tuple[Operand, ...], dtype: Any = None) -> tuple[list[int], int]:
        """The operands' tensors and a new tensor of their broadcast shape, of ``dtype`` (default:
        the type of the first tensor among the values, past a where's condition)."""
        values = [v for v in operands[op == "SELECT_V2":] if isinstance(v, Tensor)]
        like = self.ctx.dtype(values[0].index)
        inputs = [v.index if isinstance(v, Tensor) else self._constant(v, like) for v in operands]
        shape = np.broadcast_shapes(*(tuple(self.ctx.shape(i)) for i in inputs))
        return inputs, self.ctx.temp(shape, like if dtype is None else dtype, op.lower())

    def _constant(self, value: Union[float, np.ndarray], like: Any) -> int:
        if isinstance(value, np.ndarray):
            return self.ctx.constant(value.astype(like), self.ctx.local_name("constant"))
        return self.ctx.scalar(float(value), like, "constant")

    def unary(self, op: str, x: Tensor) -> Tensor:
        inputs, out = self._new(op, (x,))
        self.ctx.op(op, inputs, [out])
        return Tensor(self, out)

    def binary(self, op: str, a: Operand, b: Operand, dtype: Any = None) -> Tensor:
        """``op(a, b)`` (one of them a tensor), of ``dtype`` (default: the tensor's type)."""
        (x, y), out = self._new(op, (a, b), dtype)
        binary(self.ctx, op, x, y, out)
        return Tensor(self, out)

    # ------------------------------------------------------------------ ArrayOps

    def abs(self, x: Tensor) -> Tensor: return self.unary("ABS", x)
    def exp(self, x: Tensor) -> Tensor: return self.unary("EXP", x)
    def log(self, x: Tensor) -> Tensor: return self.unary("LOG", x)
    def sqrt(self, x: Tensor) -> Tensor: return self.unary("SQRT", x)
    def square(self, x: Tensor) -> Tensor: return self.unary("SQUARE", x)
    def floor(self, x: Tensor) -> Tensor: return self.unary("FLOOR", x)
    def round(self, x: Tensor) -> Tensor: return self.unary("ROUND", x)  # (halves to even)
    def sign(self, x: Tensor) -> Tensor: return self.unary("SIGN", x)
    def sin(self, x: Tensor) -> Tensor: return self.unary("SIN", x)
    def cos(self, x: Tensor) -> Tensor: return self.unary("COS", x)
    def isnan(self, x: Tensor) -> Tensor: return self.binary("NOT_EQUAL", x, x, np.bool_)
    def minimum(self, a: Tensor, b: Operand) -> Tensor: return self.binary("MINIMUM", a, b)
    def maximum(self, a: Tensor, b: Operand) -> Tensor: return self.binary("MAXIMUM", a, b)
    def less(self, a: Tensor, b: Operand) -> Tensor: return self.binary("LESS", a, b, np.bool_)
    def less_equal(self, a: Tensor, b: Operand) -> Tensor: return self.binary("LESS_EQUAL", a, b, np.bool_)
    def greater(self, a: Tensor, b: Operand) -> Tensor: return self.binary("GREATER", a, b, np.bool_)
    def equal(self, a: Tensor, b: Operand) -> Tensor: return self.binary("EQUAL", a, b, np.bool_)
    def logical_and(self, a: Tensor, b: Tensor) -> Tensor: return self.binary("LOGICAL_AND", a, b, np.bool_)
    def logical_or(self, a: Tensor, b: Tensor) -> Tensor: return self.binary("LOGICAL_OR", a, b, np.bool_)

    def where(self, condition: Tensor, a: Operand, b: Operand) -> Tensor:
        """SELECT_V2: ``a`` where ``condition`` holds, else ``b`` (one of them a tensor)."""
        inputs, out = self._new("SELECT_V2", (condition, a, b))
        self.ctx.op("SELECT_V2", inputs, [out])
        return Tensor(self, out)

    def cast(self, x: Tensor, dtype: Any) -> Tensor:
        """CAST (float to integer: toward zero)."""
        return Tensor(self, self.ctx.cast(x.index, np.dtype(dtype), "cast"))

    def expand_dims(self, x: Tensor, axis: int) -> Tensor:
        """A RESHAPE inserting a 1-sized axis."""
        shape = list(self.ctx.shape(x.index))
        shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, 1)
        return Tensor(self, self.ctx.reshape(x.index, shape, "expand_dims"))

    def take(self, x: Tensor, indices: Tensor, axis: int) -> Tensor:
        """GATHER: ``x``'s slices along ``axis`` at integer ``indices``."""
        shape = list(self.ctx.shape(x.index))
        axis = axis % len(shape)
        shape[axis:axis + 1] = self.ctx.shape(indices.index)
        out = self.ctx.temp(shape, self.ctx.dtype(x.index), "gather")
        options = fb.GatherOptionsT()
        options.axis = axis
        self.ctx.op("GATHER", [x.index, indices.index], [out], options)
        return Tensor(self, out)
