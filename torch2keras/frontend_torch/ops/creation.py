"""Tensor factories (zeros, ones, full, arange, fill, the tri-indices): with static shapes they all
become constants; with shapes known only at run time, a value broadcast to them (or a run-time
``arange``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...ir import Value
from ...ir.types import dtype_to_numpy
from ..registry import LoweringContext, lowering
from .common import aten


def _fill(ctx: LoweringContext, value) -> Value:
    t = ctx.out_type
    if not t.is_static:  # a shape known at run time: the value broadcast to it
        return dynamic_fill(ctx, value)
    return ctx.const(np.full(t.shape, value, dtype=dtype_to_numpy(t.dtype)), t.dtype)


def dynamic_fill(ctx: LoweringContext, value: Any) -> Value:
    """A tensor of the call's (symbolic) result type filled with ``value``."""
    t = ctx.out_type
    one = ctx.const(np.full([1] * t.rank, value, dtype=dtype_to_numpy(t.dtype)), t.dtype)
    return ctx.emit("dynamic_expand", [one, ctx.sizes.vector(list(t.shape))], shape=list(t.shape))


@lowering(aten.zeros.default, aten.zeros_like.default, aten.new_zeros.default, aten.empty.memory_format,
          aten.empty_like.default, aten.new_empty.default, aten.empty_permuted.default, aten.empty_strided.default,
          aten.new_empty_strided.default, emits=("dynamic_expand",))
def lower_zeros(ctx, *args, **kwargs):
    return _fill(ctx, 0)


@lowering(aten.ones.default, aten.ones_like.default, aten.new_ones.default, emits=("dynamic_expand",))
def lower_ones(ctx, *args, **kwargs):
    return _fill(ctx, 1)


@lowering(aten.full.default, aten.new_full.default, emits=("dynamic_expand",))
def lower_full(ctx, *args, **kwargs):
    value = args[-1] if "new_full" not in ctx.loc.op else args[2]
    if ctx.loc.op.startswith("aten.full"):
        value = args[1]
    return _fill(ctx, value)


@lowering(aten.full_like.default, emits=("dynamic_expand",))
def lower_full_like(ctx, x, fill_value, **kwargs):
    return _fill(ctx, fill_value)


@lowering(aten.scalar_tensor.default, emits=("dynamic_expand",))
def lower_scalar_tensor(ctx, value, **kwargs):
    return _fill(ctx, value)


@lowering(aten.fill.Scalar, aten.fill.Tensor, emits=("expand",))
def lower_fill(ctx, x, value):
    if isinstance(value, Value):
        value = ctx.cast(value, x.type.dtype)
        return value if tuple(x.type.shape) == () else ctx.emit("expand", [ctx.reshape(value, [1] * x.type.rank)],
                                                                 shape=list(x.type.shape))
    return ctx.const(np.full(x.type.shape, value, dtype=dtype_to_numpy(x.type.dtype)), x.type.dtype)


@lowering(aten.arange.default, aten.arange.start, aten.arange.start_step, emits=("arange",))
def lower_arange(ctx, *args, **kwargs):
    t = ctx.out_type
    kwargs.pop("device", None)
    kwargs.pop("pin_memory", None)
    kwargs.pop("layout", None)
    if not t.is_static or any(isinstance(a, Value) for a in args):
        bounds = list(args) + [None] * (3 - len(args))
        start, end, step = (0, bounds[0], 1) if len(args) == 1 else (bounds[0], bounds[1], bounds[2] or 1)
        return dynamic_arange(ctx, start, end, step)
    values = torch.arange(*args, **kwargs).numpy().astype(dtype_to_numpy(t.dtype))
    return ctx.const(values, t.dtype)


def dynamic_arange(ctx: LoweringContext, start, end, step) -> Value:
    """``arange(start, end, step)`` with integer bounds known at run time."""
    t = ctx.out_type
    for b in (start, end, step):
        if not isinstance(b, (int, Value)) or isinstance(b, bool):
            raise ctx.fail(f"arange with a non-integer bound {b!r} and a run-time size is not supported")
    return ctx.emit("arange", [ctx.sizes.scalar(start), ctx.sizes.scalar(end), ctx.sizes.scalar(step)],
                    dtype=t.dtype, length=t.shape[0])


@lowering(aten.tril_indices.default, aten.triu_indices.default, emits=())
def lower_tri_indices(ctx, row, col, offset=0, **kwargs):
    """Static arguments, static result: a constant."""
    fn = torch.tril_indices if "tril" in ctx.loc.op else torch.triu_indices
    return ctx.const(fn(row, col, offset).numpy(), ctx.out_dtype)
