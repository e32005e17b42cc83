"""Tensor factories: with static shapes they all become constants (with shapes known only at run
time, a value broadcast to them)."""

from __future__ import annotations

import numpy as np
import torch

from ...ir import Value
from ...ir.types import dtype_to_numpy
from ..registry import LoweringContext, lowering
from ._util import aten


def _fill(ctx: LoweringContext, value) -> object:
    t = ctx.out_type
    if not t.is_static:  # a shape known at run time: the value broadcast to it
        from .symbolic_shape import dynamic_fill

        return dynamic_fill(ctx, value)
    return ctx.const(np.full(t.shape, value, dtype=dtype_to_numpy(t.dtype)), t.dtype)


@lowering(aten.zeros.default, aten.zeros_like.default, aten.new_zeros.default, aten.empty.memory_format,
          aten.empty_like.default, aten.new_empty.default, aten.empty_permuted.default, aten.empty_strided.default,
          aten.new_empty_strided.default)
def lower_zeros(ctx, *args, **kwargs):
    return _fill(ctx, 0)


@lowering(aten.ones.default, aten.ones_like.default, aten.new_ones.default)
def lower_ones(ctx, *args, **kwargs):
    return _fill(ctx, 1)


@lowering(aten.full.default, aten.new_full.default)
def lower_full(ctx, *args, **kwargs):
    value = args[-1] if "new_full" not in ctx.loc.op else args[2]
    if ctx.loc.op.startswith("aten.full"):
        value = args[1]
    return _fill(ctx, value)


@lowering(aten.full_like.default)
def lower_full_like(ctx, x, fill_value, **kwargs):
    return _fill(ctx, fill_value)


@lowering(aten.scalar_tensor.default)
def lower_scalar_tensor(ctx, value, **kwargs):
    return _fill(ctx, value)


@lowering(aten.arange.default, aten.arange.start, aten.arange.start_step)
def lower_arange(ctx, *args, **kwargs):
    t = ctx.out_type
    kwargs.pop("device", None)
    kwargs.pop("pin_memory", None)
    kwargs.pop("layout", None)
    if not t.is_static or any(isinstance(a, Value) for a in args):
        from .symbolic_shape import dynamic_arange

        bounds = list(args) + [None] * (3 - len(args))
        start, end, step = (0, bounds[0], 1) if len(args) == 1 else (bounds[0], bounds[1], bounds[2] or 1)
        return dynamic_arange(ctx, start, end, step)
    values = torch.arange(*args, **kwargs).numpy().astype(dtype_to_numpy(t.dtype))
    return ctx.const(values, t.dtype)
