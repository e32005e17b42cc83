"""Helpers the lowering families share: aten op lookup, axis arithmetic, constant folding, and the
elementwise, permute and slice building blocks (static and run-time sizes).

Family modules import this module and never each other. A helper's IR ops count as emitted by
the lowering that calls it: the lowering declares them (``emits``).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch

from ...ir import Value
from ...ir.evaluate import evaluate
from ...ir.ops.shape import slice_len
from ..registry import LoweringContext
from ..symbolic import INT32_MAX, dims_product

__all__ = ["BOOL_BINARY", "aten", "axis_values", "binary", "dynamic_slice", "expand", "norm_axes", "norm_axis", "numel",
           "overloads", "permute", "slice_", "static_value", "vector_norm_last"]

aten = torch.ops.aten


def overloads(name: str, *overload_names: str) -> list:
    """``aten.<name>.<overload>`` and, where it exists, the functional ``<name>_copy`` twin
    (what functionalization emits for views)."""
    found = []
    for base in (name, f"{name}_copy"):
        packet = getattr(aten, base, None)
        if packet is None:
            continue
        for ov in overload_names:
            op = getattr(packet, ov, None)
            if op is not None:
                found.append(op)
    return found


# ----------------------------------------------------------------------------- axes and sizes


def norm_axis(axis: int, rank: int) -> int:
    return axis % rank if rank else 0


def norm_axes(axes: Iterable[int], rank: int) -> list[int]:
    return sorted({norm_axis(a, rank) for a in axes})


def numel(shape: Sequence) -> Union[int, str]:
    """The element count of ``shape``: an int, or a symbolic dim when a size is symbolic."""
    if all(isinstance(d, (int, np.integer)) for d in shape):
        return int(np.prod(shape)) if len(shape) else 1
    return dims_product(shape)


def axis_values(v: Any, n: int) -> list:
    """A size argument (kernel, stride, padding, ...) as one value per axis: a scalar or a
    one-element list repeated ``n`` times."""
    if isinstance(v, (list, tuple)):
        v = list(v)
        return v * n if len(v) == 1 else v
    return [v] * n


def static_value(v: Optional[Value], depth: int = 8) -> Optional[np.ndarray]:
    """The array behind an IR value computed from constants only (a constant, or a short chain of
    ops on constants that the numpy evaluator covers), else None."""
    if v is None:
        return None
    node = v.producer
    if node.op == "constant":
        return node.value
    if depth == 0 or node.op == "input" or not node.inputs:
        return None
    args = [static_value(i, depth - 1) for i in node.inputs]
    if any(a is None for a in args):
        return None
    try:
        return evaluate(node.op, args, node.attrs)[v.index]
    except NotImplementedError:
        return None


# ----------------------------------------------------------------------------- elementwise

# on bools, arithmetic is logic (TF has no bool kernels for mul, add, maximum, ...)
BOOL_BINARY = {"mul": "logical_and", "add": "logical_or", "maximum": "logical_or", "minimum": "logical_and",
               "bitwise_and": "logical_and", "bitwise_or": "logical_or", "bitwise_xor": "logical_xor",
               "fmax": "logical_or", "fmin": "logical_and"}
_ORDERED = ("lt", "le", "gt", "ge")  # no bool kernels either: compared as integers


def binary(ctx: LoweringContext, op: str, a, b, dtype: str) -> Value:
    """``op(a, b)`` with both operands brought to ``dtype`` (scalars become constants); on bools,
    ``BOOL_BINARY[op]``."""
    if dtype == "bool":
        op = BOOL_BINARY.get(op, op)
        if op in _ORDERED:
            dtype = "i32"
    return ctx.emit(op, [ctx.as_value(a, dtype), ctx.as_value(b, dtype)])


def vector_norm_last(ctx: LoweringContext, diff: Value, p: float) -> Value:
    """The p-norm of ``diff`` along its last axis."""
    dtype = diff.type.dtype
    mag = ctx.emit("abs", [diff])
    axis = diff.type.rank - 1
    if p == 0:
        return ctx.emit("reduce", [ctx.cast(binary(ctx, "ne", diff, 0.0, dtype), dtype)], kind="sum", axes=[axis])
    if p == float("inf"):
        return ctx.emit("reduce", [mag], kind="max", axes=[axis])
    if p == 1:
        return ctx.emit("reduce", [mag], kind="sum", axes=[axis])
    if p == 2:
        return ctx.emit("sqrt", [ctx.emit("reduce", [ctx.emit("mul", [mag, mag])], kind="sum", axes=[axis])])
    total = ctx.emit("reduce", [binary(ctx, "pow", mag, float(p), dtype)], kind="sum", axes=[axis])
    return binary(ctx, "pow", total, 1.0 / float(p), dtype)


# ----------------------------------------------------------------------------- permutes and slices


def permute(ctx: LoweringContext, x: Value, perm) -> Value:
    perm = [norm_axis(p, x.type.rank) for p in perm]
    if perm == list(range(x.type.rank)):
        return x
    return ctx.emit("permute", [x], perm=perm)


def slice_(ctx: LoweringContext, x: Value, axis: int, start, end, step=1, length=None) -> Value:
    """x[start:end:step] along ``axis``; bounds or a size known only at run time give a
    ``dynamic_slice`` (``length``: the result's size along ``axis``, torch's where known)."""
    axis = norm_axis(axis, x.type.rank)
    size = x.type.shape[axis]
    if isinstance(size, str) or isinstance(start, Value) or isinstance(end, Value):
        return dynamic_slice(ctx, x, axis, start, end, step, length)
    start, end, step = slice(start, end, step).indices(size)
    if (start, end, step) == (0, size, 1):
        return x
    return ctx.emit("slice", [x], axis=axis, start=start, end=end, step=step)


def _bound(b: Any, default: int) -> Any:
    if b is None:
        return default
    if isinstance(b, int):
        return max(min(b, INT32_MAX), -INT32_MAX)
    return b


def dynamic_slice(ctx: LoweringContext, x: Value, axis: int, start, end, step: int = 1,
                  length: Optional[Any] = None) -> Value:
    """x[start:end:step] along ``axis`` with Python's bound semantics, bounds as run-time values."""
    if not isinstance(step, int) or step <= 0:
        raise ctx.fail(f"slicing with step {step} along an axis of run-time size is not supported")
    start, end = _bound(start, 0), _bound(end, INT32_MAX)
    if isinstance(start, int) and isinstance(end, int) and start == 0 and end == INT32_MAX and step == 1:
        return x
    if length is None:
        length = slice_len(x.type.shape[axis], start if isinstance(start, int) else "start",
                           end if isinstance(end, int) else "end", step)
    return ctx.emit("dynamic_slice", [x, ctx.sizes.scalar(start), ctx.sizes.scalar(end)], axis=axis, step=step,
                    length=length)


def expand(ctx: LoweringContext, x: Value, out: Sequence) -> Value:
    """``x`` broadcast to ``out``: ``expand`` when every symbolic size of ``out`` is x's own
    (the backend reads it off x), else ``dynamic_expand`` with the sizes computed at run time."""
    off = len(out) - x.type.rank
    needs_sizes = any(isinstance(d, str) and (k < off or x.type.shape[k - off] != d) for k, d in enumerate(out))
    if needs_sizes:
        return ctx.emit("dynamic_expand", [x, ctx.sizes.vector(out)], shape=list(out))
    return ctx.emit("expand", [x], shape=list(out))
