"""Shape-taking ops whose sizes are known only at run time: slices with symbolic bounds or along
a symbolic axis, broadcasts to symbolic sizes, tensor factories of symbolic shape, ``arange``
to a symbolic end, and upsampling of a symbolic spatial size.

Each builds the run-time sizes with ``ctx.sizes`` and emits the ``dynamic_*`` IR ops; static
sizes never come here (the callers keep their static lowering).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import sympy

from ...ir import Value
from ...ir.ops.shape import slice_len
from ...ir.types import dtype_to_numpy
from ..registry import LoweringContext
from ..symbolic import INT32_MAX, expression

__all__ = ["dynamic_arange", "dynamic_fill", "dynamic_select", "dynamic_slice", "expand", "integer_ratio"]


def expand(ctx: LoweringContext, x: Value, out: Sequence) -> Value:
    """``x`` broadcast to ``out``: ``expand`` when every symbolic size of ``out`` is x's own
    (the backend reads it off x), else ``dynamic_expand`` with the sizes computed at run time."""
    off = len(out) - x.type.rank
    needs_sizes = any(isinstance(d, str) and (k < off or x.type.shape[k - off] != d) for k, d in enumerate(out))
    if needs_sizes:
        return ctx.emit("dynamic_expand", [x, ctx.sizes.vector(out)], shape=list(out))
    return ctx.emit("expand", [x], shape=list(out))


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


def dynamic_select(ctx: LoweringContext, x: Value, axis: int, index) -> Value:
    """x[index] along ``axis``, keeping the axis (of size 1)."""
    if isinstance(index, int):
        end = index + 1 if index != -1 else INT32_MAX
        return dynamic_slice(ctx, x, axis, index, end, 1, 1)
    end = ctx.emit("add", [ctx.sizes.scalar(index), ctx.sizes.scalar(1)])
    return dynamic_slice(ctx, x, axis, index, end, 1, 1)


def dynamic_fill(ctx: LoweringContext, value: Any) -> Value:
    """A tensor of the call's (symbolic) result type filled with ``value``."""
    t = ctx.out_type
    one = ctx.const(np.full([1] * t.rank, value, dtype=dtype_to_numpy(t.dtype)), t.dtype)
    return ctx.emit("dynamic_expand", [one, ctx.sizes.vector(list(t.shape))], shape=list(t.shape))


def dynamic_arange(ctx: LoweringContext, start, end, step) -> Value:
    """``arange(start, end, step)`` with integer bounds known at run time."""
    t = ctx.out_type
    for b in (start, end, step):
        if not isinstance(b, (int, Value)) or isinstance(b, bool):
            raise ctx.fail(f"arange with a non-integer bound {b!r} and a run-time size is not supported")
    return ctx.emit("arange", [ctx.sizes.scalar(start), ctx.sizes.scalar(end), ctx.sizes.scalar(step)],
                    dtype=t.dtype, length=t.shape[0])


def integer_ratio(out_dim: Any, in_dim: Any) -> Optional[int]:
    """``out_dim / in_dim`` when it is a positive integer for every size (by torch's expressions)."""
    try:
        ratio = sympy.simplify(expression(out_dim) / expression(in_dim))
    except Exception:  # noqa: BLE001 - no expression known: no ratio
        return None
    return int(ratio) if ratio.is_Integer and int(ratio) > 0 else None
